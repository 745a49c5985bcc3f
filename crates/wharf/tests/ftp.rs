//! FTP and FTPS: both data connection modes, resume, ASCII, the HTTP view of FTP
//! uploads, TLS, users, and bad input (each refusal with its RFC reply code).

mod common;

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;

use common::ftp::{addr, builder, client, read_all, Raw, PASSWORD, USER};
use common::{Builder, Wharf, PATIENCE};
use suppaftp::types::{FileType, Mode};

fn put(ftp: &mut suppaftp::FtpStream, name: &str, bytes: &[u8]) {
    ftp.put_file(name, &mut Cursor::new(bytes.to_vec()))
        .unwrap();
}

fn get(ftp: &mut suppaftp::FtpStream, name: &str) -> Vec<u8> {
    ftp.retr_as_buffer(name).unwrap().into_inner()
}

#[test]
fn every_data_mode_moves_files_and_lists() {
    let w = builder().start();
    for mode in [Mode::Passive, Mode::ExtendedPassive, Mode::Active] {
        let mut ftp = client(&w);
        ftp.set_mode(mode);
        let name = format!("{mode:?}.bin");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        put(&mut ftp, &name, &bytes);
        assert_eq!(get(&mut ftp, &name), bytes, "{mode:?}");
        assert_eq!(ftp.size(&name).unwrap(), bytes.len(), "{mode:?}");
        let list = ftp.list(None).unwrap();
        assert!(
            list.iter().any(|l| l.ends_with(&format!(" {name}"))),
            "{list:?}"
        );
        assert!(ftp.nlst(None).unwrap().contains(&name));
        let mlsd = ftp.mlsd(None).unwrap();
        let line = mlsd
            .iter()
            .find(|l| l.ends_with(&format!("; {name}")))
            .unwrap();
        assert!(
            line.starts_with(&format!("type=file;size={};", bytes.len())),
            "{line}"
        );
        ftp.quit().unwrap();
    }
    let on_disk = std::fs::read(w.root().join("Active.bin")).unwrap();
    assert_eq!(on_disk.len(), 300_000);
}

#[test]
fn directories_names_and_dates() {
    let w = builder().start();
    let mut ftp = client(&w);
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.mkdir("new dir").unwrap();
    ftp.cwd("new dir").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/new dir");
    put(&mut ftp, "a.txt", b"a");
    ftp.rename("a.txt", "../moved.txt").unwrap();
    ftp.cdup().unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
    assert_eq!(get(&mut ftp, "moved.txt"), b"a");
    ftp.rmdir("new dir").unwrap();
    ftp.rm("moved.txt").unwrap();
    assert!(!w.root().join("moved.txt").exists());
    // MDTM is the file's modification time (RFC 3659 §3), in UTC.
    let mtime = std::fs::metadata(w.root().join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(ftp.mdtm("hello.txt").unwrap().and_utc().timestamp(), secs);
    let mlst = ftp.mlst(Some("hello.txt")).unwrap();
    assert!(mlst.contains("type=file;size=13;"), "{mlst}");
    // Dot-files are listed for users; upload temporaries never are.
    let names = ftp.nlst(Some("dir")).unwrap();
    assert!(names.iter().any(|n| n.ends_with(".hidden")), "{names:?}");
}

#[test]
fn an_ftp_upload_is_served_over_http_at_once_with_a_new_etag() {
    let w = builder()
        .config("[[site]]\nroot = \"site\"\ndefault = true\nfile_events = true\n")
        .start();
    let http = w.client();
    let first = w.get("/hello.txt", &[]);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.text().unwrap(), "hello, world\n");
    let mut ftp = client(&w);
    // Same size, same second: only the content tells the versions apart.
    for round in 0..3 {
        let body = format!("HELLO, WORLD{round}");
        put(&mut ftp, "hello.txt", body.as_bytes());
        let res = http.get(w.url("/hello.txt")).send().unwrap();
        let new_etag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(new_etag, etag);
        assert_eq!(res.text().unwrap(), body, "round {round}");
    }
    // And the hub's `_files` channel says so.
    let events = w.get("/hub/_files?since=0", &[]).text().unwrap();
    assert!(events.contains("/hello.txt"), "{events}");
}

