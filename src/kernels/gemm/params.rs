//! Register tiles (MR×NR) and cache blocks (MC, KC, NC) per kernel path.
//!
//! The loop nest (`block_loops` in the parent module) is, outermost first:
//!
//! ```text
//! for ic in 0..m step MC            A block  MC×KC  packed once per (ic, pc)   → L3 / L2
//!   for pc in 0..k step KC
//!     for jc in 0..n step NC        B block  KC×NC  packed once per (ic, pc, jc) → L2
//!       for ir in 0..MC step MR     A micro-panel MR×KC stays in L1
//!         for jr in 0..NC step NR   B micro-panel KC×NR streams from L2
//!           C[MR×NR] (+)= Ã·B̃       MR·NR/lanes accumulators in registers
//! ```
//!
//! The microkernel broadcasts one element of A per row and loads NR/lanes
//! vectors of B per step of p, so per step it issues MR·NR/lanes FMAs for
//! MR + NR/lanes loads; with two FMA ports of latency 4 this needs at least 8
//! independent accumulators, and the tile must leave registers for the B
//! vectors and one broadcast.
//!
//! The cache sizes assumed are those of an Ice Lake / Sapphire Rapids server
//! core: L1d 48 KiB, L2 2 MiB (Sapphire Rapids, as on the benchmark machine;
//! Ice Lake has 1.25 MiB, where the AVX-512 B block fills most of L2). The A
//! micro-panel (MR·KC floats) is reused NC/NR times from
//! L1, so it should take at most about half of L1 alongside the streaming B
//! lines; the packed B block (KC·NC floats) is reused MC/MR times from L2, so it
//! should take at most about half of L2. MC only bounds the packed A block and
//! how often B is repacked (m/MC times). At run time each path's blocks are
//! fitted to the running CPU's caches ([`Blocking::fitted`]): on a CPU with
//! a smaller L1d or L2 than these assume, KC and NC shrink to fit.

use crate::kernels::CpuInfo;

/// Block sizes of one kernel path; MC is a multiple of MR, NC of NR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// Rows of a packed A block.
    pub mc: usize,
    /// Depth of a packed block (the k-slice summed per pass over C).
    pub kc: usize,
    /// Columns of a packed B block.
    pub nc: usize,
}

impl Blocking {
    /// These blocks fitted to a CPU's caches (`None`: size unknown, block
    /// kept): KC is cut so that the A micro-panel (MR·KC floats) takes at
    /// most 7/8 of L1d, leaving room for the B̃ lines streaming past it, and
    /// NC so that the packed B block (KC·NC floats) fits L2. Only ever
    /// smaller than the path's own blocks, which fit every CPU measured
    /// (Ice Lake: L1d 48 KiB, L2 1.25 MiB; Zen 3: 32 KiB, 512 KiB; Zen 4:
    /// 32 KiB, 1 MiB, where a B block of half the L2 was measured no faster
    /// than one filling it), so a CPU with smaller caches gets smaller blocks
    /// and those keep theirs. KC stays a multiple of 16 and at least 64, NC a
    /// multiple of NR.
    pub(crate) fn fitted(self, l1d: Option<usize>, l2: Option<usize>) -> Blocking {
        let mut p = self;
        if let Some(l1d) = l1d {
            let kc_max = (l1d / 8 * 7 / (4 * p.mr)) / 16 * 16;
            p.kc = p.kc.min(kc_max.max(64));
        }
        if let Some(l2) = l2 {
            let nc_max = l2 / (4 * p.kc) / p.nr * p.nr;
            p.nc = p.nc.min(nc_max.max(p.nr));
        }
        p
    }

    /// [`Blocking::fitted`] to the running CPU ([`CpuInfo::get`]).
    pub(crate) fn for_this_cpu(self) -> Blocking {
        let cpu = CpuInfo::get();
        self.fitted(cpu.l1d, cpu.l2)
    }
}

/// Portable path: a 4×8 tile of scalars (32 accumulators, which the compiler
/// keeps in SSE registers as 8 vectors of 4). A micro-panel 4·256·4 B = 4 KiB in
/// L1; B block 256·512·4 B = 512 KiB in L2.
pub(crate) const SCALAR: Blocking = Blocking {
    mr: 4,
    nr: 8,
    mc: 256,
    kc: 256,
    nc: 512,
};

