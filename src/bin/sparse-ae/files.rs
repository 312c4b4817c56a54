//! The files a command reads and writes, checked before any work: every
//! output must be writable (a regular file or a free name in an existing
//! directory, see [`check_writable`]), and no output may be the same file
//! as an input or as another output, nor be where a save stages its
//! files (the temporary file of a file, the staging directories of a set
//! of files written together). Errors name the path the user gave.

use crate::data;
use sparse_ae::data::mnist;
use sparse_ae::io::atomic::{DirWrite, check_writable, kind_of, target_of, temp_of};
use sparse_ae::report::training::{REPORT_FILES, REPORT_TAG};
use sparse_ae::{Error, Result};
use std::io;
use std::path::{Path, PathBuf};

/// How an output is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Replaced atomically.
    Replaced,
    /// Replaced atomically with the other files of a set written together
    /// ([`DirWrite`]), in a directory the command creates if needed.
    InDir,
    /// Appended to (`--metrics`, atomically, by replacing the file); a file
    /// already there must start with these bytes.
    Appended(&'static [u8]),
}

/// The inputs and outputs of one command, as the user named them.
#[derive(Default)]
pub struct Files {
    inputs: Vec<(&'static str, PathBuf)>,
    outputs: Vec<(&'static str, PathBuf, Way)>,
    /// (flag, directory, tag of the set written there).
    dirs: Vec<(&'static str, PathBuf, &'static str)>,
    /// (input flag, output flag) pairs that may name the same file.
    allowed: Vec<(&'static str, &'static str)>,
}

fn refuse(path: &Path, why: String) -> Error {
    Error::io(path, io::Error::new(io::ErrorKind::InvalidInput, why))
}

/// Where a path leads: its file's identity if it exists, and the canonical
/// directory plus name of the file that writing it would replace.
struct Ident {
    #[cfg(unix)]
    id: Option<(u64, u64)>,
    place: Option<PathBuf>,
}

fn ident(p: &Path) -> Ident {
    let target = target_of(p).unwrap_or_else(|_| p.to_path_buf());
    // The nearest existing ancestor, canonical, and the names below it.
    let mut base = target.as_path();
    let mut rest = Vec::new();
    let place = loop {
        let (Some(name), Some(up)) = (base.file_name(), base.parent()) else {
            break None;
        };
        rest.push(name);
        let up = if up.as_os_str().is_empty() {
            Path::new(".")
        } else {
            up
        };
        if let Ok(d) = std::fs::canonicalize(up) {
            break Some(rest.iter().rev().fold(d, |p, n| p.join(n)));
        }
        base = up;
    };
    Ident {
        #[cfg(unix)]
        id: std::fs::metadata(&target).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        }),
        place,
    }
}

/// The canonical directory and name of `p` itself, its last component not
/// followed: what a save finds at its temporary name (a link there is
/// removed, not followed).
fn place_here(p: &Path) -> Option<PathBuf> {
    let (up, name) = (p.parent()?, p.file_name()?);
    let up = if up.as_os_str().is_empty() {
        Path::new(".")
    } else {
        up
    };
    std::fs::canonicalize(up).ok().map(|d| d.join(name))
}

/// Whether `p` is at or below the canonical path `place`, by the names
/// on its way as given (a link among them is not followed: removing
/// `place` removes the link) or by the file a link at `p` leads to.
fn at_or_below(p: &Path, place: &Path) -> bool {
    let target = target_of(p).unwrap_or_else(|_| p.to_path_buf());
    [p, target.as_path()].iter().any(|q| {
        q.ancestors()
            .any(|a| place_here(a).is_some_and(|h| h.starts_with(place)))
    })
}

fn same(a: &Ident, b: &Ident) -> bool {
    #[cfg(unix)]
    if a.id.is_some() && a.id == b.id {
        return true;
    }
    a.place.is_some() && a.place == b.place
}

impl Files {
    /// A file the command reads.
    pub fn input(&mut self, flag: &'static str, p: &Path) -> &mut Self {
        self.inputs.push((flag, p.to_owned()));
        self
    }

    /// The data the command reads: a `.npy` file, or the IDX files of a
    /// directory.
    pub fn data(&mut self, p: &Path) -> &mut Self {
        if data::is_npy(p) || !p.is_dir() {
            return self.input("--data", p);
        }
        for f in mnist::candidate_files(p) {
            self.inputs.push(("--data", f));
        }
        self
    }

