//! Rows of a data file read where they lie, for a process that needs some
//! rows of a file and not the rest (a rank of a data-parallel job reads the
//! rows of its own micro-batches, [`crate::dist`]).
//!
//! A [`RowFile`] is a raw IDX file of u8 (images, scaled to [0, 1] as
//! [`crate::train::Samples::u8`] scales them) or a `.npy` matrix (any dtype
//! [`crate::data::npy`] reads, C order), seen as `rows` rows of `dim`
//! values (`dim = Π dims[1..]`). Opening reads and checks the header exactly
//! as the whole-file loaders do (the same code, so a hostile file gets the
//! same error) and compares the data's length with the file's. Each read
//! then fetches only the bytes of the rows asked for, with positioned reads
//! (`read_exact_at` on Unix, seek and read elsewhere), and decodes them as
//! the whole-file loader does, so the values are the same bits. Memory is
//! the caller's output plus a buffer of at most [`PIECE`] bytes.
//!
//! Every data reader of this crate (this one, [`crate::data::npy_reader`]
//! and [`crate::data::idx::read`]) adds the bytes it reads to one counter of
//! the process, [`bytes_read`].

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::gz;
use super::idx;
use super::npy::{Dtype, Header, decode};
use super::npy_reader::NpyReader;
use crate::{Error, Result};

/// Most bytes read from the file at once (a multiple of every item size).
pub const PIECE: usize = 1 << 20;

static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// Bytes this process has read from data files so far (IDX, `.npy`, by
/// row or whole; headers included).
pub fn bytes_read() -> u64 {
    BYTES_READ.load(Ordering::Relaxed)
}

/// Adds `n` bytes read from a data file to [`bytes_read`].
pub(crate) fn count(n: usize) {
    BYTES_READ.fetch_add(n as u64, Ordering::Relaxed);
}

/// How the stored elements become f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// IDX bytes, scaled by 1/255 into [0, 1] ([`crate::kernels::u8_to_unit`]).
    UnitU8,
    /// `.npy` elements, widened by [`crate::data::npy::decode`].
    Npy {
        /// The element type.
        dtype: Dtype,
        /// Whether multi-byte elements are big-endian.
        big_endian: bool,
    },
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::UnitU8 => 1,
            Elem::Npy { dtype, .. } => dtype.size(),
        }
    }

    fn decode(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            Elem::UnitU8 => crate::kernels::u8_to_unit(bytes, out),
            Elem::Npy { dtype, big_endian } => decode(dtype, big_endian, bytes, out),
        }
    }
}

/// A data file whose header has been checked, read by rows.
#[derive(Debug)]
pub struct RowFile {
    file: File,
    path: PathBuf,
    /// The file's length when it was opened.
    len: u64,
    data_start: u64,
    rows: usize,
    dim: usize,
    elem: Elem,
    shape: Vec<usize>,
    npy: Option<Header>,
    buf: Vec<u8>,
    /// Positioned reads made so far.
    reads: u64,
}

impl RowFile {
    /// Opens the `.npy` file at `path`, checking its header and length as
    /// [`NpyReader::open`] does.
    ///
    /// # Errors
    /// As [`NpyReader::open`].
    pub fn npy(path: &Path) -> Result<RowFile> {
        let (file, header) = NpyReader::open(path)?.into_parts();
        let len = (header.data_start + header.data_bytes) as u64;
        let (rows, dim) = match header.shape.split_first() {
            None => (1, 1),
            Some((&n, rest)) => (n, rest.iter().product()),
        };
        Ok(RowFile {
            file,
            path: path.to_owned(),
            len,
            data_start: header.data_start as u64,
            rows,
            dim,
            elem: Elem::Npy {
                dtype: header.dtype,
                big_endian: header.big_endian,
            },
            shape: header.shape.clone(),
            npy: Some(header),
            buf: Vec::new(),
            reads: 0,
        })
    }

