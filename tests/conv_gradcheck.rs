//! Convolution, max pooling and upsampling: f64 finite-difference checks of
//! every gradient (weights, biases and inputs; tolerance 1e-6), the forward
//! pass against a naive seven-loop convolution, pooling semantics (ties, NaN,
//! overlapping windows), shape validation, thread-count independence, and a
//! check that a wrong input gradient is caught; every convolution check runs
//! on each algorithm (`ConvAlgo`: automatic, im2col, shifted planes).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::Error;
use sparse_ae::gradcheck::{CheckOptions, Report, check_fn};
use sparse_ae::kernels::{Activation, sigmoid};
use sparse_ae::nn::conv::{Conv2dShape, ConvAlgo, ConvScratch, conv2d_backward, conv2d_forward};
use sparse_ae::nn::pool::{
    maxpool2d_backward, maxpool2d_forward, pool_out, upsample_nearest2d_backward,
    upsample_nearest2d_forward,
};
use sparse_ae::nn::{ParamInfo, ParamKind, ParamLayout};

fn rand_vec(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A flat layout of named 1-D tensors, in order.
fn layout(tensors: &[(&str, usize)]) -> ParamLayout {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, &(name, len)) in tensors.iter().enumerate() {
        out.push(ParamInfo {
            name: name.to_string(),
            shape: vec![len],
            offset,
            kind: if name.ends_with("bias") {
                ParamKind::Bias
            } else {
                ParamKind::Weight
            },
            layer: i,
        });
        offset += len;
    }
    ParamLayout {
        weight_of: (0..out.len()).map(Some).collect(),
        bias_of: (0..out.len()).map(Some).collect(),
        tensors: out,
        len: offset,
    }
}

