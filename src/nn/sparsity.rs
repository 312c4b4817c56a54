//! Sparsity penalties on a layer's activations `h: (batch, units)`.

use crate::kernels::Real;
use rayon::prelude::*;

/// Lower and upper clamp of ρ̂ in the KL penalty: ρ̂ ∈ [KL_CLAMP, 1 − KL_CLAMP].
pub const KL_CLAMP: f64 = 1e-6;

/// L1 activity penalty (Keras `activity_regularizer=l1(λ)`, averaged over the
/// batch): value `λ/B · Σ_{i,j} |h_ij|`; if `dh` is given, `dh_ij += λ/B·sign(h_ij)`.
pub fn l1_penalty<T: Real>(h: &[T], dh: Option<&mut [T]>, batch: usize, lambda: f64) -> f64 {
    let scale = lambda / batch as f64;
    T::l1(h, dh, T::from_f64(scale)) * scale
}

/// KL-divergence sparsity penalty (UFLDL).
///
/// `h` is `(batch, channels, positions)`: a dense layer has one position per
/// unit-channel; a convolutional feature map has `h·w` positions per channel,
/// and then ρ̂ is taken per channel, over the batch and all positions:
/// ρ̂_c = 1/(B·P) Σ_{i,p} h\[i,c,p\], clamped to \[KL_CLAMP, 1 − KL_CLAMP\]. Value
/// `β·Σ_c [ρ·ln(ρ/ρ̂_c) + (1−ρ)·ln((1−ρ)/(1−ρ̂_c))]`. The per-channel gradient
/// `g_c = β/(B·P)·(−ρ/ρ̂_c + (1−ρ)/(1−ρ̂_c))` (zero for a clamped channel) is
/// written into `g`, and added to every `dh[i,c,p]` if `dh` is given.
/// `rho_hat` and `g` have `channels` entries; `rho_hat` keeps ρ̂.
#[allow(clippy::too_many_arguments)]
pub fn kl_penalty<T: Real>(
    h: &[T],
    dh: Option<&mut [T]>,
    batch: usize,
    channels: usize,
    positions: usize,
    rho: f64,
    beta: f64,
    rho_hat: &mut [T],
    g: &mut [T],
) -> f64 {
    kl_sums(h, channels, positions, rho_hat);
    let value = kl_from_sums(rho_hat, batch * positions, rho, beta, g);
    if let Some(dh) = dh {
        add_per_channel(dh, channels, positions, g);
    }
    value
}

/// The first half of [`kl_penalty`]: `sums[c] = Σ_{i,p} h[i,c,p]`, in a
/// fixed order (sums of parts of a batch are added part by part).
pub fn kl_sums<T: Real>(h: &[T], channels: usize, positions: usize, sums: &mut [T]) {
    if positions == 1 {
        T::col_sum(h, channels, sums);
    } else {
        sums.iter_mut().for_each(|r| *r = T::ZERO);
        for sample in h.chunks_exact(channels * positions) {
            for (r, plane) in sums.iter_mut().zip(sample.chunks_exact(positions)) {
                *r += plane.iter().fold(T::ZERO, |a, &v| a + v);
            }
        }
    }
}

/// The second half of [`kl_penalty`]: from the sums over `n` = B·P values
/// per channel, ρ̂ (written over `sums`), the per-channel gradient `g` and
/// the value β·Σ_c KL(ρ‖ρ̂_c).
pub fn kl_from_sums<T: Real>(sums: &mut [T], n: usize, rho: f64, beta: f64, g: &mut [T]) -> f64 {
    let inv_n = 1.0 / n as f64;
    let mut value = 0.0;
    for (j, r) in sums.iter_mut().enumerate() {
        let raw = r.to_f64() * inv_n;
        let clamped = raw.clamp(KL_CLAMP, 1.0 - KL_CLAMP);
        *r = T::from_f64(raw);
        value += rho * (rho / clamped).ln() + (1.0 - rho) * ((1.0 - rho) / (1.0 - clamped)).ln();
        g[j] = if raw == clamped {
            T::from_f64(beta * inv_n * (-rho / clamped + (1.0 - rho) / (1.0 - clamped)))
        } else {
            T::ZERO
        };
    }
    beta * value
}

