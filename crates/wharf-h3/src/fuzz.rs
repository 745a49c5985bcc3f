//! Properties of the HTTP/3 layer on any input, checked by the cargo-fuzz targets in
//! `fuzz/` and, with generated inputs, by this crate's tests. Each function panics
//! when a property breaks.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::frame::{Frames, Item};
use crate::qpack;

/// Feeds `data` as a request stream's and as a control stream's bytes, whole and
/// cut where its first byte says: both readings find the same items (DATA joined)
/// or the same error, and nothing panics.
pub fn frames(data: &[u8]) {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    for make in [|| Frames::request(64), Frames::control as fn() -> Frames] {
        let whole = items(make(), &[data]);
        let split = items(make(), &[&data[..cut], &data[cut..]]);
        assert_eq!(whole, split, "{data:x?} cut at {cut}");
    }
}

fn items(mut f: Frames, chunks: &[&[u8]]) -> Result<Vec<Item>, crate::Code> {
    let mut out: Vec<Item> = Vec::new();
    for chunk in chunks {
        let mut input = Bytes::copy_from_slice(chunk);
        while let Some(item) = f.next(&mut input).map_err(|e| e.code)? {
            match (out.last_mut(), item) {
                (Some(Item::Data(a)), Item::Data(b)) => *a = [&a[..], &b[..]].concat().into(),
                (_, item) => out.push(item),
            }
        }
        assert!(input.is_empty(), "input left unread");
    }
    f.end().map_err(|e| e.code)?;
    Ok(out)
}

/// Decodes `data` as a QPACK header section: it decodes or fails cleanly; what
/// decodes, encoded again (the fields `http` takes, but connection-specific ones,
/// which the encoder leaves out), decodes back to the same.
pub fn qpack(data: &[u8]) {
    let mut map = HeaderMap::new();
    let decoded = qpack::decode(&Bytes::copy_from_slice(data), |f: Cow<'_, _>| {
        let name = HeaderName::from_bytes(&f.name).ok();
        let value = HeaderValue::from_bytes(&f.value).ok();
        if let (Some(name), Some(mut value)) = (name, value) {
            if !wharf_http::fields::is_connection_specific(name.as_str()) {
                value.set_sensitive(f.sensitive);
                map.append(name, value);
            }
        }
    });
    let mut stream = qpack::DecoderStream::default();
    let _ = stream.check(data);
    let _ = qpack::check_encoder_stream(data);
    if decoded.is_err() {
        return;
    }
    let mut block = Vec::new();
    qpack::encode(None, &map, &[], &mut block);
    let mut again = HeaderMap::new();
    qpack::decode(&Bytes::from(block), |f| {
        let name = HeaderName::from_bytes(&f.name).expect("a name encoded");
        let mut value = HeaderValue::from_bytes(&f.value).expect("a value encoded");
        value.set_sensitive(f.sensitive);
        again.append(name, value);
    })
    .expect("what was encoded decodes");
    assert_eq!(map, again);
    let sensitive = |m: &HeaderMap| m.values().map(|v| v.is_sensitive()).collect::<Vec<_>>();
    assert_eq!(sensitive(&map), sensitive(&again));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::put_head;
    use wharf_h1::arbitrary::Rng;

    #[test]
    fn random_bytes() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let n = rng.below(200);
            let data = rng.bytes(n);
            frames(&data);
            qpack(&data);
            // As a header section: a valid prefix, then random lines.
            qpack(&[&[0, 0][..], &data].concat());
        }
    }

    /// Well-formed frame heads of every kind, with random payloads, in random order.
    #[test]
    fn random_frame_sequences() {
        let mut rng = Rng::new(0x0123_4567_89ab_cdef);
        for _ in 0..3000 {
            let mut data = vec![rng.below(256) as u8];
            for _ in 0..rng.below(8) {
                let kind = [0u64, 1, 3, 4, 7, 0xd, 0x21, 0x2, 0x1f * 7 + 0x21][rng.below(9)];
                let len = rng.below(80);
                put_head(kind, len as u64, &mut data);
                data.extend(rng.bytes(len));
            }
            frames(&data);
        }
    }
}
