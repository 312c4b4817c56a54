//! Training on the real MNIST: a preset learns, well beyond the baseline of
//! predicting the mean image.

mod common;

use sparse_ae::data::mnist::{Split, load_split};
use sparse_ae::kernels::Real;
use sparse_ae::nn::{Autoencoder, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::{FitOptions, Samples, Silent, Trainer, evaluate, fit};

/// Mean BCE of predicting every test pixel by the training set's mean image.
fn mean_image_bce(train: &[u8], test: &[u8], d: usize) -> f64 {
    let n = train.len() / d;
    let mut mean = vec![0.0f64; d];
    for row in train.chunks_exact(d) {
        for (m, &p) in mean.iter_mut().zip(row) {
            *m += p as f64 / 255.0 / n as f64;
        }
    }
    let logit: Vec<f64> = mean
        .iter()
        .map(|&m| {
            let m = m.clamp(1e-7, 1.0 - 1e-7);
            (m / (1.0 - m)).ln()
        })
        .collect();
    let mut sum = 0.0;
    for row in test.chunks_exact(d) {
        let x: Vec<f64> = row.iter().map(|&p| p as f64 / 255.0).collect();
        sum += f64::bce_logits(&logit, &x, None, 1.0);
    }
    sum / test.len() as f64
}

#[test]
fn sparse_l1_learns_real_mnist() {
    let Some(dir) = common::real_mnist() else {
        return;
    };
    let train = load_split(&dir, Split::Train).unwrap();
    let test = load_split(&dir, Split::Test).unwrap();
    assert_eq!((train.n, train.rows, train.cols), (60_000, 28, 28));
    assert_eq!(test.n, 10_000);
    let d = 784;
    let baseline = mean_image_bce(&train.pixels, &test.pixels, d);
    let model = Autoencoder::<f32>::new(preset("sparse-l1", d).unwrap(), 1).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 64, 2).unwrap();
    let opts = FitOptions {
        epochs: 1,
        max_steps: Some(400),
        ..FitOptions::default()
    };
    let train_s = Samples::u8(&train.pixels, d).unwrap();
    let test_s = Samples::u8(&test.pixels, d).unwrap();
    let before = evaluate(&t.model, test_s, 1000).unwrap().0.recon;
    fit(&mut t, train_s, None, &opts, &mut Silent).unwrap();
    let (after, stats) = evaluate(&t.model, test_s, 1000).unwrap();
    eprintln!(
        "mean-image BCE {baseline:.4}, before {before:.4}, after 400 steps {:.4}, L0 {:.1}",
        after.recon,
        stats.l0()
    );
    assert!(
        before > baseline,
        "an untrained model should not beat the mean image"
    );
    assert!(
        after.recon < baseline - 0.06,
        "test BCE {:.4} is not well below the mean-image BCE {baseline:.4}",
        after.recon
    );
    assert!(stats.l0() > 0.0 && stats.l0() <= 32.0);
}
