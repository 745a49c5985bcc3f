//! FTP commands as the client sends them, parsed without I/O.
//!
//! A command line is a verb, case-insensitive, then at most one argument after a
//! single space, ended by CRLF (RFC 959 §4.1.3; a bare LF is accepted, as every
//! server does). Telnet IAC sequences that clients put before `ABOR` (RFC 959 §4.1.3,
//! "Telnet IP and Synch") are removed first. Arguments are UTF-8 (RFC 2640, `OPTS UTF8
//! ON` being the default of every modern client). The parser checks syntax only; what
//! a command may do (bounce protection, permissions, sequence) is the session's.

use std::net::{IpAddr, SocketAddr};

use crate::reply::Reply;

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    User(String),
    Pass(String),
    Acct,
    Cwd(String),
    Cdup,
    Pwd,
    /// `LIST [-options] [path]`: the options are dropped.
    List(Option<String>),
    Nlst(Option<String>),
    Retr(String),
    Stor(String),
    Appe(String),
    Stou,
    Dele(String),
    Mkd(String),
    Rmd(String),
    Rnfr(String),
    Rnto(String),
    Type(Type),
    Mode(char),
    Stru(char),
    Allo,
    Noop,
    Syst,
    Stat(Option<String>),
    Help,
    Abor,
    Quit,
    Rein,
    Feat,
    Opts(String),
    Pasv,
    /// `EPSV`, `EPSV 1|2` (`Some(protocol)`), or `EPSV ALL` (`None`).
    Epsv(Option<Option<u8>>),
    Port(SocketAddr),
    Eprt(SocketAddr),
    Size(String),
    Mdtm(String),
    Rest(u64),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Auth(String),
    Pbsz(u64),
    Prot(char),
}

/// The representation type (RFC 959 §3.1.1): ASCII is converted to and from CRLF line
/// ends, image is sent byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    Ascii,
    Image,
}

impl Command {
    /// The verb, for logs.
    pub(crate) fn verb(&self) -> &'static str {
        use Command::*;
        match self {
            User(_) => "USER",
            Pass(_) => "PASS",
            Acct => "ACCT",
            Cwd(_) => "CWD",
            Cdup => "CDUP",
            Pwd => "PWD",
            List(_) => "LIST",
            Nlst(_) => "NLST",
            Retr(_) => "RETR",
            Stor(_) => "STOR",
            Appe(_) => "APPE",
            Stou => "STOU",
            Dele(_) => "DELE",
            Mkd(_) => "MKD",
            Rmd(_) => "RMD",
            Rnfr(_) => "RNFR",
            Rnto(_) => "RNTO",
            Type(_) => "TYPE",
            Mode(_) => "MODE",
            Stru(_) => "STRU",
            Allo => "ALLO",
            Noop => "NOOP",
            Syst => "SYST",
            Stat(_) => "STAT",
            Help => "HELP",
            Abor => "ABOR",
            Quit => "QUIT",
            Rein => "REIN",
            Feat => "FEAT",
            Opts(_) => "OPTS",
            Pasv => "PASV",
            Epsv(_) => "EPSV",
            Port(_) => "PORT",
            Eprt(_) => "EPRT",
            Size(_) => "SIZE",
            Mdtm(_) => "MDTM",
            Rest(_) => "REST",
            Mlsd(_) => "MLSD",
            Mlst(_) => "MLST",
            Auth(_) => "AUTH",
            Pbsz(_) => "PBSZ",
            Prot(_) => "PROT",
        }
    }
}

/// The verbs wharf implements, for `HELP`.
pub(crate) const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HELP",
    "LIST", "MDTM", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV", "PBSZ",
    "PORT", "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD", "RNFR", "RNTO", "SIZE", "STAT",
    "STOR", "STOU", "STRU", "SYST", "TYPE", "USER", "XCUP", "XCWD", "XMKD", "XPWD", "XRMD",
];

