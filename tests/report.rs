//! Report pictures: every PNG is decoded again with the `png` crate and
//! checked pixel by pixel where the drawing fixes the answer.
//!
//! `REPORT_DEMO_DIR=/some/dir cargo test --test report demo` also leaves a
//! sample of every picture and an index.html there, to look at.
#![cfg(feature = "png")]

use sparse_ae::report::canvas::{MAX_PIXELS, text_height, text_width};
use sparse_ae::report::plot::{HEIGHT, WIDTH};
use sparse_ae::report::tiles::{Fit, MAX_SIDE};
use sparse_ae::report::{
    Canvas, Image, PALETTE, Section, Series, Table, feature_tiles, histogram, image_grid,
    line_plot, save_gray_png, save_png, write_index,
};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A fresh empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sparse-ae-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Decodes a PNG file: (width, height, colour type, pixel bytes).
fn decode(path: &Path) -> (usize, usize, png::ColorType, Vec<u8>) {
    let dec = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (
        info.width as usize,
        info.height as usize,
        info.color_type,
        buf,
    )
}

/// Saves `c` as a PNG in `dir` and decodes it back into a canvas.
fn round_trip(dir: &Path, name: &str, c: &Canvas) -> Canvas {
    let p = dir.join(name);
    save_png(&p, c).unwrap();
    let (w, h, color, pixels) = decode(&p);
    assert_eq!(color, png::ColorType::Rgb);
    Canvas { w, h, pixels }
}

/// The pixels (x, y) of `c` whose colour satisfies `pred`.
fn pixels_where(c: &Canvas, pred: impl Fn([u8; 3]) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for y in 0..c.h {
        for x in 0..c.w {
            if pred(c.get(x, y).unwrap()) {
                out.push((x, y));
            }
        }
    }
    out
}

/// Bounding box (x0, y0, x1, y1), inclusive, of a non-empty pixel set.
fn bbox(px: &[(usize, usize)]) -> (usize, usize, usize, usize) {
    let xs = px.iter().map(|p| p.0);
    let ys = px.iter().map(|p| p.1);
    (
        xs.clone().min().unwrap(),
        ys.clone().min().unwrap(),
        xs.max().unwrap(),
        ys.max().unwrap(),
    )
}

#[test]
fn png_round_trip_is_exact_and_gray_png_is_luma() {
    let dir = scratch("roundtrip");
    let mut c = Canvas::new(7, 5, [10, 20, 30]);
    c.put(6, 4, [250, 1, 128]);
    assert_eq!(round_trip(&dir, "c.png", &c), c);
    let gray: Vec<u8> = (0..12).map(|i| i * 20).collect();
    let p = dir.join("g.png");
    save_gray_png(&p, 4, 3, &gray).unwrap();
    let (w, h, color, px) = decode(&p);
    assert_eq!((w, h, color), (4, 3, png::ColorType::Grayscale));
    assert_eq!(px, gray);
    // Only the two PNGs remain: no temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_sizes_and_paths_are_errors_naming_the_file() {
    let dir = scratch("errors");
    assert!(save_gray_png(dir.join("a.png"), 4, 3, &[0; 11]).is_err());
    assert!(save_png(dir.join("b.png"), &Canvas::new(0, 3, [0; 3])).is_err());
    let bad = Canvas {
        w: 2,
        h: 2,
        pixels: vec![0; 5],
    };
    assert!(save_png(dir.join("c.png"), &bad).is_err());
    let missing = dir.join("no-such-dir").join("d.png");
    let e = save_png(&missing, &Canvas::new(2, 2, [0; 3])).unwrap_err();
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    assert!(Canvas::try_new(MAX_PIXELS, 2, [0; 3]).is_err());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn text_draws_the_glyph_inside_its_box() {
    let mut c = Canvas::new(40, 30, [255; 3]);
    let w = c.text(3, 4, "A", [0; 3], 2);
    assert_eq!(w, text_width("A", 2));
    assert_eq!(w, 10);
    let ink = pixels_where(&c, |p| p != [255; 3]);
    // 'A' is 5×7 font pixels: rows .###. / #...# ×2 / ##### / #...# ×3.
    assert_eq!(ink.len(), 4 * (3 + 2 + 2 + 5 + 2 + 2 + 2));
    assert_eq!(bbox(&ink), (3, 4, 3 + 10 - 1, 4 + 14 - 1));
    assert_eq!(c.get(3, 4), Some([255; 3]), "top-left of 'A' is blank");
    assert_eq!(
        c.get(5, 4),
        Some([0; 3]),
        "top bar of 'A' starts at column 1"
    );
    // A descender letter reaches below the baseline, into the 9-row cell.
    let mut d = Canvas::new(40, 40, [255; 3]);
    d.text(0, 0, "y", [0; 3], 1);
    let (_, _, _, y1) = bbox(&pixels_where(&d, |p| p != [255; 3]));
    assert_eq!(y1, text_height(1) - 1);
    // Rotated text runs upwards: its ink is taller than wide.
    let mut r = Canvas::new(40, 80, [255; 3]);
    r.text_up(5, 70, "AB", [0; 3], 2);
    let (x0, y0, x1, y1) = bbox(&pixels_where(&r, |p| p != [255; 3]));
    assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (14, text_width("AB", 2)));
    assert_eq!(y1, 69);
}

