//! Training from a `.npy` file read chunk by chunk: each epoch is a
//! permutation of the rows, the order does not depend on how it is read,
//! a file gives the same rows as memory (f32 and bfloat16 alike), and a
//! streamed run resumes bit-identically and is the same on 1 and 2 threads.

mod common;

use sparse_ae::data::npy;
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{load_checkpoint, save_checkpoint};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::rng::Rng;
use sparse_ae::train::normalize::mean_norm_scale;
use sparse_ae::train::{
    Chunked, EpochOrder, EpochSource, FitOptions, NpyRows, Rows, Samples, Shuffled, Silent,
    Trainer, fit_source,
};
use std::path::Path;

fn order(epoch: usize, shuffle: bool) -> EpochOrder {
    EpochOrder {
        epoch,
        shuffle,
        seed: 5,
    }
}

/// The first value of each row filled for positions `start..start + n`.
fn firsts(src: &mut dyn EpochSource, o: EpochOrder, start: usize, n: usize) -> Vec<f32> {
    let dim = src.dim();
    let mut out = vec![0.0; n * dim];
    src.fill(o, start, &mut out).unwrap();
    out.chunks_exact(dim).map(|r| r[0]).collect()
}

#[test]
fn chunked_epochs_are_permutations_read_the_same_in_any_pieces() {
    // Row i is (i, −i); 50 rows in chunks of 7: seven full chunks and one of 1.
    let data: Vec<f32> = (0..50).flat_map(|i| [i as f32, -(i as f32)]).collect();
    let samples = Samples::f32(&data, 2).unwrap();
    let mut src = Chunked::new(samples, 7).unwrap();
    let e0 = firsts(&mut src, order(0, true), 0, 50);
    let e1 = firsts(&mut src, order(1, true), 0, 50);
    for e in [&e0, &e1] {
        let mut sorted = e.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, (0..50).map(|i| i as f32).collect::<Vec<_>>());
        // Rows of one chunk stay together: the chunk changes 7 times.
        let changes = e
            .windows(2)
            .filter(|w| (w[0] as usize) / 7 != (w[1] as usize) / 7)
            .count();
        assert_eq!(changes, 7, "{e:?}");
    }
    assert_ne!(e0, e1, "two epochs in the same order");
    assert!(
        e0[..7].windows(2).any(|w| w[0] > w[1]),
        "rows inside a chunk not shuffled"
    );
    // In pieces of 3, backwards, and from a fresh source starting mid-epoch.
    let mut pieces = Vec::new();
    for start in (0..48).step_by(3) {
        pieces.extend(firsts(&mut src, order(0, true), start, 3));
    }
    assert_eq!(pieces, e0[..48]);
    assert_eq!(firsts(&mut src, order(1, true), 9, 20), e1[9..29]);
    assert_eq!(firsts(&mut src, order(1, true), 2, 5), e1[2..7]);
    let mut fresh = Chunked::new(samples, 7).unwrap();
    assert_eq!(firsts(&mut fresh, order(0, true), 23, 27), e0[23..]);
    // Without shuffling: the stored order.
    let plain = firsts(&mut fresh, order(0, false), 0, 50);
    assert_eq!(plain, (0..50).map(|i| i as f32).collect::<Vec<_>>());
    // Whole rows are moved.
    let mut row = vec![0.0; 2];
    src.fill(order(0, true), 4, &mut row).unwrap();
    assert_eq!(row[1], -row[0]);
    assert!(src.fill(order(0, true), 49, &mut [0.0; 4]).is_err());
}

/// What a rank of a data-parallel job reads: `Chunked::by_row` gives the
/// rows `Chunked::new` gives, and `Shuffled` over rows of a file the rows
/// it gives over the same samples in memory, bit for bit, in any pieces
/// (a rank fills the positions of its micro-batches only).
#[test]
fn reading_by_row_gives_the_rows_of_whole_chunks_and_of_memory() {
    let dir = common::temp_dir("stream-by-row");
    let (rows, dim) = (157, 6);
    let mut rng = Rng::new(8);
    let data: Vec<f32> = (0..rows * dim).map(|_| rng.normal() as f32).collect();
    let path = dir.join("acts.npy");
    npy::write(&path, rows, dim, &data).unwrap();
    let file = || NpyRows::open(&path).unwrap().range(10, 150).unwrap();
    let memory = Samples::f32(&data[10 * dim..150 * dim], dim).unwrap();
    let scale = 0.37;
    let pairs: [(Box<dyn EpochSource>, Box<dyn EpochSource>); 3] = [
        (
            Box::new(Chunked::by_row(file().scaled(scale).unwrap(), 33).unwrap()),
            Box::new(Chunked::new(file().scaled(scale).unwrap(), 33).unwrap()),
        ),
        (
            Box::new(Chunked::by_row(memory.scaled(scale).unwrap(), 33).unwrap()),
            Box::new(Chunked::new(memory.scaled(scale).unwrap(), 33).unwrap()),
        ),
        (
            Box::new(Shuffled::new(file().scaled(scale).unwrap())),
            Box::new(Shuffled::new(memory.scaled(scale).unwrap())),
        ),
    ];
    for (k, (mut a, mut b)) in pairs.into_iter().enumerate() {
        for epoch in 0..2 {
            let mut whole = vec![0.0; 140 * dim];
            b.fill(order(epoch, true), 0, &mut whole).unwrap();
            // Batches of 20 in micro-batches of 5: "rank 1" reads 5..10 and 15..20.
            for batch in 0..7 {
                for lo in [5, 15] {
                    let start = batch * 20 + lo;
                    let mut x = vec![0.0; 5 * dim];
                    a.fill(order(epoch, true), start, &mut x).unwrap();
                    let want = &whole[start * dim..(start + 5) * dim];
                    let same = x.iter().zip(want).all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same, "pair {k}, epoch {epoch}, position {start}");
                }
            }
        }
    }
}

