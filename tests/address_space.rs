//! Sizes a 64-bit address space holds but a 32-bit one does not. On a
//! 32-bit target (wasm32-wasip1, where `/proc/meminfo` is the host's and
//! gave a budget of 19 GB for a 4 GiB address space) the budget is at most
//! `isize::MAX` bytes, so a model, a trainer or a workspace that does not
//! fit is refused with an error naming it (they panicked with `capacity
//! overflow` or aborted on the allocation); a 64-bit build takes the same
//! sizes. `.ci/run` runs this file on wasm32 under Node as well.

use sparse_ae::Error;
use sparse_ae::kernels::Activation;
use sparse_ae::memory;
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig, Workspace, workspace_bytes};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::Trainer;

const WIDE: bool = usize::BITS >= 64;

/// A dense autoencoder `input`–`code`–`input` (ReLU code, linear output).
fn dense(input: usize, code: usize) -> ModelConfig {
    ModelBuilder::new(input)
        .code(code, Activation::Relu)
        .decoder(input, Activation::Linear)
        .loss(Loss::Mse)
        .build()
        .unwrap()
}

/// A model of `cfg` with zero parameters (no time spent drawing them).
fn zeros(cfg: ModelConfig) -> Autoencoder<f32> {
    let n = sparse_ae::nn::ParamLayout::new(&cfg).len;
    Autoencoder::with_params(cfg, vec![0.0; n]).unwrap()
}

/// An [`Error::Memory`] naming `what` and the budget.
fn assert_over_budget(e: &Error, what: &str) {
    let msg = e.to_string();
    assert!(matches!(e, Error::Memory { .. }), "{e:?}");
    assert!(
        msg.contains(&format!("{what} needs"))
            && msg.contains("more than the memory budget of")
            && msg.contains("32-bit pointers"),
        "{msg}"
    );
}

#[test]
fn the_budget_fits_in_the_address_space() {
    assert_eq!(memory::MAX_BUDGET, isize::MAX as u64);
    assert!(memory::budget() <= memory::MAX_BUDGET);
    const { assert!(memory::FALLBACK_BUDGET <= memory::MAX_BUDGET) };
    let four_gib = 4 << 30;
    let e = memory::check_size("a 4 GiB buffer", four_gib);
    if WIDE {
        // No cap a machine would meet.
        assert_eq!(memory::budget(), memory::default_budget());
        e.unwrap();
    } else {
        assert!(memory::budget() < 1 << 31, "{}", memory::budget());
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("a 4 GiB buffer needs 4.29 GB, more than this target's 32-bit address space can hold"),
            "{msg}"
        );
        // A buffer the allocator cannot describe is named the same way.
        let e = memory::try_vec_u64("a 4 GiB buffer", four_gib / 4, 0f32).unwrap_err();
        assert!(e.to_string().contains("32-bit address space"), "{e}");
    }
}

/// 32768–16384–32768: 2³⁰ + 2¹⁴ + 2¹⁵ parameters, under the 2³¹ cap,
/// 4.3 GB of f32.
#[test]
fn a_model_larger_than_the_address_space_is_refused() {
    let cfg = dense(1 << 15, 1 << 14);
    let bytes = memory::f32_bytes(sparse_ae::nn::ParamLayout::new(&cfg).len);
    assert!(bytes > 4 << 30);
    if WIDE {
        // Taken (not allocated here: 4.3 GB).
        memory::check_size("the model", bytes).unwrap();
    } else {
        let e = Autoencoder::<f32>::new(cfg, 0).unwrap_err();
        assert_over_budget(&e, "the model");
    }
}

/// 16384–8192–16384: 2²⁸ parameters (1.07 GB) build, but a trainer's
/// gradients and Adam moments beside them do not fit.
#[test]
fn a_trainer_larger_than_the_address_space_is_refused() {
    let cfg = dense(1 << 14, 1 << 13);
    if WIDE {
        memory::check_size("training", 5 << 30).unwrap();
        return;
    }
    let e = Trainer::new(zeros(cfg), OptimizerConfig::default(), 256, 0).unwrap_err();
    assert_over_budget(&e, "training at batch size 256");
}

