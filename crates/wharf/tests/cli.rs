//! The command line and the configuration file, as a user meets them.

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use common::{listening_addr, Builder, Proto};

fn wharf(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wharf.toml");
    let (ok, out, err) = wharf(&["check-config", example]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ok"));
}

#[test]
fn check_config_names_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[[site]]\nroot = \".\"\nlisting = true\nbogus_key = 1\n", vec!["line 4", "bogus_key"]),
        ("[limits]\nidle_timeout = \"soon\"\n", vec!["line 2", "idle_timeout"]),
        ("[[site]]\nroot = \"does-not-exist\"\n", vec!["line 2", "site[0].root", "cannot open"]),
        ("[[site]]\nroot = \".\"\n", vec!["site[0].names", "no request can reach it"]),
        ("[[site]]\nroot = \".\"\nnames = [\"a.test\"]\n[[site]]\nroot = \".\"\nnames = [\"a.test\"]\n", vec!["line 6", "site[1].names", "a.test"]),
    ];
    for (text, words) in cases {
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, text).unwrap();
        let (ok, _, err) = wharf(&["check-config", path.to_str().unwrap()]);
        assert!(!ok, "{text}");
        for w in words {
            assert!(err.contains(w), "{text:?}: {err}");
        }
    }
}

#[test]
fn help_documents_every_flag() {
    let (ok, out, _) = wharf(&["serve", "--help"]);
    assert!(ok);
    for flag in [
        "--listen",
        "--port",
        "--config",
        "--explain",
        "--listing",
        "--access-log",
        "[DIR]",
    ] {
        assert!(out.contains(flag), "{flag}: {out}");
    }
}