#[test]
fn resume_downloads_and_uploads() {
    let w = builder().start();
    let mut ftp = client(&w);
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    put(&mut ftp, "r.bin", &bytes[..40_000]);
    // REST + STOR: the rest of the file after the first 40,000 bytes.
    ftp.resume_transfer(40_000).unwrap();
    put(&mut ftp, "r.bin", &bytes[40_000..]);
    assert_eq!(std::fs::read(w.root().join("r.bin")).unwrap(), bytes);
    // REST + RETR.
    ftp.resume_transfer(99_000).unwrap();
    assert_eq!(get(&mut ftp, "r.bin"), &bytes[99_000..]);
    // APPE.
    ftp.append_file("r.bin", &mut Cursor::new(b"tail".to_vec()))
        .unwrap();
    assert_eq!(
        std::fs::read(w.root().join("r.bin")).unwrap().len(),
        100_004
    );
    // A restart point beyond the end: 554 (RFC 3659 §5.5).
    let mut raw = Raw::login(addr(&w, false));
    raw.cmd("TYPE I");
    raw.cmd("REST 999999");
    let _data = raw.epsv_connect();
    assert_eq!(raw.cmd("RETR r.bin").0, 554);
}

#[test]
fn ascii_mode_converts_line_ends_both_ways() {
    let w = builder().file("unix.txt", "a\nb\n").start();
    let mut ftp = client(&w);
    ftp.transfer_type(FileType::Ascii(suppaftp::types::FormatControl::Default))
        .unwrap();
    assert_eq!(
        ftp.size("unix.txt").unwrap(),
        6,
        "SIZE counts the CRLF form"
    );
    let mut raw = Raw::login(addr(&w, false));
    assert_eq!(raw.cmd("TYPE A").0, 200);
    let data = raw.epsv_connect();
    assert_eq!(raw.cmd("RETR unix.txt").0, 150);
    assert_eq!(read_all(data), b"a\r\nb\r\n");
    assert_eq!(raw.reply().0, 226);
    let mut data = raw.epsv_connect();
    assert_eq!(raw.cmd("STOR dos.txt").0, 150);
    data.write_all(b"x\r\ny\r\nlone\rcr").unwrap();
    drop(data);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(
        std::fs::read(w.root().join("dos.txt")).unwrap(),
        b"x\ny\nlone\rcr"
    );
}

#[test]
fn abor_and_stat_during_a_transfer() {
    let w = builder().file("big.bin", vec![7u8; 64 << 20]).start();
    let mut raw = Raw::login(addr(&w, false));
    raw.cmd("TYPE I");
    let mut data = raw.epsv_connect();
    assert_eq!(raw.cmd("RETR big.bin").0, 150);
    let mut first = [0u8; 1024];
    data.read_exact(&mut first).unwrap();
    // STAT during the transfer: its progress on the control connection.
    let (code, text) = raw.cmd("STAT");
    assert_eq!(code, 211);
    assert!(text.contains("Transferring RETR /big.bin"), "{text}");
    // ABOR: 426 for the transfer, then 226 (RFC 959 §4.1.3).
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    // The session goes on.
    assert_eq!(raw.cmd("NOOP").0, 200);
}