    /// A model file or an SAE-library directory (`cfg.json` and the
    /// tensor files of SAELens and sparsify that are there).
    pub fn model_or_dir(&mut self, flag: &'static str, p: &Path) -> &mut Self {
        use sparse_ae::io::interop::{SAELENS_WEIGHTS, SPARSIFY_WEIGHTS};
        if p.is_dir() {
            for name in [SAELENS_WEIGHTS, SPARSIFY_WEIGHTS] {
                let f = p.join(name);
                if f.exists() {
                    self.input(flag, &f);
                }
            }
            self.input(flag, &p.join("cfg.json"))
        } else {
            self.input(flag, p)
        }
    }

    /// A file the command replaces.
    pub fn output(&mut self, flag: &'static str, p: &Path) -> &mut Self {
        self.outputs.push((flag, p.to_owned(), Way::Replaced));
        self
    }

    /// A file the command appends to; if it exists and is not empty it must
    /// start with `head` (what the command writes first), so that a model or
    /// any other file is never appended to.
    pub fn appended(&mut self, flag: &'static str, p: &Path, head: &'static [u8]) -> &mut Self {
        self.outputs.push((flag, p.to_owned(), Way::Appended(head)));
        self
    }

    /// A directory the command creates if needed and writes `names` into,
    /// as the set `tag` ([`DirWrite`]).
    pub fn output_dir(
        &mut self,
        flag: &'static str,
        dir: &Path,
        tag: &'static str,
        names: &[&str],
    ) -> &mut Self {
        self.dirs.push((flag, dir.to_owned(), tag));
        for n in names {
            self.outputs.push((flag, dir.join(n), Way::InDir));
        }
        self
    }

    /// The `--report` directory.
    pub fn report(&mut self, dir: &Path) -> &mut Self {
        self.output_dir("--report", dir, REPORT_TAG, &REPORT_FILES)
    }

    /// Lets the output `output` be the input `input` (a checkpoint resumed
    /// from and saved again).
    pub fn allow(&mut self, input: &'static str, output: &'static str) -> &mut Self {
        self.allowed.push((input, output));
        self
    }

    /// Checks every output (see the module doc).
    ///
    /// # Errors
    /// [`Error::Io`] naming the output the user gave and what is wrong.
    pub fn check(&self) -> Result<()> {
        for (flag, dir, _) in &self.dirs {
            check_dir(flag, dir)?;
        }
        // A set's staging directories, which its writer removes with all
        // they hold, hold neither an input nor another output.
        for (flag, dir, tag) in &self.dirs {
            let Some(place) = ident(dir).place else {
                continue;
            };
            for name in DirWrite::staging_names(tag) {
                let staging = place.join(&name);
                let mut others = self
                    .inputs
                    .iter()
                    .map(|(f, q)| (*f, q))
                    .chain(self.outputs.iter().map(|(f, q, _)| (*f, q)));
                if let Some((o_flag, q)) = others.find(|(_, q)| at_or_below(q, &staging)) {
                    return Err(refuse(
                        dir,
                        format!(
                            "{flag} stages its files in the staging directory {}, where the {o_flag} file {} is; writing would destroy it, move that file or choose another directory",
                            dir.join(&name).display(),
                            q.display()
                        ),
                    ));
                }
            }
        }
        let inputs: Vec<_> = self.inputs.iter().map(|(f, p)| (*f, p, ident(p))).collect();
        let mut seen: Vec<(&str, &PathBuf, Ident)> = Vec::new();
        for (flag, p, way) in &self.outputs {
            let me = ident(p);
            for (in_flag, q, other) in &inputs {
                if same(&me, other) && !self.allowed.contains(&(*in_flag, *flag)) {
                    return Err(refuse(
                        p,
                        format!(
                            "{flag} names the same file as the {in_flag} input {}; writing it would destroy the input, choose another name",
                            q.display()
                        ),
                    ));
                }
            }
            // The temporary file the save writes through is neither an input
            // nor another output, by the name given or by the file a link
            // leads to; by place only, as the save removes the name (a hard
            // link elsewhere keeps its bytes). A file of a set has none: it
            // is written in the set's staging directory (above) and renamed
            // into place, unless it is a link, whose target on another file
            // system is replaced through the target's temporary file.
            let temp = match way {
                Way::InDir if !is_link(p) => None,
                _ => temp_of(p),
            };
            if let Some(tmp) = temp {
                let t = place_here(&tmp);
                let others = inputs
                    .iter()
                    .map(|(f, q, i)| (*f, *q, i.place.clone()))
                    .chain(
                        self.outputs
                            .iter()
                            .filter(|(_, q, _)| q != p)
                            .map(|(f, q, _)| (*f, q, ident(q).place)),
                    );
                for (o_flag, q, led_to) in others {
                    let at = |place: Option<PathBuf>| place.is_some() && place == t;
                    if at(led_to) || at(place_here(q)) {
                        return Err(refuse(
                            p,
                            format!(
                                "{flag} is saved through the temporary file {}, which is the {o_flag} file {}; saving would destroy it, rename that file or choose another name",
                                tmp.display(),
                                q.display()
                            ),
                        ));
                    }
                }
            }
            for (o_flag, q, other) in &seen {
                if same(&me, other) {
                    return Err(refuse(
                        p,
                        format!(
                            "{flag} names the same file as {o_flag} {}; give each output its own name",
                            q.display()
                        ),
                    ));
                }
            }
            seen.push((flag, p, me));
        }
        // Only then whether each can be written: a writability probe leaves
        // no file but touches its directory, and a command refused for a
        // clash of names changes nothing.
        for (flag, p, way) in &self.outputs {
            match way {
                Way::Replaced => check_writable(p)?,
                // In a directory not made yet, the directory was checked.
                Way::InDir if !p.parent().is_some_and(Path::is_dir) => {}
                Way::InDir => check_writable(p)?,
                Way::Appended(head) => check_appendable(flag, p, head)?,
            }
        }
        Ok(())
    }
}

