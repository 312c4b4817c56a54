//! Train a shallow sparse autoencoder through the library, with no CLI.
//!
//! `cargo run --release --example embed --no-default-features --features gzip -- DIR`
//! where DIR holds the MNIST IDX files.

use sparse_ae::data::mnist::{Split, load_split};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, ModelBuilder};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::{FitOptions, Samples, Silent, Trainer, evaluate, fit};

fn main() -> sparse_ae::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/datasets/mnist".into());
    let train = load_split(dir.as_ref(), Split::Train)?;
    let test = load_split(dir.as_ref(), Split::Test)?;
    let cfg = ModelBuilder::new(784)
        .code(32, Activation::Relu)
        .decoder(784, Activation::Sigmoid)
        .l1(1e-5)
        .build()?;
    let model = Autoencoder::<f32>::new(cfg, 0)?;
    let mut trainer = Trainer::new(model, OptimizerConfig::default(), 256, 0)?;
    let (train, test) = (
        Samples::u8(&train.pixels, 784)?,
        Samples::u8(&test.pixels, 784)?,
    );
    let opts = FitOptions {
        epochs: 2,
        ..FitOptions::default()
    };
    for m in fit(&mut trainer, train, Some(test), &opts, &mut Silent)? {
        println!(
            "epoch {}: test loss {:.4}, L0 {:.1}",
            m.epoch,
            m.test.unwrap().total(),
            m.l0
        );
    }
    let (loss, stats) = evaluate(&trainer.model, test, 1000)?;
    println!(
        "final test BCE {:.4}, {} dead units",
        loss.recon,
        stats.dead()
    );
    Ok(())
}
