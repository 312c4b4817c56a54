//! Input-corruption noise from 16 interleaved xoshiro128++ streams: the
//! generator state ([`NoiseStreams`]) and the SIMD bodies of
//! [`super::gaussian_noise`], [`super::mask_noise`] and [`super::box_muller`].
//!
//! Element i of a call is drawn from stream i mod 16, so a 16-lane vector
//! holds one step of every stream and an 8-lane path runs the streams as two
//! halves; every path consumes the same words in the same roles, and the
//! scalar twin (`scalar.rs`) steps the streams one at a time. The uniforms
//! are therefore identical, bit for bit, on every path.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::normal;
use super::simd::Simd;
use crate::rng::Rng;

/// Number of interleaved streams.
pub const STREAMS: usize = 16;

/// The state of 16 xoshiro128++ generators (Blackman & Vigna): word j of
/// stream k is `words[j·16 + k]`.
///
/// A stream steps as
/// `out = rotl(s₀ + s₃, 7) + s₀; t = s₁ << 9; s₂ ^= s₀; s₃ ^= s₁; s₁ ^= s₂;
/// s₀ ^= s₃; s₂ ^= t; s₃ = rotl(s₃, 11)`, and its uniform is the top 24
/// bits of `out`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoiseStreams {
    pub(crate) words: [u32; 4 * STREAMS],
}

impl NoiseStreams {
    /// Streams seeded from 32 draws of `rng` (which advances by exactly
    /// that). A stream whose four words are all zero, a state xoshiro cannot
    /// leave, gets a one in its first word.
    pub fn from_rng(rng: &mut Rng) -> NoiseStreams {
        let mut words = [0u32; 4 * STREAMS];
        for pair in words.chunks_exact_mut(2) {
            let w = rng.next_u64();
            pair[0] = w as u32;
            pair[1] = (w >> 32) as u32;
        }
        NoiseStreams::from_words(words)
    }

    /// Streams with the given words (`words[j·16 + k]` is word j of stream k;
    /// an all-zero stream is fixed as in [`NoiseStreams::from_rng`]).
    pub fn from_words(mut words: [u32; 4 * STREAMS]) -> NoiseStreams {
        for k in 0..STREAMS {
            if (0..4).all(|j| words[j * STREAMS + k] == 0) {
                words[k] = 1;
            }
        }
        NoiseStreams { words }
    }

    /// The state words (`words[j·16 + k]` is word j of stream k).
    pub fn words(&self) -> &[u32; 4 * STREAMS] {
        &self.words
    }

    /// The next 32-bit output of stream `k`.
    ///
    /// # Panics
    /// If `k ≥ 16`.
    #[inline(always)]
    pub fn next_u32(&mut self, k: usize) -> u32 {
        assert!(k < STREAMS, "NoiseStreams: no stream {k}");
        let w = &mut self.words;
        let (i0, i3) = (k, 3 * STREAMS + k);
        let out = w[i0].wrapping_add(w[i3]).rotate_left(7).wrapping_add(w[i0]);
        step(w, k);
        out
    }

    /// Advances every stream by `steps` outputs, as if each had drawn them
    /// (one xoshiro128++ step per output; the state words lie stream by
    /// stream in a row, so the 16 streams step side by side).
    pub fn skip(&mut self, steps: u64) {
        for _ in 0..steps {
            for k in 0..STREAMS {
                step(&mut self.words, k);
            }
        }
    }
}

/// One xoshiro128++ state transition of stream `k` (its words lie at `k`,
/// `16 + k`, `32 + k`, `48 + k`).
#[inline(always)]
fn step(w: &mut [u32; 4 * STREAMS], k: usize) {
    let (i0, i1, i2, i3) = (k, STREAMS + k, 2 * STREAMS + k, 3 * STREAMS + k);
    let t = w[i1] << 9;
    w[i2] ^= w[i0];
    w[i3] ^= w[i1];
    w[i1] ^= w[i2];
    w[i0] ^= w[i3];
    w[i2] ^= t;
    w[i3] = w[i3].rotate_left(11);
}