/// Removes Telnet IAC sequences: `IAC IAC` is a literal 255, `IAC x` (IP, DM, ...) is
/// dropped, as is the option byte of `IAC WILL/WONT/DO/DONT x`.
pub(crate) fn strip_telnet(line: &mut Vec<u8>) {
    const IAC: u8 = 255;
    if !line.contains(&IAC) {
        return;
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        match (line[i], line.get(i + 1)) {
            (IAC, Some(&IAC)) => {
                out.push(IAC);
                i += 2;
            }
            (IAC, Some(&(251..=254))) => i += 3,
            (IAC, _) => i += 2,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    *line = out;
}

/// Parses one command line (without its line end). `Err` is the reply to send.
pub(crate) fn parse(line: &[u8]) -> Result<Command, Reply> {
    let line =
        std::str::from_utf8(line).map_err(|_| Reply::new(501, "Command line is not UTF-8."))?;
    let (verb, arg) = match line.split_once(' ') {
        Some((v, a)) => (v, Some(a)),
        None => (line, None),
    };
    if verb.is_empty() {
        return Err(Reply::new(500, "Empty command."));
    }
    let verb = verb.to_ascii_uppercase();
    let path = || match arg {
        Some(a) if !a.is_empty() => Ok(a.to_owned()),
        _ => Err(Reply::new(501, format!("{verb} needs an argument."))),
    };
    let optional = || arg.filter(|a| !a.is_empty()).map(str::to_owned);
    let none = |c: Command| match arg.filter(|a| !a.trim().is_empty()) {
        None => Ok(c),
        Some(_) => Err(Reply::new(501, format!("{verb} takes no argument."))),
    };
    use Command::*;
    Ok(match verb.as_str() {
        "USER" => User(path()?),
        "PASS" => Pass(arg.unwrap_or_default().to_owned()),
        "ACCT" => Acct,
        "CWD" | "XCWD" => Cwd(path()?),
        "CDUP" | "XCUP" => none(Cdup)?,
        "PWD" | "XPWD" => none(Pwd)?,
        "LIST" => List(list_path(arg)),
        "NLST" => Nlst(list_path(arg)),
        "RETR" => Retr(path()?),
        "STOR" => Stor(path()?),
        "APPE" => Appe(path()?),
        "STOU" => none(Stou)?,
        "DELE" => Dele(path()?),
        "MKD" | "XMKD" => Mkd(path()?),
        "RMD" | "XRMD" => Rmd(path()?),
        "RNFR" => Rnfr(path()?),
        "RNTO" => Rnto(path()?),
        "TYPE" => Type(parse_type(arg)?),
        "MODE" => Mode(one_letter(arg, &verb)?),
        "STRU" => Stru(one_letter(arg, &verb)?),
        "ALLO" => Allo,
        "NOOP" => none(Noop)?,
        "SYST" => none(Syst)?,
        "STAT" => Stat(optional()),
        "HELP" => Help,
        "ABOR" => none(Abor)?,
        "QUIT" => none(Quit)?,
        "REIN" => none(Rein)?,
        "FEAT" => none(Feat)?,
        "OPTS" => Opts(path()?),
        "PASV" => none(Pasv)?,
        "EPSV" => Epsv(parse_epsv(arg)?),
        "PORT" => Port(parse_port(&path()?)?),
        "EPRT" => Eprt(parse_eprt(&path()?)?),
        "SIZE" => Size(path()?),
        "MDTM" => Mdtm(path()?),
        "REST" => Rest(
            path()?
                .parse()
                .map_err(|_| Reply::new(501, "REST needs a byte offset."))?,
        ),
        "MLSD" => Mlsd(optional()),
        "MLST" => Mlst(optional()),
        "AUTH" => Auth(path()?.to_ascii_uppercase()),
        "PBSZ" => Pbsz(
            path()?
                .parse()
                .map_err(|_| Reply::new(501, "PBSZ needs a number."))?,
        ),
        "PROT" => Prot(one_letter(arg, &verb)?),
        _ => return Err(Reply::new(502, format!("{verb} not implemented."))),
    })
}

/// `LIST -la dir` → `dir`: clients pass `ls` options, which wharf ignores.
pub(crate) fn list_path(arg: Option<&str>) -> Option<String> {
    let mut rest = arg?.trim_start();
    while let Some(opts) = rest.strip_prefix('-') {
        rest = opts.split_once(' ').map_or("", |(_, r)| r).trim_start();
    }
    (!rest.is_empty()).then(|| rest.to_owned())
}

fn one_letter(arg: Option<&str>, verb: &str) -> Result<char, Reply> {
    let mut chars = arg.unwrap_or_default().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c.to_ascii_uppercase()),
        _ => Err(Reply::new(501, format!("{verb} needs one letter."))),
    }
}

/// `TYPE A`, `TYPE A N`, `TYPE I`, `TYPE L 8` (RFC 959 §4.1.2).
fn parse_type(arg: Option<&str>) -> Result<Type, Reply> {
    let words: Vec<String> = arg
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["A"] | ["A", "N"] => Ok(Type::Ascii),
        ["I"] | ["L", "8"] => Ok(Type::Image),
        ["A" | "E", _] | ["E"] | ["L", _] => Err(Reply::new(504, "Only TYPE A, A N, I and L 8.")),
        _ => Err(Reply::new(501, "TYPE needs A or I.")),
    }
}

/// `EPSV`, `EPSV 1`, `EPSV 2`, `EPSV ALL` (RFC 2428 §3).
fn parse_epsv(arg: Option<&str>) -> Result<Option<Option<u8>>, Reply> {
    match arg.map(str::trim) {
        None | Some("") => Ok(Some(None)),
        Some(a) if a.eq_ignore_ascii_case("ALL") => Ok(None),
        Some("1") => Ok(Some(Some(1))),
        Some("2") => Ok(Some(Some(2))),
        Some(_) => Err(Reply::new(
            522,
            "Network protocol not supported, use (1,2).",
        )),
    }
}