/// FNV-1a over booleans: which side of a kink each value is on.
fn fingerprint(hash: &mut u64, bits: impl Iterator<Item = bool>) {
    for b in bits {
        *hash = (*hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
}

/// z[n,o,i,j] = b[o] + Σ_{c,u,v} W[o,c,u,v]·x[n,c,i·s−p+u,j·s−p+v], by the
/// definition; also returns Σ|W·x| + |b| per output (the error scale).
fn naive_conv(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    batch: usize,
    s: &Conv2dShape,
) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut z = vec![0.0; batch * s.out_len()];
    let mut mag = z.clone();
    for n in 0..batch {
        for o in 0..s.out_c {
            for i in 0..oh {
                for j in 0..ow {
                    let (mut acc, mut abs) = (b[o], b[o].abs());
                    for c in 0..s.in_c {
                        for u in 0..s.kh {
                            for v in 0..s.kw {
                                let iy = (i * s.stride + u) as isize - s.pad as isize;
                                let ix = (j * s.stride + v) as isize - s.pad as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= s.in_h as isize
                                    || ix >= s.in_w as isize
                                {
                                    continue;
                                }
                                let xv = x[((n * s.in_c + c) * s.in_h + iy as usize) * s.in_w
                                    + ix as usize];
                                let wv = w[((o * s.in_c + c) * s.kh + u) * s.kw + v];
                                acc += wv * xv;
                                abs += (wv * xv).abs();
                            }
                        }
                    }
                    let at = ((n * s.out_c + o) * oh + i) * ow + j;
                    z[at] = acc;
                    mag[at] = abs;
                }
            }
        }
    }
    (z, mag)
}

/// (in_c, out_c, kh, kw, stride, pad, in_h, in_w)
type Dims = (usize, usize, usize, usize, usize, usize, usize, usize);

const SHAPES: [Dims; 15] = [
    (1, 2, 3, 3, 1, 1, 7, 5),
    (2, 3, 3, 3, 2, 1, 9, 9),
    (3, 2, 3, 3, 1, 0, 7, 5),
    (2, 2, 3, 3, 2, 2, 5, 7),
    (3, 4, 2, 2, 1, 0, 7, 5),
    (2, 3, 2, 2, 2, 1, 9, 9),
    (4, 3, 1, 1, 1, 0, 5, 7),
    (3, 2, 1, 1, 2, 2, 7, 5),
    (1, 1, 3, 2, 1, 2, 3, 2),
    (5, 1, 3, 3, 2, 1, 9, 9),
    // Stride 1 with one output channel, few output channels, or many taps:
    // the shapes the shifted-plane path takes under `ConvAlgo::Auto`.
    (3, 1, 3, 3, 1, 1, 7, 5),
    (4, 1, 3, 2, 1, 2, 5, 7),
    (2, 1, 1, 1, 1, 0, 7, 5),
    (5, 3, 3, 3, 1, 2, 7, 5),
    (4, 6, 3, 3, 1, 0, 7, 5),
];

const ALGOS: [ConvAlgo; 3] = [ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::Shifted];

fn shape(t: Dims) -> Conv2dShape {
    Conv2dShape::new(t.0, t.1, t.2, t.3, t.4, t.5, t.6, t.7).unwrap()
}

fn assert_pass(what: &str, r: &Report) {
    assert!(r.passed() && r.max_rel_err() < 1e-6, "{what}:\n{r}");
    for t in &r.tensors {
        assert!(
            t.checked >= 1 && t.skipped * 2 <= t.checked + t.skipped,
            "{what}: too few entries of {} checked:\n{r}",
            t.name
        );
    }
}

/// L = Σ c ⊙ act(conv(x, W) + b) for a fixed random c, checked in W, b and x.
/// Returns the report, so a broken backward can be shown to fail.
fn check_conv(
    s: &Conv2dShape,
    batch: usize,
    act: Activation,
    seed: u64,
    flip_dx_kernel: bool,
    algo: ConvAlgo,
) -> Report {
    let (nw, nb, nx) = (s.weight_len(), s.out_c, batch * s.in_len());
    let lay = layout(&[("conv.weight", nw), ("conv.bias", nb), ("input", nx)]);
    let mut params = rand_vec(lay.len, seed, -1.0, 1.0);
    let c = rand_vec(batch * s.out_len(), seed + 1, -1.0, 1.0);
    let mut scratch = ConvScratch::<f64>::with_algo(batch, s, algo);
    let mut y = vec![0.0; c.len()];
    let run = |p: &[f64], y: &mut [f64], scratch: &mut ConvScratch<f64>| {
        let (w, rest) = p.split_at(nw);
        let (b, x) = rest.split_at(nb);
        conv2d_forward(y, x, w, b, batch, s, act, scratch);
        let mut print = 0xcbf2_9ce4_8422_2325;
        if act == Activation::Relu {
            fingerprint(&mut print, y.iter().map(|&v| v > 0.0));
        }
        (y.iter().zip(&c).map(|(a, b)| a * b).sum::<f64>(), print)
    };
    run(&params, &mut y, &mut scratch);
    // dz = c ⊙ act′(z), expressed through y.
    let dz: Vec<f64> = y
        .iter()
        .zip(&c)
        .map(|(&h, &ci)| ci * act.deriv_from_output(h))
        .collect();
    let mut grad = vec![0.0; lay.len];
    let (w, rest) = params.split_at(nw);
    let (_, x) = rest.split_at(nb);
    let (gw, grest) = grad.split_at_mut(nw);
    let (gb, gx) = grest.split_at_mut(nb);
    let w_used: Vec<f64> = if flip_dx_kernel {
        // W[o,c,u,v] → W[o,c,kh−1−u,kw−1−v]: a classic col2im mistake.
        (0..nw)
            .map(|i| {
                let (uv, oc) = (i % (s.kh * s.kw), i / (s.kh * s.kw));
                let (u, v) = (uv / s.kw, uv % s.kw);
                w[oc * s.kh * s.kw + (s.kh - 1 - u) * s.kw + (s.kw - 1 - v)]
            })
            .collect()
    } else {
        w.to_vec()
    };
    let mut gw2 = vec![0.0; nw];
    let mut gb2 = vec![0.0; nb];
    conv2d_backward(gw, gb, None, &dz, x, w, batch, s, &mut scratch);
    conv2d_backward(
        &mut gw2,
        &mut gb2,
        Some(gx),
        &dz,
        x,
        &w_used,
        batch,
        s,
        &mut scratch,
    );
    assert_eq!(
        gw,
        &gw2[..],
        "dw must not depend on whether dx is asked for"
    );
    assert_eq!(gb, &gb2[..]);
    check_fn(
        &lay,
        &mut params,
        &grad,
        |p| run(p, &mut y, &mut scratch),
        &CheckOptions::default(),
    )
}

#[test]
fn conv2d_gradients_linear_and_sigmoid() {
    let mut worst = 0.0f64;
    for (i, &t) in SHAPES.iter().enumerate() {
        let s = shape(t);
        for (act, batch) in [(Activation::Linear, 3), (Activation::Sigmoid, 2)] {
            for algo in ALGOS {
                let r = check_conv(&s, batch, act, 10 + i as u64, false, algo);
                assert_pass(&format!("{s:?} {act:?} batch {batch} {algo:?}"), &r);
                worst = worst.max(r.max_rel_err());
            }
        }
    }
    println!("largest relative error {worst:.3e}");
}

#[test]
fn conv2d_gradients_relu_and_many_groups() {
    let mut worst = 0.0f64;
    // Batch 11 is split into groups of 2 (the last one short), batch 1 into one.
    for (i, &t) in SHAPES.iter().enumerate() {
        let s = shape(t);
        for batch in [1, 11] {
            for algo in ALGOS {
                let r = check_conv(&s, batch, Activation::Relu, 40 + i as u64, false, algo);
                assert_pass(&format!("{s:?} relu batch {batch} {algo:?}"), &r);
                worst = worst.max(r.max_rel_err());
            }
        }
    }
    println!("largest relative error {worst:.3e}");
}

#[test]
fn wrong_input_gradient_fails_the_check() {
    let s = shape((3, 2, 3, 3, 1, 1, 7, 5));
    for algo in ALGOS {
        let r = check_conv(&s, 2, Activation::Linear, 7, true, algo);
        assert!(
            !r.passed(),
            "a flipped kernel in dx passed ({algo:?}):\n{r}"
        );
        let input = r.tensors.iter().find(|t| t.name == "input").unwrap();
        assert!(input.max_rel_err > 1e-2, "{r}");
        let weight = r.tensors.iter().find(|t| t.name == "conv.weight").unwrap();
        assert!(weight.max_rel_err < 1e-6, "{r}");
    }
}

#[test]
fn conv2d_forward_matches_naive_convolution() {
    for (i, &t) in SHAPES.iter().enumerate() {
        let s = shape(t);
        let batch = 3;
        let x = rand_vec(batch * s.in_len(), 100 + i as u64, -1.0, 1.0);
        let w = rand_vec(s.weight_len(), 200 + i as u64, -1.0, 1.0);
        let b = rand_vec(s.out_c, 300 + i as u64, -1.0, 1.0);
        let (z, mag) = naive_conv(&x, &w, &b, batch, &s);
        for act in [Activation::Linear, Activation::Relu, Activation::Sigmoid] {
            let want: Vec<f64> = z.iter().map(|&v| act.apply(v)).collect();
            // f64: the same sums in another order.
            for algo in ALGOS {
                let mut y64 = vec![f64::NAN; z.len()];
                let mut sc64 = ConvScratch::with_algo(batch, &s, algo);
                conv2d_forward(&mut y64, &x, &w, &b, batch, &s, act, &mut sc64);
                for (k, (&g, &e)) in y64.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-12 * (1.0 + mag[k]),
                        "{s:?} {act:?} {algo:?} f64 at {k}: {g} vs {e}"
                    );
                }
            }
            // f32 on the active kernel path: |err| ≤ γ_{K+1}·Σ|w·x| + rounding of
            // the inputs, bounded by (K + 4)·u·Σ|w·x| (u = 2⁻²⁴), act being
            // 1-Lipschitz.
            let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (x32, w32, b32) = (f(&x), f(&w), f(&b));
            let gamma = (s.k() + 4) as f64 * f32::EPSILON as f64;
            for algo in ALGOS {
                let mut y32 = vec![f32::NAN; z.len()];
                let mut sc32 = ConvScratch::with_algo(batch, &s, algo);
                conv2d_forward(&mut y32, &x32, &w32, &b32, batch, &s, act, &mut sc32);
                for (k, (&g, &e)) in y32.iter().zip(&want).enumerate() {
                    let tol = gamma * mag[k] + 1e-7;
                    assert!(
                        (g as f64 - e).abs() <= tol,
                        "{s:?} {act:?} {algo:?} f32 at {k}: {g} vs {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn conv2d_is_independent_of_thread_count() {
    let batch = 13;
    let f = |n: usize, seed: u64| -> Vec<f32> {
        rand_vec(n, seed, -1.0, 1.0)
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    for dims in [
        (3, 4, 3, 3, 1, 1, 9, 7),
        (5, 2, 3, 3, 1, 1, 9, 7),
        (6, 1, 3, 3, 1, 2, 7, 9),
    ] {
        let s = shape(dims);
        let (x, w, b, dz) = (
            f(batch * s.in_len(), 1),
            f(s.weight_len(), 2),
            f(s.out_c, 3),
            f(batch * s.out_len(), 4),
        );
        for algo in ALGOS {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut sc = ConvScratch::with_algo(batch, &s, algo);
                    let mut y = vec![0f32; dz.len()];
                    conv2d_forward(&mut y, &x, &w, &b, batch, &s, Activation::Relu, &mut sc);
                    let (mut dw, mut db, mut dx) = (
                        vec![0f32; w.len()],
                        vec![0f32; s.out_c],
                        vec![0f32; x.len()],
                    );
                    conv2d_backward(
                        &mut dw,
                        &mut db,
                        Some(&mut dx),
                        &dz,
                        &x,
                        &w,
                        batch,
                        &s,
                        &mut sc,
                    );
                    (y, dw, db, dx)
                })
            };
            assert_eq!(run(1), run(2), "{s:?} {algo:?}");
        }
    }
}

#[test]
fn shape_validation() {
    let bad = [
        ((1, 1, 3, 3, 0, 0, 5, 5), "conv.stride"),
        ((0, 1, 3, 3, 1, 0, 5, 5), "conv.in_channels"),
        ((1, 0, 3, 3, 1, 0, 5, 5), "conv.out_channels"),
        ((1, 1, 6, 3, 1, 0, 5, 5), "conv.kernel_h"),
        ((1, 1, 3, 8, 1, 1, 5, 5), "conv.kernel_w"),
        ((1, 1, 3, 3, 1, 0, 0, 5), "conv.in_h"),
        ((1, 1, 1, 1, 1, usize::MAX / 2, 5, 5), "conv.padding"),
    ];
    for (t, field) in bad {
        match Conv2dShape::new(t.0, t.1, t.2, t.3, t.4, t.5, t.6, t.7) {
            Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "{t:?}"),
            other => panic!("{t:?}: expected a config error, got {other:?}"),
        }
    }
    // Kernel equal to the padded input: one output.
    let s = shape((1, 1, 7, 7, 1, 1, 5, 5));
    assert_eq!((s.out_h(), s.out_w()), (1, 1));
    // The W6 layers and PyTorch's ⌊(n + 2p − k)/s⌋ + 1.
    let s = shape((1, 16, 3, 3, 1, 1, 28, 28));
    assert_eq!((s.out_h(), s.out_w()), (28, 28));
    let s = shape((2, 3, 3, 3, 2, 0, 7, 5));
    assert_eq!((s.out_h(), s.out_w()), (3, 2));
    assert!(pool_out(3, 4, 1).is_err() && pool_out(3, 1, 0).is_err());
    assert_eq!(pool_out(7, 2, 2).unwrap(), 3);
}

/// maxpool by the definition (first maximum wins, NaN wins).
fn naive_maxpool(
    x: &[f64],
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
    st: usize,
) -> (Vec<f64>, Vec<u32>) {
    let (oh, ow) = ((h - k) / st + 1, (w - k) / st + 1);
    let (mut y, mut a) = (Vec::new(), Vec::new());
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let mut best: Option<(f64, usize)> = None;
                for u in 0..k {
                    for v in 0..k {
                        let at = (i * st + u) * w + j * st + v;
                        let val = x[p * h * w + at];
                        best = match best {
                            None => Some((val, at)),
                            Some(_) if val.is_nan() => Some((val, at)),
                            Some((bv, _)) if val > bv => Some((val, at)),
                            _ => best,
                        };
                    }
                }
                let (bv, at) = best.unwrap();
                y.push(bv);
                a.push(at as u32);
            }
        }
    }
    (y, a)
}

