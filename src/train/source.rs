//! Where the training loop's rows come from: samples in memory, or rows of a
//! `.npy` file read chunk by chunk so a file larger than memory trains.
//!
//! - [`Rows`]: a data set read in stored order (validation, normalisation).
//! - [`EpochSource`]: a training set read in the order of an epoch.
//!   [`Shuffled`] draws one permutation of all samples per epoch (what
//!   [`crate::train::fit()`] uses); [`Chunked`] shuffles in two levels so only
//!   one chunk is held: the order of the chunks is a permutation drawn per
//!   epoch, and the rows inside each chunk a permutation drawn per (epoch,
//!   chunk). Both orders are functions of (seed, epoch) alone, so a run
//!   resumed at any step reads exactly the rows it would have read.

use std::path::Path;

use super::fit::{epoch_mix, epoch_order};
use super::samples::{Samples, check_scale};
use crate::data::row_file::RowFile;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// A data set of `len` rows of `dim` values, read in stored order.
pub trait Rows: Send {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Values per row.
    fn dim(&self) -> usize;
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The input scale the rows are multiplied by when read.
    fn scale(&self) -> f32;
    /// Writes the rows `start..start + out.len() / dim` (scaled) into `out`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `out` is not whole rows within the data set;
    /// [`Error::Io`] or [`Error::NonFinite`] from a file.
    fn read(&mut self, start: usize, out: &mut [f32]) -> Result<()>;
    /// Writes the rows `rows` (any rows, in that order; as many as `out`
    /// holds) into `out`, scaled as [`Rows::read`] does.
    ///
    /// # Errors
    /// As [`Rows::read`].
    fn gather(&mut self, rows: &mut dyn Iterator<Item = usize>, out: &mut [f32]) -> Result<()> {
        let dim = self.dim().max(1);
        for row in out.chunks_exact_mut(dim) {
            let i = rows.next().ok_or_else(|| {
                Error::shape("Rows::gather", "a row index per output row", "fewer")
            })?;
            self.read(i, row)?;
        }
        Ok(())
    }
}

/// Which epoch's order to read, and how it is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochOrder {
    /// The epoch, from 0.
    pub epoch: usize,
    /// Shuffle (or keep the stored order).
    pub shuffle: bool,
    /// Seed of the shuffling.
    pub seed: u64,
}

/// A training set read in the order of an epoch.
pub trait EpochSource: Send {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Values per row.
    fn dim(&self) -> usize;
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes the rows at positions `start..start + out.len() / dim` of the
    /// epoch's order into `out`.
    ///
    /// # Errors
    /// As [`Rows::read`].
    fn fill(&mut self, order: EpochOrder, start: usize, out: &mut [f32]) -> Result<()>;
}

fn rows_in(op: &'static str, start: usize, out: usize, dim: usize, len: usize) -> Result<usize> {
    let count = out.checked_div(dim).unwrap_or(0);
    if count * dim != out || start.checked_add(count).is_none_or(|e| e > len) {
        return Err(Error::shape(
            op,
            format!("whole rows of {dim} within the {len} rows"),
            format!("{out} values from row {start}"),
        ));
    }
    Ok(count)
}

