//! Close codes and close frames (RFC 6455 §5.5.1, §7.4).

use bytes::Bytes;

/// A close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub u16);

impl Code {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: Code = Code(1000);
    /// 1001: the server goes away (shutdown) or the peer went silent.
    pub const GOING_AWAY: Code = Code(1001);
    /// 1002: a protocol error.
    pub const PROTOCOL: Code = Code(1002);
    /// 1007: data inconsistent with the message type (text that is not UTF-8).
    pub const INVALID_DATA: Code = Code(1007);
    /// 1008: a policy violation (a client that does not read what it is sent).
    pub const POLICY: Code = Code(1008);
    /// 1009: a frame or message over the size limit.
    pub const TOO_BIG: Code = Code(1009);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL: Code = Code(1011);

    /// Whether a peer may send this code in a close frame (§7.4.1, §7.4.2, and the
    /// IANA registry's 1012–1014): 1004–1006 and 1015 are reserved for local use,
    /// other values below 3000 are unassigned, 3000–4999 belong to applications.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Why a connection closes: a code and a short reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The status code.
    pub code: Code,
    /// The reason (sent in the close frame, at most 123 bytes).
    pub reason: &'static str,
}

impl Close {
    /// A close with this code and reason.
    pub const fn new(code: Code, reason: &'static str) -> Self {
        Close { code, reason }
    }
}

/// A close frame the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    /// No status code.
    Empty,
    /// A valid code and reason; the reply echoes the code (§5.5.1).
    Code(Code, Bytes),
}

/// Checks a received close payload: one byte, a code no peer may send, or a reason
/// that is not UTF-8 fail the connection (§5.5.1, §7.4).
pub(crate) fn parse(payload: Bytes) -> Result<Received, Close> {
    match payload.len() {
        0 => Ok(Received::Empty),
        1 => Err(Close::new(Code::PROTOCOL, "a close payload of one byte")),
        _ => {
            let code = Code(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(Close::new(Code::PROTOCOL, "a close code no peer may send"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err(Close::new(
                    Code::INVALID_DATA,
                    "a close reason that is not UTF-8",
                ));
            }
            Ok(Received::Code(code, payload.slice(2..)))
        }
    }
}

/// The payload of a close frame with this code and reason (cut to fit 125 bytes at a
/// character boundary).
pub(crate) fn payload(code: Code, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = Vec::with_capacity(2 + end);
    v.extend_from_slice(&code.0.to_be_bytes());
    v.extend_from_slice(&reason.as_bytes()[..end]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_per_rfc_6455_7_4() {
        let ok = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ];
        let bad = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in ok {
            assert!(Code(c).is_sendable(), "{c}");
        }
        for c in bad {
            assert!(!Code(c).is_sendable(), "{c}");
        }
    }

    #[test]
    fn close_payloads_are_checked() {
        let p = |b: &[u8]| parse(Bytes::copy_from_slice(b));
        assert_eq!(p(b""), Ok(Received::Empty));
        assert_eq!(p(&[0x03]).unwrap_err().code, Code::PROTOCOL);
        assert_eq!(
            p(&[0x03, 0xE8, b'o', b'k']),
            Ok(Received::Code(Code::NORMAL, Bytes::from_static(b"ok")))
        );
        assert_eq!(p(&[0x03, 0xED]).unwrap_err().code, Code::PROTOCOL); // 1005
        assert_eq!(p(&[0x03, 0xE8, 0xFF]).unwrap_err().code, Code::INVALID_DATA);
    }

    #[test]
    fn long_reasons_are_cut_at_a_character() {
        let reason = "é".repeat(100);
        let p = payload(Code::NORMAL, &reason);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}
