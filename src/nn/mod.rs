//! Autoencoder models: configuration, parameters, layers, losses, penalties.

pub mod auxk;
pub mod config;
pub mod config_json;
pub mod conv;
pub mod conv_shift;
pub mod dense;
pub mod model;
pub mod noise;
pub mod params;
pub mod pool;
pub mod presets;
pub mod sae;
pub mod sae_ops;
pub mod sparse_topk;
pub mod sparsity;

pub use config::{KlPenalty, L1Penalty, LayerSpec, Loss, ModelBuilder, ModelConfig, Noise, TopK};
pub use model::{
    Autoencoder, LossParts, Workspace, bce_target_error, first_non_finite, first_outside_unit,
    non_finite_output, workspace_bytes,
};
pub use noise::{apply_noise, apply_noise_at};
pub use params::{ParamInfo, ParamKind, ParamLayout};
pub use presets::{PRESETS, conv_pool_stages, preset, preset_for_image};
pub use sae::{AuxK, EncoderInit, SaeConfig};
pub use sparse_topk::TopkPath;