/// Input 2²⁴ and a code of 1: 200 MB of parameters, but a workspace at
/// batch 64 has 2³⁰ values per layer.
#[test]
fn a_workspace_larger_than_the_address_space_is_refused() {
    let cfg = dense(1 << 24, 1);
    let (fixed, per) = workspace_bytes(&cfg, 64, 4);
    let bytes = fixed + 64 * per;
    assert!(bytes > 8 << 30);
    if WIDE {
        // Taken (not allocated here: 8.6 GB).
        memory::check_size("a workspace at batch size 64", bytes).unwrap();
        return;
    }
    let e = Workspace::<f32>::try_new(&cfg, 64).unwrap_err().to_string();
    assert!(
        e.contains("a workspace at batch size 64 needs 8.59 GB, more than this target's 32-bit address space can hold"),
        "{e}"
    );
    let model = zeros(cfg);
    let e = model
        .try_workspace_with(64, sparse_ae::nn::TopkPath::Dense)
        .unwrap_err();
    assert!(e.to_string().contains("32-bit address space"), "{e}");
    let e = Trainer::new(model.clone(), OptimizerConfig::default(), 64, 0).unwrap_err();
    assert_over_budget(&e, "training at batch size 64");
    // Evaluation takes the batch that fits.
    let b = model.eval_batch(64).unwrap();
    assert!((1..64).contains(&b), "{b}");
}

/// Configurations whose sizes overflow a 32-bit `usize` are configuration
/// errors there; a 64-bit build refuses only the ones too large anywhere.
#[test]
fn configurations_too_large_for_the_target_are_refused() {
    let too_large_anywhere = [
        // 2³² + … parameters: past the cap of 2³¹.
        r#"{"input": 65536, "loss": "mse", "code_layer": 0, "layers": [{"units": 65536, "activation": "relu"}, {"units": 65536, "activation": "linear"}]}"#,
        // A width of 2³² (a 32-bit usize cannot hold it).
        r#"{"input": 4, "loss": "mse", "code_layer": 0, "layers": [{"units": 4294967296, "activation": "relu"}, {"units": 4, "activation": "linear"}]}"#,
        r#"{"input": 4, "loss": "mse", "code_layer": 0, "layers": [{"units": 4294967300, "activation": "relu"}, {"units": 4, "activation": "linear"}]}"#,
        r#"{"input": 4, "image": [65536, 65536, 1], "loss": "mse", "code_layer": 0, "layers": [{"type": "conv2d", "channels": 1, "kernel": 1, "activation": "relu"}, {"type": "conv2d", "channels": 1, "kernel": 1, "activation": "linear"}]}"#,
    ];
    for json in too_large_anywhere {
        let e = ModelConfig::from_json(json).unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{json}: {e:?}");
    }
    // im2col's K·P = 4095²·4096² values: more than 32 bits count.
    let conv = r#"{"input": 16777216, "image": [1, 4096, 4096], "loss": "mse", "code_layer": 0, "layers": [{"type": "conv2d", "channels": 1, "kernel": 4095, "padding": 2047, "activation": "relu"}, {"type": "conv2d", "channels": 1, "kernel": 1, "padding": 0, "activation": "linear"}]}"#;
    let parsed = ModelConfig::from_json(conv);
    assert_eq!(parsed.is_ok(), WIDE, "{:?}", parsed.as_ref().err());
    match parsed {
        Ok(cfg) => {
            // Valid, and refused by the budget at any batch, by its size.
            let (fixed, _) = workspace_bytes(&cfg, 1, 4);
            assert!(fixed > 1 << 40 && fixed < memory::MAX_BUDGET, "{fixed}");
        }
        Err(e) => assert!(e.to_string().contains("buffer sizes overflow usize"), "{e}"),
    }
}
