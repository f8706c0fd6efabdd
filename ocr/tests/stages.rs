//! Each stage of the pipeline against an independent reference on fixed
//! inputs: the DB post-processing on hand-made probability maps, CTC
//! decoding on hand-made probabilities, crop rectification on a known
//! pattern.

use accelpool_ocr::det::{self, DetOptions};
use accelpool_ocr::geometry::Quad;
use accelpool_ocr::{crop, ctc, Dictionary};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{rotate_about_center, Interpolation};

/// A `w x h` map: `value` on the pixels `f` picks, 0.05 elsewhere.
fn map(w: usize, h: usize, value: f32, f: impl Fn(usize, usize) -> bool) -> Vec<f32> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| if f(x, y) { value } else { 0.05 })
        .collect()
}

fn close(a: (f32, f32), b: (f32, f32), tol: f32) -> bool {
    (a.0 - b.0).abs() <= tol && (a.1 - b.1).abs() <= tol
}

/// The box DB post-processing must give for a filled core of pixels
/// `x0..=x1, y0..=y1`, worked out by hand: the 2x2 dilation adds a
/// column on the right and a row below, the contour runs through the
/// border pixels' centres (a `(x1 + 1 - x0) x (y1 + 1 - y0)` rectangle),
/// and unclipping grows it by `area * 1.6 / perimeter` on every side.
fn expected(x0: f32, y0: f32, x1: f32, y1: f32) -> Quad {
    let (w, h) = (x1 + 1.0 - x0, y1 + 1.0 - y0);
    let d = w * h * 1.6 / (2.0 * (w + h));
    Quad::rect(x0 - d, y0 - d, w + 2.0 * d, h + 2.0 * d)
}

#[test]
fn db_boxes_a_filled_rectangle_grown_by_the_unclip_distance() {
    let prob = map(200, 80, 0.9, |x, y| {
        (40..=139).contains(&x) && (30..=41).contains(&y)
    });
    let boxes = det::boxes(&prob, 200, 80, &DetOptions::default());
    assert_eq!(boxes.len(), 1, "{boxes:?}");
    let want = expected(40.0, 30.0, 139.0, 41.0);
    for (got, want) in boxes[0].0.iter().zip(want.0) {
        assert!(close(*got, want, 0.01), "{:?} vs {:?}", boxes[0], want);
    }
}

#[test]
fn db_keeps_boxes_in_reading_order_and_drops_weak_and_tiny_regions() {
    let prob = {
        let mut p = map(300, 120, 0.9, |x, y| {
            // Two words on one line (right one first in memory order
            // would not matter), one line below.
            ((150..=250).contains(&x) && (10..=21).contains(&y))
                || ((20..=120).contains(&x) && (12..=23).contains(&y))
                || ((30..=200).contains(&x) && (60..=71).contains(&y))
        });
        // A region above the pixel threshold but under the box threshold.
        for y in 90..=101 {
            for x in 30..=150 {
                p[y * 300 + x] = 0.4;
            }
        }
        // A speck: a 1-pixel-wide region.
        p[110 * 300 + 250] = 0.99;
        p
    };
    let boxes = det::boxes(&prob, 300, 120, &DetOptions::default());
    let lefts: Vec<(i32, i32)> = boxes
        .iter()
        .map(|b| (b.0[0].0.round() as i32, b.center().1.round() as i32))
        .collect();
    assert_eq!(boxes.len(), 3, "{lefts:?}");
    // Same line (tops within 10 px): left to right; then the next line.
    assert!(lefts[0].0 < lefts[1].0, "{lefts:?}");
    assert!(lefts[2].1 > lefts[1].1 + 30, "{lefts:?}");
}

#[test]
fn db_follows_a_rotated_line() {
    // A 120 x 14 bar turned 20° about (150, 100).
    let (cx, cy, a) = (150.0f32, 100.0f32, 20f32.to_radians());
    let prob = map(300, 200, 0.9, |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let (u, v) = (dx * a.cos() + dy * a.sin(), -dx * a.sin() + dy * a.cos());
        u.abs() <= 60.0 && v.abs() <= 7.0
    });
    let boxes = det::boxes(&prob, 300, 200, &DetOptions::default());
    assert_eq!(boxes.len(), 1);
    let [tl, tr, _, _] = boxes[0].0;
    let angle = (tr.1 - tl.1).atan2(tr.0 - tl.0).to_degrees();
    assert!((angle - 20.0).abs() < 1.5, "angle {angle}");
    let (w, h) = boxes[0].size();
    // Core about 121 x 15 (plus the dilation), grown by ~ area*1.6/perimeter.
    let d = 121.0 * 15.0 * 1.6 / (2.0 * (121.0 + 15.0));
    assert!((w - (121.0 + 2.0 * d)).abs() < 4.0, "width {w}");
    assert!((h - (15.0 + 2.0 * d)).abs() < 4.0, "height {h}");
    assert!(
        close(boxes[0].center(), (cx, cy), 1.5),
        "{:?}",
        boxes[0].center()
    );
}

