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

/// The configuration of a preset for `input` features (784 for MNIST),
/// taken to be a square image when `input` is a square number (as
/// [`preset_for_image`] of `1 × side × side`).
///
/// # Errors
/// [`Error::Config`] for an unknown name, or a convolutional preset on an
/// `input` that is not a square number (give its image shape to
/// [`preset_for_image`]).
pub fn preset(name: &str, input: usize) -> Result<ModelConfig> {
    let side = (input as f64).sqrt().round() as usize;
    if side * side == input {
        return preset_for_image(name, (1, side, side));
    }
    if is_conv(name) {
        return Err(Error::config(
            "preset",
            format!(
                "`{name}` needs the shape of its images: {input} features are not a square image (IDX data gives its images' shape; for a .npy matrix, describe the model with --config and its `image`)"
            ),
        ));
    }
    build(name, input, None)
}

/// The configuration of a preset for images of `channels × height × width`
/// (any size, 1 × 1 up): the dense presets see them flattened and keep the
/// shape for pictures; the convolutional ones pool each side by 2 as many
/// times (up to the listed 2) as both sides allow, and upsample as often, so
/// the output has the input's shape (28 × 28: the listed model; 5 × 7: no
/// pooling; 6 × 10: one).
///
/// # Errors
/// [`Error::Config`] for an unknown name or an image with a side of 0 or of
/// more values than a model takes.
pub fn preset_for_image(name: &str, image: (usize, usize, usize)) -> Result<ModelConfig> {
    let (c, h, w) = image;
    let input = c.checked_mul(h).and_then(|v| v.checked_mul(w));
    match input {
        Some(input) if input > 0 => build(name, input, Some(image)),
        _ => Err(Error::config(
            "preset",
            format!("no model takes images of {c}×{h}×{w}"),
        )),
    }
}

/// The times [`preset_for_image`]'s convolutional presets pool (and
/// upsample) images of `height × width`: 2 when both sides are multiples
/// of 4, 1 when both are even, else 0.
pub fn conv_pool_stages(height: usize, width: usize) -> usize {
    if height.is_multiple_of(4) && width.is_multiple_of(4) {
        2
    } else if height.is_multiple_of(2) && width.is_multiple_of(2) {
        1
    } else {
        0
    }
}

fn is_conv(name: &str) -> bool {
    matches!(name, "conv" | "conv-kl")
}

fn build(name: &str, input: usize, image: Option<(usize, usize, usize)>) -> Result<ModelConfig> {
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
            let Some((c, h, w)) = image else {
                return preset(name, input);
            };
            let pools = conv_pool_stages(h, w);
            let pool = || LayerSpec::MaxPool2d {
                kernel: 2,
                stride: 2,
            };
            let code_act = if name == "conv" { Relu } else { Sigmoid };
            let mut b = ModelBuilder::new(input).layer(LayerSpec::conv(16, 3, Relu));
            if pools >= 1 {
                b = b.layer(pool());
            }
            b = match pools {
                2 => b.layer(LayerSpec::conv(8, 3, code_act)).code_layer(pool()),
                _ => b.code_layer(LayerSpec::conv(8, 3, code_act)),
            };
            if pools >= 2 {
                b = b.layer(LayerSpec::Upsample { scale: 2 });
            }
            b = b.layer(LayerSpec::conv(16, 3, Relu));
            if pools >= 1 {
                b = b.layer(LayerSpec::Upsample { scale: 2 });
            }
            b = b.layer(LayerSpec::conv(c, 3, Sigmoid));
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
    match image {
        Some((c, h, w)) => b.image(c, h, w).build(),
        None => b.build(),
    }
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
