//! Helpers for FTP tests: wharf with FTP listeners, a raw control connection for edge
//! cases, and suppaftp clients for the real exchanges.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{listening_addr, Builder, Wharf, PATIENCE};

/// The FTP user of the tests.
pub const USER: &str = "alice";
/// Their password.
pub const PASSWORD: &str = "s3cret";

/// A builder serving FTP on a free port with the test user.
pub fn builder() -> Builder {
    Builder::new()
        .arg("--ftp-listen")
        .arg("127.0.0.1:0")
        .arg("--ftp-user")
        .arg(&format!("{USER}:{PASSWORD}"))
}

/// The address of the first `ftp://` (or, with `implicit`, `ftps://`) listener.
pub fn addr(w: &Wharf, implicit: bool) -> SocketAddr {
    let scheme = if implicit { "ftps://" } else { "ftp://" };
    listening_addr(
        &w.wait_for_output(&format!("listening on {scheme}")),
        scheme,
    )
}

/// A logged-in suppaftp client.
pub fn client(w: &Wharf) -> suppaftp::FtpStream {
    let mut ftp = suppaftp::FtpStream::connect(addr(w, false)).unwrap();
    ftp.get_ref().set_read_timeout(Some(PATIENCE)).unwrap();
    ftp.login(USER, PASSWORD).unwrap();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    ftp
}

/// A control connection spoken line by line.
pub struct Raw {
    reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl Raw {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut raw = Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        assert_eq!(raw.reply().0, 220);
        raw
    }

    /// Connects and logs in as the test user.
    pub fn login(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr);
        assert_eq!(raw.cmd(&format!("USER {USER}")).0, 331);
        assert_eq!(raw.cmd(&format!("PASS {PASSWORD}")).0, 230);
        raw
    }

    /// Sends `line` (CRLF added) and reads the reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    pub fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// One reply (all lines of a multi-line one): its code and text.
    pub fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        let mut first = String::new();
        self.reader.read_line(&mut first).unwrap();
        assert!(first.len() >= 4, "no reply: {first:?}");
        let code: u16 = first[..3].parse().unwrap();
        text.push_str(&first[4..]);
        if first.as_bytes()[3] == b'-' {
            loop {
                let mut line = String::new();
                assert!(self.reader.read_line(&mut line).unwrap() > 0, "cut reply");
                text.push_str(&line);
                if line.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        (code, text)
    }

    /// Whether the server closed the connection (end of stream).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }

    /// `EPSV`, then a data connection to the port it names.
    pub fn epsv_connect(&mut self) -> TcpStream {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "{text}");
        let port: u16 = text.split('|').nth(3).unwrap().parse().unwrap();
        let ip = self.stream.peer_addr().unwrap().ip();
        let data = TcpStream::connect((ip, port)).unwrap();
        data.set_read_timeout(Some(PATIENCE)).unwrap();
        data
    }
}

/// Reads a data connection to its end.
pub fn read_all(mut data: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    data.read_to_end(&mut out).unwrap();
    out
}
