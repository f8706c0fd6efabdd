//! What the OCR tests share: the repository's paths and the pipeline.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use accelpool_ocr::{Dictionary, Ocr, OcrOptions, RuntimeEngine};

/// The repository's root (the runtime's YAML names models relative to it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The font the test images are drawn with (scripts/test-tools.sh).
pub fn font() -> ab_glyph::FontVec {
    let path = root().join("models/fonts/DejaVuSans.ttf");
    accelpool_ocr::testdata::load_font(&path)
        .unwrap_or_else(|e| panic!("{e}; run ./scripts/test.sh, which installs it"))
}

/// One pipeline for the test binary: the three models in one runtime, as
/// `config/runtime/ppocr.yaml` describes them.
pub fn ocr() -> &'static Ocr<RuntimeEngine> {
    static OCR: OnceLock<Ocr<RuntimeEngine>> = OnceLock::new();
    OCR.get_or_init(|| {
        // Model paths in the YAML are relative to the repository's root;
        // every test of this binary sets the same folder.
        std::env::set_current_dir(root()).expect("the repository's root");
        let engine = RuntimeEngine::from_yaml_file(&root().join("config/runtime/ppocr.yaml"))
            .unwrap_or_else(|e| panic!("{e}; run ./scripts/setup.sh"));
        let dict = Dictionary::load(&root().join("models/ppocr/ppocr_keys_v1.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
        Ocr::new(engine, dict, OcrOptions::default())
    })
}
