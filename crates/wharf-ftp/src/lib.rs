//! wharf's FTP and FTPS server (RFC 959, 2228, 2389, 2428, 2577, 3659, 4217).
//!
//! It serves the same file trees as HTTP: paths are checked by
//! [`wharf_http::path::sanitize`] and opened beneath the root by
//! [`wharf_files::root::Root`], exactly as for HTTP requests, and every change it
//! makes (upload, delete, rename, new directory) is reported through
//! [`Config::on_change`] before the client is told the command succeeded, so that
//! an HTTP `GET` right after an FTP upload sees the new bytes.
//!
//! Layout:
//! - `command`, `reply`: the wire syntax, parsed and written without I/O.
//! - `path`: FTP names (current directory + argument) through the HTTP path check.
//! - `tree`: file operations beneath a root, with atomic uploads.
//! - `listing`, `ascii`: `LIST`/`MLSD` formats and `TYPE A` line-end conversion.
//! - `users`: virtual users (argon2), anonymous access, the failed-login guard.
//! - `data`: data connections (passive, active) and the blocking transfer pump.
//! - `session`: one control connection, command by command.
//! - `server`: the accept loops, session limits and graceful shutdown.
//!
//! It does not speak FXP (server-to-server transfers are what bounce protection
//! forbids), `MODE B`/`C`, `STRU R`/`P`, or `TYPE E`.

mod ascii;
mod command;
mod data;
mod listing;
mod path;
mod reply;
mod server;
mod session;
mod tree;
pub mod users;

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use server::{Listener, Server};
pub use users::{hash_password, User, UsersError, UsersFile};

/// A user who may log in.
#[derive(Clone, Debug)]
pub struct Account {
    name: String,
    secret: users::Secret,
    root: Option<PathBuf>,
    write: bool,
    max_rate: Option<u64>,
}

impl Account {
    /// A read-write user with a password given in clear (`--ftp-user NAME:PASSWORD`),
    /// rooted at the FTP root.
    pub fn with_password(name: &str, password: &str) -> Account {
        Account {
            name: name.to_owned(),
            secret: users::Secret::Plain(password.to_owned()),
            root: None,
            write: true,
            max_rate: None,
        }
    }

    /// A user of a users file.
    pub fn from_user(u: &User) -> Account {
        Account {
            name: u.name.clone(),
            secret: users::Secret::Hash(u.password.clone()),
            root: u.root.clone(),
            write: u.write,
            max_rate: u.max_rate,
        }
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root, if not the FTP root.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

/// Called with the absolute path of every file or directory a session changed.
pub type OnChange = Arc<dyn Fn(&Path) + Send + Sync>;

/// Everything a server needs.
#[derive(Clone)]
pub struct Config {
    /// The root of users without their own, and of anonymous sessions.
    pub root: PathBuf,
    /// Who may log in.
    pub accounts: Vec<Account>,
    /// Read-only anonymous access (`USER anonymous` or `ftp`).
    pub anonymous: bool,
    /// FTPS: the handshake settings (`AUTH TLS`, implicit listeners, `PROT P`).
    pub tls: Option<Arc<wharf_tls::Acceptor>>,
    /// Users (other than anonymous) must secure the control connection first.
    pub require_tls: bool,
    /// Data connections must be protected (`PROT P`).
    pub require_tls_data: bool,
    /// Ports for passive data connections; any free port when `None`.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// The address PASV tells clients that are not on loopback or a private network
    /// (the external address behind NAT); the control connection's own otherwise.
    pub passive_address: Option<IpAddr>,
    /// Most sessions at once.
    pub max_sessions: usize,
    /// Most sessions at once from one address.
    pub max_sessions_per_ip: usize,
    /// A control connection silent this long (and not transferring) is closed.
    pub idle_timeout: Duration,
    /// Longest wait for a data connection, and for progress on one.
    pub data_timeout: Duration,
    /// Longest command line, in bytes.
    pub max_line: usize,
    /// Delay before answering a failed login.
    pub login_delay: Duration,
    /// Failed logins from one address before it is locked out.
    pub max_login_failures: u32,
    /// How long a locked-out address is refused.
    pub lockout: Duration,
    /// An interrupted upload leaves what arrived in place (for `REST` to resume)
    /// instead of leaving the previous file untouched.
    pub keep_partial_uploads: bool,
    /// Uploads are synced to disk (`fdatasync`) before they are renamed into place,
    /// so that a power loss cannot leave an empty file where a complete one was
    /// reported (226).
    pub sync_uploads: bool,
    /// Told of every change, before the client is.
    pub on_change: Option<OnChange>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("accounts", &self.accounts.len())
            .field("anonymous", &self.anonymous)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults: no users, no TLS, any passive port, 200 sessions (20 per
    /// address), 5 min control and 30 s data timeouts, 4 KiB command lines, 1 s
    /// delay after a failed login, 5 failures locking an address out for 5 min,
    /// uploads synced before they are renamed into place.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            accounts: Vec::new(),
            anonymous: false,
            tls: None,
            require_tls: false,
            require_tls_data: false,
            passive_ports: None,
            passive_address: None,
            max_sessions: 200,
            max_sessions_per_ip: 20,
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(30),
            max_line: 4096,
            login_delay: Duration::from_secs(1),
            max_login_failures: 5,
            lockout: Duration::from_secs(300),
            keep_partial_uploads: false,
            sync_uploads: true,
            on_change: None,
        }
    }
}
