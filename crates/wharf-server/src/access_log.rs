//! One access-log line per request, written to stdout when the response body has been
//! sent or abandoned, so it carries the real byte count and duration. Written straight
//! (one `write(2)`, as nginx without a log buffer), not as a `tracing` event: the
//! event's dispatch and formatting cost about 6,000 instructions per line.
//!
//! Formats: the combined log format (nginx/Apache default) or one JSON object per
//! line. When the service attached a [`wharf_http::Explain`] to the response, the line
//! gets an `explain` field with that one-line reason.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};

use wharf_http::conn::TlsInfo;

use crate::watchdog::Watchdog;

/// How access-log lines are written (`combined`, `json` or `off` in `wharf.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// The combined log format, plus an `explain="…"` field when present.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
    /// No access log.
    Off,
}

/// Access-log settings of a listener.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLog {
    /// Line format, or off.
    pub format: LogFormat,
}

/// What is known of a request when its head arrives.
pub(crate) struct Entry {
    peer: SocketAddr,
    method: Method,
    target: String,
    version: Version,
    referer: Option<String>,
    user_agent: Option<String>,
    /// The verified client certificate's subject and SANs (mutual TLS).
    client: Option<String>,
    started: Instant,
}

impl Entry {
    pub(crate) fn new<B>(peer: SocketAddr, req: &http::Request<B>, tls: Option<&TlsInfo>) -> Self {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            peer,
            method: req.method().clone(),
            // HTTP/2 and HTTP/3 targets carry scheme and authority; log the path as
            // HTTP/1.1 clients send it.
            target: match req.version() {
                v if v >= Version::HTTP_2 => req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| "/".into(), ToString::to_string),
                _ => req.uri().to_string(),
            },
            version: req.version(),
            referer: header(http::header::REFERER),
            user_agent: header(http::header::USER_AGENT),
            client: tls.and_then(|t| t.client.as_ref()).map(|c| {
                std::iter::once(c.subject.as_str())
                    .chain(c.sans.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            started: Instant::now(),
        }
    }
}

struct Finished {
    /// Boxed: every response carries this slot, most with the log off.
    entry: Box<Entry>,
    status: StatusCode,
    explain: Option<String>,
    format: LogFormat,
}

impl Finished {
    fn line(&self, bytes: u64, complete: bool) -> String {
        let e = &self.entry;
        let micros = e.started.elapsed().as_micros();
        match self.format {
            LogFormat::Json => serde_json_line(self, bytes, complete, micros),
            _ => {
                // Written piece by piece: the escaped fields go straight into the line.
                let mut s = String::with_capacity(160);
                let _ = write!(s, "{} - - [", e.peer.ip());
                push_clf_now(&mut s);
                let _ = write!(s, "] \"{} ", e.method);
                push_escaped(&mut s, &e.target);
                let _ = write!(
                    s,
                    " {:?}\" {} {} \"",
                    e.version,
                    self.status.as_u16(),
                    bytes
                );
                push_escaped(&mut s, e.referer.as_deref().unwrap_or("-"));
                s.push_str("\" \"");
                push_escaped(&mut s, e.user_agent.as_deref().unwrap_or("-"));
                let _ = write!(s, "\" {micros}us");
                if !complete {
                    s.push_str(" aborted");
                }
                for (key, value) in [(" client=\"", &e.client), (" explain=\"", &self.explain)] {
                    if let Some(v) = value {
                        s.push_str(key);
                        push_escaped(&mut s, v);
                        s.push('"');
                    }
                }
                s
            }
        }
    }
}

/// JSON without a JSON dependency: every value is a string or an integer.
fn serde_json_line(f: &Finished, bytes: u64, complete: bool, micros: u128) -> String {
    let e = &f.entry;
    let mut s = String::with_capacity(200);
    s.push_str("{\"time\":\"");
    push_clf_now(&mut s);
    let _ = write!(
        s,
        "\",\"peer\":\"{}\",\"method\":\"{}\",\"target\":\"{}\",\"version\":\"{:?}\",\"status\":{},\"bytes\":{},\"duration_us\":{},\"complete\":{}",
        e.peer,
        e.method,
        json_escape(&e.target),
        e.version,
        f.status.as_u16(),
        bytes,
        micros,
        complete
    );
    for (k, v) in [
        ("referer", &e.referer),
        ("user_agent", &e.user_agent),
        ("client", &e.client),
        ("explain", &f.explain),
    ] {
        if let Some(v) = v {
            let _ = write!(s, ",\"{k}\":\"{}\"", json_escape(v));
        }
    }
    s.push('}');
    s
}

/// Appends `s` with `"` and `\` escaped and control characters as `\xNN`, as nginx
/// escapes the fields of its combined format.
fn push_escaped(out: &mut String, s: &str) {
    let plain = |b: u8| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\';
    if s.bytes().all(plain) {
        return out.push_str(s);
    }
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

thread_local! {
    /// The time of the lines of this second on this thread, formatted once.
    static CLF_NOW: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// Appends the time now as [`clf_time`] writes it.
fn push_clf_now(out: &mut String) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CLF_NOW.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, clf_time(now));
        }
        out.push_str(&c.1);
    });
}

