//! Samples per second (criterion `elem/s`, 64 samples per iteration) of the
//! layers of the W6 convolutional autoencoder at batch 64 in f32:
//!
//! ```text
//! c1 Conv(1→16, 3×3, p1) 28×28 + ReLU → pool1 MaxPool 2 → 14×14
//! c2 Conv(16→8, 3×3, p1) 14×14 + ReLU → pool2 MaxPool 2 → 7×7 (code, L1)
//! up1 Upsample ×2 → c3 Conv(8→16, 3×3, p1) 14×14 + ReLU
//! up2 Upsample ×2 → c4 Conv(16→1, 3×3, p1) 28×28, sigmoid + BCE
//! ```
//!
//! Each conv layer is timed forward (`fwd`) and backward (`bwd`: dW, db and
//! dx, no dx for c1) as the library runs it ([`ConvAlgo::Auto`]: the sample
//! groups on the rayon pool), with each algorithm forced (`*_im2col`: im2col +
//! GEMM, col2im; `*_shifted`: shifted padded planes, see `conv_shift`), and
//! on a one-thread pool (`*_1thread`). `w6/stack` is the whole conv stack
//! forward and backward with the BCE and L1 terms: the estimated W6 step time
//! without the optimizer update.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sparse_ae::kernels::{Activation, Real};
use sparse_ae::nn::conv::{Conv2dShape, ConvAlgo, ConvScratch, conv2d_backward, conv2d_forward};
use sparse_ae::nn::pool::{
    maxpool2d_backward, maxpool2d_forward, upsample_nearest2d_backward, upsample_nearest2d_forward,
};
use std::hint::black_box;

const BATCH: usize = 64;
use Activation::{Linear, Relu};

fn data(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic fill in [−0.5, 0.5).
    (0..n as u32)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(0x9e37_79b9).rotate_left(13);
            (h >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn conv(in_c: usize, out_c: usize, hw: usize) -> Conv2dShape {
    Conv2dShape::new(in_c, out_c, 3, 3, 1, 1, hw, hw).unwrap()
}

fn bench_convs(c: &mut Criterion) {
    let layers = [
        ("c1", conv(1, 16, 28), Relu, false),
        ("c2", conv(16, 8, 14), Relu, true),
        ("c3", conv(8, 16, 14), Relu, true),
        ("c4", conv(16, 1, 28), Linear, true),
    ];
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("conv");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (i, (name, s, act, want_dx)) in layers.into_iter().enumerate() {
        let x = data(BATCH * s.in_len(), 1 + i as u32);
        let w = data(s.weight_len(), 10 + i as u32);
        let b = data(s.out_c, 20 + i as u32);
        let dz = data(BATCH * s.out_len(), 30 + i as u32);
        let mut y = vec![0.0; dz.len()];
        let (mut dw, mut db, mut dx) = (vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; x.len()]);
        for (suffix, algo) in [
            ("", ConvAlgo::Auto),
            ("_im2col", ConvAlgo::Im2col),
            ("_shifted", ConvAlgo::Shifted),
        ] {
            let mut sc = ConvScratch::with_algo(BATCH, &s, algo);
            g.bench_function(format!("{name}/fwd{suffix}"), |bch| {
                bch.iter(|| conv2d_forward(&mut y, black_box(&x), &w, &b, BATCH, &s, act, &mut sc))
            });
            g.bench_function(format!("{name}/bwd{suffix}"), |bch| {
                bch.iter(|| {
                    let dx = want_dx.then_some(&mut dx[..]);
                    conv2d_backward(
                        &mut dw,
                        &mut db,
                        dx,
                        black_box(&dz),
                        &x,
                        &w,
                        BATCH,
                        &s,
                        &mut sc,
                    )
                })
            });
        }
        let mut sc = ConvScratch::new(BATCH, &s);
        g.bench_function(format!("{name}/fwd_1thread"), |bch| {
            one.install(|| {
                bch.iter(|| conv2d_forward(&mut y, black_box(&x), &w, &b, BATCH, &s, act, &mut sc))
            })
        });
        g.bench_function(format!("{name}/bwd_1thread"), |bch| {
            one.install(|| {
                bch.iter(|| {
                    let dx = want_dx.then_some(&mut dx[..]);
                    conv2d_backward(
                        &mut dw,
                        &mut db,
                        dx,
                        black_box(&dz),
                        &x,
                        &w,
                        BATCH,
                        &s,
                        &mut sc,
                    )
                })
            })
        });
    }
    g.finish();
}

fn bench_pools(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, ch, hw) in [("pool1", 16, 28), ("pool2", 8, 14)] {
        let x = data(BATCH * ch * hw * hw, 7);
        let o = hw / 2;
        let mut y = vec![0.0; BATCH * ch * o * o];
        let mut a = vec![0u32; y.len()];
        let mut dx = vec![0.0; x.len()];
        g.bench_function(format!("{name}/fwd"), |b| {
            b.iter(|| maxpool2d_forward(&mut y, &mut a, black_box(&x), BATCH, ch, hw, hw, 2, 2))
        });
        g.bench_function(format!("{name}/bwd"), |b| {
            b.iter(|| maxpool2d_backward(&mut dx, black_box(&y), &a, BATCH, ch, hw, hw, 2, 2))
        });
    }
    for (name, ch, hw) in [("up1", 8, 7), ("up2", 16, 14)] {
        let x = data(BATCH * ch * hw * hw, 8);
        let mut y = vec![0.0; x.len() * 4];
        let mut dx = vec![0.0; x.len()];
        g.bench_function(format!("{name}/fwd"), |b| {
            b.iter(|| upsample_nearest2d_forward(&mut y, black_box(&x), BATCH, ch, hw, hw, 2))
        });
        g.bench_function(format!("{name}/bwd"), |b| {
            b.iter(|| upsample_nearest2d_backward(&mut dx, black_box(&y), BATCH, ch, hw, hw, 2))
        });
    }
    g.finish();
}

