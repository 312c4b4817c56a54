//! The pictures of a trained model, and the training report that gathers
//! them: loss curves, reconstructions, first-layer features, code
//! activation histograms, latent densities, and the metrics table.

use super::canvas::{Canvas, Rgb};
use super::html::{Image, Section, Table, write_index};
use super::plot::{Series, histogram, line_plot};
use super::png_out::save_png;
use super::tiles::{feature_tiles, image_grid};
use crate::error::{Error, Result};
use crate::nn::{Autoencoder, Noise, apply_noise};
use crate::rng::Rng;
use crate::train::{EpochMetrics, Samples, evaluate};
use std::path::{Path, PathBuf};

const COLORS: [Rgb; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [140, 86, 75],
];

/// The (width, height) of the model's input as an image: its configured
/// image shape, else the nearest square, else one row.
pub fn image_shape(model: &Autoencoder<f32>) -> (usize, usize) {
    let cfg = model.config();
    if let Some((1, h, w)) = cfg.image {
        return (w, h);
    }
    let side = (cfg.input as f64).sqrt().round() as usize;
    if side * side == cfg.input {
        (side, side)
    } else {
        (cfg.input, 1)
    }
}

/// Reconstructions of the first `n` samples: a row of originals, a row of
/// corrupted inputs (when the model is denoising; noise from `noise_seed`),
/// and a row of reconstructions, as in the classic Keras notebook. Samples
/// with an input scale are drawn in input space (divided by it).
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn reconstruction_grid(
    model: &Autoencoder<f32>,
    samples: Samples<'_>,
    n: usize,
    noise_seed: u64,
) -> Result<Canvas> {
    let cfg = model.config();
    let d = cfg.input;
    if samples.dim() != d {
        return Err(Error::shape(
            "reconstruction_grid",
            format!("{d} features"),
            format!("{}", samples.dim()),
        ));
    }
    let n = n.min(samples.len()).max(1).min(samples.len());
    if n == 0 {
        return Err(Error::Data {
            reason: "no samples to reconstruct".into(),
        });
    }
    let idx: Vec<u32> = (0..n as u32).collect();
    let mut clean = vec![0.0f32; n * d];
    samples.gather(&idx, &mut clean);
    let mut input = clean.clone();
    if cfg.noise != Noise::None {
        apply_noise(cfg.noise, &mut Rng::new(noise_seed), &clean, &mut input);
    }
    let mut ws = model.workspace(n);
    model.forward(&mut ws, &input)?;
    let mut recon = vec![0.0f32; n * d];
    model.reconstruction(&ws, &mut recon);
    // Drawn in input space: undo the input scale of normalised samples.
    let undo = 1.0 / samples.scale();
    if undo != 1.0 {
        for v in clean.iter_mut().chain(&mut input).chain(&mut recon) {
            *v *= undo;
        }
    }
    let mut rows: Vec<(&str, Vec<&[f32]>)> = vec![("original", clean.chunks_exact(d).collect())];
    if cfg.noise != Noise::None {
        rows.push(("noisy", input.chunks_exact(d).collect()));
    }
    rows.push(("reconstructed", recon.chunks_exact(d).collect()));
    let (w, h) = image_shape(model);
    image_grid(&rows, w, h, if h == 1 { 1 } else { 3 })
}

/// The input weights of each unit of the first layer as an image tile
/// (UFLDL `display_network`): each tile scaled by its own largest |w|.
///
/// # Errors
/// [`Error::Shape`] if the picture cannot be drawn at this size.
pub fn feature_picture(model: &Autoencoder<f32>) -> Result<Canvas> {
    let Some(w0) = model.layout().first_weight() else {
        return Err(Error::Data {
            reason: "the model has no weights to draw".into(),
        });
    };
    let units = w0.shape[0];
    let per_unit: usize = w0.shape[1..].iter().product();
    // Dense: each unit's weights as an input image. Convolution: each filter
    // as a kh × kw tile, its input channels stacked vertically.
    let (w, h) = if w0.shape.len() == 4 {
        (w0.shape[3], w0.shape[1] * w0.shape[2])
    } else {
        image_shape(model)
    };
    let shown = units.min(1024);
    let data = &model.params[w0.offset..w0.offset + shown * per_unit];
    let scale = if w0.shape.len() == 4 {
        12
    } else if units <= 64 {
        3
    } else {
        2
    };
    feature_tiles(data, shown, w, h, scale)
}

/// The code activations of `samples` under each model, overlaid in one
/// histogram (the comparison of a standard and a regularised code).
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit a model.
pub fn code_histogram(
    models: &[(&str, &Autoencoder<f32>)],
    samples: Samples<'_>,
    max_samples: usize,
) -> Result<Canvas> {
    let samples = samples.head(max_samples);
    let codes = models
        .iter()
        .map(|(name, m)| Ok((name.to_string(), crate::train::encode(m, samples)?)))
        .collect::<Result<Vec<(String, Vec<f32>)>>>()?;
    let sets: Vec<(&str, &[f32])> = codes
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    Ok(histogram(
        &sets,
        60,
        None,
        "Code activations",
        "activation",
        true,
    ))
}

