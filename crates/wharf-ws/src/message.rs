//! Frames into messages (RFC 6455 §5.4–§5.6), sans-IO: fragmentation, control frames
//! between fragments, RSV1 only where permessage-deflate allows it (RFC 7692 §6),
//! message size limits, and UTF-8 checked as fragments arrive so that bad text fails
//! at the first bad fragment (§8.1).

use bytes::{Bytes, BytesMut};

use crate::close::{self, Close, Code};
use crate::deflate::Deflate;
use crate::frame::{self, Header};

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; its bytes are UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<String>) -> Self {
        Message::Text(Bytes::from(s.into()))
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        match self {
            Message::Text(b) | Message::Binary(b) => b,
        }
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(b) => std::str::from_utf8(b).ok(),
            Message::Binary(_) => None,
        }
    }
}

/// What one frame amounts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A data message is complete.
    Message(Message),
    /// A ping, to be answered with a pong carrying its payload.
    Ping(Bytes),
    /// A pong (answers to the server's pings, or unsolicited heartbeats).
    Pong,
    /// The peer closes.
    Close(close::Received),
}

/// A message whose last fragment has not arrived.
struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
    /// Bytes of uncompressed text known to be UTF-8 so far.
    checked: usize,
}

/// Assembles one connection's frames into messages.
pub(crate) struct Assembler {
    partial: Option<Partial>,
    max_message: usize,
}

impl Assembler {
    pub(crate) fn new(max_message: usize) -> Self {
        Assembler {
            partial: None,
            max_message,
        }
    }

    /// Takes one frame (its payload unmasked): an event, nothing yet (a fragment), or
    /// the reason to fail the connection.
    pub(crate) fn frame(
        &mut self,
        h: &Header,
        payload: Bytes,
        deflate: Option<&mut Deflate>,
    ) -> Result<Option<Event>, Close> {
        if h.is_control() {
            if h.rsv1 {
                return Err(Close::new(Code::PROTOCOL, "RSV1 set on a control frame"));
            }
            return Ok(Some(match h.opcode {
                frame::PING => Event::Ping(payload),
                frame::PONG => Event::Pong,
                _ => Event::Close(close::parse(payload)?),
            }));
        }
        let first = h.opcode != frame::CONTINUATION;
        match (first, &self.partial) {
            (false, None) => {
                return Err(Close::new(
                    Code::PROTOCOL,
                    "a continuation frame without a message",
                ))
            }
            (true, Some(_)) => {
                return Err(Close::new(
                    Code::PROTOCOL,
                    "a new message before the last one ended",
                ))
            }
            _ => {}
        }
        if h.rsv1 && (!first || deflate.is_none()) {
            return Err(Close::new(
                Code::PROTOCOL,
                "RSV1 set without permessage-deflate or on a continuation frame",
            ));
        }
        let mut part = match self.partial.take() {
            Some(p) => p,
            None if h.fin => {
                // A whole message in one frame: no copy.
                return self.finish(h.opcode == frame::TEXT, h.rsv1, payload, deflate);
            }
            None => Partial {
                text: h.opcode == frame::TEXT,
                compressed: h.rsv1,
                data: BytesMut::new(),
                checked: 0,
            },
        };
        if part.data.len() + payload.len() > self.max_message {
            return Err(Close::new(Code::TOO_BIG, "message over the size limit"));
        }
        part.data.extend_from_slice(&payload);
        if part.text && !part.compressed {
            part.checked = utf8_prefix(&part.data, part.checked, h.fin)?;
        }
        if !h.fin {
            self.partial = Some(part);
            return Ok(None);
        }
        let data = part.data.freeze();
        self.finish(part.text, part.compressed, data, deflate)
    }

    /// A complete message's payload: decompressed and, if text, checked.
    fn finish(
        &self,
        text: bool,
        compressed: bool,
        data: Bytes,
        deflate: Option<&mut Deflate>,
    ) -> Result<Option<Event>, Close> {
        if data.len() > self.max_message {
            return Err(Close::new(Code::TOO_BIG, "message over the size limit"));
        }
        let data = match deflate {
            Some(d) if compressed => d.decompress(&data, self.max_message)?,
            _ => data,
        };
        Ok(Some(Event::Message(if text {
            utf8_prefix(&data, 0, true)?;
            Message::Text(data)
        } else {
            Message::Binary(data)
        })))
    }
}

