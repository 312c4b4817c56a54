//! Pictures of a training run: loss curves, histograms, image grids and
//! feature tiles drawn on an RGB [`Canvas`](crate::report::Canvas), saved as PNG, and an
//! `index.html` that shows them with a metrics table.
//!
//! Everything here is drawn from scratch (a 5×7 bitmap font, anti-aliased
//! lines); the only dependency is the `png` crate, behind the `png` feature.
//! Charts accept any data and never panic: non-finite values are skipped and
//! an empty chart says "no data". Files are written atomically (a temporary
//! file in the same directory, then a rename).

mod axes;
pub mod canvas;
mod font;
pub mod html;
pub mod plot;
pub mod png_out;
mod ticks;
pub mod tiles;
pub mod training;

pub use canvas::{Canvas, Rgb};
pub use html::{Image, Section, Table, write_index};
pub use plot::{PALETTE, Series, histogram, line_plot};
pub use png_out::{save_gray_png, save_png};
pub use tiles::{feature_tiles, image_grid};
