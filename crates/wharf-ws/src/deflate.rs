//! permessage-deflate (RFC 7692): negotiating the extension and compressing messages.
//!
//! The server accepts the first offer it can honour (§5.1) and declines the others:
//! offers with unknown or repeated parameters, bad values, or a
//! `server_max_window_bits` of 8, which zlib's raw DEFLATE cannot produce (it widens
//! an 8-bit window to 9). Decompression always uses a 32 KiB window, which reads
//! whatever window the client chose. Compressors and decompressors are created on
//! first use, so a connection that never sends or receives a compressed message
//! holds none (a zlib compressor with a 32 KiB window costs about 256 KiB).

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::close::{Close, Code};

/// The extension's name.
const NAME: &str = "permessage-deflate";

/// What a message's compressed form ends without (§7.2.1) and the receiver appends
/// back (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// The parameters agreed in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window, 9–15 bits.
    pub server_max_window_bits: u8,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` response value.
    pub fn response(&self) -> String {
        let mut v = String::from(NAME);
        if self.server_no_context_takeover {
            v.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            v.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits != 15 {
            v.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        v
    }
}

/// Picks the first acceptable permessage-deflate offer from the request's
/// `Sec-WebSocket-Extensions` values.
pub(crate) fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Agreed> {
    values
        .into_iter()
        .flat_map(split_list)
        .find_map(|offer| accept(&offer))
}

/// Splits an extension list (RFC 6455 §9.1) into extensions, each a name and its
/// parameters, honouring quoted strings.
fn split_list(value: &str) -> Vec<Vec<(String, Option<String>)>> {
    let mut list = Vec::new();
    let mut ext: Vec<(String, Option<String>)> = Vec::new();
    let mut token = String::new();
    let mut val: Option<String> = None;
    let mut quoted = false;
    let end_param = |ext: &mut Vec<_>, token: &mut String, val: &mut Option<String>| {
        let name = token.trim().to_ascii_lowercase();
        let v = val.take().map(|v| v.trim().to_string());
        if !name.is_empty() || v.is_some() {
            ext.push((name, v));
        }
        token.clear();
    };
    for c in value.chars() {
        match (c, quoted) {
            ('"', _) => quoted = !quoted,
            (_, true) => val.get_or_insert_with(String::new).push(c),
            ('=', false) if val.is_none() => val = Some(String::new()),
            (';', false) => end_param(&mut ext, &mut token, &mut val),
            (',', false) => {
                end_param(&mut ext, &mut token, &mut val);
                list.push(std::mem::take(&mut ext));
            }
            (c, false) => match &mut val {
                Some(v) => v.push(c),
                None => token.push(c),
            },
        }
    }
    end_param(&mut ext, &mut token, &mut val);
    list.push(ext);
    list
}

/// The agreement for one offer, or `None` to decline it (RFC 7692 §7.1).
fn accept(offer: &[(String, Option<String>)]) -> Option<Agreed> {
    let ((name, None), params) = offer.split_first()? else {
        return None;
    };
    if name != NAME {
        return None;
    }
    let mut agreed = Agreed {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
    };
    let mut seen = Vec::new();
    for (param, value) in params {
        if seen.contains(&param) {
            return None; // §7.1: a parameter at most once
        }
        seen.push(param);
        match (param.as_str(), value.as_deref()) {
            ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => match window_bits(v)? {
                8 => return None, // zlib cannot keep to an 8-bit window
                bits => agreed.server_max_window_bits = bits,
            },
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(v)) => {
                window_bits(v)?;
            }
            _ => return None,
        }
    }
    Some(agreed)
}

/// A window size parameter: 8–15 written as 1*DIGIT without leading zero (§7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v.parse::<u8>() {
        Ok(bits @ 8..=15) if !v.starts_with('0') && v.len() <= 2 => Some(bits),
        _ => None,
    }
}

/// One connection's compression state.
pub(crate) struct Deflate {
    agreed: Agreed,
    level: Compression,
    compress: Option<Box<Compress>>,
    decompress: Option<Box<Decompress>>,
}

impl Deflate {
    pub(crate) fn new(agreed: Agreed, level: u32) -> Self {
        Deflate {
            agreed,
            level: Compression::new(level),
            compress: None,
            decompress: None,
        }
    }

    /// A message's compressed payload (§7.2.1).
    pub(crate) fn compress(&mut self, data: &[u8]) -> Bytes {
        let (level, bits) = (self.level, self.agreed.server_max_window_bits);
        let c = self
            .compress
            .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(level, false, bits)));
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start = c.total_in();
        loop {
            let consumed = (c.total_in() - start) as usize;
            if out.capacity() - out.len() < 16 {
                out.reserve(out.capacity().max(64));
            }
            c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
                .expect("compressing into memory cannot fail");
            // A sync flush is complete once it returns with room left over.
            if (c.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.is_empty() {
            // Nothing was pending: an empty stored block, whose tail the peer adds
            // back (RFC 7692 §7.2.3.6).
            out.push(0x00);
        }
        if self.agreed.server_no_context_takeover {
            c.reset();
        }
        Bytes::from(out)
    }

    /// A message's payload from its compressed form (§7.2.2); over `limit` bytes
    /// fails with 1009, corrupt data with 1007.
    pub(crate) fn decompress(&mut self, data: &[u8], limit: usize) -> Result<Bytes, Close> {
        let d = self
            .decompress
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, 15)));
        let mut out = Vec::with_capacity((data.len() * 4).clamp(64, limit.saturating_add(1)));
        let mut ended = false;
        'inputs: for input in [data, &TAIL[..]] {
            let mut pos = 0;
            loop {
                if out.len() == out.capacity() {
                    out.reserve(out.capacity());
                }
                let before = d.total_in();
                let status = d
                    .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
                    .map_err(|_| Close::new(Code::INVALID_DATA, "corrupt compressed data"))?;
                pos += (d.total_in() - before) as usize;
                if out.len() > limit {
                    return Err(Close::new(Code::TOO_BIG, "message over the size limit"));
                }
                if status == Status::StreamEnd {
                    ended = true;
                    break 'inputs;
                }
                if pos == input.len() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        if ended || self.agreed.client_no_context_takeover {
            d.reset(false);
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(snct: bool, cnct: bool, bits: u8) -> Option<Agreed> {
        Some(Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: bits,
        })
    }

    #[test]
    fn offers_are_accepted_or_declined_per_rfc_7692_7_1() {
        let table: [(&str, Option<Agreed>); 14] = [
            ("permessage-deflate", agreed(false, false, 15)),
            (
                "permessage-deflate; client_max_window_bits",
                agreed(false, false, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                agreed(false, false, 15),
            ),
            (
                "permessage-deflate;server_no_context_takeover",
                agreed(true, false, 15),
            ),
            (
                "Permessage-Deflate; Client_No_Context_Takeover",
                agreed(false, true, 15),
            ),
            (
                "permessage-deflate; server_max_window_bits=9",
                agreed(false, false, 9),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"12\"",
                agreed(false, false, 12),
            ),
            ("permessage-deflate; server_max_window_bits=8", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; server_max_window_bits=09", None),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("permessage-deflate; unknown", None),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                None,
            ),
        ];
        for (offer, expected) in table {
            assert_eq!(negotiate([offer]), expected, "{offer}");
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins() {
        let offers = "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, \
                      permessage-deflate; client_no_context_takeover";
        assert_eq!(negotiate([offers]), agreed(false, true, 15));
        assert_eq!(
            negotiate(["foo", "permessage-deflate; server_no_context_takeover"]),
            agreed(true, false, 15)
        );
        assert_eq!(negotiate(["foo; bar=1"]), None);
        assert_eq!(negotiate([""]), None);
    }

    #[test]
    fn responses_name_what_was_agreed() {
        assert_eq!(
            agreed(false, false, 15).unwrap().response(),
            "permessage-deflate"
        );
        assert_eq!(
            agreed(true, true, 9).unwrap().response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9"
        );
    }

    /// A client's compressor, as RFC 7692 §7.2.1 describes it.
    fn client_compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - 4);
        }
        if out.is_empty() {
            out.push(0x00); // as the server does
        }
        out
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        for (snct, cnct, bits) in [(false, false, 15), (true, true, 9), (false, true, 12)] {
            let mut d = Deflate::new(agreed(snct, cnct, bits).unwrap(), 6);
            let mut client = Compress::new(Compression::default(), false);
            let mut client_inflate = Decompress::new_with_window_bits(false, 15);
            for msg in [&b"Hello"[..], b"Hello", b"", &[7u8; 100_000][..]] {
                let wire = client_compress(&mut client, msg);
                assert_eq!(&d.decompress(&wire, 1 << 20).unwrap()[..], msg);
                if cnct {
                    client.reset();
                }
                let back = d.compress(msg);
                let mut input = back.to_vec();
                input.extend_from_slice(&TAIL);
                let mut plain = Vec::with_capacity(msg.len() + 64);
                client_inflate
                    .decompress_vec(&input, &mut plain, FlushDecompress::Sync)
                    .unwrap();
                assert_eq!(plain, msg);
                if snct {
                    client_inflate.reset(false);
                }
            }
        }
    }

    #[test]
    fn the_limit_and_corrupt_data_fail_the_connection() {
        let mut d = Deflate::new(agreed(false, false, 15).unwrap(), 6);
        let mut client = Compress::new(Compression::default(), false);
        let bomb = client_compress(&mut client, &[0u8; 1 << 20]);
        assert!(bomb.len() < 2048);
        assert_eq!(d.decompress(&bomb, 1000).unwrap_err().code, Code::TOO_BIG);
        let mut d = Deflate::new(agreed(false, false, 15).unwrap(), 6);
        assert_eq!(
            d.decompress(&[0xFF, 0xFF, 0xFF], 1000).unwrap_err().code,
            Code::INVALID_DATA
        );
    }
}
