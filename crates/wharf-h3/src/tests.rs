//! Table tests of the frames, settings and QPACK rules, with the RFC sections.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::frame::{put_head, Frames, Item, Settings};
use crate::qpack::{self, DecoderStream};
use crate::{varint, Code};

/// What a stream's frames read to: the items, or the connection error's code.
type Read = Result<Vec<Item>, Code>;

/// A section decoded, or the connection error's code.
type Decoded = Result<Vec<Line>, Code>;

/// A decoded field line: name, value, never-indexed.
type Line = (String, String, bool);

fn frame(kind: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    put_head(kind, payload.len() as u64, &mut f);
    f.extend_from_slice(payload);
    f
}

/// Everything `frames` reads from `data`, fed whole and then a byte at a time (DATA
/// joined): both must agree.
fn read(mut frames: impl FnMut() -> Frames, data: &[u8]) -> Result<Vec<Item>, Code> {
    let whole = read_in(&mut frames(), data, data.len().max(1));
    let bytewise = read_in(&mut frames(), data, 1);
    assert_eq!(whole, bytewise, "{data:x?}");
    whole
}

fn read_in(f: &mut Frames, data: &[u8], size: usize) -> Result<Vec<Item>, Code> {
    let mut items: Vec<Item> = Vec::new();
    for chunk in data.chunks(size) {
        let mut input = Bytes::copy_from_slice(chunk);
        while let Some(item) = f.next(&mut input).map_err(|e| e.code)? {
            match (items.last_mut(), item) {
                (Some(Item::Data(a)), Item::Data(b)) => *a = [&a[..], &b[..]].concat().into(),
                (_, item) => items.push(item),
            }
        }
        assert!(input.is_empty());
    }
    f.end().map_err(|e| e.code)?;
    Ok(items)
}

fn headers(s: &str) -> Item {
    Item::Headers(Bytes::copy_from_slice(s.as_bytes()))
}

fn data(s: &str) -> Item {
    Item::Data(Bytes::copy_from_slice(s.as_bytes()))
}

/// RFC 9114 §4.1: HEADERS, DATA, then trailers; §9: unknown frame types are skipped;
/// §4.1 and §7.2.8 name what is H3_FRAME_UNEXPECTED on a request stream; §7.1: a
/// frame cut by the stream's end is H3_FRAME_ERROR; §4.2.2: an oversized section is
/// skipped and reported.
#[test]
fn request_stream_frames() {
    let grease = frame(0x21, b"xy");
    let table: Vec<(Vec<Vec<u8>>, Read)> = vec![
        (
            vec![
                frame(1, b"abc"),
                frame(0, b"hello"),
                frame(0, b""),
                grease.clone(),
                frame(0, b" world"),
                frame(1, b"t"),
                grease.clone(),
            ],
            Ok(vec![headers("abc"), data("hello world"), headers("t")]),
        ),
        (vec![frame(1, b"")], Ok(vec![headers("")])),
        (vec![grease.clone()], Ok(vec![])),
        (vec![frame(0, b"x")], Err(Code::FrameUnexpected)),
        (
            vec![frame(1, b"a"), frame(1, b"t"), frame(0, b"x")],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![frame(1, b"a"), frame(1, b"t"), frame(1, b"u")],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![frame(1, b"a"), frame(2, b"")],
            Err(Code::FrameUnexpected),
        ),
        (vec![frame(6, b"")], Err(Code::FrameUnexpected)),
        (vec![frame(4, b"")], Err(Code::FrameUnexpected)),
        (vec![frame(7, &[0])], Err(Code::FrameUnexpected)),
        (vec![frame(5, &[0])], Err(Code::FrameUnexpected)),
        (vec![frame(0xd, &[0])], Err(Code::FrameUnexpected)),
        (vec![frame(3, &[0])], Err(Code::FrameUnexpected)),
        (vec![frame(1, b"abc")[..4].to_vec()], Err(Code::FrameError)),
        (vec![vec![0x01]], Err(Code::FrameError)),
        (
            vec![frame(1, b"a"), frame(0, b"abc")[..3].to_vec()],
            Err(Code::FrameError),
        ),
        (
            vec![frame(1, b"0123456789"), frame(0, b"body")],
            Ok(vec![Item::HeadersTooLarge, data("body")]),
        ),
    ];
    for (frames, want) in table {
        let bytes = frames.concat();
        assert_eq!(read(|| Frames::request(8), &bytes), want, "{frames:x?}");
    }
}

