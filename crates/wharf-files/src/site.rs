//! A site ready to serve: its root opened, its rules compiled.

use std::io;
use std::sync::Arc;

use globset::GlobSet;
use http::{HeaderName, HeaderValue};
use wharf_http::cache_control::CacheControl;

use crate::config::{ClientAuthMode, DotfilePolicy, SiteConfig};
use crate::paths::PathIndex;
use crate::root::Root;

/// A compiled site.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) root: Root,
    pub(crate) index: Vec<String>,
    pub(crate) listing: bool,
    pub(crate) dotfiles: DotfilePolicy,
    pub(crate) cache: CacheRules,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) explain: bool,
    pub(crate) compress: bool,
    pub(crate) compress_min_size: u64,
    /// Derive preload hints from HTML.
    pub(crate) early_hints: bool,
    /// `[[site.preload]]` rules.
    pub(crate) preload: Preloads,
    /// `Strict-Transport-Security`, for HTTPS responses.
    pub(crate) hsts: Option<HeaderValue>,
    /// Paths that need a client certificate (`[site.tls] client_auth_paths`).
    pub(crate) client_auth_paths: Option<globset::GlobSet>,
    /// Where this site's paths last led, for serving without opening.
    pub(crate) paths: PathIndex,
    /// Changes are reported to [`crate::Files::on_change`]'s listener.
    pub(crate) file_events: bool,
}

impl Site {
    pub(crate) fn new(cfg: &SiteConfig) -> io::Result<Site> {
        let root = Root::open(&cfg.root, cfg.symlinks)?;
        Ok(Site {
            paths: PathIndex::new(root.fd()),
            file_events: cfg.file_events,
            root,
            index: cfg.index.iter().map(|n| n.0.clone()).collect(),
            listing: cfg.listing,
            dotfiles: cfg.dotfiles,
            cache: CacheRules::new(cfg),
            headers: cfg
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        HeaderName::from_bytes(k.0.as_bytes()).expect("validated when read"),
                        v.0.clone(),
                    )
                })
                .collect(),
            explain: cfg.explain,
            compress: cfg.compress,
            compress_min_size: cfg.compress_min_size,
            early_hints: cfg.early_hints,
            preload: Preloads::new(&cfg.preload),
            hsts: cfg.tls.hsts.as_ref().map(|h| h.0.clone()),
            client_auth_paths: (cfg.tls.client_auth == ClientAuthMode::Optional
                && !cfg.tls.client_auth_paths.is_empty())
            .then(|| {
                let mut b = globset::GlobSetBuilder::new();
                for g in &cfg.tls.client_auth_paths {
                    b.add(g.0.clone());
                }
                b.build().expect("globs were compiled one by one when read")
            }),
        })
    }
}

/// One `Cache-Control` policy, rendered once.
#[derive(Debug)]
pub(crate) struct CachePolicy {
    pub(crate) value: HeaderValue,
    /// `max-age`, from which `Expires` is derived.
    pub(crate) max_age: Option<u64>,
    /// Which rule this is, for explanations.
    pub(crate) label: String,
}

impl CachePolicy {
    fn new(cc: &CacheControl, label: String) -> CachePolicy {
        CachePolicy {
            value: HeaderValue::from_str(&cc.to_string())
                .expect("canonical Cache-Control is a valid value"),
            // no-store responses must not be reused at all; an Expires would say otherwise.
            max_age: if cc.no_store { None } else { cc.max_age },
            label,
        }
    }
}

/// The site's rules by URL path, then the defaults by media type.
#[derive(Debug)]
pub(crate) struct CacheRules {
    globs: GlobSet,
    rules: Vec<CachePolicy>,
    html: CachePolicy,
    other: CachePolicy,
}

/// Default for HTML: revalidate every time, so a deploy shows at once.
const HTML_DEFAULT: &str = "no-cache";
/// Default for everything else: a modest hour.
const OTHER_DEFAULT: &str = "max-age=3600";

