//! Bad images get a typed error that says what is wrong, never a panic
//! and never an allocation the size of a huge image.

mod common;

use std::path::Path;

use accelpool_ocr::{image_io, OcrError};

/// A file holding `bytes`, in a folder of its own that is removed when
/// the returned guard drops.
fn temp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("accelpool-ocr-bad-input-")
        .tempdir()
        .unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[test]
fn a_missing_file_names_the_file() {
    let e = image_io::load(Path::new("no/such/image.png")).unwrap_err();
    assert!(matches!(e, OcrError::Read { .. }), "{e}");
    assert!(e.to_string().contains("no/such/image.png"), "{e}");
}

#[test]
fn a_truncated_png_is_a_decode_error() {
    let full = png(64, 64);
    let (_dir, p) = temp("truncated.png", &full[..full.len() / 2]);
    let e = image_io::load(&p).unwrap_err();
    assert!(matches!(e, OcrError::Decode { .. }), "{e}");
}

#[test]
fn a_file_that_is_not_an_image_is_a_decode_error() {
    let (_dir, p) = temp("notes.png", b"these are not the pixels you are looking for");
    let e = image_io::load(&p).unwrap_err();
    assert!(matches!(e, OcrError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("PNG and JPEG"), "{e}");
}

#[test]
fn an_empty_file_is_a_decode_error() {
    let (_dir, p) = temp("empty.png", b"");
    let e = image_io::load(&p).unwrap_err();
    assert!(matches!(e, OcrError::Decode { .. }), "{e}");
}

#[test]
fn a_huge_image_is_refused_from_its_header_before_any_pixel_is_decoded() {
    // A PNG whose header says 20000 x 20000 (1.2 GB as RGB), with the
    // start of a pixel stream: the file is tiny.
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, 20_000, 20_000);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_chunk(png::chunk::IDAT, &[0x78, 0x9c, 0x01, 0x00])
            .unwrap();
    }
    let (_dir, p) = temp("huge.png", &bytes);
    let e = image_io::load(&p).unwrap_err();
    match &e {
        OcrError::TooLarge {
            width, height, max, ..
        } => {
            assert_eq!((*width, *height), (20_000, 20_000));
            assert_eq!(*max, image_io::MAX_SIDE);
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(e.to_string().contains("downscale"), "{e}");
}

#[test]
fn a_small_valid_png_and_a_one_pixel_one_decode() {
    let (_dir, p) = temp("ok.png", &png(3, 2));
    assert_eq!(image_io::load(&p).unwrap().dimensions(), (3, 2));
    let (_dir, p) = temp("dot.png", &png(1, 1));
    assert_eq!(image_io::load(&p).unwrap().dimensions(), (1, 1));
}

#[test]
fn a_jpeg_decodes() {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(16, 8, image::Rgb([10, 200, 10]))
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let (_dir, p) = temp("ok.jpg", &out);
    assert_eq!(image_io::load(&p).unwrap().dimensions(), (16, 8));
}

#[test]
fn a_missing_dictionary_says_how_to_get_it() {
    let e = accelpool_ocr::Dictionary::load(Path::new("no/such/keys.txt")).unwrap_err();
    assert!(e.to_string().contains("scripts/setup.sh"), "{e}");
}

#[test]
fn a_runtime_file_without_the_three_models_is_refused_by_name() {
    let (_dir, p) = temp("one-model.yaml", b"models:\n  det:\n    groups:\n      - name: cpu\n        backend:\n          openvino:\n            model: models/ppocr/det.onnx\n            device: CPU\n");
    let e = accelpool_ocr::RuntimeEngine::from_yaml_file(&p)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("`cls`"), "{e}");
}
