//! Finding and loading the data a command works on.

use crate::cli::{DataArgs, DatasetArg, SplitArg};
use sparse_ae::data::download::{self, Dataset};
use sparse_ae::data::mnist;
use sparse_ae::train::{NpyRows, Rows, Samples};
use sparse_ae::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Samples in memory, in their stored type.
pub enum Loaded {
    /// Images as bytes.
    U8 { pixels: Vec<u8>, dim: usize },
    /// Feature vectors.
    F32 { data: Vec<f32>, dim: usize },
}

impl Loaded {
    /// The bytes the samples take in memory.
    pub fn bytes(&self) -> u64 {
        match self {
            Loaded::U8 { pixels, .. } => pixels.len() as u64,
            Loaded::F32 { data, .. } => sparse_ae::memory::f32_bytes(data.len()),
        }
    }

    pub fn samples(&self) -> Result<Samples<'_>> {
        match self {
            Loaded::U8 { pixels, dim } => Samples::u8(pixels, *dim),
            Loaded::F32 { data, dim } => Samples::f32(data, *dim),
        }
    }
}

pub fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// The data directory or file: `--data`, else (with `--dataset`) that data
/// set in the cache (or the system directory), downloaded there first if
/// `--download` is given, else `$SPARSE_AE_DATA`, else `data/mnist` or
/// `data`, else MNIST in the cache. A directory's image splits must share
/// one shape ([`mnist::image_shape`]).
pub fn locate(args: &DataArgs) -> Result<PathBuf> {
    if args.limit == Some(0) {
        return Err(Error::config(
            "--limit",
            "must be at least 1 (0 samples leave nothing to train on or evaluate)",
        ));
    }
    if let Some(p) = &args.data {
        return given(p, "--data");
    }
    if let Some(ds) = args.dataset {
        return cached(dataset(ds), args.download, Vec::new(), true);
    }
    if let Some(v) = std::env::var_os(mnist::DATA_ENV).filter(|v| !v.is_empty()) {
        return given(&PathBuf::from(v), mnist::DATA_ENV);
    }
    let local = vec![PathBuf::from("data/mnist"), PathBuf::from("data")];
    match mnist::find_data_dir(&local) {
        Ok(d) => given(&d, "data"),
        Err(_) => cached(Dataset::Mnist, args.download, local, false),
    }
}

/// The data `p` that `from` (a flag or a variable) names: a `.npy` file or
/// a directory of IDX files.
fn given(p: &Path, from: &str) -> Result<PathBuf> {
    if is_npy(p) {
        if !p.exists() {
            return Err(Error::Data {
                reason: format!("{}: no such file (named by {from})", p.display()),
            });
        }
        return Ok(p.to_path_buf());
    }
    if p.is_dir() {
        mnist::image_shape(p)?;
        return Ok(p.to_path_buf());
    }
    let what = if p.exists() {
        "not a directory nor a .npy file"
    } else {
        "no such directory"
    };
    Err(Error::Data {
        reason: format!(
            "{}: {what} ({from} takes a directory of IDX files, such as train-images-idx3-ubyte[.gz], or a .npy file)",
            p.display()
        ),
    })
}

pub fn dataset(arg: DatasetArg) -> Dataset {
    match arg {
        DatasetArg::Mnist => Dataset::Mnist,
        DatasetArg::FashionMnist => Dataset::FashionMnist,
    }
}

/// The complete copy of `dataset` in the cache (or, for Fashion-MNIST, the
/// Debian package's directory); if there is none, downloads it when `fetch_it`.
/// `searched` lists directories already looked at, for the error message.
/// `named`: the data set was named by `--dataset` (so `$SPARSE_AE_DATA`
/// was not looked at).
fn cached(
    dataset: Dataset,
    fetch_it: bool,
    searched: Vec<PathBuf>,
    named: bool,
) -> Result<PathBuf> {
    let cache = download::cache_dir();
    let mut dirs = Vec::new();
    if let Ok(c) = &cache {
        dirs.push(c.join(dataset.name()));
    }
    if dataset == Dataset::FashionMnist {
        dirs.push(PathBuf::from(download::FASHION_SYSTEM_DIR));
    }
    if let Some(d) = dirs.iter().find(|d| download::is_complete(d)) {
        return Ok(d.clone());
    }
    if fetch_it {
        return fetch(dataset, &cache?);
    }
    let searched: Vec<String> = searched
        .iter()
        .chain(&dirs)
        .map(|d| d.display().to_string())
        .collect();
    let env_note = if named {
        String::new()
    } else {
        mnist::env_unset_note()
    };
    let into = match &cache {
        Ok(c) => format!(" into {}", c.join(dataset.name()).display()),
        Err(_) => String::new(),
    };
    Err(Error::Data {
        reason: format!(
            "{dataset} not found; searched: {}{env_note}\n---> HINT: `sparse-ae download --dataset {dataset}` (or --download on this command) fetches it{into}\n{}",
            if searched.is_empty() {
                "nothing".to_owned()
            } else {
                searched.join(", ")
            },
            dataset.offline_hint()
        ),
    })
}

