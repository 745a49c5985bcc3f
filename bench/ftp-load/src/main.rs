//! The load generator of bench/ftp: one big download or upload (timed from the 150
//! reply to the 226), or many concurrent sessions that each log in, list a directory
//! and download small files (timed from the first connect to the last QUIT).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

/// At most this many sessions between connect() and the server's greeting at once:
/// a burst beyond a server's listen backlog is dropped by the kernel (syncookies),
/// leaving clients that believe they are connected waiting forever. vsftpd listens
/// with a backlog of 32.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    fn enter(&self) {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.cv.wait(free).unwrap();
        }
        *free -= 1;
    }

    fn leave(&self) {
        *self.free.lock().unwrap() += 1;
        self.cv.notify_one();
    }
}

struct Control {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Control {
    fn login(addr: SocketAddr, user: &str, pass: &str) -> Result<Control, String> {
        Self::login_gated(addr, user, pass, None)
    }

    fn login_gated(
        addr: SocketAddr,
        user: &str,
        pass: &str,
        gate: Option<&Gate>,
    ) -> Result<Control, String> {
        if let Some(g) = gate {
            g.enter();
        }
        let greeted = Self::greeted(addr);
        if let Some(g) = gate {
            g.leave();
        }
        let mut c = greeted?;
        c.cmd(&format!("USER {user}"), 331)?;
        c.cmd(&format!("PASS {pass}"), 230)?;
        c.cmd("TYPE I", 200)?;
        Ok(c)
    }

    fn greeted(addr: SocketAddr) -> Result<Control, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Control {
            reader: BufReader::new(stream.try_clone().map_err(|e| e.to_string())?),
            stream,
        };
        c.expect(220)?;
        Ok(c)
    }

    fn reply(&mut self) -> Result<(u16, String), String> {
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(|e| format!("reply: {e}"))?;
        if line.len() < 4 {
            return Err(format!("short reply {line:?}"));
        }
        let code: u16 = line[..3].parse().map_err(|_| format!("bad reply {line:?}"))?;
        if line.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let mut more = String::new();
                if self.reader.read_line(&mut more).map_err(|e| e.to_string())? == 0 {
                    return Err("cut reply".into());
                }
                if more.starts_with(&end) {
                    break;
                }
            }
        }
        Ok((code, line))
    }

    fn expect(&mut self, want: u16) -> Result<String, String> {
        let (code, text) = self.reply()?;
        if code != want {
            return Err(format!("expected {want}, got {}", text.trim_end()));
        }
        Ok(text)
    }

    fn cmd(&mut self, line: &str, want: u16) -> Result<String, String> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        self.expect(want)
    }

    /// EPSV, then the data connection.
    fn data(&mut self) -> Result<TcpStream, String> {
        let text = self.cmd("EPSV", 229)?;
        let port: u16 = text
            .split('|')
            .nth(3)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("bad EPSV reply {text:?}"))?;
        let ip = self.stream.peer_addr().map_err(|e| e.to_string())?.ip();
        let d = TcpStream::connect((ip, port)).map_err(|e| format!("data connect: {e}"))?;
        d.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        Ok(d)
    }

    /// A download (or listing) into `buf`; the bytes received.
    fn fetch(&mut self, command: &str, buf: &mut [u8]) -> Result<u64, String> {
        let mut d = self.data()?;
        self.cmd(command, 150)?;
        let mut n = 0u64;
        loop {
            match d.read(buf) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) => return Err(format!("data read: {e}")),
            }
        }
        drop(d); // closed at once, as clients do: some servers wait for it before 226
        self.expect(226)?;
        Ok(n)
    }
}