#[test]
fn image_grid_puts_white_where_the_value_is_one() {
    let dir = scratch("grid");
    // A 3×2 black image with 1.0 at (x 1, y 1), drawn at scale 2.
    let img = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0f32];
    let grid = image_grid(&[("", vec![&img[..]])], 3, 2, 2).unwrap();
    let c = round_trip(&dir, "grid.png", &grid);
    let black = pixels_where(&c, |p| p == [0; 3]);
    let (x0, y0, x1, y1) = bbox(&black);
    assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (6, 4));
    assert_eq!(black.len(), 6 * 4 - 4);
    for (dx, dy) in [(2, 2), (3, 2), (2, 3), (3, 3)] {
        assert_eq!(c.get(x0 + dx, y0 + dy), Some([255; 3]));
    }
    // Mid values are mid-grey; NaN is flagged in magenta; rows stack.
    let img2 = [0.5, f32::NAN, 0.0, 0.0, 0.0, 0.0f32];
    let g2 = image_grid(
        &[("a", vec![&img[..]]), ("b", vec![&img2[..], &img[..]])],
        3,
        2,
        1,
    )
    .unwrap();
    assert_eq!(pixels_where(&g2, |p| p == [128; 3]).len(), 1);
    assert_eq!(pixels_where(&g2, |p| p == [255, 0, 255]).len(), 1);
    assert!(g2.h > 2 * 2 && g2.w > 2 * 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Images lower than a label (one-row images, 2×3 ones) get rows as tall
/// as their labels, so the labels of two rows never overlap: each label's
/// ink lies inside its own row's band and beside its own images.
#[test]
fn labels_of_low_images_do_not_overlap() {
    for (w, h) in [(153, 1), (3, 2), (7, 1)] {
        let img = vec![0.0f32; w * h];
        let rows = [
            ("original", vec![&img[..]; 3]),
            ("reconstructed", vec![&img[..]; 3]),
        ];
        let g = image_grid(&rows, w, h, 1).unwrap();
        let band = text_height(1);
        assert!(g.h >= 2 * band, "{w}x{h}: {} px high", g.h);
        // The label ink (dark grey, left of the images) of each row.
        let ink: Vec<(usize, usize)> = pixels_where(&g, |p| p == [40; 3])
            .into_iter()
            .filter(|&(x, _)| x < text_width("reconstructed", 1) + 2)
            .collect();
        let (_, top0, _, bottom0) = bbox(
            &ink.iter()
                .copied()
                .filter(|&(_, y)| y < g.h / 2)
                .collect::<Vec<_>>(),
        );
        let (_, top1, _, _) = bbox(
            &ink.iter()
                .copied()
                .filter(|&(_, y)| y >= g.h / 2)
                .collect::<Vec<_>>(),
        );
        assert!(
            bottom0 < top1 && top0 < bottom0,
            "{w}x{h}: rows {top0}..{bottom0} and {top1}.."
        );
    }
}

#[test]
fn image_grid_rejects_wrong_sizes() {
    let img = [0.0f32; 5];
    assert!(image_grid(&[("x", vec![&img[..]])], 3, 2, 1).is_err());
    assert!(image_grid(&[("x", vec![])], 0, 2, 1).is_err());
    // A scale is the most an image is zoomed: at usize::MAX, as far as the
    // longest side allows.
    let g = image_grid(&[("x", vec![&img[..]])], 5, 1, usize::MAX).unwrap();
    let black = pixels_where(&g, |p| p == [0; 3]);
    let (x0, _, x1, _) = bbox(&black);
    assert_eq!(x1 - x0 + 1, 5 * (MAX_SIDE / 5));
}

/// Images too long or too many for the picture at its scale are drawn
/// smaller, or reduced to means of blocks of pixels; every picture fits.
#[test]
fn long_images_are_drawn_reduced_to_fit() {
    // One sample of 300,000 values, as a 300000×1 and a 1×300000 image:
    // reduced by 147 (the sides within MAX_SIDE), each cell the mean of
    // its block (a ramp: the cells' greys rise along it).
    let n = 300_000;
    let ramp: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
    for (w, h) in [(n, 1), (1, n)] {
        let g = image_grid(&[("original", vec![&ramp[..]; 10])], w, h, 3).unwrap();
        assert!(g.w * g.h <= MAX_PIXELS);
        let t = feature_tiles(&ramp, 1, w, h, 3).unwrap();
        let cells = n.div_ceil(147);
        assert_eq!((t.w - 2).max(t.h - 2), cells, "{w}x{h}");
        // The last cell holds the last 300000 − 147·2040 values.
        let along = |k: usize| {
            if w > 1 {
                t.get(1 + k, 1)
            } else {
                t.get(1, 1 + k)
            }
        };
        let m = ramp[n - 1];
        let sum: f64 = (0..147).map(|i| f64::from(0.5 + 0.5 * ramp[i] / m)).sum();
        let g0 = (255.0 * (sum / 147.0) as f32).round() as u8;
        assert_eq!(along(0), Some([g0; 3]));
        let greys: Vec<u8> = (0..cells).map(|k| along(k).unwrap()[0]).collect();
        assert!(greys.windows(2).all(|p| p[0] <= p[1]), "a ramp rises");
        assert_eq!(greys[cells - 1], 255);
    }
    // A 5000×5000 image: reduced by 3 to 1667×1667 cells.
    let big = vec![0.25f32; 5000 * 5000];
    let g = image_grid(&[("x", vec![&big[..]])], 5000, 5000, 3).unwrap();
    assert_eq!(pixels_where(&g, |p| p == [64; 3]).len(), 1667 * 1667);
    // A NaN anywhere in a block marks its cell.
    let mut broken = ramp.clone();
    broken[1000] = f32::NAN;
    let g = image_grid(&[("x", vec![&broken[..]])], n, 1, 1).unwrap();
    assert_eq!(pixels_where(&g, |p| p == [255, 0, 255]).len(), 1);
    // The choice itself: a zoom as large as fits, then (for pictures whose
    // count of images is fixed) reductions by doubling.
    let small = |w: usize, h: usize| w * h <= 300 * 300;
    let f = Fit::choose(100, 100, 3, false, small).unwrap();
    assert_eq!((f.zoom, f.shrink, f.w), (3, 1, 100));
    assert_eq!(Fit::choose(1000, 1000, 2, false, small), None);
    let f = Fit::choose(1000, 1000, 2, true, small).unwrap();
    assert_eq!((f.zoom, f.shrink, f.w, f.h), (1, 4, 250, 250));
    let f = Fit::choose(5000, 3, 3, false, |_, _| true).unwrap();
    assert_eq!((f.zoom, f.shrink, f.w, f.h), (1, 3, 1667, 1));
    // Only more images than pixels fail.
    let one = [0.5f32];
    assert!(image_grid(&[("x", vec![&one[..]; 1_000_000])], 1, 1, 1).is_err());
}

#[test]
fn feature_tile_of_a_one_hot_weight_is_brightest_at_its_pixel() {
    let dir = scratch("tiles");
    let (iw, ih, s) = (5usize, 4usize, 3usize);
    let hot = [(3usize, 2usize), (0, 0), (4, 3)];
    let mut w = vec![0f32; hot.len() * iw * ih];
    for (u, &(x, y)) in hot.iter().enumerate() {
        w[u * iw * ih + y * iw + x] = 0.7;
    }
    let c = round_trip(
        &dir,
        "tiles.png",
        &feature_tiles(&w, hot.len(), iw, ih, s).unwrap(),
    );
    // 3 units → 2 columns × 2 rows of (5·3 + 1) × (4·3 + 1) cells plus a border.
    assert_eq!((c.w, c.h), (2 * (iw * s + 1) + 1, 2 * (ih * s + 1) + 1));
    for (u, &(x, y)) in hot.iter().enumerate() {
        let (tx, ty) = (1 + (u % 2) * (iw * s + 1), 1 + (u / 2) * (ih * s + 1));
        let mut brightest = (0, (0, 0));
        for py in ty..ty + ih * s {
            for px in tx..tx + iw * s {
                let v = c.get(px, py).unwrap()[0];
                if v > brightest.0 {
                    brightest = (v, (px, py));
                }
            }
        }
        assert_eq!(brightest, (255, (tx + x * s, ty + y * s)), "unit {u}");
        assert_eq!(c.get(tx + ((x + 1) % iw) * s, ty + y * s), Some([128; 3]));
    }
    // The fourth cell is unused and black, as are the separators.
    assert_eq!(c.get(1 + iw * s + 1 + 2, 1 + ih * s + 1 + 2), Some([0; 3]));
    assert_eq!(c.get(1 + iw * s, 3), Some([0; 3]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn feature_tiles_normalise_each_tile_by_its_own_max() {
    // Tile 0: max |w| = 0.1, so −0.05 → 0.25 → grey 64; tile 1 is ten
    // times larger and must look the same; tile 2 is all zero → flat grey.
    let t0 = [0.1f32, -0.05, 0.0, -0.1];
    let w: Vec<f32> = t0
        .iter()
        .chain(&t0.map(|v| 10.0 * v))
        .chain(&[0.0; 4])
        .copied()
        .collect();
    let c = feature_tiles(&w, 3, 2, 2, 1).unwrap();
    let tile = |u: usize| -> Vec<[u8; 3]> {
        let (tx, ty) = (1 + (u % 2) * 3, 1 + (u / 2) * 3);
        (0..4)
            .map(|i| c.get(tx + i % 2, ty + i / 2).unwrap())
            .collect()
    };
    assert_eq!(tile(0), vec![[255; 3], [64; 3], [128; 3], [0; 3]]);
    assert_eq!(tile(1), tile(0));
    assert_eq!(tile(2), vec![[128; 3]; 4]);
    assert!(feature_tiles(&w, 4, 2, 2, 1).is_err());
    assert!(feature_tiles(&[], 0, 2, 2, 1).is_err());
}

const RED: [u8; 3] = [230, 0, 0];

/// For each pixel column holding line colour `RED`, the mean row of those pixels.
fn red_columns(c: &Canvas) -> Vec<(f64, f64)> {
    let red = pixels_where(c, |p| p[0] > 200 && p[1] < 90 && p[2] < 90);
    let mut cols = std::collections::BTreeMap::<usize, Vec<usize>>::new();
    for (x, y) in red {
        cols.entry(x).or_default().push(y);
    }
    cols.into_iter()
        .map(|(x, ys)| (x as f64, ys.iter().sum::<usize>() as f64 / ys.len() as f64))
        .collect()
}

/// Largest distance (rows) of the points from their least-squares line.
fn max_residual(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let b = sxy / sxx;
    pts.iter()
        .map(|p| (p.1 - my - b * (p.0 - mx)).abs())
        .fold(0.0, f64::max)
}

fn red_series(points: Vec<(f64, f64)>) -> Series {
    Series {
        name: String::new(),
        points,
        color: RED,
    }
}

#[test]
fn a_rising_series_draws_a_line_that_goes_up() {
    let dir = scratch("line");
    let pts = (0..50).map(|i| (i as f64, 3.0 + 0.5 * i as f64)).collect();
    let c = line_plot(&[red_series(pts)], "rising", "step", "value", false);
    let c = round_trip(&dir, "line.png", &c);
    assert_eq!((c.w, c.h), (WIDTH, HEIGHT));
    let cols = red_columns(&c);
    assert!(
        cols.len() > WIDTH / 2,
        "line spans most of the width: {}",
        cols.len()
    );
    // Screen y goes down, so a rising series has strictly falling rows.
    let rows: Vec<f64> = cols.iter().map(|p| p.1).collect();
    assert!(
        rows.windows(2).all(|w| w[1] <= w[0] + 0.5),
        "line goes up left to right"
    );
    assert!(rows[0] - rows[rows.len() - 1] > HEIGHT as f64 / 2.0);
    assert!(
        max_residual(&cols) < 2.0,
        "a straight series draws straight"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_y_straightens_an_exponential() {
    let pts: Vec<_> = (0..=40)
        .map(|i| (i as f64, 10f64.powf(i as f64 / 10.0)))
        .collect();
    let log = red_columns(&line_plot(&[red_series(pts.clone())], "", "", "", true));
    let lin = red_columns(&line_plot(&[red_series(pts)], "", "", "", false));
    assert!(
        max_residual(&log) < 2.0,
        "log axis: straight, {}",
        max_residual(&log)
    );
    assert!(
        max_residual(&lin) > 40.0,
        "linear axis: curved, {}",
        max_residual(&lin)
    );
}

#[test]
fn bad_data_never_panics_and_says_no_data() {
    let nan = f64::NAN;
    let empty = line_plot(&[], "t", "x", "y", false);
    let all_nan = line_plot(
        &[red_series(vec![(nan, 1.0), (2.0, nan)])],
        "t",
        "x",
        "y",
        false,
    );
    assert_eq!(all_nan, empty, "nothing drawable looks like no data");
    let neg_log = line_plot(
        &[red_series(vec![(1.0, -1.0), (2.0, 0.0)])],
        "t",
        "x",
        "y",
        true,
    );
    assert_eq!(neg_log, empty);
    for pts in [
        vec![(1.0, 5.0)],
        vec![(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)],
        vec![(0.0, 1e300), (1.0, -1e300), (f64::INFINITY, 0.0)],
        vec![(0.0, 1.0), (nan, nan), (2.0, 3.0), (3.0, f64::NEG_INFINITY)],
    ] {
        for log_y in [false, true] {
            let c = line_plot(&[red_series(pts.clone())], "t", "x", "y", log_y);
            assert_eq!((c.w, c.h), (WIDTH, HEIGHT));
        }
    }
    let long = "a very long title ".repeat(30);
    let c = line_plot(
        &[red_series(vec![(0.0, 1.0), (1.0, 2.0)])],
        &long,
        &long,
        &long,
        true,
    );
    assert_eq!((c.w, c.h), (WIDTH, HEIGHT));
    // A lone point is still visible as a dot.
    assert!(
        !red_columns(&line_plot(
            &[red_series(vec![(1.0, 5.0)])],
            "",
            "",
            "",
            false
        ))
        .is_empty()
    );
    let nan32 = [f32::NAN, f32::INFINITY];
    let h_empty = histogram(&[("a", &[])], 10, None, "h", "v", false);
    assert_eq!(
        histogram(&[("a", &nan32)], 10, None, "h", "v", false),
        h_empty
    );
    for data in [
        &[0.5f32; 7][..],
        &[f32::MAX, f32::MIN, 0.0],
        &[1.0, f32::NAN],
    ] {
        for log_y in [false, true] {
            for range in [
                None,
                Some((0.0, 1.0)),
                Some((1.0, 1.0)),
                Some((f64::NAN, 2.0)),
            ] {
                let c = histogram(&[("a", data), ("b", &[])], 0, range, "h", "v", log_y);
                assert_eq!((c.w, c.h), (WIDTH, HEIGHT));
            }
        }
    }
}

/// The colour of PALETTE[i] bars over white.
fn bar_colour(i: usize) -> [u8; 3] {
    PALETTE[i].map(|c| (0.7 * 255.0 + 0.3 * f32::from(c)).round() as u8)
}

#[test]
fn histogram_bars_sit_over_their_values() {
    let low = [0.05f32; 20];
    let high = [0.95f32; 20];
    let c = histogram(
        &[("low", &low), ("high", &high)],
        10,
        Some((0.0, 1.0)),
        "h",
        "v",
        false,
    );
    let a = pixels_where(&c, |p| p == bar_colour(0));
    let b = pixels_where(&c, |p| p == bar_colour(1));
    let (ba, bb) = (bbox(&a), bbox(&b));
    // Same count → same height; same bin width; low sits left of high.
    assert_eq!(ba.1, bb.1);
    assert_eq!(ba.3, bb.3);
    let (wa, wb) = (ba.2 - ba.0, bb.2 - bb.0);
    assert!(wa.abs_diff(wb) <= 1 && wa > 20);
    assert!(ba.2 < bb.0);
    // A bin twice as full is twice as tall above the baseline (linear axis).
    let more = [0.95f32; 40];
    let c2 = histogram(
        &[("low", &low), ("high", &more)],
        10,
        Some((0.0, 1.0)),
        "h",
        "v",
        false,
    );
    let (h1, h2) = (
        bbox(&pixels_where(&c2, |p| p == bar_colour(0))),
        bbox(&pixels_where(&c2, |p| p == bar_colour(1))),
    );
    let (t1, t2) = ((h1.3 - h1.1 + 1) as f64, (h2.3 - h2.1 + 1) as f64);
    assert!((t2 / t1 - 2.0).abs() < 0.05, "{t1} {t2}");
}

/// A 28×28 "digit": glyph `d` drawn large, intensities in [0, 1].
fn digit(d: char) -> Vec<f32> {
    let mut c = Canvas::new(28, 28, [0; 3]);
    c.text(7, 3, &d.to_string(), [255; 3], 3);
    c.pixels
        .chunks(3)
        .map(|p| f32::from(p[0]) / 255.0)
        .collect()
}

/// A deterministic pseudo-random number in [0, 1) from `i`.
fn hash01(i: u64) -> f32 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x >> 40) as f32 / (1u64 << 24) as f32
}

#[test]
fn demo_report_renders_and_decodes() {
    let dir = std::env::var_os("REPORT_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch("demo"));
    std::fs::create_dir_all(&dir).unwrap();
    let loss = |scale: f64, rate: f64, seed: u64| -> Vec<(f64, f64)> {
        (0..300)
            .map(|i| {
                let t = i as f64 * 10.0;
                let wobble = 1.0 + 0.08 * (f64::from(hash01(seed + i as u64)) - 0.5);
                (t, (0.07 + scale * (-t / rate).exp()) * wobble)
            })
            .collect()
    };
    let series = vec![
        Series {
            name: "train".into(),
            points: loss(0.6, 400.0, 1),
            color: PALETTE[0],
        },
        Series {
            name: "validation".into(),
            points: loss(0.62, 420.0, 9000),
            color: PALETTE[1],
        },
    ];
    save_png(
        dir.join("loss.png"),
        &line_plot(&series, "Reconstruction loss", "step", "BCE", false),
    )
    .unwrap();
    save_png(
        dir.join("loss_log.png"),
        &line_plot(&series, "Reconstruction loss", "step", "BCE", true),
    )
    .unwrap();
    // 20 000 points of small, signed values with a gap of NaN in the middle.
    let many: Vec<(f64, f64)> = (0..20_000)
        .map(|i| {
            let t = f64::from(i);
            let y = 2e-4 * (t / 900.0).sin() + 5e-5 * (f64::from(hash01(i as u64)) - 0.5);
            (
                t - 5000.0,
                if (9000..9500).contains(&i) {
                    f64::NAN
                } else {
                    y
                },
            )
        })
        .collect();
    let grad = Series {
        name: "grad mean".into(),
        points: many,
        color: PALETTE[2],
    };
    save_png(
        dir.join("many.png"),
        &line_plot(
            &[grad],
            "A long title: gradient mean of encoder.0.weight",
            "step",
            "mean",
            false,
        ),
    )
    .unwrap();

    let mut sheet = Canvas::new(620, 150, [255; 3]);
    let ascii: String = (32u8..127).map(char::from).collect();
    for (i, line) in ascii.as_bytes().chunks(32).enumerate() {
        let line = std::str::from_utf8(line).unwrap();
        sheet.text(10, 10 + 36 * i as i64, line, [0; 3], 3);
    }
    sheet.text(
        10,
        118,
        "Non-ASCII: \u{3c1}\u{b7}\u{e9} and a bounded quick (jpg_y)",
        [0; 3],
        2,
    );
    save_png(dir.join("font.png"), &sheet).unwrap();

    let digits: Vec<Vec<f32>> = "0123456789".chars().map(digit).collect();
    let noisy: Vec<Vec<f32>> = digits
        .iter()
        .enumerate()
        .map(|(k, d)| {
            d.iter()
                .enumerate()
                .map(|(i, &v)| (v + 0.5 * (hash01((k * 1000 + i) as u64) - 0.5)).clamp(0.0, 1.0))
                .collect()
        })
        .collect();
    let recon: Vec<Vec<f32>> = digits.iter().map(|d| blur(d, 28)).collect();
    let rows = [
        ("original", digits.iter().map(|v| &v[..]).collect()),
        ("noisy", noisy.iter().map(|v| &v[..]).collect()),
        (
            "reconstructed",
            recon.iter().map(|v| &v[..]).collect::<Vec<_>>(),
        ),
    ];
    save_png(
        dir.join("reconstructions.png"),
        &image_grid(&rows, 28, 28, 2).unwrap(),
    )
    .unwrap();

    let (units, n) = (64usize, 28 * 28);
    let mut w = vec![0f32; units * n];
    for u in 0..units {
        let (th, f, ph) = (
            hash01(u as u64 * 3) * std::f32::consts::PI,
            0.2 + 0.4 * hash01(u as u64 * 3 + 1),
            std::f32::consts::TAU * hash01(u as u64 * 3 + 2),
        );
        let (cx, cy) = (
            8.0 + 12.0 * hash01(u as u64 + 77),
            8.0 + 12.0 * hash01(u as u64 + 99),
        );
        for i in 0..n {
            let (x, y) = ((i % 28) as f32 - cx, (i / 28) as f32 - cy);
            let r = x * th.cos() + y * th.sin();
            w[u * n + i] = (f * r + ph).sin() * (-(x * x + y * y) / 40.0).exp();
        }
    }
    save_png(
        dir.join("features.png"),
        &feature_tiles(&w, units, 28, 28, 2).unwrap(),
    )
    .unwrap();
    save_png(
        dir.join("features_wide.png"),
        &feature_tiles(&w[..30 * n], 30, 56, 14, 2).unwrap(),
    )
    .unwrap();

    let codes = |k: f32, seed: u64| -> Vec<f32> {
        (0..5000)
            .map(|i| {
                (-k * hash01(seed + i).max(1e-6).ln()).min(6.0)
                    * (hash01(seed + 7 * i) > 0.3) as u8 as f32
            })
            .collect()
    };
    let (relu, kl, l1) = (codes(1.0, 1), codes(0.5, 2), codes(0.25, 3));
    let hist = histogram(
        &[("relu", &relu), ("KL rho=0.05", &kl), ("L1", &l1)],
        60,
        None,
        "Code activations",
        "activation",
        true,
    );
    save_png(dir.join("activations.png"), &hist).unwrap();
    let freq: Vec<f32> = (0..512).map(|i| -3.5 * hash01(i).powf(0.7) - 0.3).collect();
    let dens = histogram(
        &[("latents", &freq)],
        40,
        Some((-4.0, 0.0)),
        "Latent density",
        "log10 firing frequency",
        false,
    );
    save_png(dir.join("density.png"), &dens).unwrap();
    save_png(
        dir.join("empty.png"),
        &histogram(&[("none", &[f32::NAN])], 10, None, "Empty", "x", false),
    )
    .unwrap();

    let img = |f: &str, c: &str| Image {
        file: f.into(),
        caption: c.into(),
    };
    let sections = [
        Section {
            heading: "Loss".into(),
            text: Some("Binary cross-entropy per pixel, <train> & \"validation\".".into()),
            images: vec![img("loss.png", "linear"), img("loss_log.png", "log y")],
            ..Default::default()
        },
        Section {
            heading: "Reconstructions".into(),
            images: vec![img(
                "reconstructions.png",
                "original / noisy / reconstructed",
            )],
            ..Default::default()
        },
        Section {
            heading: "Features".into(),
            images: vec![
                img("features.png", "64 units"),
                img("features_wide.png", "56x14 inputs"),
            ],
            ..Default::default()
        },
        Section {
            heading: "Codes".into(),
            images: vec![
                img("activations.png", "activations"),
                img("density.png", "density"),
                img("empty.png", "no data"),
            ],
            table: Some(Table {
                header: vec!["model".into(), "loss".into(), "dead %".into()],
                rows: vec![
                    vec!["relu".into(), "0.0712".into(), "3.1".into()],
                    vec!["KL".into(), "0.0755".into(), "0.0".into()],
                ],
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let index = write_index(&dir, "sparse-ae report <demo>", &sections).unwrap();
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(html.contains("&lt;train&gt; &amp; &quot;validation&quot;"));
    assert!(html.contains("<h1>sparse-ae report &lt;demo&gt;</h1>"));
    assert!(html.contains("<td class=\"num\">0.0712</td>"));
    assert!(!html.contains("<demo>"));
    for f in [
        "loss",
        "loss_log",
        "many",
        "font",
        "reconstructions",
        "features",
        "features_wide",
        "activations",
        "density",
        "empty",
    ] {
        let (w, h, _, px) = decode(&dir.join(format!("{f}.png")));
        assert_eq!(px.len(), 3 * w * h, "{f}");
        assert!(px.iter().any(|&b| b < 128), "{f} has dark pixels");
    }
    if std::env::var_os("REPORT_DEMO_DIR").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A 3×3 box blur of a `w`-wide image, standing in for a reconstruction.
fn blur(img: &[f32], w: usize) -> Vec<f32> {
    let h = img.len() / w;
    (0..img.len())
        .map(|i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let mut s = 0.0;
            for (dx, dy) in (-1..=1).flat_map(|a| (-1..=1).map(move |b| (a, b))) {
                let (u, v) = (x + dx, y + dy);
                if u >= 0 && v >= 0 && (u as usize) < w && (v as usize) < h {
                    s += img[v as usize * w + u as usize];
                }
            }
            s / 9.0
        })
        .collect()
}

#[test]
fn html_escapes_text_and_links_odd_file_names() {
    use sparse_ae::report::html::{escape, render};
    assert_eq!(
        escape(r#"<a href='x'>&"#),
        "&lt;a href=&#39;x&#39;&gt;&amp;"
    );
    let s = Section {
        heading: "<h>".into(),
        images: vec![Image {
            file: "runs/my plot #1.png".into(),
            caption: "\"c\"".into(),
        }],
        table: Some(Table {
            header: vec!["k".into()],
            rows: vec![vec!["x<y".into(), "-1.5e-3".into(), "".into()]],
            ..Default::default()
        }),
        ..Default::default()
    };
    let h = render("t", &[s]);
    assert!(h.contains("<h2>&lt;h&gt;</h2>"));
    assert!(h.contains("src=\"runs/my%20plot%20%231.png\""), "{h}");
    assert!(h.contains("alt=\"&quot;c&quot;\""));
    assert!(h.contains("<td>x&lt;y</td><td class=\"num\">-1.5e-3</td><td></td>"));
    assert_eq!(h.matches("<table>").count(), 1);
    assert!(!h.contains("<p>"), "no paragraph when text is None");
    // A plain table (of settings) aligns its numbers as text.
    let plain = Section {
        table: Some(Table {
            header: vec!["setting".into(), "value".into()],
            rows: vec![vec!["seed".into(), "7".into()]],
            plain: true,
        }),
        pre: Some("{\"a\": <1>}".into()),
        ..Default::default()
    };
    let h = render("t", &[plain]);
    assert!(h.contains("<td>seed</td><td>7</td>"), "{h}");
    assert!(h.contains("<pre>{&quot;a&quot;: &lt;1&gt;}</pre>"), "{h}");
    let dir = scratch("html");
    let p = write_index(&dir, "t", &[]).unwrap();
    assert_eq!(p, dir.join("index.html"));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), render("t", &[]));
    assert!(write_index(dir.join("missing"), "t", &[]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
