//! Training in fixed micro-batches (`sparse_ae::dist`): the same bits for
//! any number of ranks, here simulated by threads that exchange through
//! shared memory (the MPI runs are tests/mpi.rs), and the default
//! decomposition gives the default step's bits.

mod common;

use sparse_ae::dist::{Collective, MicroPlan};
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{load_checkpoint, save_checkpoint};
use sparse_ae::kernels::Activation::{Linear, Relu, Sigmoid};
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig, Noise, TopkPath};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::rng::Rng;
use sparse_ae::train::{FitOptions, MicroWorkspaces, Samples, Silent, Trainer, fit_on};
use sparse_ae::{Error, Result};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

/// Ranks as threads of one process: each collective posts this rank's
/// buffer, waits for all, reads the others'.
struct ThreadRank {
    rank: usize,
    ranks: usize,
    shared: Arc<Shared>,
}

struct Shared {
    barrier: Barrier,
    floats: Mutex<Vec<(Vec<f32>, Vec<usize>)>>,
    bytes: Mutex<Vec<Vec<u8>>>,
}

fn thread_ranks(p: usize) -> Vec<ThreadRank> {
    let shared = Arc::new(Shared {
        barrier: Barrier::new(p),
        floats: Mutex::new(vec![(Vec::new(), Vec::new()); p]),
        bytes: Mutex::new(vec![Vec::new(); p]),
    });
    (0..p)
        .map(|rank| ThreadRank {
            rank,
            ranks: p,
            shared: shared.clone(),
        })
        .collect()
}

impl ThreadRank {
    fn gather_from<T: Clone>(&self, slots: &Mutex<Vec<T>>, mine: T) -> Vec<T> {
        slots.lock().unwrap()[self.rank] = mine;
        self.shared.barrier.wait();
        let all = slots.lock().unwrap().clone();
        self.shared.barrier.wait();
        all
    }
}

impl Collective<f32> for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn ranks(&self) -> usize {
        self.ranks
    }
    fn all_to_all(
        &mut self,
        send: &[f32],
        send_counts: &[usize],
        recv: &mut [f32],
        recv_counts: &[usize],
    ) -> Result<()> {
        let all = self.gather_from(&self.shared.floats, (send.to_vec(), send_counts.to_vec()));
        let mut at = 0;
        for (r, (buf, counts)) in all.iter().enumerate() {
            let start: usize = counts[..self.rank].iter().sum();
            assert_eq!(counts[self.rank], recv_counts[r]);
            recv[at..at + recv_counts[r]].copy_from_slice(&buf[start..start + recv_counts[r]]);
            at += recv_counts[r];
        }
        Ok(())
    }
    fn all_gather(&mut self, send: &[f32], recv: &mut [f32], counts: &[usize]) -> Result<()> {
        let all = self.gather_from(&self.shared.floats, (send.to_vec(), Vec::new()));
        let flat: Vec<f32> = all.into_iter().flat_map(|(b, _)| b).collect();
        assert_eq!(flat.len(), counts.iter().sum::<usize>());
        recv.copy_from_slice(&flat);
        Ok(())
    }
    fn all_gather_bytes(&mut self, send: &[u8], recv: &mut [u8], counts: &[usize]) -> Result<()> {
        let all = self.gather_from(&self.shared.bytes, send.to_vec());
        let flat: Vec<u8> = all.concat();
        assert_eq!(flat.len(), counts.iter().sum::<usize>());
        recv.copy_from_slice(&flat);
        Ok(())
    }
}

/// The models: dense with L1 and weight decay; KL; TopK; an SAE with a
/// unit-norm decoder and a pre-encoder bias.
fn models() -> Vec<(&'static str, ModelConfig)> {
    vec![
        (
            "dense",
            ModelBuilder::new(20)
                .encoder(12, Relu)
                .code(6, Relu)
                .decoder(12, Relu)
                .decoder(20, Sigmoid)
                .l1(1e-3)
                .weight_decay(1e-3)
                .build()
                .unwrap(),
        ),
        (
            "kl",
            ModelBuilder::new(20)
                .code(40, Sigmoid)
                .decoder(20, Sigmoid)
                .kl(0.05, 3.0)
                .build()
                .unwrap(),
        ),
        (
            "topk",
            ModelBuilder::new(20)
                .code(48, Relu)
                .decoder(20, Sigmoid)
                .topk(5, false)
                .build()
                .unwrap(),
        ),
        (
            "sae",
            ModelBuilder::new(20)
                .code(48, Relu)
                .decoder(20, Linear)
                .loss(Loss::Mse)
                .topk(6, false)
                .unit_norm_decoder(true)
                .pre_encoder_bias(true)
                .build()
                .unwrap(),
        ),
    ]
}