/// The masking threshold: a word zeroes its element iff `word >> 8 <
/// mask_threshold(p)`, so the probability is ⌈p·2²⁴⌉/2²⁴, within 2⁻²⁴ of
/// `p` (0 for p ≤ 0, 1 for p ≥ 1; NaN counts as 0).
pub(crate) fn mask_threshold(p: f64) -> u32 {
    let t = (p * (1u32 << 24) as f64).ceil();
    if t >= (1u32 << 24) as f64 {
        1 << 24
    } else if t > 0.0 {
        t as u32
    } else {
        0
    }
}

/// How many vectors one step of the 16 streams fills: 1 (16 lanes), 2 (8
/// lanes) or 4 (4 lanes, NEON and SIMD128).
#[inline(always)]
fn groups<S: Simd>() -> usize {
    debug_assert!(S::LANES * (STREAMS / S::LANES) == STREAMS && S::LANES >= 4);
    STREAMS / S::LANES
}

/// The state words of the streams of group `h` (streams h·LANES ..).
#[inline(always)]
fn load<S: Simd>(s: S, st: &NoiseStreams, h: usize) -> [S::U; 4] {
    let w = &st.words[h * S::LANES..];
    [
        s.u_load(w),
        s.u_load(&w[STREAMS..]),
        s.u_load(&w[2 * STREAMS..]),
        s.u_load(&w[3 * STREAMS..]),
    ]
}

#[inline(always)]
fn store<S: Simd>(s: S, g: &[S::U; 4], st: &mut NoiseStreams, h: usize) {
    for (j, &w) in g.iter().enumerate() {
        s.u_store(&mut st.words[j * STREAMS + h * S::LANES..], w);
    }
}

/// Runs `step(state, h)` for each group of the streams once per block of
/// `block` elements until `n` are covered, the state held in registers (the
/// groups as separate variables, so nothing spills to a loop over memory).
#[inline(always)]
fn run_blocks<S: Simd>(
    s: S,
    st: &mut NoiseStreams,
    n: usize,
    block: usize,
    mut step: impl FnMut(&mut [S::U; 4], usize, usize),
) {
    // Groups past `groups` are never stepped nor stored; the count is a
    // constant of `S`, so those branches vanish.
    let groups = groups::<S>();
    let mut g0 = load(s, st, 0);
    let mut g1 = if groups > 1 { load(s, st, 1) } else { g0 };
    let mut g2 = if groups > 2 { load(s, st, 2) } else { g0 };
    let mut g3 = if groups > 2 { load(s, st, 3) } else { g0 };
    let mut blk = 0;
    while blk < n {
        step(&mut g0, blk, 0);
        if groups > 1 {
            step(&mut g1, blk, 1);
        }
        if groups > 2 {
            step(&mut g2, blk, 2);
            step(&mut g3, blk, 3);
        }
        blk += block;
    }
    store(s, &g0, st, 0);
    if groups > 1 {
        store(s, &g1, st, 1);
    }
    if groups > 2 {
        store(s, &g2, st, 2);
        store(s, &g3, st, 3);
    }
}

/// One xoshiro128++ step of every lane (see [`NoiseStreams`]).
#[inline(always)]
fn next<S: Simd>(s: S, w: &mut [S::U; 4]) -> S::U {
    let out = s.u_add(s.u_rotl::<7, 25>(s.u_add(w[0], w[3])), w[0]);
    let t = s.u_shl::<9>(w[1]);
    w[2] = s.u_xor(w[2], w[0]);
    w[3] = s.u_xor(w[3], w[1]);
    w[1] = s.u_xor(w[1], w[2]);
    w[0] = s.u_xor(w[0], w[3]);
    w[2] = s.u_xor(w[2], t);
    w[3] = s.u_rotl::<11, 21>(w[3]);
    out
}