/// RFC 9114 §6.2.1: the control stream begins with SETTINGS (else
/// H3_MISSING_SETTINGS) and has it once; §7.2: DATA, HEADERS and PUSH_PROMISE are
/// H3_FRAME_UNEXPECTED there; GOAWAY, MAX_PUSH_ID and CANCEL_PUSH carry one id,
/// anything else in them is H3_FRAME_ERROR.
#[test]
fn control_stream_frames() {
    let settings = Settings::default().frame();
    let table: Vec<(Vec<Vec<u8>>, Read)> = vec![
        (
            vec![
                settings.clone(),
                frame(0x21, b"grease"),
                frame(7, &[4]),
                frame(0xd, &[0x40, 9]),
                frame(3, &[1]),
            ],
            Ok(vec![
                Item::Settings(Settings::default()),
                Item::Goaway(4),
                Item::MaxPushId(9),
                Item::CancelPush(1),
            ]),
        ),
        (vec![frame(7, &[4])], Err(Code::MissingSettings)),
        (vec![frame(0x21, b"")], Err(Code::MissingSettings)),
        (
            vec![settings.clone(), settings.clone()],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![settings.clone(), frame(0, b"")],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![settings.clone(), frame(1, b"")],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![settings.clone(), frame(5, &[0])],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![settings.clone(), frame(2, b"")],
            Err(Code::FrameUnexpected),
        ),
        (
            vec![settings.clone(), frame(7, &[4, 4])],
            Err(Code::FrameError),
        ),
        (vec![settings.clone(), frame(7, &[])], Err(Code::FrameError)),
        (
            vec![settings.clone(), frame(7, &[0x40])],
            Err(Code::FrameError),
        ),
        (
            vec![settings.clone(), frame(7, &[0; 9])],
            Err(Code::FrameError),
        ),
        (
            vec![frame(4, &vec![0x21; 17 * 1024])],
            Err(Code::ExcessiveLoad),
        ),
    ];
    for (frames, want) in table {
        let bytes = frames.concat();
        assert_eq!(read(Frames::control, &bytes), want, "{frames:x?}");
    }
}

/// RFC 9114 §7.2.4.1: HTTP/2's identifiers and repeated ones are H3_SETTINGS_ERROR,
/// unknown ones are ignored; RFC 9220 §3 (as RFC 8441 §3): ENABLE_CONNECT_PROTOCOL
/// is 0 or 1.
#[test]
fn settings() {
    let pairs = |p: &[u64]| {
        let mut out = Vec::new();
        p.iter().for_each(|&v| varint::put(v, &mut out));
        out
    };
    let full = Settings {
        qpack_max_table_capacity: 4096,
        max_field_section_size: Some(16384),
        qpack_blocked_streams: 16,
        enable_connect_protocol: true,
    };
    let table: Vec<(Vec<u8>, Result<Settings, Code>)> = vec![
        (vec![], Ok(Settings::default())),
        (pairs(&[1, 4096, 6, 16384, 7, 16, 8, 1]), Ok(full.clone())),
        (pairs(&[0x21, 5, 0x33, 1]), Ok(Settings::default())),
        (pairs(&[6, 100, 6, 100]), Err(Code::SettingsError)),
        (pairs(&[0x21, 1, 0x21, 2]), Err(Code::SettingsError)),
        (pairs(&[2, 0]), Err(Code::SettingsError)),
        (pairs(&[5, 0]), Err(Code::SettingsError)),
        (pairs(&[0, 0]), Err(Code::SettingsError)),
        (pairs(&[8, 2]), Err(Code::SettingsError)),
        (pairs(&[6]), Err(Code::FrameError)),
    ];
    for (payload, want) in table {
        assert_eq!(
            Settings::parse(&payload).map_err(|e| e.code),
            want,
            "{payload:x?}"
        );
    }
    let mut frame = Bytes::from(full.frame());
    let mut f = Frames::control();
    assert_eq!(f.next(&mut frame), Ok(Some(Item::Settings(full))));
}

