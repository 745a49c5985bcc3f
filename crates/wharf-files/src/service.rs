//! The static-file service: one request in, one response out, for any HTTP version.
//!
//! The order of decisions follows RFC 9110: site (§7.4, 421), method (§9, 405), path
//! (400/403/404), resource (301 for directories without `/`, index, listing), the
//! selected representation (content coding, §12.5.3), preconditions (§13.2.2, 304 or
//! 412), then ranges (§14, 206 or 416). Each step's reason goes into an [`Explain`].

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use wharf_http::negotiate::{choose_encoding_in, prefers_json, Coding};
use wharf_http::path::{sanitize, SafePath};
use wharf_http::precondition::{self, Outcome, Validators};
use wharf_http::range::{self, ByteRange, RangeKind, RangeLimits};
use wharf_http::{date, explain, Explain};

use crate::reasons::Reasons;

use crate::body::{Body, Chunk};
use crate::cache::{CacheLimits, Entry, FileCache, Tag};
use crate::config::{DotfilePolicy, SiteConfig};
use crate::listing;
use crate::mime::{media_type, sibling_suffix, MediaType};
use crate::root::OpenError;
use crate::site::Site;
use wharf_http::conn::TlsInfo;
use wharf_http::host::Router;
use wharf_http::interim::{EarlyHints, Push};

/// The methods a file resource allows.
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");

/// Serves the files of every configured site.
#[derive(Debug)]
pub struct Files {
    sites: Vec<Site>,
    router: Router,
    cache: FileCache,
    ranges: RangeLimits,
    boundaries: AtomicU64,
    /// Explain responses that match no site when any site explains.
    explain_unrouted: bool,
}

