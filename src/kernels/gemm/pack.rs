//! Packing operand blocks into the contiguous panels the microkernels read.
//!
//! Both operands use one layout. A block of `rows × depth` elements of a
//! matrix X is cut into panels of W rows; panel q holds
//! `x̃[q·W·depth + p·W + i] = X(q·W + i, p)` for p < depth, i < W, with rows
//! past the end of the block filled with zeros. A block of op(A) (MC×KC) is
//! packed with W = MR; a block of op(B) (KC×NC) is packed as op(B)ᵀ with W = NR,
//! so that each step p of the microkernel reads MR elements of A and NR of B
//! from consecutive addresses.

/// A strided read-only view: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided<'a> {
    /// Backing slice (starts at element (0, 0)).
    pub data: &'a [f32],
    /// Step between rows.
    pub rs: usize,
    /// Step between columns.
    pub cs: usize,
}

impl<'a> Strided<'a> {
    /// The view starting at element (i, j). The caller keeps (i, j) inside the
    /// matrix, so the offset is within the slice.
    pub fn at(self, i: usize, j: usize) -> Strided<'a> {
        Strided {
            data: &self.data[i * self.rs + j * self.cs..],
            ..self
        }
    }

    /// The transposed view: element (i, j) of the result is (j, i) of `self`.
    pub fn t(self) -> Strided<'a> {
        Strided {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// Zeros read in place of the rows past the end of a block, one run of
/// depth at a time.
static ZEROS: [f32; 1024] = [0.0; 1024];

/// Packs `rows × depth` of `x` into W-row panels (see the module doc), for
/// any depth: the direct path packs the whole depth of a product at once.
///
/// # Panics
/// If `dst` has fewer than `⌈rows/W⌉·W·depth` elements or the view does not
/// hold the block.
#[inline(always)]
pub(crate) fn panels<const W: usize>(dst: &mut [f32], x: Strided<'_>, rows: usize, depth: usize) {
    let n_panels = rows.div_ceil(W);
    let dst = &mut dst[..n_panels * W * depth];
    if x.rs == 1 {
        // The W rows at a fixed p are adjacent: copy a run per p. The steps
        // go 8 at a time across all panels, so that the source (a row of
        // op(B) per p) is read as 8 sequential streams, where one panel
        // at a time read one run from each of `depth` rows, a page apart for
        // a 1024-wide matrix. A shallow block (depth ≤ 64, the k = 32
        // weight gradients) stays in L1 either way and is copied panel by
        // panel, measured 1–2 % faster there.
        let per_pass = if depth <= 64 { depth } else { 8 };
        for p0 in (0..depth).step_by(per_pass) {
            let steps = p0..(p0 + per_pass).min(depth);
            for (q, panel) in dst.chunks_exact_mut(W * depth).enumerate() {
                let r0 = q * W;
                let w = W.min(rows - r0);
                for p in steps.clone() {
                    let out = &mut panel[p * W..(p + 1) * W];
                    let src = &x.data[r0 + p * x.cs..];
                    if w == W {
                        out.copy_from_slice(&src[..W]);
                    } else {
                        out[..w].copy_from_slice(&src[..w]);
                        out[w..].fill(0.0);
                    }
                }
            }
        }
        return;
    }
    for (q, panel) in dst.chunks_exact_mut(W * depth).enumerate() {
        let r0 = q * W;
        let w = W.min(rows - r0);
        if x.cs == 1 {
            // Each row runs along p: read W rows side by side, write
            // interleaved, in runs of at most ZEROS.len() steps (the rows
            // past the end read a run of zeros).
            for p0 in (0..depth).step_by(ZEROS.len()) {
                let run = ZEROS.len().min(depth - p0);
                let src: [&[f32]; W] = std::array::from_fn(|i| {
                    if i < w {
                        &x.data[(r0 + i) * x.rs + p0..][..run]
                    } else {
                        &ZEROS[..run]
                    }
                });
                let out = &mut panel[p0 * W..(p0 + run) * W];
                for (p, out) in out.chunks_exact_mut(W).enumerate() {
                    for i in 0..W {
                        out[i] = src[i][p];
                    }
                }
            }
        } else {
            for (p, out) in panel.chunks_exact_mut(W).enumerate() {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = if i < w {
                        x.data[(r0 + i) * x.rs + p * x.cs]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<const W: usize>(rows: usize, depth: usize, transposed: bool) {
        // X(i, p) = 1000·i + p + 1, stored row-major (rs = depth + 3) or
        // column-major (cs = rows + 2).
        let val = |i: usize, p: usize| (1000 * i + p + 1) as f32;
        let (data, view) = if transposed {
            let ld = rows + 2;
            let mut d = vec![f32::NAN; depth * ld];
            for i in 0..rows {
                for p in 0..depth {
                    d[p * ld + i] = val(i, p);
                }
            }
            (d, (1, ld))
        } else {
            let ld = depth + 3;
            let mut d = vec![f32::NAN; rows * ld];
            for i in 0..rows {
                for p in 0..depth {
                    d[i * ld + p] = val(i, p);
                }
            }
            (d, (ld, 1))
        };
        let x = Strided {
            data: &data,
            rs: view.0,
            cs: view.1,
        };
        let mut dst = vec![f32::NAN; rows.div_ceil(W) * W * depth + 5];
        panels::<W>(&mut dst, x, rows, depth);
        for q in 0..rows.div_ceil(W) {
            for p in 0..depth {
                for i in 0..W {
                    let want = if q * W + i < rows {
                        val(q * W + i, p)
                    } else {
                        0.0
                    };
                    assert_eq!(dst[q * W * depth + p * W + i], want, "q {q} p {p} i {i}");
                }
            }
        }
        assert!(
            dst[rows.div_ceil(W) * W * depth..]
                .iter()
                .all(|v| v.is_nan())
        );
    }

    #[test]
    fn panels_match_definition() {
        for rows in [1, 3, 4, 5, 13, 14, 15, 29] {
            for depth in [1, 2, 7, 33] {
                for tr in [false, true] {
                    check::<4>(rows, depth, tr);
                    check::<14>(rows, depth, tr);
                }
            }
        }
    }

    /// Depths past the 1024 floats of zeros that pad the last panel (the
    /// whole depth of a product is packed at once on the direct path).
    #[test]
    fn panels_of_any_depth() {
        for rows in [3, 14, 29] {
            for depth in [1023, 1024, 1025, 2000, 3072, 16384] {
                for tr in [false, true] {
                    check::<4>(rows, depth, tr);
                    check::<32>(rows, depth, tr);
                }
            }
        }
    }

    #[test]
    fn general_strides() {
        // rs = 2, cs = 7: neither unit stride.
        let data: Vec<f32> = (0..200).map(|v| v as f32).collect();
        let x = Strided {
            data: &data,
            rs: 2,
            cs: 7,
        };
        let mut dst = vec![f32::NAN; 2 * 4 * 3];
        panels::<4>(&mut dst, x, 5, 3);
        for p in 0..3 {
            for i in 0..8 {
                let want = if i < 5 { (2 * i + 7 * p) as f32 } else { 0.0 };
                assert_eq!(dst[(i / 4) * 12 + p * 4 + i % 4], want);
            }
        }
    }
}