/// `25/Nov/2026:06:44:51 +0000` (UTC).
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the Unix era.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A response body that counts the bytes it yields, and on drop tells the watchdog the
/// request is over and writes the access-log line.
pub(crate) struct LoggedBody<B: Body> {
    inner: B,
    bytes: u64,
    done: bool,
    finished: Option<Finished>,
    dog: Arc<Watchdog>,
}

impl<B: Body> LoggedBody<B> {
    pub(crate) fn wrap(
        res: Response<B>,
        entry: Option<Box<Entry>>,
        log: AccessLog,
        dog: Arc<Watchdog>,
    ) -> Response<Self> {
        // No entry (the log is off): nothing of the request is copied.
        let finished = entry
            .filter(|_| log.format != LogFormat::Off)
            .map(|entry| Finished {
                entry,
                status: res.status(),
                explain: res
                    .extensions()
                    .get::<wharf_http::Explain>()
                    .map(|e| e.0.clone()),
                format: log.format,
            });
        res.map(|inner| LoggedBody {
            inner,
            bytes: 0,
            done: false,
            finished,
            dog,
        })
    }
}

impl<B: Body> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        self.dog.request_finished();
        if let Some(f) = self.finished.take() {
            let complete = self.done || self.inner.is_end_stream();
            let mut line = f.line(self.bytes, complete);
            line.push('\n');
            // stdout is line-buffered: the line goes out whole in one write. A closed
            // stdout loses the log, not the response.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes());
        }
    }
}

impl<B> Body for LoggedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.done = true,
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clf_time_formats_utc() {
        // 2026-11-25T06:44:51Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_589_091);
        assert_eq!(clf_time(t), "25/Nov/2026:06:44:51 +0000");
        assert_eq!(
            clf_time(SystemTime::UNIX_EPOCH),
            "01/Jan/1970:00:00:00 +0000"
        );
    }

    /// The combined format, field by field (the time and the duration vary).
    #[test]
    fn combined_lines() {
        let req = http::Request::get("/a%20b?q=1")
            .header("user-agent", "curl \"8\"\\")
            .header("referer", "http://r.test/")
            .body(())
            .unwrap();
        let entry = Entry::new("127.0.0.1:9".parse().unwrap(), &req, None);
        let finished = Finished {
            entry: Box::new(entry),
            status: StatusCode::OK,
            explain: Some("200: \"why\"".into()),
            format: LogFormat::Combined,
        };
        let line = finished.line(5, false);
        let (head, rest) = line.split_once(" [").unwrap();
        assert_eq!(head, "127.0.0.1 - -");
        let (time, rest) = rest.split_once("] ").unwrap();
        assert_eq!(time.len(), "25/Nov/2026:06:44:51 +0000".len(), "{time}");
        let (fields, rest) = rest.rsplit_once("us aborted").unwrap();
        assert_eq!(rest, " explain=\"200: \\\"why\\\"\"");
        let (fields, micros) = fields.rsplit_once(' ').unwrap();
        assert!(micros.parse::<u64>().is_ok(), "{micros}");
        assert_eq!(
            fields,
            "\"GET /a%20b?q=1 HTTP/1.1\" 200 5 \"http://r.test/\" \"curl \\\"8\\\"\\\\\""
        );
    }

    #[test]
    fn escapes_quotes_and_controls() {
        let table = [
            ("plain /a?b=c", "plain /a?b=c"),
            ("a\"b\\c\n", "a\\\"b\\\\c\\x0a"),
            ("caf\u{e9} \u{85}", "caf\u{e9} \\x85"), // C1 controls too
            ("", ""),
        ];
        for (raw, want) in table {
            let mut out = String::from("<");
            push_escaped(&mut out, raw);
            assert_eq!(out, format!("<{want}"), "{raw:?}");
        }
        assert_eq!(json_escape("a\"\u{1}"), "a\\\"\\u0001");
    }
}
