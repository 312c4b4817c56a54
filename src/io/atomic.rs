//! Crash-safe file replacement: a reader of `path` sees either the old file
//! or the complete new one, never a torn mix.
//!
//! Steps: write to a temporary file in the target's directory, flush and
//! fsync it, rename it over the target (atomic on POSIX within one file
//! system), then fsync the directory so the rename itself survives a power
//! cut. If anything fails before the rename, the temporary file is removed
//! and the target is untouched.
//!
//! The temporary name is fixed per target: `.<name>.tmp`, or for a name too
//! long to take the extra five bytes within the 255-byte limit,
//! `.<first bytes of name>~<hash of name>.tmp`. The writer holds an exclusive
//! lock on it while it writes, so a second process saving the same target at
//! the same moment is refused, and a temporary file left by a killed process
//! (whose lock died with it) is replaced by the next save of that target:
//! its name removed and a new file made there, never truncated in place, so
//! a hard link to it elsewhere keeps its bytes. The name is reserved: a
//! command refuses an input or another output at an output's temporary
//! name ([`temp_of`]), and [`check_writable`] changes no file there.
//!
//! The target is the file `path` names with symbolic links followed: saving
//! through a link replaces the file it points to and keeps the link. Only a
//! regular file (or a name not yet taken) is replaced; a directory, device,
//! FIFO or socket is refused, never swapped for a regular file.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The longest file name most file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Symbolic links followed before giving up (Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Removes the temporary file on drop unless the rename succeeded.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn refuse(path: &Path, kind: io::ErrorKind, why: impl Into<String>) -> Error {
    Error::io(path, io::Error::new(kind, why.into()))
}

/// The file that saving to `path` replaces: `path` with the symbolic links
/// of its last component followed (a relative link is read from the link's
/// directory).
///
/// # Errors
/// [`Error::Io`] naming `path` for a loop of links or an unreadable link.
pub fn target_of(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p).map_err(|e| Error::io(path, e))?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            // A link whose text names nothing the kernel still opens (a
            // /proc/self/fd link to a pipe, `pipe:[N]`, or to a deleted
            // file) is the file it opens: the path itself, which callers
            // then see as a FIFO, a socket or a file, not as a free name.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && p != path
                    && fs::metadata(path).is_ok() =>
            {
                return Ok(path.to_path_buf());
            }
            _ => return Ok(p),
        }
    }
    Err(refuse(
        path,
        io::ErrorKind::InvalidInput,
        format!("more than {MAX_LINKS} symbolic links in a row (a loop?)"),
    ))
}

