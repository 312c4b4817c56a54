//! A data set as the trainer sees it: `n` samples of `dim` features, kept in
//! their stored type (u8 images stay u8) and scaled into a batch buffer when
//! a batch is gathered.

use crate::error::{Error, Result};

/// The stored values.
#[derive(Clone, Copy, Debug)]
enum Data<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
}

/// Borrowed samples, row-major `(n, dim)`, with an input scale `s` that
/// every gathered value is multiplied by (1 unless set with
/// [`Samples::scaled`]; see [`crate::train::normalize`]).
#[derive(Clone, Copy, Debug)]
pub struct Samples<'a> {
    data: Data<'a>,
    dim: usize,
    scale: f32,
}

impl<'a> Samples<'a> {
    /// Byte samples, scaled by 1/255 into [0, 1] (images); checks that
    /// `data` holds whole samples.
    ///
    /// # Errors
    /// [`Error::Shape`] if `dim` is 0 or does not divide the length.
    pub fn u8(data: &'a [u8], dim: usize) -> Result<Samples<'a>> {
        check_len(data.len(), dim)?;
        Ok(Samples {
            data: Data::U8(data),
            dim,
            scale: 1.0,
        })
    }

    /// Float samples used as they are; checks that `data` holds whole
    /// samples of finite values.
    ///
    /// # Errors
    /// [`Error::Shape`] if `dim` does not divide the length;
    /// [`Error::NonFinite`] naming the first NaN or infinite value.
    pub fn f32(data: &'a [f32], dim: usize) -> Result<Samples<'a>> {
        check_len(data.len(), dim)?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                step: 0,
                tensor: format!(
                    "the data: sample {}, feature {} is {}",
                    i / dim,
                    i % dim,
                    data[i]
                ),
            });
        }
        Ok(Samples {
            data: Data::F32(data),
            dim,
            scale: 1.0,
        })
    }

    /// The same samples multiplied by `scale` when gathered.
    ///
    /// # Errors
    /// [`Error::Config`] unless `scale` is finite and positive.
    pub fn scaled(self, scale: f32) -> Result<Samples<'a>> {
        check_scale(scale)?;
        Ok(Samples { scale, ..self })
    }

    /// The first value outside [0, 1] as gathered (scaled), as
    /// `(sample, feature, value)`; bytes scaled by 1 never are.
    pub fn outside_unit(&self) -> Option<(usize, usize, f32)> {
        let inside = |v: f32| (0.0..=1.0).contains(&v);
        match self.data {
            Data::U8(d) if self.scale > 1.0 => d
                .iter()
                .position(|&v| !inside(f32::from(v) / 255.0 * self.scale))
                .map(|i| (i, f32::from(d[i]) / 255.0 * self.scale)),
            Data::U8(_) => None,
            Data::F32(d) if self.scale == 1.0 => {
                crate::nn::first_outside_unit(d).map(|i| (i, d[i]))
            }
            Data::F32(d) => d
                .iter()
                .position(|&v| !inside(v * self.scale))
                .map(|i| (i, d[i] * self.scale)),
        }
        .map(|(i, v)| (i / self.dim, i % self.dim, v))
    }

    /// The input scale (1 unless set with [`Samples::scaled`]).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Features per sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self.data {
            Data::U8(d) => d.len() / self.dim,
            Data::F32(d) => d.len() / self.dim,
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn row_into(&self, i: usize, out: &mut [f32]) {
        let dim = self.dim;
        match self.data {
            Data::U8(d) => crate::kernels::u8_to_unit(&d[i * dim..(i + 1) * dim], out),
            Data::F32(d) => out.copy_from_slice(&d[i * dim..(i + 1) * dim]),
        }
        if self.scale != 1.0 {
            out.iter_mut().for_each(|v| *v *= self.scale);
        }
    }

    /// Writes the samples `idx` (as f32, bytes scaled to [0, 1], then
    /// multiplied by the input scale) into `out: (idx.len(), dim)`.
    ///
    /// # Panics
    /// If an index is out of range or `out` has the wrong length.
    pub fn gather(&self, idx: &[u32], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            idx.len() * self.dim,
            "Samples::gather: output length"
        );
        for (row, &i) in out.chunks_exact_mut(self.dim).zip(idx) {
            self.row_into(i as usize, row);
        }
    }

    /// Writes the samples `start..start + out.len() / dim` as [`Samples::gather`] does.
    ///
    /// # Panics
    /// If the range runs past the end or `out` is not whole samples.
    pub fn gather_range(&self, start: usize, out: &mut [f32]) {
        assert!(
            out.len().is_multiple_of(self.dim),
            "Samples::gather_range: output length"
        );
        for (k, row) in out.chunks_exact_mut(self.dim).enumerate() {
            self.row_into(start + k, row);
        }
    }

    /// The first `n` samples (or all, if fewer).
    pub fn head(&self, n: usize) -> Samples<'a> {
        let n = n.min(self.len());
        let data = match self.data {
            Data::U8(d) => Data::U8(&d[..n * self.dim]),
            Data::F32(d) => Data::F32(&d[..n * self.dim]),
        };
        Samples { data, ..*self }
    }
}

/// Checks an input scale: finite and positive.
///
/// # Errors
/// [`Error::Config`] naming the value otherwise.
pub fn check_scale(scale: f32) -> Result<()> {
    check_scale_named(scale, "input_scale")
}

/// [`check_scale`] with the name of the field or option that holds it.
pub(crate) fn check_scale_named(scale: f32, field: &str) -> Result<()> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("{scale} is not a finite positive number"),
        ))
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