/// Every buffer of the W6 conv stack at batch 64.
struct Stack {
    s: [Conv2dShape; 4],
    sc: [ConvScratch<f32>; 4],
    w: [Vec<f32>; 4],
    b: [Vec<f32>; 4],
    dw: [Vec<f32>; 4],
    db: [Vec<f32>; 4],
    x: Vec<f32>,
    h1: Vec<f32>,
    a1: Vec<u32>,
    p1: Vec<f32>,
    h2: Vec<f32>,
    a2: Vec<u32>,
    p2: Vec<f32>,
    u1: Vec<f32>,
    h3: Vec<f32>,
    u2: Vec<f32>,
    z4: Vec<f32>,
    // Gradients; the ones at the same size are reused.
    g28: Vec<f32>,
    g16_28: Vec<f32>,
    g16_14: Vec<f32>,
    g8_14: Vec<f32>,
    g8_7: Vec<f32>,
}

impl Stack {
    fn new() -> Stack {
        let s = [
            conv(1, 16, 28),
            conv(16, 8, 14),
            conv(8, 16, 14),
            conv(16, 1, 28),
        ];
        let v = |n: usize| vec![0.0f32; BATCH * n];
        Stack {
            sc: s.map(|s| ConvScratch::new(BATCH, &s)),
            w: s.map(|s| data(s.weight_len(), 3).iter().map(|v| v * 0.5).collect()),
            b: s.map(|s| vec![0.01; s.out_c]),
            dw: s.map(|s| vec![0.0; s.weight_len()]),
            db: s.map(|s| vec![0.0; s.out_c]),
            x: data(BATCH * 784, 5).iter().map(|v| v + 0.5).collect(),
            h1: v(16 * 784),
            a1: vec![0; BATCH * 16 * 196],
            p1: v(16 * 196),
            h2: v(8 * 196),
            a2: vec![0; BATCH * 8 * 49],
            p2: v(8 * 49),
            u1: v(8 * 196),
            h3: v(16 * 196),
            u2: v(16 * 784),
            z4: v(784),
            g28: v(784),
            g16_28: v(16 * 784),
            g16_14: v(16 * 196),
            g8_14: v(8 * 196),
            g8_7: v(8 * 49),
            s,
        }
    }

