//! Sticky sessions: a cookie naming the member that served a client, signed so that a
//! client cannot steer itself to a member of its choosing.
//!
//! The value is `ID.MAC`: ID is a hash of the member's URL (the same on every wharf
//! node and across restarts), MAC the first 16 bytes of HMAC-SHA-256 (ring) over ID
//! with the group's key, both in hex. A cookie whose MAC does not verify, or that
//! names no member, is ignored: the request is balanced as a new session and gets a
//! fresh cookie.

use std::sync::Arc;

use http::HeaderMap;
use http::HeaderValue;
use ring::hmac;

use crate::group::{cookie, Member};

/// The cookie and the key that signs it.
#[derive(Debug)]
pub(crate) struct Sticky {
    name: String,
    key: hmac::Key,
}

/// Bytes of the MAC kept in the cookie.
const MAC_LEN: usize = 16;

impl Sticky {
    pub(crate) fn new(name: &str, key: &[u8]) -> Sticky {
        Sticky {
            name: name.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The member a valid cookie of the request names.
    pub(crate) fn member(&self, headers: &HeaderMap, members: &[Arc<Member>]) -> Option<usize> {
        let value = cookie(headers, &self.name)?;
        let (id, mac) = value.split_once('.')?;
        let mac = hex_decode(mac)?;
        if mac.len() != MAC_LEN {
            return None;
        }
        let full = hmac::sign(&self.key, id.as_bytes());
        // Compared in constant time: the tag's first MAC_LEN bytes.
        if !constant_time_eq(&full.as_ref()[..MAC_LEN], &mac) {
            return None;
        }
        let id = u64::from_str_radix(id, 16).ok()?;
        members.iter().position(|m| m.id == id)
    }

    /// The `Set-Cookie` value that pins a client to `member`.
    pub(crate) fn set_cookie(&self, member: &Member) -> Option<HeaderValue> {
        let id = format!("{:016x}", member.id);
        let mac = hmac::sign(&self.key, id.as_bytes());
        let value = format!(
            "{}={id}.{}; Path=/; HttpOnly; SameSite=Lax",
            self.name,
            hex(&mac.as_ref()[..MAC_LEN])
        );
        HeaderValue::from_str(&value).ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{Balance, Group, GroupConfig};
    use crate::pool::PoolLimits;
    use crate::upstream::Upstream;

    fn group() -> Group {
        let members = ["http://10.0.0.1", "http://10.0.0.2"]
            .iter()
            .map(|u| Upstream::parse(u).unwrap())
            .collect();
        let mut cfg = GroupConfig::new("g", members);
        cfg.balance = Balance::Sticky {
            cookie: "wharf_up".into(),
        };
        Group::new(cfg, PoolLimits::default(), b"secret", None)
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_signed_cookie_names_its_member_and_a_tampered_one_nothing() {
        let g = group();
        let members = g.members();
        let s = g.sticky.as_ref().unwrap();
        let set = s.set_cookie(&members[1]).unwrap();
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        assert_eq!(s.member(&with_cookie(&pair), &members), Some(1));
        let (name_id, mac) = pair.split_once('.').unwrap();
        let other = s.set_cookie(&members[0]).unwrap();
        let other_id = other
            .to_str()
            .unwrap()
            .split(['=', '.'])
            .nth(1)
            .unwrap()
            .to_owned();
        let forged = format!("wharf_up={other_id}.{mac}");
        assert_eq!(
            s.member(&with_cookie(&forged), &members),
            None,
            "another member's id"
        );
        let last = if mac.ends_with('0') { '1' } else { '0' };
        let flipped = format!("{name_id}.{}{last}", &mac[..mac.len() - 1]);
        assert_eq!(
            s.member(&with_cookie(&flipped), &members),
            None,
            "a changed MAC"
        );
        assert_eq!(s.member(&with_cookie("wharf_up=zz.zz"), &members), None);
        assert_eq!(s.member(&HeaderMap::new(), &members), None);
        let other_key = Sticky::new("wharf_up", b"other");
        assert_eq!(
            other_key.member(&with_cookie(&pair), &members),
            None,
            "another key"
        );
    }
}
