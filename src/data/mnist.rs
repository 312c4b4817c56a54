//! MNIST-layout data sets (MNIST, Fashion-MNIST, …): finding the four IDX
//! files in a directory and checking that they belong together.
//!
//! Images must be a 3-D u8 IDX array `(n, rows, cols)`; labels, if present, a
//! 1-D u8 array of the same `n`. Pixels stay `u8` in memory (47 MB for the
//! MNIST training set); scaling to [0, 1] happens per batch.

use std::path::{Path, PathBuf};

use super::idx::{self, IdxData};
use super::row_file::RowFile;
use crate::{Error, Result};

/// Environment variable naming the data directory.
pub const DATA_ENV: &str = "SPARSE_AE_DATA";

/// Which half of the data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train-*` (60 000 images for MNIST).
    Train,
    /// `t10k-*` (10 000 images for MNIST).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// A set of `n` grey images of `rows × cols` u8 pixels, image-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Number of images.
    pub n: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// `n · rows · cols` pixels; image i is `pixels[i·rows·cols ..][..rows·cols]`.
    pub pixels: Vec<u8>,
    /// One label per image, if a label file was found.
    pub labels: Option<Vec<u8>>,
}

impl Dataset {
    /// Pixels per image (`rows · cols`).
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }
}

/// The names tried for one file, in order: `train-images-idx3-ubyte`,
/// `train-images.idx3-ubyte`, each also with `.gz`.
fn candidates(dir: &Path, split: Split, kind: &str, ndim: u8) -> Vec<PathBuf> {
    let p = split.prefix();
    let mut out = Vec::new();
    for base in [
        format!("{p}-{kind}-idx{ndim}-ubyte"),
        format!("{p}-{kind}.idx{ndim}-ubyte"),
    ] {
        out.push(dir.join(&base));
        out.push(dir.join(base + ".gz"));
    }
    out
}

/// Every file [`load_split`] may read from `dir`: the names tried for the
/// images and labels of both splits.
pub fn candidate_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for split in [Split::Train, Split::Test] {
        files.extend(candidates(dir, split, "images", 3));
        files.extend(candidates(dir, split, "labels", 1));
    }
    files
}

/// The files of `dir` that loading it reads: of each split's images and
/// labels, the first of its names that exists.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    [Split::Train, Split::Test]
        .into_iter()
        .flat_map(|s| [find(dir, s, "images", 3), find(dir, s, "labels", 1)])
        .flatten()
        .collect()
}

fn find(dir: &Path, split: Split, kind: &str, ndim: u8) -> Option<PathBuf> {
    candidates(dir, split, kind, ndim)
        .into_iter()
        .find(|p| p.is_file())
}

/// Checks that every other name of the file `read` (the one [`find`] gave,
/// already read and found sound) that exists in `dir` holds the same
/// contents once inflated: with `train-images-idx3-ubyte` and its `.gz`
/// both present, one of them may be stale, and which one is meant is not
/// for the loader to guess. The comparison is streamed and stops at the
/// first difference, so the other file is never inflated much past `read`'s
/// length.
///
/// # Errors
/// [`Error::Data`] naming both files and where they first differ;
/// [`Error::Io`] or [`Error::Idx`] if the other file cannot be read.
fn check_alike(dir: &Path, split: Split, kind: &str, ndim: u8, read: &Path) -> Result<()> {
    let others = candidates(dir, split, kind, ndim)
        .into_iter()
        .filter(|p| p != read && p.is_file());
    for other in others {
        if let Some(at) = first_difference(read, &other)?.flatten() {
            return Err(Error::Data {
                reason: format!(
                    "{} and {} both hold the {} {kind} and differ ({at}), so one of them is stale\n---> HINT: remove or rename the one not meant (when both hold the same data, the first is read)",
                    read.display(),
                    other.display(),
                    match split {
                        Split::Train => "training",
                        Split::Test => "test",
                    },
                ),
            });
        }
    }
    Ok(())
}

/// Where the contents of two IDX files, each raw or gzip, first differ
/// (after inflating): `Some(None)` if they are alike, `None` if one is gzip
/// and this build cannot inflate it (without the `gzip` feature a `.gz`
/// beside the raw file is never read, so it cannot be the wrong one).
fn first_difference(a: &Path, b: &Path) -> Result<Option<Option<String>>> {
    let (Some((mut ra, gza)), Some((mut rb, gzb))) = (contents(a)?, contents(b)?) else {
        return Ok(None);
    };
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut offset = 0u64;
    loop {
        let na = idx::fill(&mut ra, &mut ba, a, gza)?;
        let nb = idx::fill(&mut rb, &mut bb, b, gzb)?;
        if ba[..na] != bb[..nb] {
            let common = na.min(nb);
            let at = ba[..common]
                .iter()
                .zip(&bb[..common])
                .position(|(x, y)| x != y);
            return Ok(Some(Some(match at {
                Some(i) => format!("first at byte {} of their contents", offset + i as u64),
                None => format!(
                    "one ends at byte {} of their contents, the other goes on",
                    offset + common as u64
                ),
            })));
        }
        if na == 0 {
            return Ok(Some(None));
        }
        offset += na as u64;
    }
}

