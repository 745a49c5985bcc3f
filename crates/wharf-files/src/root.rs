//! Opening files beneath a site root, so that nothing outside it is ever read.
//!
//! Request paths are first sanitised by [`wharf_http::path::sanitize`] (no `..`, no
//! encoded separators). The root directory is opened once; every file is then opened
//! relative to that descriptor with `openat2(2)`, whose `RESOLVE_BENEATH` makes the
//! kernel refuse any resolution — including through symbolic links and concurrent
//! renames — that would leave the root. Sites that allow every symlink use
//! `RESOLVE_NO_MAGICLINKS` only; sites that allow none add `RESOLVE_NO_SYMLINKS`.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{openat2, AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};

use crate::config::SymlinkPolicy;

/// An open site root.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    resolve: ResolveFlags,
    follows_all: bool,
    follows_any: bool,
}

/// Why a path could not be opened, as the status to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Absent, not a directory where one was expected, or outside the root.
    NotFound,
    /// Present but not readable by wharf.
    Forbidden,
    /// Something else (I/O error, descriptor exhaustion).
    Unavailable,
}

impl OpenError {
    fn from_errno(e: rustix::io::Errno) -> OpenError {
        use rustix::io::Errno;
        match e {
            // EXDEV: the path would leave the root; ELOOP: a link where none is allowed.
            Errno::NOENT | Errno::NOTDIR | Errno::XDEV | Errno::LOOP | Errno::NAMETOOLONG => {
                OpenError::NotFound
            }
            Errno::ACCESS | Errno::PERM => OpenError::Forbidden,
            _ => OpenError::Unavailable,
        }
    }
}

impl Root {
    /// Opens `path` as a site root (the directory itself may be reached through a
    /// symbolic link; nothing beneath it leaves it, per `symlinks`).
    pub fn open(path: &Path, symlinks: SymlinkPolicy) -> io::Result<Root> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let resolve = match symlinks {
            SymlinkPolicy::WithinRoot => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            SymlinkPolicy::Never => {
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
            }
            SymlinkPolicy::Follow => ResolveFlags::NO_MAGICLINKS,
        };
        Ok(Root {
            dir,
            resolve,
            follows_all: symlinks == SymlinkPolicy::Follow,
            follows_any: symlinks != SymlinkPolicy::Never,
        })
    }

    /// Opens `rel` (a sanitised relative path; empty for the root itself) for reading.
    /// Never blocks on a FIFO or device: those are refused as not found.
    pub fn open_file(&self, rel: &Path) -> Result<(File, std::fs::Metadata), OpenError> {
        let rel: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = openat2(&self.dir, rel, flags, Mode::empty(), self.resolve)
            .map_err(OpenError::from_errno)?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|_| OpenError::Unavailable)?;
        if !(meta.is_file() || meta.is_dir()) {
            return Err(OpenError::NotFound);
        }
        Ok((file, meta))
    }

    /// Whether any symbolic link is followed (else listings leave links out).
    pub(crate) fn follows_links(&self) -> bool {
        self.follows_any
    }

    /// `statx(2)` of `rel` without following a final symlink; `None` unless it is a
    /// regular file. Only for checking a file already reached with [`Root::open_file`].
    ///
    /// `statx` follows symlinks in parent directories wherever they lead, so unless the
    /// site follows every link, only names directly beneath the root qualify.
    /// The root directory's descriptor (to watch it for changes).
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.dir
    }

    pub(crate) fn stat(&self, rel: &Path) -> Option<rustix::fs::Statx> {
        if !self.follows_all && rel.components().nth(1).is_some() {
            return None;
        }
        let st = rustix::fs::statx(
            &self.dir,
            rel,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )
        .ok()?;
        (FileType::from_raw_mode(st.stx_mode.into()) == FileType::RegularFile).then_some(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(outer.path().join("secret"), "s").unwrap();
        symlink("sub/a.txt", root.join("inside")).unwrap();
        symlink("../secret", root.join("outside")).unwrap();
        symlink(outer.path().join("secret"), root.join("absolute")).unwrap();
        (outer, root)
    }

    #[test]
    fn symlink_policies() {
        let (_keep, root) = tree();
        // (policy, path, opens?)
        let table = [
            (SymlinkPolicy::WithinRoot, "sub/a.txt", true),
            (SymlinkPolicy::WithinRoot, "inside", true),
            (SymlinkPolicy::WithinRoot, "outside", false),
            (SymlinkPolicy::WithinRoot, "absolute", false),
            (SymlinkPolicy::Never, "sub/a.txt", true),
            (SymlinkPolicy::Never, "inside", false),
            (SymlinkPolicy::Never, "outside", false),
            (SymlinkPolicy::Follow, "inside", true),
            (SymlinkPolicy::Follow, "outside", true),
            (SymlinkPolicy::Follow, "absolute", true),
        ];
        for (policy, path, opens) in table {
            let r = Root::open(&root, policy).unwrap();
            let got = r.open_file(Path::new(path));
            assert_eq!(got.is_ok(), opens, "{policy:?} {path}");
            if !opens {
                assert_eq!(got.unwrap_err(), OpenError::NotFound);
            }
        }
    }

    #[test]
    fn root_and_directories_open() {
        let (_keep, root) = tree();
        let r = Root::open(&root, SymlinkPolicy::WithinRoot).unwrap();
        assert!(r.open_file(Path::new("")).unwrap().1.is_dir());
        assert!(r.open_file(Path::new("sub")).unwrap().1.is_dir());
        assert_eq!(
            r.open_file(Path::new("nope")).unwrap_err(),
            OpenError::NotFound
        );
        assert_eq!(
            r.open_file(Path::new("sub/a.txt/x")).unwrap_err(),
            OpenError::NotFound
        );
    }
}
