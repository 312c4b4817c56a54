//! An RGB8 raster with the few drawing operations the report needs: filled and
//! outlined rectangles, anti-aliased lines, alpha blending and bitmap text.
//!
//! Coordinates are pixels with the origin at the top-left corner and y going
//! down. Every drawing call clips to the canvas, so shapes partly or wholly
//! outside it (or at absurd coordinates) are simply cut, never a panic.

use super::font;
use crate::{Error, Result};

/// An sRGB colour, one byte per channel.
pub type Rgb = [u8; 3];

/// Pure white.
pub const WHITE: Rgb = [255, 255, 255];
/// Pure black.
pub const BLACK: Rgb = [0, 0, 0];

/// The largest canvas the fallible constructors accept, in pixels (2²⁶, about
/// 200 MB of RGB).
pub const MAX_PIXELS: usize = 1 << 26;

/// A `w × h` RGB8 image; pixel (x, y) occupies `pixels[3·(y·w + x) ..][..3]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Canvas {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// Row-major RGB bytes, `3·w·h` of them.
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A `w × h` canvas filled with `bg`.
    ///
    /// # Panics
    /// If `3·w·h` overflows `usize`. Sizes that come from outside input go
    /// through [`Canvas::try_new`] instead.
    pub fn new(w: usize, h: usize, bg: Rgb) -> Canvas {
        let n = w.checked_mul(h).and_then(|n| n.checked_mul(3));
        let n = n.expect("canvas size overflows usize");
        let mut pixels = vec![0u8; n];
        for px in pixels.chunks_exact_mut(3) {
            px.copy_from_slice(&bg);
        }
        Canvas { w, h, pixels }
    }

    /// A `w × h` canvas filled with `bg`, or `Error::Shape` if it would have
    /// more than [`MAX_PIXELS`] pixels.
    pub fn try_new(w: usize, h: usize, bg: Rgb) -> Result<Canvas> {
        match w.checked_mul(h) {
            Some(n) if n <= MAX_PIXELS => Ok(Canvas::new(w, h, bg)),
            _ => Err(Error::shape(
                "report canvas",
                format!("at most {MAX_PIXELS} pixels"),
                format!("{w}x{h}"),
            )),
        }
    }

    /// The colour at (x, y), or `None` outside the canvas.
    pub fn get(&self, x: usize, y: usize) -> Option<Rgb> {
        if x >= self.w || y >= self.h {
            return None;
        }
        let i = 3 * (y * self.w + x);
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// Sets (x, y) to `c`; points outside the canvas are ignored.
    #[inline]
    pub fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = 3 * (y as usize * self.w + x as usize);
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// p ← (1 − α)·p + α·c at (x, y), with α clamped to [0, 1]; points
    /// outside the canvas are ignored.
    #[inline]
    pub fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return;
        }
        let a = if alpha.is_nan() {
            0.0
        } else {
            alpha.clamp(0.0, 1.0)
        };
        let i = 3 * (y as usize * self.w + x as usize);
        for (p, &q) in self.pixels[i..i + 3].iter_mut().zip(&c) {
            *p = ((1.0 - a) * f32::from(*p) + a * f32::from(q)).round() as u8;
        }
    }

    /// Fills the whole canvas with `c`.
    pub fn fill(&mut self, c: Rgb) {
        for px in self.pixels.chunks_exact_mut(3) {
            px.copy_from_slice(&c);
        }
    }

    /// The part of the rectangle [x, x + w) × [y, y + h) inside the canvas,
    /// as (x0, y0, x1, y1) with exclusive ends.
    fn clip(&self, x: i64, y: i64, w: i64, h: i64) -> (usize, usize, usize, usize) {
        let cw = i64::try_from(self.w).unwrap_or(i64::MAX);
        let ch = i64::try_from(self.h).unwrap_or(i64::MAX);
        let x0 = x.clamp(0, cw);
        let y0 = y.clamp(0, ch);
        let x1 = x.saturating_add(w.max(0)).clamp(x0, cw);
        let y1 = y.saturating_add(h.max(0)).clamp(y0, ch);
        (x0 as usize, y0 as usize, x1 as usize, y1 as usize)
    }

    /// Fills the rectangle [x, x + w) × [y, y + h) with `c`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        let (x0, y0, x1, y1) = self.clip(x, y, w, h);
        for yy in y0..y1 {
            let row = &mut self.pixels[3 * (yy * self.w + x0)..3 * (yy * self.w + x1)];
            for px in row.chunks_exact_mut(3) {
                px.copy_from_slice(&c);
            }
        }
    }

    /// Blends `c` with opacity `alpha` over the rectangle [x, x + w) × [y, y + h).
    pub fn blend_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb, alpha: f32) {
        let (x0, y0, x1, y1) = self.clip(x, y, w, h);
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.blend(xx as i64, yy as i64, c, alpha);
            }
        }
    }

    /// Draws the 1-pixel outline of the rectangle [x, x + w) × [y, y + h).
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        if w <= 0 || h <= 0 {
            return;
        }
        self.fill_rect(x, y, w, 1, c);
        self.fill_rect(x, y.saturating_add(h - 1), w, 1, c);
        self.fill_rect(x, y, 1, h, c);
        self.fill_rect(x.saturating_add(w - 1), y, 1, h, c);
    }

    /// Draws an anti-aliased segment from (x0, y0) to (x1, y1), `width`
    /// pixels thick with round ends.
    ///
    /// A pixel whose centre lies at distance d from the segment is covered
    /// by clamp(width/2 + ½ − d, 0, 1) and blended with that opacity. Segments
    /// with a non-finite end are skipped.
    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, width: f64, c: Rgb) {
        if ![x0, y0, x1, y1, width].iter().all(|v| v.is_finite()) || width <= 0.0 {
            return;
        }
        let r = width / 2.0 + 0.5;
        let (bx0, by0, bx1, by1) = self.clip(
            (x0.min(x1) - r).floor() as i64,
            (y0.min(y1) - r).floor() as i64,
            ((x0 - x1).abs() + 2.0 * r).ceil() as i64 + 1,
            ((y0 - y1).abs() + 2.0 * r).ceil() as i64 + 1,
        );
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        for py in by0..by1 {
            for px in bx0..bx1 {
                let (cx, cy) = (px as f64 + 0.5, py as f64 + 0.5);
                let t = if len2 > 0.0 {
                    (((cx - x0) * dx + (cy - y0) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = (cx - x0 - t * dx).hypot(cy - y0 - t * dy);
                let cover = (r - d).clamp(0.0, 1.0);
                if cover > 0.0 {
                    self.blend(px as i64, py as i64, c, cover as f32);
                }
            }
        }
    }

    /// Draws `s` with its top-left corner at (x, y), each font pixel a
    /// `scale × scale` block, and returns the width drawn (see [`text_width`]).
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb, scale: usize) -> usize {
        self.glyphs(s, scale, |cv, col, row, sc| {
            cv.fill_rect(x + col, y + row, sc, sc, c);
        });
        text_width(s, scale)
    }

    /// Draws `s` rotated 90° counter-clockwise, reading bottom to top, with
    /// the bottom-left corner of its box at (x, y). The box is
    /// [`text_height`] wide and [`text_width`] tall.
    pub fn text_up(&mut self, x: i64, y: i64, s: &str, c: Rgb, scale: usize) {
        self.glyphs(s, scale, |cv, col, row, sc| {
            cv.fill_rect(x + row, y - col - sc, sc, sc, c);
        });
    }

    /// Calls `dot(self, col, row, scale)` for every lit font pixel of `s`,
    /// with (col, row) its offset from the text's top-left corner.
    fn glyphs(&mut self, s: &str, scale: usize, mut dot: impl FnMut(&mut Self, i64, i64, i64)) {
        let sc = scale.max(1) as i64;
        for (i, ch) in s.chars().enumerate() {
            let (bits, drop) = font::glyph(ch);
            let left = i as i64 * font::CELL_W as i64 * sc;
            for row in 0..font::GLYPH_H {
                for col in 0..font::GLYPH_W {
                    if font::lit(bits, col, row) {
                        let top = (row + drop) as i64 * sc;
                        dot(self, left + col as i64 * sc, top, sc);
                    }
                }
            }
        }
    }

    /// Copies `src` onto this canvas with its top-left corner at (x, y).
    pub fn blit(&mut self, x: i64, y: i64, src: &Canvas) {
        for sy in 0..src.h {
            for sx in 0..src.w {
                let i = 3 * (sy * src.w + sx);
                let c = [src.pixels[i], src.pixels[i + 1], src.pixels[i + 2]];
                self.put(x + sx as i64, y + sy as i64, c);
            }
        }
    }
}

/// Width in pixels of `s` drawn at `scale`: 6·scale per character, less the
/// trailing column of spacing.
pub fn text_width(s: &str, scale: usize) -> usize {
    let n = s.chars().count();
    (n * font::CELL_W).saturating_sub(1) * scale.max(1)
}

/// Height in pixels of a line of text at `scale` (9·scale, descenders included).
pub fn text_height(scale: usize) -> usize {
    font::CELL_H * scale.max(1)
}
