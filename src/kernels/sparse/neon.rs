//! NEON entry points of the sparse products (4 lanes); the transpose has no
//! gather here and takes the scalar path.

use crate::kernels::elementwise::neon::Neon;

super::body::isa_entry_points!("neon", Neon::new());