#[test]
fn maxpool_forward_semantics() {
    // Integer values: many ties; a few NaNs.
    let (batch, c, h, w) = (2, 3, 7, 9);
    let mut x: Vec<f64> = rand_vec(batch * c * h * w, 5, 0.0, 4.0)
        .iter()
        .map(|v| v.floor())
        .collect();
    for i in [3, 40, 41, 200, 377] {
        x[i] = f64::NAN;
    }
    for (k, st) in [(2, 2), (3, 2), (2, 1), (3, 3), (1, 2)] {
        let (oh, ow) = (pool_out(h, k, st).unwrap(), pool_out(w, k, st).unwrap());
        let mut y = vec![0.0; batch * c * oh * ow];
        let mut a = vec![0u32; y.len()];
        maxpool2d_forward(&mut y, &mut a, &x, batch, c, h, w, k, st);
        let (ey, ea) = naive_maxpool(&x, batch * c, h, w, k, st);
        assert_eq!(a, ea, "argmax k {k} s {st}");
        for (g, e) in y.iter().zip(&ey) {
            assert!(
                g == e || (g.is_nan() && e.is_nan()),
                "k {k} s {st}: {g} vs {e}"
            );
        }
        assert!(y.iter().any(|v| v.is_nan()));
    }
}

#[test]
fn maxpool_and_upsample_gradients() {
    let (batch, c, h, w) = (2, 2, 7, 9);
    for (k, st) in [(2, 2), (3, 2), (2, 1)] {
        let (oh, ow) = (pool_out(h, k, st).unwrap(), pool_out(w, k, st).unwrap());
        let lay = layout(&[("input", batch * c * h * w)]);
        let mut x = rand_vec(lay.len, 9, -1.0, 1.0);
        let cw = rand_vec(batch * c * oh * ow, 10, -1.0, 1.0);
        let mut y = vec![0.0; cw.len()];
        let mut a = vec![0u32; cw.len()];
        let run = |p: &[f64], y: &mut [f64], a: &mut [u32]| {
            maxpool2d_forward(y, a, p, batch, c, h, w, k, st);
            let print = a
                .iter()
                .fold(0u64, |hsh, &i| hsh.wrapping_mul(31).wrapping_add(i as u64));
            (y.iter().zip(&cw).map(|(u, v)| u * v).sum::<f64>(), print)
        };
        run(&x, &mut y, &mut a);
        let mut dx = vec![f64::NAN; x.len()];
        maxpool2d_backward(&mut dx, &cw, &a, batch, c, h, w, k, st);
        let r = check_fn(
            &lay,
            &mut x,
            &dx,
            |p| run(p, &mut y, &mut a),
            &CheckOptions::default(),
        );
        assert_pass(&format!("maxpool k {k} s {st}"), &r);
    }
    for scale in [1, 2, 3] {
        let lay = layout(&[("input", batch * c * h * w)]);
        let mut x = rand_vec(lay.len, 11, -1.0, 1.0);
        let cw = rand_vec(lay.len * scale * scale, 12, -1.0, 1.0);
        let mut y = vec![0.0; cw.len()];
        upsample_nearest2d_forward(&mut y, &x, batch, c, h, w, scale);
        // y[n,c,i,j] = x[n,c,⌊i/s⌋,⌊j/s⌋].
        let (oh, ow) = (h * scale, w * scale);
        for (idx, &v) in y.iter().enumerate() {
            let (pl, i, j) = (idx / (oh * ow), idx / ow % oh, idx % ow);
            assert_eq!(v, x[pl * h * w + (i / scale) * w + j / scale]);
        }
        let mut dx = vec![f64::NAN; x.len()];
        upsample_nearest2d_backward(&mut dx, &cw, batch, c, h, w, scale);
        let r = check_fn(
            &lay,
            &mut x,
            &dx,
            |p| {
                upsample_nearest2d_forward(&mut y, p, batch, c, h, w, scale);
                (y.iter().zip(&cw).map(|(u, v)| u * v).sum(), 0)
            },
            &CheckOptions::default(),
        );
        assert_pass(&format!("upsample ×{scale}"), &r);
    }
}

