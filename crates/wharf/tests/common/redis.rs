//! A real `redis-server` for tests (the hub's nodes, the proxy's service discovery).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::PATIENCE;

/// A `redis-server` on a free loopback port, stopped when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    /// A redis-server on a free port, answering PING. The port is free when chosen
    /// but another test's server may take it first: then redis-server exits (or
    /// something else answers) and another port is tried.
    pub fn start() -> Redis {
        for _ in 0..5 {
            if let Some(redis) = Redis::try_start() {
                return redis;
            }
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    fn try_start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (the CI installs Debian's redis-server)");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if child.try_wait().unwrap().is_some() {
                return None; // the port was taken
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut pong = [0u8; 7];
                let answered = s.set_read_timeout(Some(PATIENCE)).is_ok()
                    && s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut pong).is_ok();
                if answered && &pong == b"+PONG\r\n" {
                    return Some(Redis { child, port });
                }
                let _ = child.kill();
                let _ = child.wait();
                return None; // another server has the port
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::yield_now();
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command (its arguments without spaces) and returns the reply's
    /// first line.
    pub fn cmd(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
