//! `grpc-echo serve ADDR`: the echo service on ADDR (h2c), until killed.
//! `grpc-echo load URL -c CONNECTIONS -m IN_FLIGHT -d SECONDS`: unary calls, each
//! connection keeping IN_FLIGHT calls going, for SECONDS; prints one JSON line with
//! the calls completed and failed and the seconds measured. Used by bench/proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use wharf_grpc_echo::{EchoClient, EchoServer, EchoService, Msg};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    match args.first().map(String::as_str) {
        Some("serve") => rt.block_on(serve(args.get(1).expect("serve ADDR"))),
        Some("load") => rt.block_on(load(&args[1..])),
        _ => {
            eprintln!("usage: grpc-echo serve ADDR | load URL [-c N] [-m N] [-d SECONDS]");
            std::process::exit(2);
        }
    }
}

async fn serve(addr: &str) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    tonic::transport::Server::builder()
        .add_service(EchoServer::new(EchoService::named("origin")))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
        .expect("serve");
}

async fn load(args: &[String]) {
    let url = args.first().expect("load URL").clone();
    let flag = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (conns, in_flight, secs) = (flag("-c", 8), flag("-m", 16), flag("-d", 10));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let channel = Channel::from_shared(url.clone())
            .expect("a URL")
            .connect()
            .await
            .expect("connect");
        for _ in 0..in_flight {
            let mut client = EchoClient::new(channel.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let msg = Msg {
                        text: "ping".into(),
                    };
                    match client.unary(msg).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "{{\"requests\":{},\"failed\":{},\"seconds\":{}}}",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
}
