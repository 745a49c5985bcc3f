//! Properties of the codec on any input, checked by the cargo-fuzz targets in `fuzz/`
//! and, with generated inputs, by this crate's tests. Each function panics when a
//! property breaks.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::frame::{Head, HEAD_LEN};
use crate::hpack::{Decoder, Encoder, Field};
use crate::{Config, Connection, Event, PREFACE};

/// Feeds `data` after the preface, cut where its first byte says, answering every
/// request: the codec never panics, reads no more than whole frames (what it leaves
/// is a frame's beginning), its output is whole frames, and a connection error ends
/// it with GOAWAY.
pub fn frames(data: &[u8]) {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut c = Connection::new(Config {
        max_concurrent_streams: 8,
        stream_window: 1024,
        connection_window: 4096,
        max_header_list_size: 2048,
        connect_protocol: true,
    });
    let mut input = PREFACE.to_vec();
    let mut failed = false;
    for piece in [&data[..cut], &data[cut..]] {
        input.extend_from_slice(piece);
        match c.recv(&input) {
            Ok(read) => {
                input.drain(..read);
                let whole =
                    input.len() >= HEAD_LEN && input.len() >= HEAD_LEN + Head::parse(&input).len;
                assert!(!whole, "a whole frame left unread");
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
        answer(&mut c);
    }
    let out = check_frames(c.output());
    if failed {
        assert_eq!(out.last().map(|h| h.kind), Some(crate::frame::GOAWAY));
        assert!(c.is_done());
    }
}

/// Answers every request with a head, a body larger than the windows, and trailers.
fn answer(c: &mut Connection) {
    while let Some(ev) = c.poll_event() {
        match ev {
            Event::Request { id, .. } => {
                let mut fields = HeaderMap::new();
                fields.insert("content-type", "text/plain".parse().expect("valid"));
                c.send_headers(id, StatusCode::OK, &fields, false);
                let mut body = Bytes::from(vec![b'x'; 70_000]);
                if c.send_data(id, &mut body, false) {
                    c.send_trailers(id, &fields);
                }
            }
            Event::Data { id, data, .. } => c.release(id, data.len()),
            _ => {}
        }
    }
}

/// The frame heads of `out`, which must be whole frames.
fn check_frames(mut out: &[u8]) -> Vec<Head> {
    let mut heads = Vec::new();
    while !out.is_empty() {
        assert!(out.len() >= HEAD_LEN, "a cut frame header");
        let h = Head::parse(out);
        assert!(out.len() >= HEAD_LEN + h.len, "a cut frame");
        out = &out[HEAD_LEN + h.len..];
        heads.push(h);
    }
    heads
}

/// Decodes `data` as two header blocks through one decoder; what decodes must
/// encode and decode back to the same fields, through an encoder and decoder that
/// keep their tables across the blocks.
pub fn hpack(data: &[u8]) {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut d = Decoder::new(4096);
    let mut e = Encoder::default();
    let mut back = Decoder::new(4096);
    for block in [&data[..cut], &data[cut..]] {
        let mut fields = Vec::new();
        if d.decode(&Bytes::copy_from_slice(block), |f| {
            fields.push(f.into_owned())
        })
        .is_err()
        {
            return;
        }
        round_trip(&mut e, &mut back, &fields);
    }
}

/// Encodes `fields` as one block and decodes it: the same fields come back.
pub(crate) fn round_trip(e: &mut Encoder, d: &mut Decoder, fields: &[Field]) {
    let mut block = Vec::new();
    e.begin(&mut block);
    for f in fields {
        e.field(&f.name, &f.value, f.sensitive, &mut block);
    }
    let mut decoded = Vec::new();
    d.decode(&Bytes::from(block), |f| decoded.push(f.into_owned()))
        .expect("the encoder's block decodes");
    assert_eq!(decoded, fields);
}

#[cfg(test)]
mod tests {
    //! The same properties on generated inputs: random bytes, and random sequences
    //! of well-formed frames (which reach further into the codec than random bytes).

    use super::*;
    use crate::frame::*;
    use wharf_h1::arbitrary::Rng;

    #[test]
    fn random_bytes() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let n = rng.below(300);
            let data = rng.bytes(n);
            frames(&data);
            hpack(&data);
        }
    }

    /// Request blocks, trailers, DATA, resets, window updates, settings and pings
    /// on a few streams, in any order.
    #[test]
    fn random_frame_sequences() {
        let mut rng = Rng::new(0x0123_4567_89ab_cdef);
        for _ in 0..3000 {
            let mut data = vec![rng.below(256) as u8];
            for _ in 0..rng.below(12) {
                let id = *rng.pick(&[0u32, 1, 3, 5, 2, 7]);
                let flags = *rng.pick(&[
                    0u8,
                    END_STREAM,
                    END_HEADERS,
                    END_STREAM | END_HEADERS,
                    PADDED,
                    PRIORITY_FLAG,
                ]);
                let payload = match rng.below(8) {
                    0 | 1 => {
                        let mut b = Vec::new();
                        let mut e = Encoder::default();
                        for (n, v) in [
                            (":method", "POST"),
                            (":scheme", "http"),
                            (":path", "/"),
                            ("content-length", "4"),
                        ] {
                            if rng.below(8) != 0 {
                                e.field(n.as_bytes(), v.as_bytes(), false, &mut b);
                            }
                        }
                        put_head(&mut data, b.len(), HEADERS, flags, id);
                        b
                    }
                    2 => {
                        let n = rng.below(6);
                        put_head(&mut data, n, DATA, flags, id);
                        rng.bytes(n)
                    }
                    3 => {
                        put_head(&mut data, 4, *rng.pick(&[RST_STREAM, WINDOW_UPDATE]), 0, id);
                        (rng.below(70_000) as u32).to_be_bytes().to_vec()
                    }
                    4 => {
                        let mut p = vec![0, *rng.pick(&[1u8, 2, 3, 4, 5, 6, 8, 9])];
                        p.extend((rng.below(1 << 17) as u32).to_be_bytes());
                        put_head(&mut data, 6, SETTINGS, 0, 0);
                        p
                    }
                    5 => {
                        put_head(&mut data, 8, PING, 0, 0);
                        vec![0; 8]
                    }
                    6 => {
                        let n = rng.below(8);
                        put_head(
                            &mut data,
                            n,
                            *rng.pick(&[PRIORITY, CONTINUATION, GOAWAY, 0x20]),
                            flags,
                            id,
                        );
                        rng.bytes(n)
                    }
                    _ => {
                        let b = rng.bytes(3);
                        put_head(&mut data, 3, HEADERS, END_HEADERS | END_STREAM, id);
                        b
                    }
                };
                data.extend(payload);
            }
            // The preface's SETTINGS first, mostly.
            if rng.below(8) != 0 {
                let mut settings = Vec::new();
                put_head(&mut settings, 0, SETTINGS, 0, 0);
                data.splice(1..1, settings);
            }
            frames(&data);
        }
    }

    #[test]
    fn random_header_lists_round_trip() {
        let mut rng = Rng::new(0xdead_beef_cafe_f00d);
        let names = [
            "content-type",
            "etag",
            "x-custom",
            "set-cookie",
            "date",
            ":status",
        ];
        let mut e = Encoder::default();
        let mut d = Decoder::new(4096);
        for round in 0..500 {
            if round % 97 == 0 {
                e.set_peer_limit(*rng.pick(&[0usize, 100, 4096, 1 << 20]));
            }
            let fields: Vec<Field> = (0..rng.below(12))
                .map(|_| {
                    let value_len = *rng.pick(&[0usize, 3, 40, 3000]);
                    Field::new(
                        Bytes::from_static(rng.pick(&names).as_bytes()),
                        (0..rng.below(value_len + 1))
                            .map(|_| b"abc /=\"xyz\x7f\xff"[rng.below(12)])
                            .collect::<Vec<u8>>()
                            .into(),
                        rng.below(5) == 0,
                    )
                })
                .collect();
            round_trip(&mut e, &mut d, &fields);
        }
    }
}
