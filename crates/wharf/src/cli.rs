//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use wharf_server::LogFormat;

/// wharf: serves file trees over HTTP/1.1, HTTPS and HTTP/2, exact to the RFCs.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Where wharf keeps its local CA [default: $XDG_DATA_HOME/wharf, else
    /// ~/.local/share/wharf]. Replaces `data_dir` of the config file.
    #[arg(long, global = true, env = "WHARF_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a directory (zero config), or the sites of a configuration file.
    Serve(ServeArgs),
    /// Forward every request to upstream servers (a reverse proxy), like `caddy
    /// reverse-proxy --to`.
    Proxy(ProxyArgs),
    /// Validate a configuration file (keys, values, site roots) and exit.
    CheckConfig {
        /// The wharf.toml to check.
        file: PathBuf,
    },
    /// The local certificate authority (root → intermediate → leaf).
    #[command(subcommand)]
    Ca(CaCommand),
    /// FTP virtual users (a TOML file of argon2 password hashes, `ftp.users_file`).
    #[command(subcommand)]
    FtpUser(FtpUserCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum FtpUserCommand {
    /// Add a user, or change one: the password is read from the first line of
    /// standard input.
    Add {
        /// The login name.
        name: String,
        /// The users file (created if absent).
        #[arg(long, default_value = "ftp-users.toml", value_name = "FILE")]
        users: PathBuf,
        /// The user's own root directory [default: the FTP root].
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Read-only access.
        #[arg(long)]
        read_only: bool,
        /// Most bytes per second, all the user's transfers together.
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
        max_rate: Option<u64>,
    },
    /// Remove a user.
    Remove {
        /// The login name.
        name: String,
        /// The users file.
        #[arg(long, default_value = "ftp-users.toml", value_name = "FILE")]
        users: PathBuf,
    },
    /// List the users.
    List {
        /// The users file.
        #[arg(long, default_value = "ftp-users.toml", value_name = "FILE")]
        users: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create the root and intermediate CA (keys mode 0600) unless they exist.
    Init,
    /// Issue a certificate for NAMES (DNS names or IP addresses), signed by the
    /// intermediate; writes NAME.pem (leaf + intermediate) and NAME-key.pem.
    Issue {
        /// DNS names (`*.example.test` allowed) and IP addresses; the first names the files.
        #[arg(required = true)]
        names: Vec<String>,
        /// A client certificate (for mutual TLS) instead of a server certificate.
        #[arg(long)]
        client: bool,
        /// Days of validity.
        #[arg(long, default_value_t = wharf_tls::ca::LEAF_DAYS)]
        days: u32,
        /// Directory to write the files to.
        #[arg(long, default_value = ".", value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the root certificate's path (`curl --cacert "$(wharf ca path)"`).
    Path,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Directory to serve as the default site [default: .]. Not with [[site]] tables
    /// in --config.
    pub(crate) dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) front: FrontArgs,
    /// Configuration file (see examples/wharf.toml for every setting).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// List directories without an index file (zero-config site only).
    #[arg(long)]
    pub(crate) listing: bool,
    /// Add a WebSocket echo endpoint at this path (for conformance tests and
    /// benchmarks), as a `[[websocket]]` with the default settings.
    #[arg(long, value_name = "PATH")]
    pub(crate) ws_echo: Option<String>,
    /// Serve the site over FTP on this address, repeatable (with --tls, explicit
    /// FTPS as well). Replaces `ftp.listen` of the config file.
    #[arg(long, value_name = "ADDR")]
    pub(crate) ftp_listen: Vec<SocketAddr>,
    /// Implicit FTPS (TLS from the first byte) on this address, repeatable.
    /// Replaces `ftp.implicit_listen` of the config file.
    #[arg(long, value_name = "ADDR")]
    pub(crate) ftp_implicit_listen: Vec<SocketAddr>,
    /// An FTP user with read-write access to the whole tree, repeatable.
    #[arg(long, value_name = "NAME:PASSWORD")]
    pub(crate) ftp_user: Vec<String>,
}

/// How clients reach wharf: the options `serve` and `proxy` share.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct FrontArgs {
    /// Address to listen on, repeatable [default: localhost, that is 127.0.0.1 and
    /// [::1], on port 8080, or 8443 with --tls; see --port]; port 0 picks a free port
    /// (the chosen address is printed). Replaces `listen` (or with --tls,
    /// `tls.listen`) of the config file.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<SocketAddr>,
    /// Listen on localhost, 127.0.0.1 and [::1], on this port [default: 8080, or 8443
    /// with --tls]; 0 picks one free port for both. Without IPv6, 127.0.0.1 only (with
    /// a warning). Replaces `listen` (or with --tls, `tls.listen`) of the config file.
    #[arg(long, value_name = "PORT", conflicts_with = "listen")]
    pub(crate) port: Option<u16>,
    /// Add a Wharf-Explain header (and access-log field) saying why each response is
    /// what it is, on every site.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Serve HTTPS (HTTP/1.1, HTTP/2, and HTTP/3 over UDP) on the --listen addresses
    /// [default: 127.0.0.1:8443 and [::1]:8443] instead of cleartext. Sites without a
    /// certificate get one from wharf's local CA.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Access-log format; replaces `log.access` of the config file.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) access_log: Option<AccessLogArg>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ProxyArgs {
    /// An upstream server, `http://HOST[:PORT]`, repeatable: requests go to each in
    /// turn (round robin), and to the next when one cannot be reached.
    #[arg(long = "to", value_name = "URL", required = true)]
    pub(crate) to: Vec<String>,
    #[command(flatten)]
    pub(crate) front: FrontArgs,
    /// Configuration file: its `[proxy]` settings (timeouts, pools, retries, trusted
    /// proxies), listeners, TLS, limits and logging apply.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Keep a shared cache (RFC 9111) of the upstreams' responses in memory [256 MiB,
    /// or `[proxy.cache]` of --config].
    #[arg(long)]
    pub(crate) cache: bool,
    /// Send the upstream's own host and port as `Host` instead of the client's.
    #[arg(long)]
    pub(crate) change_host: bool,
}

/// Access-log formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum AccessLogArg {
    /// Combined log format (as nginx and Apache).
    Combined,
    /// One JSON object per line.
    Json,
    /// No access log.
    Off,
}

impl From<AccessLogArg> for LogFormat {
    fn from(a: AccessLogArg) -> LogFormat {
        match a {
            AccessLogArg::Combined => LogFormat::Combined,
            AccessLogArg::Json => LogFormat::Json,
            AccessLogArg::Off => LogFormat::Off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
