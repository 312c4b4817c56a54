//! AVX2 + FMA entry points of the sparse products (8 lanes).

use crate::kernels::elementwise::avx2::Avx2;

super::body::isa_entry_points!("avx2,fma", Avx2::new());