/// Why a set of sites could not be built; names the site and the setting.
#[derive(Debug, thiserror::Error)]
#[error("site {site} ({root}): {setting}: {message}")]
pub struct BuildError {
    /// The site's position in the configuration, from 0.
    pub site: usize,
    /// Its root directory.
    pub root: String,
    /// The setting at fault (`root`, `names`, `default`).
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Files {
    /// Opens every site's root and compiles its rules.
    pub fn new(configs: &[SiteConfig], cache: CacheLimits) -> Result<Files, BuildError> {
        let mut sites = Vec::with_capacity(configs.len());
        let mut router = Router::default();
        for (i, cfg) in configs.iter().enumerate() {
            let err = |setting, message: String| BuildError {
                site: i,
                root: cfg.root.display().to_string(),
                setting,
                message,
            };
            sites.push(
                Site::new(cfg)
                    .map_err(|e| err("root", format!("cannot open the directory: {e}")))?,
            );
            let names: Vec<String> = cfg.names.iter().map(|n| n.to_string()).collect();
            if names.is_empty() && !cfg.default {
                return Err(err(
                    "names",
                    "no names and not the default site: no request can reach it".into(),
                ));
            }
            router.add(i, &names, cfg.default).map_err(|dup| {
                if dup == "default" {
                    err("default", "another site is already the default".into())
                } else {
                    err("names", format!("{dup:?} is already used by another site"))
                }
            })?;
        }
        Ok(Files {
            sites,
            router,
            cache: FileCache::new(cache),
            ranges: RangeLimits::default(),
            boundaries: AtomicU64::new(0),
            explain_unrouted: configs.iter().any(|c| c.explain),
        })
    }

    /// Calls `listener` with the site's index and the path (`/dir/file`) of every change
    /// seen in the trees of sites with `file_events`: files written, created, moved or
    /// deleted in the directories wharf watches (those of the files it served). Called
    /// on the notification thread: keep it short.
    pub fn on_change(&self, listener: impl Fn(usize, &str) + Send + Sync + 'static) {
        let listener = Arc::new(listener);
        for (i, site) in self.sites.iter().enumerate().filter(|(_, s)| s.file_events) {
            let listener = listener.clone();
            site.paths.listen(Arc::new(move |rel: &std::path::Path| {
                listener(i, &format!("/{}", rel.to_string_lossy()));
            }));
        }
    }

    /// Tells the service that `rel` (a path relative to site `site`'s root, as
    /// [`wharf_http::path::SafePath::relative_path`] gives) was changed by wharf
    /// itself: the next request sees the new file (and its new `ETag`) at once,
    /// without waiting for change notification, and the change is reported to
    /// [`Files::on_change`]'s listener where the site has `file_events`.
    pub fn changed(&self, site: usize, rel: &std::path::Path) {
        if let Some(site) = self.sites.get(site) {
            site.paths.changed(rel);
        }
    }

    /// The site (index into the configured sites) a request's host selects, if any.
    pub fn site_of<B>(&self, req: &Request<B>) -> Option<usize> {
        self.router.route(req).ok()
    }

    /// Whether responses for `site` (or, for `None`, for requests no site takes)
    /// carry their explanation as a header.
    pub fn explains(&self, site: Option<usize>) -> bool {
        match site {
            Some(i) => self.sites.get(i).is_some_and(|s| s.explain),
            None => self.explain_unrouted,
        }
    }

    /// Answers `req`, which arrived over the TLS session `tls` if any (which makes it
    /// `https` and may carry a client certificate). The request body is never read.
    pub async fn serve<B>(&self, req: &Request<B>, tls: Option<&TlsInfo>) -> Response<Body> {
        let now = crate::clock::now();
        let routed = self.router.route(req);
        let explain_on = self.explains(routed.as_ref().ok().copied());
        let mut why = Reasons::new(explain_on);
        let (res, site) = match routed {
            Err(no) => {
                let msg = format!(
                    "421 Misdirected Request: no site is configured for host {:?}\n",
                    no.0
                );
                why.push(format_args!(
                    "421: no site for host {:?} and no default site",
                    no.0
                ));
                (text(StatusCode::MISDIRECTED_REQUEST, msg), None)
            }
            Ok(i) => {
                let site = &self.sites[i];
                (
                    self.respond(site, req, tls, now, &mut why).await,
                    Some(site),
                )
            }
        };
        finished(res, req, site, why, tls)
    }

    /// [`serve`](Self::serve)'s answer when it needs no waiting (a file whose bytes
    /// are in memory, in a representation chosen without reading anything, or a
    /// request refused at once), made here and now; `None` when it does, and
    /// `serve` is to be awaited. Transports call this first: the answer then takes
    /// no future of the service's, nor its box and the moves of the response out
    /// of each nested one.
    pub fn serve_ready<B>(
        &self,
        req: &Request<B>,
        tls: Option<&TlsInfo>,
    ) -> Option<Response<Body>> {
        let i = self.router.route(req).ok()?;
        let site = &self.sites[i];
        let mut why = Reasons::new(self.explains(Some(i)));
        let res = match self.admit(site, req, tls, &mut why) {
            Err(refused) => *refused,
            Ok(path) => {
                let names = Names::of(site, &path);
                let answer = |entry: &Arc<Entry>, media: &MediaType| {
                    // (Choosing among encodings may read a sibling file: not here.)
                    (!media.compressible).then(|| {
                        let t = names.target(None);
                        let rep = Rep::of(entry, None, None);
                        let now = crate::clock::now();
                        self.representation(site, req, &t, entry, rep, media, now, &mut why)
                    })
                };
                self.with_cached(site, &names, answer)??
            }
        };
        Some(finished(res, req, Some(site), why, tls))
    }

    /// The cache's entry for the file `names` names, if it holds the file's bytes,
    /// and the file's media type.
    fn cached(&self, site: &Site, names: &Names<'_>) -> Option<(Arc<Entry>, MediaType)> {
        self.with_cached(site, names, |e, media| (e.clone(), media.clone()))
    }

    /// [`cached`](Self::cached)'s entry and media type lent to `f`.
    fn with_cached<R>(
        &self,
        site: &Site,
        names: &Names<'_>,
        f: impl FnOnce(&Arc<Entry>, &MediaType) -> R,
    ) -> Option<R> {
        if !names.is_file_url {
            return None;
        }
        self.cache.with_path(&site.paths, &site.root, names.rel, f)
    }

    /// A GET or HEAD whose path may be served (RFC 9110 §9.3.1, §9.3.2): the
    /// path, checked; or the response that ends the request here.
    fn admit<B>(
        &self,
        site: &Site,
        req: &Request<B>,
        tls: Option<&TlsInfo>,
        why: &mut Reasons,
    ) -> Result<SafePath, Box<Response<Body>>> {
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => {
                let mut res = empty(StatusCode::NO_CONTENT);
                res.headers_mut().insert(header::ALLOW, ALLOW);
                return Err(Box::new(res));
            }
            ref m => {
                why.push(format_args!("405: {m} is not allowed on files"));
                let mut res = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("405 Method Not Allowed: {m}\n"),
                );
                res.headers_mut().insert(header::ALLOW, ALLOW);
                return Err(Box::new(res));
            }
        }
        let path = match sanitize(req.uri().path()) {
            Ok(p) => p,
            Err(e) => {
                why.push(e);
                return Err(Box::new(text(
                    e.status(),
                    format!(
                        "400 Bad Request: {}\n",
                        e.to_string().trim_start_matches("400: ")
                    ),
                )));
            }
        };
        if path.hidden().any(|s| s != ".well-known") {
            match site.dotfiles {
                DotfilePolicy::Allow => {}
                DotfilePolicy::Hide => {
                    return Err(Box::new(not_found(
                        why,
                        "hidden name (dotfiles = \"hide\")",
                    )))
                }
                DotfilePolicy::Deny => {
                    why.push("403: hidden name (dotfiles = \"deny\")");
                    return Err(Box::new(text(
                        StatusCode::FORBIDDEN,
                        "403 Forbidden\n".into(),
                    )));
                }
            }
        }
        if let Some(paths) = &site.client_auth_paths {
            let client = tls.and_then(|t| t.client.as_ref());
            if client.is_none() && paths.is_match(decoded_path(&path, None)) {
                why.push("403: this path needs a client certificate (client_auth_paths)");
                return Err(Box::new(text(
                    StatusCode::FORBIDDEN,
                    "403 Forbidden: a client certificate is required here\n".into(),
                )));
            }
        }
        Ok(path)
    }

    async fn respond<B>(
        &self,
        site: &Site,
        req: &Request<B>,
        tls: Option<&TlsInfo>,
        now: SystemTime,
        why: &mut Reasons,
    ) -> Response<Body> {
        let path = match self.admit(site, req, tls, why) {
            Ok(path) => path,
            Err(refused) => return *refused,
        };
        let names = Names::of(site, &path);
        let rel = names.rel;
        if let Some((entry, media)) = self.cached(site, &names) {
            return self
                .file(site, req, names.target(None), entry, media, now, why)
                .await;
        }
        let (file, meta) = match site.root.open_file(rel) {
            Ok(x) => x,
            Err(e) => return open_failed(e, why),
        };
        if meta.is_dir() {
            // Boxed (and bound first: a temporary in the awaited expression would keep
            // the unboxed future's room here), as every slow path: the common path's
            // future stays small.
            let slow = Box::pin(self.directory(site, req, &path, rel, file, now, why));
            return slow.await;
        }
        if !names.is_file_url {
            // `/file.txt/` names a directory that does not exist (as ENOTDIR would say).
            return not_found(why, "a file's URL does not end in /");
        }
        let slow = Box::pin(self.open_file(
            site,
            req,
            names.target(Some(Arc::new(file))),
            &meta,
            now,
            why,
        ));
        slow.await
    }

    /// A file just opened: its cache entry, then the response.
    #[allow(clippy::too_many_arguments)]
    async fn open_file<B>(
        &self,
        site: &Site,
        req: &Request<B>,
        t: FileTarget<'_>,
        meta: &Metadata,
        now: SystemTime,
        why: &mut Reasons,
    ) -> Response<Body> {
        let file = t.file.clone().expect("an opened file");
        match self.cache.lookup(&file, meta, now).await {
            Ok((entry, remembered)) => {
                if remembered && entry.content.is_some() {
                    FileCache::remember(&site.paths, &site.root, &t.rel, meta);
                } else if site.file_events {
                    // Not remembered (too new, or too large), but its changes are news.
                    site.paths.watch(&t.rel);
                }
                let media = media_type(t.name);
                self.file(site, req, t, entry, media, now, why).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a file failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error\n".into(),
                )
            }
        }
    }

    /// A directory: redirect to the slash form, then an index file, then a listing.
    #[allow(clippy::too_many_arguments)]
    async fn directory<B>(
        &self,
        site: &Site,
        req: &Request<B>,
        path: &SafePath,
        rel: &Path,
        dir: File,
        now: SystemTime,
        why: &mut Reasons,
    ) -> Response<Body> {
        if !path.has_trailing_slash() {
            let mut location = path.to_uri_path() + "/";
            if let Some(q) = req.uri().query() {
                location.push('?');
                location.push_str(q);
            }
            why.push("301: a directory's URL ends in /");
            let mut res = text(
                StatusCode::MOVED_PERMANENTLY,
                format!("301 Moved Permanently: {location}\n"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            return res;
        }
        for name in &site.index {
            let opened = match site.root.open_file(&rel.join(name)) {
                Ok(x) => Some(x),
                Err(OpenError::NotFound) => None,
                // An index that exists but cannot be read is not a reason to list.
                Err(e) => return open_failed(e, why),
            };
            if let Some((file, meta)) = opened {
                if meta.is_file() {
                    why.push(format_args!("index file {name}"));
                    let url = rule_path(site, path, Some(name));
                    let target = FileTarget {
                        rel: Cow::Owned(rel.join(name)),
                        name,
                        url: &url,
                        file: Some(Arc::new(file)),
                    };
                    return self.open_file(site, req, target, &meta, now, why).await;
                }
            }
        }
        if !site.listing {
            return not_found(why, "directory without an index file, and listings are off");
        }
        let show_hidden = site.dotfiles == DotfilePolicy::Allow;
        let show_links = site.root.follows_links();
        let items =
            match tokio::task::spawn_blocking(move || listing::read(&dir, show_hidden, show_links))
                .await
            {
                Ok(Ok(items)) => items,
                _ => return open_failed(OpenError::Unavailable, why),
            };
        let (body, ct) = if prefers_json(req.headers().get(header::ACCEPT)) {
            why.push("200: directory listing as JSON (Accept prefers application/json)");
            (listing::json(&items), "application/json; charset=utf-8")
        } else {
            why.push("200: directory listing as HTML");
            (
                listing::html(&path.to_uri_path(), &items),
                "text/html; charset=utf-8",
            )
        };
        let mut res = Response::new(Body::from_bytes(body));
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
        res
    }

    /// A regular file of type `media`: choose the representation, then
    /// preconditions, then ranges.
    #[allow(clippy::too_many_arguments)]
    async fn file<B>(
        &self,
        site: &Site,
        req: &Request<B>,
        t: FileTarget<'_>,
        entry: Arc<Entry>,
        media: MediaType,
        now: SystemTime,
        why: &mut Reasons,
    ) -> Response<Body> {
        let rep = if media.compressible {
            let select = Box::pin(self.select(site, req, &t, &entry, now, why));
            select.await
        } else {
            Ok(Rep::of(&entry, t.file.clone(), None))
        };
        match rep {
            Ok(rep) => self.representation(site, req, &t, &entry, rep, &media, now, why),
            Err(res) => res,
        }
    }

    /// The response for `rep` of the file `t` (cached as `entry`), of type `media`:
    /// its fields, the preconditions, the ranges, the preload hints.
    #[allow(clippy::too_many_arguments)]
    fn representation<B>(
        &self,
        site: &Site,
        req: &Request<B>,
        t: &FileTarget<'_>,
        entry: &Entry,
        rep: Rep<'_>,
        media: &MediaType,
        now: SystemTime,
        why: &mut Reasons,
    ) -> Response<Body> {
        let policy = site.cache.policy(t.url, &media.value);
        why.push(format_args!("Cache-Control from {}", policy.label));
        // Seven fields (Content-Length is the transport's), in one of the thread's
        // reused maps (the transport gives it back once the head is out). `Date` is
        // the time this response was made at, as `Last-Modified` (never later) and
        // `Expires` (Date + max-age) are: one clock read for all three, so that
        // `Expires - Date` is the max-age even across a second's boundary.
        let mut h = wharf_http::maps::take(7);
        h.insert(header::DATE, date::field_value(now));
        h.insert(header::ETAG, rep.etag.value.clone());
        // RFC 9110 §8.8.2.1: a modification time in the future is replaced by Date.
        let modified = entry.modified.min(now);
        let modified_value = if modified == entry.modified {
            entry.modified_value.clone()
        } else {
            date::field_value(now)
        };
        h.insert(header::LAST_MODIFIED, modified_value);
        h.insert(header::CACHE_CONTROL, policy.value.clone());
        if let Some(max_age) = policy.max_age {
            let expires = wharf_http::cache_control::expires_from_max_age(now, max_age);
            h.insert(header::EXPIRES, date::field_value(expires));
        }
        if media.compressible {
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }

        let v = Validators {
            etag: Some(&rep.etag.tag),
            last_modified: Some(modified),
        };
        if precondition::has_preconditions(req.headers()) {
            let outcome = if !why.enabled() && revalidates(req, &rep.etag.value) {
                Outcome::NotModified
            } else {
                let pre = precondition::evaluate(req.method(), req.headers(), &v);
                why.push(&pre);
                pre.outcome
            };
            match outcome {
                Outcome::Proceed => {}
                Outcome::NotModified => {
                    let mut res = empty(StatusCode::NOT_MODIFIED);
                    *res.headers_mut() = h;
                    return res;
                }
                Outcome::PreconditionFailed => {
                    return text(
                        StatusCode::PRECONDITION_FAILED,
                        "412 Precondition Failed\n".into(),
                    )
                }
            }
        }

        h.insert(header::CONTENT_TYPE, media.value.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(c) = rep.coding {
            h.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(c.token()),
            );
        }
        let len = rep.len();
        // If-Range with a date (RFC 9110 §13.1.5) needs a strong date: Last-Modified at
        // least a second before Date (§8.8.2.2), and of these very bytes — not of the
        // file a compressed variant was made from.
        let strong_date = rep.coding.is_none() && modified + Duration::from_secs(1) <= now;
        let range_v = Validators {
            etag: v.etag,
            last_modified: strong_date.then_some(modified),
        };
        let decision = range::evaluate(req.method(), req.headers(), len, &range_v, &self.ranges);
        if why.enabled() && req.headers().contains_key(header::RANGE) {
            why.push(&decision);
        }
        let mut res = match decision.kind {
            RangeKind::Full => Response::new(rep.body(0, len)),
            RangeKind::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                let mut res = Response::new(rep.body(r.start, r.len()));
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                h.insert(
                    header::CONTENT_RANGE,
                    header_value(range::content_range(&r, len)),
                );
                res
            }
            RangeKind::Partial(ranges) => {
                let boundary = format!(
                    "wharf-{:016x}",
                    self.boundaries.fetch_add(1, Ordering::Relaxed)
                        ^ xxhash_rust::xxh3::xxh3_64(rep.etag.tag.tag().as_bytes())
                );
                let ct = h
                    .remove(header::CONTENT_TYPE)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                h.insert(
                    header::CONTENT_TYPE,
                    header_value(range::multipart_type(&boundary)),
                );
                let mut res = Response::new(rep.multipart(&ranges, &boundary, &ct));
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                res
            }
            RangeKind::Unsatisfiable => {
                let mut res = text(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "416 Range Not Satisfiable\n".into(),
                );
                res.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(range::unsatisfied_range(len)),
                );
                return res;
            }
        };
        if res.status() == StatusCode::OK && media.value.as_bytes().starts_with(b"text/html") {
            hint(site, t.url, entry, &mut h, res.extensions_mut(), why);
        }
        *res.headers_mut() = h;
        res
    }

    /// The representation of a compressible file to send: identity, a precompressed
    /// sibling, or a variant compressed on the fly. `Err` is a 406 response. (Other
    /// files are always sent as they are, without coming here.)
    #[allow(clippy::too_many_arguments)]
    async fn select<'e, B>(
        &self,
        site: &Site,
        req: &Request<B>,
        t: &FileTarget<'_>,
        entry: &'e Arc<Entry>,
        now: SystemTime,
        why: &mut Reasons,
    ) -> Result<Rep<'e>, Response<Body>> {
        let identity = Rep::of(entry, t.file.clone(), None);
        let on_the_fly =
            site.compress && entry.content.is_some() && entry.len() >= site.compress_min_size;
        let mut available = Vec::with_capacity(4);
        let mut siblings: Vec<(Coding, Rep<'static>)> = Vec::new();
        for coding in [Coding::Brotli, Coding::Zstd, Coding::Gzip] {
            // Only codings the client would take over identity are worth a lookup.
            if choose_encoding_in(req.headers(), &[coding]).chosen != Some(coding) {
                continue;
            }
            let sibling = Box::pin(self.sibling(site, t, coding, entry, now));
            if let Some(rep) = sibling.await {
                siblings.push((coding, rep));
                available.push(coding);
            } else if on_the_fly {
                available.push(coding);
            }
        }
        let decision = choose_encoding_in(req.headers(), &available);
        if why.enabled() && req.headers().contains_key(header::ACCEPT_ENCODING) {
            why.push(&decision);
        }
        match decision.chosen {
            None => {
                let mut res = text(
                    StatusCode::NOT_ACCEPTABLE,
                    "406 Not Acceptable: no acceptable content coding (identity refused)\n".into(),
                );
                res.headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                Err(res)
            }
            Some(Coding::Identity) => Ok(identity),
            Some(c) => {
                if let Some(pos) = siblings.iter().position(|(s, _)| *s == c) {
                    why.push(format_args!(
                        "precompressed {} sibling",
                        sibling_suffix(c).unwrap_or_default()
                    ));
                    return Ok(siblings.swap_remove(pos).1);
                }
                let variant = Box::pin(self.cache.variant(entry, c));
                match variant.await {
                    Some(v) => Ok(Rep {
                        data: Data::Memory(Cow::Borrowed(&v.bytes)),
                        etag: Cow::Borrowed(&v.etag),
                        coding: Some(c),
                    }),
                    None => {
                        why.push(format_args!("{c} would not shrink it: identity"));
                        Ok(identity)
                    }
                }
            }
        }
    }

    /// A precompressed sibling (`x.br`, `x.zst`, `x.gz`) not older than the file.
    async fn sibling(
        &self,
        site: &Site,
        t: &FileTarget<'_>,
        coding: Coding,
        original: &Entry,
        now: SystemTime,
    ) -> Option<Rep<'static>> {
        let mut name = t.rel.as_os_str().to_owned();
        name.push(sibling_suffix(coding)?);
        let (file, meta) = site.root.open_file(Path::new(&name)).ok()?;
        if !meta.is_file() || meta.modified().ok()? < original.modified {
            return None;
        }
        let file = Arc::new(file);
        let (entry, _) = self.cache.lookup(&file, &meta, now).await.ok()?;
        Some(Rep::of(&entry, Some(file), Some(coding)).into_owned())
    }
}