/// AVX2 + FMA: a 6×16 tile = 12 ymm accumulators + 2 B vectors + 1 broadcast
/// (15 of 16 registers), 12 FMAs per 8 loads. A micro-panel 6·256·4 B = 6 KiB
/// in L1; B block 256·512·4 B = 512 KiB in L2. MC = 1200 packs B once per
/// k-block for products of up to 1200 rows (the A block is streamed, as on
/// AVX-512): 2048² went from 104 to 107 GFLOP/s on one Zen 4 core capped at
/// AVX2, the other shapes unchanged within 1 %.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const AVX2: Blocking = Blocking {
    mr: 6,
    nr: 16,
    mc: 1200,
    kc: 256,
    nc: 512,
};

/// AVX-512F: a 14×32 tile = 28 zmm accumulators + 2 B vectors + 1 broadcast
/// (31 of 32 registers), 28 FMAs per 16 loads, so the two FMA ports stay busy
/// and the two load ports have slack. A micro-panel 14·512·4 B = 28 KiB (of
/// the 48 KiB L1d); B block 512·512·4 B = 1 MiB (half of the 2 MiB L2). MC
/// covers up to 1680 rows so that B is packed once for most products (the A
/// block is only streamed, so it need not fit a cache). The k-blocks are cut
/// to equal depths ≤ KC (784 → 392 + 392), measured 3–5 % faster at 1024³ and
/// 256×784×1024 than KC = 384, NC = 512, MC = 840.
pub(crate) const AVX512: Blocking = Blocking {
    mr: 14,
    nr: 32,
    mc: 1680,
    kc: 512,
    nc: 512,
};

/// NEON (aarch64): an 8×12 tile = 24 accumulators + 3 B vectors + 2 A
/// vectors whose lanes feed `fmla` by element (29 of 32 registers), 24 FMAs
/// per 5 loads (see `neon.rs`). Caches assumed: Neoverse (Graviton 2/3) L1d
/// 64 KiB and L2 1 MiB per core; Apple M-series performance cores have 128
/// KiB L1d and a 12–16 MiB shared L2, so these blocks are conservative there.
/// A micro-panel 8·256·4 B = 8 KiB in L1; B block 256·480·4 B = 480 KiB,
/// about half of a 1 MiB L2; MC = 512 keeps the A block (512 KiB) streaming.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(crate) const NEON: Blocking = Blocking {
    mr: 8,
    nr: 12,
    mc: 512,
    kc: 256,
    nc: 480,
};

/// WebAssembly SIMD128: a 4×8 tile = 8 accumulators + 2 B vectors + 1 A
/// vector (and a lane splat), because the engine maps v128 onto the host's
/// registers and an x86-64 host has only 16 (an 8×12 tile would spill). A
/// micro-panel 4·256·4 B = 4 KiB; B block 256·512·4 B = 512 KiB.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
pub(crate) const SIMD128: Blocking = Blocking {
    mr: 4,
    nr: 8,
    mc: 256,
    kc: 256,
    nc: 512,
};

/// The direct (unpacked) path runs products with m or n at most this.
/// Measured on AVX-512 (1 thread): at batch 32 direct beats packed by
/// 1.2–1.5× on the forward and dx products; at batch 64 packed is 7–25 %
/// faster. The k = 32 weight gradients (m and n large) go packed: on the
/// AVX2 path the direct one ran them at 63–66 GFLOP/s against 104 packed
/// (Zen 4, 128×784×32 and 784×128×32, one thread), its 6×16 tiles too short
/// at depth 32 for their set-up; on AVX-512 packed ties or wins (104.6
/// against 104.5 and 98.8).
pub(crate) const DIRECT_SMALL: usize = 48;

/// Bytes of a block of Ã (all its rows × KC) small enough to stay in L1, so
/// that the direct path runs each column tile of B̃ against all of it.
pub(crate) const DIRECT_A_L1_BYTES: usize = 24 << 10;

/// Bytes of the KC×NC block of B̃ that the direct path walks once per row
/// tile: half of a 2 MiB L2. Also the most a single column tile of B̃ packs
/// at once before its depth is cut into k-blocks.
pub(crate) const DIRECT_B_BYTES: usize = 1 << 20;

/// Products with fewer flops (2·m·n·k) than this run on one thread even when
/// the rayon pool has more: below it the fork/join and the duplicated packing
/// of the shared operand cost more than the second core gains. (Waking a
/// sleeping pool thread takes 30–65 µs on the 2-core development machine,
/// about what one core needs for 8–16 MFLOP.)
pub(crate) const PAR_MIN_FLOPS: usize = 32 << 20;