fn decoded(block: &[u8]) -> Decoded {
    let mut out = Vec::new();
    qpack::decode(&Bytes::copy_from_slice(block), |f: Cow<'_, _>| {
        let s = |b: &Bytes| String::from_utf8(b.to_vec()).expect("text");
        out.push((s(&f.name), s(&f.value), f.sensitive));
    })
    .map_err(|e| e.code)?;
    Ok(out)
}

fn fields(list: &[(&str, &str, bool)]) -> Vec<Line> {
    list.iter()
        .map(|&(n, v, s)| (n.to_string(), v.to_string(), s))
        .collect()
}

/// RFC 9204: Appendix B.1's section; static references (§4.5.2, §4.5.4), literal
/// names (§4.5.6), Huffman strings (§4.1.2, RFC 7541 C.4.1's); everything that
/// refers to the dynamic table, which wharf's is not allowed to have, and malformed
/// lines are QPACK_DECOMPRESSION_FAILED (§2.2.3).
#[test]
fn qpack_decoding() {
    let www = [
        0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ];
    let table: Vec<(Vec<u8>, Decoded)> = vec![
        (
            [&[0, 0, 0x51, 0x0b][..], b"/index.html"].concat(),
            Ok(fields(&[(":path", "/index.html", false)])),
        ),
        (
            vec![0, 0, 0xd1, 0xd7],
            Ok(fields(&[
                (":method", "GET", false),
                (":scheme", "https", false),
            ])),
        ),
        (
            [&[0, 0, 0x50, 0x8c][..], &www].concat(),
            Ok(fields(&[(":authority", "www.example.com", false)])),
        ),
        (
            [&[0, 0, 0x7f, 84 - 15, 0x03][..], b"abc"].concat(),
            Ok(fields(&[("authorization", "abc", true)])),
        ),
        (
            [
                &[0, 0, 0x23][..],
                b"x-a",
                &[0x01],
                b"b",
                &[0x33],
                b"x-b",
                &[0],
            ]
            .concat(),
            Ok(fields(&[("x-a", "b", false), ("x-b", "", true)])),
        ),
        (
            [&[0, 0, 0x2f, 0x00][..], &[0x81, 0xff]].concat(),
            Err(Code::QpackDecompressionFailed),
        ),
        (vec![0, 0, 0xff, 0x24], Err(Code::QpackDecompressionFailed)), // index 99
        (
            vec![0, 0, 0xff, 0x23],
            Ok(fields(&[("x-frame-options", "sameorigin", false)])),
        ),
        (vec![0x02, 0x00, 0x80], Err(Code::QpackDecompressionFailed)),
        (vec![0, 0, 0x80], Err(Code::QpackDecompressionFailed)),
        (vec![0, 0, 0x10], Err(Code::QpackDecompressionFailed)),
        (vec![0, 0, 0x00, 0x00], Err(Code::QpackDecompressionFailed)),
        (vec![0, 0, 0x41, 0x00], Err(Code::QpackDecompressionFailed)),
        (
            vec![0, 0, 0x51, 0x05, b'a'],
            Err(Code::QpackDecompressionFailed),
        ),
        (vec![0, 0, 0x51], Err(Code::QpackDecompressionFailed)),
        (vec![0], Err(Code::QpackDecompressionFailed)),
        (vec![], Err(Code::QpackDecompressionFailed)),
        (vec![0, 0], Ok(vec![])),
        (vec![0, 0x80], Ok(vec![])), // a Base that nothing uses
    ];
    for (block, want) in table {
        assert_eq!(decoded(&block), want, "{block:x?}");
    }
}