/// What a checked path names on a site, for [`Files::serve`]'s two ways of
/// answering.
struct Names<'a> {
    /// Relative to the site root.
    rel: &'a Path,
    /// The last segment (a file's name, for its media type).
    name: &'a str,
    /// The path as the site's cache rules and preloads match it.
    url: String,
    /// No trailing slash: a file may be meant.
    is_file_url: bool,
}

impl<'a> Names<'a> {
    fn of(site: &Site, path: &'a SafePath) -> Self {
        Names {
            rel: path.relative_path(),
            name: path.last().unwrap_or_default(),
            url: rule_path(site, path, None),
            is_file_url: !path.has_trailing_slash(),
        }
    }

    /// The file these name, `file` if it is open.
    fn target(&self, file: Option<Arc<File>>) -> FileTarget<'_> {
        FileTarget {
            rel: Cow::Borrowed(self.rel),
            name: self.name,
            url: &self.url,
            file,
        }
    }
}

/// The site's fields and the explanation added to `res`, and a HEAD's body dropped.
fn finished<B>(
    mut res: Response<Body>,
    req: &Request<B>,
    site: Option<&Site>,
    why: Reasons,
    tls: Option<&TlsInfo>,
) -> Response<Body> {
    finish(&mut res, site, why, tls.is_some());
    if req.method() == Method::HEAD {
        head_only(&mut res);
    }
    res
}