/// A scaled-down W6 network, x: (batch, 1, 9, 9):
/// conv(1→3, 3, p1)+relu → maxpool 2 (4×4) → conv(3→2, 3, p1)+relu →
/// upsample ×2 (8×8) → conv(2→1, 2, p0) (7×7 logits), sigmoid + BCE against a
/// fixed random target t: L = (1/N) Σ [max(z,0) − z·t + ln(1 + e^{−|z|})],
/// ∂L/∂z = (σ(z) − t)/N.
struct Net {
    batch: usize,
    s: [Conv2dShape; 3],
    sc: [ConvScratch<f64>; 3],
    lay: ParamLayout,
    target: Vec<f64>,
    h1: Vec<f64>,
    p1: Vec<f64>,
    a1: Vec<u32>,
    h2: Vec<f64>,
    u2: Vec<f64>,
    z3: Vec<f64>,
}

impl Net {
    fn new(batch: usize) -> Net {
        let s = [
            shape((1, 3, 3, 3, 1, 1, 9, 9)),
            shape((3, 2, 3, 3, 1, 1, 4, 4)),
            shape((2, 1, 2, 2, 1, 0, 8, 8)),
        ];
        let lay = layout(&[
            ("c1.weight", s[0].weight_len()),
            ("c1.bias", 3),
            ("c2.weight", s[1].weight_len()),
            ("c2.bias", 2),
            ("c3.weight", s[2].weight_len()),
            ("c3.bias", 1),
            ("input", batch * 81),
        ]);
        Net {
            batch,
            sc: s.map(|s| ConvScratch::new(batch, &s)),
            lay,
            target: rand_vec(batch * 49, 22, 0.0, 1.0),
            h1: vec![0.0; batch * s[0].out_len()],
            p1: vec![0.0; batch * s[1].in_len()],
            a1: vec![0; batch * s[1].in_len()],
            h2: vec![0.0; batch * s[1].out_len()],
            u2: vec![0.0; batch * s[2].in_len()],
            z3: vec![0.0; batch * s[2].out_len()],
            s,
        }
    }

