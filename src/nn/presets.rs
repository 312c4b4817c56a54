//! The seed models, by name.

use super::config::{LayerSpec, Loss, ModelBuilder, ModelConfig, Noise};
use crate::error::{Error, Result};
use crate::kernels::Activation::{Relu, Sigmoid};

/// Every preset name, with a one-line description.
pub const PRESETS: [(&str, &str); 9] = [
    ("shallow", "784-32-784, ReLU code, sigmoid output, BCE"),
    ("deep", "784-128-32-128-784, ReLU, sigmoid output, BCE"),
    (
        "denoising",
        "deep, with Gaussian input noise 0.5 clipped to [0,1]",
    ),
    (
        "sparse-l1",
        "784-32-784 ReLU code with L1 activity penalty 1e-5, BCE",
    ),
    (
        "sparse-kl",
        "UFLDL MNIST exercise: 784-196-784 sigmoid, KL ρ 0.1 β 3, weight decay λ 3e-3 (λ/2·ΣW²), ½-squared error",
    ),
    (
        "overcomplete-kl",
        "784-1024-784 sigmoid, KL ρ 0.05 β 3, BCE",
    ),
    (
        "conv",
        "Conv 1→16 3×3 ReLU, pool 2, Conv 16→8 ReLU, pool 2 = code 8×7×7 with L1 1e-5; mirrored decoder with upsampling, sigmoid output, BCE",
    ),
    (
        "conv-kl",
        "conv with a sigmoid code convolution and KL ρ 0.05 β 3 per code channel instead of L1",
    ),
    (
        "topk",
        "k-sparse: 784-1024-784, ReLU code keeping the 32 largest values per sample, BCE",
    ),
];

/// The configuration of a preset for `input` features (784 for MNIST).
///
/// # Errors
/// [`Error::Config`] for an unknown name.
pub fn preset(name: &str, input: usize) -> Result<ModelConfig> {
    let image = |b: ModelBuilder| {
        let side = (input as f64).sqrt().round() as usize;
        if side * side == input {
            b.image(1, side, side)
        } else {
            b
        }
    };
    let deep = || {
        ModelBuilder::new(input)
            .encoder(128, Relu)
            .code(32, Relu)
            .decoder(128, Relu)
            .decoder(input, Sigmoid)
            .loss(Loss::Bce)
    };
    let b = match name {
        "shallow" => ModelBuilder::new(input)
            .code(32, Relu)
            .decoder(input, Sigmoid),
        "deep" => deep(),
        "denoising" => deep().noise(Noise::Gaussian { std: 0.5 }),
        "sparse-l1" => ModelBuilder::new(input)
            .code(32, Relu)
            .decoder(input, Sigmoid)
            .l1(1e-5),
        "sparse-kl" => ModelBuilder::new(input)
            .code(196, Sigmoid)
            .decoder(input, Sigmoid)
            .loss(Loss::Sse)
            .kl(0.1, 3.0)
            .weight_decay(1.5e-3),
        "conv" | "conv-kl" => {
            let side = (input as f64).sqrt().round() as usize;
            if side * side != input || !side.is_multiple_of(4) {
                return Err(Error::config(
                    "preset",
                    format!(
                        "`{name}` needs square images with a side divisible by 4, not {input} inputs"
                    ),
                ));
            }
            let code_act = if name == "conv" { Relu } else { Sigmoid };
            let b = ModelBuilder::new(input)
                .image(1, side, side)
                .layer(LayerSpec::conv(16, 3, Relu))
                .layer(LayerSpec::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                })
                .layer(LayerSpec::conv(8, 3, code_act))
                .code_layer(LayerSpec::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                })
                .layer(LayerSpec::Upsample { scale: 2 })
                .layer(LayerSpec::conv(16, 3, Relu))
                .layer(LayerSpec::Upsample { scale: 2 })
                .layer(LayerSpec::conv(1, 3, Sigmoid));
            if name == "conv" {
                b.l1(1e-5)
            } else {
                b.kl(0.05, 3.0)
            }
        }
        "topk" => ModelBuilder::new(input)
            .code(1024, Relu)
            .decoder(input, Sigmoid)
            .topk(32, false),
        "overcomplete-kl" => ModelBuilder::new(input)
            .code(1024, Sigmoid)
            .decoder(input, Sigmoid)
            .kl(0.05, 3.0),
        _ => {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            return Err(Error::config(
                "preset",
                format!(
                    "unknown preset `{name}`; choose one of {}",
                    names.join(", ")
                ),
            ));
        }
    };
    image(b).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds() {
        for (name, _) in PRESETS {
            let cfg = preset(name, 784).unwrap();
            assert_eq!(cfg.width(cfg.layers.len() - 1), 784, "{name}");
            assert_eq!(cfg.image, Some((1, 28, 28)));
        }
        assert!(preset("nope", 784).is_err());
    }
}