/// `dh[i,c,p] += g[c]` for `dh: (batch, channels, positions)`.
pub fn add_per_channel<T: Real>(dh: &mut [T], channels: usize, positions: usize, g: &[T]) {
    if positions == 1 {
        T::bias_add(dh, channels, g);
        return;
    }
    for sample in dh.chunks_exact_mut(channels * positions) {
        for (plane, &gc) in sample.chunks_exact_mut(positions).zip(g) {
            plane.iter_mut().for_each(|v| *v += gc);
        }
    }
}

/// Largest first; NaN compares equal to everything.
fn desc<T: Real>(a: &T, b: &T) -> std::cmp::Ordering {
    b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal)
}

/// The value at rank `k` (1-based, largest first) of `vals`, and how many of
/// the values equal to it are kept so that exactly `k` survive. Uses
/// `scratch` (same length as `vals`).
pub(crate) fn kth_largest<T: Real>(vals: &[T], k: usize, scratch: &mut [T]) -> (T, usize) {
    scratch.copy_from_slice(vals);
    let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, desc);
    let t = *kth;
    let greater = vals.iter().filter(|&&v| v > t).count();
    (t, k - greater)
}

/// Reorders `vals` so that its first `k` values (`k ≤ vals.len()`) are its
/// `k` largest, in no particular order.
pub(crate) fn largest_first<T: Real>(vals: &mut [T], k: usize) {
    if k > 0 && k < vals.len() {
        vals.select_nth_unstable_by(k - 1, desc);
    }
}

/// Keeps the values of `vals` above `t` and the first `ties` values equal
/// to `t`, and zeroes the rest: [`keep_largest`]'s selection once its
/// threshold is known (a part of a batch keeps its share of the ties).
pub(crate) fn keep_above<T: Real>(vals: &mut [T], t: T, mut ties: usize) {
    for v in vals.iter_mut() {
        if *v > t {
            continue;
        }
        if *v == t && ties > 0 {
            ties -= 1;
            continue;
        }
        *v = T::ZERO;
    }
}

/// Zeroes all but the `k` largest values of `vals` (ties at the threshold:
/// the earliest are kept).
pub(crate) fn keep_largest<T: Real>(vals: &mut [T], k: usize, scratch: &mut [T]) {
    if k >= vals.len() {
        return;
    }
    let (t, ties) = kth_largest(vals, k, &mut scratch[..vals.len()]);
    keep_above(vals, t, ties);
}

/// TopK: in each row of `h: (batch, units)` keeps the `k` largest values and
/// zeroes the rest (ties at the threshold: the earliest are kept; NaN ranks
/// above every number, so it is kept and reaches the loss). `scratch` holds
/// at least `batch·k` values. Rows run in parallel; each row's result depends
/// on that row alone.
pub fn topk_rows<T: Real>(h: &mut [T], units: usize, k: usize, scratch: &mut [T]) {
    topk_rows_indexed(h, units, k, scratch, None);
}

