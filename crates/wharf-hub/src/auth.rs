//! Who may publish and subscribe where: anonymous rights, and bearer tokens (from
//! `Authorization: Bearer` or, for browsers' EventSource and WebSocket, which cannot
//! set headers, a `token` query parameter), each with channel patterns.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Channel patterns (`*`, `chat.*`, `room-?`) one may publish and subscribe to.
#[derive(Debug, Clone, Default)]
pub struct Rights {
    /// Channels one may publish on.
    pub publish: Vec<String>,
    /// Channels one may subscribe to.
    pub subscribe: Vec<String>,
}

impl Rights {
    /// Every channel, both ways.
    pub fn all() -> Self {
        Rights {
            publish: vec!["*".into()],
            subscribe: vec!["*".into()],
        }
    }
}

/// Rights without a token, and with each token.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// What a request without a token may do.
    pub anonymous: Rights,
    /// Tokens and their rights.
    pub tokens: Vec<(String, Rights)>,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Publish on a channel.
    Publish,
    /// Subscribe to (or poll) a channel.
    Subscribe,
}

/// Why a request may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, and anonymous requests may not (401).
    NoToken,
    /// A token the hub does not know (401).
    BadToken,
    /// A known token without that right (403).
    Forbidden,
}

/// [`Rights`] compiled.
struct Compiled {
    publish: GlobSet,
    subscribe: GlobSet,
}

impl Compiled {
    fn new(r: &Rights) -> Result<Self, globset::Error> {
        let set = |patterns: &[String]| {
            let mut b = GlobSetBuilder::new();
            for p in patterns {
                b.add(Glob::new(p)?);
            }
            b.build()
        };
        Ok(Compiled {
            publish: set(&r.publish)?,
            subscribe: set(&r.subscribe)?,
        })
    }

    fn allows(&self, op: Op, channel: &str) -> bool {
        match op {
            Op::Publish => self.publish.is_match(channel),
            Op::Subscribe => self.subscribe.is_match(channel),
        }
    }
}

/// [`Access`] compiled.
pub(crate) struct Guard {
    anonymous: Compiled,
    tokens: Vec<(Vec<u8>, Compiled)>,
}

impl Guard {
    pub(crate) fn new(a: &Access) -> Result<Self, globset::Error> {
        Ok(Guard {
            anonymous: Compiled::new(&a.anonymous)?,
            tokens: a
                .tokens
                .iter()
                .map(|(t, r)| Ok((t.as_bytes().to_vec(), Compiled::new(r)?)))
                .collect::<Result<_, globset::Error>>()?,
        })
    }

    /// Whether `token` (if any) may do `op` on `channel`. Channels starting with `_`
    /// are the server's own: nobody publishes there.
    pub(crate) fn check(&self, token: Option<&str>, op: Op, channel: &str) -> Result<(), Denied> {
        if op == Op::Publish && channel.starts_with('_') {
            return Err(Denied::Forbidden);
        }
        let rights = match token {
            None if self.anonymous.allows(op, channel) => return Ok(()),
            None => return Err(Denied::NoToken),
            Some(t) => {
                let found = self
                    .tokens
                    .iter()
                    .find(|(known, _)| same(known, t.as_bytes()));
                &found.ok_or(Denied::BadToken)?.1
            }
        };
        if rights.allows(op, channel) || self.anonymous.allows(op, channel) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

/// Compares without stopping at the first difference, so that the time taken does
/// not tell how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_by_token_and_pattern() {
        let access = Access {
            anonymous: Rights {
                publish: vec![],
                subscribe: vec!["public.*".into()],
            },
            tokens: vec![
                ("s3cret".into(), Rights::all()),
                (
                    "reader".into(),
                    Rights {
                        publish: vec![],
                        subscribe: vec!["*".into()],
                    },
                ),
            ],
        };
        let g = Guard::new(&access).unwrap();
        let table = [
            (None, Op::Subscribe, "public.news", Ok(())),
            (None, Op::Subscribe, "private", Err(Denied::NoToken)),
            (None, Op::Publish, "public.news", Err(Denied::NoToken)),
            (Some("s3cret"), Op::Publish, "private", Ok(())),
            (Some("s3cre"), Op::Publish, "private", Err(Denied::BadToken)),
            (Some("reader"), Op::Subscribe, "private", Ok(())),
            (
                Some("reader"),
                Op::Publish,
                "private",
                Err(Denied::Forbidden),
            ),
            (
                Some("s3cret"),
                Op::Publish,
                "_files",
                Err(Denied::Forbidden),
            ),
            (None, Op::Publish, "_files", Err(Denied::Forbidden)),
        ];
        for (token, op, channel, expected) in table {
            assert_eq!(
                g.check(token, op, channel),
                expected,
                "{token:?} {op:?} {channel}"
            );
        }
    }
}