#[test]
fn a_client_that_vanishes_mid_upload_leaves_the_previous_file() {
    let w = builder().start();
    let before = std::fs::read(w.root().join("hello.txt")).unwrap();
    let mut raw = Raw::login(addr(&w, false));
    raw.cmd("TYPE I");
    let mut data = raw.epsv_connect();
    assert_eq!(raw.cmd("STOR hello.txt").0, 150);
    data.write_all(b"half of a new ver").unwrap();
    // The process dies: its control connection closes first, then the data one.
    raw.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(raw);
    w.wait_for_stderr("client left during a transfer");
    drop(data);
    assert_eq!(std::fs::read(w.root().join("hello.txt")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(w.root())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".wharf-upload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn refusals_carry_the_rfc_codes() {
    let w = builder().start();
    let a = addr(&w, false);
    let mut raw = Raw::connect(a);
    // Out of sequence (503) and before login (530).
    assert_eq!(raw.cmd("PASS x").0, 503);
    assert_eq!(raw.cmd("LIST").0, 530);
    assert_eq!(raw.cmd("RETR hello.txt").0, 530);
    assert_eq!(raw.cmd(&format!("USER {USER}")).0, 331);
    assert_eq!(raw.cmd(&format!("PASS {PASSWORD}")).0, 230);
    assert_eq!(raw.cmd("RNTO x").0, 503);
    assert_eq!(
        raw.cmd("RETR hello.txt").0,
        425,
        "no data connection set up"
    );
    // Unknown and malformed commands.
    assert_eq!(raw.cmd("SITE CHMOD 777 x").0, 502);
    assert_eq!(raw.cmd("XYZZY").0, 502);
    assert_eq!(raw.cmd("PORT 1,2,3").0, 501);
    assert_eq!(raw.cmd("PORT 127,0,0,1,300,1").0, 501);
    assert_eq!(raw.cmd("EPRT |9|::1|2000|").0, 522);
    assert_eq!(raw.cmd("EPRT |1|nonsense|2000|").0, 501);
    assert_eq!(raw.cmd("TYPE E").0, 504);
    assert_eq!(raw.cmd("MODE B").0, 504);
    // FTP bounce: another host, or a privileged port (RFC 2577): 504, and logged.
    assert_eq!(raw.cmd("PORT 192,0,2,1,31,144").0, 504);
    assert_eq!(raw.cmd("EPRT |1|127.0.0.1|25|").0, 504);
    // The other network protocol than the control connection's (RFC 2428 §2).
    assert_eq!(raw.cmd("EPRT |2|::1|2000|").0, 522);
    w.wait_for_stderr("FTP bounce");
    // Path escapes: `..` stops at the root; names HTTP refuses are refused (553).
    assert_eq!(raw.cmd("CWD ../../../..").0, 250);
    assert_eq!(raw.cmd("PWD").1.trim(), "\"/\" is the current directory.");
    assert_eq!(raw.cmd("SIZE ../outside.txt").0, 550);
    assert_eq!(raw.cmd("SIZE /../../outside.txt").0, 550);
    assert_eq!(raw.cmd("SIZE a\\b").0, 553);
    // A 10 KB command line: 500, and the session goes on.
    let (code, text) = raw.cmd(&format!("NOOP {}", "x".repeat(10_000)));
    assert_eq!(code, 500, "{text}");
    assert_eq!(raw.cmd("NOOP").0, 200);
    assert_eq!(raw.cmd("QUIT").0, 221);
    assert!(raw.closed());
}

#[test]
fn symlinks_out_of_the_root_are_invisible() {
    let w = builder().start();
    std::os::unix::fs::symlink(w.dir.path().join("outside.txt"), w.root().join("leak")).unwrap();
    let mut ftp = client(&w);
    assert!(ftp.retr_as_buffer("leak").is_err());
    assert!(!ftp.nlst(None).unwrap().iter().any(|n| n == "leak"));
}

fn limited() -> Builder {
    builder().config(
        "[ftp]\nlogin_delay = \"10ms\"\nmax_login_failures = 3\nlockout = \"60s\"\n\
         data_timeout = \"1s\"\nmax_sessions_per_ip = 4\n",
    )
}

#[test]
fn a_login_flood_is_slowed_then_locked_out() {
    let w = limited().start();
    let a = addr(&w, false);
    let mut raw = Raw::connect(a);
    for _ in 0..3 {
        assert_eq!(raw.cmd(&format!("USER {USER}")).0, 331);
        assert_eq!(raw.cmd("PASS wrong").0, 530);
    }
    assert_eq!(raw.reply().0, 421, "closed after the third failure");
    // The address is locked out, even with the right password.
    let mut again = TcpStream::connect(a).unwrap();
    again.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut text = String::new();
    again.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("421 Too many failed logins"), "{text}");
}

#[test]
fn sessions_per_address_are_limited() {
    let w = limited().start();
    let a = addr(&w, false);
    let _held: Vec<Raw> = (0..4).map(|_| Raw::connect(a)).collect();
    let mut fifth = TcpStream::connect(a).unwrap();
    fifth.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut text = String::new();
    fifth.read_to_string(&mut text).unwrap();
    assert!(
        text.starts_with("421 Too many sessions from 127.0.0.1"),
        "{text}"
    );
}

#[test]
fn a_passive_port_nobody_connects_to_times_out() {
    let w = limited().start();
    let mut raw = Raw::login(addr(&w, false));
    assert_eq!(raw.cmd("EPSV").0, 229);
    assert_eq!(raw.cmd("RETR hello.txt").0, 150);
    let (code, text) = raw.reply();
    assert_eq!(code, 425, "{text}");
    assert!(text.contains("firewall or NAT"), "{text}");
    w.wait_for_stderr("no data connection from 127.0.0.1");
    assert_eq!(raw.cmd("NOOP").0, 200);
}

#[test]
fn anonymous_access_is_read_only() {
    let w = Builder::new()
        .arg("--ftp-listen")
        .arg("127.0.0.1:0")
        .config("[ftp]\nanonymous = true\n")
        .start();
    let mut ftp = suppaftp::FtpStream::connect(addr(&w, false)).unwrap();
    ftp.login("anonymous", "me@example.com").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    assert_eq!(get(&mut ftp, "hello.txt"), b"hello, world\n");
    assert!(ftp
        .put_file("x.txt", &mut Cursor::new(b"x".to_vec()))
        .is_err());
    assert!(ftp.mkdir("d").is_err());
    assert!(!w.root().join("x.txt").exists());
    // Dot-files are not shown to anonymous users.
    assert!(!ftp
        .nlst(Some("dir"))
        .unwrap()
        .iter()
        .any(|n| n.contains(".hidden")));
}

fn tls_client_config(w: &Wharf) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(w.root_cert()).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

#[test]
fn ftps_explicit_and_implicit() {
    let w = builder()
        .proto(common::Proto::H1Tls)
        .arg("--ftp-implicit-listen")
        .arg("127.0.0.1:0")
        .start();
    let cfg = tls_client_config(&w);
    // Explicit: AUTH TLS, PBSZ 0, PROT P, then both modes.
    for mode in [Mode::ExtendedPassive, Mode::Active] {
        let ftp = suppaftp::RustlsFtpStream::connect(addr(&w, false)).unwrap();
        let mut ftp = ftp
            .into_secure(suppaftp::RustlsConnector::from(cfg.clone()), "localhost")
            .unwrap();
        ftp.login(USER, PASSWORD).unwrap();
        ftp.transfer_type(FileType::Binary).unwrap();
        ftp.set_mode(mode);
        let bytes = vec![42u8; 200_000];
        ftp.put_file("secure.bin", &mut Cursor::new(bytes.clone()))
            .unwrap();
        assert_eq!(
            ftp.retr_as_buffer("secure.bin").unwrap().into_inner(),
            bytes
        );
        ftp.quit().unwrap();
    }
    // Implicit: TLS from the first byte.
    let mut ftp = suppaftp::RustlsFtpStream::connect_secure_implicit(
        addr(&w, true),
        suppaftp::RustlsConnector::from(cfg),
        "localhost",
    )
    .unwrap();
    ftp.login(USER, PASSWORD).unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    assert_eq!(
        ftp.retr_as_buffer("hello.txt").unwrap().into_inner(),
        b"hello, world\n"
    );
}

#[test]
fn tls_can_be_required() {
    let w = builder()
        .proto(common::Proto::H1Tls)
        .config("[ftp]\nrequire_tls = true\nrequire_tls_data = true\n")
        .start();
    let mut raw = Raw::connect(addr(&w, false));
    assert_eq!(raw.cmd(&format!("USER {USER}")).0, 530);
    let mut ftp = suppaftp::RustlsFtpStream::connect(addr(&w, false))
        .unwrap()
        .into_secure(
            suppaftp::RustlsConnector::from(tls_client_config(&w)),
            "localhost",
        )
        .unwrap();
    ftp.login(USER, PASSWORD).unwrap();
    // PROT C is refused where data must be protected (RFC 4217 §9: 534).
    let r = ftp.custom_command("PROT C", &[suppaftp::Status::CommandOk]);
    assert!(r.is_err());
}

/// `wharf ftp-user add NAME ...` with `password` on standard input.
fn add_user(users: &std::path::Path, name: &str, password: &str, extra: &[&str]) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["ftp-user", "add", name, "--users"])
        .arg(users)
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn virtual_users_from_a_file_with_their_own_roots_and_rights() {
    let b = Builder::new();
    let users = b.path().join("users.toml");
    let home = b.path().join("bob-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("mine.txt"), "bob's").unwrap();
    add_user(
        &users,
        "bob",
        "bobpw",
        &["--root", home.to_str().unwrap(), "--max-rate", "2000000"],
    );
    add_user(&users, "carol", "carolpw", &["--read-only"]);
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        text.contains("$argon2id$") && !text.contains("bobpw"),
        "{text}"
    );
    let w = b
        .arg("--ftp-listen")
        .arg("127.0.0.1:0")
        .config(&format!(
            "[ftp]\nusers_file = {:?}\nlogin_delay = \"10ms\"\n",
            users.to_str().unwrap()
        ))
        .start();
    let a = addr(&w, false);
    // bob: his own root, read-write, at most 2 MB/s.
    let mut bob = suppaftp::FtpStream::connect(a).unwrap();
    bob.login("bob", "bobpw").unwrap();
    bob.transfer_type(FileType::Binary).unwrap();
    assert_eq!(bob.nlst(None).unwrap(), ["mine.txt"]);
    let started = std::time::Instant::now();
    put(&mut bob, "up.bin", &vec![1u8; 1_000_000]);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(400),
        "1 MB at 2 MB/s took {took:?}"
    );
    assert!(home.join("up.bin").exists() && !w.root().join("up.bin").exists());
    // carol: the FTP root, read-only.
    let mut carol = suppaftp::FtpStream::connect(a).unwrap();
    carol.login("carol", "carolpw").unwrap();
    carol.transfer_type(FileType::Binary).unwrap();
    assert_eq!(get(&mut carol, "hello.txt"), b"hello, world\n");
    assert!(carol.rm("hello.txt").is_err());
    assert!(w.root().join("hello.txt").exists());
    // A wrong password, and an unknown user, get the same answer.
    for (user, pw) in [("bob", "nope"), ("mallory", "bobpw")] {
        let mut raw = Raw::connect(a);
        raw.cmd(&format!("USER {user}"));
        assert_eq!(
            raw.cmd(&format!("PASS {pw}")),
            (530, "Login incorrect.\r\n".into())
        );
    }
}