/// [`topk_rows`], also recording the kept entries of row i, in increasing
/// column order, as `idx[i·k..(i+1)·k]` (columns) and `val[…]` (values) when
/// `code = Some((idx, val))`; both hold `batch·k` entries.
///
/// The selection keeps a min-heap of the k largest keys seen so far (in
/// `scratch`, k per row): one comparison per value with the heap's minimum,
/// and k·(1 + ln(units/k)) replacements on average for values in random
/// order. The minimum at the end is the threshold, and the heap tells how
/// many values equal to it are kept.
///
/// # Panics
/// If `units` is 0, `k > units`, or a buffer is too short.
pub fn topk_rows_indexed<T: Real>(
    h: &mut [T],
    units: usize,
    k: usize,
    scratch: &mut [T],
    code: Option<(&mut [u32], &mut [T])>,
) {
    assert!(units > 0 && k <= units, "topk: k = {k} of {units} units");
    let rows = h.len() / units;
    assert!(scratch.len() >= rows * k, "topk: scratch too short");
    if k == 0 {
        h.iter_mut().for_each(|v| *v = T::ZERO);
        return;
    }
    // At least ~32 K values per task, so small layers do not pay for forks.
    let min_rows = (1 << 15) / units + 1;
    let heaps = scratch[..rows * k].par_chunks_mut(k);
    match code {
        None => h
            .par_chunks_mut(units)
            .zip(heaps)
            .with_min_len(crate::parallel::min_len(min_rows))
            .for_each(|(row, heap)| keep_k(row, heap, None)),
        Some((idx, val)) => {
            assert!(idx.len() == rows * k && val.len() == rows * k);
            h.par_chunks_mut(units)
                .zip(heaps)
                .zip(idx.par_chunks_mut(k).zip(val.par_chunks_mut(k)))
                .with_min_len(crate::parallel::min_len(min_rows))
                .for_each(|((row, heap), (i, v))| keep_k(row, heap, Some((i, v))))
        }
    }
}

/// The ranking key of a value: NaN above +∞, −0 equal to +0.
#[inline(always)]
fn rank_key<T: Real>(v: T) -> T {
    if v.is_nan() {
        T::from_f64(f64::INFINITY)
    } else {
        v
    }
}

/// Keeps the `heap.len()` largest values of `row` (earliest first among
/// equals) and zeroes the rest; records the kept ones in `code`.
fn keep_k<T: Real>(row: &mut [T], heap: &mut [T], code: Option<(&mut [u32], &mut [T])>) {
    let k = heap.len();
    for (slot, &v) in heap.iter_mut().zip(row.iter()) {
        *slot = rank_key(v);
    }
    for i in (0..k / 2).rev() {
        sift_down(heap, i);
    }
    // Most blocks hold nothing above the heap's minimum once it has filled:
    // one vectorizable test of the whole block lets it be skipped.
    let mut blocks = row[k..].chunks_exact(16);
    for block in &mut blocks {
        let min = heap[0];
        if block
            .iter()
            .fold(false, |hit, &v| hit | (rank_key(v) > min))
        {
            block.iter().for_each(|&v| offer(heap, v));
        }
    }
    blocks.remainder().iter().for_each(|&v| offer(heap, v));
    let t = heap[0];
    let mut ties = heap.iter().filter(|&&v| v == t).count();
    let mut code = code;
    let mut n = 0;
    for (b, block) in row.chunks_mut(16).enumerate() {
        // A block with nothing at or above the threshold is zeroed whole.
        if !block.iter().fold(false, |hit, &v| hit | (rank_key(v) >= t)) {
            block.fill(T::ZERO);
            continue;
        }
        for (c, v) in block.iter_mut().enumerate() {
            let key = rank_key(*v);
            if key == t && ties > 0 {
                ties -= 1;
            } else if key <= t {
                *v = T::ZERO;
                continue;
            }
            if let Some((idx, val)) = code.as_mut() {
                idx[n] = (b * 16 + c) as u32;
                val[n] = *v;
            }
            n += 1;
        }
    }
    debug_assert_eq!(n, k);
}

/// Puts `v` in the min-heap of the largest keys if it beats the minimum.
#[inline(always)]
fn offer<T: Real>(heap: &mut [T], v: T) {
    let key = rank_key(v);
    if key > heap[0] {
        heap[0] = key;
        sift_down(heap, 0);
    }
}

