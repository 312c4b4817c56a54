//! A data set as the trainer sees it: `n` samples of `dim` features, kept in
//! their stored type (u8 images stay u8) and scaled into a batch buffer when
//! a batch is gathered.

use crate::error::{Error, Result};

/// Borrowed samples, row-major `(n, dim)`.
#[derive(Clone, Copy, Debug)]
pub enum Samples<'a> {
    /// Bytes scaled by 1/255 into [0, 1] (images).
    U8 {
        /// The bytes.
        data: &'a [u8],
        /// Features per sample.
        dim: usize,
    },
    /// Floats used as they are.
    F32 {
        /// The values.
        data: &'a [f32],
        /// Features per sample.
        dim: usize,
    },
}

impl<'a> Samples<'a> {
    /// Byte samples; checks that `data` holds whole samples.
    ///
    /// # Errors
    /// [`Error::Shape`] if `dim` is 0 or does not divide the length.
    pub fn u8(data: &'a [u8], dim: usize) -> Result<Samples<'a>> {
        check_len(data.len(), dim)?;
        Ok(Samples::U8 { data, dim })
    }

    /// Float samples; checks that `data` holds whole samples of finite values.
    ///
    /// # Errors
    /// [`Error::Shape`] if `dim` does not divide the length;
    /// [`Error::NonFinite`] naming the first NaN or infinite value.
    pub fn f32(data: &'a [f32], dim: usize) -> Result<Samples<'a>> {
        check_len(data.len(), dim)?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                step: 0,
                tensor: format!("the data: sample {}, feature {} is {}", i / dim, i % dim, data[i]),
            });
        }
        Ok(Samples::F32 { data, dim })
    }

    /// Features per sample.
    pub fn dim(&self) -> usize {
        match *self {
            Samples::U8 { dim, .. } | Samples::F32 { dim, .. } => dim,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match *self {
            Samples::U8 { data, dim } => data.len() / dim,
            Samples::F32 { data, dim } => data.len() / dim,
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the samples `idx` (as f32, bytes scaled to [0, 1]) into
    /// `out: (idx.len(), dim)`.
    ///
    /// # Panics
    /// If an index is out of range or `out` has the wrong length.
    pub fn gather(&self, idx: &[u32], out: &mut [f32]) {
        let dim = self.dim();
        assert_eq!(out.len(), idx.len() * dim, "Samples::gather: output length");
        for (row, &i) in out.chunks_exact_mut(dim).zip(idx) {
            let i = i as usize;
            match *self {
                Samples::U8 { data, .. } => {
                    crate::kernels::u8_to_unit(&data[i * dim..(i + 1) * dim], row);
                }
                Samples::F32 { data, .. } => row.copy_from_slice(&data[i * dim..(i + 1) * dim]),
            }
        }
    }

    /// The first `n` samples (or all, if fewer).
    pub fn head(&self, n: usize) -> Samples<'a> {
        let n = n.min(self.len());
        match *self {
            Samples::U8 { data, dim } => Samples::U8 {
                data: &data[..n * dim],
                dim,
            },
            Samples::F32 { data, dim } => Samples::F32 {
                data: &data[..n * dim],
                dim,
            },
        }
    }
}

fn check_len(len: usize, dim: usize) -> Result<()> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(Error::shape(
            "Samples",
            format!("whole samples of {dim} features"),
            format!("{len} values"),
        ));
    }
    if len / dim > u32::MAX as usize {
        return Err(Error::shape(
            "Samples",
            "at most 2^32 − 1 samples",
            format!("{}", len / dim),
        ));
    }
    Ok(())
}