/// The contents of the IDX file at `path`, inflated if it is gzip, and
/// whether it is (`None` for gzip in a build without the `gzip` feature).
fn contents(path: &Path) -> Result<Option<(Box<dyn std::io::Read>, bool)>> {
    use std::io::BufRead;
    let (file, _) = crate::io::read::open_regular(path)?;
    let mut r = std::io::BufReader::new(file);
    let buf = r.fill_buf().map_err(|e| Error::io(path, e))?;
    if !super::gz::is_gzip(&buf[..buf.len().min(2)]) {
        Ok(Some((Box::new(r), false)))
    } else if cfg!(feature = "gzip") {
        super::gz::decoder(r, path).map(|d| Some((d, true)))
    } else {
        Ok(None)
    }
}

/// Loads one split from `dir`: the images (required) and labels (optional).
///
/// # Errors
/// [`Error::Data`] if no image file is found (naming the names tried);
/// [`Error::Idx`] if a file is malformed, the images are not 3-D u8, the
/// labels are not 1-D u8, or their count differs from the image count.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    let Some(img_path) = find(dir, split, "images", 3) else {
        let tried: Vec<String> = candidates(dir, split, "images", 3)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(Error::Data {
            reason: format!(
                "no MNIST image file found; tried {}\n{HINT}",
                tried.join(", ")
            ),
        });
    };
    let img = idx::read(&img_path)?;
    check_alike(dir, split, "images", 3, &img_path)?;
    let bad = |reason: String| Error::Idx {
        path: img_path.clone(),
        reason,
    };
    let (n, rows, cols) = match img.dims.as_slice() {
        &[n, r, c] => (n, r, c),
        d => {
            return Err(bad(format!(
                "images must have 3 dimensions (n, rows, cols), found {d:?}"
            )));
        }
    };
    let IdxData::U8(pixels) = img.data else {
        return Err(bad(format!(
            "images must be u8 (type 0x08), found type 0x{:02x}{NOT_U8}",
            img.data.code()
        )));
    };
    let labels = match find(dir, split, "labels", 1) {
        None => None,
        Some(lab_path) => {
            let labels = load_labels(&lab_path, n, &img_path)?;
            check_alike(dir, split, "labels", 1, &lab_path)?;
            Some(labels)
        }
    };
    Ok(Dataset {
        n,
        rows,
        cols,
        pixels,
        labels,
    })
}

fn load_labels(path: &Path, n: usize, img_path: &Path) -> Result<Vec<u8>> {
    let lab = idx::read(path)?;
    check_labels(path, lab.data.code(), &lab.dims, n, img_path)?;
    let IdxData::U8(labels) = lab.data else {
        unreachable!("check_labels accepts u8 labels only");
    };
    Ok(labels)
}

/// Checks what a label file's header says: 1-D u8, `n` labels.
fn check_labels(path: &Path, code: u8, dims: &[usize], n: usize, img_path: &Path) -> Result<()> {
    let bad = |reason: String| Error::Idx {
        path: path.to_owned(),
        reason,
    };
    if code != 0x08 {
        return Err(bad(format!(
            "labels must be u8 (type 0x08), found type 0x{code:02x}"
        )));
    }
    if dims.len() != 1 {
        return Err(bad(format!("labels must have 1 dimension, found {dims:?}")));
    }
    if dims[0] != n {
        return Err(bad(format!(
            "{} labels but {} has {n} images",
            dims[0],
            img_path.display()
        )));
    }
    Ok(())
}

/// One split whose images are read where they lie, or loaded whole.
#[derive(Debug)]
pub enum SplitFile {
    /// A raw image file: one row of `rows · cols` pixels per image, read as
    /// needed ([`RowFile`]; pixels scaled to [0, 1]).
    Rows(RowFile),
    /// A gzip-compressed image file, which cannot be read by row: loaded
    /// whole, as [`load_split`] does.
    Whole(Dataset),
}

/// Opens one split from `dir` to read its images by row: the image and
/// label files are found and checked as [`load_split`] does (the same
/// errors), reading only their headers when they are raw. Gzip-compressed
/// images are loaded whole; gzip-compressed labels are read whole to be
/// checked.
///
/// # Errors
/// As [`load_split`].
pub fn open_split(dir: &Path, split: Split) -> Result<SplitFile> {
    let Some(img_path) = find(dir, split, "images", 3) else {
        return load_split(dir, split).map(SplitFile::Whole);
    };
    let (rows, header) = match RowFile::idx_u8(&img_path)? {
        None => return load_split(dir, split).map(SplitFile::Whole),
        Some(found) => found,
    };
    let bad = |reason: String| Error::Idx {
        path: img_path.clone(),
        reason,
    };
    let n = match header.dims.as_slice() {
        &[n, _, _] => n,
        d => {
            return Err(bad(format!(
                "images must have 3 dimensions (n, rows, cols), found {d:?}"
            )));
        }
    };
    if header.code != 0x08 {
        return Err(bad(format!(
            "images must be u8 (type 0x08), found type 0x{:02x}{NOT_U8}",
            header.code
        )));
    }
    check_alike(dir, split, "images", 3, &img_path)?;
    if let Some(lab_path) = find(dir, split, "labels", 1) {
        match RowFile::idx_u8(&lab_path)? {
            None => {
                load_labels(&lab_path, n, &img_path)?;
            }
            Some((_, h)) => check_labels(&lab_path, h.code, &h.dims, n, &img_path)?,
        }
        check_alike(dir, split, "labels", 1, &lab_path)?;
    }
    Ok(SplitFile::Rows(rows))
}

