//! The command line and the configuration file, as a user meets them.

mod common;

use std::process::Command;

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
