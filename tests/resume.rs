//! A checkpoint resumes training bit-identically, and a run that turns
//! non-finite stops with an error while the last good checkpoint stays.

mod common;

use sparse_ae::Error;
use sparse_ae::data::mnist::{Split, load_split};
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{load_checkpoint, load_model, save_checkpoint, save_model};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, EncoderInit, Loss, ModelBuilder, preset};
use sparse_ae::optim::{OptimizerConfig, SgdConfig};
use sparse_ae::train::{EpochMetrics, FitOptions, Observer, Samples, Silent, Trainer, fit};

fn trainer(name: &str) -> Trainer<f32> {
    let model = Autoencoder::<f32>::new(preset(name, 100).unwrap(), 3).unwrap();
    Trainer::new(model, OptimizerConfig::default(), 8, 4).unwrap()
}

/// An epoch's record without what measures time, exactly (every f64 in
/// its shortest round-trip form).
fn record(m: &EpochMetrics) -> String {
    format!(
        "{} {} {:?} {:?} {:?} {} {} {:?} {} {} {:?} {:?} {:?}",
        m.epoch,
        m.step,
        m.train,
        m.test,
        m.l0,
        m.dead_units,
        m.code_units,
        m.dead_fraction,
        m.dead_window_units,
        m.window_full,
        m.rho,
        m.mean_activation,
        m.firing_rate
    )
}

#[test]
fn resume_mid_epoch_is_bit_identical() {
    let dir = common::temp_dir("resume");
    common::write_tiny_mnist(&dir, 10, 100, 20);
    let data = load_split(&dir, Split::Train).unwrap();
    let samples = Samples::u8(&data.pixels, 100).unwrap();
    let opts = FitOptions {
        epochs: 3,
        shuffle_seed: 11,
        ..FitOptions::default()
    };
    for name in ["denoising", "sparse-kl", "sparse-l1"] {
        let mut straight = trainer(name);
        let straight_records = fit(&mut straight, samples, None, &opts, &mut Silent).unwrap();
        assert_eq!(straight.steps(), 3 * 12);

        let mut first = trainer(name);
        let stop = FitOptions {
            max_steps: Some(17),
            ..opts.clone()
        };
        let before = fit(&mut first, samples, None, &stop, &mut Silent).unwrap();
        assert_eq!(first.steps(), 17);
        let ck = dir.join(format!("{name}.ck.safetensors"));
        save_checkpoint(&ck, &first, &Value::Null).unwrap();
        drop(first);
        let (mut resumed, _) = load_checkpoint(&ck).unwrap();
        let after = fit(&mut resumed, samples, None, &opts, &mut Silent).unwrap();
        assert_eq!(resumed.steps(), straight.steps());
        // The records: epoch 1, epoch 2 over its first 5 steps, then
        // (resumed) epoch 2 over all 12 and epoch 3, as in the run never
        // stopped.
        let records: Vec<String> = before.iter().chain(&after).map(record).collect();
        let want: Vec<String> = straight_records.iter().map(record).collect();
        assert_eq!(records.len(), 4, "{name}");
        assert_eq!(records[0], want[0], "{name}");
        assert_ne!(records[1], want[1], "{name}: epoch 2 stopped after 5 steps");
        assert_eq!(
            records[2..],
            want[1..],
            "{name}: the resumed epochs' records"
        );
        let same = resumed
            .model
            .params
            .iter()
            .zip(&straight.model.params)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{name}: resumed run differs from the uninterrupted one"
        );
        assert_eq!(resumed.noise_rng, straight.noise_rng);

        // And a saved model loads back exactly.
        let mf = dir.join(format!("{name}.safetensors"));
        save_model(&mf, &straight.model).unwrap();
        let back = load_model(&mf).unwrap();
        assert_eq!(back.params, straight.model.params);
        assert_eq!(back.config(), straight.model.config());
    }
}

