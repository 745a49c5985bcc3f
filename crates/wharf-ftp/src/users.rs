//! Who may log in: virtual users (a TOML file of argon2 password hashes, managed by
//! `wharf ftp-user`), the one user of the command line, and anonymous access; and the
//! guard that slows and then locks out an address that keeps failing.
//!
//! The users file:
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # PHC string
//! root = "/srv/ftp/alice"   # optional: the FTP root otherwise
//! write = true              # optional, default true
//! max_rate = 1048576        # optional: bytes per second, all the user's transfers together
//! ```

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// One virtual user, as stored.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub name: String,
    /// An argon2 hash in PHC string form (see [`hash_password`]).
    pub password: String,
    /// The user's root directory; the FTP root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Whether the user may change files.
    #[serde(default = "yes")]
    pub write: bool,
    /// Most bytes per second, all the user's transfers together (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u64>,
}

fn yes() -> bool {
    true
}

/// A users file.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users, in file order.
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

/// Why a users file could not be used; names the file and the fault.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// It could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    /// It is not a valid users file.
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

impl UsersFile {
    /// Reads `path`; a missing file is an empty one when `missing_ok`.
    pub fn load(path: &Path, missing_ok: bool) -> Result<UsersFile, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if missing_ok && e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(UsersError::Io(path.into(), e)),
        };
        let file: UsersFile =
            toml::from_str(&text).map_err(|e| UsersError::Invalid(path.into(), e.to_string()))?;
        for (i, u) in file.users.iter().enumerate() {
            let bad = |m: String| Err(UsersError::Invalid(path.into(), format!("user[{i}]: {m}")));
            if u.name.is_empty() || u.name.chars().any(|c| c.is_control() || c == ' ') {
                return bad("name: empty, or a space or control character in it".into());
            }
            if PasswordHash::new(&u.password).is_err() {
                return bad("password: not a PHC hash string (use `wharf ftp-user add`)".into());
            }
            if u.max_rate == Some(0) {
                return bad("max_rate: must be at least 1 (byte per second), or absent".into());
            }
            if file.users[..i].iter().any(|o| o.name == u.name) {
                return bad(format!("name: {:?} appears twice", u.name));
            }
        }
        Ok(file)
    }

    /// Writes the file atomically (a temporary beside it, renamed over it), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io_err = |e| UsersError::Io(path.into(), e);
        let text =
            toml::to_string(self).map_err(|e| UsersError::Invalid(path.into(), e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        f.write_all(text.as_bytes()).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, path).map_err(io_err)
    }

    /// Adds `user`, or replaces the user of that name.
    pub fn set(&mut self, user: User) {
        match self.users.iter_mut().find(|u| u.name == user.name) {
            Some(u) => *u = user,
            None => self.users.push(user),
        }
    }

    /// Removes the user `name`; false if there was none.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        self.users.len() != before
    }
}

/// An argon2id hash of `password` with a fresh salt, in PHC string form.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// How a user's password is checked.
#[derive(Clone, Debug)]
pub(crate) enum Secret {
    /// An argon2 PHC string from the users file.
    Hash(String),
    /// The command line's password, held in memory already (hashing it would
    /// protect nothing).
    Plain(String),
}

impl Secret {
    /// Whether `given` is the password. Slow for hashes: call off the runtime.
    pub(crate) fn verify(&self, given: &str) -> bool {
        match self {
            Secret::Hash(phc) => PasswordHash::new(phc).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(given.as_bytes(), &h)
                    .is_ok()
            }),
            Secret::Plain(p) => constant_time_eq(p.as_bytes(), given.as_bytes()),
        }
    }

    /// Whether checking takes long enough to need a blocking thread.
    pub(crate) fn is_slow(&self) -> bool {
        matches!(self, Secret::Hash(_))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failed logins per address: each failure is answered after a delay, and an address
/// with `max_failures` within `lockout` is refused until `lockout` has passed since
/// its last failure.
#[derive(Debug)]
pub(crate) struct Guard {
    max_failures: u32,
    lockout: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Addresses remembered; beyond this, those whose failures are older than the
/// lockout are forgotten.
const MAX_TRACKED: usize = 10_000;

impl Guard {
    pub(crate) fn new(max_failures: u32, lockout: Duration) -> Guard {
        Guard {
            max_failures,
            lockout,
            failures: Mutex::default(),
        }
    }

    /// How long `ip` is still locked out, if it is.
    pub(crate) fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let &(count, last) = map.get(&ip)?;
        let left = self.lockout.checked_sub(now.duration_since(last))?;
        (count >= self.max_failures && !left.is_zero()).then_some(left)
    }

    /// Records a failure of `ip`; true if it is now locked out.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            let lockout = self.lockout;
            map.retain(|_, (_, last)| now.duration_since(*last) < lockout);
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= self.lockout {
            *e = (0, now);
        }
        e.0 += 1;
        e.1 = now;
        e.0 >= self.max_failures
    }

    /// A successful login forgets `ip`'s failures.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut file = UsersFile::load(&path, true).unwrap();
        file.set(User {
            name: "alice".into(),
            password: hash_password("s3cret"),
            root: None,
            write: false,
            max_rate: Some(1000),
        });
        file.save(&path).unwrap();
        let back = UsersFile::load(&path, false).unwrap();
        assert_eq!(back.users, file.users);
        let secret = Secret::Hash(back.users[0].password.clone());
        assert!(secret.verify("s3cret"));
        assert!(!secret.verify("s3cret "));
        assert!(Secret::Plain("pw".into()).verify("pw"));
        assert!(!Secret::Plain("pw".into()).verify("pW"));
    }

    #[test]
    fn bad_files_name_the_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let table = [
            (
                "[[user]]\nname = \"a\"\npassword = \"plain\"\n",
                "user[0]: password",
            ),
            (
                "[[user]]\nname = \"a\"\npassword = \"x\"\nshell = 1\n",
                "unknown field",
            ),
            ("[[user]]\nname = \"\"\npassword = \"x\"\n", "user[0]: name"),
        ];
        for (text, want) in table {
            std::fs::write(&path, text).unwrap();
            let e = UsersFile::load(&path, false).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn lockout_after_repeated_failures() {
        let g = Guard::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!g.failed(ip, t0));
        assert!(!g.failed(ip, t0));
        assert!(g.locked(ip, t0).is_none());
        assert!(g.failed(ip, t0));
        assert!(g.locked(ip, t0 + Duration::from_secs(59)).is_some());
        assert!(g.locked(ip, t0 + Duration::from_secs(60)).is_none());
        assert!(g.locked("192.0.2.2".parse().unwrap(), t0).is_none());
        g.succeeded(ip);
        assert!(g.locked(ip, t0).is_none());
    }
}
