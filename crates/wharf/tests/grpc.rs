//! gRPC through `wharf proxy`: tonic clients and tonic servers (h2c upstreams), every
//! kind of call, deadlines, and an upstream that dies mid-stream.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Builder, Wharf};
use tonic::transport::Channel;
use wharf_grpc_echo::{EchoClient, Msg, Server, StreamRequest};

/// `wharf proxy` (cleartext: h2c from the clients) in front of `upstreams`.
fn proxy_to(upstreams: &[&Server]) -> Wharf {
    let urls: Vec<String> = upstreams
        .iter()
        .map(|s| format!("h2c://{}", s.addr))
        .collect();
    let mut args = Vec::new();
    for u in &urls {
        args.extend(["--to", u.as_str()]);
    }
    Builder::new().proxy(&args).start()
}

async fn client(w: &Wharf) -> EchoClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", w.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    EchoClient::new(channel)
}

#[test]
fn every_kind_of_call_passes_through_balanced_per_call() {
    let (a, b) = (Server::start("a"), Server::start("b"));
    let w = proxy_to(&[&a, &b]);
    common::within(async {
        let mut c = client(&w).await;
        let mut names = HashSet::new();
        for i in 0..4 {
            let text = format!("hello {i}");
            let reply = c
                .unary(Msg { text: text.clone() })
                .await
                .unwrap()
                .into_inner();
            let (name, echoed) = reply.text.split_once(": ").unwrap();
            assert_eq!(echoed, text);
            names.insert(name.to_owned());
        }
        assert_eq!(
            names.len(),
            2,
            "one client connection, calls over both upstreams"
        );

        let req = StreamRequest {
            text: "tick".into(),
            count: 5,
            interval_ms: 5,
        };
        let mut stream = c.server_stream(req).await.unwrap().into_inner();
        let mut got = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            got.push(m.text.split_once(": ").unwrap().1.to_owned());
        }
        assert_eq!(
            got,
            ["tick 0", "tick 1", "tick 2", "tick 3", "tick 4"],
            "then status OK in the trailers"
        );

        let outgoing = tokio_stream::iter((0..3).map(|i| Msg {
            text: format!("m{i}"),
        }));
        let mut echoes = c.bidi(outgoing).await.unwrap().into_inner();
        let mut back = Vec::new();
        while let Some(m) = echoes.message().await.unwrap() {
            back.push(m.text.split_once(": ").unwrap().1.to_owned());
        }
        assert_eq!(back, ["m0", "m1", "m2"]);

        let reply = c
            .unary(Msg {
                text: "still".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(reply.text.ends_with(": still"));
    });
}

/// A deadline (`grpc-timeout`) reaches the upstream, whose status for the expired
/// call comes back through the proxy. Sent with the h2 crate: tonic's client would also cut the
/// call itself at the deadline, racing the upstream's answer.
#[test]
fn a_deadline_expires_at_the_upstream_and_its_status_comes_back() {
    let a = Server::start("a");
    let w = proxy_to(&[&a]);
    common::within(async {
        let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let req = http::Request::post(format!("http://{}/wharf.echo.Echo/Slow", w.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "200m")
            .body(())
            .unwrap();
        let (res, mut send) = client.send_request(req, false).unwrap();
        // SlowRequest { millis: 5000 } (field 1, varint), in one uncompressed gRPC frame.
        let message = [0x08, 0x88, 0x27];
        let mut frame = vec![0u8, 0, 0, 0, message.len() as u8];
        frame.extend_from_slice(&message);
        send.send_data(frame.into(), true).unwrap();
        let start = Instant::now();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        let fields = match res.headers().contains_key("grpc-status") {
            true => res.headers().clone(), // a trailers-only response
            false => {
                let mut body = res.into_body();
                while body.data().await.is_some() {}
                body.trailers().await.unwrap().expect("trailers")
            }
        };
        // tonic's server ends a call past its deadline with CANCELLED and "Timeout
        // expired" (other servers say DEADLINE_EXCEEDED): what the upstream says, the
        // client hears.
        assert_eq!(fields["grpc-status"], "1");
        assert_eq!(
            fields["grpc-message"], "Timeout%20expired",
            "percent-encoded"
        );
        assert!(start.elapsed() < Duration::from_secs(3));
    });
}

#[test]
fn an_upstream_that_dies_mid_stream_fails_the_call_not_ends_it() {
    let mut a = Server::start("a");
    let w = proxy_to(&[&a]);
    common::within(async {
        let mut c = client(&w).await;
        let req = StreamRequest {
            text: "t".into(),
            count: 10_000,
            interval_ms: 10,
        };
        let mut stream = c.server_stream(req).await.unwrap().into_inner();
        assert!(stream.message().await.unwrap().is_some());
        a.kill();
        let end = loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        let status = end.expect_err("a dead upstream is an error, never a clean end");
        assert_ne!(status.code(), tonic::Code::Ok, "{status:?}");
    });
    let res = w.get("/wharf.echo.Echo/Unary", &[]);
    assert_eq!(res.status(), 502, "the only upstream is gone");
}
