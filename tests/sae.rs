//! The SAE options in training: a unit-norm decoder stays unit-norm, the
//! encoder starts as the decoder's transpose, the dead fraction reaches the
//! epoch metrics.

mod common;

use sparse_ae::data::mnist::{Split, load_split};
use sparse_ae::nn::Autoencoder;
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::{FitOptions, Samples, Silent, Trainer, fit};

/// Largest |‖column‖ − 1| of the decoder weight `(d_in, d_sae)`.
fn column_norm_error(m: &Autoencoder<f32>) -> f64 {
    let w = &m.params[m.layout().weight(1).range()];
    let d_sae = m.layout().weight(1).shape[1];
    (0..d_sae)
        .map(|j| {
            let n: f64 = w
                .iter()
                .skip(j)
                .step_by(d_sae)
                .map(|&v| (v as f64).powi(2))
                .sum();
            (n.sqrt() - 1.0).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn fresh_encoder_is_the_unit_norm_decoder_transposed() {
    let m = Autoencoder::<f32>::new(common::full_sae(12, 20, 4, 100), 3).unwrap();
    assert!(column_norm_error(&m) < 1e-6);
    let enc = &m.params[m.layout().weight(0).range()];
    let dec = &m.params[m.layout().weight(1).range()];
    for j in 0..20 {
        for c in 0..12 {
            assert_eq!(enc[j * 12 + c], dec[c * 20 + j]);
        }
    }
    // Without the options the same seed gives an ordinary Glorot start.
    let mut plain_cfg = common::full_sae(12, 20, 4, 100);
    plain_cfg.sae = Default::default();
    let plain = Autoencoder::<f32>::new(plain_cfg, 3).unwrap();
    assert!(column_norm_error(&plain) > 1e-2);
}

#[test]
fn decoder_columns_stay_unit_norm_and_dead_fraction_is_reported() {
    let dir = common::temp_dir("sae-train");
    common::write_tiny_mnist(&dir, 10, 96, 16);
    let data = load_split(&dir, Split::Train).unwrap();
    let samples = Samples::u8(&data.pixels, 100).unwrap();
    let model = Autoencoder::<f32>::new(common::full_sae(100, 48, 4, 40), 1).unwrap();
    let opt = OptimizerConfig::default();
    let mut t = Trainer::new(model, opt, 8, 0).unwrap();
    let opts = FitOptions {
        epochs: 2,
        ..FitOptions::default()
    };
    let hist = fit(&mut t, samples, None, &opts, &mut Silent).unwrap();
    assert!(column_norm_error(&t.model) < 1e-5);
    let last = hist.last().unwrap();
    assert_eq!(last.dead_fraction, t.dead_latents().fraction());
    assert!(last.dead_fraction > 0.0 && last.dead_fraction < 1.0);
    // The CSV and JSON lines carry it.
    assert!(
        last.csv_row()
            .contains(&format!(",{},", last.dead_fraction))
    );
    assert!(last.json_line().contains("\"dead_fraction\":"));
    // Each counted unit is dead exactly when its counter reached the window.
    let d = t.dead_latents();
    for (j, &c) in d.counters().iter().enumerate() {
        assert_eq!(d.is_dead(j), c >= 40);
    }
}
