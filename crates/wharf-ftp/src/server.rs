//! Accepting control connections: session limits (in all and per address), the
//! lockout of addresses that failed to log in too often, implicit FTPS, and a
//! shutdown that lets running transfers finish.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::data::{Progress, RateLimit};

use crate::reply::Reply;
use crate::session::{Control, Session};
use crate::tree::Tree;
use crate::users::{Guard, Secret};
use crate::Config;

/// A bound control-connection listener.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// Implicit FTPS: TLS from the first byte (port 990 by tradition).
    pub implicit_tls: bool,
}

/// An FTP server: its configuration, opened roots and shared state.
#[derive(Debug)]
pub struct Server {
    pub(crate) config: Config,
    /// The FTP root (users without their own, anonymous sessions).
    pub(crate) root: Arc<Tree>,
    /// Roots of users with their own, by user name.
    pub(crate) user_roots: HashMap<String, Arc<Tree>>,
    pub(crate) guard: Guard,
    sessions: Mutex<HashMap<IpAddr, usize>>,
    /// Byte rates of users with `max_rate`, shared by all their transfers.
    rates: HashMap<String, Arc<RateLimit>>,
    /// A hash unknown users' passwords are checked against, so that they take as long
    /// to refuse as known ones (present when any user has a hashed password).
    dummy: Option<Secret>,
    /// Password hash checks at once (each takes tens of MiB and milliseconds of CPU).
    hashing: Semaphore,
    /// Running transfers, stopped when the grace period of a shutdown is over.
    transfers: Mutex<Vec<Weak<Progress>>>,
}

/// A user whose password was right.
pub(crate) struct Authenticated {
    pub(crate) name: String,
    pub(crate) tree: Arc<Tree>,
    pub(crate) write: bool,
    pub(crate) rate: Option<Arc<RateLimit>>,
}

impl Server {
    /// Opens the roots of `config`; an error names the directory.
    pub fn new(config: Config) -> io::Result<Server> {
        let open = |p: &Path| {
            Tree::new(p)
                .map(Arc::new)
                .map_err(|e| io::Error::new(e.kind(), format!("FTP root {}: {e}", p.display())))
        };
        let root = open(&config.root)?;
        let mut user_roots = HashMap::new();
        let mut rates = HashMap::new();
        for a in &config.accounts {
            if let Some(r) = a.root() {
                user_roots.insert(a.name().to_owned(), open(r)?);
            }
            if let Some(rate) = a.max_rate.and_then(NonZeroU64::new) {
                rates.insert(a.name().to_owned(), Arc::new(RateLimit::new(rate)));
            }
        }
        let dummy = config
            .accounts
            .iter()
            .any(|a| a.secret.is_slow())
            .then(|| Secret::Hash(crate::users::hash_password("not a password of anyone")));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Server {
            guard: Guard::new(config.max_login_failures, config.lockout),
            config,
            root,
            user_roots,
            sessions: Mutex::default(),
            rates,
            dummy,
            hashing: Semaphore::new(cpus),
            transfers: Mutex::default(),
        })
    }

    /// Checks `name`'s password (hashes on the blocking pool, a few at a time).
    pub(crate) async fn authenticate(&self, name: &str, password: String) -> Option<Authenticated> {
        let account = self.config.accounts.iter().find(|a| a.name == name);
        let secret = account.map(|a| &a.secret).or(self.dummy.as_ref())?.clone();
        let ok = if secret.is_slow() {
            let _permit = self.hashing.acquire().await.ok()?;
            tokio::task::spawn_blocking(move || secret.verify(&password))
                .await
                .unwrap_or(false)
        } else {
            secret.verify(&password)
        };
        let a = account.filter(|_| ok)?;
        Some(Authenticated {
            name: a.name.clone(),
            tree: self.user_roots.get(&a.name).unwrap_or(&self.root).clone(),
            write: a.write,
            rate: self.rates.get(&a.name).cloned(),
        })
    }

    /// Registers a running transfer (to be stopped if shutdown runs out of time).
    pub(crate) fn track(&self, progress: &Arc<Progress>) {
        let mut list = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(progress));
    }

    /// Stops every running transfer (their data connections are shut down): the end
    /// of a shutdown's grace period.
    pub fn abort_transfers(&self) {
        let list = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        for p in list.iter().filter_map(Weak::upgrade) {
            p.abort();
        }
    }

    /// Serves `listeners` until `shutdown` fires, then waits for the sessions: idle
    /// ones are closed at once (421), running transfers finish first.
    pub async fn run(self: Arc<Self>, listeners: Vec<Listener>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        for l in listeners {
            tracker.spawn(
                self.clone()
                    .accept_loop(l, shutdown.clone(), tracker.clone()),
            );
        }
        tracker.close();
        tracker.wait().await;
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: Listener,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.tcp.accept() => a,
                _ = shutdown.cancelled() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(target: "wharf::ftp", error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            let shutdown = shutdown.clone();
            let implicit = listener.implicit_tls;
            tracker.spawn(async move {
                server
                    .session(tcp, peer.ip().to_canonical(), implicit, shutdown)
                    .await;
            });
        }
    }

    async fn session(
        self: Arc<Self>,
        mut tcp: TcpStream,
        ip: IpAddr,
        implicit_tls: bool,
        shutdown: CancellationToken,
    ) {
        let refusal = if let Some(left) = self.guard.locked(ip, Instant::now()) {
            Some(Reply::new(
                421,
                format!(
                    "Too many failed logins from {ip}; try again in {} s.",
                    left.as_secs() + 1
                ),
            ))
        } else {
            self.admit(ip).err()
        };
        if let Some(reply) = refusal {
            tracing::info!(target: "wharf::ftp", %ip, reply = reply.text(), "session refused");
            if !implicit_tls {
                let _ = tcp.write_all(reply.encode().as_bytes()).await;
            }
            return;
        }
        let _permit = Permit { server: &self, ip };
        // Replies are small writes that follow one another (150, then 226): with
        // Nagle's algorithm the second waits for the client's delayed ACK (40 ms).
        let _ = tcp.set_nodelay(true);
        let control = if implicit_tls {
            let Some(acceptor) = &self.config.tls else {
                return;
            };
            match acceptor.accept(tcp).await {
                Ok(a) => Control::tls(a),
                Err(e) => {
                    tracing::info!(target: "wharf::ftp", %ip, error = ?e, "implicit TLS handshake failed");
                    return;
                }
            }
        } else {
            Control::Plain(tcp)
        };
        match Session::new(&self, control, shutdown) {
            Ok(session) => session.run().await,
            Err(e) => tracing::warn!(target: "wharf::ftp", %ip, error = %e, "session not started"),
        }
    }

    /// Counts a new session of `ip`, or says why it is refused.
    fn admit(&self, ip: IpAddr) -> Result<(), Reply> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = map.values().sum();
        if total >= self.config.max_sessions {
            return Err(Reply::new(
                421,
                format!(
                    "Too many sessions ({}); try again later.",
                    self.config.max_sessions
                ),
            ));
        }
        let mine = map.entry(ip).or_insert(0);
        if *mine >= self.config.max_sessions_per_ip {
            return Err(Reply::new(
                421,
                format!(
                    "Too many sessions from {ip} ({}); try again later.",
                    self.config.max_sessions_per_ip
                ),
            ));
        }
        *mine += 1;
        Ok(())
    }
}

/// One counted session; uncounted when dropped.
struct Permit<'a> {
    server: &'a Server,
    ip: IpAddr,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut map = self
            .server
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