fn data(n: usize, dim: usize) -> Vec<f32> {
    let mut r = Rng::new(11);
    (0..n * dim).map(|_| r.next_f32()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// What a run gives: the parameters, Adam's second moments, and per epoch
/// the training loss, L0 and dead units (counts, exact on any number of
/// ranks), then the dead-latent counters.
type Outcome = (Vec<u32>, Vec<u32>, Vec<(u64, u64, usize)>, Vec<u64>);

/// The outcome of `fit_on` shared by `p` thread ranks, each on a
/// one-thread pool.
fn train_on_ranks(
    cfg: &ModelConfig,
    batch: usize,
    m: Option<usize>,
    p: usize,
    x: &[f32],
) -> Outcome {
    train_on_ranks_path(cfg, batch, m, p, x, TopkPath::active())
}

/// [`train_on_ranks`] with the top-k code on `path`.
fn train_on_ranks_path(
    cfg: &ModelConfig,
    batch: usize,
    m: Option<usize>,
    p: usize,
    x: &[f32],
    path: TopkPath,
) -> Outcome {
    train_accumulated_on(cfg, batch, m, 1, MicroWorkspaces::default(), p, x, path)
}

/// [`train_on_ranks`] accumulating `k` batches per step, the micro-batches'
/// activations held `how`.
fn train_accumulated(
    cfg: &ModelConfig,
    batch: usize,
    m: Option<usize>,
    k: usize,
    how: MicroWorkspaces,
    p: usize,
    x: &[f32],
) -> Outcome {
    train_accumulated_on(cfg, batch, m, k, how, p, x, TopkPath::active())
}

/// [`train_accumulated`] with the top-k code on `path`.
#[allow(clippy::too_many_arguments)]
fn train_accumulated_on(
    cfg: &ModelConfig,
    batch: usize,
    m: Option<usize>,
    k: usize,
    how: MicroWorkspaces,
    p: usize,
    x: &[f32],
    path: TopkPath,
) -> Outcome {
    let opts = FitOptions {
        epochs: 2,
        max_steps: None,
        shuffle: true,
        shuffle_seed: 5,
        eval_batch: 100,
    };
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = thread_ranks(p)
            .into_iter()
            .map(|mut rank| {
                let (model, opts) = (model.clone(), opts.clone());
                s.spawn(move || {
                    let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 1).unwrap();
                    t.set_micro_batches(m).unwrap();
                    t.set_topk_path(path).unwrap();
                    t.set_accumulate(k).unwrap();
                    t.set_micro_workspaces(how);
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .unwrap();
                    let samples = Samples::f32(x, cfg.input).unwrap();
                    let h = pool
                        .install(|| fit_on(&mut t, samples, None, &opts, &mut Silent, &mut rank))
                        .unwrap();
                    let epochs = h
                        .iter()
                        .map(|e| (e.train.total().to_bits(), e.l0.to_bits(), e.dead_units))
                        .collect();
                    let dead = t.dead_latents().counters().to_vec();
                    (bits(&t.model.params), bits(&t.opt.v), epochs, dead)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results[1..] {
        assert!(r == &results[0], "the ranks disagree");
    }
    results.into_iter().next().unwrap()
}

/// 6 micro-batches of a batch of 50 (sizes 9 and 8) over 1 to 4 ranks
/// (4 ranks own 2, 2, 1, 1): the same model, moments and losses as one
/// process computing every micro-batch.
#[test]
fn any_number_of_ranks_gives_the_same_bits() {
    let x = data(230, 20);
    for (name, cfg) in models() {
        same_bits_on_2_to_4_ranks(name, &cfg, &x);
    }
}

/// 6 micro-batches of a batch of 50 on 2, 3 and 4 ranks: one rank's bits.
fn same_bits_on_2_to_4_ranks(name: &str, cfg: &ModelConfig, x: &[f32]) {
    let one = train_on_ranks(cfg, 50, Some(6), 1, x);
    for p in 2..=4 {
        let got = train_on_ranks(cfg, 50, Some(6), p, x);
        assert!(got == one, "{name}: {p} ranks differ from one");
    }
}

/// A TopK SAE with AuxK (and a unit-norm decoder, a pre-encoder bias) whose
/// dead window of 50 samples leaves latents dead after each batch: AuxK's
/// residual mean and denominator are the whole batch's on 1 to 4 ranks.
#[test]
fn auxk_over_ranks_gives_the_same_bits() {
    let x = data(230, 20);
    same_bits_on_2_to_4_ranks("AuxK", &common::full_sae(20, 64, 2, 50), &x);
}

/// AuxK in micro-batches is AuxK of the whole batch: from the same state,
/// with dead latents, the loss and the update of 6 micro-batches are those
/// of one piece up to rounding (a micro-batch's own residual mean would
/// change the denominator by far more).
#[test]
fn auxk_in_micro_batches_is_the_whole_batch_loss() {
    let x = data(150, 20);
    let cfg = common::full_sae(20, 64, 2, 50);
    let model = Autoencoder::<f32>::new(cfg, 3).unwrap();
    let mut whole = Trainer::new(model, OptimizerConfig::default(), 50, 1).unwrap();
    whole.step(&x[..1000]).unwrap();
    assert!(whole.dead_latents().dead() > 0);
    let mut micro = whole.clone();
    micro.set_micro_batches(Some(6)).unwrap();
    for b in x[1000..].chunks_exact(1000) {
        let (a, c) = (whole.step(b).unwrap(), micro.step(b).unwrap());
        assert!(a.auxk > 0.0);
        assert!(
            (a.auxk - c.auxk).abs() <= 1e-5 * a.auxk,
            "{} vs {}",
            a.auxk,
            c.auxk
        );
        for (p, q) in whole.opt.m.iter().zip(&micro.opt.m) {
            assert!((p - q).abs() <= 1e-4 * p.abs().max(1e-3), "{p} vs {q}");
        }
    }
}

/// A batch top-k SAE.
fn batch_topk() -> ModelConfig {
    ModelBuilder::new(20)
        .code(48, Relu)
        .decoder(20, Sigmoid)
        .topk(5, true)
        .build()
        .unwrap()
}

/// Batch top-k on 1 to 4 ranks, dense and sparse: the same bits.
#[test]
fn batch_topk_over_ranks_gives_the_same_bits() {
    let x = data(230, 20);
    for path in [TopkPath::Dense, TopkPath::Sparse] {
        let one = train_on_ranks_path(&batch_topk(), 50, Some(6), 1, &x, path);
        for p in 2..=4 {
            let got = train_on_ranks_path(&batch_topk(), 50, Some(6), p, &x, path);
            assert!(got == one, "{path:?}: {p} ranks differ from one");
        }
    }
}

/// The code of one step of a batch top-k model in `m` micro-batches over
/// `p` thread ranks, the ranks' micro-batches in order.
fn batch_topk_codes(
    model: &Autoencoder<f32>,
    x: &[f32],
    m: usize,
    p: usize,
    path: TopkPath,
) -> Vec<u32> {
    let d = model.config().input;
    let batch = x.len() / d;
    let codes: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = thread_ranks(p)
            .into_iter()
            .map(|mut rank| {
                s.spawn(move || {
                    let mut t =
                        Trainer::new(model.clone(), OptimizerConfig::default(), batch, 1).unwrap();
                    t.set_micro_batches(Some(m)).unwrap();
                    t.set_topk_path(path).unwrap();
                    let rows = MicroPlan::new(batch, m, p).unwrap().rows(rank.rank);
                    t.step_on(&x[rows.start * d..rows.end * d], &mut rank)
                        .unwrap();
                    let code: Vec<f32> = t
                        .workspaces()
                        .iter()
                        .flat_map(|w| t.model.code(w).to_vec())
                        .collect();
                    bits(&code)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    codes.concat()
}

/// Batch top-k in micro-batches keeps exactly what the whole batch keeps,
/// ties at the threshold included: 50 copies of one sample through a code
/// whose units come in equal pairs, so each value appears 100 times and
/// the k·B = 250 kept values end halfway through a tie, inside micro-batch
/// 2 of 6 (rows 18..26): the earliest 50 of the 100 entries are kept. And at
/// MNIST's 784 inputs, where the products cut k into blocks, micro-batches
/// of any size keep the whole batch's selection too (before the direct and
/// the packed loops cut k alike, 3 micro-batches of 34 rows did not).
#[test]
fn batch_topk_in_micro_batches_keeps_the_whole_batch_selection() {
    let mut model = Autoencoder::<f32>::new(batch_topk(), 3).unwrap();
    let (w, b) = (
        model.layout().weight(0).range(),
        model.layout().bias(0).range(),
    );
    let (w0, b0) = (w.start, b.start);
    for j in 0..24 {
        for i in 0..20 {
            model.params[w0 + (24 + j) * 20 + i] = model.params[w0 + j * 20 + i];
        }
        model.params[b0 + 24 + j] = model.params[b0 + j];
    }
    let row = data(1, 20);
    let x: Vec<f32> = row.iter().cycle().take(50 * 20).copied().collect();
    for path in [TopkPath::Dense, TopkPath::Sparse] {
        let want = batch_topk_codes(&model, &x, 1, 1, path);
        assert_eq!(want.iter().filter(|&&v| v != 0).count(), 250);
        let first = &want[..48];
        let split = (0..50).find(|&i| &want[i * 48..(i + 1) * 48] != first);
        assert_eq!(split, Some(25), "the tie is cut at row 25");
        for (m, p) in [(6, 1), (6, 3), (50, 4), (2, 2)] {
            let got = batch_topk_codes(&model, &x, m, p, path);
            assert!(got == want, "{path:?}: {m} micro-batches on {p} ranks");
        }
    }
    // Distinct samples: the same selection as the whole batch too.
    let x = data(50, 20);
    let model = Autoencoder::<f32>::new(batch_topk(), 3).unwrap();
    let want = batch_topk_codes(&model, &x, 1, 1, TopkPath::Dense);
    assert!(batch_topk_codes(&model, &x, 6, 4, TopkPath::Dense) == want);
    // MNIST's depth (784 inputs, k-blocks on every path) and a whole batch
    // of 100 against micro-batches of 1 to 34 samples: each code has the
    // whole batch's bits, so the selection is the whole batch's.
    let cfg = ModelBuilder::new(784)
        .code(64, Relu)
        .decoder(784, Sigmoid)
        .topk(5, true)
        .build()
        .unwrap();
    let model = Autoencoder::<f32>::new(cfg, 5).unwrap();
    let x = data(100, 784);
    let want = batch_topk_codes(&model, &x, 1, 1, TopkPath::Dense);
    for (m, p) in [(3, 2), (100, 4), (7, 3)] {
        let got = batch_topk_codes(&model, &x, m, p, TopkPath::Dense);
        assert!(got == want, "784 inputs: {m} micro-batches on {p} ranks");
    }
}

/// Denoising models (Gaussian and masking noise, batches not cut at the
/// noise's blocks): each rank draws the noise of its own rows, so 1 to 4
/// ranks give the bits of one process, with 6 micro-batches and with the
/// default step (one piece at batch 50, computed by rank 0).
#[test]
fn noise_is_drawn_as_one_process_draws_it() {
    let x = data(230, 20);
    for noise in [Noise::Gaussian { std: 0.3 }, Noise::Masking { p: 0.25 }] {
        let cfg = ModelBuilder::new(20)
            .encoder(12, Relu)
            .code(6, Relu)
            .decoder(12, Relu)
            .decoder(20, Sigmoid)
            .noise(noise)
            .build()
            .unwrap();
        same_bits_on_2_to_4_ranks(&format!("{noise:?}"), &cfg, &x);
        let plain = train_on_ranks(&cfg, 50, None, 1, &x);
        for p in 2..=3 {
            let got = train_on_ranks(&cfg, 50, None, p, &x);
            assert!(got == plain, "{noise:?}: the default step on {p} ranks");
        }
    }
}

/// More ranks than micro-batches: the idle rank takes part in the exchange.
#[test]
fn idle_ranks_change_nothing() {
    let x = data(100, 20);
    let cfg = &models()[1].1;
    let one = train_on_ranks(cfg, 40, Some(2), 1, &x);
    assert!(train_on_ranks(cfg, 40, Some(2), 3, &x) == one);
    assert!(
        MicroPlan::new(40, 2, 3)
            .unwrap()
            .unevenness()
            .unwrap()
            .contains("compute nothing")
    );
}

/// The default decomposition (two halves from batch 65, one piece for the
/// SAE options) stepped as micro-batches gives the default step's bits:
/// `mpirun -n P` without --micro-batches reproduces a plain run.
#[test]
fn default_micro_batches_reproduce_the_default_step() {
    let x = data(128 * 3, 20);
    for (name, cfg) in models() {
        let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
        let mut plain = Trainer::new(model.clone(), OptimizerConfig::default(), 128, 1).unwrap();
        let mut micro = plain.clone();
        let m = micro.micro_batches();
        assert_eq!(m, if name == "sae" { 1 } else { 2 }, "{name}");
        micro.set_micro_batches(Some(m)).unwrap();
        for b in x.chunks_exact(128 * 20) {
            let (a, c) = (plain.step(b).unwrap(), micro.step(b).unwrap());
            assert_eq!(a.total().to_bits(), c.total().to_bits(), "{name}");
        }
        assert!(
            bits(&plain.model.params) == bits(&micro.model.params),
            "{name}"
        );
        assert!(bits(&plain.opt.m) == bits(&micro.opt.m), "{name}");
        assert_eq!(
            plain.dead_latents().counters(),
            micro.dead_latents().counters()
        );
        // Under two ranks, each computing one half.
        if m == 2 {
            let two = train_on_ranks(&cfg, 128, None, 2, &x);
            let solo = train_on_ranks(&cfg, 128, None, 1, &x);
            assert!(two == solo, "{name}: the default over 2 ranks");
        }
    }
}

/// Micro-batches on one or two threads: the same bits.
#[test]
fn micro_batches_do_not_depend_on_threads() {
    let x = data(160, 20);
    for (name, cfg) in models() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
            let mut t = Trainer::new(model, OptimizerConfig::default(), 40, 1).unwrap();
            t.set_micro_batches(Some(5)).unwrap();
            pool.install(|| {
                for b in x.chunks_exact(40 * 20) {
                    t.step(b).unwrap();
                }
            });
            bits(&t.model.params)
        };
        assert!(run(1) == run(2), "{name}");
    }
}

#[test]
fn refuses_micro_batches_it_cannot_honour() {
    let cfg = &models()[0].1;
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 8, 1).unwrap();
    for m in [0, 9] {
        let e = t.set_micro_batches(Some(m)).unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } if field == "micro_batches"),
            "{e}"
        );
    }
    // AuxK and batch top-k take any count.
    for cfg in [common::full_sae(20, 48, 6, 1000), batch_topk()] {
        let model = Autoencoder::<f32>::new(cfg, 3).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), 8, 1).unwrap();
        t.set_micro_batches(Some(4)).unwrap();
    }
}

/// A checkpoint keeps the micro-batch count, and the resumed run steps as
/// the uninterrupted one.
#[test]
fn checkpoints_keep_the_micro_batches() {
    let dir = common::temp_dir("micro_batches_checkpoint");
    let x = data(120, 20);
    let cfg = &models()[1].1;
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 30, 1).unwrap();
    t.set_micro_batches(Some(3)).unwrap();
    t.step(&x[..600]).unwrap();
    let back = resumes_as_uninterrupted(&dir, t, &x[600..]);
    assert_eq!(back.micro_batches_set(), Some(3));
}