/// Restores the min-heap order below `i`.
#[inline(always)]
fn sift_down<T: Real>(heap: &mut [T], mut i: usize) {
    let n = heap.len();
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < n && heap[l] < heap[m] {
            m = l;
        }
        if r < n && heap[r] < heap[m] {
            m = r;
        }
        if m == i {
            return;
        }
        heap.swap(i, m);
        i = m;
    }
}

/// BatchTopK: keeps the `k·batch` largest values of the whole `h` and zeroes
/// the rest. `scratch` holds at least `h.len()` values.
pub fn topk_batch<T: Real>(h: &mut [T], k_total: usize, scratch: &mut [T]) {
    keep_largest(h, k_total, scratch);
}

/// The backward pass of a top-k selection: the gradient of a value that was
/// zeroed is zero (`dh ← dh ⊙ [h ≠ 0]`; a kept value that is exactly 0 gets
/// none either, as ReLU's derivative at 0).
pub fn topk_backward<T: Real>(h: &[T], dh: &mut [T]) {
    for (d, &v) in dh.iter_mut().zip(h) {
        if v == T::ZERO {
            *d = T::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_keeps_exactly_k_per_row_with_ties() {
        let mut h = vec![
            0.5f32, 0.1, 0.9, 0.5, 0.5, 0.2, /* row 2 */ -1.0, -2.0, -3.0, 4.0, -5.0, -6.0,
        ];
        let mut s = vec![0.0; 12];
        topk_rows(&mut h, 6, 2, &mut s);
        assert_eq!(&h[..6], &[0.5, 0.0, 0.9, 0.0, 0.0, 0.0]);
        assert_eq!(&h[6..], &[-1.0, 0.0, 0.0, 4.0, 0.0, 0.0]);
        let mut h = vec![3.0f64, 1.0, 2.0, 5.0, 4.0, 0.5];
        topk_batch(
            &mut h,
            3,
            &mut s.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        assert_eq!(h, vec![3.0, 0.0, 0.0, 5.0, 4.0, 0.0]);
    }

    /// The heap selection keeps what a full selection (`keep_largest`, the
    /// BatchTopK path) keeps, row by row, on rows full of ties, and records
    /// the kept entries in column order.
    #[test]
    fn heap_selection_matches_full_selection() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (units, k, levels) in [
            (40, 7, 5),
            (33, 1, 3),
            (64, 64, 4),
            (100, 20, 1000),
            (9, 8, 2),
        ] {
            let rows = 6;
            let h: Vec<f64> = (0..rows * units)
                .map(|_| (next() % levels) as f64 - (levels / 2) as f64)
                .collect();
            let mut want = h.clone();
            let mut s = vec![0.0; units];
            for row in want.chunks_mut(units) {
                keep_largest(row, k, &mut s);
            }
            let mut got = h.clone();
            let (mut idx, mut val) = (vec![0u32; rows * k], vec![0.0; rows * k]);
            let mut heap = vec![0.0; rows * k];
            topk_rows_indexed(&mut got, units, k, &mut heap, Some((&mut idx, &mut val)));
            assert_eq!(got, want, "units {units} k {k}");
            for (r, (ri, rv)) in idx.chunks(k).zip(val.chunks(k)).enumerate() {
                assert!(ri.windows(2).all(|w| w[0] < w[1]));
                for (&c, &v) in ri.iter().zip(rv) {
                    assert_eq!(v, h[r * units + c as usize]);
                }
                let kept_nonzero = got[r * units..(r + 1) * units]
                    .iter()
                    .filter(|v| **v != 0.0)
                    .count();
                assert_eq!(rv.iter().filter(|v| **v != 0.0).count(), kept_nonzero);
            }
        }
    }

    #[test]
    fn topk_keeps_nan() {
        let mut h = vec![1.0f32, f32::NAN, 3.0, 2.0];
        topk_rows(&mut h, 4, 2, &mut [0.0; 2]);
        assert!(h[1].is_nan() && h[2] == 3.0 && h[0] == 0.0 && h[3] == 0.0);
    }
}
