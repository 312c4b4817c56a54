//! AVX-512F entry points of the sparse products (16 lanes).

use crate::kernels::elementwise::avx512::Avx512;

super::body::isa_entry_points!("avx512f", Avx512::new());
