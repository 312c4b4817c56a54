//! AVX-512F entry points of the sparse products (16 lanes).

use crate::kernels::elementwise::avx512::Avx512;

super::body::isa_entry_points!("avx512f", Avx512::new());

/// See [`super::transpose`]; the caller has run the shape checks and made
/// sure that `16·src.ld` fits an `i32`.
#[target_feature(enable = "avx512f")]
pub(super) fn transpose(
    src: crate::kernels::MatRef<'_, f32>,
    dst: crate::kernels::MatMut<'_, f32>,
) {
    use std::arch::x86_64::*;
    const L: usize = 16;
    let full = src.rows - src.rows % L;
    // Register arithmetic, safe under the enabled target feature.
    let offsets: __m512i = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(src.ld as i32),
    );
    for r0 in (0..full).step_by(L) {
        for c in 0..src.cols {
            // Column c of rows r0..r0+L: `col[r·ld]` for r < L.
            let col = &src.data[r0 * src.ld + c..(r0 + L - 1) * src.ld + c + 1];
            let out = &mut dst.data[c * dst.ld + r0..c * dst.ld + r0 + L];
            // SAFETY: `_mm512_i32gather_ps` reads `col[r·ld]` for r < L, the first and
            // last elements of `col` and those between; `out` holds L floats.
            unsafe {
                let v = _mm512_i32gather_ps::<4>(offsets, col.as_ptr());
                _mm512_storeu_ps(out.as_mut_ptr(), v);
            }
        }
    }
    for r in full..src.rows {
        for c in 0..src.cols {
            dst.data[c * dst.ld + r] = src.data[r * src.ld + c];
        }
    }
}