    fn forward(&mut self, p: &[f64]) -> (f64, u64) {
        let (b, s) = (self.batch, self.s);
        let t = |i: usize| &p[self.lay.tensors[i].range()];
        let relu = Activation::Relu;
        conv2d_forward(
            &mut self.h1,
            t(6),
            t(0),
            t(1),
            b,
            &s[0],
            relu,
            &mut self.sc[0],
        );
        maxpool2d_forward(&mut self.p1, &mut self.a1, &self.h1, b, 3, 9, 9, 2, 2);
        conv2d_forward(
            &mut self.h2,
            &self.p1,
            t(2),
            t(3),
            b,
            &s[1],
            relu,
            &mut self.sc[1],
        );
        upsample_nearest2d_forward(&mut self.u2, &self.h2, b, 2, 4, 4, 2);
        let lin = Activation::Linear;
        conv2d_forward(
            &mut self.z3,
            &self.u2,
            t(4),
            t(5),
            b,
            &s[2],
            lin,
            &mut self.sc[2],
        );
        let n = self.target.len() as f64;
        let loss = self
            .z3
            .iter()
            .zip(&self.target)
            .map(|(&z, &x)| z.max(0.0) - z * x + (-z.abs()).exp().ln_1p())
            .sum::<f64>()
            / n;
        let mut print = 0xcbf2_9ce4_8422_2325;
        fingerprint(&mut print, self.h1.iter().chain(&self.h2).map(|&v| v > 0.0));
        let argmax_bits = self
            .a1
            .iter()
            .flat_map(|&i| (0..7).map(move |k| i >> k & 1 == 1));
        fingerprint(&mut print, argmax_bits);
        (loss, print)
    }

