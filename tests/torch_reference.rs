//! The engine against PyTorch: `tests/reference/make_torch_reference.py`
//! (float64 autograd, the header says how to run it) wrote the initial
//! weights, one batch, the loss parts, the step-0 gradients and the
//! parameters after 1 and 10 Adam steps for seven presets built for 16 inputs
//! into `tests/reference/torch_reference.safetensors` (F32 tensors, loss parts
//! as f64 text). From the same weights and batch, the f64 model must give:
//! - each loss part within 10⁻⁶ relative;
//! - each gradient within 10⁻⁵ of its tensor's largest gradient entry;
//! - after 1 and 10 steps of the engine's Adam (the scalar kernel in f64,
//!   Keras defaults), each parameter within 10⁻⁵ of its tensor's largest
//!   parameter.
//!
//! The fixture stores F32, so its gradients and parameters are rounded to
//! 2⁻²⁴ relative; every value was computed in float64 from f32-rounded
//! weights and data, so both sides start from the same numbers.

use sparse_ae::io::safetensors::SafeTensors;
use sparse_ae::kernels::AdamHyper;
use sparse_ae::kernels::elementwise::scalar;
use sparse_ae::nn::{Autoencoder, preset};
use std::path::Path;

const PRESETS: [&str; 7] = [
    "shallow",
    "deep",
    "sparse-l1",
    "sparse-kl",
    "overcomplete-kl",
    "conv",
    "topk",
];
const INPUT: usize = 16;
const BATCH: usize = 8;

fn fixture() -> SafeTensors {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/torch_reference.safetensors");
    SafeTensors::read(&path).unwrap()
}

fn tensor(st: &SafeTensors, name: &str) -> Vec<f64> {
    let t = st
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from the fixture"));
    t.data.iter().map(|&v| f64::from(v)).collect()
}

/// The f64 model of `name` with the fixture's initial parameters.
fn model(st: &SafeTensors, name: &str) -> Autoencoder<f64> {
    let mut cfg = preset(name, INPUT).unwrap();
    if name == "sparse-l1" {
        cfg.l1.as_mut().unwrap().lambda = 1e-3;
    }
    let layout = Autoencoder::<f64>::new(cfg.clone(), 0)
        .unwrap()
        .layout()
        .clone();
    let mut params = vec![0.0; layout.len];
    for t in &layout.tensors {
        let want = st.get(&format!("{name}/init/{}", t.name)).unwrap();
        assert_eq!(want.shape, t.shape, "{name} {}", t.name);
        params[t.range()].copy_from_slice(&tensor(st, &format!("{name}/init/{}", t.name)));
    }
    Autoencoder::with_params(cfg, params).unwrap()
}

/// Every entry of every tensor within `tol`·(the tensor's largest |want|).
fn assert_close(m: &Autoencoder<f64>, got: &[f64], st: &SafeTensors, key: &str, tol: f64) {
    for t in &m.layout().tensors {
        let want = tensor(st, &format!("{key}/{}", t.name));
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for (i, (&g, &w)) in got[t.range()].iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= tol * scale,
                "{key}/{}[{i}]: engine {g:e}, PyTorch {w:e} (scale {scale:e})",
                t.name
            );
        }
    }
}

#[test]
fn loss_gradients_and_adam_match_pytorch() {
    let st = fixture();
    for name in PRESETS {
        let m = model(&st, name);
        let x = tensor(&st, &format!("{name}/x"));
        assert_eq!(x.len(), BATCH * INPUT);
        let mut ws = m.workspace(BATCH);
        let mut g = vec![0.0; m.params.len()];
        let parts = m.loss_and_grad(&mut ws, &x, &x, Some(&mut g)).unwrap();

        let want: Vec<f64> = st
            .meta(&format!("{name}/loss"))
            .unwrap()
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        let got = [parts.recon, parts.l1, parts.kl, parts.l2];
        for (part, (&g, &w)) in ["recon", "l1", "kl", "l2"]
            .iter()
            .zip(got.iter().zip(&want))
        {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs(),
                "{name} {part}: engine {g:e}, PyTorch {w:e}"
            );
        }
        assert!(want[0] > 0.0, "{name}: no reconstruction loss");
        assert_close(&m, &g, &st, &format!("{name}/grad"), 1e-5);

        // The engine's Adam on the same batch, gradients recomputed each step.
        let mut p = m.params.clone();
        let (mut mo, mut vo) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for t in 1..=10u64 {
            let cur = Autoencoder::with_params(m.config().clone(), p.clone()).unwrap();
            cur.loss_and_grad(&mut ws, &x, &x, Some(&mut g)).unwrap();
            let h = AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, t);
            scalar::adam_step(&mut p, &g, &mut mo, &mut vo, &h);
            if t == 1 || t == 10 {
                assert_close(&m, &p, &st, &format!("{name}/step{t}"), 1e-5);
            }
        }
    }
}
