//! SIMD128 entry points of the sparse products (4 lanes); the transpose has
//! no gather here and takes the scalar path.

use crate::kernels::elementwise::simd128::Simd128;

super::body::isa_entry_points!("simd128", Simd128::new());