    /// The gradient of the last forward pass, in layout order.
    fn backward(&mut self, p: &[f64]) -> Vec<f64> {
        let (b, s) = (self.batch, self.s);
        let r = |i: usize| self.lay.tensors[i].range();
        let mut grad = vec![0.0; self.lay.len];
        let n = self.target.len() as f64;
        let dz3: Vec<f64> = self
            .z3
            .iter()
            .zip(&self.target)
            .map(|(&z, &x)| (sigmoid(z) - x) / n)
            .collect();
        let mut du2 = vec![0.0; self.u2.len()];
        let (gw, gb) = grad.split_at_mut(r(5).start);
        conv2d_backward(
            &mut gw[r(4)],
            &mut gb[..1],
            Some(&mut du2),
            &dz3,
            &self.u2,
            &p[r(4)],
            b,
            &s[2],
            &mut self.sc[2],
        );
        let mut dz2 = vec![0.0; self.h2.len()];
        upsample_nearest2d_backward(&mut dz2, &du2, b, 2, 4, 4, 2);
        for (d, &h) in dz2.iter_mut().zip(&self.h2) {
            *d *= Activation::Relu.deriv_from_output(h);
        }
        let mut dp1 = vec![0.0; self.p1.len()];
        let (gw, gb) = grad.split_at_mut(r(3).start);
        conv2d_backward(
            &mut gw[r(2)],
            &mut gb[..2],
            Some(&mut dp1),
            &dz2,
            &self.p1,
            &p[r(2)],
            b,
            &s[1],
            &mut self.sc[1],
        );
        let mut dz1 = vec![0.0; self.h1.len()];
        maxpool2d_backward(&mut dz1, &dp1, &self.a1, b, 3, 9, 9, 2, 2);
        for (d, &h) in dz1.iter_mut().zip(&self.h1) {
            *d *= Activation::Relu.deriv_from_output(h);
        }
        let (gw, rest) = grad.split_at_mut(r(1).start);
        let (gb, gx) = rest.split_at_mut(r(6).start - r(1).start);
        let gx = &mut gx[..b * 81];
        conv2d_backward(
            &mut gw[r(0)],
            &mut gb[..3],
            Some(gx),
            &dz1,
            &p[r(6)],
            &p[r(0)],
            b,
            &s[0],
            &mut self.sc[0],
        );
        grad
    }
}

#[test]
fn small_conv_autoencoder_gradients() {
    let mut net = Net::new(3);
    let mut params = rand_vec(net.lay.len, 21, -0.8, 0.8);
    let input = net.lay.tensors[6].range();
    for v in &mut params[input] {
        *v = v.abs();
    }
    net.forward(&params);
    let grad = net.backward(&params);
    let lay = net.lay.clone();
    let rep = check_fn(
        &lay,
        &mut params,
        &grad,
        |p| net.forward(p),
        &CheckOptions::default(),
    );
    assert_pass("small conv autoencoder", &rep);
    println!("{rep}");
}