/// The (rows, cols) of the images in `dir`, from the headers of their
/// files alone (a gzip file is inflated only as far as its header): the
/// training images', which the test images must share; `None` when there
/// is no image file or the training images are not 3-D.
///
/// # Errors
/// [`Error::Idx`] or [`Error::Io`] for a file whose header cannot be read;
/// [`Error::Data`] naming both files when the test images are of another
/// shape than the training images.
pub fn image_shape(dir: &Path) -> Result<Option<(usize, usize)>> {
    let shape_of = |split| -> Result<Option<(PathBuf, Vec<usize>)>> {
        let Some(path) = find(dir, split, "images", 3) else {
            return Ok(None);
        };
        let dims = header_dims(&path)?;
        Ok(Some((path, dims)))
    };
    let train = shape_of(Split::Train)?;
    let test = shape_of(Split::Test)?;
    let image = |dims: &[usize]| match *dims {
        [_, r, c] => Some((r, c)),
        _ => None,
    };
    match (&train, &test) {
        (Some((tp, td)), Some((sp, sd))) => {
            let (a, b) = (image(td), image(sd));
            if let (Some((r, c)), Some((sr, sc))) = (a, b)
                && (r, c) != (sr, sc)
            {
                return Err(Error::Data {
                    reason: format!(
                        "the test images in {} are {sr}×{sc} but the training images in {} are {r}×{c}: the splits of one data set share one image shape (as many pixels in another shape would be read in the wrong shape)",
                        sp.display(),
                        tp.display()
                    ),
                });
            }
            Ok(a)
        }
        (Some((_, td)), None) => Ok(image(td)),
        (None, Some((_, sd))) => Ok(image(sd)),
        (None, None) => Ok(None),
    }
}

/// The dimensions in the IDX header of the file at `path`.
fn header_dims(path: &Path) -> Result<Vec<usize>> {
    let (file, len) = crate::io::read::open_regular(path)?;
    let mut head = std::io::BufReader::new(file);
    let compressed = {
        use std::io::BufRead;
        let buf = head.fill_buf().map_err(|e| Error::io(path, e))?;
        super::gz::is_gzip(&buf[..buf.len().min(2)])
    };
    let header = if compressed {
        let mut r = super::gz::decoder(head, path)?;
        idx::read_header(&mut r, path, None, idx::DEFAULT_LIMIT)?
    } else {
        idx::read_header(&mut head, path, Some(len), u64::MAX)?
    };
    Ok(header.dims)
}

/// What to do with images of another element type.
const NOT_U8: &str = "\n---> HINT: images are u8 pixels; save other data as a .npy matrix of samples × features instead";

const HINT: &str = "---> HINT: set SPARSE_AE_DATA to a directory holding train-images-idx3-ubyte(.gz) and friends; `apt-get install dataset-fashion-mnist` puts Fashion-MNIST in /usr/share/datasets/fashion-mnist";

/// Why `$SPARSE_AE_DATA` was not looked at, for an error that lists the
/// directories searched: " (SPARSE_AE_DATA is not set)", or " (… is set
/// but empty)", which counts as not set.
pub fn env_unset_note() -> String {
    match std::env::var_os(DATA_ENV) {
        Some(v) if v.is_empty() => {
            format!(" ({DATA_ENV} is set but empty, which counts as not set)")
        }
        _ => format!(" ({DATA_ENV} is not set)"),
    }
}

/// The first directory holding a training image file: `$SPARSE_AE_DATA` if
/// set, else the first of `candidates` that has one.
///
/// # Errors
/// [`Error::Data`] naming every directory searched and how to get the data.
pub fn find_data_dir(candidates: &[PathBuf]) -> Result<PathBuf> {
    let env = std::env::var_os(DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let dirs: Vec<&PathBuf> = env.iter().chain(candidates).collect();
    if let Some(d) = dirs
        .iter()
        .find(|d| find(d, Split::Train, "images", 3).is_some())
    {
        return Ok((*d).clone());
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let env_note = if env.is_none() {
        env_unset_note()
    } else {
        String::new()
    };
    Err(Error::Data {
        reason: format!(
            "no MNIST-layout data set found; searched: {}{env_note}\n{HINT}",
            if searched.is_empty() {
                "nothing".to_owned()
            } else {
                searched.join(", ")
            }
        ),
    })
}