/// The file a request resolved to.
struct FileTarget<'a> {
    /// Relative to the site root.
    rel: Cow<'a, Path>,
    /// The file name, for its media type.
    name: &'a str,
    /// The request's URL path, for cache rules.
    url: &'a str,
    /// The open file; `None` when its bytes are in memory and it was not opened.
    file: Option<Arc<File>>,
}

/// A selected representation: lent by the cache entry the request holds (its
/// bytes or a compressed variant of them), so that choosing it costs no reference
/// counts or copies; owned when it is another file's (a precompressed sibling).
struct Rep<'e> {
    data: Data<'e>,
    etag: Cow<'e, Tag>,
    coding: Option<Coding>,
}

enum Data<'e> {
    Memory(Cow<'e, Bytes>),
    File(Arc<File>, u64),
}

impl<'e> Rep<'e> {
    /// `entry`'s bytes: in memory, or read from `file` (always given for entries
    /// without content: only in-memory entries are found without opening the file).
    fn of(entry: &'e Entry, file: Option<Arc<File>>, coding: Option<Coding>) -> Self {
        let data = match (&entry.content, file) {
            (Some(b), _) => Data::Memory(Cow::Borrowed(b)),
            (None, Some(f)) => Data::File(f, entry.len()),
            (None, None) => unreachable!("entries found without opening the file are in memory"),
        };
        Rep {
            data,
            etag: Cow::Borrowed(&entry.etag),
            coding,
        }
    }

