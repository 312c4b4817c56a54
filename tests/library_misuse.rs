//! Misuse of the library's API that a caller can make: each gets an error
//! naming the problem (or a documented panic), never a panic deep in the
//! kernels, an abort, a hang or a wrong result. Each case here once did
//! one of those.

use sparse_ae::Error;
use sparse_ae::dist::MicroPlan;
use sparse_ae::gradcheck::random_setup;
use sparse_ae::io::model_file::{save_checkpoint, save_model};
use sparse_ae::io::safetensors;
use sparse_ae::kernels::Activation::{Linear, Relu, Sigmoid};
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::{FitOptions, Trainer, nothing_left};

fn dense(input: usize, code: usize) -> ModelConfig {
    ModelBuilder::new(input)
        .code(code, Relu)
        .decoder(input, Sigmoid)
        .build()
        .unwrap()
}

fn text(r: sparse_ae::Result<impl std::fmt::Debug>) -> String {
    r.unwrap_err().to_string()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("misuse-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A workspace is for the model it was made for. One of another model
/// (a wider or narrower code, another depth, top-k, KL, a pre-encoder
/// bias) panicked inside the kernels ("gemm: C: 3×8 view … slice has 6"),
/// or ran and left a code of the wrong length; now every entry point that
/// takes one refuses it, the others before they compute anything.
#[test]
fn a_workspace_of_another_model_is_refused() {
    let models: Vec<ModelConfig> = vec![
        dense(4, 2),
        dense(4, 8),
        ModelBuilder::new(4)
            .encoder(6, Relu)
            .code(2, Relu)
            .decoder(4, Sigmoid)
            .build()
            .unwrap(),
        ModelBuilder::new(4)
            .code(8, Relu)
            .topk(2, true)
            .decoder(4, Linear)
            .loss(Loss::Mse)
            .build()
            .unwrap(),
        ModelBuilder::new(4)
            .code(8, Sigmoid)
            .kl(0.1, 3.0)
            .decoder(4, Sigmoid)
            .build()
            .unwrap(),
    ];
    let x = [0.5f32; 12];
    for (i, a) in models.iter().enumerate() {
        for (j, b) in models.iter().enumerate() {
            let a = Autoencoder::<f32>::new(a.clone(), 0).unwrap();
            let b = Autoencoder::<f32>::new(b.clone(), 1).unwrap();
            let mut ws = a.workspace(3);
            let results = [
                b.forward(&mut ws, &x).map(drop),
                b.loss_and_grad(&mut ws, &x, &x, None).map(drop),
                b.check_outputs(&ws, &x, 0, None),
            ];
            for (k, r) in results.into_iter().enumerate() {
                if i == j {
                    r.unwrap_or_else(|e| panic!("{i} {k}: {e}"));
                } else {
                    let e = r.unwrap_err();
                    assert!(matches!(e, Error::Shape { .. }), "{i} {j}: {e:?}");
                    assert!(e.to_string().contains("another model"), "{e}");
                }
            }
            if i != j {
                let code = vec![0.5; 3 * b.config().width(b.config().code_layer)];
                assert!(text(b.decode(&mut ws, &code)).contains("another model"));
                let mut out = [0.0f32; 12];
                let panics = |f: &mut dyn FnMut()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
                };
                assert!(panics(&mut || b.reconstruction(&ws, &mut out)));
                assert!(panics(&mut || {
                    let _ = b.code(&ws);
                }));
            }
        }
    }
}

/// A batch of no samples is refused: its loss was `Ok(NaN)`, the mean of
/// nothing.
#[test]
fn a_workspace_of_no_samples_is_refused() {
    let m = Autoencoder::<f32>::new(dense(4, 2), 0).unwrap();
    let mut ws = m.workspace(0);
    let e = text(m.loss_and_grad(&mut ws, &[], &[], None));
    assert!(e.contains("batch size 0"), "{e}");
    assert!(text(m.forward(&mut ws, &[])).contains("batch size 0"));
}

/// Inputs must be finite: with a batch top-k code, one NaN value blanked
/// the code of every sample of the batch and the loss came out finite.
#[test]
fn non_finite_inputs_are_refused_naming_the_value() {
    let cfg = ModelBuilder::new(4)
        .code(8, Relu)
        .topk(2, true)
        .decoder(4, Linear)
        .loss(Loss::Mse)
        .build()
        .unwrap();
    let m = Autoencoder::<f32>::new(cfg, 0).unwrap();
    let mut ws = m.workspace(2);
    let mut x = [0.5f32; 8];
    m.loss_and_grad(&mut ws, &x, &[0.5; 8], None).unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        x[5] = bad;
        let e = text(m.loss_and_grad(&mut ws, &x, &[0.5; 8], None));
        assert!(
            e.contains("feature 1 of sample 1") && e.contains(&bad.to_string()),
            "{e}"
        );
        let e = text(m.loss_and_grad(&mut ws, &[0.5; 8], &x, None));
        assert!(e.contains("(target)"), "{e}");
        assert!(text(m.forward(&mut ws, &x)).contains("feature 1 of sample 1"));
    }
}

