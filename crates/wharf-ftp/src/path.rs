//! FTP path names: the client's current directory joined with a command's argument,
//! checked by the very function that checks HTTP request paths.
//!
//! FTP clients say `..` (`CDUP`, `CWD ..`, `RETR ../a`), which an HTTP client never
//! sends, so dot-segments are resolved here first, lexically and clamped at the user's
//! root (as a chroot would: `/..` is `/`). The names left are checked by
//! [`wharf_http::path::from_names`], the rules of HTTP's `sanitize` for names that are
//! not percent-encoded, so both protocols refuse exactly the same names (NUL, control
//! characters, backslashes). Opening then goes through
//! [`wharf_files::root::Root`], whose `openat2(RESOLVE_BENEATH)` keeps symbolic links
//! inside the root as well.

use wharf_http::path::{from_names, PathError, SafePath};

/// The root, `/`.
pub(crate) fn root() -> SafePath {
    from_names([]).expect("no names: the root")
}

/// `arg` resolved against `cwd` (absolute if it starts with `/`).
pub(crate) fn resolve(cwd: &SafePath, arg: &str) -> Result<SafePath, PathError> {
    let mut segments: Vec<&str> = if arg.starts_with('/') {
        Vec::new()
    } else {
        cwd.segments().collect()
    };
    for piece in arg.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    from_names(segments)
}

/// The path as the client sees it: `/`, `/a/b`.
pub(crate) fn display(p: &SafePath) -> String {
    if p.is_root() {
        return "/".to_owned();
    }
    p.decoded().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_is_lexical_and_clamped_at_the_root() {
        let cwd = resolve(&root(), "/pub/docs").unwrap();
        let table = [
            ("a.txt", "/pub/docs/a.txt"),
            ("/a.txt", "/a.txt"),
            ("..", "/pub"),
            ("../..", "/"),
            ("../../../../etc/passwd", "/etc/passwd"),
            ("/../x", "/x"),
            ("./b//c/", "/pub/docs/b/c"),
            ("100%.txt", "/pub/docs/100%.txt"),
            ("%2e%2e", "/pub/docs/%2e%2e"),
        ];
        for (arg, want) in table {
            assert_eq!(display(&resolve(&cwd, arg).unwrap()), want, "{arg}");
        }
    }

    #[test]
    fn the_http_rules_refuse_the_same_names() {
        let table = [
            ("a\\b", PathError::Backslash),
            ("a\0b", PathError::Nul),
            ("a\x07b", PathError::ControlChar),
            ("a\u{85}b", PathError::ControlChar),
        ];
        for (arg, want) in table {
            assert_eq!(resolve(&root(), arg).unwrap_err(), want, "{arg:?}");
        }
    }

    #[test]
    fn split_gives_parent_and_name() {
        let p = resolve(&root(), "/a/b%c/d").unwrap();
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((display(&parent).as_str(), name), ("/a/b%c", "d"));
        assert!(root().split_last().is_none());
    }
}
