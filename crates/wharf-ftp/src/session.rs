//! One control connection, command by command.
//!
//! Commands are read and answered in order. A transfer runs beside the loop so that
//! `ABOR` and `STAT` are answered while it runs (RFC 959 §4.1.3); any other command
//! waits for the transfer's own reply first, as the RFC's one-reply-at-a-time model
//! requires. Changes to files are reported to [`crate::Config::on_change`] before the
//! reply that tells the client they are done.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wharf_http::path::SafePath;

use crate::ascii;
use crate::command::{self, Command, Type};
use crate::data::{self, ConnectError, Done, Job, Plan, Progress, RateLimit, TransferError};
use crate::listing::{self, Facts};
use crate::path;
use crate::reply::Reply;
use crate::server::Server;
use crate::tree::{FsError, Tree, UPLOAD_PREFIX};

/// The control connection's byte stream: cleartext until `AUTH TLS`, or TLS from
/// the start on an implicit-FTPS listener.
pub(crate) enum Control {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, usize),
    /// Between the two, while the handshake runs.
    Gone,
}

impl Control {
    /// A control connection secured by `accepted`.
    pub(crate) fn tls(accepted: wharf_tls::Accepted) -> Control {
        Control::Tls(Box::new(accepted.stream), accepted.group)
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Control::Plain(t) => Some(t),
            Control::Tls(t, _) => Some(t.get_ref().0),
            Control::Gone => None,
        }
    }
}

impl AsyncRead for Control {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Control::Plain(t) => Pin::new(t).poll_read(cx, buf),
            Control::Tls(t, _) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Control::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Control {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Control::Plain(t) => Pin::new(t).poll_write(cx, b),
            Control::Tls(t, _) => Pin::new(t.as_mut()).poll_write(cx, b),
            Control::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Control::Plain(t) => Pin::new(t).poll_flush(cx),
            Control::Tls(t, _) => Pin::new(t.as_mut()).poll_flush(cx),
            Control::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Control::Plain(t) => Pin::new(t).poll_shutdown(cx),
            Control::Tls(t, _) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Control::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Reads command lines, bounded.
struct Wire {
    io: Control,
    buf: Vec<u8>,
    /// Bytes of an overlong line dropped so far.
    discarding: Option<usize>,
    /// Longest wait for the client to take a reply.
    timeout: std::time::Duration,
}

/// What the client sent.
enum Line {
    Command(Vec<u8>),
    /// A line over the limit (dropped).
    TooLong,
}

/// Most bytes of overlong lines dropped before the connection is closed.
const MAX_DISCARD: usize = 1 << 20;

impl Wire {
    /// The next line; `None` at the end of the stream. Cancel-safe: bytes read are
    /// kept in the buffer.
    async fn line(&mut self, max: usize) -> io::Result<Option<Line>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if self.discarding.take().is_some() || line.len() > max {
                    return Ok(Some(Line::TooLong));
                }
                command::strip_telnet(&mut line);
                return Ok(Some(Line::Command(line)));
            }
            if self.buf.len() > max {
                let dropped = self.discarding.unwrap_or(0) + self.buf.len();
                if dropped > MAX_DISCARD {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "endless line"));
                }
                self.discarding = Some(dropped);
                self.buf.clear();
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads what the client sent into the buffer; 0 at the end of the stream.
    /// Cancel-safe: bytes are kept as soon as they are read.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 2048];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Whether the client has closed the control connection, without waiting: a
    /// read that is ready at once with the end of the stream (or an error). Bytes it
    /// reads are kept for [`Wire::line`].
    async fn closed_now(&mut self) -> bool {
        let ready = tokio::time::timeout(std::time::Duration::ZERO, self.fill()).await;
        matches!(ready, Ok(Ok(0) | Err(_)))
    }

    /// Sends a reply; a client that does not read it within `timeout` is gone.
    async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        let write = async {
            self.io.write_all(reply.encode().as_bytes()).await?;
            self.io.flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }
}

/// A logged-in user.
struct Login {
    name: String,
    tree: Arc<Tree>,
    write: bool,
    rate: Option<Arc<RateLimit>>,
    anonymous: bool,
}

/// A transfer running beside the command loop.
struct Running {
    what: String,
    size: Option<u64>,
    progress: Arc<Progress>,
    task: JoinHandle<Result<Done, Failure>>,
    /// The path an upload will change.
    target: Option<SafePath>,
    started: Instant,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// Whether to go on after a command.
enum Flow {
    Continue,
    Close,
}

type Answer = Result<Flow, Reply>;

/// One session.
pub(crate) struct Session<'s> {
    server: &'s Server,
    wire: Wire,
    peer: SocketAddr,
    local: SocketAddr,
    shutdown: CancellationToken,
    running: Option<Running>,
    pending_user: Option<String>,
    login: Option<Login>,
    failures: u32,
    cwd: SafePath,
    ty: Type,
    rest: u64,
    rename_from: Option<SafePath>,
    facts: Facts,
    pbsz: bool,
    prot_private: bool,
    epsv_all: bool,
    plan: Option<Plan>,
}

/// Failed logins in one session before it is closed.
const SESSION_FAILURES: u32 = 3;