    /// The same, holding its own references, to outlive the entry it came from.
    fn into_owned(self) -> Rep<'static> {
        let data = match self.data {
            Data::Memory(b) => Data::Memory(Cow::Owned(b.into_owned())),
            Data::File(f, len) => Data::File(f, len),
        };
        Rep {
            data,
            etag: Cow::Owned(self.etag.into_owned()),
            coding: self.coding,
        }
    }

    fn len(&self) -> u64 {
        match &self.data {
            Data::Memory(b) => b.len() as u64,
            Data::File(_, len) => *len,
        }
    }

    fn chunk(&self, start: u64, len: u64) -> Chunk {
        match &self.data {
            Data::Memory(b) => Chunk::Bytes(b.slice(start as usize..(start + len) as usize)),
            Data::File(f, _) => Chunk::File {
                file: f.clone(),
                offset: start,
                len,
            },
        }
    }

    fn body(&self, start: u64, len: u64) -> Body {
        let mut body = Body::empty();
        body.push(self.chunk(start, len));
        body
    }

    /// A multipart/byteranges body (RFC 9110 §14.6).
    fn multipart(&self, ranges: &[ByteRange], boundary: &str, content_type: &HeaderValue) -> Body {
        let ct = String::from_utf8_lossy(content_type.as_bytes());
        let mut body = Body::empty();
        for piece in range::multipart(ranges, self.len(), boundary, &ct) {
            body.push(match piece {
                range::Piece::Text(t) => Chunk::Bytes(Bytes::from(t)),
                range::Piece::Range(r) => self.chunk(r.start, r.len()),
            });
        }
        body
    }
}

