//! The hub: publish by POST and by WebSocket; subscribe by polling, long-polling,
//! Server-Sent Events and WebSocket, over every HTTP version; ids, history and what
//! was missed; tokens; history kept across a restart; bad input.

mod common;

use std::time::{Duration, Instant};

use common::hub::{datas, event_stream, json, publish, wait_for_subscribers};
use common::ws::connect_to;
use common::{raw, Builder, Proto, PATIENCE};
use serde_json::Value;

fn polls_and_long_polls_lose_nothing(proto: Proto) {
    let w = Builder::new().proto(proto).start();
    assert_eq!(publish(&w, "chat", "a"), 1);
    assert_eq!(publish(&w, "chat", "b"), 2);
    // A poll without a position: the history.
    let v = json(w.get("/hub/chat", &[]));
    assert_eq!(
        (datas(&v), v["last"].as_u64()),
        (vec!["a".into(), "b".into()], Some(2))
    );
    let m = &v["messages"][1];
    assert_eq!(
        (m["id"].as_u64(), m["channel"].as_str()),
        (Some(2), Some("chat"))
    );
    assert!(m["time"].as_u64().unwrap() > 1_700_000_000_000);
    // After an id.
    assert_eq!(datas(&json(w.get("/hub/chat?since=1", &[]))), ["b"]);
    // A long-poll waits for the next message.
    let v = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| json(w.get("/hub/chat?since=2", &[])));
        wait_for_subscribers(&w, "chat", 1);
        publish(&w, "chat", "c");
        waiting.join().unwrap()
    });
    assert_eq!(
        (datas(&v), v["last"].as_u64()),
        (vec!["c".to_owned()], Some(3))
    );
    // Nothing comes: answered empty after the wait, with the position to keep.
    let start = Instant::now();
    let v = json(w.get("/hub/chat?since=3&wait=1", &[]));
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!((datas(&v).len(), v["last"].as_u64()), (0, Some(3)));
    // Plain polling never waits.
    let v = json(w.get("/hub/chat?since=3&wait=0", &[]));
    assert_eq!(datas(&v).len(), 0);
}

fn server_sent_events_resume_after_last_event_id(proto: Proto) {
    let w = Builder::new().proto(proto).start();
    publish(&w, "news", "one");
    publish(&w, "news", "two");
    let mut lines = event_stream(&w, "/hub/news", Some("1")).map(Result::unwrap);
    let mut next_event = || -> Vec<String> {
        let mut ev = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                if !ev.is_empty() {
                    return ev;
                }
                continue;
            }
            ev.push(line);
        }
        panic!("the stream ended");
    };
    assert_eq!(next_event(), ["retry: 2000"]);
    let ev = next_event();
    assert_eq!(ev[0], "id: 2");
    let data: Value = serde_json::from_str(ev[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["data"], "two");
    publish(&w, "news", "three");
    assert_eq!(next_event()[0], "id: 3");
}

