//! Helpers for tests of the hub: publish, read answers, wait for subscribers.

use std::io::{BufRead, BufReader, Lines};
use std::time::Instant;

use serde_json::Value;

use super::{Wharf, PATIENCE};

/// A response body as JSON.
pub fn json(res: reqwest::blocking::Response) -> Value {
    serde_json::from_slice(&res.bytes().unwrap()).unwrap()
}

/// An event stream on `path`, resumed after `last_event_id` if given, checked to be
/// one: its lines.
pub fn event_stream(
    w: &Wharf,
    path: &str,
    last_event_id: Option<&str>,
) -> Lines<BufReader<reqwest::blocking::Response>> {
    let mut req = w
        .client()
        .get(w.url(path))
        .header("Accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let res = req.send().unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    BufReader::new(res).lines()
}

/// Publishes `text` on `channel` (over HTTP/2 on TLS servers); its id.
pub fn publish(w: &Wharf, channel: &str, text: &str) -> u64 {
    let res = w
        .client()
        .post(w.url(&format!("/hub/{channel}")))
        .body(text.to_owned())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    json(res)["id"].as_u64().unwrap()
}

/// The (id, data) of a poll answer's messages.
pub fn messages(v: &Value) -> Vec<(u64, String)> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["data"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The data of a poll answer's messages.
pub fn datas(v: &Value) -> Vec<String> {
    messages(v).into_iter().map(|(_, d)| d).collect()
}

/// Waits until `channel` has `n` subscribers (a long-poll or stream is waiting).
pub fn wait_for_subscribers(w: &Wharf, channel: &str, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = json(w.get("/hub/", &[]));
        let found = v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == channel);
        if found.is_some_and(|c| c["subscribers"] == n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel} never had {n} subscribers: {v}"
        );
        std::thread::yield_now();
    }
}
