//! Finding and loading the data a command works on.

use crate::cli::{DataArgs, SplitArg};
use sparse_ae::data::{mnist, npy};
use sparse_ae::train::Samples;
use sparse_ae::{Error, Result};
use std::path::{Path, PathBuf};

/// Samples in memory, in their stored type.
pub enum Loaded {
    /// Images as bytes.
    U8 { pixels: Vec<u8>, dim: usize },
    /// Feature vectors.
    F32 { data: Vec<f32>, dim: usize },
}

impl Loaded {
    pub fn samples(&self) -> Result<Samples<'_>> {
        match self {
            Loaded::U8 { pixels, dim } => Samples::u8(pixels, *dim),
            Loaded::F32 { data, dim } => Samples::f32(data, *dim),
        }
    }
}

fn is_npy(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// The data directory or file: `--data`, else `$SPARSE_AE_DATA`, else `data/mnist` or `data`.
pub fn locate(args: &DataArgs) -> Result<PathBuf> {
    match &args.data {
        Some(p) if is_npy(p) => Ok(p.clone()),
        Some(p) => {
            if p.is_dir() {
                Ok(p.clone())
            } else {
                Err(Error::Data {
                    reason: format!(
                        "{}: no such directory (--data takes a directory of IDX files or a .npy file)",
                        p.display()
                    ),
                })
            }
        }
        None => mnist::find_data_dir(&[PathBuf::from("data/mnist"), PathBuf::from("data")]),
    }
}

/// Loads one split, keeping at most `args.limit` samples.
pub fn load(args: &DataArgs, split: SplitArg) -> Result<Loaded> {
    let path = locate(args)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    if is_npy(&path) {
        let a = npy::read(&path)?;
        let (n, dim) = match a.shape.as_slice() {
            [n, d] => (*n, *d),
            [n, rest @ ..] if !rest.is_empty() => (*n, rest.iter().product()),
            _ => {
                return Err(Error::Npy {
                    path,
                    reason: format!(
                        "expected a matrix of samples × features, found shape {:?}",
                        a.shape
                    ),
                });
            }
        };
        if n == 0 || dim == 0 {
            return Err(Error::Npy {
                path,
                reason: "the matrix is empty".into(),
            });
        }
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
        let hi = hi.min(lo.saturating_add(limit));
        let mut data = a.data;
        data.truncate(hi * dim);
        data.drain(..lo * dim);
        sparse_ae::data::check_finite(&path.display().to_string(), &data)?;
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
        let take = d.n.min(limit.saturating_sub(pixels.len() / dim.max(1)));
        pixels.extend_from_slice(&d.pixels[..take * dim]);
    }
    Ok(Loaded::U8 { pixels, dim })
}