    /// Forward, BCE + L1 (1e-5) loss, backward; returns the loss.
    fn step(&mut self) -> f64 {
        let (s, n) = (self.s, BATCH);
        conv2d_forward(
            &mut self.h1,
            &self.x,
            &self.w[0],
            &self.b[0],
            n,
            &s[0],
            Relu,
            &mut self.sc[0],
        );
        maxpool2d_forward(&mut self.p1, &mut self.a1, &self.h1, n, 16, 28, 28, 2, 2);
        conv2d_forward(
            &mut self.h2,
            &self.p1,
            &self.w[1],
            &self.b[1],
            n,
            &s[1],
            Relu,
            &mut self.sc[1],
        );
        maxpool2d_forward(&mut self.p2, &mut self.a2, &self.h2, n, 8, 14, 14, 2, 2);
        upsample_nearest2d_forward(&mut self.u1, &self.p2, n, 8, 7, 7, 2);
        conv2d_forward(
            &mut self.h3,
            &self.u1,
            &self.w[2],
            &self.b[2],
            n,
            &s[2],
            Relu,
            &mut self.sc[2],
        );
        upsample_nearest2d_forward(&mut self.u2, &self.h3, n, 16, 14, 14, 2);
        conv2d_forward(
            &mut self.z4,
            &self.u2,
            &self.w[3],
            &self.b[3],
            n,
            &s[3],
            Linear,
            &mut self.sc[3],
        );
        let inv = 1.0 / self.x.len() as f32;
        let mut loss = f32::bce_logits(&self.z4, &self.x, Some(&mut self.g28), inv);
        conv2d_backward(
            &mut self.dw[3],
            &mut self.db[3],
            Some(&mut self.g16_28),
            &self.g28,
            &self.u2,
            &self.w[3],
            n,
            &s[3],
            &mut self.sc[3],
        );
        upsample_nearest2d_backward(&mut self.g16_14, &self.g16_28, n, 16, 14, 14, 2);
        f32::act_backward(Relu, &self.h3, &mut self.g16_14);
        conv2d_backward(
            &mut self.dw[2],
            &mut self.db[2],
            Some(&mut self.g8_14),
            &self.g16_14,
            &self.u1,
            &self.w[2],
            n,
            &s[2],
            &mut self.sc[2],
        );
        upsample_nearest2d_backward(&mut self.g8_7, &self.g8_14, n, 8, 7, 7, 2);
        loss += f32::l1(&self.p2, Some(&mut self.g8_7), 1e-5 / n as f32);
        maxpool2d_backward(&mut self.g8_14, &self.g8_7, &self.a2, n, 8, 14, 14, 2, 2);
        f32::act_backward(Relu, &self.h2, &mut self.g8_14);
        conv2d_backward(
            &mut self.dw[1],
            &mut self.db[1],
            Some(&mut self.g16_14),
            &self.g8_14,
            &self.p1,
            &self.w[1],
            n,
            &s[1],
            &mut self.sc[1],
        );
        maxpool2d_backward(
            &mut self.g16_28,
            &self.g16_14,
            &self.a1,
            n,
            16,
            28,
            28,
            2,
            2,
        );
        f32::act_backward(Relu, &self.h1, &mut self.g16_28);
        conv2d_backward(
            &mut self.dw[0],
            &mut self.db[0],
            None,
            &self.g16_28,
            &self.x,
            &self.w[0],
            n,
            &s[0],
            &mut self.sc[0],
        );
        loss
    }
}

fn bench_stack(c: &mut Criterion) {
    let mut g = c.benchmark_group("w6");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut st = Stack::new();
    g.bench_function("stack_fwd_bwd", |b| b.iter(|| black_box(st.step())));
    g.finish();
}

criterion_group!(benches, bench_convs, bench_pools, bench_stack);
criterion_main!(benches);
