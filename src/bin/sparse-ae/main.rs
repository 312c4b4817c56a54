//! The `sparse-ae` command-line tool: a thin layer over the library.

fn main() {
    println!("sparse-ae {}", env!("CARGO_PKG_VERSION"));
}