impl CacheRules {
    fn new(cfg: &SiteConfig) -> CacheRules {
        let mut b = globset::GlobSetBuilder::new();
        for r in &cfg.cache {
            b.add(r.path.0.clone());
        }
        let default = |v: &'static str, what: &str| {
            let hv = HeaderValue::from_static(v);
            let mut policy =
                CachePolicy::new(&CacheControl::parse([&hv]), format!("default for {what}"));
            if policy.value == hv {
                // Static: a response's copy of it is then no reference count.
                policy.value = hv;
            }
            policy
        };
        CacheRules {
            globs: b.build().expect("globs were compiled one by one when read"),
            rules: cfg
                .cache
                .iter()
                .map(|r| CachePolicy::new(&r.cache_control.0, format!("rule {}", r.path.0.glob())))
                .collect(),
            html: default(HTML_DEFAULT, "HTML"),
            other: default(OTHER_DEFAULT, "non-HTML"),
        }
    }

    /// Whether the site has rules of its own (else only the defaults apply).
    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The policy for a response at URL path `path` of media type `content_type`.
    pub(crate) fn policy(&self, path: &str, content_type: &HeaderValue) -> &CachePolicy {
        if !self.rules.is_empty() {
            if let Some(i) = self.globs.matches(path).into_iter().min() {
                return &self.rules[i];
            }
        }
        if content_type.as_bytes().starts_with(b"text/html") {
            &self.html
        } else {
            &self.other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CacheControlValue, CacheRule, PathGlob};

    #[test]
    fn first_matching_rule_then_defaults() {
        let mut cfg = SiteConfig::new("/");
        let rule = |p: &str, v: &str| CacheRule {
            path: PathGlob::new(p).unwrap(),
            cache_control: CacheControlValue::new(v).unwrap(),
        };
        cfg.cache = vec![
            rule("/assets/**", "public, max-age=31536000, immutable"),
            rule("/assets/live/**", "no-store"),
            rule("/private/*", "private, max-age=60"),
        ];
        let rules = CacheRules::new(&cfg);
        let html = HeaderValue::from_static("text/html; charset=utf-8");
        let png = HeaderValue::from_static("image/png");
        // (path, type, Cache-Control, max-age)
        let table = [
            (
                "/assets/a.png",
                &png,
                "public, max-age=31536000, immutable",
                Some(31536000),
            ),
            (
                "/assets/live/x.png",
                &png,
                "public, max-age=31536000, immutable",
                Some(31536000),
            ),
            ("/private/a.html", &html, "private, max-age=60", Some(60)),
            ("/private/x/a.html", &html, "no-cache", None),
            ("/index.html", &html, "no-cache", None),
            ("/logo.png", &png, "max-age=3600", Some(3600)),
        ];
        for (path, ct, cc, max_age) in table {
            let p = rules.policy(path, ct);
            assert_eq!(p.value, cc, "{path}");
            assert_eq!(p.max_age, max_age, "{path}");
        }
    }
}

/// The `[[site.preload]]` rules, rendered once.
#[derive(Debug)]
pub(crate) struct Preloads {
    globs: globset::GlobSet,
    rules: Vec<Preload>,
}

/// One rule's hints and pushes.
#[derive(Debug)]
pub(crate) struct Preload {
    pub(crate) links: Arc<[HeaderValue]>,
    pub(crate) push: Option<Arc<[String]>>,
}

impl Preloads {
    fn new(rules: &[crate::config::PreloadRule]) -> Preloads {
        let mut b = globset::GlobSetBuilder::new();
        for r in rules {
            b.add(r.path.0.clone());
        }
        Preloads {
            globs: b.build().expect("globs were compiled one by one when read"),
            rules: rules
                .iter()
                .map(|r| Preload {
                    links: r.resources.iter().map(|p| preload_link(&p.0)).collect(),
                    push: r
                        .push
                        .then(|| r.resources.iter().map(|p| p.0.clone()).collect()),
                })
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching the page at `path`.
    pub(crate) fn find(&self, path: &str) -> Option<&Preload> {
        self.globs
            .matches(path)
            .into_iter()
            .min()
            .map(|i| &self.rules[i])
    }
}

/// `</style.css>; rel=preload; as=style`, the destination chosen by extension.
fn preload_link(path: &str) -> HeaderValue {
    let file = path.split(['?', '#']).next().unwrap_or(path);
    let ext = file
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_ascii_lowercase();
    let dest = match ext.as_str() {
        "css" => "style",
        "js" | "mjs" => "script",
        "woff2" | "woff" | "ttf" | "otf" => "font; crossorigin",
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "avif" | "svg" | "ico" => "image",
        "json" => "fetch; crossorigin",
        "vtt" => "track",
        _ => "fetch",
    };
    HeaderValue::from_str(&format!("<{path}>; rel=preload; as={dest}"))
        .expect("resource paths are validated when read")
}
