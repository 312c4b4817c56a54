//! The sparse path of a top-k code (`nn::sparse_topk`) against the dense path.
//!
//! Tolerances come from the lengths of the sums. A sum of K products computed
//! in any order in f32 is within γ_K·Σ|terms| of the exact value
//! (γ_K = K·u/(1 − K·u), u = 2⁻²⁴), so two orders differ by at most
//! 2·γ_K·Σ|terms|:
//! - layer by layer, on the same inputs, each element is checked against that
//!   bound with its own Σ|terms| (K = units for the decoder's forward pass and
//!   the input gradient, the decoder's width for the code gradient, the batch
//!   for weight gradients), plus, where the inputs of a product already
//!   differ (the code gradient feeding the encoder's gradients), the measured
//!   input difference times the other factor;
//! - end to end, every gradient tensor and the loss must agree within
//!   8·γ_K of the tensor's largest entry, K the longest sum in the model: the
//!   rounding of each layer is bounded as above and reaches the next through
//!   products with weights of magnitude below 1.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::{Activation, Real};
use sparse_ae::nn::dense::{WeightUse, dense_backward, dense_forward};
use sparse_ae::nn::sparse_topk::{CodeTerms, SparseTopk, sparse_applies, sparse_pays};
use sparse_ae::nn::sparsity::{topk_backward, topk_rows};
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig, TopkPath, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::metrics::code_threshold;
use sparse_ae::train::{DeadLatents, Trainer};

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(k: usize, u: f64) -> f64 {
    let k = k as f64;
    k * u / (1.0 - k * u)
}

fn uniform(rng: &mut StdRng, n: usize, r: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-r..r)).collect()
}

fn assert_within(what: &str, got: &[f32], want: &[f32], bound: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w as f64).abs();
        assert!(d <= bound(i), "{what}[{i}]: {g} vs {w}, bound {}", bound(i));
    }
}

