//! The chunked `.npy` loader allocates its buffers once: after the first
//! batch, reading batches of any epoch (loading new chunks, crossing chunk
//! boundaries, starting new epochs) makes no heap allocation, so streaming
//! keeps the training loop allocation-free.

#[path = "common/counting.rs"]
mod counting;

use sparse_ae::data::npy;
use sparse_ae::train::{Chunked, EpochOrder, EpochSource, NpyRows, Samples, Shuffled};

/// Allocations made while reading epochs 0–2 in batches of 9 (after a first batch).
fn allocations(src: &mut dyn EpochSource) -> usize {
    let dim = src.dim();
    let mut x = vec![0.0f32; 9 * dim];
    let order = |epoch| EpochOrder {
        epoch,
        shuffle: true,
        seed: 1,
    };
    src.fill(order(0), 0, &mut x).unwrap();
    let before = counting::count();
    for epoch in 0..3 {
        for k in 0..src.len() / 9 {
            src.fill(order(epoch), k * 9, &mut x).unwrap();
        }
    }
    counting::count() - before
}

#[test]
fn loaders_do_not_allocate_after_the_first_batch() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("alloc-free-loader");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("acts.npy");
    let data: Vec<f32> = (0..300 * 8).map(|i| (i % 17) as f32).collect();
    npy::write(&path, 300, 8, &data).unwrap();
    let file = NpyRows::open(&path).unwrap().range(0, 250).unwrap();
    let mut chunked = Chunked::new(file, 40).unwrap();
    assert_eq!(allocations(&mut chunked), 0, "chunked file loader");
    let file = NpyRows::open(&path).unwrap().range(0, 250).unwrap();
    let mut by_row = Chunked::by_row(file, 40).unwrap();
    assert_eq!(allocations(&mut by_row), 0, "chunked file read by row");
    let file = NpyRows::open(&path).unwrap().range(0, 250).unwrap();
    assert_eq!(
        allocations(&mut Shuffled::new(file)),
        0,
        "shuffled file read by row"
    );
    let samples = Samples::f32(&data, 8).unwrap();
    assert_eq!(allocations(&mut Shuffled::new(samples)), 0, "in memory");
    assert_eq!(
        allocations(&mut Chunked::new(samples, 7).unwrap()),
        0,
        "chunked memory"
    );
}