#[test]
fn dir_and_site_tables_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wharf.toml");
    std::fs::write(&path, "[[site]]\nroot = \".\"\n").unwrap();
    let (ok, _, err) = wharf(&[
        "serve",
        ".",
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn zero_config_serves_the_directory_and_prints_its_url() {
    let w = common::Builder::new().start();
    let out = w.output();
    assert!(
        out.contains(&format!("listening on http://{}/", w.addr)),
        "{out}"
    );
    let body = common::client()
        .get(w.url("/hello.txt"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "hello, world\n");
}

/// Runs wharf with `args` until it exits by itself; one still running after
/// `PATIENCE` is killed and the test fails.
fn wharf_exits(args: &[&str]) -> (bool, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (done, timer) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if timer.recv_timeout(common::PATIENCE).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&out.status).is_none(),
        "wharf did not exit by itself"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// True when this machine has an IPv6 loopback address to listen on.
fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// Without `--listen` (here `--port 0` for a free port; 8080 and 8443 otherwise),
/// wharf listens on `localhost` as clients resolve it: 127.0.0.1 and [::1], on one
/// port, over TCP and, for HTTP/3, UDP. Browsers try [::1] first.
fn default_listeners_answer_on_both_loopbacks(p: Proto) {
    let mut w = Builder::new().proto(p).default_listeners().start();
    let scheme = if p.tls() { "https://" } else { "http://" };
    assert_eq!(w.addr.ip(), Ipv4Addr::LOCALHOST);
    if !ipv6_loopback() {
        // No IPv6 here: 127.0.0.1 alone, and a warning.
        w.wait_for_stderr("no IPv6 loopback");
        assert_eq!(w.get("/hello.txt", &[]).status(), 200);
        return;
    }
    let line = w.wait_for_output(&format!("listening on {scheme}[::1]:"));
    let v6 = listening_addr(&line, scheme);
    assert_eq!(v6.port(), w.addr.port(), "one port for both loopbacks");
    for addr in [v6, w.addr] {
        w.addr = addr;
        let res = w.get("/hello.txt", &[]);
        assert_eq!(res.status(), 200, "{addr}");
        assert_eq!(res.text().unwrap(), "hello, world\n", "{addr}");
    }
}

mod default_listeners {
    use super::*;
    #[test]
    fn h1() {
        default_listeners_answer_on_both_loopbacks(Proto::H1)
    }
    #[test]
    fn h2c() {
        default_listeners_answer_on_both_loopbacks(Proto::H2c)
    }
    #[test]
    fn https1() {
        default_listeners_answer_on_both_loopbacks(Proto::H1Tls)
    }
    #[test]
    fn h2() {
        default_listeners_answer_on_both_loopbacks(Proto::H2Tls)
    }
    #[test]
    fn h3() {
        default_listeners_answer_on_both_loopbacks(Proto::H3)
    }
}

/// A default port taken on [::1] by another program is an error, as for any address
/// (a browser would reach that program), not a silent fallback to 127.0.0.1.
#[test]
fn a_default_port_taken_on_ipv6_is_an_error() {
    if !ipv6_loopback() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let taken = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = wharf_exits(&["serve", "--port", &port, dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains(&format!("listen [::1]:{port}")), "{err}");
    assert!(err.contains(&format!("--listen 127.0.0.1:{port}")), "{err}");
}

/// Runs its arguments in new user and network namespaces where `lo` is up and has
/// IPv6 off: a machine without an IPv6 loopback.
const WITHOUT_IPV6: &[&str] = &[
    "unshare",
    "-rn",
    "sh",
    "-c",
    "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && ip link set lo up && exec \"$@\"",
    "sh",
];

/// On a machine without IPv6 the default listeners are 127.0.0.1 alone, with a
/// warning, rather than an error. Skipped where unprivileged namespaces are not
/// allowed (`unshare -rn`).
#[test]
fn without_ipv6_the_default_listeners_fall_back_to_127_0_0_1() {
    let runs = Command::new(WITHOUT_IPV6[0])
        .args(&WITHOUT_IPV6[1..])
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        eprintln!("skipped: cannot make a network namespace without IPv6 (unshare -rn)");
        return;
    }
    let w = Builder::new()
        .wrapper(WITHOUT_IPV6)
        .default_listeners()
        .start();
    assert_eq!(w.addr.ip(), Ipv4Addr::LOCALHOST);
    let warning = w.wait_for_stderr("no IPv6 loopback");
    assert!(
        warning.contains(&format!("[::1]:{}", w.addr.port())),
        "{warning}"
    );
    // It serves, from inside its namespace.
    let body = Command::new("nsenter")
        .args([
            "-t",
            &w.pid().to_string(),
            "-U",
            "-n",
            "--preserve-credentials",
        ])
        .args(["curl", "-s", "--max-time", "20"])
        .arg(w.url("/hello.txt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&body.stdout), "hello, world\n");
}

/// The example page says how its stylesheet is cached zero-config and with
/// examples/wharf.toml (and its script shows which one it got): each setup must send
/// what the page says it does. Likewise for the listing of /docs/.
#[test]
fn the_example_page_says_what_each_setup_does() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let site = format!("{examples}/site");
    let config = format!("{examples}/wharf.toml");
    let setups: [(&str, &[&str], u16); 2] = [
        ("zero-config", &[&site], 404),
        ("examples/wharf.toml", &["--config", &config], 200),
    ];
    for (setup, args, docs) in setups {
        let w = Builder::new().serving(args).start();
        let page = w.get("/", &[]).text().unwrap();
        let mark = format!("<code data-cache-control=\"{setup}\">");
        let said = page
            .split_once(&mark)
            .and_then(|(_, rest)| rest.split_once("</code>"))
            .unwrap_or_else(|| panic!("the page names no Cache-Control for {setup}"))
            .0;
        let css = w.get("/assets/style.css", &[]);
        assert_eq!(css.status(), 200, "{setup}");
        assert_eq!(css.headers()["cache-control"], said, "{setup}");
        assert_eq!(w.get("/docs/", &[]).status(), docs, "{setup}: /docs/");
    }
}

/// Each site's startup line names its root and the hosts it serves, in words.
#[test]
fn the_startup_lines_say_which_hosts_each_site_serves() {
    let w = Builder::new().start();
    assert_eq!(
        w.wait_for_output("serving"),
        format!(
            "wharf:   serving {} (default site, any host)",
            w.root().display()
        )
    );
    let w = Builder::new()
        .config(
            "[[site]]\nroot = \"site\"\nnames = [\"a.test\", \"*.b.test\"]\ndefault = true\n\
             [[site]]\nroot = \"site/dir\"\nnames = [\"c.test\"]\n",
        )
        .start();
    let lines = w.wait_for_lines("serving", 2);
    let root = w.root();
    assert_eq!(
        lines,
        [
            format!(
                "wharf:   serving {} for a.test, *.b.test (default site: also any other host)",
                root.display()
            ),
            format!("wharf:   serving {} for c.test", root.join("dir").display()),
        ]
    );
}

/// Diagnostics written to a pipe (as here: no terminal) carry no colour codes, even
/// with NO_COLOR unset; nor do access lines.
#[test]
fn logs_to_a_pipe_have_no_escape_codes() {
    let mut w = Builder::new()
        .env_remove("NO_COLOR")
        .arg("--explain")
        .start();
    assert_eq!(w.get("/hello.txt", &[]).status(), 200);
    w.wait_for_output("GET /hello.txt");
    w.signal("TERM");
    assert!(w.wait_exit().success());
    let err = w.wait_for_stderr("shutdown complete");
    assert!(err.contains("INFO"), "{err}");
    for (what, text) in [("stderr", w.stderr()), ("stdout", w.output())] {
        assert!(!text.contains('\x1b'), "ESC on {what}: {text:?}");
    }
}