/// `check_outputs` with an input shorter than its batch: an error, where
/// it panicked slicing it.
#[test]
fn check_outputs_checks_the_input_length() {
    let m = Autoencoder::<f32>::new(dense(4, 2), 0).unwrap();
    let mut ws = m.workspace(2);
    m.forward(&mut ws, &[0.5; 8]).unwrap();
    let e = text(m.check_outputs(&ws, &[0.5; 4], 0, None));
    assert!(e.contains("2 × 4 = 8 values"), "{e}");
}

/// A model or checkpoint holding a value that is not finite is not
/// written: the loaders refuse such a file, so saving it left a file that
/// could not be read back (in place of the good one it replaced).
#[test]
fn a_non_finite_parameter_is_not_saved() {
    let d = scratch("non-finite");
    let path = d.join("m.safetensors");
    let mut m = Autoencoder::<f32>::new(dense(4, 2), 0).unwrap();
    save_model(&path, &m).unwrap();
    let good = std::fs::read(&path).unwrap();
    m.params[3] = f32::NAN;
    let e = text(save_model(&path, &m));
    assert!(
        e.contains("not written") && e.contains("encoder.0.weight") && e.contains("index 3"),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), good, "the old file is kept");
    let mut t = Trainer::new(
        Autoencoder::<f32>::new(dense(4, 2), 0).unwrap(),
        OptimizerConfig::default(),
        2,
        0,
    )
    .unwrap();
    t.opt.m[1] = f32::INFINITY;
    let e = text(save_checkpoint(
        &d.join("c.safetensors"),
        &t,
        &sparse_ae::io::json::Value::Null,
    ));
    assert!(e.contains("optimizer.m/encoder.0.weight"), "{e}");
    assert!(!d.join("c.safetensors").exists());
}

/// The writer refuses a metadata key given twice, which the reader refuses.
#[test]
fn a_metadata_key_twice_is_not_written() {
    let t: [safetensors::TensorRef; 1] = [("a", &[1], &[1.0])];
    let e = text(safetensors::to_bytes(&t, &[("k", "1"), ("k", "2")]));
    assert!(e.contains("\"k\" is given twice"), "{e}");
    let bytes = safetensors::to_bytes(&t, &[("k", "1"), ("l", "2")]).unwrap();
    safetensors::SafeTensors::parse(&bytes).unwrap();
}

/// A gradient check's batch that does not fit is refused by the memory
/// check; it was an abort on the allocation.
#[test]
fn a_gradient_check_batch_too_large_is_refused() {
    let e = random_setup(&dense(4, 2), 0, 1 << 40).unwrap_err();
    assert!(matches!(e, Error::Memory { .. }), "{e:?}");
    assert!(e.to_string().contains("gradient check's batch"), "{e}");
}

/// Out of range indices into a micro-batch plan panic, as documented;
/// `nodes` of a rank past the last looped for ever, growing its list.
#[test]
fn a_micro_batch_plan_refuses_a_rank_past_its_last() {
    let p = MicroPlan::new(4, 2, 1).unwrap();
    assert!(std::panic::catch_unwind(|| p.nodes(1)).is_err());
    assert_eq!(p.nodes(0), [(0, 2)]);
}

/// Epochs of no steps leave nothing to train; it was a division by zero.
#[test]
fn nothing_left_of_epochs_of_no_steps() {
    assert_eq!(nothing_left(5, 0, &FitOptions::default()), Some("epochs"));
}
