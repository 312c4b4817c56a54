//! Writes a synthetic activation matrix as `.npy`, shaped like the residual
//! stream of a language model: each row is a shared mean vector plus a
//! sparse sum of ground-truth feature directions (16 of 4·D per row, chosen
//! with Zipf-like frequencies, exponential magnitudes) plus Gaussian noise.
//! A sparse autoencoder has something real to find in it.
//!
//! `cargo run --release --example synthetic_activations -- OUT.npy ROWS DIM [f32|bf16] [SEED]`

use sparse_ae::data::npy;
use sparse_ae::io::atomic::write_atomic;
use sparse_ae::rng::Rng;
use sparse_ae::{Error, Result};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || Error::config("usage", "OUT.npy ROWS DIM [f32|bf16] [SEED]");
    let [out, rows, dim, rest @ ..] = args.as_slice() else {
        return Err(usage());
    };
    let (rows, dim): (usize, usize) = (
        rows.parse().map_err(|_| usage())?,
        dim.parse().map_err(|_| usage())?,
    );
    let bf16 = match rest.first().map(String::as_str) {
        None | Some("f32") => false,
        Some("bf16") => true,
        Some(_) => return Err(usage()),
    };
    let seed: u64 = rest
        .get(1)
        .map_or(Ok(0), |s| s.parse())
        .map_err(|_| usage())?;
    let (features, active) = (4 * dim, 16);
    let mut rng = Rng::new(seed);
    let mut unit = |n: usize| {
        let mut v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    let dict: Vec<Vec<f32>> = (0..features).map(|_| unit(dim)).collect();
    let mean: Vec<f32> = unit(dim).iter().map(|x| x * 4.0).collect();
    // Zipf-like feature frequencies: P(j) ∝ 1/(j + 10), sampled by inversion.
    let cdf: Vec<f64> = (0..features)
        .scan(0.0, |acc, j| {
            *acc += 1.0 / (j as f64 + 10.0);
            Some(*acc)
        })
        .collect();
    let total = cdf[features - 1];
    let path = Path::new(out);
    let descr = if bf16 { "<V2" } else { "<f4" };
    write_atomic(path, |w| {
        let io = |e| Error::io(path, e);
        w.write_all(&npy::header_bytes(descr, &[rows, dim]))
            .map_err(io)?;
        let mut row = vec![0.0f32; dim];
        let mut bytes = Vec::with_capacity(4 * dim);
        for _ in 0..rows {
            row.copy_from_slice(&mean);
            for _ in 0..active {
                let u = rng.next_f64() * total;
                let j = cdf.partition_point(|&c| c < u).min(features - 1);
                let a = -(1.0 - rng.next_f64()).ln() as f32;
                row.iter_mut().zip(&dict[j]).for_each(|(r, d)| *r += a * d);
            }
            row.iter_mut()
                .for_each(|r| *r += 0.05 * rng.normal() as f32);
            bytes.clear();
            for v in &row {
                match bf16 {
                    // Round to nearest even into the top 16 bits.
                    true => {
                        let b = v.to_bits();
                        let r = b + 0x7fff + ((b >> 16) & 1);
                        bytes.extend(((r >> 16) as u16).to_le_bytes());
                    }
                    false => bytes.extend(v.to_le_bytes()),
                }
            }
            w.write_all(&bytes).map_err(io)?;
        }
        Ok(())
    })?;
    eprintln!("wrote {rows} × {dim} ({descr}) to {}", path.display());
    Ok(())
}
