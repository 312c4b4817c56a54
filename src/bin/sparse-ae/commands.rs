//! One function per subcommand: validate, call the library, print.

use crate::cli::{
    DownloadArgs, EncoderInitArg, EvalArgs, ExportArgs, FeaturesArgs, GradcheckArgs, HistogramArgs,
    OptimizerKind, OutArgs, ReconstructArgs, SaeArgs, SplitArg, TrainArgs,
};
use crate::data::{self, Loaded};
use crate::progress::Progress;
use crate::train_input::{Input, choose_scale, fit_json, initial_model};
use sparse_ae::gradcheck::{CheckOptions, check_model};
use sparse_ae::io::model_file::{
    load_checkpoint, load_model, load_model_scaled, save_checkpoint, save_model_scaled,
};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::sae::{DEFAULT_AUXK_COEF, default_auxk_k};
use sparse_ae::nn::{
    Autoencoder, AuxK, EncoderInit, LayerSpec, Loss, ModelConfig, PRESETS, apply_noise, preset,
};
use sparse_ae::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use sparse_ae::report::png_out::save_png;
use sparse_ae::report::training::{
    code_histogram, feature_picture, reconstruction_grid, write_training_report,
};
use sparse_ae::rng::Rng;
use sparse_ae::train::metrics::json_num;
use sparse_ae::train::{
    EpochMetrics, FitOptions, Rows, Trainer, encode as encode_all, evaluate, evaluate_rows,
    explained, explained_rows, score as score_all,
};
use sparse_ae::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn read_config(path: &Path) -> Result<ModelConfig> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let value = sparse_ae::io::json::parse_named(&bytes, path)?;
    ModelConfig::from_json_value(&value).map_err(|e| match e {
        Error::Config { field, reason } => Error::Config {
            field: format!("{}: {field}", path.display()),
            reason,
        },
        e => e,
    })
}

fn model_config(
    preset_name: Option<&str>,
    config: Option<&Path>,
    input: usize,
) -> Result<ModelConfig> {
    match (preset_name, config) {
        (Some(p), _) => preset(p, input),
        (None, Some(c)) => {
            let cfg = read_config(c)?;
            if cfg.input != input {
                return Err(Error::config(
                    format!("{}: input", c.display()),
                    format!(
                        "the model takes {} features but the data has {input}",
                        cfg.input
                    ),
                ));
            }
            Ok(cfg)
        }
        (None, None) => Err(Error::config(
            "model",
            "give --preset NAME (see `sparse-ae presets`), --config FILE, --init MODEL|DIR, or --resume CHECKPOINT",
        )),
    }
}

/// The preset or config with the SAE flags of `train` applied, validated.
fn apply_sae_flags(mut cfg: ModelConfig, a: &SaeArgs) -> Result<ModelConfig> {
    if a.linear_output {
        let last = cfg.layers.len() - 1;
        if let LayerSpec::Dense { act, .. } | LayerSpec::Conv2d { act, .. } = &mut cfg.layers[last]
        {
            *act = Activation::Linear;
        }
        cfg.loss = Loss::Mse;
    }
    let s = &mut cfg.sae;
    s.unit_norm_decoder |= a.unit_norm_decoder;
    s.pre_encoder_bias |= a.pre_encoder_bias;
    match a.encoder_init {
        Some(EncoderInitArg::Glorot) => s.encoder_init = EncoderInit::Glorot,
        Some(EncoderInitArg::Transpose) => s.encoder_init = EncoderInit::DecoderTranspose,
        None => {}
    }
    if let Some(w) = a.dead_window {
        s.dead_window = w;
    }
    if a.auxk || a.auxk_coef.is_some() || a.auxk_k.is_some() {
        let old = s.auxk;
        let units = cfg.width(cfg.code_layer);
        cfg.sae.auxk = Some(AuxK {
            k: a.auxk_k
                .or(old.map(|o| o.k))
                .unwrap_or_else(|| default_auxk_k(cfg.input, units)),
            coef: a
                .auxk_coef
                .or(old.map(|o| o.coef))
                .unwrap_or(DEFAULT_AUXK_COEF),
        });
    }
    cfg.validate().map_err(|e| match e {
        Error::Config { field, reason }
            if field.starts_with("sae.") && reason.contains("linear output") =>
        {
            Error::Config {
                field,
                reason: format!("{reason}; add --linear-output"),
            }
        }
        e => e,
    })?;
    Ok(cfg)
}

