//! A user's file tree: every operation FTP needs, beneath one root.
//!
//! Names come in as [`SafePath`]s (checked by the HTTP path rules). Files and
//! directories are opened with [`Root`] (`openat2(RESOLVE_BENEATH)`, so symbolic
//! links cannot lead out); changes (create, remove, rename) are made with the `*at`
//! system calls on a descriptor of the parent directory opened that way, naming a
//! single checked segment, so no path is ever resolved twice.
//!
//! Uploads are atomic: bytes go to a hidden temporary file beside the target
//! (`.wharf-upload.*`, left out of listings), which is synced and renamed over the
//! target only when the transfer succeeded. An abandoned upload removes it (or, where
//! partial uploads are kept, renames what arrived into place, for `REST` to resume).

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use wharf_files::config::SymlinkPolicy;
use wharf_files::root::{OpenError, Root};
use wharf_http::path::SafePath;

/// The prefix of upload temporaries.
pub(crate) const UPLOAD_PREFIX: &str = ".wharf-upload.";

/// Most entries one listing holds.
const MAX_ENTRIES: usize = 100_000;

/// Why an operation failed, as the client is told.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    #[error("No such file or directory.")]
    NotFound,
    #[error("Permission denied.")]
    Forbidden,
    #[error("Not a plain file.")]
    NotAFile,
    #[error("Not a directory.")]
    NotADirectory,
    #[error("Already exists.")]
    Exists,
    #[error("Directory not empty.")]
    NotEmpty,
    #[error("The root cannot be changed.")]
    Root,
    #[error("The restart point is beyond the end of the file ({0} bytes).")]
    BadRestart(u64),
    #[error("Insufficient storage space.")]
    NoSpace,
    #[error("Local error: {0}.")]
    Io(io::Error),
}

impl FsError {
    /// The reply code (RFC 959 §4.2: 550 unavailable, 553 name not allowed, 452
    /// insufficient storage, 451 local error).
    pub(crate) fn code(&self) -> u16 {
        match self {
            FsError::NoSpace => 452,
            FsError::BadRestart(_) => 554,
            FsError::Io(_) => 451,
            FsError::Root => 553,
            _ => 550,
        }
    }
}

impl From<OpenError> for FsError {
    fn from(e: OpenError) -> FsError {
        match e {
            OpenError::NotFound => FsError::NotFound,
            OpenError::Forbidden => FsError::Forbidden,
            OpenError::Unavailable => FsError::Io(io::Error::other("cannot open")),
        }
    }
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> FsError {
        match e {
            Errno::NOENT | Errno::XDEV | Errno::LOOP => FsError::NotFound,
            Errno::ACCESS | Errno::PERM | Errno::ROFS => FsError::Forbidden,
            Errno::EXIST => FsError::Exists,
            Errno::NOTEMPTY => FsError::NotEmpty,
            Errno::NOTDIR => FsError::NotADirectory,
            Errno::ISDIR => FsError::NotAFile,
            Errno::NOSPC | Errno::DQUOT => FsError::NoSpace,
            e => FsError::Io(e.into()),
        }
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> FsError {
        match e.raw_os_error() {
            Some(n) => Errno::from_raw_os_error(n).into(),
            None => FsError::Io(e),
        }
    }
}

/// One directory entry, with the metadata listings show.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) meta: Meta,
}

