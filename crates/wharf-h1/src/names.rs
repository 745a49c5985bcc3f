//! Field names parsed once per thread. `HeaderName::from_bytes` lowercases a name
//! and looks it up among the standard ones (about 170 instructions), and copies a
//! name it does not know into an allocation of its own (`sec-fetch-mode`); a
//! browser sends a dozen names, the same on every request. Names seen before are
//! found by their bytes as sent, and cloned.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;

use http::header::InvalidHeaderName;
use http::HeaderName;

/// Names kept per thread; the set starts over when full, so names sent to fill it
/// cost time, not memory.
const KEEP: usize = 256;

/// Longer names are parsed each time.
const LONGEST: usize = 64;

/// Hashed with a key of the process's (SipHash): the names are the client's to
/// choose, and names made to collide would make every lookup slow.
type Names = HashMap<Box<[u8]>, HeaderName, RandomState>;

thread_local! {
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

/// `raw` as a field name, as `HeaderName::from_bytes` makes it.
pub(crate) fn name(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    if raw.len() > LONGEST {
        return HeaderName::from_bytes(raw);
    }
    let known = NAMES.try_with(|names| names.borrow().get(raw).cloned());
    if let Ok(Some(name)) = known {
        return Ok(name);
    }
    let name = HeaderName::from_bytes(raw)?;
    let _ = NAMES.try_with(|names| {
        let mut names = names.borrow_mut();
        if names.len() >= KEEP {
            names.clear();
        }
        names.insert(raw.into(), name.clone());
    });
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same answers as `HeaderName::from_bytes`, the first time and after.
    #[test]
    fn names_are_what_http_makes_of_them() {
        let cases: [&[u8]; 8] = [
            b"accept",
            b"Accept",
            b"ACCEPT-ENCODING",
            b"sec-fetch-mode",
            b"X-Custom",
            b"bad name",
            b"",
            b"caf\xc3\xa9",
        ];
        for _ in 0..2 {
            for raw in cases {
                assert_eq!(
                    name(raw).ok(),
                    HeaderName::from_bytes(raw).ok(),
                    "{:?}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
        let long = vec![b'a'; LONGEST + 1];
        assert_eq!(name(&long).ok(), HeaderName::from_bytes(&long).ok());
    }

    #[test]
    fn the_set_is_bounded() {
        for i in 0..3 * KEEP {
            name(format!("x-{i}").as_bytes()).unwrap();
            assert!(NAMES.with(|n| n.borrow().len()) <= KEEP);
        }
        assert_eq!(name(b"x-1").unwrap(), "x-1");
    }
}
