//! Content types by file extension, and which types are worth compressing.

use std::cell::RefCell;
use std::collections::HashMap;

use http::HeaderValue;

/// The media type of a file name and whether it is compressible.
#[derive(Clone, Debug)]
pub(crate) struct MediaType {
    pub(crate) value: HeaderValue,
    pub(crate) compressible: bool,
}

/// `Content-Type` for `name`: by extension, text types with `charset=utf-8`, unknown
/// types `application/octet-stream` (RFC 9110 §8.3: the safe default for bytes).
pub(crate) fn media_type(name: &str) -> MediaType {
    let ext = name
        .bytes()
        .rposition(|b| b == b'.')
        .map_or("", |dot| &name[dot + 1..]);
    BY_EXTENSION.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(t) = m.get(ext) {
            return t.clone();
        }
        let essence = mime_guess::from_ext(ext)
            .first_raw()
            .unwrap_or("application/octet-stream");
        let t = render(essence);
        if m.len() >= MAX_EXTENSIONS {
            m.clear();
        }
        m.insert(ext.into(), t.clone());
        t
    })
}

/// Extensions remembered per thread (names come from files that exist, so few).
const MAX_EXTENSIONS: usize = 1024;

thread_local! {
    /// Media types by file extension, each looked up and rendered once per thread
    /// (keyed SipHash: an FTP user who may write names the files, and so the
    /// extensions).
    static BY_EXTENSION: RefCell<HashMap<Box<str>, MediaType>> = RefCell::new(HashMap::new());
}

fn render(essence: &'static str) -> MediaType {
    let texty = is_text(essence);
    // Static values where the text is (a response's copy of one is then no
    // reference count): the type itself, or with its charset for common text types.
    let value = match (texty, with_charset(essence)) {
        (true, Some(v)) => Ok(HeaderValue::from_static(v)),
        (true, None) => HeaderValue::from_str(&format!("{essence}; charset=utf-8")),
        (false, _) => HeaderValue::from_str(essence).map(|_| HeaderValue::from_static(essence)),
    };
    MediaType {
        value: value.unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        compressible: texty || is_compressible_binary(essence),
    }
}

/// The field value of the commonest text types, with their charset.
fn with_charset(essence: &str) -> Option<&'static str> {
    Some(match essence {
        "text/html" => "text/html; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "text/plain" => "text/plain; charset=utf-8",
        "text/javascript" => "text/javascript; charset=utf-8",
        "application/javascript" => "application/javascript; charset=utf-8",
        "application/json" => "application/json; charset=utf-8",
        "image/svg+xml" => "image/svg+xml; charset=utf-8",
        _ => return None,
    })
}

/// Types that are text and get a charset parameter.
fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
                | "application/ld+json"
                | "application/rss+xml"
                | "application/atom+xml"
                | "application/xhtml+xml"
                | "image/svg+xml"
        )
}

/// Binary types that still compress well (already-compressed formats never do).
fn is_compressible_binary(essence: &str) -> bool {
    matches!(
        essence,
        "application/wasm"
            | "image/bmp"
            | "image/x-icon"
            | "image/vnd.microsoft.icon"
            | "font/ttf"
            | "font/otf"
    )
}

/// The compressed-sibling extension for an encoding token.
pub(crate) fn sibling_suffix(coding: wharf_http::negotiate::Coding) -> Option<&'static str> {
    use wharf_http::negotiate::Coding;
    match coding {
        Coding::Brotli => Some(".br"),
        Coding::Zstd => Some(".zst"),
        Coding::Gzip => Some(".gz"),
        Coding::Identity => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        // (name, Content-Type, compressible)
        let table = [
            ("index.html", "text/html; charset=utf-8", true),
            ("a.css", "text/css; charset=utf-8", true),
            ("a.js", "text/javascript; charset=utf-8", true),
            ("a.json", "application/json; charset=utf-8", true),
            ("a.svg", "image/svg+xml; charset=utf-8", true),
            ("a.txt", "text/plain; charset=utf-8", true),
            ("a.png", "image/png", false),
            ("a.woff2", "font/woff2", false),
            ("a.gz", "application/gzip", false),
            ("a.wasm", "application/wasm", true),
            ("noext", "application/octet-stream", false),
            ("a.unknownext", "application/octet-stream", false),
        ];
        for (name, ct, comp) in table {
            let m = media_type(name);
            assert_eq!(m.value, ct, "{name}");
            assert_eq!(m.compressible, comp, "{name}");
        }
    }

    /// Each static value is the type with its charset, as the general case writes
    /// it, and is only for text types.
    #[test]
    fn static_values_are_the_formatted_ones() {
        for essence in [
            "text/html",
            "text/css",
            "text/plain",
            "text/javascript",
            "application/javascript",
            "application/json",
            "image/svg+xml",
        ] {
            assert_eq!(
                with_charset(essence),
                Some(format!("{essence}; charset=utf-8").as_str())
            );
            assert!(is_text(essence), "{essence}");
        }
        assert_eq!(with_charset("image/png"), None);
    }
}