/// `PORT h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
fn parse_port(arg: &str) -> Result<SocketAddr, Reply> {
    let bad = || Reply::new(501, "PORT needs h1,h2,h3,h4,p1,p2 (six numbers 0-255).");
    let nums: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|n| n.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [a, b, c, d, p1, p2] = nums[..] else {
        return Err(bad());
    };
    Ok(SocketAddr::new(
        IpAddr::from([a, b, c, d]),
        u16::from_be_bytes([p1, p2]),
    ))
}

/// `EPRT |1|132.235.1.2|6275|` or `EPRT |2|::1|5282|` (RFC 2428 §2): any printable
/// delimiter.
fn parse_eprt(arg: &str) -> Result<SocketAddr, Reply> {
    let bad = || Reply::new(501, "EPRT needs |protocol|address|port|.");
    let mut chars = arg.chars();
    let delim = chars
        .next()
        .filter(|c| c.is_ascii_graphic())
        .ok_or_else(bad)?;
    let parts: Vec<&str> = chars.as_str().split(delim).collect();
    let [proto, addr, port, ""] = parts[..] else {
        return Err(bad());
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip: IpAddr = match proto {
        "1" => IpAddr::V4(addr.parse().map_err(|_| bad())?),
        "2" => IpAddr::V6(addr.parse().map_err(|_| bad())?),
        _ => {
            return Err(Reply::new(
                522,
                "Network protocol not supported, use (1,2).",
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> u16 {
        parse(line.as_bytes()).unwrap_err().code()
    }

    #[test]
    fn verbs_and_arguments() {
        // RFC 959 §4.1: verbs are case-insensitive; the argument follows one space.
        let table: &[(&str, Command)] = &[
            ("user alice", Command::User("alice".into())),
            ("RETR a file.txt", Command::Retr("a file.txt".into())),
            ("retr  lead", Command::Retr(" lead".into())),
            ("PASS", Command::Pass(String::new())),
            ("XPWD", Command::Pwd),
            ("LIST -la", Command::List(None)),
            ("LIST -a -l sub dir", Command::List(Some("sub dir".into()))),
            ("LIST sub", Command::List(Some("sub".into()))),
            ("TYPE a n", Command::Type(Type::Ascii)),
            ("TYPE L 8", Command::Type(Type::Image)),
            ("EPSV ALL", Command::Epsv(None)),
            ("EPSV", Command::Epsv(Some(None))),
            ("EPSV 2", Command::Epsv(Some(Some(2)))),
            ("REST 1024", Command::Rest(1024)),
            ("PROT p", Command::Prot('P')),
            (
                "PORT 127,0,0,1,4,1",
                Command::Port("127.0.0.1:1025".parse().unwrap()),
            ),
            (
                "EPRT |2|::1|5282|",
                Command::Eprt("[::1]:5282".parse().unwrap()),
            ),
            (
                "EPRT !1!10.0.0.1!21!",
                Command::Eprt("10.0.0.1:21".parse().unwrap()),
            ),
        ];
        for (line, want) in table {
            assert_eq!(&parse(line.as_bytes()).unwrap(), want, "{line}");
        }
    }

    #[test]
    fn refusals_carry_the_rfc_codes() {
        let table = [
            ("FOO", 502),    // RFC 959 §4.2: not implemented
            ("", 500),       // syntax error
            ("RETR", 501),   // argument missing
            ("NOOP x", 501), // argument where none is allowed
            ("TYPE E", 504), // not implemented for that parameter
            ("TYPE Z", 501),
            ("PORT 1,2,3,4,5", 501), // malformed PORT
            ("PORT 1,2,3,4,5,256", 501),
            ("PORT a,b,c,d,e,f", 501),
            ("EPRT |3|x|1|", 522),    // RFC 2428 §2: unknown network protocol
            ("EPRT |1|::1|21|", 501), // wrong family for the protocol
            ("EPRT |1|1.2.3.4|99999|", 501),
            ("EPRT 1.2.3.4", 501),
            ("EPSV 3", 522),
            ("REST -1", 501),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        assert_eq!(parse(b"RETR \xff").unwrap_err().code(), 501);
    }

    #[test]
    fn telnet_sequences_are_removed() {
        // IAC IP IAC DM before ABOR (RFC 959 §4.1.3); IAC IAC is a literal 255.
        let mut line = b"\xff\xf4\xff\xf2ABOR".to_vec();
        strip_telnet(&mut line);
        assert_eq!(line, b"ABOR");
        let mut line = b"a\xff\xffb\xff\xfb\x01c".to_vec();
        strip_telnet(&mut line);
        assert_eq!(line, b"a\xffbc");
    }
}