/// What wharf's encoder writes: the static table's whole entries indexed, its names
/// referred to, other names literal; a sensitive value never indexed (N).
#[test]
fn qpack_encoding() {
    let mut map = HeaderMap::new();
    map.insert("content-type", HeaderValue::from_static("text/plain"));
    map.insert("etag", HeaderValue::from_static("\"a\""));
    map.insert("x-custom", HeaderValue::from_static("1"));
    let mut secret = HeaderValue::from_static("text/plain");
    secret.set_sensitive(true);
    map.insert("accept", secret);
    let mut out = Vec::new();
    qpack::encode(Some(StatusCode::OK), &map, &[], &mut out);
    let want = [
        &[0, 0, 0xd9, 0xc0 | 53][..],
        &[0x57, 3],
        b"\"a\"",
        &[0x27, 1],
        b"x-custom",
        &[1, b'1'],
        &[0x7f, 29 - 15, 10],
        b"text/plain",
    ]
    .concat();
    assert_eq!(out, want);
    assert_eq!(
        decoded(&out).expect("decodes"),
        fields(&[
            (":status", "200", false),
            ("content-type", "text/plain", false),
            ("etag", "\"a\"", false),
            ("x-custom", "1", false),
            ("accept", "text/plain", true),
        ])
    );
    for (status, want) in [
        (103, vec![0xd8]),
        (425, vec![0xff, 70 - 63]),
        (299, vec![0x5f, 24 - 15, 3]),
    ] {
        let mut out = Vec::new();
        qpack::encode(
            Some(StatusCode::from_u16(status).expect("valid")),
            &HeaderMap::new(),
            &[],
            &mut out,
        );
        assert!(out[2..].starts_with(&want), "{status}: {out:x?}");
        assert_eq!(decoded(&out).expect("decodes")[0].1, status.to_string());
    }
    // The fields a transport adds come after the service's, found in the table too.
    let mut out = Vec::new();
    let added: [(&[u8], &[u8]); 2] = [(b"date", b"x"), (b"content-length", b"0")];
    qpack::encode(Some(StatusCode::OK), &map, &added, &mut out);
    let lines = decoded(&out).expect("decodes");
    assert_eq!(
        lines[5..],
        fields(&[("date", "x", false), ("content-length", "0", false)])
    );
    assert!(out.ends_with(&[0x56, 1, b'x', 0xc4]), "{out:x?}");
}

/// RFC 9204 §4.3, §4.4: against a table of capacity 0, the encoder stream may only
/// set the capacity to 0, and the decoder stream may only cancel streams.
#[test]
fn qpack_instruction_streams() {
    assert!(qpack::check_encoder_stream(&[0x20, 0x20]).is_ok());
    for bad in [
        &[0x21][..],
        &[0x3f, 0x01],
        &[0xc0, 0x01, b'x'],
        &[0x40],
        &[0x00],
    ] {
        let e = qpack::check_encoder_stream(bad).expect_err("refused");
        assert_eq!(e.code, Code::QpackEncoderStreamError, "{bad:x?}");
    }
    let table: &[(&[&[u8]], bool)] = &[
        (&[&[0x41, 0x7f], &[0x80], &[0x01], &[0x40]], true),
        (&[&[0x81]], false),
        (&[&[0x41, 0x01]], false),
        (&[&[0x00]], false),
        (&[&[0x7f], &[0xff; 7], &[0x01]], true),
        (&[&[0x7f], &[0xff; 8], &[0x01]], false),
    ];
    for (chunks, ok) in table {
        let mut d = DecoderStream::default();
        let got = chunks.iter().try_for_each(|c| d.check(c));
        assert_eq!(got.is_ok(), *ok, "{chunks:x?}");
        if let Err(e) = got {
            assert_eq!(e.code, Code::QpackDecoderStreamError);
        }
    }
}