#[test]
fn shutdown_lets_a_running_transfer_finish() {
    let b = Builder::new();
    let users = b.path().join("users.toml");
    add_user(&users, "slow", "pw", &["--max-rate", "4000000"]);
    let mut w = b
        .file("two.bin", vec![3u8; 2_000_000])
        .arg("--ftp-listen")
        .arg("127.0.0.1:0")
        .config(&format!(
            "[ftp]\nusers_file = {:?}\n",
            users.to_str().unwrap()
        ))
        .start();
    let a = addr(&w, false);
    let mut raw = Raw::connect(a);
    raw.cmd("USER slow");
    assert_eq!(raw.cmd("PASS pw").0, 230);
    raw.cmd("TYPE I");
    let mut data = raw.epsv_connect();
    assert_eq!(raw.cmd("RETR two.bin").0, 150);
    let mut first = [0u8; 1000];
    data.read_exact(&mut first).unwrap();
    w.signal("TERM");
    // The transfer completes, then the session is told the server is going away.
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    assert_eq!(first.len() + rest.len(), 2_000_000);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(raw.reply().0, 421);
    assert!(w.wait_exit().success());
}

#[test]
fn the_small_commands_answer_as_the_rfcs_say() {
    let w = builder().start();
    let mut raw = Raw::login(addr(&w, false));
    let (code, feat) = raw.cmd("FEAT");
    assert_eq!(code, 211);
    for f in [
        "EPSV",
        "EPRT",
        "MDTM",
        "SIZE",
        "REST STREAM",
        "UTF8",
        "TVFS",
        "MLST type*;size*;modify*;perm*;unique*;",
    ] {
        assert!(feat.lines().any(|l| l.trim() == f), "{f} not in {feat}");
    }
    assert_eq!(raw.cmd("OPTS UTF8 ON").0, 200);
    assert_eq!(
        raw.cmd("OPTS MLST type;size;").1.trim(),
        "MLST OPTS type;size;"
    );
    assert_eq!(raw.cmd("SYST").1.trim(), "UNIX Type: L8");
    assert_eq!(raw.cmd("HELP").0, 214);
    assert_eq!(raw.cmd("ALLO 1000").0, 202);
    assert_eq!(raw.cmd("MODE S").0, 200);
    assert_eq!(raw.cmd("STRU F").0, 200);
    assert_eq!(raw.cmd("STRU R").0, 504);
    assert_eq!(raw.cmd("ABOR").0, 225, "nothing to abort");
    // ABOR while the server still waits for the data connection: 426, then 226.
    assert_eq!(raw.cmd("EPSV").0, 229);
    assert_eq!(raw.cmd("RETR hello.txt").0, 150);
    raw.send("ABOR");
    assert_eq!(raw.reply().0, 426);
    assert_eq!(raw.reply().0, 226);
    // STOU: the server names the file (RFC 1123 §4.1.2.9: in the 150 reply).
    raw.cmd("TYPE I");
    let mut data = raw.epsv_connect();
    let (code, text) = raw.cmd("STOU");
    assert_eq!(code, 150);
    let name = text.trim().strip_prefix("FILE: ").unwrap().to_owned();
    data.write_all(b"unique").unwrap();
    drop(data);
    assert_eq!(raw.reply().0, 226);
    assert_eq!(std::fs::read(w.root().join(&name)).unwrap(), b"unique");
    // STAT with a path: the listing over the control connection (RFC 959 §4.2: 212
    // for a directory, 213 for a file).
    let (code, text) = raw.cmd("STAT dir");
    assert_eq!(code, 212);
    assert!(text.contains(" b.txt"), "{text}");
    let (code, text) = raw.cmd("STAT hello.txt");
    assert_eq!(code, 213);
    assert!(text.contains(" hello.txt"), "{text}");
    // REIN: logged out, ready for a new user.
    assert_eq!(raw.cmd("REIN").0, 220);
    assert_eq!(raw.cmd("PWD").0, 530);
    assert_eq!(raw.cmd(&format!("USER {USER}")).0, 331);
    assert_eq!(raw.cmd(&format!("PASS {PASSWORD}")).0, 230);
}

