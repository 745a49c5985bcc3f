//! A DNS server for tests (the proxy's DNS discovery): answers A, AAAA and SRV
//! questions over UDP on 127.0.0.1 from a table the test changes, with a TTL of its
//! choosing, and counts the questions.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

type Table = HashMap<(String, RecordType), Vec<RData>>;

/// The server; it stops when dropped.
pub struct Dns {
    pub addr: SocketAddr,
    table: Arc<Mutex<Table>>,
    questions: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Dns {
    /// A server whose answers carry `ttl` seconds.
    pub fn start(ttl: u32) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Only so that the thread sees `stop`; answers are never waited for.
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dns = Dns {
            addr: socket.local_addr().unwrap(),
            table: Arc::default(),
            questions: Arc::default(),
            stop: Arc::default(),
        };
        let (table, questions, stop) = (dns.table.clone(), dns.questions.clone(), dns.stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                questions.fetch_add(1, Ordering::SeqCst);
                let answer = answer(&query, &table.lock().unwrap(), ttl);
                let _ = socket.send_to(&answer.to_vec().unwrap(), peer);
            }
        });
        dns
    }

    /// `127.0.0.1:PORT`, for `resolver`.
    pub fn resolver(&self) -> String {
        self.addr.to_string()
    }

    /// Questions answered so far.
    pub fn questions(&self) -> usize {
        self.questions.load(Ordering::SeqCst)
    }

    /// The A and AAAA records of `name`: its addresses.
    pub fn set_addresses(&self, name: &str, addrs: &[&str]) {
        let (mut a, mut aaaa) = (Vec::new(), Vec::new());
        for addr in addrs {
            match addr.parse().unwrap() {
                IpAddr::V4(v4) => a.push(RData::A(A(v4))),
                IpAddr::V6(v6) => aaaa.push(RData::AAAA(AAAA(v6))),
            }
        }
        self.set(name, RecordType::A, a);
        self.set(name, RecordType::AAAA, aaaa);
    }

    /// The SRV records of `name`: (priority, weight, port, target).
    pub fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)]) {
        let data = records
            .iter()
            .map(|(p, w, port, target)| {
                RData::SRV(SRV::new(*p, *w, *port, Name::from_ascii(target).unwrap()))
            })
            .collect();
        self.set(name, RecordType::SRV, data);
    }

    fn set(&self, name: &str, kind: RecordType, data: Vec<RData>) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.table.lock().unwrap().insert((name, kind), data);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The answer to `query`: the records of the table, NXDOMAIN for names it does not
/// have at all.
fn answer(query: &Message, table: &Table, ttl: u32) -> Message {
    let mut res = Message::response(query.metadata.id, OpCode::Query);
    res.metadata.authoritative = true;
    res.metadata.recursion_desired = query.metadata.recursion_desired;
    res.metadata.recursion_available = true;
    for q in &query.queries {
        res.add_query(q.clone());
        let name = q.name().to_ascii();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !table.keys().any(|(n, _)| *n == name) {
            res.metadata.response_code = ResponseCode::NXDomain;
            continue;
        }
        for data in table.get(&(name, q.query_type())).into_iter().flatten() {
            res.add_answer(Record::from_rdata(q.name().clone(), ttl, data.clone()));
        }
    }
    res
}