/// How often each latent fires, as a histogram of log₁₀(firing rate);
/// latents that never fired are counted in the legend's left-out number.
pub fn latent_density(firing_rate: &[f64]) -> Canvas {
    let logs: Vec<f32> = firing_rate
        .iter()
        .map(|&r| if r > 0.0 { r.log10() as f32 } else { f32::NAN })
        .collect();
    histogram(
        &[("latents", &logs)],
        40,
        None,
        "Latent density (never-firing latents are left out)",
        "log10 firing rate",
        false,
    )
}

/// Training and validation loss per epoch.
pub fn loss_curves(metrics: &[EpochMetrics]) -> Canvas {
    let mut series = vec![Series {
        name: "train".into(),
        points: metrics
            .iter()
            .map(|m| (m.epoch as f64, m.train.total()))
            .collect(),
        color: COLORS[0],
    }];
    if metrics.iter().any(|m| m.test.is_some()) {
        series.push(Series {
            name: "test".into(),
            points: metrics
                .iter()
                .filter_map(|m| m.test.map(|t| (m.epoch as f64, t.total())))
                .collect(),
            color: COLORS[1],
        });
    }
    line_plot(&series, "Loss per epoch", "epoch", "loss", false)
}

fn fmt(v: f64) -> String {
    format!("{v:.5}")
}

/// The files [`write_training_report`] writes into its directory.
pub const REPORT_FILES: [&str; 7] = [
    "loss.png",
    "reconstructions.png",
    "features.png",
    "histogram.png",
    "density.png",
    "metrics.csv",
    "index.html",
];

/// Writes the report of a training run into `dir`: `loss.png`,
/// `reconstructions.png`, `features.png`, `histogram.png`, `density.png`,
/// `metrics.csv` and an `index.html` that shows them together.
///
/// # Errors
/// [`Error::Io`] if the directory or a file cannot be written.
pub fn write_training_report(
    dir: &Path,
    title: &str,
    model: &Autoencoder<f32>,
    metrics: &[EpochMetrics],
    samples: Samples<'_>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    save_png(dir.join("loss.png"), &loss_curves(metrics))?;
    save_png(
        dir.join("reconstructions.png"),
        &reconstruction_grid(model, samples, 10, 1)?,
    )?;
    save_png(dir.join("features.png"), &feature_picture(model)?)?;
    save_png(
        dir.join("histogram.png"),
        &code_histogram(&[("code", model)], samples, 5000)?,
    )?;
    let (eval_loss, stats) = evaluate(model, samples, 1000)?;
    save_png(
        dir.join("density.png"),
        &latent_density(&stats.firing_rate()),
    )?;
    let mut csv = String::from(EpochMetrics::CSV_HEADER);
    csv.push('\n');
    for m in metrics {
        csv.push_str(&m.csv_row());
        csv.push('\n');
    }
    crate::io::atomic::write_atomic_bytes(&dir.join("metrics.csv"), csv.as_bytes())?;
    let rows = metrics
        .iter()
        .map(|m| {
            vec![
                m.epoch.to_string(),
                fmt(m.train.total()),
                m.test.map_or("–".into(), |t| fmt(t.total())),
                m.test.map_or("–".into(), |t| fmt(t.recon)),
                format!("{:.2}", m.l0),
                format!("{} / {}", m.dead_units, m.code_units),
                format!("{:.1} %", 100.0 * m.dead_fraction),
                format!("{:.0}", m.samples_per_sec),
                format!("{:.2}", m.seconds),
            ]
        })
        .collect();
    let header = [
        "epoch",
        "train loss",
        "test loss",
        "test recon",
        "L0",
        "dead units",
        "dead (window)",
        "samples/s",
        "seconds",
    ];
    let img = |file: &str, caption: &str| Image {
        file: file.into(),
        caption: caption.into(),
    };
    let sections = vec![
        Section {
            heading: "Model".into(),
            text: Some(format!(
                "{} parameters. Final evaluation on {} samples: loss {:.5} (reconstruction {:.5}), L0 {:.2} active code units per sample, {} of {} code units never active.",
                model.params.len(),
                samples.len(),
                eval_loss.total(),
                eval_loss.recon,
                stats.l0(),
                stats.dead(),
                model.config().width(model.config().code_layer)
            )),
            images: vec![],
            table: None,
        },
        Section {
            heading: "Training".into(),
            text: None,
            images: vec![img("loss.png", "loss per epoch")],
            table: Some(Table {
                header: header.iter().map(|s| s.to_string()).collect(),
                rows,
            }),
        },
        Section {
            heading: "Reconstructions".into(),
            text: None,
            images: vec![img("reconstructions.png", "original, (noisy,) reconstructed")],
            table: None,
        },
        Section {
            heading: "Features".into(),
            text: Some("Input weights of each first-layer unit, each scaled by its own largest magnitude (grey = 0).".into()),
            images: vec![img("features.png", "first-layer features")],
            table: None,
        },
        Section {
            heading: "Code".into(),
            text: None,
            images: vec![
                img("histogram.png", "distribution of code activations"),
                img("density.png", "how often each code unit fires"),
            ],
            table: None,
        },
    ];
    write_index(dir, title, &sections)
}
