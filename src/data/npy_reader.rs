//! Rows of a `.npy` array read from a file in pieces, so that an array
//! larger than memory can be used without holding it.
//!
//! The array is seen as a matrix of `rows = shape[0]` rows of
//! `dim = Π shape[1..]` values (a 1-D array has `dim = 1`; a scalar is one
//! row of one value). Opening reads and checks the header (see
//! [`crate::data::npy`]) and compares the length of the data region with
//! what the header declares, so a lying shape or a truncated file is an
//! error before any row is read. [`NpyReader::read_rows`] then seeks to the
//! rows and decodes them through a buffer of at most [`PIECE`] bytes: memory
//! is the caller's output plus that buffer, whatever the file's size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::npy::{Header, decode, length_mismatch, read_header};
use crate::{Error, Result};

/// Most bytes read from the file at once (a multiple of every item size).
pub const PIECE: usize = 1 << 20;

/// An open `.npy` file whose header has been checked.
#[derive(Debug)]
pub struct NpyReader<R> {
    inner: R,
    path: PathBuf,
    header: Header,
    rows: usize,
    dim: usize,
    buf: Vec<u8>,
}

impl NpyReader<File> {
    /// Opens the `.npy` file at `path` and checks its header and length.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be opened or read; [`Error::Npy`] as
    /// [`NpyReader::new`].
    pub fn open(path: &Path) -> Result<NpyReader<File>> {
        let (f, _) = crate::io::read::open_regular(path)?;
        NpyReader::new(f, path)
    }
}

impl<R: Read + Seek> NpyReader<R> {
    /// Reads the header of the `.npy` data in `inner` (from its start) and
    /// checks that exactly the declared number of data bytes follow it.
    /// `path` names the data in errors.
    ///
    /// # Errors
    /// [`Error::Npy`] for a bad header (see [`crate::data::npy::read_header`])
    /// or a data region longer or shorter than the shape needs;
    /// [`Error::Io`] if reading fails.
    pub fn new(mut inner: R, path: &Path) -> Result<NpyReader<R>> {
        let io = |e| Error::io(path, e);
        let len = inner.seek(SeekFrom::End(0)).map_err(io)?;
        inner.seek(SeekFrom::Start(0)).map_err(io)?;
        let header = read_header(&mut inner, len, path)?;
        super::row_file::count(header.data_start);
        let present = len - header.data_start as u64;
        if present != header.data_bytes as u64 {
            return Err(length_mismatch(&header, present, path));
        }
        let (rows, dim) = match header.shape.split_first() {
            None => (1, 1),
            Some((&n, rest)) => (n, rest.iter().product()),
        };
        Ok(NpyReader {
            inner,
            path: path.to_owned(),
            header,
            rows,
            dim,
            buf: Vec::new(),
        })
    }

    /// The data source and its checked header.
    pub fn into_parts(self) -> (R, Header) {
        (self.inner, self.header)
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of rows (`shape[0]`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (`Π shape[1..]`).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The file's name, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decodes the rows `start..start + out.len() / dim` into `out`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `out` is not whole rows or the rows run past the
    /// end; [`Error::Io`] if reading fails (for example because the file
    /// was shortened after it was opened).
    pub fn read_rows(&mut self, start: usize, out: &mut [f32]) -> Result<()> {
        let dim = self.dim;
        let count = out.len().checked_div(dim).unwrap_or(0);
        if count * dim != out.len() || start.checked_add(count).is_none_or(|e| e > self.rows) {
            return Err(Error::shape(
                "NpyReader::read_rows",
                format!("whole rows of {dim} within the {} rows", self.rows),
                format!("{} values from row {start}", out.len()),
            ));
        }
        if out.is_empty() {
            return Ok(());
        }
        let size = self.header.dtype.size();
        let io = |e| Error::io(&self.path, e);
        let offset = self.header.data_start + start * dim * size;
        self.inner
            .seek(SeekFrom::Start(offset as u64))
            .map_err(io)?;
        let total = out.len() * size;
        if self.buf.len() < total.min(PIECE) {
            self.buf.resize(total.min(PIECE), 0);
        }
        for piece in out.chunks_mut(PIECE / size) {
            let bytes = &mut self.buf[..piece.len() * size];
            self.inner.read_exact(bytes).map_err(|e| {
                let e = match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => std::io::Error::new(
                        e.kind(),
                        "the file ended before its data did (was it changed after it was opened?)",
                    ),
                    _ => e,
                };
                Error::io(&self.path, e)
            })?;
            super::row_file::count(bytes.len());
            decode(self.header.dtype, self.header.big_endian, bytes, piece);
        }
        Ok(())
    }

    /// All values, row-major (an allocation of `Π shape` values, which the
    /// file's length has already been checked to hold).
    ///
    /// # Errors
    /// [`Error::Memory`] if they exceed the memory budget; as
    /// [`NpyReader::read_rows`].
    pub fn read_all(&mut self) -> Result<Vec<f32>> {
        crate::memory::check(
            &format!("reading {}", self.path.display()),
            crate::memory::f32_bytes(self.header.numel()),
        )?;
        let mut out = vec![0.0f32; self.header.numel()];
        self.read_rows(0, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy;
    use std::io::Cursor;

    #[test]
    fn rows_in_pieces_match_the_whole_array() {
        // Wider than one PIECE per row, so reads cross the buffer's edge.
        let (rows, dim) = (5, PIECE / 4 + 3);
        let data: Vec<f32> = (0..rows * dim).map(|i| (i % 1013) as f32 - 7.5).collect();
        let bytes = npy::to_bytes(&[rows, dim], &data).unwrap();
        let mut r = NpyReader::new(Cursor::new(&bytes[..]), Path::new("m.npy")).unwrap();
        assert_eq!((r.rows(), r.dim()), (rows, dim));
        let mut two = vec![0.0; 2 * dim];
        r.read_rows(2, &mut two).unwrap();
        assert_eq!(two, data[2 * dim..4 * dim]);
        assert_eq!(r.read_all().unwrap(), data);
        let e = r.read_rows(4, &mut two).unwrap_err().to_string();
        assert!(e.contains("within the 5 rows"), "{e}");
        let e = r.read_rows(0, &mut two[..dim + 1]).unwrap_err().to_string();
        assert!(e.contains("whole rows"), "{e}");
    }

    #[test]
    fn a_lying_shape_or_missing_data_is_refused_on_open() {
        let bytes = npy::to_bytes(&[4, 3], &[1.0; 12]).unwrap();
        for (cut, want) in [
            (bytes.len() - 1, "needs 48 bytes of data but 47 follow"),
            (bytes.len() - 48, "needs 48 bytes of data but 0 follow"),
        ] {
            let e = NpyReader::new(Cursor::new(&bytes[..cut]), Path::new("t.npy")).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        let mut longer = bytes.clone();
        longer.extend([0; 4]);
        let e = NpyReader::new(Cursor::new(&longer[..]), Path::new("t.npy")).unwrap_err();
        assert!(e.to_string().contains("but 52 follow"), "{e}");
    }
}