/// Peak resident memory of this process in MB (Linux; None elsewhere).
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn append_metrics(path: &Path, m: &EpochMetrics) -> Result<()> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("json"));
    let fresh = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut line = String::new();
    if json {
        line.push_str(&m.json_line());
    } else {
        if fresh {
            line.push_str(EpochMetrics::CSV_HEADER);
            line.push('\n');
        }
        line.push_str(&m.csv_row());
    }
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(|e| Error::io(path, e))
}

pub fn train(a: TrainArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let path = data::locate(&a.data)?;
    let mut opts = FitOptions {
        epochs: a.epochs,
        max_steps: a.steps,
        shuffle: !a.no_shuffle,
        shuffle_seed: a.seed,
        eval_batch: 1000,
    };
    let resumed = match &a.resume {
        Some(ck) => {
            let (t, fit) = load_checkpoint(ck)?;
            opts.shuffle = fit.bool_at("shuffle")?;
            opts.shuffle_seed = fit
                .str_at("shuffle_seed")?
                .parse()
                .map_err(|_| Error::config("sparse_ae.fit.shuffle_seed", "not a number"))?;
            if !a.quiet {
                eprintln!("resuming {} at step {}", ck.display(), t.steps());
            }
            Some((t, crate::train_input::resumed(&fit)?))
        }
        None => None,
    };
    let input = Input::open(&path, &a, resumed.as_ref().map(|(_, (_, c))| *c))?;
    let dim = input.dim()?;
    let (mut trainer, scale) = if let Some((t, (scale, _))) = resumed {
        (t, scale)
    } else {
        let cfg = match (a.preset.as_deref(), a.config.as_deref()) {
            (None, None) => None,
            (p, c) => Some(apply_sae_flags(model_config(p, c, dim)?, &a.sae)?),
        };
        let (model, init_scale) = initial_model(a.init.as_deref(), cfg, a.seed)?;
        if model.config().input != dim {
            return Err(Error::config(
                "--init",
                format!(
                    "the model takes {} features but the data has {dim}",
                    model.config().input
                ),
            ));
        }
        let scale = choose_scale(
            &input,
            model.config(),
            init_scale,
            a.normalize.map(|n| n.target()),
            a.quiet,
        )?;
        let opt = match a.optimizer {
            OptimizerKind::Adam => OptimizerConfig::Adam(AdamConfig {
                lr: a.lr.unwrap_or(1e-3),
                ..AdamConfig::default()
            }),
            OptimizerKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                lr: a.lr.unwrap_or(0.01),
                momentum: a.momentum,
            }),
        };
        let t = Trainer::new(
            model,
            opt,
            a.batch_size,
            a.noise_seed.unwrap_or(a.seed ^ 0x5eed_5eed),
        )?;
        (t, scale)
    };
    if !a.quiet {
        let (n_train, n_test) = input.lens()?;
        let streamed = match input.chunk_rows() {
            Some(c) => format!(", streamed in chunks of {c} rows"),
            None => String::new(),
        };
        eprintln!(
            "training {} parameters on {n_train} samples ({dim} features{streamed}), batch {}, {} kernels; test set {n_test} samples (startup {:.0} ms)",
            trainer.model.params.len(),
            trainer.batch(),
            sparse_ae::kernels::Isa::active(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let fit_meta = fit_json(&opts, scale, input.chunk_rows());
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut obs = Progress::new(
        a.quiet,
        Box::new(|m: &EpochMetrics, t: &Trainer<f32>| {
            if let Some(p) = &a.metrics {
                append_metrics(p, m)?;
            }
            if let Some(p) = &a.checkpoint {
                save_checkpoint(p, t, &fit_meta)?;
            }
            Ok(())
        }),
    );
    let result = input.fit(&mut trainer, scale, &opts, &mut obs);
    drop(obs);
    match result {
        Ok(h) => history.extend(h),
        Err(e) => {
            if let Some(p) = &a.checkpoint {
                eprintln!(
                    "training stopped; the last good checkpoint is {}",
                    p.display()
                );
            }
            return Err(e);
        }
    }
    save_model_scaled(&a.out, &trainer.model, scale)?;
    if let Some(dir) = &a.report {
        let title = a.preset.clone().unwrap_or_else(|| "sparse-ae model".into());
        let index = input.with_report_samples(|s| {
            write_training_report(dir, &title, &trainer.model, &history, s.scaled(scale)?)
        })?;
        if !a.quiet {
            eprintln!("report: {}", index.display());
        }
    }
    if !a.quiet {
        eprintln!(
            "saved {} after {} steps in {:.1} s; peak RSS {}",
            a.out.display(),
            trainer.steps(),
            start.elapsed().as_secs_f64(),
            peak_rss_mb().map_or("unknown".into(), |m| format!("{m:.0} MB"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn load_split(args: &crate::cli::DataArgs, split: SplitArg) -> Result<Loaded> {
    data::load(args, split)
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    let (model, scale) = load_model_scaled(&a.model)?;
    // A .npy split is read a batch at a time (twice), never held whole.
    let path = data::locate(&a.data)?;
    let (n, (l, stats), ex) = if data::is_npy(&path) {
        let rows = data::open_npy(&path)?;
        let (lo, hi) = data::npy_split(rows.len(), a.split, a.data.limit);
        let mut rows = rows.range(lo, hi)?.scaled(scale)?;
        let ev = evaluate_rows(&model, &mut rows, 1000)?;
        (hi - lo, ev, explained_rows(&model, &mut rows)?)
    } else {
        let d = data::load_from(&path, a.data.limit, a.split)?;
        let s = d.samples()?.scaled(scale)?;
        (s.len(), evaluate(&model, s, 1000)?, explained(&model, s)?)
    };
    let units = model.config().width(model.config().code_layer);
    if a.json {
        println!(
            "{{\"samples\":{},\"loss\":{},\"recon\":{},\"l1\":{},\"kl\":{},\"l2\":{},\"mse\":{},\"fvu\":{},\"l0\":{},\"dead_units\":{},\"code_units\":{}}}",
            n,
            l.total(),
            l.recon,
            l.l1,
            l.kl,
            l.l2,
            json_num(ex.mse),
            json_num(ex.fvu),
            stats.l0(),
            stats.dead(),
            units
        );
    } else {
        println!("samples     {n}");
        println!("loss        {:.6}", l.total());
        println!("  recon     {:.6}", l.recon);
        println!("  l1        {:.6}", l.l1);
        println!("  kl        {:.6}", l.kl);
        println!("  l2        {:.6}", l.l2);
        println!("mse         {:.6}", ex.mse);
        println!(
            "FVU         {:.4} (explained variance {:.4})",
            ex.fvu,
            1.0 - ex.fvu
        );
        println!(
            "L0          {:.3} active code units per sample (h > {})",
            stats.l0(),
            stats.threshold()
        );
        if let Some(r) = stats.rho_spread() {
            println!(
                "rho_hat     median {:.4} [{:.4}, {:.4}] against rho {}; {} of {} off by more than 2x",
                r.median, r.min, r.max, r.rho, r.off_target, r.groups
            );
        }
        println!("dead units  {} of {}", stats.dead(), units);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn encode(a: OutArgs) -> Result<ExitCode> {
    let (model, scale) = load_model_scaled(&a.model)?;
    let d = load_split(&a.data, a.split)?;
    let s = d.samples()?.scaled(scale)?;
    let codes = encode_all(&model, s)?;
    let units = model.config().width(model.config().code_layer);
    sparse_ae::data::npy::write(&a.out, s.len(), units, &codes)?;
    eprintln!(
        "wrote {} codes of {} units to {}",
        s.len(),
        units,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn score(a: OutArgs) -> Result<ExitCode> {
    let (model, scale) = load_model_scaled(&a.model)?;
    let d = load_split(&a.data, a.split)?;
    let s = d.samples()?.scaled(scale)?;
    let scores = score_all(&model, s)?;
    let npy = a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if npy {
        sparse_ae::data::npy::write(&a.out, scores.len(), 1, &scores)?;
    } else {
        let mut text = String::from("index,score\n");
        for (i, v) in scores.iter().enumerate() {
            text.push_str(&format!("{i},{v}\n"));
        }
        sparse_ae::io::atomic::write_atomic_bytes(&a.out, text.as_bytes())?;
    }
    eprintln!("wrote {} scores to {}", scores.len(), a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn reconstruct(a: ReconstructArgs) -> Result<ExitCode> {
    let (model, scale) = load_model_scaled(&a.model)?;
    let d = load_split(&a.data, a.split)?;
    let pic = reconstruction_grid(&model, d.samples()?.scaled(scale)?, a.n, a.noise_seed)?;
    save_png(&a.out, &pic)?;
    eprintln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn features(a: FeaturesArgs) -> Result<ExitCode> {
    let model = load_model(&a.model)?;
    save_png(&a.out, &feature_picture(&model)?)?;
    eprintln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn histogram(a: HistogramArgs) -> Result<ExitCode> {
    let models: Vec<(String, (Autoencoder<f32>, f32))> = a
        .model
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned());
            load_model_scaled(p).map(|m| (name, m))
        })
        .collect::<Result<_>>()?;
    let scale = models.first().map_or(1.0, |(_, (_, s))| *s);
    if models.iter().any(|(_, (_, s))| *s != scale) {
        return Err(Error::config(
            "--model",
            "the models were trained with different input scales; draw them separately",
        ));
    }
    let models: Vec<(String, Autoencoder<f32>)> =
        models.into_iter().map(|(n, (m, _))| (n, m)).collect();
    let d = load_split(&a.data, a.split)?;
    let refs: Vec<(&str, &Autoencoder<f32>)> =
        models.iter().map(|(n, m)| (n.as_str(), m)).collect();
    save_png(
        &a.out,
        &code_histogram(&refs, d.samples()?.scaled(scale)?, 10_000)?,
    )?;
    eprintln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn gradcheck(a: GradcheckArgs) -> Result<ExitCode> {
    let cfg = match (&a.config, &a.preset) {
        (Some(c), _) => read_config(c)?,
        (None, Some(p)) => preset(p, 784)?,
        (None, None) => {
            return Err(Error::config(
                "gradcheck",
                "give --config FILE or --preset NAME",
            ));
        }
    };
    if a.batch == 0 {
        return Err(Error::config("--batch", "must be at least 1"));
    }
    let model = Autoencoder::<f64>::new(cfg.clone(), a.seed)?;
    let mut rng = Rng::new(a.seed ^ 0xda7a);
    let clean: Vec<f64> = (0..a.batch * cfg.input).map(|_| rng.next_f64()).collect();
    let mut input = clean.clone();
    apply_noise(cfg.noise, &mut rng, &clean, &mut input);
    let opts = CheckOptions {
        max_entries: a.entries.max(1),
        seed: a.seed,
        tolerance: a.tolerance,
        ..CheckOptions::default()
    };
    let report = check_model(&model, &input, &clean, a.batch, &opts)?;
    println!("{report}");
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let (model, scale) = load_model_scaled(&a.model)?;
    sparse_ae::io::interop::export_sae_scaled(&model, scale, &a.out)?;
    eprintln!("wrote {}/sae.safetensors and cfg.json", a.out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn presets() -> Result<ExitCode> {
    for (name, what) in PRESETS {
        println!("{name:<16} {what}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn download(a: DownloadArgs) -> Result<ExitCode> {
    let cache = match a.cache {
        Some(c) => c,
        None => sparse_ae::data::download::cache_dir()?,
    };
    let dir = data::fetch(data::dataset(a.dataset), &cache)?;
    println!("{}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Paths as a comma list, `none` when empty.
fn isa_list(paths: impl Iterator<Item = sparse_ae::kernels::Isa>) -> String {
    let names: Vec<&str> = paths.map(|i| i.name()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

pub fn info() -> Result<ExitCode> {
    use sparse_ae::kernels::{CpuInfo, Isa};
    let all = Isa::ALL.into_iter();
    println!("cpu: {}", CpuInfo::get().summary());
    println!(
        "kernel paths: available {}; hidden by {}: {}; not on this CPU: {}",
        isa_list(all.clone().filter(|i| i.is_available())),
        sparse_ae::kernels::dispatch::MAX_ENV,
        isa_list(all.clone().filter(|i| i.cpu_has() && !i.is_available())),
        isa_list(all.filter(|i| !i.cpu_has())),
    );
    println!("active kernel path: {}", Isa::active());
    println!("threads: {}", rayon::current_num_threads());
    Ok(ExitCode::SUCCESS)
}
