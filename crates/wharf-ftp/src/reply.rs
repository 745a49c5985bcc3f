//! Replies: a three-digit code and one or more lines of text (RFC 959 §4.2).

use std::fmt::Write as _;

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub(crate) fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `first`, then `body` (each line indented by a space, so
    /// none can be read as the last line), then `last`.
    pub(crate) fn multi(
        code: u16,
        first: impl Into<String>,
        body: impl IntoIterator<Item = String>,
        last: impl Into<String>,
    ) -> Reply {
        let mut lines = vec![first.into()];
        lines.extend(body.into_iter().map(|l| format!(" {l}")));
        lines.push(last.into());
        Reply { code, lines }
    }

    /// The reply code.
    pub(crate) fn code(&self) -> u16 {
        self.code
    }

    /// The first line of text, for logs.
    pub(crate) fn text(&self) -> &str {
        &self.lines[0]
    }

    /// The reply on the wire: `code-text` lines then `code text`, each ended by
    /// CRLF. Line breaks inside a text are replaced by spaces, so a file name cannot
    /// forge a reply.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            let clean = line.replace(['\r', '\n'], " ");
            match (i, i == last) {
                (_, true) => write!(out, "{} {clean}\r\n", self.code),
                (0, false) => write!(out, "{}-{clean}\r\n", self.code),
                _ => write!(out, "{clean}\r\n"),
            }
            .expect("writing to a String");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_many_lines() {
        assert_eq!(Reply::new(200, "OK").encode(), "200 OK\r\n");
        let r = Reply::multi(211, "Features:", ["UTF8".to_owned()], "End");
        assert_eq!(r.encode(), "211-Features:\r\n UTF8\r\n211 End\r\n");
        assert_eq!(
            Reply::new(550, "a\r\n200 forged").encode(),
            "550 a  200 forged\r\n"
        );
    }
}