    /// Opens the IDX file at `path`: a raw file's header is checked as
    /// [`idx::read`] checks it (errors word for word) and its rows are
    /// `dims[0]` rows of `Π dims[1..]` values, whatever the element type
    /// (reading them needs type u8: check [`idx::IdxHeader::code`]), with
    /// its header. A gzip-compressed file, which cannot be read by row, is
    /// `None` (nothing read beyond its magic bytes).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or read; [`Error::Idx`]
    /// for a bad header or a length that does not match it.
    pub fn idx_u8(path: &Path) -> Result<Option<(RowFile, idx::IdxHeader)>> {
        let (file, len) = crate::io::read::open_regular(path)?;
        let mut magic = [0u8; 2];
        let got = (&file)
            .take(2)
            .read(&mut magic)
            .map_err(|e| Error::io(path, e))?;
        count(got);
        if gz::is_gzip(&magic[..got]) {
            return Ok(None);
        }
        let mut r = CountingFromStart { file: &file, at: 0 };
        let header = idx::read_header(&mut r, path, Some(len), u64::MAX)?;
        let rows = header.dims[0];
        let dim = header.dims[1..].iter().product();
        Ok(Some((
            RowFile {
                file,
                path: path.to_owned(),
                len,
                data_start: header.data_start,
                rows,
                dim,
                elem: Elem::UnitU8,
                shape: header.dims.clone(),
                npy: None,
                buf: Vec::new(),
                reads: 0,
            },
            header,
        )))
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How the elements are decoded.
    pub fn elem(&self) -> Elem {
        self.elem
    }

    /// The file's name, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The shape the header declares (`.npy` shape or IDX dimensions).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The `.npy` header (`None` for IDX).
    pub fn npy_header(&self) -> Option<&Header> {
        self.npy.as_ref()
    }

    /// Checks that the file still has the length it had when opened.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file and both lengths.
    pub fn check_len(&self) -> Result<()> {
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, e))?
            .len();
        if now != self.len {
            return Err(Error::io(
                &self.path,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the file changed size while it was read ({} bytes when opened, {now} now)",
                        self.len
                    ),
                ),
            ));
        }
        Ok(())
    }

    fn check_rows(&self, op: &'static str, start: usize, count: usize, len: usize) -> Result<()> {
        if count * self.dim != len || start.checked_add(count).is_none_or(|e| e > self.rows) {
            return Err(Error::shape(
                op,
                format!("whole rows of {} within the {} rows", self.dim, self.rows),
                format!("{len} values from row {start}"),
            ));
        }
        Ok(())
    }

    /// Reads and decodes the values `out.len()` from row `start`, in pieces
    /// of at most [`PIECE`] bytes.
    fn read_span(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        let size = self.elem.size();
        let mut offset = self.data_start + (start * self.dim * size) as u64;
        if self.buf.len() < (out.len() * size).min(PIECE) {
            self.buf.resize((out.len() * size).min(PIECE), 0);
        }
        for piece in out.chunks_mut(PIECE / size) {
            let bytes = &mut self.buf[..piece.len() * size];
            read_at(&self.file, bytes, offset).map_err(|e| {
                let e = match e.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        e.kind(),
                        "the file ended before its data did (was it changed after it was opened?)",
                    ),
                    _ => e,
                };
                Error::io(&self.path, e)
            })?;
            count(bytes.len());
            self.reads += 1;
            self.elem.decode(bytes, piece);
            offset += bytes.len() as u64;
        }
        Ok(())
    }

    /// The value at `row`, `feature` as stored, if the file holds f64
    /// (`.npy` `f8`): before it was rounded to the f32 read, which is ±Inf
    /// for a finite value beyond f32's range.
    ///
    /// # Errors
    /// [`Error::Io`] if reading fails.
    pub fn stored_f64(&self, row: usize, feature: usize) -> Result<Option<f64>> {
        let Elem::Npy {
            dtype: Dtype::F64,
            big_endian,
        } = self.elem
        else {
            return Ok(None);
        };
        if row >= self.rows || feature >= self.dim {
            return Ok(None);
        }
        let mut b = [0u8; 8];
        let at = self.data_start + ((row * self.dim + feature) * 8) as u64;
        read_at(&self.file, &mut b, at).map_err(|e| Error::io(&self.path, e))?;
        Ok(Some(match big_endian {
            true => f64::from_be_bytes(b),
            false => f64::from_le_bytes(b),
        }))
    }

    /// Decodes the rows `start..start + out.len() / dim` into `out`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `out` is not whole rows or the rows run past the
    /// end; [`Error::Io`] if reading fails or the file changed size.
    pub fn read_rows(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        let count = out.len().checked_div(self.dim).unwrap_or(0);
        self.check_rows("RowFile::read_rows", start, count, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        self.check_len()?;
        self.read_span(start, out)
    }

    /// Decodes row `row` into `out` (`dim` values), without comparing
    /// the file's length with its length when opened: call
    /// [`RowFile::check_len`] once for each set of rows read.
    ///
    /// # Errors
    /// As [`RowFile::read_rows`].
    pub fn read_row(&mut self, row: usize, out: &mut [f32]) -> Result<()> {
        self.check_rows("RowFile::read_row", row, 1, out.len())?;
        self.read_span(row, out)
    }

    /// Positioned reads made so far (each at most [`PIECE`] bytes).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Decodes the rows `rows` (any rows, in that order) into `out`, one
    /// row of `dim` values after another; a run of consecutive rows is one
    /// read (an unshuffled epoch reads each batch at once).
    ///
    /// # Errors
    /// As [`RowFile::read_rows`].
    pub fn gather(&mut self, rows: &mut dyn Iterator<Item = usize>, out: &mut [f32]) -> Result<()> {
        let dim = self.dim.max(1);
        if !out.len().is_multiple_of(dim) {
            return Err(Error::shape(
                "RowFile::gather",
                format!("whole rows of {dim}"),
                format!("{} values", out.len()),
            ));
        }
        self.check_len()?;
        let total = out.len() / dim;
        let mut rows = rows.peekable();
        let mut at = 0;
        while at < total {
            let first = rows.next().ok_or_else(|| {
                Error::shape("RowFile::gather", "a row index per output row", "fewer")
            })?;
            // (Peek only while output rows remain: no index past the last is taken.)
            let mut n = 1;
            while at + n < total && rows.peek() == first.checked_add(n).as_ref() {
                rows.next();
                n += 1;
            }
            let span = &mut out[at * dim..(at + n) * dim];
            self.check_rows("RowFile::gather", first, n, span.len())?;
            self.read_span(first, span)?;
            at += n;
        }
        Ok(())
    }
}