/// The common revalidation, decided without parsing: a GET or HEAD whose only
/// deciding condition is one `If-None-Match` naming exactly the current tag. RFC 9110
/// §13.2.2: no If-Match or If-Unmodified-Since to check first (steps 1–2), and an
/// If-None-Match that matches (step 3; an identical tag matches weakly) means 304,
/// with If-Modified-Since ignored. Anything else goes through
/// `precondition::evaluate`, which also says why.
fn revalidates<B>(req: &Request<B>, etag: &HeaderValue) -> bool {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return false;
    }
    // One pass over the request's fields rather than a lookup for each name.
    let mut none_match = None;
    for (name, value) in req.headers() {
        if name == header::IF_MATCH || name == header::IF_UNMODIFIED_SINCE {
            return false;
        }
        if name == header::IF_NONE_MATCH {
            if none_match.is_some() {
                return false;
            }
            none_match = Some(value);
        }
    }
    none_match == Some(etag)
}

/// Preload hints for an HTML page: `Link` fields on the response, the same as
/// `103 Early Hints` for the transport, and pushes if a rule asks for them.
fn hint(
    site: &Site,
    url: &str,
    entry: &Entry,
    h: &mut http::HeaderMap,
    ext: &mut http::Extensions,
    why: &mut Reasons,
) {
    let (links, push, source) = match site.preload.find(url) {
        Some(rule) => (rule.links.clone(), rule.push.clone(), "preload rule"),
        None if site.early_hints => (entry.html_hints().clone(), None, "the page"),
        None => return,
    };
    if links.is_empty() {
        return;
    }
    why.push(format_args!("{} preload hints from {source}", links.len()));
    let mut early = http::HeaderMap::with_capacity(links.len());
    for link in links.iter() {
        h.append(header::LINK, link.clone());
        early.append(header::LINK, link.clone());
    }
    ext.insert(EarlyHints(early));
    if let Some(paths) = push {
        ext.insert(Push(paths.to_vec()));
    }
}

