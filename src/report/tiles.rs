//! Pictures made of small images: labelled rows of samples (original, noisy,
//! reconstructed) and the tiled input weights of hidden units.

use super::axes::INK;
use super::canvas::{BLACK, Canvas, Rgb, WHITE, text_height, text_width};
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

/// Draws a `w × h` image given by `value(i)` for pixel i = y·w + x, each
/// pixel a `scale × scale` block, with its top-left corner at (x0, y0).
fn draw_image(
    c: &mut Canvas,
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    scale: usize,
    value: impl Fn(usize) -> Rgb,
) {
    for y in 0..h {
        for x in 0..w {
            let (px, py) = ((x0 + x * scale) as i64, (y0 + y * scale) as i64);
            c.fill_rect(px, py, scale as i64, scale as i64, value(y * w + x));
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
/// `scale × scale` block. Images are 4 pixels apart on a white page, and the
/// row label is written to the left of its row.
///
/// # Errors
/// `Error::Shape` if an image does not have `img_w·img_h` values, a size is
/// zero, or the picture would exceed [`super::canvas::MAX_PIXELS`].
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
    let (cell_w, cell_h) = (mul(op, img_w, scale)?, mul(op, img_h, scale)?);
    let text = if cell_h >= 2 * text_height(1) { 2 } else { 1 };
    // A row is at least as tall as its label, images lower than it centred.
    let row_h = cell_h.max(text_height(1));
    let label_w = rows
        .iter()
        .map(|(l, _)| text_width(l, text))
        .max()
        .unwrap_or(0);
    let left = if label_w > 0 {
        GAP + label_w + 2 * GAP
    } else {
        GAP
    };
    let cols = rows.iter().map(|(_, imgs)| imgs.len()).max().unwrap_or(0);
    let w = mul(op, cols, cell_w + GAP)?
        .checked_add(left)
        .ok_or_else(|| Error::shape(op, "smaller grid", "overflow"))?;
    let h = mul(op, rows.len(), row_h + GAP)?.saturating_add(GAP);
    let mut c = Canvas::try_new(w, h, WHITE)?;
    for (r, (label, imgs)) in rows.iter().enumerate() {
        let y0 = GAP + r * (row_h + GAP);
        let ty = y0 + row_h / 2 - (7 * text) / 2;
        c.text(GAP as i64, ty as i64, label, INK, text);
        let yi = y0 + (row_h - cell_h) / 2;
        for (k, img) in imgs.iter().enumerate() {
            let x0 = left + k * (cell_w + GAP);
            draw_image(&mut c, x0, yi, img_w, img_h, scale, |i| grey(img[i]));
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
/// magenta). Each weight is a `scale × scale` block. Give `img_w`, `img_h`
/// explicitly when the input is not square (e.g. 28 × 28, 16 × 48).
///
/// # Errors
/// `Error::Shape` if `weights.len() ≠ units·img_w·img_h`, a size is zero,
/// or the picture would exceed [`super::canvas::MAX_PIXELS`].
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
    let (tw, th) = (mul(op, img_w, scale)? + 1, mul(op, img_h, scale)? + 1);
    let mut c = Canvas::try_new(mul(op, cols, tw)? + 1, mul(op, rows, th)? + 1, BLACK)?;
    for (u, tile) in weights.chunks_exact(n).enumerate() {
        let m = tile
            .iter()
            .filter(|w| w.is_finite())
            .fold(0f32, |m, w| m.max(w.abs()));
        let (x0, y0) = (1 + (u % cols) * tw, 1 + (u / cols) * th);
        draw_image(&mut c, x0, y0, img_w, img_h, scale, |i| {
            let w = tile[i];
            if !w.is_finite() {
                NON_FINITE
            } else if m > 0.0 {
                grey(0.5 + 0.5 * w / m)
            } else {
                grey(0.5)
            }
        });
    }
    Ok(c)
}