/// Reads `buf.len()` bytes at `offset` of `file`.
#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

/// Reads `buf.len()` bytes at `offset` of `file`.
#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// The file read from its start by positioned reads, counted.
struct CountingFromStart<'a> {
    file: &'a File,
    at: u64,
}

impl Read for CountingFromStart<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_some_at(self.file, buf, self.at)?;
        self.at += n as u64;
        count(n);
        Ok(n)
    }
}

#[cfg(unix)]
fn read_some_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    file.read_at(buf, offset)
}

#[cfg(not(unix))]
fn read_some_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{IdxArray, IdxData};
    use crate::data::npy;
    use crate::rng::Rng;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Row order for gathers: every row, shuffled, some twice.
    fn some_rows(n: usize, seed: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).chain([n - 1, 0, n / 2]).collect();
        Rng::new(seed).shuffle(&mut idx);
        idx
    }

    /// Every dtype and byte order the `.npy` loader accepts, with random
    /// bytes for data (NaNs, infinities and subnormals included): whole
    /// reads, ranges and gathers of rows give the whole-file loader's bits.
    #[test]
    fn npy_rows_are_the_whole_file_loaders_bits_for_every_dtype() {
        let dir = crate::Scratch::new("rowfile-dtypes");
        let (rows, dim) = (9, 7);
        for descr in [
            "<f4", ">f4", "<f8", ">f8", "<f2", ">f2", "<V2", ">V2", "|V2", "bfloat16", "|u1", "|i1",
        ] {
            let size = match &descr[1..] {
                "f8" => 8,
                "f4" => 4,
                "u1" | "i1" => 1,
                _ => 2,
            };
            let mut r = Rng::new(descr.len() as u64 + u64::from(descr.as_bytes()[1]));
            let mut bytes = npy::header_bytes(descr, &[rows, dim]);
            bytes.extend((0..rows * dim * size).map(|_| (r.next_u64() >> 56) as u8));
            let path = dir.join(&format!("{}.npy", descr.replace(['<', '>', '|'], "_")));
            std::fs::write(&path, &bytes).unwrap();
            let whole = npy::read(&path).unwrap().data;
            let mut f = RowFile::npy(&path).unwrap();
            assert_eq!((f.rows(), f.dim()), (rows, dim), "{descr}");
            let mut all = vec![0.0; rows * dim];
            f.read_rows(0, &mut all).unwrap();
            assert_eq!(bits(&all), bits(&whole), "{descr}: all rows");
            let mut three = vec![0.0; 3 * dim];
            f.read_rows(4, &mut three).unwrap();
            assert_eq!(bits(&three), bits(&whole[4 * dim..7 * dim]), "{descr}");
            let idx = some_rows(rows, 7);
            let mut got = vec![0.0; idx.len() * dim];
            f.gather(&mut idx.iter().copied(), &mut got).unwrap();
            let want: Vec<f32> = idx
                .iter()
                .flat_map(|&i| whole[i * dim..(i + 1) * dim].iter().copied())
                .collect();
            assert_eq!(bits(&got), bits(&want), "{descr}: gathered rows");
        }
    }

    /// A raw IDX file of u8 images: its rows are the bits the in-memory
    /// samples give (bytes scaled to [0, 1], then by an input scale).
    #[test]
    fn idx_rows_are_the_in_memory_samples_bits() {
        let dir = crate::Scratch::new("rowfile-idx");
        let (n, h, w) = (11, 3, 5);
        let mut r = Rng::new(3);
        let pixels: Vec<u8> = (0..n * h * w).map(|_| (r.next_u64() >> 56) as u8).collect();
        let path = dir.join("images-idx3-ubyte");
        let a = IdxArray {
            dims: vec![n, h, w],
            data: IdxData::U8(pixels.clone()),
        };
        idx::write(&path, &a).unwrap();
        let (mut f, header) = RowFile::idx_u8(&path).unwrap().expect("a raw file");
        assert_eq!((header.code, f.rows(), f.dim()), (0x08, n, h * w));
        let samples = crate::train::Samples::u8(&pixels, h * w).unwrap();
        let idx = some_rows(n, 5);
        let want_idx: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
        let mut want = vec![0.0; idx.len() * h * w];
        samples.gather(&want_idx, &mut want);
        let mut got = vec![0.0; idx.len() * h * w];
        f.gather(&mut idx.iter().copied(), &mut got).unwrap();
        assert_eq!(bits(&got), bits(&want));
        let mut all = vec![0.0; n * h * w];
        f.read_rows(0, &mut all).unwrap();
        let mut want = vec![0.0; n * h * w];
        samples.gather_range(0, &mut want);
        assert_eq!(bits(&all), bits(&want));
    }

    /// A gather reads each run of consecutive rows at once and still gives
    /// every row, in order, as single-row reads do; a row past the end is
    /// an error naming the gather, and no index past the last output row
    /// is taken from the iterator.
    #[test]
    fn gathers_read_runs_of_rows_at_once() {
        let dir = crate::Scratch::new("rowfile-runs");
        let (rows, dim) = (12, 5);
        let values: Vec<f32> = (0..rows * dim).map(|i| i as f32 * 0.25).collect();
        let path = dir.join("runs.npy");
        std::fs::write(&path, npy::to_bytes(&[rows, dim], &values).unwrap()).unwrap();
        let mut f = RowFile::npy(&path).unwrap();
        for (idx, runs) in [
            (vec![2, 3, 4, 5, 9, 0, 1], 3),
            (vec![7, 7, 8, 6], 3),
            ((0..rows).collect(), 1),
            (vec![11, 10, 9], 3),
            (vec![], 0),
        ] {
            let before = f.reads();
            let mut got = vec![0.0; idx.len() * dim];
            f.gather(&mut idx.iter().copied(), &mut got).unwrap();
            let want: Vec<f32> = idx
                .iter()
                .flat_map(|&i| values[i * dim..(i + 1) * dim].iter().copied())
                .collect();
            assert_eq!(bits(&got), bits(&want), "{idx:?}");
            assert_eq!(f.reads() - before, runs, "{idx:?}");
        }
        let mut it = [4, 5, 6, 7].into_iter();
        let mut two = vec![0.0; 2 * dim];
        f.gather(&mut it, &mut two).unwrap();
        assert_eq!(it.next(), Some(6));
        let e = f
            .gather(&mut [10, 11, 12].into_iter(), &mut vec![0.0; 3 * dim])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RowFile::gather") && e.contains("row 10"), "{e}");
        assert!(
            f.gather(&mut [1].into_iter(), &mut vec![0.0; 2 * dim])
                .is_err()
        );
    }

    /// Broken headers get the whole-file loaders' errors, word for word.
    #[test]
    fn broken_headers_get_the_loaders_errors() {
        let dir = crate::Scratch::new("rowfile-headers");
        let good = npy::to_bytes(&[4, 3], &[0.5; 12]).unwrap();
        let mut longer = good.clone();
        longer.push(0);
        let npys: [&[u8]; 5] = [
            &good[..good.len() - 1],
            &longer,
            &good[..7],
            b"PK\x03\x04 not npy",
            b"\x93NUMPY\x04\x00\x00\x00",
        ];
        for (k, bytes) in npys.iter().enumerate() {
            let path = dir.join(&format!("bad{k}.npy"));
            std::fs::write(&path, bytes).unwrap();
            let want = npy::read(&path).unwrap_err().to_string();
            let got = RowFile::npy(&path).unwrap_err().to_string();
            assert_eq!(got, want, "case {k}");
        }
        let good = idx::to_bytes(&IdxArray {
            dims: vec![2, 2, 2],
            data: IdxData::U8(vec![1; 8]),
        })
        .unwrap();
        let mut longer = good.clone();
        longer.push(0);
        let mut zero = good.clone();
        zero[7] = 0;
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let idxs: [&[u8]; 6] = [
            &good[..good.len() - 1],
            &longer,
            &good[..6],
            &zero,
            &huge,
            b"\x00\x00\x07\x01\x00\x00\x00\x01",
        ];
        for (k, bytes) in idxs.iter().enumerate() {
            let path = dir.join(&format!("bad{k}-idx3-ubyte"));
            std::fs::write(&path, bytes).unwrap();
            let want = idx::read(&path).unwrap_err().to_string();
            let got = RowFile::idx_u8(&path).unwrap_err().to_string();
            assert_eq!(got, want, "case {k}");
        }
    }

    /// A file that is shortened or grows after it was opened is an error
    /// naming it, not a panic or wrong rows.
    #[test]
    fn a_file_that_changes_size_is_an_error() {
        let dir = crate::Scratch::new("rowfile-changes");
        let path = dir.join("changes.npy");
        npy::write(&path, 6, 4, &[0.25; 24]).unwrap();
        let mut f = RowFile::npy(&path).unwrap();
        let mut row = vec![0.0; 4];
        f.read_rows(5, &mut row).unwrap();
        for len in [100, 300] {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len)
                .unwrap();
            let e = f.read_rows(0, &mut row).unwrap_err().to_string();
            assert!(
                e.contains("changed size") && e.contains("changes.npy"),
                "{e}"
            );
            let e = f.gather(&mut [1].into_iter(), &mut row).unwrap_err();
            assert!(e.to_string().contains("changed size"), "{e}");
        }
    }

    #[test]
    fn reads_are_counted() {
        let dir = crate::Scratch::new("rowfile-counted");
        let path = dir.join("counted.npy");
        npy::write(&path, 10, 8, &[1.0; 80]).unwrap();
        let mut f = RowFile::npy(&path).unwrap();
        let mut rows = vec![0.0; 3 * 8];
        // Other tests read at the same time: the counter grows by at least
        // what this one reads.
        let before = bytes_read();
        f.gather(&mut [9, 0, 4].into_iter(), &mut rows).unwrap();
        assert!(bytes_read() - before >= 3 * 8 * 4);
    }
}
