//! The whole pipeline on images of known text, rendered here with a real
//! TrueType font: how much of the text it reads back.

mod common;

use accelpool::Priority;
use accelpool_ocr::score::{score_page, Score};
use accelpool_ocr::testdata::{generate, TestDataOptions};
use rayon::prelude::*;

#[test]
fn reads_rendered_text_with_a_character_error_rate_under_two_percent() {
    let samples = generate(&common::font(), 2026, 50, &TestDataOptions::default());
    let ocr = common::ocr();
    let pages: Vec<_> = samples
        .par_iter()
        .map(|s| ocr.read(&s.image, Priority::Normal).map(|p| (s, p)))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut total = Score::default();
    for (sample, page) in &pages {
        let s = score_page(&sample.lines, &page.lines);
        if s.edits > 0 {
            eprintln!("{}: {} edits", sample.name, s.edits);
        }
        total.add(&s);
    }
    eprintln!(
        "{} images, {} lines: found {:.1} %, character error rate {:.2} %, \
         upside-down lines turned {}/{} (their error rate {:.2} %)",
        samples.len(),
        total.lines,
        100.0 * total.recall(),
        100.0 * total.cer(),
        total.upside_down_turned,
        total.upside_down,
        100.0 * total.upside_down_cer(),
    );
    assert!(total.lines >= 150, "only {} lines drawn", total.lines);
    assert!(
        total.upside_down >= 15,
        "only {} upside-down lines",
        total.upside_down
    );
    assert!(
        total.recall() >= 0.97,
        "found {:.3} of the lines",
        total.recall()
    );
    assert!(
        total.cer() < 0.02,
        "character error rate {:.4}",
        total.cer()
    );
    // Every 180° line is turned, and read as well as the rest.
    assert_eq!(total.upside_down_turned, total.upside_down);
    assert!(
        total.upside_down_cer() < 0.02,
        "upside-down error rate {:.4}",
        total.upside_down_cer()
    );

    // Every request the pipeline made ended, and ended well.
    let stats = ocr.engine().runtime().stats();
    for m in &stats.models {
        let c = &m.stats.counts;
        let name = &m.name;
        assert_eq!(
            c.accepted,
            c.completed + c.dead_lettered + c.cancelled + c.expired,
            "{name}"
        );
        assert_eq!(c.completed, c.accepted, "{name}");
    }
}

#[test]
fn an_image_without_text_has_no_lines() {
    let blank = image::RgbImage::from_pixel(640, 480, image::Rgb([250, 250, 250]));
    let page = common::ocr().read(&blank, Priority::Normal).unwrap();
    assert!(page.lines.is_empty(), "{:?}", page.lines);
}

#[test]
fn a_one_pixel_image_has_no_lines() {
    let dot = image::RgbImage::from_pixel(1, 1, image::Rgb([0, 0, 0]));
    let page = common::ocr().read(&dot, Priority::Normal).unwrap();
    assert!(page.lines.is_empty());
}
