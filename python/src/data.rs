//! Reading MNIST-layout data sets for `sparse_ae.datasets`.

use crate::errors::IntoPy;
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::prelude::*;
use sparse_ae::data::download::{self, Dataset};
use sparse_ae::data::mnist::{self, Split};
use sparse_ae::{Error, Result};
use std::path::PathBuf;
use std::str::FromStr;

/// One split (`"train"` or `"test"`) of the IDX files in `path`: the images
/// as uint8 `(n, rows, cols)` and the labels as uint8 `(n,)` (None when
/// there is no label file).
#[pyfunction]
pub fn load_idx_split<'py>(
    py: Python<'py>,
    path: PathBuf,
    split: &str,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let split = match split {
        "train" => Split::Train,
        "test" => Split::Test,
        s => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "split must be \"train\" or \"test\", got {s:?}"
            )));
        }
    };
    let d = py.detach(|| mnist::load_split(&path, split)).py_err()?;
    let (n, rows, cols) = (d.n, d.rows, d.cols);
    let images = d.pixels.into_pyarray(py).reshape([n, rows, cols])?;
    let labels = d.labels.map(|l| l.into_pyarray(py).into_any());
    Ok((images.into_any(), labels))
}

/// The directory of `dataset` ("mnist" or "fashion-mnist"): `$SPARSE_AE_DATA`
/// when it holds it, else the complete copy in the cache (or, for
/// Fashion-MNIST, the Debian package's directory), downloaded into the
/// cache first when `download` is true.
#[pyfunction]
#[pyo3(signature = (dataset = "mnist", download = false))]
pub fn locate_dataset(py: Python<'_>, dataset: &str, download: bool) -> PyResult<PathBuf> {
    let ds = Dataset::from_str(dataset).py_err()?;
    py.detach(|| locate(ds, download)).py_err()
}

fn locate(ds: Dataset, fetch: bool) -> Result<PathBuf> {
    if ds == Dataset::Mnist
        && let Ok(d) = mnist::find_data_dir(&[])
    {
        return Ok(d);
    }
    let cache = download::cache_dir();
    let mut dirs = Vec::new();
    if let Ok(c) = &cache {
        dirs.push(c.join(ds.name()));
    }
    if ds == Dataset::FashionMnist {
        dirs.push(PathBuf::from(download::FASHION_SYSTEM_DIR));
    }
    if let Some(d) = dirs.iter().find(|d| download::is_complete(d)) {
        return Ok(d.clone());
    }
    if fetch {
        return download::fetch(ds, &cache?, &mut |_, _, _| {});
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::Data {
        reason: format!(
            "{ds} not found; searched: {} ({} is not set or does not hold it)\n---> HINT: pass path=DIR, or download=True to fetch it into the cache\n{}",
            if searched.is_empty() {
                "nothing".to_owned()
            } else {
                searched.join(", ")
            },
            mnist::DATA_ENV,
            ds.offline_hint()
        ),
    })
}