#[test]
fn ipv6_uses_the_extended_commands() {
    let w = Builder::new()
        .arg("--ftp-listen")
        .arg("[::1]:0")
        .arg("--ftp-user")
        .arg(&format!("{USER}:{PASSWORD}"))
        .start();
    let a = addr(&w, false);
    assert!(a.is_ipv6());
    for mode in [Mode::ExtendedPassive, Mode::Active] {
        let mut ftp = suppaftp::FtpStream::connect(a).unwrap();
        ftp.login(USER, PASSWORD).unwrap();
        ftp.transfer_type(FileType::Binary).unwrap();
        ftp.set_mode(mode); // active mode over IPv6 sends EPRT |2|::1|port|
        put(&mut ftp, "v6.bin", b"over IPv6");
        assert_eq!(get(&mut ftp, "v6.bin"), b"over IPv6", "{mode:?}");
    }
    let mut raw = Raw::login(a);
    assert_eq!(raw.cmd("PASV").0, 522, "PASV cannot name an IPv6 address");
    assert_eq!(raw.cmd("EPSV 1").0, 522);
}

#[test]
fn passive_ports_come_from_the_configured_range() {
    let w = builder()
        .config("[ftp]\npassive_ports = \"40100-40103\"\npassive_address = \"203.0.113.7\"\n")
        .start();
    let mut raw = Raw::login(addr(&w, false));
    for _ in 0..6 {
        let (code, text) = raw.cmd("PASV");
        assert_eq!(code, 227, "{text}");
        // A loopback client is told the server's own address, not the external one.
        let nums: Vec<u16> = text
            .split(['(', ')'])
            .nth(1)
            .unwrap()
            .split(',')
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(&nums[..4], &[127, 0, 0, 1], "{text}");
        let port = nums[4] * 256 + nums[5];
        assert!((40100..=40103).contains(&port), "{port}");
    }
}

