//! On-the-fly content coding of in-memory files (RFC 9110 §8.4.1). Levels favour a
//! good ratio: results are computed once per file version and kept.

use std::io::Write;

use wharf_http::negotiate::Coding;

/// Brotli quality (0–11).
const BROTLI_QUALITY: u32 = 6;
/// zstd level (1–22).
const ZSTD_LEVEL: i32 = 6;
/// gzip level (0–9).
const GZIP_LEVEL: u32 = 6;

/// `data` coded with `coding`; `None` for identity or on an encoder error.
pub(crate) fn compress(coding: Coding, data: &[u8]) -> Option<Vec<u8>> {
    match coding {
        Coding::Brotli => {
            let mut out = Vec::with_capacity(data.len() / 3);
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY as i32,
                size_hint: data.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).ok()?;
            Some(out)
        }
        Coding::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).ok(),
        Coding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3),
                flate2::Compression::new(GZIP_LEVEL),
            );
            enc.write_all(data).ok()?;
            enc.finish().ok()
        }
        Coding::Identity => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips() {
        let data = "wharf serves files. ".repeat(500).into_bytes();
        let br = compress(Coding::Brotli, &data).unwrap();
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut out).unwrap();
        assert_eq!(out, data);
        let zs = compress(Coding::Zstd, &data).unwrap();
        assert_eq!(zstd::bulk::decompress(&zs, data.len()).unwrap(), data);
        let gz = compress(Coding::Gzip, &data).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        assert!(compress(Coding::Identity, &data).is_none());
    }
}
