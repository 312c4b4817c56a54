//! Pictures made of small images: labelled rows of samples (original, noisy,
//! reconstructed) and the tiled input weights of hidden units.

use super::axes::INK;
use super::canvas::{BLACK, Canvas, MAX_PIXELS, Rgb, WHITE, text_height, text_width};
use crate::{Error, Result};

/// Colour of a pixel whose value is NaN or ±∞, so broken values stand out.
pub const NON_FINITE: Rgb = [255, 0, 255];
/// Gap in pixels between images of a grid, and between its rows.
const GAP: usize = 4;

/// Grey level of intensity v ∈ [0, 1]: round(255·v), clamped; non-finite
/// values get [`NON_FINITE`].
fn grey(v: f32) -> Rgb {
    if v.is_finite() {
        let g = (255.0 * v.clamp(0.0, 1.0)).round() as u8;
        [g, g, g]
    } else {
        NON_FINITE
    }
}

/// The longest side an image of a picture is drawn at, in canvas pixels:
/// longer images are shown reduced ([`Fit`]), as a 300,000-value sample
/// drawn one pixel a value would be a strip no viewer shows.
pub const MAX_SIDE: usize = 2048;

/// How an image of a picture is drawn: each *cell* is the mean of a
/// `shrink × shrink` block of its pixels (those of the last row and column
/// of blocks partial) and covers `zoom × zoom` canvas pixels; `w × h`
/// cells. Only one of `shrink` and `zoom` is above 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    /// Pixels a cell takes along each side.
    pub shrink: usize,
    /// Canvas pixels a cell covers along each side.
    pub zoom: usize,
    /// Cells across.
    pub w: usize,
    /// Cells down.
    pub h: usize,
}

impl Fit {
    /// The largest zoom up to `zoom` at which an `img_w × img_h` image has
    /// sides of at most [`MAX_SIDE`] and `fits(side_w, side_h)` (the
    /// picture built of such images fits a canvas), else the least
    /// reduction that brings the sides within [`MAX_SIDE`] — and, with
    /// `reduce_to_fit`, further (doubling) until the picture fits; `None`
    /// when nothing tried fits.
    pub fn choose(
        img_w: usize,
        img_h: usize,
        zoom: usize,
        reduce_to_fit: bool,
        fits: impl Fn(usize, usize) -> bool,
    ) -> Option<Fit> {
        let ok = |f: &Fit| {
            let (w, h) = (f.w.checked_mul(f.zoom), f.h.checked_mul(f.zoom));
            matches!((w, h), (Some(w), Some(h)) if w.max(h) <= MAX_SIDE && fits(w, h))
        };
        let longest = img_w.max(img_h).max(1);
        for zoom in (1..=zoom.min(MAX_SIDE / longest).max(1)).rev() {
            let f = Fit {
                shrink: 1,
                zoom,
                w: img_w,
                h: img_h,
            };
            if ok(&f) {
                return Some(f);
            }
        }
        if longest <= MAX_SIDE && !reduce_to_fit {
            return None;
        }
        let mut shrink = longest.div_ceil(MAX_SIDE).max(2);
        loop {
            let f = Fit {
                shrink,
                zoom: 1,
                w: img_w.div_ceil(shrink),
                h: img_h.div_ceil(shrink),
            };
            if ok(&f) {
                return Some(f);
            }
            if shrink >= longest || !reduce_to_fit {
                return None;
            }
            shrink = shrink.saturating_mul(2).min(longest);
        }
    }

    /// [`Fit::choose`] for a picture whose canvas is `size(side_w, side_h)`
    /// for images of those sides (`None` on overflow), fitting
    /// [`MAX_PIXELS`]; images as small as they go when nothing fits (the
    /// canvas then refuses the picture: too many images for it).
    fn in_picture(
        img_w: usize,
        img_h: usize,
        zoom: usize,
        reduce_to_fit: bool,
        size: impl Fn(usize, usize) -> Option<(usize, usize)>,
    ) -> Fit {
        let fits = |a, b| {
            size(a, b).is_some_and(|(w, h)| w.checked_mul(h).is_some_and(|n| n <= MAX_PIXELS))
        };
        let shrink = img_w.max(img_h).div_ceil(MAX_SIDE).max(1);
        Fit::choose(img_w, img_h, zoom, reduce_to_fit, fits).unwrap_or(Fit {
            shrink,
            zoom: 1,
            w: img_w.div_ceil(shrink),
            h: img_h.div_ceil(shrink),
        })
    }