/// Every product of the sparse path against the dense layer functions on
/// the same inputs: a code layer of 150 units keeping 7 (after a tanh
/// layer, so the input gradient is computed too) and a decoder of 23.
#[test]
fn layer_products_agree_within_their_sum_bounds() {
    let (d_in, n, k, out, b) = (19, 150, 7, 23, 41);
    let cfg = ModelBuilder::new(out)
        .encoder(d_in, Activation::Tanh)
        .code(n, Activation::Linear)
        .decoder(out, Activation::Linear)
        .loss(Loss::Mse)
        .topk(k, false)
        .build()
        .unwrap();
    let mut sp = SparseTopk::<f32>::new(&cfg, b, TopkPath::Sparse).unwrap();
    assert_eq!(sp.code_layer(), 1);
    let mut rng = StdRng::seed_from_u64(5);
    let x = uniform(&mut rng, b * d_in, 1.0);
    let (we, be) = (uniform(&mut rng, n * d_in, 0.3), uniform(&mut rng, n, 0.1));
    let (wd, bd) = (uniform(&mut rng, out * n, 0.3), uniform(&mut rng, out, 0.1));
    let dz = uniform(&mut rng, b * out, 0.05);
    let own = WeightUse::Own;

    // Code: the same selection on both paths, recorded in column order.
    let mut z = vec![0.0; b * n];
    dense_forward(&mut z, &x, &we, &be, b, d_in, n, Activation::Linear, own);
    let mut scratch = vec![0.0; b * n];
    let mut h = z.clone();
    topk_rows(&mut h, n, k, &mut scratch);
    let mut h_s = z.clone();
    sp.select(&mut h_s, &mut scratch);
    assert_eq!(h_s, h);
    let code = sp.code();
    for i in 0..b {
        let e = code.starts[i]..code.starts[i + 1];
        assert_eq!(e.len(), k);
        assert!(code.cols[e.clone()].windows(2).all(|w| w[0] < w[1]));
        for e in e {
            assert_eq!(code.vals[e], h[i * n + code.cols[e] as usize]);
        }
    }

    // Decoder forward: y = h·W_dᵀ + b_d, n products and the bias per element.
    let (mut y, mut y_s) = (vec![0.0; b * out], vec![f32::NAN; b * out]);
    dense_forward(&mut y, &h, &wd, &bd, b, n, out, Activation::Linear, own);
    sp.decoder_forward(&mut y_s, &wd, &bd, Activation::Linear);
    assert_within("decoder forward", &y_s, &y, |e| {
        let (i, o) = (e / out, e % out);
        let mag: f64 = (0..n)
            .map(|j| (h[i * n + j] * wd[o * n + j]).abs() as f64)
            .sum::<f64>()
            + bd[o].abs() as f64;
        2.0 * gamma(n + 1, U) * mag
    });

    // Decoder backward.
    let (mut dwd, mut dbd, mut dc) = (vec![0.0; out * n], vec![0.0; out], vec![0.0; b * n]);
    let own_acc = false;
    dense_backward(
        &mut dwd,
        &mut dbd,
        Some(&mut dc),
        &mut vec![0.0; b * n],
        &dz,
        &h,
        &wd,
        b,
        n,
        out,
        own,
        own_acc,
    );
    let (mut dwd_s, mut dbd_s) = (vec![f32::NAN; out * n], vec![f32::NAN; out]);
    sp.decoder_backward(&mut dwd_s, &mut dbd_s, &dz);
    assert_eq!(dbd_s, dbd);
    assert_within("dW_dec", &dwd_s, &dwd, |e| {
        let (o, j) = (e / n, e % n);
        let mag: f64 = (0..b)
            .map(|i| (dz[i * out + o] * h[i * n + j]).abs() as f64)
            .sum();
        2.0 * gamma(b, U) * mag
    });
    let code = sp.code();
    let dcode_s = sp.code_grad().to_vec();
    let (starts, cols) = (code.starts.to_vec(), code.cols.to_vec());
    // The code gradient at the kept entries, and the difference per (i, j).
    let mut delta = vec![0.0f64; b * n];
    for i in 0..b {
        for e in starts[i]..starts[i + 1] {
            let j = cols[e] as usize;
            let mag: f64 = (0..out)
                .map(|o| (dz[i * out + o] * wd[o * n + j]).abs() as f64)
                .sum();
            let d = (dcode_s[e] as f64 - dc[i * n + j] as f64).abs();
            assert!(
                d <= 2.0 * gamma(out, U) * mag,
                "code gradient ({i}, {j}): {} vs {}",
                dcode_s[e],
                dc[i * n + j]
            );
            delta[i * n + j] = d;
        }
    }

    // Code layer backward: dense chain (top-k and linear derivatives, then
    // the layer) against the sparse one.
    let mut g = dc.clone();
    topk_backward(&h, &mut g);
    let (mut dwe, mut dbe, mut dx) = (vec![0.0; n * d_in], vec![0.0; n], vec![0.0; b * d_in]);
    dense_backward(
        &mut dwe,
        &mut dbe,
        Some(&mut dx),
        &mut vec![0.0; b * d_in],
        &g,
        &x,
        &we,
        b,
        d_in,
        n,
        own,
        false,
    );
    let (mut dwe_s, mut dbe_s, mut dx_s) = (
        vec![f32::NAN; n * d_in],
        vec![f32::NAN; n],
        vec![f32::NAN; b * d_in],
    );
    let terms = CodeTerms {
        act: Activation::Linear,
        l1: None,
        kl: None,
    };
    sp.encoder_backward(&mut dwe_s, &mut dbe_s, Some(&mut dx_s), &x, &we, terms);
    // |Σ aᵢ(bᵢ + δᵢ) − Σ aᵢbᵢ| ≤ Σ|aᵢ|δᵢ(1 + 2γ) + 2γ·Σ|aᵢbᵢ|.
    let mixed = |terms: &mut dyn Iterator<Item = (f64, f64, f64)>, k: usize| {
        let gk = 2.0 * gamma(k, U);
        terms
            .map(|(a, b, d)| (a * d) * (1.0 + gk) + gk * (a * b).abs())
            .sum::<f64>()
    };
    let gj = |i: usize, j: usize| (g[i * n + j] as f64, delta[i * n + j]);
    assert_within("dW_enc", &dwe_s, &dwe, |e| {
        let (j, c) = (e / d_in, e % d_in);
        let mut t = (0..b).map(|i| {
            let (gv, d) = gj(i, j);
            ((x[i * d_in + c] as f64).abs(), gv, d)
        });
        mixed(&mut t, b)
    });
    assert_within("db_enc", &dbe_s, &dbe, |j| {
        let mut t = (0..b).map(|i| {
            let (gv, d) = gj(i, j);
            (1.0, gv, d)
        });
        mixed(&mut t, b)
    });
    assert_within("dx", &dx_s, &dx, |e| {
        let (i, c) = (e / d_in, e % d_in);
        let mut t = (0..n).map(|j| {
            let (gv, d) = gj(i, j);
            ((we[j * d_in + c] as f64).abs(), gv, d)
        });
        mixed(&mut t, n)
    });
}