#[test]
fn kept_partial_uploads_resume_with_rest() {
    let w = builder()
        .config("[ftp]\nkeep_partial_uploads = true\n")
        .start();
    let a = addr(&w, false);
    let whole: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let mut raw = Raw::login(a);
    raw.cmd("TYPE I");
    let mut data = raw.epsv_connect();
    assert_eq!(raw.cmd("STOR part.bin").0, 150);
    data.write_all(&whole[..50_000]).unwrap();
    // The client goes away mid-upload: what it sent is kept under the name.
    raw.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(raw);
    drop(data);
    w.wait_for_stderr("client left during a transfer");
    let mut ftp = client(&w);
    let have = ftp.size("part.bin").unwrap();
    assert_eq!(have, 50_000);
    ftp.resume_transfer(have).unwrap();
    put(&mut ftp, "part.bin", &whole[have..]);
    assert_eq!(std::fs::read(w.root().join("part.bin")).unwrap(), whole);
}

#[test]
fn a_silent_control_connection_is_closed() {
    let w = builder().config("[ftp]\nidle_timeout = \"1s\"\n").start();
    let mut raw = Raw::login(addr(&w, false));
    let (code, text) = raw.reply();
    assert_eq!(code, 421, "{text}");
    assert!(raw.closed());
}