/// What listings and `SIZE`/`MDTM` say of a file or directory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) dir: bool,
    pub(crate) size: u64,
    pub(crate) modified: SystemTime,
    pub(crate) mode: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl Meta {
    fn of(m: &Metadata) -> Meta {
        Meta {
            dir: m.is_dir(),
            size: m.len(),
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            mode: m.mode(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// A user's root.
#[derive(Debug)]
pub(crate) struct Tree {
    root: Root,
    path: PathBuf,
}

static UPLOADS: AtomicU64 = AtomicU64::new(0);

impl Tree {
    /// Opens `path` as a root; symbolic links beneath it are followed only where
    /// they stay inside.
    pub(crate) fn new(path: &Path) -> io::Result<Tree> {
        Ok(Tree {
            root: Root::open(path, SymlinkPolicy::WithinRoot)?,
            path: path.canonicalize()?,
        })
    }

    /// The root's canonical path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `p`, a file or directory.
    pub(crate) fn open(&self, p: &SafePath) -> Result<(File, Meta), FsError> {
        let (file, meta) = self.root.open_file(p.relative_path())?;
        Ok((file, Meta::of(&meta)))
    }

    /// Opens `p`, which must be a plain file.
    pub(crate) fn open_file(&self, p: &SafePath) -> Result<(File, Meta), FsError> {
        match self.open(p)? {
            (_, m) if m.dir => Err(FsError::NotAFile),
            found => Ok(found),
        }
    }

    /// Opens `p`, which must be a directory.
    pub(crate) fn open_dir(&self, p: &SafePath) -> Result<File, FsError> {
        match self.open(p)? {
            (f, m) if m.dir => Ok(f),
            _ => Err(FsError::NotADirectory),
        }
    }

    /// The entries of directory `p`, sorted by name; names no command could give
    /// (not UTF-8, control characters, backslashes), symbolic links leading out of
    /// the root, upload temporaries, and hidden names unless `hidden`, are left out.
    pub(crate) fn list(&self, p: &SafePath, hidden: bool) -> Result<Vec<Entry>, FsError> {
        let dir = self.open_dir(p)?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if !wharf_http::path::is_nameable(name)
                || name.starts_with(UPLOAD_PREFIX)
                || (!hidden && name.starts_with('.'))
            {
                continue;
            }
            if let Some(meta) = self.entry_meta(&dir, p, name) {
                out.push(Entry {
                    name: name.to_owned(),
                    meta,
                });
            }
            if out.len() >= MAX_ENTRIES {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn entry_meta(&self, dir: &File, p: &SafePath, name: &str) -> Option<Meta> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile | FileType::Directory => {
                let modified = SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_secs(st.st_mtime.max(0) as u64);
                Some(Meta {
                    dir: FileType::from_raw_mode(st.st_mode as _) == FileType::Directory,
                    size: st.st_size as u64,
                    modified,
                    mode: st.st_mode as u32,
                    dev: st.st_dev as u64,
                    ino: st.st_ino as u64,
                })
            }
            // A link is listed as what it leads to, if that is inside the root.
            FileType::Symlink => self
                .root
                .open_file(&p.relative_path().join(name))
                .ok()
                .map(|(_, m)| Meta::of(&m)),
            _ => None,
        }
    }

    /// The parent directory of `p` (opened beneath the root) and `p`'s last segment.
    fn parent<'p>(&self, p: &'p SafePath) -> Result<(File, &'p str), FsError> {
        let (parent, name) = p.split_last().ok_or(FsError::Root)?;
        Ok((self.open_dir(&parent)?, name))
    }

    /// `MKD`.
    pub(crate) fn mkdir(&self, p: &SafePath) -> Result<(), FsError> {
        let (dir, name) = self.parent(p)?;
        Ok(rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))?)
    }

    /// `RMD`: an empty directory.
    pub(crate) fn rmdir(&self, p: &SafePath) -> Result<(), FsError> {
        let (dir, name) = self.parent(p)?;
        Ok(rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?)
    }

    /// `DELE`: a file (or a symbolic link, which is removed, not followed).
    pub(crate) fn delete(&self, p: &SafePath) -> Result<(), FsError> {
        let (dir, name) = self.parent(p)?;
        Ok(rustix::fs::unlinkat(&dir, name, AtFlags::empty())?)
    }

    /// `RNFR` + `RNTO`, as `rename(2)`: replaces a file at `to`, or an empty
    /// directory when `from` is a directory.
    pub(crate) fn rename(&self, from: &SafePath, to: &SafePath) -> Result<(), FsError> {
        let (from_dir, from_name) = self.parent(from)?;
        let (to_dir, to_name) = self.parent(to)?;
        Ok(rustix::fs::renameat(
            &from_dir, from_name, &to_dir, to_name,
        )?)
    }

    /// Whether `p` names something (a file or directory inside the root).
    pub(crate) fn exists(&self, p: &SafePath) -> bool {
        self.open(p).is_ok()
    }

    /// Starts an upload to `p`, whose bytes will begin with the first `keep` bytes of
    /// the file there now (`REST` + `STOR`, or `APPE` with `keep` its size); synced to
    /// disk before it is renamed into place if `sync`.
    pub(crate) fn upload(&self, p: &SafePath, keep: u64, sync: bool) -> Result<Upload, FsError> {
        self.upload_with(p, keep, sync, false)
    }

    /// [`Tree::upload`] of a new file (`STOU`): the commit fails rather than replace
    /// a file that appeared meanwhile.
    pub(crate) fn upload_new(&self, p: &SafePath, sync: bool) -> Result<Upload, FsError> {
        self.upload_with(p, 0, sync, true)
    }

    fn upload_with(
        &self,
        p: &SafePath,
        keep: u64,
        sync: bool,
        no_replace: bool,
    ) -> Result<Upload, FsError> {
        let (dir, name) = self.parent(p)?;
        if let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode as _) == FileType::Directory {
                return Err(FsError::NotAFile);
            }
        }
        let base = if keep > 0 {
            let (file, meta) = self.open_file(p)?;
            if meta.size < keep {
                return Err(FsError::BadRestart(meta.size));
            }
            Some(file)
        } else {
            None
        };
        let (tmp_name, file) = loop {
            let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
            let tmp = format!("{UPLOAD_PREFIX}{}.{n}", std::process::id());
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
            match rustix::fs::openat(&dir, tmp.as_str(), flags, Mode::from_raw_mode(0o644)) {
                Ok(fd) => break (tmp, File::from(fd)),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut upload = Upload {
            dir,
            tmp_name,
            name: name.to_owned(),
            file: Some(file),
            sync,
            no_replace,
            written: 0,
            unflushed_from: 0,
        };
        if let Some(base) = base {
            let copied = io::copy(
                &mut io::Read::take(&base, keep),
                upload.file.as_mut().expect("open"),
            )?;
            if copied != keep {
                // The file shrank since it was measured.
                return Err(FsError::BadRestart(copied));
            }
            (upload.written, upload.unflushed_from) = (keep, keep);
        }
        Ok(upload)
    }
}

/// An upload in progress: a temporary file beside its target. Dropped without
/// [`Upload::commit`] or [`Upload::keep_partial`], the temporary is removed.
#[derive(Debug)]
pub(crate) struct Upload {
    dir: File,
    tmp_name: String,
    name: String,
    file: Option<File>,
    sync: bool,
    /// Fail rather than replace an existing file.
    no_replace: bool,
    /// Bytes written so far.
    written: u64,
    /// Where the bytes not yet handed to writeback begin.
    unflushed_from: u64,
}

/// With `sync`, writeback is started every this many bytes while the upload runs, so
/// that the disk works alongside the network and the final `fdatasync` has only the
/// tail left to wait for.
const WRITEBACK_EVERY: u64 = 2 << 20;

impl Upload {
    /// The file being written.
    pub(crate) fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("open until committed")
    }

    /// Appends `data`.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let file = self.file.as_mut().expect("open until committed");
        file.write_all(data)?;
        self.written += data.len() as u64;
        if self.sync && self.written - self.unflushed_from >= WRITEBACK_EVERY {
            // POSIX_FADV_DONTNEED starts writeback of the dirty pages in its range
            // (without waiting for it) on Linux, then drops the clean ones: an upload
            // this big is read back from disk, if at all. The range reaches back one
            // step, whose writeback has had time to finish, and no further, so each
            // byte is looked at twice however large the file grows.
            let from = self.unflushed_from.saturating_sub(WRITEBACK_EVERY);
            let len = std::num::NonZeroU64::new(self.written - from);
            let _ = rustix::fs::fadvise(&*file, from, len, rustix::fs::Advice::DontNeed);
            self.unflushed_from = self.written;
        }
        Ok(())
    }

    /// Syncs the bytes to disk (where asked) and renames the file into place.
    pub(crate) fn commit(mut self) -> Result<(), FsError> {
        if self.sync {
            self.file().sync_data()?;
        }
        self.file = None;
        let flags = if self.no_replace {
            rustix::fs::RenameFlags::NOREPLACE
        } else {
            rustix::fs::RenameFlags::empty()
        };
        let (tmp, name) = (self.tmp_name.as_str(), self.name.as_str());
        rustix::fs::renameat_with(&self.dir, tmp, &self.dir, name, flags)?;
        self.tmp_name.clear();
        Ok(())
    }

    /// Puts what arrived in place (for a later `REST` to resume from).
    pub(crate) fn keep_partial(self) -> Result<(), FsError> {
        self.commit()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.tmp_name.is_empty() {
            let _ =
                rustix::fs::unlinkat(self.dir.as_fd(), self.tmp_name.as_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::{resolve, root};
    use std::io::Write;

    fn tree() -> (tempfile::TempDir, Tree) {
        let outer = tempfile::tempdir().unwrap();
        let r = outer.path().join("root");
        std::fs::create_dir_all(r.join("sub")).unwrap();
        std::fs::write(r.join("a.txt"), "hello").unwrap();
        std::fs::write(outer.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../secret", r.join("out")).unwrap();
        std::os::unix::fs::symlink("a.txt", r.join("in")).unwrap();
        let t = Tree::new(&r).unwrap();
        (outer, t)
    }

    fn p(s: &str) -> SafePath {
        resolve(&root(), s).unwrap()
    }

    #[test]
    fn links_out_of_the_root_are_neither_listed_nor_opened() {
        let (_keep, t) = tree();
        let names: Vec<String> = t
            .list(&root(), false)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.txt", "in", "sub"]);
        assert!(matches!(t.open_file(&p("out")), Err(FsError::NotFound)));
        assert_eq!(t.open_file(&p("in")).unwrap().1.size, 5);
    }

    #[test]
    fn uploads_appear_only_when_committed() {
        let (_keep, t) = tree();
        let mut up = t.upload(&p("a.txt"), 0, true).unwrap();
        up.file().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(t.path().join("a.txt")).unwrap(), b"hello");
        assert_eq!(
            t.list(&root(), true).unwrap().len(),
            3,
            "temporaries are hidden"
        );
        drop(up);
        assert_eq!(std::fs::read(t.path().join("a.txt")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            4,
            "temporary removed"
        );
        let mut up = t.upload(&p("a.txt"), 3, true).unwrap();
        up.file().write_all(b"p!").unwrap();
        up.commit().unwrap();
        assert_eq!(std::fs::read(t.path().join("a.txt")).unwrap(), b"help!");
        assert!(
            t.upload(&p("a.txt"), 99, true).is_err(),
            "restart beyond the end"
        );
        assert!(matches!(
            t.upload(&p("sub"), 0, true),
            Err(FsError::NotAFile)
        ));
    }

    #[test]
    fn changes_stay_inside() {
        let (_keep, t) = tree();
        t.mkdir(&p("sub/new")).unwrap();
        assert!(matches!(t.mkdir(&p("sub/new")), Err(FsError::Exists)));
        t.rename(&p("a.txt"), &p("sub/new/b.txt")).unwrap();
        assert!(matches!(t.rmdir(&p("sub/new")), Err(FsError::NotEmpty)));
        t.delete(&p("sub/new/b.txt")).unwrap();
        t.rmdir(&p("sub/new")).unwrap();
        assert!(matches!(t.delete(&p("/")), Err(FsError::Root)));
        // Through the link that leaves the root: refused, nothing created outside.
        assert!(t.mkdir(&p("out/x")).is_err());
        t.delete(&p("out")).unwrap();
        assert!(t.path().parent().unwrap().join("secret").exists());
    }
}