/// Downloads `dataset` into `cache/<name>`, drawing a progress bar on stderr
/// when it is a terminal and one line per finished file otherwise.
pub fn fetch(dataset: Dataset, cache: &Path) -> Result<PathBuf> {
    let tty = std::io::stderr().is_terminal();
    note!(
        "fetching {dataset} into {}",
        cache.join(dataset.name()).display()
    );
    let mut last_draw: Option<Instant> = None;
    let mut bar = |name: &str, done: u64, total: Option<u64>| {
        let size = |b: u64| {
            if b >= 1_000_000 {
                format!("{:.1} MB", b as f64 / 1e6)
            } else {
                format!("{:.1} kB", b as f64 / 1e3)
            }
        };
        if total == Some(done) {
            if tty {
                note_part!("\r\x1b[2K");
            }
            note!("  {name}  {}", size(done));
            last_draw = None;
            return;
        }
        if !tty || last_draw.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        last_draw = Some(Instant::now());
        match total {
            Some(t) if t > 0 => {
                let width = 30;
                let k = (done.min(t) * width / t) as usize;
                let bar = "#".repeat(k) + &"-".repeat(width as usize - k);
                note_part!("\r  {name} [{bar}] {} / {}", size(done), size(t));
            }
            _ => note_part!("\r  {name}  {}", size(done)),
        }
        let _ = std::io::stderr().flush();
    };
    let result = download::fetch(dataset, cache, &mut bar);
    if tty && last_draw.is_some() {
        note_part!("\r\x1b[2K");
    }
    result
}

/// Loads one split, keeping at most `args.limit` samples.
pub fn load(args: &DataArgs, split: SplitArg) -> Result<Loaded> {
    load_from(&locate(args)?, args.limit, split)
}

/// Loads one split of the data at `path` (a directory or a .npy file found
/// by [`locate`]), keeping at most `limit` samples.
pub fn load_from(path: &std::path::Path, limit: Option<usize>, split: SplitArg) -> Result<Loaded> {
    let path = path.to_path_buf();
    if is_npy(&path) {
        let rows = open_npy(&path)?;
        let dim = rows.dim();
        let (lo, hi) = npy_split(rows.len(), split, limit);
        let data = rows.range(lo, hi)?.read_all()?;
        return Ok(Loaded::F32 { data, dim });
    }
    let splits: &[mnist::Split] = match split {
        SplitArg::Train => &[mnist::Split::Train],
        SplitArg::Test => &[mnist::Split::Test],
        SplitArg::All => &[mnist::Split::Train, mnist::Split::Test],
    };
    let mut pixels = Vec::new();
    let mut dim = 0;
    for &s in splits {
        let d = mnist::load_split(&path, s)?;
        dim = d.features();
        let take = d.n.min(
            limit
                .unwrap_or(usize::MAX)
                .saturating_sub(pixels.len() / dim.max(1)),
        );
        if pixels.is_empty() {
            // The first split is kept as read, not copied.
            pixels = d.pixels;
            pixels.truncate(take * dim);
        } else {
            pixels.extend_from_slice(&d.pixels[..take * dim]);
        }
    }
    Ok(Loaded::U8 { pixels, dim })
}

/// Opens a `.npy` file as a matrix of samples × features (its header and
/// length checked; nothing read yet).
pub fn open_npy(path: &Path) -> Result<NpyRows> {
    let rows = NpyRows::open(path)?;
    let shape = rows.file().shape();
    let bad = |reason: String| Error::Npy {
        path: path.to_owned(),
        reason,
    };
    if !(2..=4).contains(&shape.len()) {
        return Err(bad(format!(
            "expected a matrix of samples × features, or images (samples, height, width) or (samples, channels, height, width), found shape {shape:?}"
        )));
    }
    if rows.is_empty() || rows.dim() == 0 {
        return Err(bad(format!("the matrix is empty (shape {shape:?})")));
    }
    Ok(rows)
}

/// The shape (channels, height, width) of the images at `path`: a `.npy`
/// file of shape (samples, height, width) holds one-channel images, one of
/// (samples, channels, height, width) images of that many channels, a
/// matrix none; IDX images have one channel (their splits share one shape,
/// [`mnist::image_shape`]).
///
/// # Errors
/// What reading the header or headers gives, and [`open_npy`]'s.
pub fn image_of(path: &Path) -> Result<Option<(usize, usize, usize)>> {
    if is_npy(path) {
        let rows = open_npy(path)?;
        return Ok(match *rows.file().shape() {
            [_, h, w] => Some((1, h, w)),
            [_, c, h, w] => Some((c, h, w)),
            _ => None,
        });
    }
    Ok(mnist::image_shape(path)?.map(|(h, w)| (1, h, w)))
}

/// The rows `lo..hi` of a split of an `n`-row `.npy` matrix: its first 90 %
/// trains, its last 10 % tests (at least one row each from two rows up),
/// each cut to `limit` rows.
pub fn npy_split(n: usize, split: SplitArg, limit: Option<usize>) -> (usize, usize) {
    let cut = if n >= 2 {
        (n * 9 / 10).clamp(1, n - 1)
    } else {
        n
    };
    let (lo, hi) = match split {
        SplitArg::Train => (0, cut),
        SplitArg::Test => (if n >= 2 { cut } else { 0 }, n),
        SplitArg::All => (0, n),
    };
    (lo, hi.min(lo.saturating_add(limit.unwrap_or(usize::MAX))))
}
