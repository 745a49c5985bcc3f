//! Preload hints derived from HTML: what a page will ask for next.
//!
//! When wharf serves an HTML page it already has the bytes; the stylesheets, scripts,
//! fonts and preloads the page references are known before the browser has parsed a
//! byte. They become `Link: <…>; rel=preload; as=…` fields, sent as `103 Early Hints`
//! ahead of the response (RFC 8297) and on the response itself. A page is scanned once
//! per file version (the result lives in its cache entry).
//!
//! The scanner is deliberately small: it reads `<link>` and `<script>` tags, skips
//! comments and the contents of `<script>`, `<style>` and `<template>`, and keeps only
//! same-origin references (no scheme, no `//host`), at most [`MAX_HINTS`] of them.
//! Relative references stay relative: a `Link` target is resolved against the request
//! URI (RFC 8288 §3.1), as the page's own are.

use http::HeaderValue;

/// Hints per page: enough for a page's critical resources, small enough for a 103.
pub(crate) const MAX_HINTS: usize = 16;

/// The longest reference kept.
const MAX_TARGET: usize = 1024;

/// The `Link` values for the resources `html` references.
pub(crate) fn derive(html: &[u8]) -> Vec<HeaderValue> {
    let mut out: Vec<HeaderValue> = Vec::new();
    let mut i = 0;
    while out.len() < MAX_HINTS {
        let Some(lt) = html[i..].iter().position(|&b| b == b'<') else {
            break;
        };
        i += lt;
        let rest = &html[i..];
        if rest.starts_with(b"<!--") {
            i += find(rest, b"-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        let name_len = rest[1..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(rest.len() - 1);
        let name = rest[1..1 + name_len].to_ascii_lowercase();
        let Some(end) = tag_end(&rest[1 + name_len..]) else {
            break;
        };
        let attrs = Attrs::parse(&rest[1 + name_len..1 + name_len + end]);
        i += 1 + name_len + end + 1;
        let hint = match name.as_slice() {
            b"link" => link_hint(&attrs),
            b"script" => script_hint(&attrs),
            _ => None,
        };
        if let Some(h) = hint.and_then(|h| HeaderValue::from_str(&h).ok()) {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        // Raw-text elements: their contents are not markup.
        if let b"script" | b"style" | b"template" = name.as_slice() {
            let close = [b"</".as_slice(), &name].concat();
            i += find_ci(&html[i..], &close).unwrap_or(html.len() - i);
        }
    }
    out
}

/// The `Link` value for a `<link>` tag, if it names something to fetch early.
fn link_hint(a: &Attrs) -> Option<String> {
    let href = same_origin(a.get("href")?)?;
    let rel = a.get("rel")?.to_ascii_lowercase();
    let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
    if rels.contains(&"stylesheet") {
        return Some(format!("<{href}>; rel=preload; as=style"));
    }
    if rels.contains(&"modulepreload") {
        return Some(format!("<{href}>; rel=modulepreload"));
    }
    if rels.contains(&"preload") {
        let dest = a.get("as").map(|d| d.to_ascii_lowercase())?;
        if !dest.bytes().all(|b| b.is_ascii_lowercase()) || dest.is_empty() {
            return None;
        }
        // Fonts are always fetched in CORS mode; the hint must say so to be used.
        let cors = a.get("crossorigin").is_some() || dest == "font";
        let mut v = format!("<{href}>; rel=preload; as={dest}");
        if cors {
            v.push_str("; crossorigin");
        }
        return Some(v);
    }
    None
}

/// The `Link` value for a `<script src>`.
fn script_hint(a: &Attrs) -> Option<String> {
    let src = same_origin(a.get("src")?)?;
    if a.get("type")
        .is_some_and(|t| t.eq_ignore_ascii_case("module"))
    {
        Some(format!("<{src}>; rel=modulepreload"))
    } else {
        Some(format!("<{src}>; rel=preload; as=script"))
    }
}

/// `target` if it stays on this origin and fits in a `Link` value.
fn same_origin(target: &str) -> Option<&str> {
    let t = target.trim();
    let scheme = t
        .find([':', '/', '?', '#'])
        .is_some_and(|i| t.as_bytes()[i] == b':');
    let ok = !t.is_empty()
        && t.len() <= MAX_TARGET
        && !scheme
        && !t.starts_with("//")
        && !t.starts_with('#')
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"\\`".contains(&b));
    ok.then_some(t)
}

/// Where a tag's attributes end (the index of its `>`), honouring quotes.
fn tag_end(s: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in s.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// A tag's attributes, names lowercased, values with `&amp;` decoded.
struct Attrs(Vec<(String, Option<String>)>);

impl Attrs {
    fn parse(s: &[u8]) -> Attrs {
        let s = String::from_utf8_lossy(s);
        let mut out = Vec::new();
        let mut chars = s.char_indices().peekable();
        while let Some(&(start, c)) = chars.peek() {
            if c.is_whitespace() || c == '/' {
                chars.next();
                continue;
            }
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c.is_whitespace() || c == '=' || c == '/' {
                    break;
                }
                end = i + c.len_utf8();
                chars.next();
            }
            let name = s[start..end].to_ascii_lowercase();
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                chars.next();
            }
            let mut value = None;
            if chars.peek().is_some_and(|&(_, c)| c == '=') {
                chars.next();
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
                let mut v = String::new();
                match chars.peek().map(|&(_, c)| c) {
                    Some(q @ ('"' | '\'')) => {
                        chars.next();
                        for (_, c) in chars.by_ref() {
                            if c == q {
                                break;
                            }
                            v.push(c);
                        }
                    }
                    _ => {
                        while let Some(&(_, c)) = chars.peek() {
                            if c.is_whitespace() {
                                break;
                            }
                            v.push(c);
                            chars.next();
                        }
                    }
                }
                value = Some(v.replace("&amp;", "&"));
            }
            if name.is_empty() {
                chars.next();
                continue;
            }
            out.push((name, value));
        }
        Attrs(out)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(html: &str) -> Vec<String> {
        derive(html.as_bytes())
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn what_a_page_references() {
        // (page, hints) — RFC 8297 early hints, RFC 8288 Link, HTML preload destinations
        let table: &[(&str, &[&str])] = &[
            (
                r#"<link rel="stylesheet" href="/style.css"><script src="/app.js"></script>"#,
                &[
                    "</style.css>; rel=preload; as=style",
                    "</app.js>; rel=preload; as=script",
                ],
            ),
            (
                r#"<LINK REL=StyleSheet HREF=css/site.css>"#,
                &["<css/site.css>; rel=preload; as=style"],
            ),
            (
                r#"<link rel=preload href="/f.woff2" as="font" type="font/woff2">"#,
                &["</f.woff2>; rel=preload; as=font; crossorigin"],
            ),
            (
                r#"<link rel="preload" href="/hero.avif" as="image">"#,
                &["</hero.avif>; rel=preload; as=image"],
            ),
            (
                r#"<link rel="preload" href="/data.json" as="fetch" crossorigin>"#,
                &["</data.json>; rel=preload; as=fetch; crossorigin"],
            ),
            (r#"<link rel="preload" href="/x">"#, &[]), // preload needs `as`
            (
                r#"<script type="module" src="/main.mjs"></script><link rel=modulepreload href=/dep.mjs>"#,
                &[
                    "</main.mjs>; rel=modulepreload",
                    "</dep.mjs>; rel=modulepreload",
                ],
            ),
            (
                r#"<link rel="icon" href="/favicon.ico"><a href="/next.html">"#,
                &[],
            ),
            // Other origins and schemes are not hinted.
            (
                r#"<script src="https://cdn.test/x.js"></script><script src="//cdn.test/y.js"></script><link rel=stylesheet href="data:text/css,a">"#,
                &[],
            ),
            // Comments and script contents are not markup.
            (
                r#"<!-- <link rel=stylesheet href=/old.css> --><script>var s = '<script src="/fake.js">';</script><script src="/real.js"></script>"#,
                &["</real.js>; rel=preload; as=script"],
            ),
            (
                r#"<style>a{}</style><link rel="stylesheet" href="/a.css?v=1&amp;x=2">"#,
                &["</a.css?v=1&x=2>; rel=preload; as=style"],
            ),
            // Quotes may hold '>'; references with characters a Link cannot carry are skipped.
            (
                r#"<link title="a>b" rel="stylesheet" href="/q.css"><script src="/a b.js"></script>"#,
                &["</q.css>; rel=preload; as=style"],
            ),
            // Duplicates once.
            (
                r#"<script src="/a.js"></script><script src="/a.js"></script>"#,
                &["</a.js>; rel=preload; as=script"],
            ),
            ("<link rel=stylesheet href=/unterminated.css", &[]),
            ("", &[]),
        ];
        for (page, want) in table {
            assert_eq!(hints(page), *want, "{page}");
        }
    }

    #[test]
    fn at_most_max_hints() {
        let page: String = (0..40)
            .map(|i| format!("<script src=\"/s{i}.js\"></script>"))
            .collect();
        assert_eq!(hints(&page).len(), MAX_HINTS);
    }
}