impl<'s> Session<'s> {
    pub(crate) fn new(
        server: &'s Server,
        io: Control,
        shutdown: CancellationToken,
    ) -> io::Result<Session<'s>> {
        let tcp = io.tcp().ok_or(io::ErrorKind::NotConnected)?;
        let (peer, local) = (tcp.peer_addr()?, tcp.local_addr()?);
        let implicit = matches!(io, Control::Tls(..));
        Ok(Session {
            server,
            wire: Wire {
                io,
                buf: Vec::new(),
                discarding: None,
                timeout: server.config.idle_timeout,
            },
            peer,
            local,
            shutdown,
            running: None,
            pending_user: None,
            login: None,
            failures: 0,
            cwd: path::root(),
            ty: Type::Ascii,
            rest: 0,
            rename_from: None,
            facts: Facts::default(),
            pbsz: implicit,
            prot_private: implicit,
            epsv_all: false,
            plan: None,
        })
    }

    fn cfg(&self) -> &'s crate::Config {
        &self.server.config
    }

    /// Serves the connection until `QUIT`, the client leaves, a timeout or shutdown.
    pub(crate) async fn run(mut self) {
        let greeting = Reply::new(220, "wharf FTP server ready.");
        if self.wire.send(&greeting).await.is_err() {
            return;
        }
        tracing::debug!(target: "wharf::ftp", peer = %self.peer, "session started");
        loop {
            let idle = self.cfg().idle_timeout;
            let busy = self.running.is_some();
            let event = tokio::select! {
                biased;
                line = self.wire.line(self.server.config.max_line) => Event::Line(line),
                done = wait(&mut self.running), if busy => Event::Done(done),
                _ = self.shutdown.cancelled(), if !busy => Event::Shutdown,
                _ = tokio::time::sleep(idle), if !busy => Event::Idle,
            };
            let flow = match event {
                Event::Line(Ok(Some(Line::Command(line)))) => self.command(&line).await,
                Event::Line(Ok(Some(Line::TooLong))) => {
                    let max = self.cfg().max_line;
                    self.reply(Reply::new(
                        500,
                        format!("Command line too long (over {max} bytes)."),
                    ))
                    .await
                }
                Event::Line(Ok(None) | Err(_)) => {
                    // The client left: a transfer still running is abandoned (an
                    // upload keeps the previous file).
                    if let Some(r) = self.running.take() {
                        self.abandon(r).await;
                    }
                    Flow::Close
                }
                Event::Done(done) => self.finish(done).await,
                Event::Shutdown => {
                    let _ = self
                        .wire
                        .send(&Reply::new(421, "Server shutting down."))
                        .await;
                    Flow::Close
                }
                Event::Idle => {
                    let secs = idle.as_secs();
                    let _ = self
                        .wire
                        .send(&Reply::new(
                            421,
                            format!("No command for {secs} s; closing."),
                        ))
                        .await;
                    Flow::Close
                }
            };
            if let Flow::Close = flow {
                let _ = self.wire.io.shutdown().await;
                return;
            }
        }
    }

    async fn reply(&mut self, r: Reply) -> Flow {
        tracing::debug!(target: "wharf::ftp", peer = %self.peer, code = r.code(), text = r.text(), "reply");
        match self.wire.send(&r).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    async fn command(&mut self, line: &[u8]) -> Flow {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(r) => return self.reply(r).await,
        };
        tracing::debug!(target: "wharf::ftp", peer = %self.peer, verb = cmd.verb(), "command");
        // During a transfer only ABOR and STAT are answered at once.
        if self.running.is_some() && !matches!(cmd, Command::Abor | Command::Stat(None)) {
            let done = wait(&mut self.running).await;
            if let Flow::Close = self.finish(done).await {
                return Flow::Close;
            }
        }
        match self.dispatch(cmd).await {
            Ok(flow) => flow,
            Err(r) => self.reply(r).await,
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Answer {
        use Command::*;
        let needs_login = !matches!(
            cmd,
            User(_)
                | Pass(_)
                | Quit
                | Feat
                | Help
                | Noop
                | Auth(_)
                | Pbsz(_)
                | Prot(_)
                | Opts(_)
                | Syst
                | Rein
                | Abor
                | Stat(None)
        );
        if needs_login && self.login.is_none() {
            return Err(Reply::new(530, "Please log in with USER and PASS first."));
        }
        if !matches!(cmd, Rnfr(_) | Rnto(_)) {
            // RNTO must follow RNFR at once (RFC 959 §4.1.3).
            self.rename_from = None;
        }
        if !matches!(
            cmd,
            Rest(_) | Retr(_) | Stor(_) | Appe(_) | Pasv | Epsv(_) | Port(_) | Eprt(_) | Type(_)
        ) {
            // REST applies to the transfer that follows (RFC 3659 §5.3); setting up its
            // data connection and type may come between.
            self.rest = 0;
        }
        let reply = match cmd {
            User(name) => self.user(name),
            Pass(pw) => return self.pass(pw).await,
            Acct => Ok(Reply::new(202, "ACCT not needed.")),
            Cwd(arg) => self.cwd(&arg),
            Cdup => self.cwd(".."),
            Pwd => Ok(Reply::new(
                257,
                format!(
                    "{} is the current directory.",
                    quoted(&path::display(&self.cwd))
                ),
            )),
            Type(t) => {
                self.ty = t;
                Ok(Reply::new(
                    200,
                    match t {
                        command::Type::Ascii => "Type set to A.",
                        command::Type::Image => "Type set to I.",
                    },
                ))
            }
            Mode('S') => Ok(Reply::new(200, "Mode set to S.")),
            Mode(_) => Err(Reply::new(504, "Only MODE S (stream).")),
            Stru('F') => Ok(Reply::new(200, "Structure set to F.")),
            Stru(_) => Err(Reply::new(504, "Only STRU F (file).")),
            Allo => Ok(Reply::new(202, "ALLO not needed.")),
            Noop => Ok(Reply::new(200, "OK.")),
            Syst => Ok(Reply::new(215, "UNIX Type: L8")),
            Feat => Ok(self.feat()),
            Opts(o) => self.opts(&o),
            Help => Ok(Reply::multi(
                214,
                "Commands:",
                command::VERBS.chunks(12).map(|c| c.join(" ")),
                "Help OK.",
            )),
            Stat(None) => Ok(self.status()),
            Stat(Some(arg)) => self.stat_path(&arg),
            Abor => return self.abort().await,
            Quit => {
                let _ = self.wire.send(&Reply::new(221, "Goodbye.")).await;
                return Ok(Flow::Close);
            }
            Rein => {
                self.reinitialize();
                Ok(Reply::new(220, "Ready for a new user."))
            }
            Pasv => self.pasv().await,
            Epsv(arg) => self.epsv(arg).await,
            Port(to) | Eprt(to) => self.active(to),
            Rest(n) => {
                self.rest = n;
                Ok(Reply::new(
                    350,
                    format!("Restarting at {n}. Send STOR or RETR."),
                ))
            }
            Size(arg) => self.size(&arg).await,
            Mdtm(arg) => {
                let p = self.resolve(&arg)?;
                let (_, meta) = self.tree().open_file(&p).map_err(fs_reply)?;
                Ok(Reply::new(213, listing::time_val(meta.modified)))
            }
            Mlst(arg) => self.mlst(arg.as_deref()),
            Dele(arg) => self.change(&arg, |t, p| t.delete(p), "Deleted"),
            Rmd(arg) => self.change(&arg, |t, p| t.rmdir(p), "Removed"),
            Mkd(arg) => {
                let p = self.writable(&arg)?;
                self.tree().mkdir(&p).map_err(fs_reply)?;
                self.changed(&p);
                Ok(Reply::new(
                    257,
                    format!("{} created.", quoted(&path::display(&p))),
                ))
            }
            Rnfr(arg) => {
                let p = self.writable(&arg)?;
                if !self.tree().exists(&p) {
                    return Err(fs_reply(FsError::NotFound));
                }
                self.rename_from = Some(p);
                Ok(Reply::new(350, "Ready for RNTO."))
            }
            Rnto(arg) => {
                let from = self
                    .rename_from
                    .take()
                    .ok_or_else(|| Reply::new(503, "Send RNFR first."))?;
                let to = self.writable(&arg)?;
                self.tree().rename(&from, &to).map_err(fs_reply)?;
                self.changed(&from);
                self.changed(&to);
                Ok(Reply::new(250, "Renamed."))
            }
            Auth(mech) => return self.auth(&mech).await,
            Pbsz(_) => {
                if !matches!(self.wire.io, Control::Tls(..)) {
                    return Err(Reply::new(503, "Send AUTH TLS first."));
                }
                self.pbsz = true;
                Ok(Reply::new(200, "PBSZ=0"))
            }
            Prot(level) => self.prot(level),
            Retr(arg) => return self.retr(&arg).await,
            Stor(arg) => return self.store(&arg, false).await,
            Appe(arg) => return self.store(&arg, true).await,
            Stou => return self.stou().await,
            List(arg) => return self.list(arg.as_deref(), ListKind::Long).await,
            Nlst(arg) => return self.list(arg.as_deref(), ListKind::Names).await,
            Mlsd(arg) => return self.list(arg.as_deref(), ListKind::Facts).await,
        };
        // Success or failure, the reply is sent the same way.
        Err(reply.unwrap_or_else(|r| r))
    }
}

/// What woke the command loop.
enum Event {
    Line(io::Result<Option<Line>>),
    Done(Result<Done, Failure>),
    Shutdown,
    Idle,
}

/// Waits for the running transfer to end.
async fn wait(running: &mut Option<Running>) -> Result<Done, Failure> {
    let r = running.as_mut().expect("waited only while running");
    match (&mut r.task).await {
        Ok(result) => result,
        Err(e) => Err(Failure::Transfer(TransferError::Network(io::Error::other(
            e,
        )))),
    }
}

/// The TLS settings of a data connection: the control connection's, without TLS 1.3
/// session tickets. A ticket is sent after the handshake; an uploading client that
/// never reads it closes its socket with unread data, which the kernel turns into a
/// reset, and the server may see the reset before the last bytes (curl did, now and
/// then). Data connections resume the control connection's session instead.
fn data_tls(control: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut cfg = (**control).clone();
    cfg.send_tls13_tickets = 0;
    Arc::new(cfg)
}

/// A transfer asked for before its data connection was set up.
fn no_plan() -> Reply {
    Reply::new(425, "Use PASV, EPSV, PORT or EPRT first.")
}

/// The names of anonymous access (RFC 1635).
fn is_anonymous(user: &str) -> bool {
    user == "anonymous" || user == "ftp"
}

/// The RFC 2428 network protocol number of an address: 1 for IPv4, 2 for IPv6.
fn protocol(ip: IpAddr) -> u8 {
    if ip.to_canonical().is_ipv4() {
        1
    } else {
        2
    }
}

/// `"/a/b"` with embedded quotes doubled (RFC 959 Appendix II).
fn quoted(p: &str) -> String {
    format!("\"{}\"", p.replace('"', "\"\""))
}

fn fs_reply(e: FsError) -> Reply {
    Reply::new(e.code(), e.to_string())
}

/// Whether `ip` is on this machine or a private network (then passive mode gives the
/// server's own address, not the external one).
fn is_local_network(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Long,
    Names,
    Facts,
}

impl Session<'_> {
    fn tree(&self) -> &Arc<Tree> {
        &self.login.as_ref().expect("checked by dispatch").tree
    }

    fn resolve(&self, arg: &str) -> Result<SafePath, Reply> {
        let p = path::resolve(&self.cwd, arg)
            .map_err(|e| Reply::new(553, format!("File name not allowed: {}.", e.reason())))?;
        if p.segments().any(|s| s.starts_with(UPLOAD_PREFIX)) {
            return Err(Reply::new(
                553,
                "File name not allowed: an upload in progress.",
            ));
        }
        if self.login.as_ref().is_some_and(|l| l.anonymous) && p.any_hidden() {
            // Hidden from anonymous users, as from HTTP clients by default.
            return Err(fs_reply(FsError::NotFound));
        }
        Ok(p)
    }

    /// `arg` resolved, for a command that changes files.
    fn writable(&self, arg: &str) -> Result<SafePath, Reply> {
        if !self.login.as_ref().is_some_and(|l| l.write) {
            return Err(Reply::new(550, "Permission denied (read-only access)."));
        }
        self.resolve(arg)
    }

    fn change(
        &mut self,
        arg: &str,
        op: impl FnOnce(&Tree, &SafePath) -> Result<(), FsError>,
        done: &str,
    ) -> Result<Reply, Reply> {
        let p = self.writable(arg)?;
        op(self.tree(), &p).map_err(fs_reply)?;
        self.changed(&p);
        Ok(Reply::new(250, format!("{done} {}.", path::display(&p))))
    }

    /// Reports a change to the configuration's listener.
    fn changed(&self, p: &SafePath) {
        if let Some(cb) = &self.cfg().on_change {
            cb(&self.tree().path().join(p.relative_path()));
        }
    }

    fn user(&mut self, name: String) -> Result<Reply, Reply> {
        if self.login.is_some() {
            return Err(Reply::new(503, "Already logged in (REIN to start over)."));
        }
        if is_anonymous(&name) && self.cfg().anonymous {
            self.pending_user = Some(name);
            return Ok(Reply::new(
                331,
                "Anonymous login: send your e-mail address as password.",
            ));
        }
        if self.cfg().require_tls && !matches!(self.wire.io, Control::Tls(..)) {
            return Err(Reply::new(530, "Secure the connection first (AUTH TLS)."));
        }
        self.pending_user = Some(name);
        Ok(Reply::new(331, "Password required."))
    }

    async fn pass(&mut self, pw: String) -> Answer {
        let name = self
            .pending_user
            .take()
            .ok_or_else(|| Reply::new(503, "Log in with USER first."))?;
        let server = self.server;
        let ip = self.peer.ip();
        let anonymous = is_anonymous(&name) && self.cfg().anonymous;
        let login = if anonymous {
            Some(Login {
                name: name.clone(),
                tree: server.root.clone(),
                write: false,
                rate: None,
                anonymous: true,
            })
        } else if server.guard.locked(ip, Instant::now()).is_some() {
            // Locked out while this session was open: no more guesses.
            None
        } else {
            server.authenticate(&name, pw).await.map(|a| Login {
                name: a.name,
                tree: a.tree,
                write: a.write,
                rate: a.rate,
                anonymous: false,
            })
        };
        match login {
            Some(login) => {
                if !login.anonymous {
                    server.guard.succeeded(ip);
                }
                tracing::info!(target: "wharf::ftp", peer = %self.peer, user = login.name, "logged in");
                let text = format!("User {} logged in.", login.name);
                self.login = Some(login);
                self.cwd = path::root();
                Err(Reply::new(230, text))
            }
            None => {
                self.failures += 1;
                let locked = server.guard.failed(ip, Instant::now());
                tracing::warn!(target: "wharf::ftp", peer = %self.peer, user = name, locked, "login failed");
                tokio::time::sleep(self.cfg().login_delay).await;
                if self
                    .wire
                    .send(&Reply::new(530, "Login incorrect."))
                    .await
                    .is_err()
                {
                    return Ok(Flow::Close); // the client is gone
                }
                if locked || self.failures >= SESSION_FAILURES {
                    let _ = self
                        .wire
                        .send(&Reply::new(421, "Too many failed logins; closing."))
                        .await;
                    return Ok(Flow::Close);
                }
                Ok(Flow::Continue)
            }
        }
    }

    fn cwd(&mut self, arg: &str) -> Result<Reply, Reply> {
        let p = self.resolve(arg)?;
        self.tree().open_dir(&p).map_err(fs_reply)?;
        let shown = path::display(&p);
        self.cwd = p;
        Ok(Reply::new(250, format!("Directory changed to {shown}.")))
    }

    fn feat(&self) -> Reply {
        let mut lines = vec![
            "EPRT".to_owned(),
            "EPSV".to_owned(),
            "MDTM".to_owned(),
            self.facts.feat(),
            "PASV".to_owned(),
            "REST STREAM".to_owned(),
            "SIZE".to_owned(),
            "TVFS".to_owned(),
            "UTF8".to_owned(),
        ];
        if self.cfg().tls.is_some() {
            lines.extend(["AUTH TLS".to_owned(), "PBSZ".to_owned(), "PROT".to_owned()]);
        }
        Reply::multi(211, "Features:", lines, "End")
    }

    fn opts(&mut self, o: &str) -> Result<Reply, Reply> {
        let (name, value) = o.split_once(' ').unwrap_or((o, ""));
        match name.to_ascii_uppercase().as_str() {
            "UTF8" if value.eq_ignore_ascii_case("ON") || value.is_empty() => {
                Ok(Reply::new(200, "UTF8 is always on."))
            }
            "UTF8" => Err(Reply::new(504, "UTF8 cannot be turned off.")),
            "MLST" => {
                self.facts = Facts::select(value);
                Ok(Reply::new(200, format!("MLST OPTS {}", self.facts.names())))
            }
            _ => Err(Reply::new(501, format!("No options for {name}."))),
        }
    }

    fn status(&self) -> Reply {
        let mut lines = vec![format!("Connected from {}.", self.peer.ip())];
        match &self.login {
            Some(l) => lines.push(format!("Logged in as {}.", l.name)),
            None => lines.push("Not logged in.".to_owned()),
        }
        lines.push(format!(
            "TYPE: {}; MODE: S; STRU: F.",
            if self.ty == Type::Ascii { "A" } else { "I" }
        ));
        lines.push(format!(
            "Control connection: {}; data protection: {}.",
            if matches!(self.wire.io, Control::Tls(..)) {
                "TLS"
            } else {
                "clear"
            },
            if self.prot_private {
                "private"
            } else {
                "clear"
            }
        ));
        if let Some(r) = &self.running {
            let of = r.size.map(|s| format!(" of {s}")).unwrap_or_default();
            lines.push(format!(
                "Transferring {}: {}{of} bytes, {} s.",
                r.what,
                r.progress.bytes(),
                r.started.elapsed().as_secs()
            ));
        }
        Reply::multi(211, "wharf FTP server status:", lines, "End of status.")
    }

    fn stat_path(&self, arg: &str) -> Result<Reply, Reply> {
        let p = self.resolve(command::list_path(Some(arg)).as_deref().unwrap_or("."))?;
        let (lines, dir) = self.listing_lines(&p, ListKind::Long)?;
        // RFC 959 §4.2: 212 directory status, 213 file status.
        Ok(Reply::multi(
            if dir { 212 } else { 213 },
            format!("Status of {}:", path::display(&p)),
            lines,
            "End of status.",
        ))
    }

    fn mlst(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        let p = match arg {
            Some(a) => self.resolve(a)?,
            None => self.cwd.clone(),
        };
        let (_, meta) = self.tree().open(&p).map_err(fs_reply)?;
        let shown = path::display(&p);
        let line = self
            .facts
            .line(&meta, &shown, self.login.as_ref().is_some_and(|l| l.write));
        Ok(Reply::multi(
            250,
            format!("Listing {shown}"),
            [line],
            "End.",
        ))
    }

    async fn size(&self, arg: &str) -> Result<Reply, Reply> {
        let p = self.resolve(arg)?;
        let (file, meta) = self.tree().open_file(&p).map_err(fs_reply)?;
        if self.ty == Type::Image {
            return Ok(Reply::new(213, meta.size.to_string()));
        }
        const MAX_ASCII_SIZE: u64 = 16 << 20;
        if meta.size > MAX_ASCII_SIZE {
            return Err(Reply::new(
                550,
                "SIZE in ASCII mode is given for files up to 16 MiB; use TYPE I.",
            ));
        }
        let counted = tokio::task::spawn_blocking(move || ascii::network_len(file))
            .await
            .map_err(|e| Reply::new(451, e.to_string()))?;
        let n = counted.map_err(|e| fs_reply(e.into()))?;
        Ok(Reply::new(213, n.to_string()))
    }

    fn reinitialize(&mut self) {
        self.pending_user = None;
        self.login = None;
        self.cwd = path::root();
        self.ty = Type::Ascii;
        self.rest = 0;
        self.rename_from = None;
        self.facts = Facts::default();
        self.plan = None;
        self.epsv_all = false;
    }

    async fn auth(&mut self, mech: &str) -> Answer {
        let Some(acceptor) = self.cfg().tls.clone() else {
            return Err(Reply::new(
                502,
                "TLS is not configured (start wharf with --tls).",
            ));
        };
        if !matches!(mech, "TLS" | "TLS-C" | "SSL") {
            return Err(Reply::new(504, "Only AUTH TLS."));
        }
        if matches!(self.wire.io, Control::Tls(..)) {
            return Err(Reply::new(503, "Already secured."));
        }
        if !self.wire.buf.is_empty() {
            return Err(Reply::new(503, "Commands after AUTH before the handshake."));
        }
        let go = Reply::new(234, "AUTH TLS OK; start the handshake.");
        if self.wire.send(&go).await.is_err() {
            return Ok(Flow::Close); // the client is gone
        }
        let Control::Plain(tcp) = std::mem::replace(&mut self.wire.io, Control::Gone) else {
            unreachable!("checked above");
        };
        match acceptor.accept(tcp).await {
            Ok(a) => {
                self.wire.io = Control::tls(a);
                self.reinitialize();
                Ok(Flow::Continue)
            }
            Err(e) => {
                tracing::info!(target: "wharf::ftp", peer = %self.peer, error = ?e, "AUTH TLS handshake failed");
                Ok(Flow::Close)
            }
        }
    }

    fn prot(&mut self, level: char) -> Result<Reply, Reply> {
        if !self.pbsz {
            return Err(Reply::new(503, "Send PBSZ first."));
        }
        match level {
            'P' => {
                self.prot_private = true;
                Ok(Reply::new(200, "Protection level set to Private."))
            }
            'C' if self.cfg().require_tls_data => Err(Reply::new(
                534,
                "Data connections must be protected (PROT P).",
            )),
            'C' => {
                self.prot_private = false;
                Ok(Reply::new(200, "Protection level set to Clear."))
            }
            _ => Err(Reply::new(536, "Only PROT C and P.")),
        }
    }

    fn open_passive(&mut self) -> Result<u16, Reply> {
        self.plan = None;
        let range = self.cfg().passive_ports.as_ref();
        let listener = data::passive_listener(self.local.ip(), range).map_err(|e| {
            tracing::warn!(target: "wharf::ftp", peer = %self.peer, error = %e, "no passive port");
            Reply::new(425, format!("Cannot open a passive port: {e}."))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| Reply::new(425, e.to_string()))?
            .port();
        self.plan = Some(Plan::Passive(listener));
        Ok(port)
    }

    async fn pasv(&mut self) -> Result<Reply, Reply> {
        if self.epsv_all {
            return Err(Reply::new(503, "EPSV ALL was sent: only EPSV now."));
        }
        let IpAddr::V4(own) = self.local.ip().to_canonical() else {
            return Err(Reply::new(522, "PASV is for IPv4; use EPSV."));
        };
        let shown = match self.cfg().passive_address {
            Some(IpAddr::V4(ext)) if !is_local_network(self.peer.ip()) => ext,
            _ => own,
        };
        let port = self.open_passive()?;
        tracing::debug!(target: "wharf::ftp", peer = %self.peer, port, advertised = %shown, "passive");
        Ok(Reply::new(227, pasv_text(shown, port)))
    }

    async fn epsv(&mut self, arg: Option<Option<u8>>) -> Result<Reply, Reply> {
        let Some(proto) = arg else {
            self.epsv_all = true;
            return Ok(Reply::new(200, "EPSV ALL: only EPSV from now on."));
        };
        let own = protocol(self.local.ip());
        if proto.is_some_and(|p| p != own) {
            return Err(Reply::new(
                522,
                format!("Network protocol not supported, use ({own})."),
            ));
        }
        let port = self.open_passive()?;
        Ok(Reply::new(
            229,
            format!("Entering Extended Passive Mode (|||{port}|)."),
        ))
    }

    fn active(&mut self, to: SocketAddr) -> Result<Reply, Reply> {
        if self.epsv_all {
            return Err(Reply::new(503, "EPSV ALL was sent: only EPSV now."));
        }
        let own = protocol(self.peer.ip());
        if protocol(to.ip()) != own {
            // RFC 2428 §2: the other network protocol.
            return Err(Reply::new(
                522,
                format!("Network protocol not supported, use ({own})."),
            ));
        }
        if !data::same_ip(to.ip(), self.peer.ip()) || to.port() < 1024 {
            tracing::warn!(
                target: "wharf::ftp",
                peer = %self.peer, target = %to,
                "active data connection refused (FTP bounce): only to the client's own address and an unprivileged port"
            );
            return Err(Reply::new(
                504,
                format!(
                    "Refused: data connections go only to your own address ({}) and a port of 1024 or above.",
                    self.peer.ip().to_canonical()
                ),
            ));
        }
        self.plan = Some(Plan::Active(to));
        Ok(Reply::new(200, "Active mode: will connect to you."))
    }

    /// The listing of `p`, and whether `p` is a directory.
    fn listing_lines(&self, p: &SafePath, kind: ListKind) -> Result<(Vec<String>, bool), Reply> {
        let tree = self.tree();
        let (_, meta) = tree.open(p).map_err(fs_reply)?;
        let writable = self.login.as_ref().is_some_and(|l| l.write);
        let now = SystemTime::now();
        let entries = if meta.dir {
            let hidden = !self.login.as_ref().is_some_and(|l| l.anonymous);
            tree.list(p, hidden).map_err(fs_reply)?
        } else if kind == ListKind::Facts {
            return Err(Reply::new(
                501,
                "MLSD needs a directory (MLST gives one file).",
            ));
        } else {
            let name = p.last().unwrap_or_default().to_owned();
            vec![crate::tree::Entry { name, meta }]
        };
        let lines = entries
            .iter()
            .map(|e| match kind {
                ListKind::Long => listing::ls_line(e, now),
                ListKind::Names => e.name.clone(),
                ListKind::Facts => self.facts.line(&e.meta, &e.name, writable),
            })
            .collect();
        Ok((lines, meta.dir))
    }

    async fn list(&mut self, arg: Option<&str>, kind: ListKind) -> Answer {
        self.ready_for_data()?;
        let p = match arg {
            Some(a) => self.resolve(a)?,
            None => self.cwd.clone(),
        };
        let mut bytes = Vec::new();
        for line in self.listing_lines(&p, kind)?.0 {
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        let what = format!("listing of {}", path::display(&p));
        self.start(
            Job::Listing(bytes),
            what,
            "Here comes the listing.".into(),
            None,
            None,
        )
        .await
    }

    /// Checks that a data connection can be made, before any work.
    fn ready_for_data(&self) -> Result<(), Reply> {
        if self.plan.is_none() {
            return Err(no_plan());
        }
        if self.cfg().require_tls_data && !self.prot_private {
            return Err(Reply::new(
                521,
                "Data connections must be protected: send PROT P first.",
            ));
        }
        Ok(())
    }

    fn mode_word(&self) -> &'static str {
        if self.ty == Type::Ascii {
            "ASCII"
        } else {
            "BINARY"
        }
    }

    /// The restart point for a transfer, which resets it.
    fn take_rest(&mut self) -> Result<u64, Reply> {
        let rest = std::mem::take(&mut self.rest);
        if rest > 0 && self.ty == Type::Ascii {
            return Err(Reply::new(
                550,
                "Restarts are only supported in binary mode (TYPE I).",
            ));
        }
        Ok(rest)
    }

    async fn retr(&mut self, arg: &str) -> Answer {
        self.ready_for_data()?;
        let rest = self.take_rest()?;
        let p = self.resolve(arg)?;
        let (file, meta) = self.tree().open_file(&p).map_err(fs_reply)?;
        if rest > meta.size {
            return Err(Reply::new(
                554,
                format!(
                    "Restart point beyond the end of the file ({} bytes).",
                    meta.size
                ),
            ));
        }
        let shown = path::display(&p);
        let note = format!(
            "Opening {} mode data connection for {shown} ({} bytes).",
            self.mode_word(),
            meta.size
        );
        let job = Job::Send {
            file,
            offset: rest,
            ascii: self.ty == Type::Ascii,
        };
        self.start(
            job,
            format!("RETR {shown}"),
            note,
            Some(meta.size - rest),
            None,
        )
        .await
    }

    async fn store(&mut self, arg: &str, append: bool) -> Answer {
        self.ready_for_data()?;
        let rest = self.take_rest()?;
        let p = self.writable(arg)?;
        self.upload(p, rest, append, None).await
    }

    async fn stou(&mut self) -> Answer {
        self.ready_for_data()?;
        self.take_rest()?;
        let base = self.writable("x")?;
        let (dir, _) = base.split_last().expect("not the root");
        let tree = self.tree().clone();
        let mut n = 0u32;
        let p = loop {
            let name = format!("wharf.{}.{n}", std::process::id());
            let p = self.resolve(&format!("{}/{name}", path::display(&dir)))?;
            if !tree.exists(&p) {
                break p;
            }
            n += 1;
        };
        let name = p.last().unwrap_or_default().to_owned();
        self.upload(p, 0, false, Some(name)).await
    }

    async fn upload(
        &mut self,
        p: SafePath,
        rest: u64,
        append: bool,
        unique: Option<String>,
    ) -> Answer {
        let tree = self.tree().clone();
        let keep = if append {
            tree.open_file(&p).map(|(_, m)| m.size).unwrap_or(0)
        } else {
            rest
        };
        let sync = self.cfg().sync_uploads;
        let new = unique.is_some();
        let upload = tokio::task::spawn_blocking(move || {
            match new {
                true => tree.upload_new(&p, sync),
                false => tree.upload(&p, keep, sync),
            }
            .map(|u| (u, p))
        })
        .await
        .map_err(|e| Reply::new(451, e.to_string()))?
        .map_err(fs_reply)?;
        let (upload, p) = upload;
        let shown = path::display(&p);
        let note = match &unique {
            // RFC 1123 §4.1.2.9: the name in the 150 reply.
            Some(name) => format!("FILE: {name}"),
            None => format!(
                "Opening {} mode data connection for {shown}.",
                self.mode_word()
            ),
        };
        let job = Job::Receive {
            upload,
            ascii: self.ty == Type::Ascii,
            keep_partial: self.cfg().keep_partial_uploads,
        };
        let verb = if append { "APPE" } else { "STOR" };
        self.start(job, format!("{verb} {shown}"), note, None, Some(p))
            .await
    }

    /// Sends 150 and starts `job` on the planned data connection.
    async fn start(
        &mut self,
        job: Job,
        what: String,
        note: String,
        size: Option<u64>,
        target: Option<SafePath>,
    ) -> Answer {
        let plan = self.plan.take().ok_or_else(no_plan)?;
        let tls = match (&self.wire.io, self.prot_private, &self.cfg().tls) {
            (Control::Tls(_, group), true, Some(acceptor)) => {
                Some(data_tls(&acceptor.config_for(*group)))
            }
            _ => None,
        };
        if self.wire.send(&Reply::new(150, note)).await.is_err() {
            return Ok(Flow::Close); // the client is gone
        }
        let progress = Arc::new(Progress::default());
        self.server.track(&progress);
        let (peer, local) = (self.peer.ip(), self.local.ip());
        let timeout = self.cfg().data_timeout;
        let rate = self.login.as_ref().and_then(|l| l.rate.clone());
        let task = {
            let progress = progress.clone();
            tokio::spawn(async move {
                let tcp = data::connect(plan, peer, local, timeout, progress.cancelled()).await?;
                let done = tokio::task::spawn_blocking(move || {
                    data::transfer(job, tcp, tls, rate.as_deref(), &progress)
                })
                .await
                .map_err(|e| TransferError::Network(io::Error::other(e)))??;
                Ok(done)
            })
        };
        self.running = Some(Running {
            what,
            size,
            progress,
            task,
            target,
            started: Instant::now(),
        });
        Ok(Flow::Continue)
    }

    /// The transfer ended: commits an upload, reports the change, answers.
    async fn finish(&mut self, done: Result<Done, Failure>) -> Flow {
        let r = self.running.take().expect("finished only while running");
        let user = self
            .login
            .as_ref()
            .map(|l| l.name.clone())
            .unwrap_or_default();
        let secs = r.started.elapsed().as_secs_f64();
        let reply = match done {
            Ok(Done { bytes, upload }) => {
                // A client killed mid-upload closes its control connection first
                // (the lower descriptor), then the data connection, which looks like
                // the end of the file: the upload is committed only if the client is
                // still there.
                if upload.is_some() && self.wire.closed_now().await {
                    self.discard(&r, Ok(Done { bytes, upload })).await;
                    return Flow::Close;
                }
                let committed = match upload {
                    Some(u) => tokio::task::spawn_blocking(move || u.commit())
                        .await
                        .unwrap_or_else(|e| Err(FsError::Io(io::Error::other(e)))),
                    None => Ok(()),
                };
                match committed {
                    Ok(()) => {
                        if let Some(t) = &r.target {
                            self.changed(t);
                        }
                        tracing::info!(target: "wharf::ftp", peer = %self.peer, user, what = r.what, bytes, secs, "transfer complete");
                        Reply::new(226, format!("Transfer complete ({bytes} bytes)."))
                    }
                    Err(e) => {
                        tracing::warn!(target: "wharf::ftp", peer = %self.peer, user, what = r.what, error = %e, "upload not saved");
                        fs_reply(e)
                    }
                }
            }
            Err(e) => {
                // What arrived was put in place (data::transfer keeps partials).
                let kept = self.cfg().keep_partial_uploads && matches!(e, Failure::Transfer(_));
                if let (true, Some(t)) = (kept, &r.target) {
                    self.changed(t);
                }
                tracing::warn!(target: "wharf::ftp", peer = %self.peer, user, what = r.what, bytes = r.progress.bytes(), error = %e, "transfer failed");
                match e {
                    // ABOR, also while the data connection was still awaited.
                    Failure::Connect(ConnectError::Aborted)
                    | Failure::Transfer(TransferError::Aborted) => {
                        Reply::new(426, "Transfer aborted.")
                    }
                    Failure::Connect(e) => {
                        Reply::new(425, format!("Cannot open data connection: {e}."))
                    }
                    Failure::Transfer(TransferError::Local(e)) => fs_reply(e),
                    Failure::Transfer(TransferError::Network(e)) => Reply::new(
                        426,
                        format!("Data connection closed; transfer aborted ({e})."),
                    ),
                }
            }
        };
        self.reply(reply).await
    }

    /// The client left during a transfer: it is stopped, then discarded. An upload
    /// whose partial is to be kept first gets the rest of what the client sent (its
    /// data connection ends with it), at most `data_timeout` later.
    async fn abandon(&mut self, mut r: Running) {
        let drain = r.target.is_some() && self.cfg().keep_partial_uploads;
        if !drain {
            r.progress.abort();
        }
        let joined = match tokio::time::timeout(self.cfg().data_timeout, &mut r.task).await {
            Ok(joined) => joined,
            Err(_) => {
                r.progress.abort();
                (&mut r.task).await
            }
        };
        let done = joined.unwrap_or_else(|e| {
            Err(Failure::Transfer(TransferError::Network(io::Error::other(
                e,
            ))))
        });
        self.discard(&r, done).await;
    }

    /// The client left: an upload is not committed; what arrived is put in place only
    /// with `keep_partial_uploads` (for a later `REST`).
    async fn discard(&mut self, r: &Running, done: Result<Done, Failure>) {
        let keep = self.cfg().keep_partial_uploads;
        let ended = match &done {
            Ok(d) => format!("data connection ended after {} bytes", d.bytes),
            Err(e) => e.to_string(),
        };
        let kept = match done {
            Ok(Done {
                upload: Some(u), ..
            }) if keep => tokio::task::spawn_blocking(move || u.keep_partial())
                .await
                .is_ok_and(|r| r.is_ok()),
            // data::transfer kept what arrived.
            Err(Failure::Transfer(_)) => keep,
            // Dropped here, before the log line: an upload's temporary goes with it.
            other => {
                drop(other);
                false
            }
        };
        if let (true, Some(t)) = (kept, &r.target) {
            self.changed(t);
        }
        tracing::info!(target: "wharf::ftp", peer = %self.peer, what = r.what, bytes = r.progress.bytes(), ended, kept, "client left during a transfer: abandoned");
    }

    async fn abort(&mut self) -> Answer {
        self.plan = None;
        let Some(r) = &self.running else {
            return Err(Reply::new(225, "No transfer to abort."));
        };
        r.progress.abort();
        let done = wait(&mut self.running).await;
        if let Flow::Close = self.finish(done).await {
            return Ok(Flow::Close);
        }
        Err(Reply::new(226, "ABOR successful."))
    }
}

/// `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
fn pasv_text(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    let [p1, p2] = port.to_be_bytes();
    format!("Entering Passive Mode ({a},{b},{c},{d},{p1},{p2}).")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_reply_and_networks() {
        assert_eq!(
            pasv_text(Ipv4Addr::new(192, 0, 2, 7), 50_001),
            "Entering Passive Mode (192,0,2,7,195,81)."
        );
        for (ip, local) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("192.168.0.9", true),
            ("100.64.0.1", true),
            ("::ffff:172.16.0.1", true),
            ("fd00::1", true),
            ("203.0.113.9", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(is_local_network(ip.parse().unwrap()), local, "{ip}");
        }
        assert_eq!(quoted("/a\"b"), "\"/a\"\"b\"");
    }
}