/// Values exact in bfloat16 (small multiples of 1/8, some negative).
fn activations(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..rows * dim)
        .map(|_| (rng.below(64) as f32 - 24.0) / 8.0)
        .collect()
}

/// Writes `data` as a bfloat16 `.npy` with the header np.save writes for an
/// `ml_dtypes.bfloat16` array.
fn write_bf16(path: &Path, rows: usize, dim: usize, data: &[f32]) {
    // What np.save writes for an ml_dtypes.bfloat16 array.
    let mut bytes = npy::header_bytes("<V2", &[rows, dim]);
    for v in data {
        let bits = v.to_bits();
        assert_eq!(bits & 0xffff, 0, "{v} is not a bfloat16");
        bytes.extend(((bits >> 16) as u16).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_file_in_f32_or_bf16_reads_as_memory_does() {
    let dir = common::temp_dir("stream-rows");
    let (rows, dim) = (103, 12);
    let data = activations(rows, dim, 1);
    let f32_path = dir.join("acts.npy");
    let bf16_path = dir.join("acts_bf16.npy");
    npy::write(&f32_path, rows, dim, &data).unwrap();
    write_bf16(&bf16_path, rows, dim, &data);
    assert_eq!(npy::read(&bf16_path).unwrap().data, data);
    let memory = Samples::f32(&data[20 * dim..90 * dim], dim).unwrap();
    for path in [&f32_path, &bf16_path] {
        let file = NpyRows::open(path).unwrap().range(20, 90).unwrap();
        assert_eq!(file.len(), 70);
        let mut a = Chunked::new(file, 16).unwrap();
        let mut b = Chunked::new(memory, 16).unwrap();
        for epoch in 0..2 {
            let (mut x, mut y) = (vec![0.0; 70 * dim], vec![0.0; 70 * dim]);
            a.fill(order(epoch, true), 0, &mut x).unwrap();
            b.fill(order(epoch, true), 0, &mut y).unwrap();
            assert_eq!(x, y, "{}", path.display());
        }
        // The normalising scale is the same computed from the file.
        let mut file = NpyRows::open(path).unwrap().range(20, 90).unwrap();
        let s = mean_norm_scale(&mut file, 8).unwrap();
        assert_eq!(s, mean_norm_scale(&mut { memory }, 1000).unwrap());
        // And scaled rows are s·x.
        let mut scaled = file.scaled(s).unwrap();
        let mut x = vec![0.0; dim];
        scaled.read(3, &mut x).unwrap();
        let want: Vec<f32> = data[23 * dim..24 * dim].iter().map(|v| v * s).collect();
        assert_eq!(x, want);
    }
}

fn sae(dim: usize) -> Autoencoder<f32> {
    let cfg = ModelBuilder::new(dim)
        .code(24, Activation::Relu)
        .topk(4, false)
        .decoder(dim, Activation::Linear)
        .loss(Loss::Mse)
        .build()
        .unwrap();
    Autoencoder::new(cfg, 3).unwrap()
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn a_streamed_run_resumes_exactly_and_ignores_the_thread_count() {
    let dir = common::temp_dir("stream-fit");
    let (rows, dim) = (230, 16);
    let path = dir.join("acts.npy");
    npy::write(&path, rows, dim, &activations(rows, dim, 2)).unwrap();
    let opts = FitOptions {
        epochs: 3,
        shuffle_seed: 9,
        ..FitOptions::default()
    };
    let run = |stop: Option<u64>, t: Option<Trainer<f32>>| {
        let mut t =
            t.unwrap_or_else(|| Trainer::new(sae(dim), OptimizerConfig::default(), 8, 1).unwrap());
        let mut train =
            Chunked::new(NpyRows::open(&path).unwrap().range(0, 200).unwrap(), 30).unwrap();
        let mut test = NpyRows::open(&path).unwrap().range(200, 230).unwrap();
        let o = FitOptions {
            max_steps: stop,
            ..opts.clone()
        };
        let h = fit_source(&mut t, &mut train, Some(&mut test), &o, &mut Silent).unwrap();
        (t, h)
    };
    let (straight, history) = in_pool(2, || run(None, None));
    assert_eq!(straight.steps(), 3 * 25);
    assert!(history[2].test.unwrap().total() < history[0].test.unwrap().total());
    let (first, _) = in_pool(1, || run(Some(37), None));
    let ck = dir.join("ck.safetensors");
    save_checkpoint(&ck, &first, &Value::Null).unwrap();
    let (resumed, _) = load_checkpoint(&ck).unwrap();
    let (resumed, _) = in_pool(1, || run(None, Some(resumed)));
    let same = resumed
        .model
        .params
        .iter()
        .zip(&straight.model.params)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "the resumed streamed run differs");
}