    /// Canvas pixels an image takes across and down.
    fn side(&self) -> (usize, usize) {
        (self.w * self.zoom, self.h * self.zoom)
    }
}

/// Draws a `w × h` image whose pixel i = y·w + x has intensity `value(i)`
/// (drawn as [`grey`]) as `fit` says, its top-left corner at (x0, y0): a
/// cell is the mean of its block, [`NON_FINITE`] if any of it is not finite.
fn draw_image(
    c: &mut Canvas,
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    fit: Fit,
    value: impl Fn(usize) -> f32,
) {
    let (f, z) = (fit.shrink, fit.zoom);
    for cy in 0..fit.h {
        for cx in 0..fit.w {
            let (mut sum, mut n) = (0f64, 0usize);
            for y in cy * f..((cy + 1) * f).min(h) {
                for x in cx * f..((cx + 1) * f).min(w) {
                    sum += f64::from(value(y * w + x));
                    n += 1;
                }
            }
            let (px, py) = ((x0 + cx * z) as i64, (y0 + cy * z) as i64);
            let v = (sum / n.max(1) as f64) as f32;
            c.fill_rect(px, py, z as i64, z as i64, grey(v));
        }
    }
}

/// `a · b` for canvas sizes, or `Error::Shape` naming `op` on overflow.
fn mul(op: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::shape(op, "a picture size that fits in memory", format!("{a}*{b}")))
}

/// A grid of images, one labelled row per entry of `rows`, as in the
/// original / noisy / reconstructed figures of an autoencoder.
///
/// Each image is `img_w × img_h` intensities, row-major, with v ∈ [0, 1]
/// drawn as grey round(255·v) (clamped; NaN and ±∞ in magenta), each pixel a
/// `scale × scale` block — or a smaller one, or images reduced to means of
/// blocks of pixels ([`Fit`]), when their sides would exceed [`MAX_SIDE`] or
/// the picture [`super::canvas::MAX_PIXELS`]. Images are 4 pixels apart on
/// a white page, and the row label is written to the left of its row.
///
/// # Errors
/// `Error::Shape` if an image does not have `img_w·img_h` values, a size is
/// zero, or there are too many images for a picture even one pixel each
/// (`op` "report canvas", as [`Canvas::try_new`]).
pub fn image_grid(
    rows: &[(&str, Vec<&[f32]>)],
    img_w: usize,
    img_h: usize,
    scale: usize,
) -> Result<Canvas> {
    let op = "image_grid";
    let n = mul(op, img_w, img_h)?;
    if n == 0 || scale == 0 {
        return Err(Error::shape(
            op,
            "non-zero image size and scale",
            format!("{img_w}x{img_h}, scale {scale}"),
        ));
    }
    for (label, imgs) in rows {
        if let Some(bad) = imgs.iter().find(|i| i.len() != n) {
            let got = format!("{} values in row '{label}'", bad.len());
            return Err(Error::shape(
                op,
                format!("{n} values per image ({img_w}x{img_h})"),
                got,
            ));
        }
    }
    let label_w = |text| {
        rows.iter()
            .map(|(l, _)| text_width(l, text))
            .max()
            .unwrap_or(0)
    };
    let cols = rows.iter().map(|(_, imgs)| imgs.len()).max().unwrap_or(0);
    // The canvas for images of `cell_w × cell_h` canvas pixels: its size,
    // the text size of the labels, the row height and the left margin.
    let layout = |cell_w: usize, cell_h: usize| -> Option<(usize, usize, usize, usize, usize)> {
        let text = if cell_h >= 2 * text_height(1) { 2 } else { 1 };
        // A row is at least as tall as its label, images lower than it centred.
        let row_h = cell_h.max(text_height(1));
        let lw = label_w(text);
        let left = if lw > 0 { GAP + lw + 2 * GAP } else { GAP };
        let w = cols
            .checked_mul(cell_w.checked_add(GAP)?)?
            .checked_add(left)?;
        let h = rows.len().checked_mul(row_h + GAP)?.checked_add(GAP)?;
        Some((w, h, text, row_h, left))
    };
    // Images too large for the canvas at `scale` are drawn smaller, those
    // longer than MAX_SIDE reduced; too many of them fail (the count is the
    // caller's).
    let fit = Fit::in_picture(img_w, img_h, scale, false, |cw, ch| {
        layout(cw, ch).map(|(w, h, ..)| (w, h))
    });
    let (cell_w, cell_h) = fit.side();
    let (w, h, text, row_h, left) =
        layout(cell_w, cell_h).ok_or_else(|| Error::shape(op, "smaller grid", "overflow"))?;
    let mut c = Canvas::try_new(w, h, WHITE)?;
    for (r, (label, imgs)) in rows.iter().enumerate() {
        let y0 = GAP + r * (row_h + GAP);
        let ty = y0 + row_h / 2 - (7 * text) / 2;
        c.text(GAP as i64, ty as i64, label, INK, text);
        let yi = y0 + (row_h - cell_h) / 2;
        for (k, img) in imgs.iter().enumerate() {
            let x0 = left + k * (cell_w + GAP);
            draw_image(&mut c, x0, yi, img_w, img_h, fit, |i| img[i]);
        }
    }
    Ok(c)
}

