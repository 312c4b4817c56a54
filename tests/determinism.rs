//! The same seed gives bit-identical parameters after N steps on 1, 2 and 4
//! threads, whether the steps on 2 threads split their work or run on one
//! thread (as the kept-awake guard chooses by measurement), and a training
//! step allocates nothing after the first.

mod common;

use sparse_ae::kernels::Activation;
use sparse_ae::nn::dense::backward_cut;
use sparse_ae::nn::{Autoencoder, ModelBuilder, ModelConfig, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::parallel::{KeepAwake, Policy};
use sparse_ae::rng::Rng;
use sparse_ae::train::Trainer;

fn config(name: &str) -> ModelConfig {
    match name {
        // The `topk` shape as an SAE with every option on, dead window one batch.
        "sae" => common::full_sae(784, 1024, 32, 64),
        // Widths that split unevenly between the threads: the weights' rows
        // cut at 144 and 160 (`parallel::owned_half`), the decoder's
        // backward product cut in two sums at batch 33.
        "odd" => ModelBuilder::new(333)
            .encoder(300, Activation::Relu)
            .code(20, Activation::Relu)
            .decoder(300, Activation::Relu)
            .decoder(333, Activation::Sigmoid)
            .l1(1e-4)
            .build()
            .unwrap(),
        _ => preset(name, 784).unwrap(),
    }
}

fn train(name: &str, batch: usize, steps: usize, policy: Policy) -> Vec<f32> {
    let cfg = config(name);
    let d = cfg.input;
    let model = Autoencoder::<f32>::new(cfg, 42).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 7).unwrap();
    let mut rng = Rng::new(9);
    let data: Vec<f32> = (0..batch * d * 4).map(|_| rng.next_f32()).collect();
    // As `fit` does: on two threads the other one spins for work, and the
    // kernels split smaller operations.
    let awake = KeepAwake::with_policy(policy);
    for s in 0..steps {
        awake.beat();
        let k = s % 4;
        t.step(&data[k * batch * d..(k + 1) * batch * d]).unwrap();
    }
    t.model.params
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The "odd" model does take the uneven cuts it is there for.
#[test]
fn the_odd_model_is_cut() {
    assert_eq!(backward_cut(33, 300, 333), Some(160));
    assert_eq!(sparse_ae::parallel::owned_half(300), 144);
}

#[test]
fn one_and_two_threads_are_bit_identical() {
    for (name, batch) in [
        ("denoising", 32),
        ("deep", 32),
        ("deep", 256),
        ("overcomplete-kl", 256),
        ("sae", 64),
        ("conv", 16),
        ("odd", 33),
        // The first batch in two halves (33 and 32 samples).
        ("odd", 65),
    ] {
        let one = in_pool(1, || train(name, batch, 6, Policy::Split));
        assert!(one.iter().all(|v| v.is_finite()));
        // Split steps, and split and one-thread steps in turn; and on four
        // threads, where each half of a batch-256 step splits its products
        // over two.
        for (threads, policy) in [
            (2, Policy::Split),
            (2, Policy::Alternate),
            (4, Policy::Split),
        ] {
            let many = in_pool(threads, || train(name, batch, 6, policy));
            let same = one
                .iter()
                .zip(&many)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{name} at batch {batch}, {policy:?}: 1 and {threads} threads differ"
            );
        }
        // And training did move the parameters.
        let init = Autoencoder::<f32>::new(config(name), 42).unwrap();
        assert_ne!(init.params, one);
    }
}
