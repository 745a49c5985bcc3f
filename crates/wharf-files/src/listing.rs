//! Directory listings: HTML for browsers, JSON for `Accept: application/json`.
//!
//! Entries are read from the already-opened directory descriptor (never by path), so a
//! listing shows exactly the directory the request resolved to. Symbolic links are
//! listed but not followed (their targets may be outside the root), names that no
//! request could reach (not UTF-8, control characters, backslashes) are left out, and
//! hidden names follow the site's dotfile policy. Directories come first, then files,
//! each in byte order of their names.

use std::fmt::Write as _;
use std::fs::File;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType};
use wharf_http::date::fmt_http_date;
use wharf_http::path::encode_segment;

/// One listed name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    name: String,
    kind: Kind,
    size: Option<u64>,
    modified: Option<SystemTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Dir,
    File,
    Symlink,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
        }
    }
}

/// Most names one listing reads; a bigger directory is listed in part.
const MAX_ITEMS: usize = 10_000;

/// Reads the entries of `dir`, sorted, without `.`/`..`; hidden names only if
/// `show_hidden`, symbolic links only if `show_links`; at most [`MAX_ITEMS`].
pub(crate) fn read(dir: &File, show_hidden: bool, show_links: bool) -> std::io::Result<Vec<Item>> {
    let mut items = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        if items.len() >= MAX_ITEMS {
            break;
        }
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let hidden = name.starts_with('.') && name != ".well-known";
        if !wharf_http::path::is_nameable(name) || (hidden && !show_hidden) {
            continue;
        }
        let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink if show_links => Kind::Symlink,
            _ => continue,
        };
        let modified =
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(st.st_mtime.max(0) as u64));
        items.push(Item {
            name: name.to_owned(),
            kind,
            size: (kind == Kind::File).then_some(st.st_size as u64),
            modified,
        });
    }
    items.sort_by(|a, b| (a.kind != Kind::Dir, &a.name).cmp(&(b.kind != Kind::Dir, &b.name)));
    Ok(items)
}

/// The listing as JSON: `[{"name": "a/", "type": "dir", "size": null, "modified": "..."}]`.
pub(crate) fn json(items: &[Item]) -> String {
    let list: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "name": i.name,
                "type": i.kind.as_str(),
                "size": i.size,
                "modified": i.modified.map(fmt_http_date),
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string() + "\n"
}

/// The listing as an HTML page for the directory at `uri_path` (already encoded).
pub(crate) fn html(uri_path: &str, items: &[Item]) -> String {
    let title = escape(&percent_encoding::percent_decode_str(uri_path).decode_utf8_lossy());
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;margin:2em}}td{{padding:0 1.5em 0 0}}</style></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n"
    );
    if uri_path != "/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for i in items {
        let slash = if i.kind == Kind::Dir { "/" } else { "" };
        let size = i.size.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let modified = i.modified.map(fmt_http_date).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td><a href=\"./{href}{slash}\">{name}{slash}</a></td><td>{size}</td><td>{modified}</td></tr>",
            href = escape(&encode_segment(&i.name)),
            name = escape(&i.name),
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

/// Escapes text for HTML element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("zdir")).unwrap();
        std::fs::write(d.path().join("b.txt"), "bb").unwrap();
        std::fs::write(d.path().join("javascript:alert(1)"), "x").unwrap();
        std::fs::write(d.path().join("<a>&\".txt"), "a").unwrap();
        std::fs::write(d.path().join(".secret"), "s").unwrap();
        std::fs::write(d.path().join("back\\slash"), "s").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        d
    }

    #[test]
    fn sorted_dirs_first_hidden_and_unreachable_left_out() {
        let d = fixture();
        let items = read(&File::open(d.path()).unwrap(), false, true).unwrap();
        let names: Vec<_> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["zdir", "<a>&\".txt", "b.txt", "javascript:alert(1)", "link"]
        );
        assert_eq!(items[2].size, Some(2));
        assert_eq!(items[4].size, None, "symlink targets are not followed");
        let no_links = read(&File::open(d.path()).unwrap(), false, false).unwrap();
        assert!(
            !no_links.iter().any(|i| i.name == "link"),
            "links left out when none is followed"
        );
        let all = read(&File::open(d.path()).unwrap(), true, true).unwrap();
        assert!(all.iter().any(|i| i.name == ".secret"));
    }

    #[test]
    fn html_escapes_names_and_encodes_links() {
        let d = fixture();
        let page = html(
            "/sub/",
            &read(&File::open(d.path()).unwrap(), false, true).unwrap(),
        );
        assert!(
            page.contains("<a href=\"./%3Ca%3E&amp;%22.txt\">&lt;a&gt;&amp;&quot;.txt</a>"),
            "{page}"
        );
        assert!(page.contains("<a href=\"./zdir/\">zdir/</a>"));
        assert!(page.contains("href=\"../\""));
        assert!(!page.contains("<a>"));
        // A name that looks like a URI scheme stays a relative path.
        assert!(page.contains("href=\"./javascript:alert(1)\""), "{page}");
    }

    #[test]
    fn json_lists_types() {
        let d = fixture();
        let v: serde_json::Value = serde_json::from_str(&json(
            &read(&File::open(d.path()).unwrap(), false, true).unwrap(),
        ))
        .unwrap();
        assert_eq!(v[0]["name"], "zdir");
        assert_eq!(v[0]["type"], "dir");
        assert_eq!(v[2]["size"], 2);
    }
}