/// Saves `t` as a checkpoint in `dir`, loads it, steps both on the batches
/// of 600 values in `rest` and asserts the same parameters; the loaded one.
fn resumes_as_uninterrupted(dir: &Path, mut t: Trainer<f32>, rest: &[f32]) -> Trainer<f32> {
    let path = dir.join("ck.safetensors");
    save_checkpoint(&path, &t, &Value::Object(Vec::new())).unwrap();
    let (mut back, _) = load_checkpoint(&path).unwrap();
    for b in rest.chunks_exact(600) {
        t.step(b).unwrap();
        back.step(b).unwrap();
    }
    assert!(bits(&t.model.params) == bits(&back.model.params));
    back
}

/// An error on one rank ends every rank: the failing rank gets its own
/// error back, the others the failing rank's message.
#[test]
fn an_error_on_one_rank_reaches_every_rank() {
    let results: Vec<Result<bool>> = std::thread::scope(|s| {
        let handles: Vec<_> = thread_ranks(3)
            .into_iter()
            .map(|mut rank| {
                s.spawn(move || {
                    let own = match rank.rank {
                        2 => Err(Error::config("data", "rows 7..9 cannot be read")),
                        _ => Ok(()),
                    };
                    sparse_ae::dist::agree::<f32>(&mut rank, own, true)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (r, res) in results.iter().enumerate() {
        let e = res.as_ref().unwrap_err();
        if r == 2 {
            assert!(matches!(e, Error::Config { .. }), "{e}");
        } else {
            let text = e.to_string();
            assert!(
                text.contains("rank 2") && text.contains("rows 7..9"),
                "{text}"
            );
        }
    }
    // All well, but rank 1 stops: every rank stops.
    let stops: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = thread_ranks(2)
            .into_iter()
            .map(|mut rank| {
                s.spawn(move || {
                    let go = rank.rank != 1;
                    sparse_ae::dist::agree::<f32>(&mut rank, Ok(()), go).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(stops, [false, false]);
}

/// Accumulating K batches of B in M micro-batches each gives the bits of
/// the batch K·B in K·M micro-batches, on 1 to 3 ranks: 4 batches of 25 in
/// 3 micro-batches each (12 micro-batches, the first 4 of 9 samples, the
/// others of 8: a rank reuses two workspaces under 1 and 2 ranks, one under
/// 3), and with the default micro-batches (one per batch below 128).
#[test]
fn accumulating_gives_the_bits_of_the_big_batch() {
    let x = data(230, 20);
    for (name, cfg) in models() {
        let big = train_on_ranks(&cfg, 100, Some(12), 1, &x);
        for p in 1..=3 {
            let got = train_accumulated(&cfg, 25, Some(3), 4, MicroWorkspaces::Reused, p, &x);
            assert!(got == big, "{name}: accumulated on {p} rank(s)");
        }
    }
    // Statistics of the whole batch (batch top-k's threshold and ties,
    // AuxK's residual mean and denominator) are those of the step's K·B
    // samples, as is the input noise.
    let noisy = ModelBuilder::new(20)
        .code(8, Relu)
        .decoder(20, Sigmoid)
        .noise(Noise::Gaussian { std: 0.3 })
        .build()
        .unwrap();
    for (name, cfg) in [
        ("batch top-k", batch_topk()),
        ("AuxK", common::full_sae(20, 64, 2, 50)),
        ("noise", noisy),
    ] {
        let big = train_on_ranks(&cfg, 100, Some(12), 1, &x);
        for p in [1, 3] {
            let got = train_accumulated(&cfg, 25, Some(3), 4, MicroWorkspaces::Reused, p, &x);
            assert!(got == big, "{name}: accumulated on {p} rank(s)");
        }
    }
    let cfg = &models()[0].1;
    let big = train_on_ranks(cfg, 60, Some(3), 1, &x);
    let got = train_accumulated(cfg, 20, None, 3, MicroWorkspaces::Reused, 2, &x);
    assert!(got == big, "default micro-batches");
}

/// The micro-batches of a rank computed one after another in one reused
/// workspace per size give the bits of one workspace per micro-batch: the
/// model, the moments, the losses, the epoch's L0 and dead units, the
/// dead-latent counters.
#[test]
fn reused_workspaces_give_the_bits_of_one_per_micro_batch() {
    let x = data(230, 20);
    for (name, cfg) in models() {
        for p in [1, 2] {
            let run = |how| train_accumulated(&cfg, 25, Some(3), 4, how, p, &x);
            let per = run(MicroWorkspaces::PerMicroBatch);
            assert!(run(MicroWorkspaces::Reused) == per, "{name}, {p} rank(s)");
        }
    }
    // What a step holds: 12 micro-batches of 9 and 8 samples.
    let sizes = |cfg: &ModelConfig, how| {
        let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), 25, 1).unwrap();
        t.set_micro_batches(Some(3)).unwrap();
        t.set_accumulate(4).unwrap();
        t.set_micro_workspaces(how);
        t.step(&x[..100 * 20]).unwrap();
        let held: Vec<usize> = t.workspaces().iter().map(|w| w.batch()).collect();
        held
    };
    let (dense, kl) = (&models()[0].1, &models()[1].1);
    assert_eq!(sizes(dense, MicroWorkspaces::Reused), [9, 8]);
    assert_eq!(sizes(dense, MicroWorkspaces::PerMicroBatch).len(), 12);
    // KL needs every forward pass before the first backward pass.
    assert_eq!(sizes(kl, MicroWorkspaces::Reused).len(), 12);
}

#[test]
fn refuses_accumulation_it_cannot_honour() {
    let cfg = &models()[0].1;
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 20, 1).unwrap();
    let e = t.set_accumulate(0).unwrap_err();
    assert!(
        matches!(&e, Error::Config { field, reason } if field == "accumulate" && reason.contains("at least 1")),
        "{e}"
    );
    assert_eq!(t.accumulate(), 1);
    // More samples per step than the data has.
    t.set_accumulate(3).unwrap();
    let x = data(50, 20);
    let samples = Samples::f32(&x, 20).unwrap();
    let e = sparse_ae::train::fit(&mut t, samples, None, &FitOptions::default(), &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("3 batches of 20 (60 samples per step)") && e.contains("50 training samples"),
        "{e}"
    );
}

/// A checkpoint keeps the batches per step, and the resumed run steps as
/// the uninterrupted one.
#[test]
fn checkpoints_keep_the_accumulation() {
    let dir = common::temp_dir("micro_batches_accumulate_checkpoint");
    let x = data(120, 20);
    let cfg = &models()[0].1;
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 10, 1).unwrap();
    t.set_micro_batches(Some(2)).unwrap();
    t.set_accumulate(3).unwrap();
    assert_eq!(t.samples_per_step(), 30);
    t.step(&x[..600]).unwrap();
    let back = resumes_as_uninterrupted(&dir, t, &x[600..]);
    assert_eq!((back.accumulate(), back.micro_batches_set()), (3, Some(2)));
}

/// A step of billions of micro-batches is counted without a value per
/// micro-batch and refused by the memory budget, as is a batch size too
/// large to hold, with the trainer left as it was; setting such counts
/// allocates nothing (a noisy model's copy of the input included).
#[test]
fn steps_too_large_to_hold_are_refused_before_they_are_made() {
    let cfg = ModelBuilder::new(8)
        .code(4, Relu)
        .decoder(8, Sigmoid)
        .noise(Noise::Masking { p: 0.3 })
        .build()
        .unwrap();
    let model = Autoencoder::<f32>::new(cfg, 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 2, 1).unwrap();
    t.set_accumulate(1 << 40).unwrap();
    for m in [None, Some(2)] {
        t.set_micro_batches(m).unwrap();
        for how in [MicroWorkspaces::PerMicroBatch, MicroWorkspaces::Reused] {
            t.set_micro_workspaces(how);
            let parts = t.memory_need(0, 1).unwrap();
            let total = parts.iter().fold(0u64, |a, (_, b)| a.saturating_add(*b));
            // At least the input rows: 2⁴¹ samples of 8 f32.
            assert!(total >= (1u64 << 41) * 32, "{parts:?}");
            let e = t.check_memory(0, 1).unwrap_err();
            assert!(matches!(e, Error::Memory { .. }), "{e}");
        }
    }
    // A batch size too large: refused, the trainer still at batch 2.
    let mut t = Trainer::new(
        Autoencoder::<f32>::new(models()[0].1.clone(), 3).unwrap(),
        OptimizerConfig::default(),
        2,
        1,
    )
    .unwrap();
    let e = t.set_batch(1 << 50).unwrap_err();
    assert!(matches!(e, Error::Memory { .. }), "{e}");
    assert_eq!(t.batch(), 2);
    assert!(matches!(t.set_batch(0), Err(Error::Config { .. })));
    t.set_batch(3).unwrap();
    assert_eq!(t.batch(), 3);
}

/// What a step in micro-batches holds, by part: one reused workspace per
/// micro-batch size against one per micro-batch, the tree's scratch
/// (log₂ M gradient-sized vectors), and, over ranks, the root and the
/// exchange buffers.
#[test]
fn the_memory_need_counts_the_micro_batch_buffers() {
    let cfg = &models()[0].1;
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let n = model.params.len() as u64;
    let mut t = Trainer::new(model, OptimizerConfig::default(), 25, 1).unwrap();
    t.set_micro_batches(Some(3)).unwrap();
    t.set_accumulate(4).unwrap();
    let part = |t: &Trainer<f32>, rank: usize, ranks: usize, name: &str| {
        let parts = t.memory_need(rank, ranks).unwrap();
        let (_, b) = parts
            .iter()
            .find(|(p, _)| p.contains(name))
            .unwrap_or_else(|| panic!("no part `{name}` in {parts:?}"));
        *b
    };
    let reused = part(&t, 0, 1, "workspace");
    t.set_micro_workspaces(MicroWorkspaces::PerMicroBatch);
    let per = part(&t, 0, 1, "workspace");
    assert!(per > 5 * reused, "{per} against {reused}");
    // 12 micro-batches: a tree of 4 levels, each a gradient.
    assert_eq!(part(&t, 0, 1, "tree scratch (4 levels)"), 4 * 4 * n);
    assert_eq!(part(&t, 0, 1, "root"), 0);
    assert_eq!(part(&t, 1, 2, "root"), 4 * n);
    assert!(part(&t, 1, 2, "exchange") >= 4 * n);
    assert!(t.memory_need(2, 2).is_err());
}

/// `sparse-ae` with `args` on one thread: its exit status and stderr.
fn cli(args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("SPARSE_AE_DATA")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `train --accumulate`: 0 is refused, and a resume with another K than
/// the checkpoint's is refused naming both, as `--micro-batches` is.
#[test]
fn train_refuses_zero_and_another_accumulation_on_resume() {
    let dir = common::temp_dir("micro_batches_accumulate_cli");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_tiny_mnist(&data, 8, 60, 20);
    let (ck, out) = (dir.join("ck.st"), dir.join("m.st"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (data, ck, out) = (s(&data), s(&ck), s(&out));
    let base = ["train", "--data", &data, "-o", &out, "-q"];
    let (ok, err) = cli(&[&base[..], &["--preset", "shallow", "--accumulate", "0"]].concat());
    assert!(
        !ok && err.contains("--accumulate") && err.contains("at least 1"),
        "{err}"
    );
    let first = [
        "--preset",
        "shallow",
        "--batch-size",
        "10",
        "--accumulate",
        "2",
    ];
    let (ok, err) = cli(&[&base[..], &first, &["--epochs", "1", "--checkpoint", &ck]].concat());
    assert!(ok, "{err}");
    let (back, _) = load_checkpoint(std::path::Path::new(&ck)).unwrap();
    assert_eq!((back.accumulate(), back.steps()), (2, 3));
    let (ok, err) = cli(&[
        &base[..],
        &["--resume", &ck, "--accumulate", "3", "--epochs", "2"],
    ]
    .concat());
    assert!(
        !ok && err.contains("--accumulate") && err.contains("3 differs from the checkpoint's 2"),
        "{err}"
    );
    let (ok, err) = cli(&[
        &base[..],
        &["--resume", &ck, "--accumulate", "2", "--epochs", "2"],
    ]
    .concat());
    assert!(ok, "{err}");
}

/// `--max-memory` counts the buffers of a step in micro-batches: 64
/// micro-batches of a 64-1024-64 KL model (one workspace per micro-batch,
/// a tree of 6 levels of 132,160 parameters each) are refused before
/// training, naming the parts, at a budget under which the default step
/// (and so the estimate that left the micro-batches out) trains.
#[test]
fn max_memory_counts_the_micro_batch_buffers() {
    let dir = common::temp_dir("micro_batches_memory_cli");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_tiny_mnist(&data, 8, 130, 20);
    let out = dir.join("m.st");
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    let run = |extra: &[&str]| {
        let args = [
            "--max-memory",
            "0.004",
            "train",
            "--data",
            data,
            "-o",
            out,
            "-q",
            "--preset",
            "overcomplete-kl",
            "--batch-size",
            "64",
            "--steps",
            "1",
        ];
        cli(&[&args[..], extra].concat())
    };
    let (ok, err) = run(&[]);
    assert!(ok, "the default step fits:\n{err}");
    let (ok, err) = run(&["--micro-batches", "64"]);
    assert!(!ok, "64 micro-batches trained");
    for part in [
        "in 64 micro-batches",
        "64 workspaces",
        "tree scratch (6 levels)",
        "parameters and optimizer state",
        "more than the memory budget of 4",
    ] {
        assert!(err.contains(part), "no `{part}` in:\n{err}");
    }
}

/// The normalising scale computed by 1–4 ranks, each reading its share of
/// the blocks, is the one process's bits, for both targets and blocks that
/// do not divide the rows (nor the ranks).
#[test]
fn the_normalising_scale_of_shares_is_the_one_process_scale() {
    use sparse_ae::train::normalize::{NormTarget, norm_scale, norm_scale_on};
    let (n, dim) = (103, 5);
    let mut r = Rng::new(12);
    let x: Vec<f32> = (0..n * dim).map(|_| r.normal() as f32 * 3.0).collect();
    for target in [NormTarget::UnitMeanSquare, NormTarget::MeanNormSqrtD] {
        for block in [1, 10, 64, 1000] {
            let want = norm_scale(&mut Samples::f32(&x, dim).unwrap(), block, target).unwrap();
            for p in 1..=4 {
                let x = &x;
                let got: Vec<f32> = std::thread::scope(|s| {
                    let handles: Vec<_> = thread_ranks(p)
                        .into_iter()
                        .map(|mut rank| {
                            s.spawn(move || {
                                let mut rows = Samples::f32(x, dim).unwrap();
                                norm_scale_on(&mut rows, block, target, &mut rank).unwrap()
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                for (rank, s) in got.iter().enumerate() {
                    assert_eq!(
                        s.to_bits(),
                        want.to_bits(),
                        "{target:?}, blocks of {block}, rank {rank} of {p}"
                    );
                }
            }
        }
    }
}