/// What a file that is not a regular file is, for messages.
pub fn kind_of(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        return "a directory";
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// The resolved target of `path` and its directory, checked: a regular file
/// or a free name in an existing directory.
fn checked_target(path: &Path) -> Result<(PathBuf, PathBuf, OsString)> {
    let target = target_of(path)?;
    let name = match target.file_name() {
        Some(n) if !path.as_os_str().to_string_lossy().ends_with('/') => n.to_owned(),
        _ => {
            return Err(refuse(
                path,
                io::ErrorKind::InvalidInput,
                "names a directory, not a file",
            ));
        }
    };
    if name.len() > NAME_MAX {
        return Err(refuse(
            path,
            io::ErrorKind::InvalidFilename,
            format!(
                "the file name is {} bytes long, more than the {NAME_MAX}-byte limit",
                name.len()
            ),
        ));
    }
    // A target that is still a link is one the kernel resolves without a
    // name (see `target_of`): what it opens is described.
    let meta = match fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => fs::metadata(&target).map(|m| (m, true)),
        r => r.map(|m| (m, false)),
    };
    match meta {
        Ok((m, false)) if m.is_file() => {}
        Ok((m, true)) if m.is_file() => {
            return Err(refuse(
                path,
                io::ErrorKind::InvalidInput,
                "opens a file that has no name to replace (a link such as /proc/self/fd/N to a deleted file); name the file itself",
            ));
        }
        Ok((m, _)) => {
            return Err(refuse(
                path,
                io::ErrorKind::InvalidInput,
                format!(
                    "is {}, not a regular file; only regular files are written (and never replaced by one)",
                    kind_of(&m)
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let dir = dir_of(&target);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refuse(
                path,
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(refuse(
                path,
                io::ErrorKind::NotFound,
                format!("the directory {} does not exist", dir.display()),
            ));
        }
        Err(e) => return Err(Error::io(path, e)),
    }
    Ok((target, dir, name))
}

/// The temporary file name for a target named `name` (see the module doc).
pub fn temp_name(name: &OsStr) -> OsString {
    let bytes = name.as_encoded_bytes();
    if bytes.len() + ".".len() + ".tmp".len() <= NAME_MAX {
        let mut t = OsString::from(".");
        t.push(name);
        t.push(".tmp");
        return t;
    }
    let lossy = name.to_string_lossy();
    let room = NAME_MAX - ".".len() - "~".len() - 16 - ".tmp".len();
    let mut cut = room.min(lossy.len());
    while !lossy.is_char_boundary(cut) {
        cut -= 1;
    }
    OsString::from(format!(
        ".{}~{:016x}.tmp",
        &lossy[..cut],
        super::fnv1a(super::FNV1A_START, bytes)
    ))
}

/// Opens the temporary file `tmp`, new, locked and empty. `path` is the
/// name the caller gave, which errors report.
///
/// A file already at `tmp` is a leftover of a killed save, unless a live
/// writer holds its lock (then this save is refused). A leftover's name is
/// removed and a new file made in its place, never truncated in place: a
/// hard link to it elsewhere keeps its bytes.
fn create_temp(tmp: &Path, path: &Path) -> Result<File> {
    for _ in 0..8 {
        match fs::symlink_metadata(tmp) {
            // The name is reserved for this purpose: a link planted there is not followed.
            Ok(m) if m.file_type().is_symlink() => {
                remove_name(tmp, path)?;
            }
            Ok(_) => {
                if let Some(old) = open_unlocked(tmp, path)? {
                    // Unlocked: no writer holds it. Only its name goes.
                    if still_named(&old, tmp) {
                        remove_name(tmp, path)?;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        let f = match OpenOptions::new().write(true).create_new(true).open(tmp) {
            Ok(f) => f,
            // Another save made it between the check and the creation: look again.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        lock(&f, path)?;
        // Between our creation and our lock, another writer may have taken
        // this file's name away as a leftover: then look again.
        if still_named(&f, tmp) {
            return Ok(f);
        }
    }
    Err(refuse(
        path,
        io::ErrorKind::ResourceBusy,
        "other processes keep saving this file at the same time",
    ))
}

/// Removes the name `tmp` (a missing name is fine).
fn remove_name(tmp: &Path, path: &Path) -> Result<()> {
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Takes the exclusive lock on `f`, or refuses when another writer holds it.
fn lock(f: &File, path: &Path) -> Result<()> {
    match f.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(refuse(
            path,
            io::ErrorKind::ResourceBusy,
            "another process is saving this file right now",
        )),
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
        Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// The file at `tmp` opened (read-only, unchanged) and locked, or `None`
/// when it is gone; refused when another writer holds it.
fn open_unlocked(tmp: &Path, path: &Path) -> Result<Option<File>> {
    match File::open(tmp) {
        Ok(f) => lock(&f, path).map(|()| Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(unix)]
fn still_named(f: &File, tmp: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::symlink_metadata(tmp)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_named(_f: &File, tmp: &Path) -> bool {
    tmp.is_file()
}

/// Checks, without changing anything, that [`write_atomic`] could save to
/// `path`: its target is a regular file or a free name, its directory exists
/// and a temporary file can be made there (permissions, a read-only file
/// system, the name's length). Commands call it before long work, so a bad
/// output fails at once.
///
/// # Errors
/// [`Error::Io`] naming `path` with what is wrong.
pub fn check_writable(path: &Path) -> Result<()> {
    let (_, dir, name) = checked_target(path)?;
    let tmp = dir.join(temp_name(&name));
    match fs::symlink_metadata(&tmp) {
        Err(_) => probe_dir(&tmp, path),
        // A file there (a leftover, or a link the save would remove) is left
        // as it is; only a writer holding it now is refused, and whether
        // the directory takes new files is tried under another name.
        Ok(m) => {
            if !m.file_type().is_symlink() {
                open_unlocked(&tmp, path)?;
            }
            let mut probe = name;
            probe.push(".probe");
            probe_dir(&dir.join(temp_name(&probe)), path)
        }
    }
}

/// Makes and removes a new file at `probe` (which must be free): whether
/// the directory takes new files. A name already taken is left alone.
fn probe_dir(probe: &Path, path: &Path) -> Result<()> {
    match OpenOptions::new().write(true).create_new(true).open(probe) {
        Ok(f) => {
            drop(f);
            let _ = fs::remove_file(probe);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The directory holding `target` (`.` for a bare name).
fn dir_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file a save to `path` writes through (see the module
/// doc), or `None` when `path` names no file.
pub fn temp_of(path: &Path) -> Option<PathBuf> {
    let target = target_of(path).ok()?;
    let name = target.file_name()?;
    let dir = dir_of(&target);
    Some(dir.join(temp_name(name)))
}

/// Replaces the file `path` names atomically with the bytes that `fill`
/// writes (through a symbolic link, its target; see the module doc).
///
/// `fill` receives a buffered writer; returning an error (or panicking)
/// aborts the replacement and leaves the old file as it was. This is also the
/// failure-injection point tests use.
///
/// # Errors
/// Whatever `fill` returns, or [`Error::Io`] naming `path` if the target is
/// not a regular file, its directory is missing, another process is saving
/// it, or creating, writing, syncing or renaming fails.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let (target, dir, name) = checked_target(path)?;
    let tmp = dir.join(temp_name(&name));
    let file = create_temp(&tmp, path)?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        armed: true,
    };
    // (Its buffer is allocated infallibly: checked against the address
    // space left first.)
    crate::memory::check_address_space(&format!("writing {}", path.display()), 1 << 20)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    fill(&mut w)?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    // The lock is held until the rename is done.
    fs::rename(&tmp, &target).map_err(|e| Error::io(path, e))?;
    guard.armed = false;
    drop(file);
    sync_dir(&dir, path)
}

/// Replaces `path` atomically with `bytes` (see [`write_atomic`]).
///
/// # Errors
/// [`Error::Io`] naming the file if any step fails; the old file then stays.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// The name of the manifest in a set's staging directory: the names of
/// the set, one a line (see [`DirWrite`]).
const MANIFEST: &str = ".sparse-ae-files";

/// A set of files in one directory replaced together: a reader finds the
/// whole old set or the whole new one, never some files of each (the
/// training report, whose page shows pictures written beside it).
///
/// The directory may hold other files (the user's): only the names of the
/// set (`owned`) are ever replaced or removed. Steps:
///
/// 1. [`DirWrite::begin`] makes the directory if needed, takes an exclusive
///    lock on it (a second writer of a set there is refused), finishes or
///    removes what an earlier writer left (below), and makes the staging
///    directory `DIR/.sparse-ae-TAG.tmp`.
/// 2. [`DirWrite::write`] writes each file of the new set into it (each
///    with [`write_atomic`]: synced, whole). A failure, a panic or a drop
///    without commit removes the staging directory: the old set is as it
///    was, and nothing of the new one is left.
/// 3. [`DirWrite::commit`] writes the manifest (the new set's names) and
///    renames the staging directory to `DIR/.sparse-ae-TAG.ready`: this
///    rename is the commit point. Then each file is renamed into `DIR`
///    (through a symbolic link there, to the file it points to), the names
///    of the set the new one lacks are removed (an old set's stale files),
///    and the empty `.ready` directory is removed.
///
/// A process killed before the commit point leaves a `.tmp` directory,
/// which the next `begin` (or [`DirWrite::recover`]) of that set removes;
/// one killed after it leaves a `.ready` directory, whose files the next
/// one moves in first: the new set is then whole. Renames need no space,
/// so a full disk fails before the commit point. Errors name the files in
/// `DIR`, never the staging ones.
pub struct DirWrite {
    dir: PathBuf,
    staging: PathBuf,
    ready: PathBuf,
    owned: Vec<String>,
    written: Vec<String>,
    /// Held until the set is in place.
    _lock: Option<File>,
    armed: bool,
}

impl DirWrite {
    /// The staging and ready directories of the set `tag` in `dir`.
    fn names(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
        let [staging, ready] = Self::staging_names(tag);
        (dir.join(staging), dir.join(ready))
    }

    /// The names of the directories in which the set `tag` is staged in
    /// its directory: `.sparse-ae-TAG.tmp` while it is written and
    /// `.sparse-ae-TAG.ready` once committed (see the type's doc). Its
    /// writers remove them with all they hold, so they are reserved: a
    /// command refuses an input or another output there or below.
    pub fn staging_names(tag: &str) -> [String; 2] {
        [
            format!(".sparse-ae-{tag}.tmp"),
            format!(".sparse-ae-{tag}.ready"),
        ]
    }

    /// Starts writing the set `tag` (its files named `owned`, none
    /// starting with `.`) into `dir`, made if needed; see the type's doc.
    ///
    /// # Errors
    /// [`Error::Io`] naming `dir` when it cannot be made, locked (another
    /// process is writing the set) or cleaned of an earlier writer's
    /// leftovers, or the staging directory cannot be made.
    pub fn begin(dir: &Path, tag: &str, owned: &[&str]) -> Result<DirWrite> {
        debug_assert!(
            owned
                .iter()
                .all(|n| !n.starts_with('.') && !n.contains('/'))
        );
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = lock_dir(dir)?;
        let owned: Vec<String> = owned.iter().map(|n| n.to_string()).collect();
        recover_in(dir, tag, &owned)?;
        let (staging, ready) = Self::names(dir, tag);
        fs::create_dir(&staging).map_err(|e| Error::io(dir, e))?;
        Ok(DirWrite {
            dir: dir.to_path_buf(),
            staging,
            ready,
            owned,
            written: Vec::new(),
            _lock: lock,
            armed: true,
        })
    }

    /// Finishes or removes what a writer of the set `tag` killed half way
    /// left in `dir` (see the type's doc); nothing when `dir` does not
    /// exist or holds no leftover.
    ///
    /// # Errors
    /// [`Error::Io`] naming `dir` when another process is writing the set,
    /// or a leftover cannot be moved in or removed.
    pub fn recover(dir: &Path, tag: &str, owned: &[&str]) -> Result<()> {
        let (staging, ready) = Self::names(dir, tag);
        if fs::symlink_metadata(&staging).is_err() && fs::symlink_metadata(&ready).is_err() {
            return Ok(());
        }
        let _lock = lock_dir(dir)?;
        let owned: Vec<String> = owned.iter().map(|n| n.to_string()).collect();
        recover_in(dir, tag, &owned)
    }

    /// Writes the file `name` of the set: `fill` writes it at the path it
    /// is given (in the staging directory), e.g. with [`write_atomic`].
    /// Errors about that path name `DIR/name` instead.
    ///
    /// # Errors
    /// Whatever `fill` returns; [`Error::Io`] for a name not of the set.
    pub fn write<F>(&mut self, name: &str, fill: F) -> Result<()>
    where
        F: FnOnce(&Path) -> Result<()>,
    {
        if !self.owned.iter().any(|n| n == name) {
            return Err(refuse(
                &self.dir.join(name),
                io::ErrorKind::InvalidInput,
                "is not a file of this set",
            ));
        }
        let staged = self.staging.join(name);
        fill(&staged).map_err(|e| match e {
            Error::Io { path, source } if path.starts_with(&self.staging) => {
                let rest = path.strip_prefix(&self.staging).unwrap_or(&path);
                Error::io(self.dir.join(rest), source)
            }
            e => e,
        })?;
        if !self.written.iter().any(|n| n == name) {
            self.written.push(name.to_string());
        }
        Ok(())
    }

    /// Writes the file `name` of the set with the bytes `bytes` (with
    /// [`write_atomic_bytes`]).
    ///
    /// # Errors
    /// As [`DirWrite::write`].
    pub fn write_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write(name, |p| write_atomic_bytes(p, bytes))
    }

    /// Puts the new set in place of the old one (see the type's doc).
    ///
    /// # Errors
    /// [`Error::Io`] naming `DIR` or a file of it. Before the commit point
    /// (the manifest cannot be written) the old set stays whole; after it,
    /// the error says that the next writer of the set completes it.
    pub fn commit(mut self) -> Result<()> {
        let manifest = self.staging.join(MANIFEST);
        let mut list = String::new();
        for n in &self.written {
            list.push_str(n);
            list.push('\n');
        }
        write_atomic_bytes(&manifest, list.as_bytes()).map_err(|e| match e {
            Error::Io { source, .. } => Error::io(&self.dir, source),
            e => e,
        })?;
        let tag_ready = &self.ready;
        fs::rename(&self.staging, tag_ready).map_err(|e| Error::io(&self.dir, e))?;
        self.armed = false;
        sync_dir(&self.dir, &self.dir)?;
        finish(&self.dir, tag_ready, &self.owned).map_err(|e| {
            let why = format!(
                "{e}; the new files wait in {}, and the next write there moves them in",
                tag_ready.display()
            );
            refuse(&self.dir, io::ErrorKind::Other, why)
        })
    }
}

impl Drop for DirWrite {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// An exclusive lock on the directory `dir` (`None` where directories
/// cannot be opened or locked).
fn lock_dir(dir: &Path) -> Result<Option<File>> {
    let Ok(f) = File::open(dir) else {
        return Ok(None);
    };
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Err(refuse(
            dir,
            io::ErrorKind::ResourceBusy,
            "another process is writing its files right now",
        )),
        Err(TryLockError::Error(_)) => Ok(None),
    }
}

/// What [`DirWrite::recover`] does, with the lock held.
fn recover_in(dir: &Path, tag: &str, owned: &[String]) -> Result<()> {
    let (staging, ready) = DirWrite::names(dir, tag);
    if fs::symlink_metadata(ready.join(MANIFEST)).is_ok() {
        finish(dir, &ready, owned)?;
    } else if fs::symlink_metadata(&ready).is_ok() {
        // No manifest: never committed (it is written before the rename).
        fs::remove_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
    }
    match fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(&staging, e)),
        _ => Ok(()),
    }
}

/// Moves the files the manifest of `ready` lists into `dir`, removes the
/// names of `owned` it does not list, then `ready` itself. Each step can be
/// done again: a file already moved is not in `ready` any more.
fn finish(dir: &Path, ready: &Path, owned: &[String]) -> Result<()> {
    let manifest = ready.join(MANIFEST);
    let list = fs::read_to_string(&manifest).map_err(|e| Error::io(&manifest, e))?;
    let listed: Vec<&str> = list
        .lines()
        .filter(|n| owned.iter().any(|o| o == n))
        .collect();
    for name in owned {
        let here = dir.join(name);
        if listed.contains(&name.as_str()) {
            let staged = ready.join(name);
            if fs::symlink_metadata(&staged).is_err() {
                continue;
            }
            let target = target_of(&here)?;
            match fs::rename(&staged, &target) {
                Ok(()) => {}
                // A link to another file system: copied there atomically.
                Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                    let bytes = fs::read(&staged).map_err(|e| Error::io(&here, e))?;
                    write_atomic_bytes(&target, &bytes)?;
                    fs::remove_file(&staged).map_err(|e| Error::io(&here, e))?;
                }
                Err(e) => return Err(Error::io(&here, e)),
            }
        } else if fs::symlink_metadata(&here).is_ok_and(|m| m.is_file()) {
            // A file of the old set that the new one has not.
            fs::remove_file(&here).map_err(|e| Error::io(&here, e))?;
        }
    }
    sync_dir(dir, dir)?;
    fs::remove_file(&manifest).map_err(|e| Error::io(&manifest, e))?;
    fs::remove_dir(ready).map_err(|e| Error::io(ready, e))?;
    sync_dir(dir, dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path, path: &Path) -> Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // Some file systems cannot fsync a directory; the rename is done anyway.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path, _path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sparse-ae-atomic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temp() {
        let d = scratch("replace");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        write_atomic_bytes(&p, b"new contents").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn error_midway_keeps_old_file_and_removes_temp() {
        let d = scratch("fail");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        let r = write_atomic(&p, |w| {
            w.write_all(&[7u8; 3 << 20]).unwrap();
            Err(Error::config("test", "injected failure"))
        });
        assert!(r.unwrap_err().to_string().contains("injected failure"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn panic_midway_keeps_old_file_and_removes_temp() {
        let d = scratch("panic");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        let r = std::panic::catch_unwind(|| {
            write_atomic(&p, |w| {
                w.write_all(b"partial").unwrap();
                panic!("injected panic")
            })
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_it() {
        let p = std::env::temp_dir().join("sparse-ae-no-such-dir-x9/f.bin");
        let e = write_atomic_bytes(&p, b"x").unwrap_err().to_string();
        assert!(
            e.contains("sparse-ae-no-such-dir-x9") && e.contains("does not exist"),
            "{e}"
        );
        let e = check_writable(&p).unwrap_err().to_string();
        assert!(
            e.contains("sparse-ae-no-such-dir-x9") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_stale_temp_file_is_reused_and_removed() {
        let d = scratch("stale");
        let p = d.join("f.bin");
        fs::write(d.join(".f.bin.tmp"), vec![9u8; 1000]).unwrap();
        write_atomic_bytes(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_hard_link_at_the_temp_name_keeps_its_bytes() {
        let d = scratch("hardlink");
        let (p, other) = (d.join("f.bin"), d.join("other.bin"));
        fs::write(&other, vec![7u8; 1000]).unwrap();
        fs::hard_link(&other, d.join(".f.bin.tmp")).unwrap();
        check_writable(&p).unwrap();
        assert_eq!(fs::read(d.join(".f.bin.tmp")).unwrap(), vec![7u8; 1000]);
        write_atomic_bytes(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read(&other).unwrap(), vec![7u8; 1000]);
        assert_eq!(entries(&d), ["f.bin", "other.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn checking_changes_no_file_and_leaves_no_probe() {
        let d = scratch("check");
        let p = d.join("f.bin");
        check_writable(&p).unwrap();
        assert!(entries(&d).is_empty());
        fs::write(d.join(".f.bin.tmp"), vec![9u8; 1000]).unwrap();
        check_writable(&p).unwrap();
        assert_eq!(fs::read(d.join(".f.bin.tmp")).unwrap(), vec![9u8; 1000]);
        assert_eq!(entries(&d), [".f.bin.tmp"]);
        // A writer holding the leftover's name is seen.
        let held = File::open(d.join(".f.bin.tmp")).unwrap();
        held.try_lock().unwrap();
        let e = check_writable(&p).unwrap_err().to_string();
        assert!(e.contains("another process"), "{e}");
        drop(held);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_second_writer_of_the_same_target_is_refused() {
        let d = scratch("busy");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        let r = write_atomic(&p, |_| {
            let e = write_atomic_bytes(&p, b"other").unwrap_err().to_string();
            assert!(e.contains("f.bin") && e.contains("another process"), "{e}");
            Ok(())
        });
        r.unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_255_byte_name_works_and_its_temp_name_fits() {
        let d = scratch("long");
        for len in [250, 251, 255] {
            let name = "n".repeat(len);
            let tmp = temp_name(OsStr::new(&name));
            assert!(tmp.len() <= NAME_MAX, "{len}: {}", tmp.len());
            assert_eq!(tmp, temp_name(OsStr::new(&name)));
            let p = d.join(&name);
            check_writable(&p).unwrap();
            write_atomic_bytes(&p, b"x").unwrap();
            assert_eq!(fs::read(&p).unwrap(), b"x");
        }
        let e = check_writable(&d.join("n".repeat(256))).unwrap_err();
        assert!(
            e.to_string().contains("more than the 255-byte limit"),
            "{e}"
        );
        assert_ne!(
            temp_name(OsStr::new(&format!("{}a", "n".repeat(254)))),
            temp_name(OsStr::new(&format!("{}b", "n".repeat(254))))
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through_and_kept() {
        let d = scratch("link");
        let real = d.join("real.bin");
        fs::write(&real, b"old").unwrap();
        let link = d.join("link.bin");
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        write_atomic_bytes(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(entries(&d), ["link.bin", "real.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_is_never_replaced() {
        let d = scratch("dir");
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        for p in [sub.clone(), d.join("sub/")] {
            let e = write_atomic_bytes(&p, b"x").unwrap_err().to_string();
            assert!(e.contains("sub") && e.contains("directory"), "{e}");
        }
        assert!(sub.is_dir());
        assert_eq!(entries(&d), ["sub"]);
        fs::remove_dir_all(&d).unwrap();
    }

    fn set_of(d: &Path, files: &[(&str, &str)]) {
        for (n, t) in files {
            fs::write(d.join(n), t).unwrap();
        }
    }

    const SET: [&str; 3] = ["a.png", "b.csv", "index.html"];

    #[test]
    fn a_set_fails_or_panics_half_way_and_the_old_one_stays() {
        let d = scratch("set-fail");
        set_of(
            &d,
            &[
                ("a.png", "old a"),
                ("index.html", "old i"),
                ("mine.txt", "u"),
            ],
        );
        let before = entries(&d);
        let r = (|| {
            let mut set = DirWrite::begin(&d, "t", &SET)?;
            set.write("a.png", |p| write_atomic_bytes(p, b"new a"))?;
            set.write("index.html", |p| {
                Err(Error::io(p, io::Error::other("injected failure")))
            })?;
            set.commit()
        })();
        let e = r.unwrap_err().to_string();
        // Named in the directory, not in the staging one.
        assert!(
            e.starts_with(&format!("{}: injected", d.join("index.html").display())),
            "{e}"
        );
        let r = std::panic::catch_unwind(|| {
            let mut set = DirWrite::begin(&d, "t", &SET).unwrap();
            set.write("a.png", |p| write_atomic_bytes(p, b"new a"))
                .unwrap();
            panic!("injected panic")
        });
        assert!(r.is_err());
        assert_eq!(entries(&d), before);
        assert_eq!(fs::read(d.join("a.png")).unwrap(), b"old a");
        assert_eq!(fs::read(d.join("index.html")).unwrap(), b"old i");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_set_replaces_the_old_one_whole_and_keeps_other_files() {
        let d = scratch("set-commit");
        set_of(
            &d,
            &[
                ("b.csv", "old b"),
                ("index.html", "old i"),
                ("mine.txt", "u"),
            ],
        );
        let mut set = DirWrite::begin(&d, "t", &SET).unwrap();
        // A second writer of the set is refused while the first holds it.
        let e = DirWrite::begin(&d, "t", &SET).err().unwrap().to_string();
        assert!(e.contains("another process"), "{e}");
        set.write("a.png", |p| write_atomic_bytes(p, b"new a"))
            .unwrap();
        set.write("index.html", |p| write_atomic_bytes(p, b"new i"))
            .unwrap();
        let e = set.write("other", |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("not a file of this set"), "{e}");
        set.commit().unwrap();
        // b.csv, of the old set only, is gone; mine.txt stays.
        assert_eq!(entries(&d), ["a.png", "index.html", "mine.txt"]);
        assert_eq!(fs::read(d.join("a.png")).unwrap(), b"new a");
        assert_eq!(fs::read(d.join("index.html")).unwrap(), b"new i");
        assert_eq!(fs::read(d.join("mine.txt")).unwrap(), b"u");
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_set_writes_through_a_link_and_keeps_it() {
        let d = scratch("set-link");
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(d.join("real.png"), b"old").unwrap();
        std::os::unix::fs::symlink("../real.png", sub.join("a.png")).unwrap();
        let mut set = DirWrite::begin(&sub, "t", &SET).unwrap();
        set.write("a.png", |p| write_atomic_bytes(p, b"new"))
            .unwrap();
        set.commit().unwrap();
        assert!(
            fs::symlink_metadata(sub.join("a.png"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(d.join("real.png")).unwrap(), b"new");
        assert_eq!(entries(&sub), ["a.png"]);
        fs::remove_dir_all(&d).unwrap();
    }
}
