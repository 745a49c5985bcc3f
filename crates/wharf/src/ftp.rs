//! FTP wiring: `[ftp]` and the `--ftp-*` flags into a `wharf_ftp::Config`, changes
//! made over FTP told to the file service (and so to the hub's `_files` channel),
//! and `wharf ftp-user`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_ftp::{Account, UsersFile};

use crate::cli::FtpUserCommand;
use crate::config::{Config, ConfigError};

/// The FTP server's settings; `None` when no FTP listener is configured.
pub(crate) fn settings(
    cfg: &Config,
    cli_users: &[String],
    tls: Option<Arc<wharf_tls::Acceptor>>,
) -> Result<Option<wharf_ftp::Config>, ConfigError> {
    let f = &cfg.ftp;
    if !f.enabled() {
        return Ok(None);
    }
    let root = match &f.root {
        Some(r) => r.clone(),
        None => cfg
            .sites
            .iter()
            .find(|s| s.default)
            .or(cfg.sites.first())
            .map(|s| s.root.clone())
            .ok_or_else(|| ConfigError("ftp: no root (ftp.root, or a [[site]])".into()))?,
    };
    let mut out = wharf_ftp::Config::new(root);
    for u in cli_users {
        let (name, password) = u
            .split_once(':')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| ConfigError(format!("--ftp-user {u:?}: want NAME:PASSWORD")))?;
        out.accounts.push(Account::with_password(name, password));
    }
    if let Some(path) = &f.users_file {
        let file = UsersFile::load(path, false)
            .map_err(|e| ConfigError(format!("ftp.users_file: {e}")))?;
        for u in &file.users {
            if out.accounts.iter().any(|a| a.name() == u.name) {
                return Err(ConfigError(format!(
                    "ftp.users_file: user {:?} is also given by --ftp-user",
                    u.name
                )));
            }
            out.accounts.push(Account::from_user(u));
        }
    }
    if out.accounts.is_empty() && !f.anonymous {
        return Err(ConfigError(
            "ftp: nobody can log in: give --ftp-user NAME:PASSWORD, ftp.users_file, or ftp.anonymous = true"
                .into(),
        ));
    }
    if tls.is_none() && (f.require_tls || f.require_tls_data) {
        return Err(ConfigError(
            "ftp.require_tls: needs TLS (--tls, or [tls] listen)".into(),
        ));
    }
    out.anonymous = f.anonymous;
    out.tls = tls;
    out.require_tls = f.require_tls;
    out.require_tls_data = f.require_tls_data;
    out.passive_ports = f.passive_ports.clone().map(|r| r.0);
    out.passive_address = f.passive_address;
    out.max_sessions = f.max_sessions;
    out.max_sessions_per_ip = f.max_sessions_per_ip;
    out.idle_timeout = f.idle_timeout;
    out.data_timeout = f.data_timeout;
    out.max_line = f.max_line;
    out.login_delay = f.login_delay;
    out.max_login_failures = f.max_login_failures;
    out.lockout = f.lockout;
    out.keep_partial_uploads = f.keep_partial_uploads;
    out.sync_uploads = f.sync_uploads;
    Ok(Some(out))
}

/// What `check-config` can tell of `[ftp]` without starting: the users file reads
/// and the root is a directory.
pub(crate) fn check(cfg: &Config) -> Result<(), ConfigError> {
    if let Some(path) = &cfg.ftp.users_file {
        UsersFile::load(path, false).map_err(|e| ConfigError(format!("ftp.users_file: {e}")))?;
    }
    if let Some(root) = &cfg.ftp.root {
        if !root.is_dir() {
            return Err(ConfigError(format!(
                "ftp.root: {}: not a directory",
                root.display()
            )));
        }
    }
    Ok(())
}

/// Sends every change made over FTP to the file service of the site whose tree
/// holds it (the innermost, when roots nest), so that the next `GET` sees it.
pub(crate) fn on_change(
    cfg: &Config,
    changed: impl Fn(usize, &Path) + Send + Sync + 'static,
) -> wharf_ftp::OnChange {
    let roots: Vec<(usize, PathBuf)> = cfg
        .sites
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.root.canonicalize().ok()?)))
        .collect();
    Arc::new(move |path: &Path| {
        let best = roots
            .iter()
            .filter_map(|(i, root)| Some((*i, path.strip_prefix(root).ok()?)))
            .min_by_key(|(_, rel)| rel.components().count());
        if let Some((site, rel)) = best {
            changed(site, rel);
        }
    })
}

/// One line of standard input; not echoed when it is a terminal.
fn read_password() -> Result<String, ConfigError> {
    use std::io::IsTerminal;
    let stty = |arg| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    let tty = std::io::stdin().is_terminal();
    if tty {
        let _ = stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if tty {
        let _ = stty("echo");
    }
    read.map_err(|e| ConfigError(format!("reading the password: {e}")))?;
    Ok(line)
}

/// `wharf ftp-user ...`.
pub(crate) fn user_command(cmd: FtpUserCommand) -> Result<(), ConfigError> {
    let err = |e: wharf_ftp::UsersError| ConfigError(e.to_string());
    match cmd {
        FtpUserCommand::Add {
            name,
            users,
            root,
            read_only,
            max_rate,
        } => {
            if name.is_empty() || name.chars().any(|c| c.is_control() || c == ' ' || c == ':') {
                return Err(ConfigError(format!("{name:?}: not a valid user name")));
            }
            let mut file = UsersFile::load(&users, true).map_err(err)?;
            eprint!("Password for {name} (read from standard input): ");
            let password = read_password()?;
            let password = password.trim_end_matches(['\r', '\n']);
            eprintln!();
            if password.is_empty() {
                return Err(ConfigError("empty password".into()));
            }
            let root = root
                .map(|r| {
                    r.canonicalize()
                        .map_err(|e| ConfigError(format!("--root {}: {e}", r.display())))
                })
                .transpose()?;
            file.set(wharf_ftp::User {
                name: name.clone(),
                password: wharf_ftp::hash_password(password),
                root,
                write: !read_only,
                max_rate,
            });
            file.save(&users).map_err(err)?;
            println!("{}: user {name} saved", users.display());
        }
        FtpUserCommand::Remove { name, users } => {
            let mut file = UsersFile::load(&users, false).map_err(err)?;
            if !file.remove(&name) {
                return Err(ConfigError(format!("{}: no user {name}", users.display())));
            }
            file.save(&users).map_err(err)?;
            println!("{}: user {name} removed", users.display());
        }
        FtpUserCommand::List { users } => {
            let file = UsersFile::load(&users, false).map_err(err)?;
            for u in &file.users {
                let root = u
                    .root
                    .as_deref()
                    .map_or("(FTP root)".into(), |r| r.display().to_string());
                let access = if u.write { "read-write" } else { "read-only" };
                println!("{}\t{access}\t{root}", u.name);
            }
        }
    }
    Ok(())
}