/// A HEADERS frame's length in front of its section, however long, and the frame
/// read back whole.
#[test]
fn headers_frames() {
    for size in [0, 10, 0x3fff - 20, 0x3fff, 70_000] {
        let mut map = HeaderMap::new();
        if size > 0 {
            map.insert(
                "x-a",
                HeaderValue::from_bytes(&vec![b'a'; size]).expect("valid"),
            );
        }
        let mut out = vec![9];
        crate::headers_frame(Some(StatusCode::OK), &map, &[], &mut out);
        let mut input = Bytes::copy_from_slice(&out[1..]);
        let mut f = Frames::request(100_000);
        let Ok(Some(Item::Headers(block))) = f.next(&mut input) else {
            panic!("{size}: not one HEADERS frame");
        };
        assert!(input.is_empty(), "{size}");
        let fields = decoded(&block).expect("decodes");
        assert_eq!(fields.len(), 1 + usize::from(size > 0), "{size}");
    }
}

/// A connection's decoder hands out the same bytes for a Huffman string it decoded
/// lately, and decodes right whatever it remembers.
#[test]
fn a_decoder_remembers_huffman_strings() {
    let www = [
        0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ];
    let block = Bytes::from([&[0, 0, 0x50, 0x8c][..], &www].concat());
    let mut d = qpack::Decoder::default();
    let mut values = Vec::new();
    for _ in 0..2 {
        d.decode(&block, |f| values.push(f.value.clone()))
            .expect("decodes");
    }
    assert_eq!(values[0], "www.example.com");
    assert_eq!(values[0].as_ptr(), values[1].as_ptr(), "the same bytes");
    // More strings than it remembers, in turn: each decoded right.
    let mut words: Vec<(Vec<u8>, String)> = Vec::new();
    for i in 0..7 {
        let text = format!("/path/{i}");
        let mut coded = Vec::new();
        wharf_h2::hpack::Encoder::default().field(b":path", text.as_bytes(), false, &mut coded);
        words.push((coded, text));
    }
    for round in 0..3 {
        for (coded, text) in &words {
            // HPACK's literal, name index 4 (`:path`): its string is QPACK's too.
            let value = &coded[1..];
            let section = Bytes::from([&[0, 0, 0x51][..], value].concat());
            let mut got = Vec::new();
            d.decode(&section, |f| got.push(f.value.clone()))
                .expect("decodes");
            assert_eq!(got, [text.as_str()], "round {round}");
        }
    }
}

/// RFC 9114 §4.2: a head's connection-specific fields are left out as it is
/// encoded, the rest kept in order.
#[test]
fn connection_specific_fields_are_left_out() {
    let table: &[(&[&str], &[&str])] = &[
        (&["etag", "date"], &["etag", "date"]),
        (&["connection", "etag"], &["etag"]),
        (&["keep-alive", "transfer-encoding", "upgrade"], &[]),
        (&["proxy-connection", "vary"], &["vary"]),
        (&[], &[]),
    ];
    for (names, kept) in table {
        let mut map = HeaderMap::new();
        for n in *names {
            map.insert(
                http::HeaderName::from_static(n),
                HeaderValue::from_static("x"),
            );
        }
        let mut out = Vec::new();
        qpack::encode(None, &map, &[], &mut out);
        let left: Vec<String> = decoded(&out)
            .expect("decodes")
            .into_iter()
            .map(|l| l.0)
            .collect();
        assert_eq!(left, *kept, "{names:?}");
    }
}