/// Small models covering every term the sparse path handles: ReLU and
/// linear codes, BCE and MSE, L1 on the code, weight decay, KL on a sigmoid
/// code, a code after another layer, and BatchTopK.
fn models() -> Vec<(&'static str, ModelBuilder)> {
    use Activation::*;
    vec![
        (
            "relu bce",
            ModelBuilder::new(20)
                .code(64, Relu)
                .decoder(20, Sigmoid)
                .topk(4, false),
        ),
        (
            "linear mse l1 l2",
            ModelBuilder::new(20)
                .code(64, Linear)
                .decoder(20, Linear)
                .loss(Loss::Mse)
                .topk(5, false)
                .l1(0.01)
                .weight_decay(0.001),
        ),
        (
            "deep",
            ModelBuilder::new(20)
                .encoder(16, Tanh)
                .code(48, Relu)
                .decoder(16, Relu)
                .decoder(20, Sigmoid)
                .topk(3, false),
        ),
        (
            "batch topk",
            ModelBuilder::new(20)
                .code(64, Relu)
                .decoder(20, Sigmoid)
                .topk(4, true),
        ),
        (
            "sigmoid kl",
            ModelBuilder::new(20)
                .code(64, Sigmoid)
                .decoder(20, Sigmoid)
                .topk(4, false)
                .kl(0.1, 1.0),
        ),
    ]
}

fn compare_paths<T: Real>(u: f64) {
    let batch = 37;
    for (name, builder) in models() {
        let m = Autoencoder::<f64>::new(builder.build().unwrap(), 5)
            .unwrap()
            .cast::<T>();
        let mut rng = StdRng::seed_from_u64(9);
        let x: Vec<T> = (0..batch * 20)
            .map(|_| T::from_f64(rng.random_range(0.0..1.0)))
            .collect();
        let (mut ws_d, mut ws_s) = (
            m.workspace_with(batch, TopkPath::Dense),
            m.workspace_with(batch, TopkPath::Sparse),
        );
        assert!(
            !ws_d.uses_sparse_topk() && ws_s.uses_sparse_topk(),
            "{name}"
        );
        let mut g_d = vec![T::ZERO; m.params.len()];
        let mut g_s = vec![T::from_f64(f64::NAN); m.params.len()];
        let l_d = m.loss_and_grad(&mut ws_d, &x, &x, Some(&mut g_d)).unwrap();
        let l_s = m.loss_and_grad(&mut ws_s, &x, &x, Some(&mut g_s)).unwrap();
        let cfg = m.config();
        let k_max = (0..cfg.layers.len())
            .map(|l| cfg.width(l))
            .chain([batch, cfg.input])
            .max()
            .unwrap();
        let tol = 8.0 * gamma(k_max, u);
        let (ld, ls) = (l_d.total(), l_s.total());
        assert!(
            (ld - ls).abs() <= tol * ld.abs(),
            "{name}: loss {ls} vs {ld}"
        );
        for t in &m.layout().tensors {
            let (gd, gs) = (&g_d[t.range()], &g_s[t.range()]);
            let scale = gd.iter().fold(0.0f64, |s, v| s.max(v.to_f64().abs()));
            for (i, (a, b)) in gs.iter().zip(gd).enumerate() {
                let d = (a.to_f64() - b.to_f64()).abs();
                assert!(
                    d <= tol * scale,
                    "{name}: {}[{i}]: sparse {a} vs dense {b} (scale {scale})",
                    t.name
                );
            }
        }
    }
}