/// The path `Cache-Control` rules match: decoded and normalised, as the file system
/// sees it, with the index file's name for a directory. Empty (not built) for sites
/// without rules of their own.
fn rule_path(site: &Site, path: &SafePath, index: Option<&str>) -> String {
    if site.cache.has_rules() || !site.preload.is_empty() {
        decoded_path(path, index)
    } else {
        String::new()
    }
}

/// The decoded path (`/a/b`, plus `/index` when given) that path globs match.
fn decoded_path(path: &SafePath, index: Option<&str>) -> String {
    let mut url = path.decoded().to_owned();
    if let Some(index) = index {
        url.push('/');
        url.push_str(index);
    }
    url
}

/// Adds what every response carries: the site's headers, HSTS over HTTPS, the
/// explanation. (`Date` and `Content-Length` are the transport's.)
fn finish(res: &mut Response<Body>, site: Option<&Site>, why: Reasons, secure: bool) {
    let h = res.headers_mut();
    if let Some(site) = site {
        for (k, v) in &site.headers {
            h.insert(k.clone(), v.clone());
        }
        if let (true, Some(hsts)) = (secure, &site.hsts) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
    if why.enabled() {
        let line = why.line(res.status());
        if let Ok(v) = HeaderValue::from_str(&line) {
            res.headers_mut().insert(explain::HEADER, v);
        }
        res.extensions_mut().insert(Explain(line));
    }
}

/// The transports write `Content-Length` from a body's exact size (and `Date`); a
/// HEAD response's body is an empty stand-in, so the length a GET would get is
/// declared here (RFC 9110 §9.3.2, §8.6), save where no content would be sent.
fn head_only(res: &mut Response<Body>) {
    if !wharf_http::content::status_has_no_content(res.status()) {
        let len = res.body().len();
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    *res.body_mut() = Body::empty();
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("built from valid parts")
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

/// A short plain-text response (errors, redirects).
fn text(status: StatusCode, msg: String) -> Response<Body> {
    let mut res = Response::new(Body::from_bytes(msg));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn not_found(why: &mut Reasons, reason: &str) -> Response<Body> {
    why.push(format_args!("404: {reason}"));
    text(StatusCode::NOT_FOUND, "404 Not Found\n".into())
}

fn open_failed(e: OpenError, why: &mut Reasons) -> Response<Body> {
    match e {
        OpenError::NotFound => not_found(why, "no such file in the site"),
        OpenError::Forbidden => {
            why.push("403: the file is not readable");
            text(StatusCode::FORBIDDEN, "403 Forbidden\n".into())
        }
        OpenError::Unavailable => {
            why.push("503: the file system did not answer");
            let mut res = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n".into(),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_http::etag::EntityTag;

    #[test]
    fn revalidation_shortcut_agrees_with_the_full_evaluation() {
        let tag = EntityTag::strong("abc");
        let value = HeaderValue::from_static("\"abc\"");
        let v = Validators {
            etag: Some(&tag),
            last_modified: Some(SystemTime::UNIX_EPOCH),
        };
        // (method, headers)
        let table: &[(Method, &[(&str, &str)])] = &[
            (Method::GET, &[("if-none-match", "\"abc\"")]),
            (Method::HEAD, &[("if-none-match", "\"abc\"")]),
            (
                Method::GET,
                &[
                    ("if-none-match", "\"abc\""),
                    ("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT"),
                ],
            ),
            (
                Method::GET,
                &[("if-none-match", "\"abc\""), ("if-match", "\"x\"")],
            ),
            (
                Method::GET,
                &[
                    ("if-none-match", "\"abc\""),
                    ("if-unmodified-since", "Mon, 01 Jan 1990 00:00:00 GMT"),
                ],
            ),
            (
                Method::GET,
                &[("if-match", "\"x\""), ("if-none-match", "\"abc\"")],
            ),
            (
                Method::GET,
                &[("if-none-match", "\"abc\""), ("if-none-match", "\"abd\"")],
            ),
            (Method::GET, &[("if-none-match", "\"abd\"")]),
            (Method::GET, &[("if-none-match", "W/\"abc\"")]),
            (Method::POST, &[("if-none-match", "\"abc\"")]),
        ];
        for (method, headers) in table {
            let mut b = Request::builder().method(method.clone());
            for (k, val) in *headers {
                b = b.header(*k, *val);
            }
            let req = b.body(()).unwrap();
            let full = precondition::evaluate(req.method(), req.headers(), &v).outcome;
            if revalidates(&req, &value) {
                assert_eq!(full, Outcome::NotModified, "{method} {headers:?}");
            }
        }
        let req = Request::builder()
            .header("if-none-match", "\"abc\"")
            .body(())
            .unwrap();
        assert!(
            revalidates(&req, &value),
            "the common case takes the shortcut"
        );
    }
}