#[test]
fn a_passive_port_refuses_other_addresses() {
    let w = builder().start();
    let mut raw = Raw::login(addr(&w, false));
    raw.cmd("TYPE I");
    let (code, text) = raw.cmd("EPSV");
    assert_eq!(code, 229, "{text}");
    let port: u16 = text.split('|').nth(3).unwrap().parse().unwrap();
    // Another host (127.0.0.2 is another address on loopback) takes the port first:
    // it is refused and logged, and the client's own connection still gets the data.
    let mut stolen = connect_from("127.0.0.2", port);
    let data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    data.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(raw.cmd("RETR hello.txt").0, 150);
    assert_eq!(read_all(data), b"hello, world\n");
    assert_eq!(raw.reply().0, 226);
    w.wait_for_stderr("port theft");
    // The stranger's connection was closed without a byte.
    stolen.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut nothing = Vec::new();
    let _ = stolen.read_to_end(&mut nothing);
    assert!(nothing.is_empty());
}

/// A TCP connection to 127.0.0.1:`port` from the address `from` (std cannot bind
/// before connecting; tokio's `TcpSocket` can).
fn connect_from(from: &str, port: u16) -> TcpStream {
    let from: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    let stream = common::within(async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        let s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        s.into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
}

#[test]
fn sessions_in_all_are_limited() {
    let w = builder().config("[ftp]\nmax_sessions = 2\n").start();
    let a = addr(&w, false);
    let _held: Vec<Raw> = (0..2).map(|_| Raw::connect(a)).collect();
    let mut third = TcpStream::connect(a).unwrap();
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut text = String::new();
    third.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("421 Too many sessions (2)"), "{text}");
}

#[test]
fn a_stalled_data_connection_times_out() {
    let w = builder().config("[ftp]\ndata_timeout = \"1s\"\n").start();
    let before = std::fs::read(w.root().join("hello.txt")).unwrap();
    let mut raw = Raw::login(addr(&w, false));
    raw.cmd("TYPE I");
    let mut data = raw.epsv_connect();
    assert_eq!(raw.cmd("STOR hello.txt").0, 150);
    data.write_all(b"a start, then nothing").unwrap();
    // The client neither sends more nor closes: 426 once data_timeout passes, the
    // previous file kept, and the session goes on.
    let (code, text) = raw.reply();
    assert_eq!(code, 426, "{text}");
    assert_eq!(std::fs::read(w.root().join("hello.txt")).unwrap(), before);
    assert_eq!(raw.cmd("NOOP").0, 200);
}