#[test]
fn losses_and_gradients_agree_in_f32() {
    compare_paths::<f32>(U);
}

#[test]
fn losses_and_gradients_agree_in_f64() {
    compare_paths::<f64>(f64::EPSILON / 2.0);
}

/// Training on the sparse path gives the same bits on 1 and 2 threads, with
/// enough samples, units and outputs for every product to split into
/// several tasks.
#[test]
fn sparse_training_is_bit_identical_on_1_and_2_threads() {
    let cfg = ModelBuilder::new(150)
        .code(512, Activation::Relu)
        .decoder(150, Activation::Linear)
        .loss(Loss::Mse)
        .topk(8, false)
        .build()
        .unwrap();
    // 96 is below the batch a step splits in two; 256 would be split on
    // the dense path, and is one part on the sparse path.
    for batch in [96, 256] {
        sparse_bits_on_1_and_2_threads(&cfg, batch);
    }
}

fn sparse_bits_on_1_and_2_threads(cfg: &ModelConfig, batch: usize) {
    let mut rng = StdRng::seed_from_u64(3);
    let x: Vec<f32> = (0..batch * 150)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let m = Autoencoder::<f32>::new(cfg.clone(), 4).unwrap();
            let mut t = Trainer::new(m, OptimizerConfig::default(), batch, 1).unwrap();
            t.set_topk_path(TopkPath::Sparse).unwrap();
            assert!(t.workspaces()[0].uses_sparse_topk());
            let losses: Vec<f64> = (0..3).map(|_| t.step(&x).unwrap().total()).collect();
            (losses, t.model.params)
        })
    };
    let (l1, p1) = run(1);
    let (l2, p2) = run(2);
    assert_eq!(l1, l2);
    assert!(p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn auto_takes_the_sparse_path_where_it_applies_and_pays() {
    let topk = preset("topk", 784).unwrap();
    assert!(sparse_applies(&topk));
    assert!(sparse_pays(&topk, 64) && !sparse_pays(&topk, 32));
    let m = Autoencoder::<f32>::new(topk, 1).unwrap();
    assert!(m.workspace_with(64, TopkPath::Auto).uses_sparse_topk());
    assert!(!m.workspace_with(32, TopkPath::Auto).uses_sparse_topk());
    assert!(m.workspace_with(32, TopkPath::Sparse).uses_sparse_topk());
    assert!(!m.workspace_with(64, TopkPath::Dense).uses_sparse_topk());

    // k = 128 of 1024 is too dense to pay; tied weights and models without
    // a top-k code never take the path.
    let wide_k = ModelBuilder::new(784)
        .code(1024, Activation::Relu)
        .decoder(784, Activation::Sigmoid)
        .topk(128, false)
        .build()
        .unwrap();
    assert!(sparse_applies(&wide_k) && !sparse_pays(&wide_k, 256));
    let tied = ModelBuilder::new(30)
        .code(64, Activation::Relu)
        .decoder(30, Activation::Sigmoid)
        .topk(2, false)
        .tied(true)
        .build()
        .unwrap();
    assert!(!sparse_applies(&tied));
    let m = Autoencoder::<f32>::new(tied, 1).unwrap();
    assert!(!m.workspace_with(64, TopkPath::Sparse).uses_sparse_topk());
    let plain = preset("shallow", 784).unwrap();
    assert!(!sparse_applies(&plain) && !sparse_pays(&plain, 1024));

    // A trainer keeps its path when the batch size changes.
    let m = Autoencoder::<f32>::new(preset("topk", 784).unwrap(), 1).unwrap();
    let mut t = Trainer::new(m, OptimizerConfig::default(), 64, 1).unwrap();
    t.set_topk_path(TopkPath::Dense).unwrap();
    t.set_batch(128).unwrap();
    assert!(!t.workspaces()[0].uses_sparse_topk());
    assert_eq!(t.workspaces()[0].topk_path(), TopkPath::Dense);

    // The path decides the parts of a batch: the dense path computes 128
    // samples in two halves, the sparse path in one part (its products are
    // split between the threads already).
    let sizes = |t: &Trainer<f32>| t.workspaces().iter().map(|w| w.batch()).collect::<Vec<_>>();
    assert_eq!(sizes(&t), [64, 64]);
    t.set_topk_path(TopkPath::Sparse).unwrap();
    assert_eq!(sizes(&t), [128]);
    assert!(t.workspaces()[0].uses_sparse_topk());
    t.set_batch(256).unwrap();
    assert_eq!(sizes(&t), [256]);
    t.set_topk_path(TopkPath::Dense).unwrap();
    assert_eq!(sizes(&t), [128, 128]);
}

#[test]
fn path_names_parse() {
    for p in [TopkPath::Auto, TopkPath::Dense, TopkPath::Sparse] {
        assert_eq!(TopkPath::from_name(p.name()).unwrap(), p);
    }
    assert_eq!(TopkPath::from_name(" Sparse ").unwrap(), TopkPath::Sparse);
    let e = TopkPath::from_name("fast").unwrap_err().to_string();
    assert!(
        e.contains("SPARSE_AE_TOPK_PATH") && e.contains("fast"),
        "{e}"
    );
}

/// The dead-latent counters of a step on the sparse path, counted from the
/// kept entries only, equal those counted from the dense code, for every
/// model of [`models`] (codes of ReLU, linear and sigmoid units, thresholds
/// 0 and ρ/10; the deep one's code is not its first layer), with units that
/// fire and units that do not.
#[test]
fn dead_latents_count_the_same_from_the_kept_entries() {
    let mut rng = StdRng::seed_from_u64(11);
    for (name, b) in models() {
        let cfg = b.dead_window(200).build().unwrap();
        let mut m = Autoencoder::<f32>::new(cfg.clone(), 5).unwrap();
        let mut ws = m.workspace_with(64, TopkPath::Sparse);
        assert!(ws.uses_sparse_topk(), "{name}");
        let x = uniform(&mut rng, 64 * 20, 1.0);
        // Shift the code's bias so that about half the kept entries of
        // linear and sigmoid codes are at or below the threshold: listed,
        // yet not firing.
        m.forward(&mut ws, &x).unwrap();
        let mut kept = ws.sparse_code().unwrap().1.vals.to_vec();
        kept.sort_by(f32::total_cmp);
        let (mid, t) = (kept[kept.len() / 2], code_threshold(&cfg));
        let shift = match cfg.producing_act(cfg.code_layer) {
            Activation::Sigmoid => (mid / (1.0 - mid)).ln() - (t / (1.0 - t)).ln(),
            _ => mid - t,
        };
        let bias = m.layout().tensors[m.layout().bias_of[cfg.code_layer].unwrap()].range();
        m.params[bias].iter_mut().for_each(|b| *b -= shift);
        let (mut sparse, mut dense) = (DeadLatents::new(&cfg), DeadLatents::new(&cfg));
        let mut below = 0;
        for _ in 0..4 {
            let x = uniform(&mut rng, 64 * 20, 1.0);
            m.forward(&mut ws, &x).unwrap();
            let t = code_threshold(&cfg);
            below += ws
                .sparse_code()
                .unwrap()
                .1
                .vals
                .iter()
                .filter(|&&v| v <= t)
                .count();
            sparse.update_from(&m, std::slice::from_ref(&ws));
            dense.update(m.code(&ws));
            assert_eq!(sparse.counters(), dense.counters(), "{name}");
        }
        let c = dense.counters();
        assert!(c.contains(&0) && c.iter().any(|&s| s > 0), "{name}: {c:?}");
        // (A ReLU code keeps values at its threshold, 0, only where a sample
        // has fewer than k positive ones.)
        let relu = cfg.producing_act(cfg.code_layer) == Activation::Relu;
        assert!(
            relu || below > 0,
            "{name}: no kept entry below the threshold"
        );
    }
}
