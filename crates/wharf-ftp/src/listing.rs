//! Listings: `LIST` in the `ls -l` form clients parse, `NLST` names, and the
//! machine-readable facts of `MLSD`/`MLST` (RFC 3659 §7). Pure: the clock is an
//! argument.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::tree::{Entry, Meta};

/// The `MLST` facts wharf knows, in `FEAT` order (RFC 3659 §7.5).
pub(crate) const FACTS: [&str; 5] = ["type", "size", "modify", "perm", "unique"];

/// The facts `MLSD`/`MLST` show, as chosen by `OPTS MLST` (all by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Facts([bool; 5]);

impl Default for Facts {
    fn default() -> Self {
        Facts([true; 5])
    }
}

impl Facts {
    /// `OPTS MLST type;size;`: the known facts named, in any case; unknown ones are
    /// ignored (RFC 3659 §7.9).
    pub(crate) fn select(list: &str) -> Facts {
        let mut on = [false; 5];
        for name in list.split(';').map(str::trim) {
            if let Some(i) = FACTS.iter().position(|f| f.eq_ignore_ascii_case(name)) {
                on[i] = true;
            }
        }
        Facts(on)
    }

    /// The `FEAT` line: `MLST type*;size*;...` with `*` on those shown.
    pub(crate) fn feat(&self) -> String {
        let mut out = String::from("MLST ");
        for (name, on) in FACTS.iter().zip(self.0) {
            write!(out, "{name}{};", if on { "*" } else { "" }).expect("String");
        }
        out
    }

    /// The selected facts, as the `OPTS MLST` reply names them.
    pub(crate) fn names(&self) -> String {
        FACTS
            .iter()
            .zip(self.0)
            .filter(|(_, on)| *on)
            .map(|(n, _)| format!("{n};"))
            .collect()
    }

    /// `type=file;size=5;modify=20261129120000;perm=r;unique=...; name`.
    pub(crate) fn line(&self, meta: &Meta, name: &str, writable: bool) -> String {
        let mut out = String::new();
        let [ty, size, modify, perm, unique] = self.0;
        if ty {
            out.push_str(if meta.dir { "type=dir;" } else { "type=file;" });
        }
        if size && !meta.dir {
            write!(out, "size={};", meta.size).expect("String");
        }
        if modify {
            write!(out, "modify={};", time_val(meta.modified)).expect("String");
        }
        if perm {
            let p = match (meta.dir, writable) {
                (true, true) => "flcdmpe",
                (true, false) => "el",
                (false, true) => "adfrw",
                (false, false) => "r",
            };
            write!(out, "perm={p};").expect("String");
        }
        if unique {
            write!(out, "unique={:x}g{:x};", meta.dev, meta.ino).expect("String");
        }
        write!(out, " {name}").expect("String");
        out
    }
}

/// RFC 3659 §2.3 time-val, UTC: `YYYYMMDDHHMMSS`.
pub(crate) fn time_val(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Six months: older (or future) times show the year instead of the time, as `ls`.
const RECENT: Duration = Duration::from_secs(182 * 24 * 3600);

/// One `ls -l` line: `-rw-r--r-- 1 ftp ftp 5 Nov 29 13:10 a.txt`.
pub(crate) fn ls_line(entry: &Entry, now: SystemTime) -> String {
    let m = &entry.meta;
    let mut mode = String::with_capacity(10);
    mode.push(if m.dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (m.mode >> shift) & 7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let t = OffsetDateTime::from(m.modified);
    let recent = m.modified <= now + Duration::from_secs(3600)
        && now.duration_since(m.modified).unwrap_or_default() < RECENT;
    let when = if recent {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else {
        format!(" {}", t.year())
    };
    let month = &format!("{:?}", t.month())[..3];
    format!(
        "{mode} 1 ftp      ftp      {:>12} {month} {:>2} {when} {}",
        m.size,
        t.day(),
        entry.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(dir: bool, secs: u64) -> Meta {
        Meta {
            dir,
            size: 5,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            mode: if dir { 0o40755 } else { 0o100644 },
            dev: 2049,
            ino: 255,
        }
    }

    #[test]
    fn ls_lines_as_clients_parse_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000); // 2026-11-18 11:06 UTC
        let e = |dir, secs, name: &str| Entry {
            name: name.into(),
            meta: meta(dir, secs),
        };
        assert_eq!(
            ls_line(&e(false, 1_794_900_000, "a b.txt"), now),
            "-rw-r--r-- 1 ftp      ftp                 5 Nov 17 07:20 a b.txt"
        );
        assert_eq!(
            ls_line(&e(true, 1_700_000_000, "old"), now),
            "drwxr-xr-x 1 ftp      ftp                 5 Nov 14  2023 old"
        );
    }

    #[test]
    fn mlst_facts() {
        // RFC 3659 §7.5: facts end with `;`, then one space and the name.
        let f = Facts::default();
        assert_eq!(
            f.line(&meta(false, 1_700_000_000), "a.txt", true),
            "type=file;size=5;modify=20231114221320;perm=adfrw;unique=801gff; a.txt"
        );
        assert_eq!(
            f.line(&meta(true, 0), "d", false),
            "type=dir;modify=19700101000000;perm=el;unique=801gff; d"
        );
        let some = Facts::select("SIZE;type;bogus;");
        assert_eq!(some.names(), "type;size;");
        assert_eq!(some.feat(), "MLST type*;size*;modify;perm;unique;");
        assert_eq!(
            some.line(&meta(false, 0), "x", false),
            "type=file;size=5; x"
        );
        assert_eq!(Facts::select("").line(&meta(false, 0), "x", false), " x");
    }
}