/// An SAE with AuxK resumes bit-identically: the dead-latent counters,
/// which decide the AuxK mask, travel in the checkpoint.
#[test]
fn resume_keeps_the_dead_latent_counters() {
    let dir = common::temp_dir("resume-sae");
    common::write_tiny_mnist(&dir, 10, 100, 20);
    let data = load_split(&dir, Split::Train).unwrap();
    let samples = Samples::u8(&data.pixels, 100).unwrap();
    let cfg = ModelBuilder::new(100)
        .code(64, Activation::Relu)
        .decoder(100, Activation::Linear)
        .loss(Loss::Mse)
        .topk(4, false)
        .unit_norm_decoder(true)
        .encoder_init(EncoderInit::DecoderTranspose)
        .pre_encoder_bias(true)
        .auxk(Some(8), 0.25)
        .dead_window(24)
        .build()
        .unwrap();
    let new = || {
        let m = Autoencoder::<f32>::new(cfg.clone(), 5).unwrap();
        Trainer::new(m, OptimizerConfig::default(), 8, 6).unwrap()
    };
    let opts = FitOptions {
        epochs: 3,
        shuffle_seed: 2,
        ..FitOptions::default()
    };
    let mut straight = new();
    let hist = fit(&mut straight, samples, None, &opts, &mut Silent).unwrap();
    assert!(hist.iter().any(|m| m.train.auxk > 0.0), "AuxK never ran");
    let mut first = new();
    let stop = FitOptions {
        max_steps: Some(19),
        ..opts.clone()
    };
    fit(&mut first, samples, None, &stop, &mut Silent).unwrap();
    assert!(first.dead_latents().dead() > 0);
    let ck = dir.join("sae.ck.safetensors");
    save_checkpoint(&ck, &first, &Value::Null).unwrap();
    let (mut resumed, _) = load_checkpoint(&ck).unwrap();
    assert_eq!(resumed.dead_latents(), first.dead_latents());
    fit(&mut resumed, samples, None, &opts, &mut Silent).unwrap();
    assert_eq!(resumed.dead_latents(), straight.dead_latents());
    let same = resumed
        .model
        .params
        .iter()
        .zip(&straight.model.params)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "the resumed SAE differs from the uninterrupted one");
}

/// Saves a checkpoint after each epoch; after the first, it makes the
/// learning rate absurd so the next epoch blows up.
struct Sabotage<'a> {
    path: &'a std::path::Path,
    saved: usize,
}

impl Observer for Sabotage<'_> {
    fn on_epoch(&mut self, _m: &EpochMetrics, t: &Trainer<f32>) -> sparse_ae::Result<()> {
        save_checkpoint(self.path, t, &Value::Null)?;
        self.saved += 1;
        Ok(())
    }
}

#[test]
fn non_finite_training_stops_and_keeps_the_last_checkpoint() {
    let dir = common::temp_dir("nan");
    common::write_tiny_mnist(&dir, 10, 64, 8);
    let data = load_split(&dir, Split::Train).unwrap();
    let samples = Samples::u8(&data.pixels, 100).unwrap();
    let mut t = trainer("deep");
    let ck = dir.join("ck.safetensors");
    let mut obs = Sabotage {
        path: &ck,
        saved: 0,
    };
    let opts = FitOptions {
        epochs: 1,
        ..FitOptions::default()
    };
    fit(&mut t, samples, None, &opts, &mut obs).unwrap();
    let good = t.model.params.clone();
    t.opt.config = OptimizerConfig::Sgd(SgdConfig {
        lr: 1e30,
        momentum: 0.0,
    });
    t.opt.v.clear();
    let opts = FitOptions {
        epochs: 3,
        ..FitOptions::default()
    };
    let err = fit(&mut t, samples, None, &opts, &mut obs).unwrap_err();
    match &err {
        Error::NonFinite { step, .. } => assert!(*step > 8, "step {step}"),
        e => panic!("expected a non-finite error, got {e}"),
    }
    assert!(err.to_string().contains("step"), "{err}");
    assert_eq!(obs.saved, 1);
    let (back, _) = load_checkpoint(&ck).unwrap();
    assert_eq!(back.model.params, good, "the checkpoint was overwritten");
}