macro_rules! over_every_version {
    ($($name:ident),* $(,)?) => {
        mod h1 { $( #[test] fn $name() { super::$name(super::Proto::H1) } )* }
        mod h2c { $( #[test] fn $name() { super::$name(super::Proto::H2c) } )* }
        mod https1 { $( #[test] fn $name() { super::$name(super::Proto::H1Tls) } )* }
        mod h2 { $( #[test] fn $name() { super::$name(super::Proto::H2Tls) } )* }
    };
}

over_every_version!(
    polls_and_long_polls_lose_nothing,
    server_sent_events_resume_after_last_event_id
);

#[test]
fn polls_and_long_polls_over_http3() {
    polls_and_long_polls_lose_nothing(Proto::H3);
}

#[test]
fn websocket_subscribers_get_messages_and_publish() {
    let w = Builder::new().start();
    publish(&w, "room", "before");
    let (mut ws, _) = connect_to(&w, "/hub/room?since=0", &[]);
    let first: Value = serde_json::from_slice(&ws.recv().unwrap().payload).unwrap();
    assert_eq!(
        (first["id"].as_u64(), first["data"].as_str()),
        (Some(1), Some("before"))
    );
    publish(&w, "room", "by POST");
    let m: Value = serde_json::from_slice(&ws.recv().unwrap().payload).unwrap();
    assert_eq!(m["data"], "by POST");
    // What the client sends is published to everyone, itself included.
    ws.send(true, 1, b"by WebSocket");
    let m: Value = serde_json::from_slice(&ws.recv().unwrap().payload).unwrap();
    assert_eq!(
        (m["id"].as_u64(), m["data"].as_str()),
        (Some(3), Some("by WebSocket"))
    );
    assert_eq!(
        datas(&json(w.get("/hub/room?since=2", &[]))),
        ["by WebSocket"]
    );
    // Binary messages are not hub messages.
    ws.send(true, 2, &[1, 2]);
    assert_eq!(ws.close_code().0, Some(1003));
}

/// A WebSocket client that may subscribe but not publish is closed with 1008 when it
/// sends a message; one that may publish is closed with 1009 for a message over
/// `max_message_size`; the channel goes on for everyone else.
#[test]
fn websocket_publishes_that_are_refused_or_too_large_close_only_their_client() {
    let w = Builder::new()
        .config(
            "[hub]\nmax_message_size = 200\n[hub.anonymous]\nsubscribe = [\"*\"]\n\
             [[hub.token]]\ntoken = \"0123456789abcdef-writer\"\npublish = [\"*\"]\nsubscribe = [\"*\"]\n",
        )
        .start();
    let (mut reader, _) = connect_to(&w, "/hub/room", &[]);
    let (mut listener, _) = connect_to(&w, "/hub/room", &[]);
    reader.send(true, 1, b"may I?");
    assert_eq!(reader.close_code().0, Some(1008));
    let (mut writer, _) = connect_to(&w, "/hub/room?token=0123456789abcdef-writer", &[]);
    writer.send(true, 1, &[b'x'; 201]);
    assert_eq!(writer.close_code().0, Some(1009));
    let (mut writer, _) = connect_to(&w, "/hub/room?token=0123456789abcdef-writer", &[]);
    writer.send(true, 1, &[b'x'; 200]);
    let m: Value = serde_json::from_slice(&listener.recv().unwrap().payload).unwrap();
    assert_eq!(
        (m["id"].as_u64(), m["data"].as_str().map(str::len)),
        (Some(1), Some(200))
    );
    assert_eq!(datas(&json(w.get("/hub/room?since=0", &[]))).len(), 1);
}

/// A WebSocket subscriber that never reads is closed with 1008 once what waits for it
/// passes `max_queued_bytes`; another subscriber of the channel gets every message
/// meanwhile.
#[test]
fn a_subscriber_that_never_reads_is_closed_and_the_channel_goes_on() {
    let w = Builder::new()
        .config("[hub]\nhistory = 4\nmax_queued_bytes = 65536\n")
        .start();
    let (mut slow, _) = connect_to(&w, "/hub/wide", &[]);
    let (mut other, _) = connect_to(&w, "/hub/wide", &[]);
    wait_for_subscribers(&w, "wide", 2);
    // 24 MiB in 64 KB messages: more than the socket buffers of both ends of the slow
    // subscriber hold, so its queue passes the limit.
    let message = "m".repeat(64_000);
    for i in 1..=384u64 {
        assert_eq!(publish(&w, "wide", &message), i);
        let m: Value = serde_json::from_slice(&other.recv().unwrap().payload).unwrap();
        assert_eq!(m["id"].as_u64(), Some(i));
    }
    assert_eq!(slow.close_code(), (Some(1008), true));
}

/// An idle event stream gets a comment line every `sse_heartbeat` (event-stream
/// parsers ignore it), which keeps proxies from timing it out and finds clients that
/// went away.
#[test]
fn idle_event_streams_get_comment_heartbeats() {
    let w = Builder::new()
        .config("[hub]\nsse_heartbeat = \"300ms\"\n")
        .start();
    // Before the request: the server's timer cannot start earlier.
    let opened = Instant::now();
    let mut lines = event_stream(&w, "/hub/quiet", None).map(Result::unwrap);
    for n in 1..=3u32 {
        let line = lines
            .by_ref()
            .find(|l| !l.is_empty() && !l.starts_with("retry:"));
        assert_eq!(line.as_deref(), Some(": heartbeat"));
        assert!(
            opened.elapsed() >= Duration::from_millis(300) * n,
            "heartbeat {n} early"
        );
    }
}

#[test]
fn ids_that_left_the_history_are_reported_as_missed() {
    let w = Builder::new().config("[hub]\nhistory = 3\n").start();
    for i in 1..=5 {
        publish(&w, "c", &format!("m{i}"));
    }
    let v = json(w.get("/hub/c?since=0", &[]));
    assert_eq!(
        (v["missed"]["from"].as_u64(), v["missed"]["to"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(datas(&v), ["m3", "m4", "m5"]);
    // The whole history, without a position, is not a miss.
    assert!(json(w.get("/hub/c", &[])).get("missed").is_none());
    let (mut ws, _) = connect_to(&w, "/hub/c?since=1", &[]);
    let m: Value = serde_json::from_slice(&ws.recv().unwrap().payload).unwrap();
    assert_eq!(m["missed"]["to"], 2);
    let m: Value = serde_json::from_slice(&ws.recv().unwrap().payload).unwrap();
    assert_eq!(m["id"], 3);
}

/// An event stream resumed from an id that left the history begins with a `missed`
/// event naming the ids lost, then what is kept.
#[test]
fn event_streams_say_what_left_the_history() {
    let w = Builder::new().config("[hub]\nhistory = 2\n").start();
    for i in 1..=4 {
        publish(&w, "s", &format!("m{i}"));
    }
    let lines: Vec<String> = event_stream(&w, "/hub/s", Some("1"))
        .map(Result::unwrap)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    assert_eq!(
        lines,
        [
            "retry: 2000",
            "event: missed",
            "data: {\"from\":2,\"to\":2}",
            "id: 3"
        ]
    );
}

/// `history_ttl`: a message leaves the history once older than it, and a client that
/// asks from before it is told what it missed.
#[test]
fn messages_leave_the_history_after_history_ttl() {
    let w = Builder::new()
        .config("[hub]\nhistory_ttl = \"2s\"\n")
        .start();
    let published = Instant::now();
    publish(&w, "brief", "soon gone");
    assert_eq!(
        datas(&json(w.get("/hub/brief?since=0", &[]))),
        ["soon gone"]
    );
    let gone = loop {
        let v = json(w.get("/hub/brief?since=0", &[]));
        if datas(&v).is_empty() {
            break v;
        }
        assert!(
            published.elapsed() < PATIENCE,
            "still kept after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        published.elapsed() >= Duration::from_secs(2),
        "gone before history_ttl"
    );
    assert_eq!(
        (
            gone["missed"]["from"].as_u64(),
            gone["missed"]["to"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn tokens_and_anonymous_rights() {
    let w = Builder::new()
        .config(
            "[hub.anonymous]\nsubscribe = [\"public.*\"]\n\
             [[hub.token]]\ntoken = \"0123456789abcdef-writer\"\npublish = [\"*\"]\nsubscribe = [\"*\"]\n",
        )
        .start();
    let c = w.client();
    let post = |path: &str, auth: Option<&str>| {
        let mut r = c.post(w.url(path)).body("x");
        if let Some(t) = auth {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        r.send().unwrap()
    };
    let res = post("/hub/public.news", None);
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"wharf hub\""
    );
    let res = post("/hub/public.news", Some("wrong-token-0000000"));
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(
        post("/hub/public.news", Some("0123456789abcdef-writer")).status(),
        200
    );
    assert_eq!(
        post("/hub/_files", Some("0123456789abcdef-writer")).status(),
        403
    );
    assert_eq!(w.get("/hub/public.news", &[]).status(), 200);
    assert_eq!(w.get("/hub/private", &[]).status(), 401);
    assert_eq!(
        w.get("/hub/private?token=0123456789abcdef-writer", &[])
            .status(),
        200
    );
}

/// Zero config with a listener off loopback (here every address): the hub takes no
/// anonymous publish or subscribe, and with no token configured nobody may use it;
/// the files are served as ever.
#[test]
fn anonymous_clients_need_a_token_when_a_listener_is_off_loopback() {
    let w = Builder::new().listen("0.0.0.0:0").start();
    w.wait_for_output("hub at /hub/ (tokens only: a listener is not on loopback)");
    let res = w
        .client()
        .post(w.url("/hub/chat"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(w.get("/hub/chat", &[]).status(), 401);
    assert_eq!(w.get("/hub/chat?since=0", &[]).status(), 401);
    assert_eq!(w.get("/hello.txt", &[]).status(), 200);
}

#[test]
fn history_survives_a_restart_with_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[hub]\ndata_dir = \"{}\"\n", dir.path().display());
    let w = Builder::new().config(&config).start();
    for t in ["a", "b", "c"] {
        publish(&w, "log", t);
    }
    drop(w); // killed, not shut down: nothing is written at exit
    let w = Builder::new().config(&config).start();
    assert_eq!(datas(&json(w.get("/hub/log?since=1", &[]))), ["b", "c"]);
    assert_eq!(publish(&w, "log", "d"), 4, "ids continue");
}

#[test]
fn bad_requests_get_clear_statuses_and_others_are_served() {
    let w = Builder::new()
        .config("[hub]\nmax_message_size = 1000\n")
        .start();
    let c = w.client();
    let table: [(&str, &str, Vec<u8>, u16); 7] = [
        ("GET", "/hub/c?since=abc", vec![], 400),
        ("GET", "/hub/c?since=1&wait=soon", vec![], 400),
        ("GET", "/hub/bad%20name", vec![], 404),
        ("GET", "/hub/.hidden", vec![], 404),
        ("POST", "/hub/c", vec![b'x'; 1001], 413),
        ("POST", "/hub/c", vec![0xFF, 0xFE], 400),
        ("DELETE", "/hub/c", vec![], 405),
    ];
    for (method, path, body, status) in table {
        let res = c
            .request(method.parse().unwrap(), w.url(path))
            .body(body)
            .send()
            .unwrap();
        assert_eq!(res.status(), status, "{method} {path}");
        assert!(json(res)["error"].is_string(), "{method} {path}: a reason");
    }
    let res = raw(
        &w,
        b"GET /hub/c HTTP/1.1\r\nHost: t\r\nLast-Event-ID: x\r\nAccept: text/event-stream\r\n\r\n",
    );
    assert_eq!(res.status, 400);
    assert_eq!(publish(&w, "c", "still served"), 1);
}

#[test]
fn file_changes_are_published_with_the_new_etag() {
    let w = Builder::new().start(); // zero-config: file_events on
    assert_eq!(w.get("/hello.txt", &[]).status(), 200); // its directory is now watched
    let changed = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| json(w.get("/hub/_files?since=0", &[])));
        wait_for_subscribers(&w, "_files", 1);
        std::fs::write(w.root().join("hello.txt"), "hello, again\n").unwrap();
        waiting.join().unwrap()
    });
    let event: Value =
        serde_json::from_str(changed["messages"][0]["data"].as_str().unwrap()).unwrap();
    let res = w.get("/hello.txt", &[]);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.bytes().unwrap(), "hello, again\n");
    assert_eq!(event["path"], "/hello.txt");
    assert_eq!(event["change"], "modified");
    assert_eq!(event["size"], 13);
    assert_eq!(event["etag"], etag.as_str(), "the ETag a GET now gets");
    // A deletion is published too.
    let last = changed["last"].as_u64().unwrap();
    std::fs::remove_file(w.root().join("hello.txt")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let deleted = loop {
        let v = json(w.get(&format!("/hub/_files?since={last}"), &[]));
        let found = v["messages"].as_array().unwrap().iter().find_map(|m| {
            let e: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
            (e["change"] == "deleted").then_some(e)
        });
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "no deletion event: {v}");
    };
    assert_eq!(
        (deleted["path"].as_str(), deleted["etag"].as_str()),
        (Some("/hello.txt"), None)
    );
}

/// One HTTP/2 connection carries many event streams (no connection per stream).
#[test]
fn many_event_streams_share_one_http2_connection() {
    let w = Builder::new().start();
    common::within(async {
        let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
        let (client, conn) = ::h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut streams = Vec::new();
        for _ in 0..100 {
            let mut client = client.clone().ready().await.unwrap();
            let req = http::Request::get(format!("http://{}/hub/many", w.addr))
                .header("accept", "text/event-stream")
                .body(())
                .unwrap();
            let (res, _) = client.send_request(req, true).unwrap();
            streams.push(res);
        }
        let mut bodies = Vec::new();
        for res in streams {
            let res = res.await.unwrap();
            assert_eq!(res.status(), 200);
            let mut body = res.into_body();
            let first = body.data().await.unwrap().unwrap(); // "retry: 2000"
            assert!(first.starts_with(b"retry:"));
            bodies.push(body);
        }
        let publisher = tokio::task::spawn_blocking({
            let url = w.url("/hub/many");
            move || {
                let c = common::client();
                assert_eq!(c.post(url).body("to all").send().unwrap().status(), 200);
            }
        });
        publisher.await.unwrap();
        for mut body in bodies {
            let mut got = Vec::new();
            while !got.ends_with(b"\n\n") {
                let chunk = body.data().await.unwrap().unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(got).unwrap();
            assert!(
                text.starts_with("id: 1\n") && text.contains("to all"),
                "{text}"
            );
        }
    });
}

#[test]
fn server_sent_events_over_http3() {
    let w = Builder::new().proto(Proto::H3).start();
    publish(&w, "q", "before");
    common::within(async {
        let roots = std::fs::read(w.root_cert()).unwrap();
        let client = wharf_load::Client::new(&roots, "127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = client.connect(w.addr, "localhost").await.unwrap();
        let req = http::Request::get(w.url("/hub/q"))
            .header("accept", "text/event-stream")
            .header("last-event-id", "0")
            .body(bytes::Bytes::new())
            .unwrap();
        let mut res = conn.start(req).await.unwrap();
        assert_eq!(res.head.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        let mut read_until = async |needle: &str, text: &mut String| {
            while !text.contains(needle) {
                let chunk = res.chunk().await.unwrap().expect("the stream goes on");
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        read_until("id: 1\n", &mut text).await;
        let url = w.url("/hub/q");
        let root = w.root_cert();
        tokio::task::spawn_blocking(move || {
            let pem = std::fs::read(root).unwrap();
            let c = reqwest::blocking::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .build()
                .unwrap();
            assert_eq!(c.post(url).body("after").send().unwrap().status(), 200);
        })
        .await
        .unwrap();
        read_until("id: 2\n", &mut text).await;
        assert!(text.contains("\"data\":\"after\""), "{text}");
        conn.close();
    });
}

/// On shutdown, event streams end and waiting long-polls are answered at once, so
/// that wharf exits without waiting out its grace period (and clients go elsewhere).
#[test]
fn shutdown_ends_event_streams_and_answers_long_polls() {
    let mut w = Builder::new().start();
    let mut lines = event_stream(&w, "/hub/c", None);
    assert_eq!(lines.next().unwrap().unwrap(), "retry: 2000");
    let start = Instant::now();
    let answer = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| json(w.get("/hub/c?since=0", &[])));
        wait_for_subscribers(&w, "c", 2);
        w.signal("TERM");
        waiting.join().unwrap()
    });
    assert_eq!(datas(&answer).len(), 0, "answered empty");
    assert!(lines.all(|l| l.is_ok()), "the event stream ends cleanly");
    assert!(w.wait_exit().success());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "no grace period waited out"
    );
}

/// A client that closes its connection stops being a subscriber at once, whether it
/// was streaming events or waiting in a long-poll (not at the next heartbeat or the
/// end of the wait, a minute away here).
#[test]
fn subscribers_that_hang_up_are_gone_at_once() {
    let w = Builder::new()
        .config("[hub]\nsse_heartbeat = \"60s\"\nlong_poll_timeout = \"60s\"\n")
        .start();
    for request in [
        "GET /hub/c HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        "GET /hub/c?since=0 HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let mut s = w.tcp();
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        wait_for_subscribers(&w, "c", 1);
        drop(s);
        wait_for_subscribers(&w, "c", 0);
    }
    assert_eq!(publish(&w, "c", "still served"), 1);
}
