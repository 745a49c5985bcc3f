//! Opening files beneath a site root, so that nothing outside it is ever read.
//!
//! Request paths are first sanitised by [`wharf_http::path::sanitize`] (no `..`, no
//! encoded separators). The root directory is opened once; every file is then opened
//! relative to that descriptor with `openat2(2)`, whose `RESOLVE_BENEATH` makes the
//! kernel refuse any resolution — including through symbolic links and concurrent
//! renames — that would leave the root. Sites that allow every symlink use
//! `RESOLVE_NO_MAGICLINKS` only; sites that allow none add `RESOLVE_NO_SYMLINKS`.
//!
//! Kernels before 5.6 have no `openat2` (RHEL 8 runs 4.18; valgrind does not know the
//! call either). There a path is opened one component at a time with `O_NOFOLLOW`, so
//! no symbolic link is followed at all (sites that follow every link open the path as
//! it is): sanitised paths have no `..`, so every step stays beneath the root. Unlike
//! `RESOLVE_BENEATH` this cannot see a directory renamed out of the root between two
//! steps, which needs someone who can write on both sides; wharf says once at startup
//! which way it opens files.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{openat, openat2, AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

use crate::config::SymlinkPolicy;

/// An open site root.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
    resolve: ResolveFlags,
    /// No `openat2` here: components are opened one by one (see the module's docs).
    walk: bool,
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
    fn from_errno(e: Errno) -> OpenError {
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
        let root = Root::open_as(path, symlinks, true)?;
        if root.walk {
            tracing::warn!(
                root = %path.display(),
                "openat2(2) is not available (Linux before 5.6): files are opened one path \
                 component at a time and symbolic links beneath the root are not followed"
            );
        }
        Ok(root)
    }

    /// As [`Root::open`]; without `openat2` (found missing, or `false` in tests) paths
    /// are walked.
    fn open_as(path: &Path, symlinks: SymlinkPolicy, use_openat2: bool) -> io::Result<Root> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(path, dir_flags, Mode::empty())?;
        let resolve = match symlinks {
            SymlinkPolicy::WithinRoot => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            SymlinkPolicy::Never => {
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
            }
            SymlinkPolicy::Follow => ResolveFlags::NO_MAGICLINKS,
        };
        // Whether this kernel has openat2: the root opened again through it.
        let walk = !use_openat2
            || matches!(
                openat2(&dir, ".", dir_flags, Mode::empty(), resolve),
                Err(Errno::NOSYS)
            );
        let follows_all = symlinks == SymlinkPolicy::Follow;
        Ok(Root {
            dir,
            resolve,
            walk,
            follows_all,
            follows_any: follows_all || (symlinks == SymlinkPolicy::WithinRoot && !walk),
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
        let fd = match (self.walk, self.follows_all) {
            (false, _) => openat2(&self.dir, rel, flags, Mode::empty(), self.resolve),
            (true, true) => openat(&self.dir, rel, flags, Mode::empty()),
            (true, false) => self.open_walking(rel, flags),
        }
        .map_err(OpenError::from_errno)?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|_| OpenError::Unavailable)?;
        if !(meta.is_file() || meta.is_dir()) {
            return Err(OpenError::NotFound);
        }
        Ok((file, meta))
    }

    /// Opens `rel` one component at a time, refusing every symbolic link.
    fn open_walking(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut names = rel
            .components()
            .filter(|c| *c != Component::CurDir)
            .peekable();
        let mut parent: Option<OwnedFd> = None;
        while let Some(c) = names.next() {
            // Sanitised paths hold names only; anything else is not beneath the root.
            let Component::Normal(name) = c else {
                return Err(Errno::NOENT);
            };
            let at = parent.as_ref().unwrap_or(&self.dir);
            if names.peek().is_none() {
                return openat(at, name, flags | OFlags::NOFOLLOW, Mode::empty());
            }
            parent = Some(openat(at, name, dir_flags, Mode::empty())?);
        }
        openat(&self.dir, ".", flags, Mode::empty())
    }

    /// Whether any symbolic link is followed (else listings leave links out).
    pub(crate) fn follows_links(&self) -> bool {
        self.follows_any
    }

    /// The root directory's descriptor (to watch it for changes).
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.dir
    }

    /// `statx(2)` of `rel` without following a final symlink; `None` unless it is a
    /// regular file. Only for checking a file already reached with [`Root::open_file`].
    ///
    /// `statx` follows symlinks in parent directories wherever they lead, so unless the
    /// site follows every link, only names directly beneath the root qualify.
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
        check(&root, true, &table);
    }

    /// Opens each path of `table` (policy, path, opens?) beneath `root`, with openat2
    /// as this kernel has it or walking; what does not open is not found.
    fn check(root: &Path, openat2: bool, table: &[(SymlinkPolicy, &str, bool)]) {
        for &(policy, path, opens) in table {
            let r = Root::open_as(root, policy, openat2).unwrap();
            assert_eq!(r.walk, !openat2, "this kernel has openat2");
            let follows =
                policy == SymlinkPolicy::Follow || (openat2 && policy == SymlinkPolicy::WithinRoot);
            assert_eq!(r.follows_links(), follows, "{policy:?}");
            let got = r.open_file(Path::new(path));
            assert_eq!(got.is_ok(), opens, "{policy:?} {path:?}");
            if !opens {
                assert_eq!(got.unwrap_err(), OpenError::NotFound, "{policy:?} {path:?}");
            }
        }
    }

    /// Without openat2 no link beneath the root is followed, save where every link is.
    #[test]
    fn without_openat2_paths_are_walked_and_links_refused() {
        let (_keep, root) = tree();
        std::fs::create_dir(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("sub/deeper/b.txt"), "b").unwrap();
        symlink("sub", root.join("dirlink")).unwrap();
        // (policy, path, opens?)
        let table = [
            (SymlinkPolicy::WithinRoot, "", true),
            (SymlinkPolicy::WithinRoot, "sub", true),
            (SymlinkPolicy::WithinRoot, "sub/a.txt", true),
            (SymlinkPolicy::WithinRoot, "sub/deeper/b.txt", true),
            (SymlinkPolicy::WithinRoot, "inside", false),
            (SymlinkPolicy::WithinRoot, "outside", false),
            (SymlinkPolicy::WithinRoot, "absolute", false),
            (SymlinkPolicy::WithinRoot, "dirlink/a.txt", false),
            (SymlinkPolicy::WithinRoot, "sub/a.txt/x", false),
            (SymlinkPolicy::WithinRoot, "nope/a.txt", false),
            (SymlinkPolicy::Never, "sub/deeper/b.txt", true),
            (SymlinkPolicy::Never, "dirlink/a.txt", false),
            (SymlinkPolicy::Follow, "dirlink/a.txt", true),
            (SymlinkPolicy::Follow, "outside", true),
        ];
        check(&root, false, &table);
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
