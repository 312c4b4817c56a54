//! The pictures of a trained model, and the training report that gathers
//! them: the run's configuration, loss curves over steps, the final
//! evaluation (loss, MSE, FVU), reconstructions and first-layer features
//! (for images) or the error per feature (for other data), code activation
//! histograms, latent densities and L0, and the metrics table.

use super::canvas::{Canvas, Rgb};
use super::html::{Image, Section, Table, write_index};
use super::plot::{Series, histogram, line_plot, step_plot};
use super::png_out::save_png;
use super::tiles::{feature_tiles, image_grid};
use crate::error::{Error, Result};
use crate::io::atomic::DirWrite;
use crate::nn::{Autoencoder, LossParts, Noise, apply_noise};
use crate::optim::OptimizerConfig;
use crate::rng::Rng;
use crate::train::metrics::{code_threshold, objective_name, space_name};
use crate::train::{EpochMetrics, Samples, StepLog, Trainer, evaluate, explained, feature_errors};
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
/// image shape (several channels stacked vertically), else a square when
/// the input is one, else one row.
pub fn image_shape(model: &Autoencoder<f32>) -> (usize, usize) {
    let cfg = model.config();
    if let Some((c, h, w)) = cfg.image {
        // Channel-major (c, h, w): the channels stacked vertically.
        return (w, c * h);
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
        return Err(Error::Value {
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
    let mut ws = model.try_workspace(n)?;
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
        return Err(Error::Value {
            reason: "the model's first layer has no weights (a pooling or upsampling layer), so there are no input weights to draw as features".into(),
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

/// How many active code units each sample has (L0 per sample), as a
/// histogram with one bin per count (or per range of counts when there are
/// more than 100), over at most `max_samples` samples.
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn l0_histogram(
    model: &Autoencoder<f32>,
    samples: Samples<'_>,
    max_samples: usize,
) -> Result<Canvas> {
    let samples = samples.head(max_samples);
    let cfg = model.config();
    let units = cfg.width(cfg.code_layer);
    let tau = code_threshold(cfg);
    let codes = crate::train::encode(model, samples)?;
    let counts: Vec<f32> = codes
        .chunks_exact(units.max(1))
        .map(|row| row.iter().filter(|&&v| v > tau).count() as f32)
        .collect();
    let top = counts.iter().fold(0.0f32, |a, &b| a.max(b));
    let bins = (top as usize + 1).min(100);
    Ok(histogram(
        &[("samples", &counts)],
        bins,
        Some((-0.5, f64::from(top) + 0.5)),
        &format!(
            "Active code units per sample (h > {})",
            crate::train::metrics::label_num(tau)
        ),
        "L0 (active units)",
        false,
    ))
}

/// The fraction of each feature's variance left unexplained, features
/// sorted from worst to best, and a table of the worst ten (input space).
///
/// # Errors
/// [`Error::Shape`] if the samples do not fit the model.
pub fn feature_error_panel(
    model: &Autoencoder<f32>,
    samples: Samples<'_>,
) -> Result<(Canvas, Table)> {
    let fe = feature_errors(model, samples)?;
    let fvu = fe.fvu();
    let mut order: Vec<usize> = (0..fvu.len()).collect();
    // Worst first; constant features (FVU NaN) last.
    order.sort_by(|&a, &b| {
        let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
        key(fvu[b]).total_cmp(&key(fvu[a]))
    });
    let constant = fvu.iter().filter(|v| v.is_nan()).count();
    let series = Series {
        name: String::new(),
        points: order
            .iter()
            .enumerate()
            .map(|(rank, &j)| (rank as f64, fvu[j]))
            .collect(),
        color: COLORS[0],
    };
    let title = if constant > 0 {
        format!("FVU per feature, worst first ({constant} constant features left out)")
    } else {
        "FVU per feature, worst first".to_string()
    };
    let chart = line_plot(&[series], &title, "feature rank", "FVU (log scale)", true);
    let rows = order
        .iter()
        .take(10)
        .map(|&j| {
            vec![
                j.to_string(),
                format!("{:.4e}", fe.variance[j]),
                format!("{:.4e}", fe.mse[j]),
                format!("{:.4}", fvu[j]),
            ]
        })
        .collect();
    let table = Table {
        header: ["feature", "variance", "MSE", "FVU"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        rows,
        ..Table::default()
    };
    Ok((chart, table))
}

/// Steps per epoch of a run whose log has none: from the first whole epoch
/// of the metrics (0 if unknown).
fn steps_per_epoch(log: &StepLog, metrics: &[EpochMetrics]) -> u64 {
    if log.steps_per_epoch() > 0 {
        return log.steps_per_epoch();
    }
    match metrics {
        [a, b, ..] => b.step - a.step,
        _ => 0,
    }
}

/// What the training and test losses of `model` are computed on, as
/// legend text: noisy and clean inputs for a denoising model.
fn split_labels(model: &Autoencoder<f32>) -> (&'static str, &'static str) {
    if model.config().noise != Noise::None {
        ("train (noisy inputs)", "test (clean inputs)")
    } else {
        ("train", "test")
    }
}

/// The training loss over steps (each point the mean over its window of
/// the log) with the test loss after each epoch; `log` may be empty, then
/// the per-epoch means are drawn.
pub fn loss_curves(
    model: &Autoencoder<f32>,
    log: &StepLog,
    metrics: &[EpochMetrics],
    scale: f32,
) -> Canvas {
    let (train, test) = split_labels(model);
    let points: Vec<(f64, f64)> = if log.is_empty() {
        metrics
            .iter()
            .map(|m| (m.step as f64, m.train.total()))
            .collect()
    } else {
        log.points().iter().map(|(s, l)| (*s, l.total())).collect()
    };
    let mut series = vec![Series {
        name: train.into(),
        points,
        color: COLORS[0],
    }];
    if metrics.iter().any(|m| m.test.is_some()) {
        series.push(Series {
            name: test.into(),
            points: metrics
                .iter()
                .filter_map(|m| m.test.map(|t| (m.step as f64, t.total())))
                .collect(),
            color: COLORS[1],
        });
    }
    let title = match log.stride() {
        _ if log.is_empty() => "Loss (mean per epoch)".to_string(),
        1 => "Loss per step".to_string(),
        k => format!("Loss (mean over each {k} steps)"),
    };
    step_plot(
        &series,
        &title,
        axis_space("loss", scale),
        false,
        steps_per_epoch(log, metrics),
    )
}

/// Each part of the training loss over steps, on a log scale (parts that
/// stayed 0 are left out).
pub fn loss_part_curves(log: &StepLog, metrics: &[EpochMetrics], scale: f32) -> Canvas {
    let points: Vec<(f64, LossParts)> = if log.is_empty() {
        metrics.iter().map(|m| (m.step as f64, m.train)).collect()
    } else {
        log.points()
    };
    let series: Vec<Series> = (0..5)
        .filter(|&i| points.iter().any(|(_, p)| p.named()[i].1 != 0.0))
        .map(|i| Series {
            name: LossParts::default().named()[i].0.into(),
            points: points.iter().map(|(s, p)| (*s, p.named()[i].1)).collect(),
            color: COLORS[i],
        })
        .collect();
    step_plot(
        &series,
        "Training loss parts (log scale)",
        axis_space("loss part", scale),
        true,
        steps_per_epoch(log, metrics),
    )
}

/// A loss axis label with the space its values are in, short enough for
/// the axis (the page's text gives the scale).
fn axis_space(what: &str, scale: f32) -> &'static str {
    match (what, scale == 1.0) {
        ("loss", true) => "loss (input space)",
        ("loss", false) => "loss (normalised space)",
        (_, true) => "loss part (input space)",
        (_, false) => "loss part (normalised space)",
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.5}")
}

/// The tag of the report's [`DirWrite`] set (its staging directories are
/// `DIR/.sparse-ae-report.tmp` and `.ready`).
pub const REPORT_TAG: &str = "report";

/// The files [`write_training_report`] may write into its directory: the
/// report's own names, which a new report replaces, or removes when it
/// has no such file (other files there are never touched).
pub const REPORT_FILES: [&str; 11] = [
    "loss.png",
    "loss_parts.png",
    "reconstructions.png",
    "features.png",
    "feature_error.png",
    "histogram.png",
    "density.png",
    "l0.png",
    "metrics.csv",
    "steps.csv",
    "index.html",
];

/// What the data of a report are, which decides its pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// Images: reconstructions and first-layer features are drawn as image
    /// grids.
    Images,
    /// Vectors with no picture of their own (activations in a `.npy`
    /// file): the error per feature is drawn instead of image grids.
    Vectors,
}

/// What the caller knows of a run, beyond its trainer and metrics.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The page title.
    pub title: String,
    /// Which pictures the data get.
    pub data: DataKind,
    /// Rows put first in the configuration table, e.g. the command line,
    /// the data's path and shape, the seed and the date.
    pub settings: Vec<(String, String)>,
}

/// The batch size, and the batches a step accumulates if more than one.
fn batch_text(t: &Trainer<f32>) -> String {
    match t.accumulate() {
        1 => t.batch().to_string(),
        k => format!(
            "{}, {k} batches accumulated per optimizer step ({} samples per step)",
            t.batch(),
            t.samples_per_step()
        ),
    }
}

/// The steps taken, saying what a step is when it accumulates batches.
fn steps_text(t: &Trainer<f32>) -> String {
    match t.accumulate() {
        1 => t.steps().to_string(),
        k => format!(
            "{} optimizer steps of {k} batches of {}",
            t.steps(),
            t.batch()
        ),
    }
}

/// The optimizer and its settings in words.
pub fn optimizer_text(c: &OptimizerConfig) -> String {
    match c {
        OptimizerConfig::Adam(a) => format!(
            "adam (lr {}, beta1 {}, beta2 {}, eps {})",
            a.lr, a.beta1, a.beta2, a.eps
        ),
        OptimizerConfig::Sgd(s) => format!("sgd (lr {}, momentum {})", s.lr, s.momentum),
    }
}

fn settings_table(trainer: &Trainer<f32>, run: &RunInfo, scale: f32) -> Table {
    let model = &trainer.model;
    let mut rows: Vec<Vec<String>> = run
        .settings
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    let scale_text = if scale == 1.0 {
        "1 (inputs as read)".to_string()
    } else {
        format!("{scale} (losses are in normalised space, inputs × {scale})")
    };
    let noise = match model.config().noise {
        Noise::None => "none".to_string(),
        Noise::Gaussian { std } => {
            format!("gaussian, std {std} (on training inputs; the test loss is on clean inputs)")
        }
        Noise::Masking { p } => {
            format!("masking, p {p} (on training inputs; the test loss is on clean inputs)")
        }
    };
    for (k, v) in [
        ("objective", objective_name(model.config())),
        ("optimizer", optimizer_text(&trainer.opt.config)),
        ("batch size", batch_text(trainer)),
        ("steps", steps_text(trainer)),
        ("parameters", model.params.len().to_string()),
        ("input noise", noise),
        ("input scale", scale_text),
        (
            "version",
            format!("sparse-ae {}", env!("CARGO_PKG_VERSION")),
        ),
        ("kernel path", crate::kernels::Isa::active().to_string()),
        ("threads", crate::parallel::threads_summary()),
    ] {
        rows.push(vec![k.to_string(), v]);
    }
    Table {
        header: vec!["setting".into(), "value".into()],
        rows,
        plain: true,
    }
}

/// Writes the report of a training run into `dir`: `loss.png` and
/// `loss_parts.png` over steps (from `log`; per epoch if it is empty),
/// `histogram.png`, `density.png`, `l0.png`, `metrics.csv`, `steps.csv`
/// (the points of the loss over steps: mean step and loss parts), for images
/// `reconstructions.png` and `features.png`, for other data
/// `feature_error.png`, and an `index.html` that shows them with the run's
/// configuration and the final evaluation on `samples` (scaled as the model
/// was trained; MSE, FVU and pictures are in input space).
///
/// The report replaces the one in `dir` whole ([`DirWrite`]): it is built
/// in `dir/.sparse-ae-report.tmp/` and its files renamed in once all are
/// written, so a failure or a kill leaves the old report or the new one,
/// never a mix; files of other names in `dir` are kept.
///
/// # Errors
/// [`Error::Io`] if the directory or a file cannot be written (naming the
/// file in `dir`; the old report then stays as it was), or another process
/// is writing a report into `dir`;
/// [`Error::Shape`] if the samples do not fit the model.
pub fn write_training_report(
    dir: &Path,
    trainer: &Trainer<f32>,
    run: &RunInfo,
    metrics: &[EpochMetrics],
    log: &StepLog,
    samples: Samples<'_>,
) -> Result<PathBuf> {
    let model = &trainer.model;
    let cfg = model.config();
    let scale = samples.scale();
    // Built beside the old report and swapped in whole (see `DirWrite`).
    let mut set = DirWrite::begin(dir, REPORT_TAG, &REPORT_FILES)?;
    set.write("loss.png", |p| {
        save_png(p, &loss_curves(model, log, metrics, scale))
    })?;
    set.write("loss_parts.png", |p| {
        save_png(p, &loss_part_curves(log, metrics, scale))
    })?;
    set.write("histogram.png", |p| {
        save_png(p, &code_histogram(&[("code", model)], samples, 5000)?)
    })?;
    set.write("l0.png", |p| {
        save_png(p, &l0_histogram(model, samples, 5000)?)
    })?;
    let (eval_loss, stats) = evaluate(model, samples, 1000)?;
    let ex = explained(model, samples)?;
    set.write("density.png", |p| {
        save_png(p, &latent_density(&stats.firing_rate()))
    })?;
    let mut csv = String::from(EpochMetrics::CSV_HEADER);
    csv.push('\n');
    for m in metrics {
        csv.push_str(&m.csv_row());
        csv.push('\n');
    }
    set.write_bytes("metrics.csv", csv.as_bytes())?;
    let mut csv = String::from("step,loss,recon,l1,kl,l2,auxk\n");
    for (step, p) in log.points() {
        csv.push_str(&format!(
            "{step},{},{},{},{},{},{}\n",
            p.total(),
            p.recon,
            p.l1,
            p.kl,
            p.l2,
            p.auxk
        ));
    }
    set.write_bytes("steps.csv", csv.as_bytes())?;
    let (train_label, test_label) = split_labels(model);
    let rows = metrics
        .iter()
        .map(|m| {
            vec![
                m.epoch.to_string(),
                m.step.to_string(),
                fmt(m.train.total()),
                m.test.map_or("–".into(), |t| fmt(t.total())),
                m.test.map_or("–".into(), |t| fmt(t.recon)),
                format!("{:.2}", m.l0),
                format!("{} / {}", m.dead_units, m.code_units),
                format!("{:.1} %", 100.0 * m.dead_fraction),
                format!("{:.0}", m.samples_per_sec),
                m.one_thread_steps.to_string(),
                format!("{:.2}", m.seconds),
            ]
        })
        .collect();
    let header = [
        "epoch".to_string(),
        "step".to_string(),
        format!("{train_label} loss"),
        format!("{test_label} loss"),
        format!("{test_label} recon"),
        "L0".to_string(),
        "dead units".to_string(),
        "dead (window)".to_string(),
        "samples/s".to_string(),
        "one-thread steps".to_string(),
        "seconds".to_string(),
    ];
    let img = |file: &str, caption: &str| Image {
        file: file.into(),
        caption: caption.into(),
    };
    let space = space_name(scale);
    let units = cfg.width(cfg.code_layer);
    let eval_rows = [
        (
            "samples",
            samples.len().to_string(),
            "the test split".to_string(),
        ),
        (
            "loss",
            fmt(eval_loss.total()),
            format!("{}, clean inputs, {space}", objective_name(cfg)),
        ),
        (
            "reconstruction",
            fmt(eval_loss.recon),
            format!("{}, clean inputs, {space}", cfg.loss.name()),
        ),
        (
            "MSE",
            format!("{:.6}", ex.mse),
            "mean squared error per feature, input space".to_string(),
        ),
        (
            "FVU",
            match ex.fvu.is_nan() {
                true => "undefined".to_string(),
                false => format!("{:.4}", ex.fvu),
            },
            match ex.fvu.is_nan() {
                true => format!(
                    "fraction of variance unexplained, {}",
                    crate::train::Explained::FVU_UNDEFINED
                ),
                false => format!(
                    "fraction of variance unexplained (explained variance {:.4})",
                    1.0 - ex.fvu
                ),
            },
        ),
        (
            "L0",
            format!("{:.2}", stats.l0()),
            format!(
                "active code units per sample (h > {})",
                crate::train::metrics::label_num(stats.threshold())
            ),
        ),
        (
            "dead units",
            format!("{} / {units}", stats.dead()),
            "code units never active on these samples".to_string(),
        ),
    ];
    let mut sections = vec![
        Section {
            heading: "Configuration".into(),
            table: Some(settings_table(trainer, run, scale)),
            pre: Some(cfg.to_json()),
            pre_caption: Some("Model (JSON, as `--config` reads it):".into()),
            ..Default::default()
        },
        Section {
            heading: "Final evaluation".into(),
            table: Some(Table {
                header: vec!["quantity".into(), "value".into(), "computed as".into()],
                rows: eval_rows
                    .into_iter()
                    .map(|(a, b, c)| vec![a.to_string(), b, c])
                    .collect(),
                ..Table::default()
            }),
            ..Default::default()
        },
        Section {
            heading: "Training".into(),
            text: Some(format!(
                "Losses over optimizer steps, {space}; the training loss is logged at a stride of {} step(s) per point, the test loss after each epoch (the points are in steps.csv).",
                log.stride()
            )),
            images: vec![
                img("loss.png", "loss over steps"),
                img("loss_parts.png", "each part of the training loss"),
            ],
            table: Some(Table {
                header: header.to_vec(),
                rows,
                ..Table::default()
            }),
            ..Default::default()
        },
    ];
    match run.data {
        DataKind::Images => {
            set.write("reconstructions.png", |p| {
                save_png(p, &reconstruction_grid(model, samples, 10, 1)?)
            })?;
            sections.push(Section {
                heading: "Reconstructions".into(),
                text: Some("Test samples in input space.".into()),
                images: vec![img(
                    "reconstructions.png",
                    "original, (noisy,) reconstructed",
                )],
                ..Default::default()
            });
            // Only a first layer with weights has features to draw.
            if model.layout().first_weight().is_some() {
                set.write("features.png", |p| save_png(p, &feature_picture(model)?))?;
                sections.push(Section {
                    heading: "Features".into(),
                    text: Some("Input weights of each first-layer unit, each scaled by its own largest magnitude (grey = 0).".into()),
                    images: vec![img("features.png", "first-layer features")],
                    ..Default::default()
                });
            }
        }
        DataKind::Vectors => {
            let (chart, table) = feature_error_panel(model, samples)?;
            set.write("feature_error.png", |p| save_png(p, &chart))?;
            sections.push(Section {
                heading: "Error per feature".into(),
                text: Some("FVU_j = MSE_j / variance_j of each input feature on the test split, input space; the ten worst features below.".into()),
                images: vec![img("feature_error.png", "FVU per feature")],
                table: Some(table),
                ..Default::default()
            });
        }
    }
    sections.push(Section {
        heading: "Code".into(),
        images: vec![
            img("l0.png", "active code units per sample"),
            img("density.png", "how often each code unit fires"),
            img("histogram.png", "distribution of code activations"),
        ],
        ..Default::default()
    });
    set.write("index.html", |p| {
        write_index(p.parent().unwrap_or(p), &run.title, &sections).map(|_| ())
    })?;
    set.commit()?;
    Ok(dir.join("index.html"))
}

/// Finishes or removes what a report writer killed half way left in `dir`
/// (see [`DirWrite`]): the next report does it first, and `train` before
/// training.
///
/// # Errors
/// [`Error::Io`] naming the directory or a file of it.
pub fn recover_report(dir: &Path) -> Result<()> {
    DirWrite::recover(dir, REPORT_TAG, &REPORT_FILES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Activation;
    use crate::nn::ModelBuilder;

    fn model(input: usize, image: Option<(usize, usize, usize)>) -> Autoencoder<f32> {
        let mut b = ModelBuilder::new(input);
        if let Some((c, h, w)) = image {
            b = b.image(c, h, w);
        }
        let cfg = b
            .code(4, Activation::Relu)
            .decoder(input, Activation::Sigmoid)
            .build()
            .unwrap();
        Autoencoder::new(cfg, 1).unwrap()
    }

    /// An image of several channels is drawn with its channels stacked
    /// vertically, as it lies in memory; one channel as configured; no
    /// image shape: a square when the input is one, else one row.
    #[test]
    fn image_shapes_follow_the_configuration() {
        assert_eq!(image_shape(&model(153, Some((3, 17, 3)))), (3, 51));
        assert_eq!(image_shape(&model(35, Some((1, 5, 7)))), (7, 5));
        assert_eq!(image_shape(&model(784, None)), (28, 28));
        assert_eq!(image_shape(&model(153, None)), (153, 1));
    }
}