struct Args {
    cmd: String,
    addr: SocketAddr,
    user: String,
    pass: String,
    file: String,
    name: String,
    size: u64,
    sessions: usize,
    count: u32,
    list: String,
    files: Vec<String>,
    /// For `stor`: the server's root, where each upload is synced to disk after its
    /// 226 (for servers that do not), the time counted.
    sync_dir: Option<std::path::PathBuf>,
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        cmd: it.next().expect("retr | stor | sessions"),
        addr: "127.0.0.1:21".parse().unwrap(),
        user: "anonymous".into(),
        pass: "bench@".into(),
        file: String::new(),
        name: String::new(),
        size: 0,
        sessions: 200,
        count: 1,
        list: String::new(),
        files: Vec::new(),
        sync_dir: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = v.parse().expect("--addr HOST:PORT"),
            "--user" => a.user = v,
            "--pass" => a.pass = v,
            "--file" => a.file = v,
            "--name" => a.name = v,
            "--size" => a.size = v.parse().expect("--size BYTES"),
            "--sessions" => a.sessions = v.parse().expect("--sessions N"),
            "--count" => a.count = v.parse().expect("--count N"),
            "--list" => a.list = v,
            "--files" => a.files = v.split(',').map(str::to_owned).collect(),
            "--sync-dir" => a.sync_dir = Some(v.into()),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// `--count` downloads of `--file` in one session, back to back; the time counted is
/// from each 150 to its 226.
fn retr(a: &Args) -> Result<String, String> {
    let mut c = Control::login(a.addr, &a.user, &a.pass)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut n, mut secs) = (0u64, 0f64);
    for _ in 0..a.count {
        let mut d = c.data()?;
        c.cmd(&format!("RETR {}", a.file), 150)?;
        let start = Instant::now();
        loop {
            match d.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) => return Err(format!("data read: {e}")),
            }
        }
        drop(d);
        c.expect(226)?;
        secs += start.elapsed().as_secs_f64();
    }
    let _ = c.cmd("QUIT", 221);
    Ok(format!("{{\"bytes\":{n},\"seconds\":{secs}}}"))
}

/// `--count` uploads of `--size` bytes to `--name` (with `.N` appended after the
/// first), back to back; the time counted is from each 150 to its 226 (and, with
/// `--sync-dir`, to the end of an `fdatasync` of the file the server wrote).
fn stor(a: &Args) -> Result<String, String> {
    let mut c = Control::login(a.addr, &a.user, &a.pass)?;
    let chunk: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut secs = 0f64;
    for i in 0..a.count {
        let name = if i == 0 { a.name.clone() } else { format!("{}.{i}", a.name) };
        let mut d = c.data()?;
        c.cmd(&format!("STOR {name}"), 150)?;
        let start = Instant::now();
        let mut left = a.size;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            d.write_all(&chunk[..k]).map_err(|e| format!("data write: {e}"))?;
            left -= k as u64;
        }
        drop(d);
        c.expect(226)?;
        if let Some(dir) = &a.sync_dir {
            std::fs::File::open(dir.join(&name))
                .and_then(|f| f.sync_data())
                .map_err(|e| format!("sync {name}: {e}"))?;
        }
        secs += start.elapsed().as_secs_f64();
    }
    let _ = c.cmd("QUIT", 221);
    Ok(format!(
        "{{\"bytes\":{},\"seconds\":{secs}}}",
        a.size * u64::from(a.count)
    ))
}

fn one_session(a: &Args, gate: &Gate) -> Result<u64, String> {
    let mut c = Control::login_gated(a.addr, &a.user, &a.pass, Some(gate))?;
    let mut buf = vec![0u8; 64 << 10];
    let mut n = c.fetch(&format!("LIST {}", a.list), &mut buf)?;
    for f in &a.files {
        n += c.fetch(&format!("RETR {f}"), &mut buf)?;
    }
    c.cmd("QUIT", 221)?;
    Ok(n)
}

fn sessions(a: Arc<Args>) -> Result<String, String> {
    let barrier = Arc::new(Barrier::new(a.sessions + 1));
    let gate = Arc::new(Gate {
        free: Mutex::new(32),
        cv: Condvar::new(),
    });
    let threads: Vec<_> = (0..a.sessions)
        .map(|_| {
            let (a, barrier, gate) = (a.clone(), barrier.clone(), gate.clone());
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    barrier.wait();
                    one_session(&a, &gate)
                })
                .expect("thread")
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut bytes = 0;
    let mut errors = Vec::new();
    for t in threads {
        match t.join().expect("session thread") {
            Ok(n) => bytes += n,
            Err(e) => errors.push(e),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let first = errors.first().map(|e| format!("{e:?}")).unwrap_or("null".into());
    Ok(format!(
        "{{\"sessions\":{},\"failed\":{},\"bytes\":{bytes},\"seconds\":{secs},\"first_error\":{first}}}",
        a.sessions,
        errors.len()
    ))
}

fn main() {
    let a = parse();
    let out = match a.cmd.as_str() {
        "retr" => retr(&a),
        "stor" => stor(&a),
        "sessions" => sessions(Arc::new(a)),
        other => Err(format!("unknown command {other}")),
    };
    match out {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("ftp-load: {e}");
            std::process::exit(1);
        }
    }
}
