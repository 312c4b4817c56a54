//! `docs/config.md` cannot go out of date: every ```json block in it is a
//! complete model configuration that parses, validates, builds, trains a
//! step and round-trips; every key those configurations use is documented
//! on the page; and the error it shows for a misshapen key is the one the
//! parser gives.

use sparse_ae::io::json::{self, Value};
use sparse_ae::nn::{Autoencoder, ModelConfig};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::Trainer;

const DOC: &str = include_str!("../docs/config.md");

/// The bodies of the page's ```json blocks.
fn json_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in doc.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```json") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(cur.is_none(), "an unclosed ```json block in docs/config.md");
    blocks
}

/// Every object key in `v`, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(fields) => {
            for (k, x) in fields {
                out.push(k.clone());
                keys(x, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[test]
fn every_example_loads_builds_and_trains() {
    let blocks = json_blocks(DOC);
    // Dense + L1, KL + L2, Gaussian and masking denoising, conv, TopK SAE.
    assert_eq!(blocks.len(), 6, "the examples of docs/config.md");
    let mut kinds = Vec::new();
    for (i, text) in blocks.iter().enumerate() {
        let value = json::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("example {i} is not JSON: {e}\n{text}"));
        let cfg = ModelConfig::from_json_value(&value)
            .unwrap_or_else(|e| panic!("example {i} is rejected: {e}\n{text}"));
        assert_eq!(ModelConfig::from_json(&cfg.to_json()).unwrap(), cfg);
        // Every key the example uses, and every key of its full form (with
        // the defaults written out), is documented in backticks.
        let mut used = Vec::new();
        keys(&value, &mut used);
        keys(&cfg.to_json_value(), &mut used);
        for k in used {
            assert!(
                DOC.contains(&format!("`{k}`"))
                    || DOC.contains(&format!("`sae.{k}`"))
                    || DOC.contains(&format!("`auxk.{k}`")),
                "key `{k}` of example {i} is not documented"
            );
        }
        let model = Autoencoder::<f32>::new(cfg.clone(), 0).unwrap();
        let batch = 4;
        let mut trainer = Trainer::new(model, OptimizerConfig::default(), batch, 0).unwrap();
        let x: Vec<f32> = (0..batch * cfg.input)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let before = trainer.model.params.clone();
        let parts = trainer.step(&x).unwrap();
        assert!(parts.total().is_finite(), "example {i}: {parts:?}");
        assert_ne!(trainer.model.params, before, "example {i} did not train");
        kinds.push((
            cfg.l1.is_some(),
            cfg.kl.is_some() && cfg.weight_decay > 0.0,
            format!("{:?}", cfg.noise),
            cfg.image.is_some(),
            cfg.topk.is_some() && !cfg.sae.is_default(),
        ));
    }
    assert!(kinds.iter().any(|k| k.0 && !k.3), "dense with L1");
    assert!(kinds.iter().any(|k| k.1), "KL with weight decay");
    assert!(
        kinds.iter().any(|k| k.2.starts_with("Gaussian")),
        "gaussian noise"
    );
    assert!(
        kinds.iter().any(|k| k.2.starts_with("Masking")),
        "masking noise"
    );
    assert!(kinds.iter().any(|k| k.3), "convolutional");
    assert!(kinds.iter().any(|k| k.4), "TopK SAE with its options");
}

/// The sample error on the page is the parser's message, word for word.
#[test]
fn the_error_shown_is_the_one_given() {
    let shown = DOC
        .lines()
        .find(|l| l.starts_with("invalid configuration: l1:"))
        .expect("the page shows an l1 error");
    let text = r#"{"input": 4, "layers": [{"units": 2, "activation": "relu"}, {"units": 4, "activation": "sigmoid"}], "code_layer": 0, "l1": 1e-5}"#;
    let e = ModelConfig::from_json(text).unwrap_err().to_string();
    assert_eq!(e, shown);
}
