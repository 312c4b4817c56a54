//! The library calls the Python module rests on: the decoder alone, whole
//! reconstructions, and an observer that stops training between steps.

use sparse_ae::nn::{Autoencoder, LossParts, TopkPath, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::{FitOptions, Observer, Samples, Trainer, decode, encode, fit, reconstruct};

fn pixels(n: usize, dim: usize) -> Vec<u8> {
    (0..n * dim)
        .map(|i| ((i * 37 + i / dim * 11) % 256) as u8)
        .collect()
}

/// decode(encode(x)) is the reconstruction, for dense, k-sparse and
/// convolutional codes; with an input scale s both are divided by s.
#[test]
fn decoding_the_codes_gives_the_reconstruction() {
    for name in ["deep", "topk", "conv", "sparse-kl"] {
        let model = Autoencoder::<f32>::new(preset(name, 784).unwrap(), 3).unwrap();
        let px = pixels(7, 784);
        let s = Samples::u8(&px, 784).unwrap();
        let codes = encode(&model, s).unwrap();
        let rec = reconstruct(&model, s).unwrap();
        let dec = decode(&model, &codes, 1.0).unwrap();
        assert_eq!(rec.len(), 7 * 784);
        for (i, (a, b)) in rec.iter().zip(&dec).enumerate() {
            assert!((a - b).abs() <= 1e-5, "{name}: value {i}: {a} vs {b}");
        }
        if name == "sparse-kl" {
            let scaled = reconstruct(&model, s.scaled(2.0).unwrap()).unwrap();
            let codes2 = encode(&model, s.scaled(2.0).unwrap()).unwrap();
            let dec2 = decode(&model, &codes2, 2.0).unwrap();
            assert_eq!(scaled, dec2);
        }
    }
}

#[test]
fn decode_rejects_partial_codes_and_a_sparse_workspace() {
    let model = Autoencoder::<f32>::new(preset("topk", 784).unwrap(), 0).unwrap();
    let e = decode(&model, &[0.0; 1025], 1.0).unwrap_err().to_string();
    assert!(e.contains("codes of 1024 units"), "{e}");
    let mut ws = model.workspace_with(2, TopkPath::Sparse);
    if ws.uses_sparse_topk() {
        let e = model.decode(&mut ws, &[0.0; 2048]).unwrap_err().to_string();
        assert!(e.contains("TopkPath::Dense"), "{e}");
    }
    let mut ws = model.workspace_with(2, TopkPath::Dense);
    assert!(model.decode(&mut ws, &[0.0; 2047]).is_err());
    assert!(model.decode(&mut ws, &[0.0; 2048]).is_ok());
}

/// Stops after `after` steps.
struct StopAfter {
    after: usize,
    seen: usize,
}

impl Observer for StopAfter {
    fn on_step(&mut self, _: usize, _: usize, _: usize, _: &LossParts) {
        self.seen += 1;
    }
    fn keep_going(&mut self) -> bool {
        self.seen < self.after
    }
}

/// `keep_going() == false` ends `fit` before the next step with the
/// finished epochs; the steps taken are those of an uninterrupted run.
#[test]
fn an_observer_stops_training_between_steps() {
    let px = pixels(64, 784);
    let s = Samples::u8(&px, 784).unwrap();
    let opts = FitOptions {
        epochs: 3,
        ..FitOptions::default()
    };
    let new = || {
        let m = Autoencoder::<f32>::new(preset("shallow", 784).unwrap(), 1).unwrap();
        Trainer::new(m, OptimizerConfig::default(), 16, 5).unwrap()
    };
    let mut t = new();
    let h = fit(&mut t, s, None, &opts, &mut StopAfter { after: 6, seen: 0 }).unwrap();
    assert_eq!(t.steps(), 6);
    assert_eq!(h.len(), 1, "one whole epoch of 4 steps");
    let mut full = new();
    let max6 = FitOptions {
        max_steps: Some(6),
        ..opts.clone()
    };
    fit(&mut full, s, None, &max6, &mut sparse_ae::train::Silent).unwrap();
    assert_eq!(t.model.params, full.model.params);
}

/// Codes whose decoder output overflows f32 are refused naming the code
/// (decode gave inf and NaN where encode, reconstruct and score refuse).
#[test]
fn decode_refuses_outputs_beyond_f32() {
    let cfg = sparse_ae::nn::ModelConfig::from_json(
        r#"{"input": 8, "layers": [{"units": 4, "activation": "relu"}, {"units": 8, "activation": "linear"}], "code_layer": 0, "loss": "mse"}"#,
    )
    .unwrap();
    let model = Autoencoder::<f32>::new(cfg, 3).unwrap();
    let mut codes = vec![0.5f32; 3 * 4];
    decode(&model, &codes, 1.0).unwrap();
    codes[8..12].fill(3e38);
    let e = decode(&model, &codes, 1.0).unwrap_err().to_string();
    assert!(
        e.contains("sample 2 of the codes") && e.contains("not finite"),
        "{e}"
    );
}
