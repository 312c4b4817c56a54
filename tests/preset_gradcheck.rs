//! `sparse-ae gradcheck`'s check on every preset (784 inputs), as the CLI
//! runs it: seeds 1–5, batches 1 and 4, default step and tolerance (10⁻⁶),
//! on a sampled subset of entries (2 per tensor here; the CLI's 32 were run
//! by hand, see docs/maths.md) plus every tensor's directional derivative. And
//! the check catches a 10⁻⁴ relative error in any one weight gradient of
//! `deep`.

use sparse_ae::gradcheck::{CheckOptions, check_model, check_model_grads, random_setup};
use sparse_ae::nn::{ParamKind, preset};

fn presets_pass(name: &str) {
    let cfg = preset(name, 784).unwrap();
    for seed in 1..=5 {
        for batch in [1, 4] {
            let (m, input, clean) = random_setup(&cfg, seed, batch).unwrap();
            let opts = CheckOptions {
                max_entries: 2,
                seed,
                ..CheckOptions::default()
            };
            let r = check_model(&m, &input, &clean, batch, &opts).unwrap();
            assert!(r.passed(), "{name} seed {seed} batch {batch}:\n{r}");
            // Max pooling's ties and ReLU kinks skip some sampled entries
            // (conv at batch 1: 7 of 16); the directional checks always run.
            let checked: usize = r.tensors.iter().map(|t| t.checked).sum();
            assert!(
                checked * 4 >= r.tensors.len(),
                "{name}: too many kinks:\n{r}"
            );
            assert!(r.tensors.iter().all(|t| t.dir.1.is_finite()), "{r}");
        }
    }
}

macro_rules! every_preset {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            presets_pass($name);
        }
    )*};
}

every_preset!(
    shallow => "shallow",
    deep => "deep",
    denoising => "denoising",
    sparse_l1 => "sparse-l1",
    sparse_kl => "sparse-kl",
    overcomplete_kl => "overcomplete-kl",
    conv => "conv",
    conv_kl => "conv-kl",
    topk => "topk",
);

/// One weight gradient of `deep` scaled by 1 + 10⁻⁴ fails the check, in that
/// tensor's row; the true gradient passes.
#[test]
fn deep_weight_gradient_off_by_1e_4_fails() {
    let cfg = preset("deep", 784).unwrap();
    let (m, input, clean) = random_setup(&cfg, 1, 4).unwrap();
    let mut g = vec![0.0; m.params.len()];
    m.loss_and_grad(&mut m.workspace(4), &input, &clean, Some(&mut g))
        .unwrap();
    let opts = CheckOptions {
        max_entries: 8,
        ..CheckOptions::default()
    };
    let good = check_model_grads(&m, &input, &clean, 4, &g, &opts).unwrap();
    assert!(good.passed(), "{good}");
    for t in m
        .layout()
        .tensors
        .iter()
        .filter(|t| t.kind == ParamKind::Weight)
    {
        let mut bad = g.clone();
        bad[t.range()].iter_mut().for_each(|v| *v *= 1.0 + 1e-4);
        let r = check_model_grads(&m, &input, &clean, 4, &bad, &opts).unwrap();
        let row = r.tensors.iter().find(|r| r.name == t.name).unwrap();
        assert!(
            !r.passed() && !row.passed(r.tolerance),
            "{} scaled by 1 + 1e-4 went unnoticed:\n{r}",
            t.name
        );
    }
}
