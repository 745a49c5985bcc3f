//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use wharf_server::LogFormat;

/// wharf: serves file trees over HTTP/1.1, exact to RFC 9110/9111/9112.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a directory (zero config), or the sites of a configuration file.
    Serve(ServeArgs),
    /// Validate a configuration file (keys, values, site roots) and exit.
    CheckConfig {
        /// The wharf.toml to check.
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Directory to serve as the default site [default: .]. Not with [[site]] tables
    /// in --config.
    pub(crate) dir: Option<PathBuf>,
    /// Address to listen on, repeatable [default: 127.0.0.1:8080]; port 0 picks a free
    /// port (the chosen address is printed). Replaces `listen` of the config file.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<SocketAddr>,
    /// Configuration file (see examples/wharf.toml for every setting).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Add a Wharf-Explain header (and access-log field) saying why each response is
    /// what it is, on every site.
    #[arg(long)]
    pub(crate) explain: bool,
    /// List directories without an index file (zero-config site only).
    #[arg(long)]
    pub(crate) listing: bool,
    /// Access-log format; replaces `log.access` of the config file.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) access_log: Option<AccessLogArg>,
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