/// [`PAR_MIN_FLOPS`] while other pool threads spin for work
/// ([`crate::parallel::awake`]): a join then costs about a microsecond, and
/// the 6.4 MFLOP products of a batch-32 step gain from two threads (the deep
/// model 93k → 108k samples/s). The 1.6 MFLOP ones of the shallow 784-32-784
/// model lost (351k → 252k at 1 MFLOP) while their weights' rows moved
/// between the cores' caches; since each thread keeps its own rows through
/// the step ([`crate::parallel::owned_half`]) they gain: W3 (batch 32,
/// AMD EPYC Zen 4) 128–130 µs a step → 109 µs with every step split.
pub(crate) const PAR_MIN_FLOPS_AWAKE: usize = 1 << 20;

/// Rows a product counts as, at least, when [`PAR_MIN_FLOPS`] and
/// [`PAR_MIN_FLOPS_AWAKE`] weigh it: a few rows stream all of op(B) for a
/// few FMAs per element, so their time hardly shrinks with the rows (AVX-512,
/// one thread, x·Wᵀ through a 784×128 weight: 8.4 µs for 5 rows, 6.5 for 1;
/// a 32-row product of 1 MFLOP takes 4–5 µs).
pub(crate) const FEW_ROWS: usize = 8;

/// Products with at least this many flops are cut into one strip per thread
/// instead of two (measured: two strips per thread are faster up to the
/// 0.4 GFLOP shapes of a batch-256 step, one per thread from 1024³ up).
pub(crate) const PAR_ONE_STRIP_FLOPS: usize = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_fit_the_reserved_buffers() {
        let reserved = AVX512.mc * AVX512.kc;
        for p in [SCALAR, AVX2, NEON, SIMD128] {
            assert!(p.mc * p.kc <= reserved && p.kc * p.nc <= reserved, "{p:?}");
        }
        // The 4-lane strided tile handles up to 8×12.
        for p in [NEON, SIMD128] {
            assert!(p.mr <= 8 && p.nr <= 12 && p.mr % 4 == 0 && p.nr % 4 == 0);
        }
    }

    #[test]
    fn blocks_fit_the_caches_they_are_meant_for() {
        const K: usize = 1 << 10;
        for p in [SCALAR, AVX2, AVX512, NEON, SIMD128] {
            // Every CPU measured keeps the path's own blocks.
            for (l1d, l2) in [(48 * K, 1280 * K), (32 * K, 512 * K), (32 * K, 1024 * K)] {
                if p.mr * p.kc * 4 <= l1d / 8 * 7 && p.kc * p.nc * 4 <= l2 {
                    assert_eq!(p.fitted(Some(l1d), Some(l2)), p, "{p:?}");
                }
            }
            assert_eq!(p.fitted(None, None), p);
            // Smaller caches: smaller blocks that fit them, still whole tiles.
            for (l1d, l2) in [(16 * K, 256 * K), (32 * K, 256 * K), (8 * K, 128 * K)] {
                let f = p.fitted(Some(l1d), Some(l2));
                assert!(f.kc <= p.kc && f.nc <= p.nc && f.mc == p.mc, "{f:?}");
                assert!(f.kc >= 64 && f.kc % 16 == 0 && f.nc % f.nr == 0, "{f:?}");
                assert!(f.mr * f.kc * 4 <= l1d / 8 * 7 || f.kc == 64, "{f:?} {l1d}");
                assert!(f.kc * f.nc * 4 <= l2 || f.nc == f.nr, "{f:?} {l2}");
            }
        }
        // AVX2 on a 256 KiB L2 (client cores): the B block halves.
        assert_eq!(AVX2.fitted(Some(32 * K), Some(256 * K)).nc, 256);
        // AVX-512 on a 32 KiB L1d keeps KC = 512 (28 KiB micro-panel).
        assert_eq!(AVX512.fitted(Some(32 * K), Some(1024 * K)), AVX512);
    }

    #[test]
    fn blocks_are_whole_tiles() {
        for p in [SCALAR, AVX2, AVX512, NEON, SIMD128] {
            assert_eq!(p.mc % p.mr, 0, "{p:?}");
            assert_eq!(p.nc % p.nr, 0, "{p:?}");
        }
    }
}