/// Whether `p` names a symbolic link.
fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// A directory to write into: an existing directory, or a name whose
/// nearest existing ancestor is a directory that takes new files.
fn check_dir(flag: &str, dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) => {
            return Err(refuse(
                dir,
                format!("{flag} needs a directory, but this is {}", kind_of(&m)),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    let mut up = dir.to_path_buf();
    loop {
        up = match up.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&up) {
            Ok(m) if m.is_dir() => break,
            Ok(m) => {
                return Err(refuse(
                    dir,
                    format!("cannot be created: {} is {}", up.display(), kind_of(&m)),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && up != Path::new(".") => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
    }
    // A file can be made there (permissions, a read-only file system).
    check_writable(&up.join(".sparse-ae-probe"))
        .map_err(|e| refuse(dir, format!("cannot be created: {e}")))
}

/// A file to append to: a regular file that starts with `head` (or is
/// empty) and that can be replaced atomically (rows are added that way), or
/// a free name where a file can be made.
fn check_appendable(flag: &str, p: &Path, head: &[u8]) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {
            let (f, _) = sparse_ae::io::read::open_regular(p)?;
            let mut start = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, head.len() as u64), &mut start)
                .map_err(|e| Error::io(p, e))?;
            if !start.is_empty() && start != head {
                return Err(refuse(
                    p,
                    format!(
                        "exists and is not a {flag} file written by sparse-ae (it does not start with {:?}); refusing to append to it",
                        String::from_utf8_lossy(head)
                    ),
                ));
            }
            // Rows are added by replacing the file atomically.
            check_writable(p)
        }
        Ok(m) => Err(refuse(p, format!("is {}, not a regular file", kind_of(&m)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => check_writable(p),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// The format the output `out` of `flag` is written in: the one its
/// extension names among `formats` (extension, format; any case), or
/// `none` without an extension. Another extension is refused before any
/// work: `what` writes only these, and bytes of one format under the name
/// of another (PNG bytes in `r.npy`, CSV text in `s.npz`) mislead every
/// program that opens them.
///
/// # Errors
/// [`Error::Config`] naming the flag, the extension and the ones taken.
pub fn format_of<F: Copy>(
    flag: &str,
    what: &str,
    out: &Path,
    formats: &[(&str, F)],
    none: F,
) -> Result<F> {
    let Some(ext) = out.extension() else {
        return Ok(none);
    };
    let ext = ext.to_string_lossy();
    if let Some((_, f)) = formats.iter().find(|(e, _)| ext.eq_ignore_ascii_case(e)) {
        return Ok(*f);
    }
    let names: Vec<String> = formats.iter().map(|(e, _)| format!(".{e}")).collect();
    Err(Error::config(
        flag,
        format!(
            "{what} writes {}, not .{ext} ({}): name the output with one of those extensions (or none)",
            names.join(" or "),
            out.display()
        ),
    ))
}