/// The input weights of each hidden unit as a grey tile, in a near-square
/// grid with 1-pixel black separators: ⌈√(units·img_h/img_w)⌉ columns, so
/// that square inputs give ⌈√units⌉ columns and wide ones fewer.
///
/// `weights` is `(units, img_w·img_h)` row-major, as a dense layer stores
/// `(out, in)`. Each tile is normalised by its own m = max |w| over its
/// finite weights: pixel = 0.5 + 0.5·w/m as grey (so 0 is mid-grey, +m
/// white, −m black; an all-zero tile is flat grey, non-finite weights
/// magenta). Each weight is a `scale × scale` block, or less, as in
/// [`image_grid`] (tiles of long inputs reduced to means of blocks). Give
/// `img_w`, `img_h` explicitly when the input is not square (e.g. 28 × 28,
/// 16 × 48).
///
/// # Errors
/// `Error::Shape` if `weights.len() ≠ units·img_w·img_h`, a size is zero,
/// or there are too many units for a picture even one pixel each.
pub fn feature_tiles(
    weights: &[f32],
    units: usize,
    img_w: usize,
    img_h: usize,
    scale: usize,
) -> Result<Canvas> {
    let op = "feature_tiles";
    let n = mul(op, img_w, img_h)?;
    if mul(op, units, n)? != weights.len() {
        return Err(Error::shape(
            op,
            format!("{units}*{img_w}*{img_h} weights"),
            format!("{}", weights.len()),
        ));
    }
    if n == 0 || units == 0 || scale == 0 {
        return Err(Error::shape(
            op,
            "non-zero units, image size and scale",
            format!("{units} units of {img_w}x{img_h}, scale {scale}"),
        ));
    }
    let aspect = img_h as f64 / img_w as f64;
    let cols = ((units as f64 * aspect).sqrt().ceil() as usize).clamp(1, units);
    let rows = units.div_ceil(cols);
    let size = |tw: usize, th: usize| {
        let w = cols.checked_mul(tw.checked_add(1)?)?.checked_add(1)?;
        let h = rows.checked_mul(th.checked_add(1)?)?.checked_add(1)?;
        Some((w, h))
    };
    // Every unit shown, reduced as far as the picture needs.
    let fit = Fit::in_picture(img_w, img_h, scale, true, size);
    let (tw, th) = fit.side();
    let (w, h) = size(tw, th).ok_or_else(|| Error::shape(op, "smaller grid", "overflow"))?;
    let (tw, th) = (tw + 1, th + 1);
    let mut c = Canvas::try_new(w, h, BLACK)?;
    for (u, tile) in weights.chunks_exact(n).enumerate() {
        let m = tile
            .iter()
            .filter(|w| w.is_finite())
            .fold(0f32, |m, w| m.max(w.abs()));
        let (x0, y0) = (1 + (u % cols) * tw, 1 + (u / cols) * th);
        draw_image(&mut c, x0, y0, img_w, img_h, fit, |i| {
            let w = tile[i];
            if !w.is_finite() {
                f32::NAN
            } else if m > 0.0 {
                0.5 + 0.5 * w / m
            } else {
                0.5
            }
        });
    }
    Ok(c)
}
