//! Training in fixed micro-batches (`sparse_ae::dist`): the same bits for
//! any number of ranks, here simulated by threads that exchange through
//! shared memory (the MPI runs are tests/mpi.rs), and the default
//! decomposition gives the default step's bits.

mod common;

use sparse_ae::dist::{Collective, MicroPlan};
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{load_checkpoint, save_checkpoint};
use sparse_ae::kernels::Activation::{Linear, Relu, Sigmoid};
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::rng::Rng;
use sparse_ae::train::{FitOptions, Samples, Silent, Trainer, fit_on};
use sparse_ae::{Error, Result};
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

/// The parameters, Adam's moments and the per-epoch training losses after
/// `fit_on` shared by `p` thread ranks, each on a one-thread pool.
fn train_on_ranks(
    cfg: &ModelConfig,
    batch: usize,
    m: Option<usize>,
    p: usize,
    x: &[f32],
) -> (Vec<u32>, Vec<u32>, Vec<u64>) {
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
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .unwrap();
                    let samples = Samples::f32(x, cfg.input).unwrap();
                    let h = pool
                        .install(|| fit_on(&mut t, samples, None, &opts, &mut Silent, &mut rank))
                        .unwrap();
                    let losses: Vec<u64> = h.iter().map(|e| e.train.total().to_bits()).collect();
                    (bits(&t.model.params), bits(&t.opt.v), losses)
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
        let one = train_on_ranks(&cfg, 50, Some(6), 1, &x);
        for p in 2..=4 {
            let got = train_on_ranks(&cfg, 50, Some(6), p, &x);
            assert!(got == one, "{name}: {p} ranks differ from one");
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

/// The default decomposition (two halves from batch 128, one piece for the
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
    let auxk = common::full_sae(20, 48, 6, 1000);
    let model = Autoencoder::<f32>::new(auxk, 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 8, 1).unwrap();
    let e = t.set_micro_batches(Some(2)).unwrap_err().to_string();
    assert!(e.contains("AuxK") && e.contains("whole batch"), "{e}");
    t.set_micro_batches(Some(1)).unwrap();
    let batch_topk = ModelBuilder::new(20)
        .code(48, Relu)
        .decoder(20, Sigmoid)
        .topk(5, true)
        .build()
        .unwrap();
    let model = Autoencoder::<f32>::new(batch_topk, 3).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 8, 1).unwrap();
    let e = t.set_micro_batches(Some(4)).unwrap_err().to_string();
    assert!(e.contains("batch top-k"), "{e}");
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
    let path = dir.join("ck.safetensors");
    save_checkpoint(&path, &t, &Value::Object(Vec::new())).unwrap();
    let (mut back, _) = load_checkpoint(&path).unwrap();
    assert_eq!(back.micro_batches_set(), Some(3));
    for b in x[600..].chunks_exact(600) {
        t.step(b).unwrap();
        back.step(b).unwrap();
    }
    assert!(bits(&t.model.params) == bits(&back.model.params));
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