/// Runs `f(i, len)` for the run of `LANES` elements at `i` of an `n`-element
/// slice: `len` = `LANES` for a whole vector, fewer at the end, and nothing
/// when `i ≥ n`.
#[inline(always)]
fn lanes_at<S: Simd>(s: S, n: usize, i: usize, mut f: impl FnMut(Option<S::T>)) {
    if i + S::LANES <= n {
        f(None);
    } else if i < n {
        f(Some(s.tail(n - i)));
    }
}

/// See [`super::gaussian_noise`]: blocks of 32 elements; stream k draws u₁
/// then u₂ and its pair goes to elements k and 16 + k of the block.
#[inline(always)]
pub(crate) fn gaussian_noise<S: Simd>(
    s: S,
    st: &mut NoiseStreams,
    x: &[f32],
    out: &mut [f32],
    std: f32,
) {
    assert_eq!(x.len(), out.len(), "gaussian_noise: length mismatch");
    let n = x.len();
    let (sd, zero, one) = (s.splat(std), s.zero(), s.splat(1.0));
    run_blocks(
        s,
        st,
        n,
        2 * STREAMS,
        #[inline(always)]
        |g, blk, h| {
            let a = next(s, g);
            let b = next(s, g);
            let (z1, z2) = normal::box_muller(s, a, b);
            for (off, z) in [(0, z1), (STREAMS, z2)] {
                let i = blk + off + h * S::LANES;
                lanes_at(
                    s,
                    n,
                    i,
                    #[inline(always)]
                    |t| {
                        // max(v, 0) is 0 for a NaN v, as the twin's f32::max.
                        let v = s.add(s.ld(x, i, t), s.mul(sd, z));
                        s.st(out, i, t, s.min(s.max(v, zero), one));
                    },
                );
            }
        },
    );
}

/// See [`super::mask_noise`]: blocks of 16 elements, one word per stream.
#[inline(always)]
pub(crate) fn mask_noise<S: Simd>(s: S, st: &mut NoiseStreams, x: &[f32], out: &mut [f32], p: f64) {
    assert_eq!(x.len(), out.len(), "mask_noise: length mismatch");
    let n = x.len();
    let (limit, zero) = (s.splat(mask_threshold(p) as f32), s.zero());
    run_blocks(
        s,
        st,
        n,
        STREAMS,
        #[inline(always)]
        |g, blk, h| {
            let k = s.u_to_f32(s.u_shr::<8>(next(s, g)));
            let i = blk + h * S::LANES;
            lanes_at(
                s,
                n,
                i,
                #[inline(always)]
                |t| {
                    let v = s.select(s.lt(k, limit), zero, s.ld(x, i, t));
                    s.st(out, i, t, v);
                },
            );
        },
    );
}

/// See [`super::box_muller`].
#[inline(always)]
pub(crate) fn box_muller<S: Simd>(s: S, a: &[u32], b: &[u32], z1: &mut [f32], z2: &mut [f32]) {
    let n = a.len();
    assert!(
        b.len() == n && z1.len() == n && z2.len() == n,
        "box_muller: length mismatch"
    );
    let mut i = 0;
    while i + S::LANES <= n {
        let (c, sn) = normal::box_muller(s, s.u_load(&a[i..]), s.u_load(&b[i..]));
        s.store(&mut z1[i..], c);
        s.store(&mut z2[i..], sn);
        i += S::LANES;
    }
    if i < n {
        // The tail through a full vector on the stack.
        let (mut ta, mut tb) = ([0u32; 16], [0u32; 16]);
        ta[..n - i].copy_from_slice(&a[i..]);
        tb[..n - i].copy_from_slice(&b[i..]);
        let (c, sn) = normal::box_muller(s, s.u_load(&ta), s.u_load(&tb));
        let t = s.tail(n - i);
        s.store_tail(&mut z1[i..], t, c);
        s.store_tail(&mut z2[i..], t, sn);
    }
}
