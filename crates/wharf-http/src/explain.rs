//! The one-line reason a response is what it is.
//!
//! Services attach an [`Explain`] to a response's extensions; the transport's access
//! log writes it, and a site with `explain = true` also sends it as the
//! `Wharf-Explain` header. It is built from the `Display` of the decisions in this
//! crate, so it names header values and validators, never file-system paths.

/// The name of the response header that carries the explanation, when enabled.
pub const HEADER: &str = "wharf-explain";

/// Why a response is what it is, in one line (e.g.
/// `304: If-None-Match "abc" matched current ETag`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explain(pub String);

impl Explain {
    /// Appends one more reason, separated by `; `.
    pub fn push(&mut self, reason: impl std::fmt::Display) {
        use std::fmt::Write as _;
        if !self.0.is_empty() {
            self.0.push_str("; ");
        }
        let _ = write!(self.0, "{reason}");
    }
}
