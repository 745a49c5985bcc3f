//! Collecting the reasons behind a response into one explanation line.

use std::fmt::Display;

use http::StatusCode;

/// The reasons gathered while answering one request, in decision order. Disabled
/// (the default for sites without `explain`), it formats and stores nothing.
#[derive(Debug, Default)]
pub(crate) struct Reasons {
    enabled: bool,
    list: Vec<String>,
}

impl Reasons {
    pub(crate) fn new(enabled: bool) -> Reasons {
        Reasons {
            enabled,
            list: Vec::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn push(&mut self, reason: impl Display) {
        if self.enabled {
            self.list.push(reason.to_string());
        }
    }

    /// `STATUS: reason; reason`, each reason's own prefix dropped when it repeats the
    /// final status (`304: If-None-Match "abc" matched current ETag; ...`).
    pub(crate) fn line(&self, status: StatusCode) -> String {
        let code = status.as_u16();
        let prefix = format!("{code}: ");
        let mut parts: Vec<&str> = self
            .list
            .iter()
            .map(|r| r.strip_prefix(prefix.as_str()).unwrap_or(r))
            .collect();
        // The reason that decided the status reads best first.
        if let Some(i) = self
            .list
            .iter()
            .position(|r| r.starts_with(prefix.as_str()))
        {
            let decisive = parts.remove(i);
            parts.insert(0, decisive);
        }
        if parts.is_empty() {
            return format!("{code}");
        }
        format!("{code}: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisive_reason_first_without_repeated_status() {
        let mut r = Reasons::new(true);
        r.push("index file index.html");
        r.push("304: If-None-Match \"abc\" matched current ETag");
        assert_eq!(
            r.line(StatusCode::NOT_MODIFIED),
            "304: If-None-Match \"abc\" matched current ETag; index file index.html"
        );
        assert_eq!(Reasons::new(true).line(StatusCode::OK), "200");
        let mut off = Reasons::new(false);
        off.push("x");
        assert!(off.list.is_empty());
    }
}