impl Rows for Samples<'_> {
    fn len(&self) -> usize {
        Samples::len(self)
    }
    fn dim(&self) -> usize {
        Samples::dim(self)
    }
    fn scale(&self) -> f32 {
        Samples::scale(self)
    }
    fn read(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        rows_in(
            "Samples::read",
            start,
            out.len(),
            self.dim(),
            Samples::len(self),
        )?;
        self.gather_range(start, out);
        Ok(())
    }
    fn gather(&mut self, rows: &mut dyn Iterator<Item = usize>, out: &mut [f32]) -> Result<()> {
        let (dim, n) = (self.dim(), Samples::len(self));
        rows_in("Samples::gather", 0, out.len(), dim, usize::MAX)?;
        for row in out.chunks_exact_mut(dim) {
            match rows.next() {
                Some(i) if i < n => self.row_into(i, row),
                i => {
                    return Err(Error::shape(
                        "Samples::gather",
                        format!("a row index below {n} per output row"),
                        format!("{i:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Rows in one permutation per epoch ([`epoch_order`]): samples in memory,
/// or rows of a file read where they lie ([`FileRows`]).
#[derive(Debug)]
pub struct Shuffled<R> {
    rows: R,
    order: Vec<u32>,
    current: Option<EpochOrder>,
}

impl<R: Rows> Shuffled<R> {
    /// The rows, in the order of any epoch asked for.
    ///
    /// # Panics
    /// If there are 2^32 rows or more (a permutation holds u32 indices;
    /// [`Samples`] and IDX files have fewer).
    pub fn new(rows: R) -> Shuffled<R> {
        assert!(
            u32::try_from(rows.len()).is_ok(),
            "Shuffled::new: 2^32 rows or more"
        );
        Shuffled {
            order: Vec::with_capacity(rows.len()),
            rows,
            current: None,
        }
    }
}

impl<R: Rows> EpochSource for Shuffled<R> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn dim(&self) -> usize {
        self.rows.dim()
    }
    fn fill(&mut self, order: EpochOrder, start: usize, out: &mut [f32]) -> Result<()> {
        let n = self.rows.len();
        let count = rows_in("Shuffled::fill", start, out.len(), self.dim(), n)?;
        if self.current != Some(order) {
            epoch_order(n, order.shuffle, order.seed, order.epoch, &mut self.order);
            self.current = Some(order);
        }
        let idx = &self.order[start..start + count];
        self.rows.gather(&mut idx.iter().map(|&i| i as usize), out)
    }
}

/// The size of a streaming chunk, in MB of f32 rows, when neither the
/// caller nor a small memory budget sets it.
pub const DEFAULT_CHUNK_MB: f64 = 64.0;

/// The size of a streaming chunk in MB: `chunk_mb` if given, else the
/// smaller of [`DEFAULT_CHUNK_MB`] and a quarter of `budget_mb` (the memory
/// allowed for the training split), so a small budget gets small chunks.
pub fn chunk_mb(budget_mb: f64, chunk_mb: Option<f64>) -> f64 {
    chunk_mb.unwrap_or(DEFAULT_CHUNK_MB.min(budget_mb / 4.0))
}

/// Rows of `dim` f32 values in a chunk of `chunk_mb` MB (2²⁰ bytes), at
/// least one.
pub fn chunk_rows(chunk_mb: f64, dim: usize) -> usize {
    let row = dim.max(1) as f64 * 4.0;
    ((chunk_mb * 1048576.0 / row) as usize).max(1)
}

/// Rows read one chunk of `chunk_rows` at a time: an epoch visits the
/// chunks in a shuffled order and the rows of each chunk in a shuffled
/// order (see the module doc). Holds one chunk; its buffers are allocated
/// when it is made. Made with [`Chunked::by_row`], it reads only the rows
/// asked for (in the same order) and holds no chunk.
#[derive(Debug)]
pub struct Chunked<R> {
    rows: R,
    chunk_rows: usize,
    chunks: u32,
    chunk_order: Vec<u32>,
    current: Option<EpochOrder>,
    /// Position in `chunk_order` of the chunk under the cursor, and the
    /// epoch position of its first row.
    pos: usize,
    pos_start: usize,
    loaded: Option<usize>,
    /// Whether rows are read one by one rather than in whole chunks.
    by_row: bool,
    buf: Vec<f32>,
    perm: Vec<u32>,
    /// The rows of a fill, when reading by row.
    wanted: Vec<usize>,
}

impl<R: Rows> Chunked<R> {
    /// Reads `rows` in chunks of `chunk_rows` rows (the last may be shorter).
    ///
    /// # Errors
    /// [`Error::Config`] if `chunk_rows` is 0 or there are 2^32 chunks or more.
    pub fn new(rows: R, chunk_rows: usize) -> Result<Chunked<R>> {
        let mut c = Chunked::by_row(rows, chunk_rows)?;
        c.by_row = false;
        c.buf = vec![0.0; chunk_rows.min(c.rows.len()) * c.rows.dim()];
        Ok(c)
    }

    /// The rows in the same order as [`Chunked::new`], reading only the
    /// rows asked for ([`Rows::gather`]) instead of whole chunks: for a
    /// reader of a part of each batch, such as a rank of a data-parallel
    /// job.
    ///
    /// # Errors
    /// As [`Chunked::new`].
    pub fn by_row(rows: R, chunk_rows: usize) -> Result<Chunked<R>> {
        if chunk_rows == 0 {
            return Err(Error::config("chunk_rows", "must be at least 1"));
        }
        let n_chunks = rows.len().div_ceil(chunk_rows);
        let held = chunk_rows.min(rows.len());
        let Ok(chunks) = u32::try_from(n_chunks) else {
            return Err(Error::config(
                "chunk_rows",
                format!("{chunk_rows} makes {n_chunks} chunks, more than 2^32 − 1"),
            ));
        };
        Ok(Chunked {
            buf: Vec::new(),
            perm: Vec::with_capacity(held),
            chunk_order: Vec::with_capacity(n_chunks),
            chunks,
            rows,
            chunk_rows,
            current: None,
            pos: 0,
            pos_start: 0,
            loaded: None,
            by_row: true,
            wanted: Vec::new(),
        })
    }

    /// Rows per chunk.
    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    fn chunk_len(&self, chunk: u32) -> usize {
        let lo = chunk as usize * self.chunk_rows;
        self.chunk_rows.min(self.rows.len() - lo)
    }

    /// Makes the chunk at `pos` current: its permutation, and its rows
    /// unless reading by row.
    fn load(&mut self, order: EpochOrder) -> Result<()> {
        let c = self.chunk_order[self.pos];
        let n = self.chunk_len(c);
        let dim = self.rows.dim();
        self.loaded = None;
        if !self.by_row {
            self.rows
                .read(c as usize * self.chunk_rows, &mut self.buf[..n * dim])?;
        }
        self.perm.clear();
        self.perm.extend(0..n as u32);
        if order.shuffle {
            let mix = (u64::from(c) + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
            Rng::new(order.seed ^ epoch_mix(order.epoch) ^ mix).shuffle(&mut self.perm);
        }
        self.loaded = Some(self.pos);
        Ok(())
    }
}

impl<R: Rows> EpochSource for Chunked<R> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn dim(&self) -> usize {
        self.rows.dim()
    }
    fn fill(&mut self, order: EpochOrder, start: usize, out: &mut [f32]) -> Result<()> {
        let dim = self.rows.dim();
        let count = rows_in("Chunked::fill", start, out.len(), dim, self.rows.len())?;
        if self.current != Some(order) {
            self.chunk_order.clear();
            self.chunk_order.extend(0..self.chunks);
            if order.shuffle {
                Rng::new(order.seed ^ epoch_mix(order.epoch)).shuffle(&mut self.chunk_order);
            }
            (self.pos, self.pos_start, self.loaded) = (0, 0, None);
            self.current = Some(order);
        }
        self.wanted.clear();
        for (k, row) in out.chunks_exact_mut(dim.max(1)).take(count).enumerate() {
            let p = start + k;
            if p < self.pos_start {
                (self.pos, self.pos_start) = (0, 0);
            }
            loop {
                let n = self.chunk_len(self.chunk_order[self.pos]);
                if p < self.pos_start + n {
                    break;
                }
                self.pos_start += n;
                self.pos += 1;
            }
            if self.loaded != Some(self.pos) {
                self.load(order)?;
            }
            let r = self.perm[p - self.pos_start] as usize;
            match self.by_row {
                true => self
                    .wanted
                    .push(self.chunk_order[self.pos] as usize * self.chunk_rows + r),
                false => row.copy_from_slice(&self.buf[r * dim..(r + 1) * dim]),
            }
        }
        if self.by_row {
            self.rows.gather(&mut self.wanted.iter().copied(), out)?;
        }
        Ok(())
    }
}

/// A range of rows of a data file read where they lie ([`RowFile`]: a
/// `.npy` matrix, or a raw IDX file of images), checked finite and
/// multiplied by the input scale.
#[derive(Debug)]
pub struct FileRows {
    file: RowFile,
    lo: usize,
    len: usize,
    scale: f32,
    /// The name of the checked range in errors about values outside
    /// [0, 1], if they are refused.
    unit: Option<&'static str>,
}

/// The name [`FileRows`] had when it read only `.npy` files.
pub type NpyRows = FileRows;

impl FileRows {
    /// All rows of the `.npy` file at `path`, scale 1.
    ///
    /// # Errors
    /// As [`RowFile::npy`].
    pub fn open(path: &Path) -> Result<FileRows> {
        Ok(FileRows::new(RowFile::npy(path)?))
    }

    /// All rows of `file`, scale 1.
    pub fn new(file: RowFile) -> FileRows {
        FileRows {
            lo: 0,
            len: file.rows(),
            scale: 1.0,
            unit: None,
            file,
        }
    }

    /// The same file's rows `lo..hi` (of the whole file).
    ///
    /// # Errors
    /// [`Error::Shape`] if the range is not within the file.
    pub fn range(self, lo: usize, hi: usize) -> Result<FileRows> {
        if lo > hi || hi > self.file.rows() {
            return Err(Error::shape(
                "NpyRows::range",
                format!("rows within 0..{}", self.file.rows()),
                format!("{lo}..{hi}"),
            ));
        }
        Ok(FileRows {
            lo,
            len: hi - lo,
            ..self
        })
    }

    /// The same rows multiplied by `scale` when read.
    ///
    /// # Errors
    /// [`Error::Config`] unless `scale` is finite and positive.
    pub fn scaled(self, scale: f32) -> Result<FileRows> {
        check_scale(scale)?;
        Ok(FileRows { scale, ..self })
    }

    /// The same rows, refusing a value outside [0, 1] (as read, scaled)
    /// with the error of a binary cross-entropy target
    /// ([`crate::nn::bce_target_error`]) naming the sample of the `split`.
    pub fn in_unit_range(self, split: &'static str) -> FileRows {
        FileRows {
            unit: Some(split),
            ..self
        }
    }

    /// The file.
    pub fn file(&self) -> &RowFile {
        &self.file
    }

    /// All the rows in memory, `(len, dim)` row-major.
    ///
    /// # Errors
    /// [`Error::Memory`] if they exceed the memory budget; as [`Rows::read`].
    pub fn read_all(&mut self) -> Result<Vec<f32>> {
        let values = self.len.saturating_mul(self.file.dim());
        crate::memory::check(
            &format!(
                "reading {} rows of {} features of {}",
                self.len,
                self.file.dim(),
                self.file.path().display()
            ),
            crate::memory::f32_bytes(values),
        )?;
        let mut out = vec![0.0; values];
        self.read(0, &mut out)?;
        Ok(out)
    }

    /// Checks and scales `out`, the rows `rows` (of the range) as read.
    fn finish(&self, out: &mut [f32], row_of: impl Fn(usize) -> usize) -> Result<()> {
        let dim = self.file.dim().max(1);
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            let (row, feature) = (self.lo + row_of(i / dim), i % dim);
            let at = format!(
                "{}: row {row}, feature {feature}",
                self.file.path().display()
            );
            // An f64 too large for f32 was read as ±Inf: name what is stored.
            if let Some(x) = self.file.stored_f64(row, feature)?
                && crate::data::beyond_f32(x)
            {
                return Err(crate::data::beyond_f32_error(at, x));
            }
            return Err(Error::NonFinite {
                step: 0,
                tensor: format!("{at} (value {})", out[i]),
            });
        }
        if self.scale != 1.0 {
            out.iter_mut().for_each(|v| *v *= self.scale);
        }
        if let Some(split) = self.unit
            && let Some(i) = out.iter().position(|v| !(0.0..=1.0).contains(v))
        {
            return Err(crate::nn::bce_target_error(
                format!(
                    "feature {} of sample {} of the {split} split",
                    i % dim,
                    row_of(i / dim)
                ),
                f64::from(out[i]),
            ));
        }
        Ok(())
    }
}

impl Rows for FileRows {
    fn len(&self) -> usize {
        self.len
    }
    fn dim(&self) -> usize {
        self.file.dim()
    }
    fn scale(&self) -> f32 {
        self.scale
    }
    fn read(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        let dim = self.file.dim();
        rows_in("NpyRows::read", start, out.len(), dim, self.len)?;
        self.file.read_rows(self.lo + start, out)?;
        self.finish(out, |k| start + k)
    }
    fn gather(&mut self, rows: &mut dyn Iterator<Item = usize>, out: &mut [f32]) -> Result<()> {
        let dim = self.file.dim().max(1);
        rows_in("NpyRows::gather", 0, out.len(), dim, usize::MAX)?;
        self.file.check_len()?;
        for row in out.chunks_exact_mut(dim) {
            match rows.next() {
                Some(i) if i < self.len => {
                    self.file.read_row(self.lo + i, row)?;
                    self.finish(row, |_| i)?;
                }
                i => {
                    return Err(Error::shape(
                        "NpyRows::gather",
                        format!("a row index below {} per output row", self.len),
                        format!("{i:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}