/// How much of `data` is known UTF-8, checking from `from`: a sequence cut at the end
/// is fine until the message ends (`done`); anything else invalid fails with 1007.
fn utf8_prefix(data: &[u8], from: usize, done: bool) -> Result<usize, Close> {
    match std::str::from_utf8(&data[from..]) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() && !done => Ok(from + e.valid_up_to()),
        Err(_) => Err(Close::new(Code::INVALID_DATA, "text that is not UTF-8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::Agreed;

    fn h(fin: bool, rsv1: bool, opcode: u8) -> Header {
        Header {
            fin,
            rsv1,
            opcode,
            mask: [0; 4],
            len: 0,
        }
    }

    /// A test frame: FIN, RSV1, opcode, payload.
    type TestFrame<'a> = (bool, bool, u8, &'a [u8]);

    fn feed(a: &mut Assembler, frames: &[TestFrame<'_>]) -> Vec<Result<Option<Event>, Close>> {
        frames
            .iter()
            .map(|&(fin, rsv1, op, p)| a.frame(&h(fin, rsv1, op), Bytes::copy_from_slice(p), None))
            .collect()
    }

    fn text(s: &str) -> Result<Option<Event>, Close> {
        Ok(Some(Event::Message(Message::Text(Bytes::copy_from_slice(
            s.as_bytes(),
        )))))
    }

    fn code(r: &Result<Option<Event>, Close>) -> Option<u16> {
        r.as_ref().err().map(|c| c.code.0)
    }

    #[test]
    fn fragments_and_interleaved_control_frames_per_rfc_6455_5_4() {
        let mut a = Assembler::new(1 << 20);
        let out = feed(
            &mut a,
            &[
                (false, false, frame::TEXT, b"Hel"),
                (true, false, frame::PING, b"p"),
                (false, false, frame::CONTINUATION, b"lo"),
                (true, false, frame::CONTINUATION, b"!"),
                (true, false, frame::BINARY, &[0, 1]),
            ],
        );
        assert_eq!(out[0], Ok(None));
        assert_eq!(out[1], Ok(Some(Event::Ping(Bytes::from_static(b"p")))));
        assert_eq!(out[2], Ok(None));
        assert_eq!(out[3], text("Hello!"));
        assert_eq!(
            out[4],
            Ok(Some(Event::Message(Message::Binary(Bytes::from_static(
                &[0, 1]
            )))))
        );
    }

    #[test]
    fn protocol_errors_fail_with_1002() {
        let cases: [&[TestFrame<'_>]; 5] = [
            &[(true, false, frame::CONTINUATION, b"x")],
            &[
                (false, false, frame::TEXT, b"a"),
                (true, false, frame::TEXT, b"b"),
            ],
            &[(true, true, frame::TEXT, b"x")], // RSV1 without the extension
            &[(true, true, frame::PING, b"")],
            &[(true, false, frame::CLOSE, &[3])],
        ];
        for frames in cases {
            let mut a = Assembler::new(1 << 20);
            let out = feed(&mut a, frames);
            assert_eq!(code(out.last().unwrap()), Some(1002), "{frames:?}");
        }
    }

    #[test]
    fn text_must_be_utf8_and_fails_at_the_first_bad_fragment() {
        let mut a = Assembler::new(1 << 20);
        // "κόσμε" cut inside a character: fine until the message ends.
        let s = "κόσμε".as_bytes();
        let out = feed(
            &mut a,
            &[
                (false, false, frame::TEXT, &s[..3]),
                (true, false, frame::CONTINUATION, &s[3..]),
            ],
        );
        assert_eq!(out[1], text("κόσμε"));
        let out = feed(&mut a, &[(false, false, frame::TEXT, &[0xCE, 0xBA, 0xFF])]);
        assert_eq!(code(&out[0]), Some(1007), "invalid before the message ends");
        let mut a = Assembler::new(1 << 20);
        let out = feed(&mut a, &[(true, false, frame::TEXT, &[0xCE])]);
        assert_eq!(code(&out[0]), Some(1007), "cut at the end of the message");
    }

    #[test]
    fn messages_over_the_limit_fail_with_1009() {
        let mut a = Assembler::new(4);
        let out = feed(&mut a, &[(true, false, frame::BINARY, b"12345")]);
        assert_eq!(code(&out[0]), Some(1009));
        let mut a = Assembler::new(4);
        let out = feed(
            &mut a,
            &[
                (false, false, frame::BINARY, b"123"),
                (true, false, frame::CONTINUATION, b"45"),
            ],
        );
        assert_eq!(code(&out[1]), Some(1009));
    }

    #[test]
    fn compressed_messages_are_inflated_on_their_last_fragment() {
        let agreed = Agreed {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
        };
        // The server's own compressor makes what a client's would.
        let wire = Deflate::new(agreed, 6).compress(b"Hello, Hello, Hello");
        let mut d = Deflate::new(agreed, 6);
        let mut a = Assembler::new(1 << 20);
        let (x, y) = wire.split_at(3);
        let first = a.frame(
            &h(false, true, frame::TEXT),
            Bytes::copy_from_slice(x),
            Some(&mut d),
        );
        assert_eq!(first, Ok(None));
        let last = a.frame(
            &h(true, false, frame::CONTINUATION),
            Bytes::copy_from_slice(y),
            Some(&mut d),
        );
        assert_eq!(last, text("Hello, Hello, Hello"));
        let rsv1_later = {
            let mut a = Assembler::new(1 << 20);
            a.frame(&h(false, false, frame::TEXT), Bytes::new(), Some(&mut d))
                .unwrap();
            a.frame(
                &h(true, true, frame::CONTINUATION),
                Bytes::new(),
                Some(&mut d),
            )
        };
        assert_eq!(code(&rsv1_later), Some(1002));
    }
}
