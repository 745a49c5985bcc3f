//! Two wharf nodes sharing the hub through a real `redis-server` (`hub.redis`): a
//! message published on one reaches subscribers of every transport on the other with
//! one id sequence, and a client that reconnects to the other node resumes without
//! loss.

mod common;

use std::time::Instant;

use common::hub::{event_stream, json, messages, publish, wait_for_subscribers};
use common::redis::Redis;
use common::ws::connect_to;
use common::{Builder, Wharf, PATIENCE};
use serde_json::Value;

/// A hub node sharing channels through `redis`.
fn node(redis: &Redis) -> Wharf {
    Builder::new()
        .config(&format!("[hub]\nredis = \"{}\"\n", redis.url()))
        .start()
}

#[test]
fn a_publish_on_one_node_reaches_every_transport_on_the_other() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    // On B: a WebSocket, an event stream and a long-poll, all waiting.
    let (mut ws, _) = connect_to(&b, "/hub/room", &[]);
    let mut sse = event_stream(&b, "/hub/room", None).map(Result::unwrap);
    assert_eq!(sse.next().unwrap(), "retry: 2000");
    std::thread::scope(|scope| {
        let poll = scope.spawn(|| json(b.get("/hub/room?since=0", &[])));
        wait_for_subscribers(&b, "room", 3);
        assert_eq!(publish(&a, "room", "from A"), 1);
        assert_eq!(messages(&poll.join().unwrap()), [(1, "from A".to_owned())]);
    });
    let m: Value = serde_json::from_slice(&ws.recv().unwrap().payload).unwrap();
    assert_eq!(
        (m["id"].as_u64(), m["data"].as_str()),
        (Some(1), Some("from A"))
    );
    let sse_id = sse.find(|l| l.starts_with("id: ")).unwrap();
    assert_eq!(sse_id, "id: 1");
    // One id sequence across nodes.
    assert_eq!(publish(&b, "room", "from B"), 2);
    assert_eq!(publish(&a, "room", "from A again"), 3);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = messages(&json(a.get("/hub/room?since=0&wait=1", &[])));
        if all.len() == 3 {
            let ids: Vec<u64> = all.iter().map(|m| m.0).collect();
            assert_eq!(ids, [1, 2, 3]);
            break;
        }
        assert!(Instant::now() < deadline, "{all:?}");
    }
}

#[test]
fn a_client_resumes_on_the_other_node_without_loss() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    publish(&a, "feed", "one");
    publish(&a, "feed", "two");
    // The client read up to 2 on A, then lost A; meanwhile more came, on both nodes.
    let seen = messages(&json(a.get("/hub/feed?since=0", &[])));
    assert_eq!(seen.last().unwrap().0, 2);
    publish(&b, "feed", "three");
    publish(&a, "feed", "four");
    // Reconnecting to B (which never served this channel) with its last id.
    let rest = messages(&json(b.get("/hub/feed?since=2", &[])));
    assert_eq!(rest, [(3, "three".to_owned()), (4, "four".to_owned())]);
    // An event stream resumes with Last-Event-ID the same way.
    let id = event_stream(&b, "/hub/feed", Some("3"))
        .map(Result::unwrap)
        .find(|l| l.starts_with("id: "));
    assert_eq!(id.as_deref(), Some("id: 4"));
}