#[test]
fn db_on_an_empty_map_finds_nothing() {
    assert!(det::boxes(&vec![0.0; 64 * 64], 64, 64, &DetOptions::default()).is_empty());
    assert!(det::boxes(&[], 0, 0, &DetOptions::default()).is_empty());
}

fn dict() -> Dictionary {
    Dictionary::from_lines(["h", "e", "l", "o", "!"]).unwrap()
}

/// Probabilities for a sequence of classes: `p` on each step's class, the
/// rest spread evenly.
fn steps(classes: &[usize], n: usize, p: f32) -> Vec<f32> {
    classes
        .iter()
        .flat_map(|&c| {
            (0..n).map(move |k| {
                if k == c {
                    p
                } else {
                    (1.0 - p) / (n - 1) as f32
                }
            })
        })
        .collect()
}

#[test]
fn ctc_merges_repeats_drops_blanks_and_keeps_doubled_letters_split_by_a_blank() {
    let d = dict();
    let n = d.len(); // blank, h e l o !, space
    assert_eq!(n, 7);
    // h h e blank l l blank l o space space ! blank
    let seq = [1, 1, 2, 0, 3, 3, 0, 3, 4, 6, 6, 5, 0];
    let line = ctc::decode(&steps(&seq, n, 0.8), n, &d);
    assert_eq!(line.text, "hello !");
    assert!((line.confidence - 0.8).abs() < 1e-6);
}

#[test]
fn ctc_of_blanks_only_is_empty_with_no_confidence() {
    let d = dict();
    let line = ctc::decode(&steps(&[0, 0, 0], d.len(), 0.9), d.len(), &d);
    assert_eq!(
        line,
        ctc::Decoded {
            text: String::new(),
            confidence: 0.0
        }
    );
}

#[test]
fn a_dictionary_with_an_empty_line_is_refused() {
    let e = Dictionary::from_lines(["a", "", "b"]).unwrap_err();
    assert!(e.contains("line 2"), "{e}");
    assert!(Dictionary::from_lines([]).is_err());
}

/// A pattern whose every region differs: a gradient with a dark corner.
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let dark = x < w / 4 && y < h / 2;
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            if dark { 0 } else { 200 },
        ])
    })
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage, inset: u32) -> f32 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in inset..a.height() - inset {
        for x in inset..a.width() - inset {
            for c in 0..3 {
                sum += (a.get_pixel(x, y)[c] as i32 - b.get_pixel(x, y)[c] as i32).unsigned_abs()
                    as u64;
                n += 1;
            }
        }
    }
    sum as f32 / n as f32
}

#[test]
fn rectify_undoes_a_rotation() {
    // The pattern on a large canvas, turned 15° about the canvas centre;
    // its corners turned the same way are the box to rectify.
    let (pw, ph) = (160u32, 40u32);
    let mut canvas = RgbImage::from_pixel(400, 300, Rgb([255, 255, 255]));
    let (ox, oy) = (120u32, 130u32);
    image::imageops::overlay(&mut canvas, &pattern(pw, ph), ox as i64, oy as i64);
    let theta = 15f32.to_radians();
    let turned = rotate_about_center(
        &canvas,
        theta,
        Interpolation::Bilinear,
        Rgb([255, 255, 255]),
    );
    let (cx, cy) = (200.0f32, 150.0f32);
    let rot = |(x, y): (f32, f32)| {
        let (dx, dy) = (x - cx, y - cy);
        (
            cx + dx * theta.cos() - dy * theta.sin(),
            cy + dx * theta.sin() + dy * theta.cos(),
        )
    };
    let quad = Quad::rect(ox as f32, oy as f32, pw as f32, ph as f32).map(rot);
    let out = crop::rectify(&turned, &quad).expect("a crop");
    assert_eq!(out.dimensions(), (pw, ph));
    let diff = mean_abs_diff(&out, &pattern(pw, ph), 2);
    assert!(diff < 6.0, "mean difference {diff}");
}

#[test]
fn rectify_turns_a_vertical_box_a_quarter_counter_clockwise() {
    let img = pattern(40, 160);
    let out = crop::rectify(&img, &Quad::rect(0.0, 0.0, 40.0, 160.0)).unwrap();
    assert_eq!(out.dimensions(), (160, 40));
    // The top-right corner of the upright image is the top-left now (to
    // within the bilinear sampling's rounding), and the dark corner
    // (top-left) is at the bottom-left.
    let near = |a: &Rgb<u8>, b: &Rgb<u8>| a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) <= 2);
    assert!(
        near(out.get_pixel(0, 0), img.get_pixel(39, 0)),
        "{:?}",
        out.get_pixel(0, 0)
    );
    assert!(
        near(out.get_pixel(0, 39), img.get_pixel(0, 0)),
        "{:?}",
        out.get_pixel(0, 39)
    );
}

#[test]
fn rectify_of_a_degenerate_box_is_none() {
    let img = pattern(10, 10);
    assert!(crop::rectify(&img, &Quad::rect(3.0, 3.0, 0.0, 5.0)).is_none());
}
