//! Without the OpenVINO library, starting a group fails with an error that
//! says how to install it. Its own test binary, so no other test has loaded
//! the library into the process first.
#![cfg(feature = "openvino")]

use accelpool::openvino::{OpenVinoConfig, OpenVinoError, OpenVinoFactory};

#[test]
fn missing_library_gives_the_install_hint() {
    let cfg =
        OpenVinoConfig::new("models/tiny/tiny.onnx", "CPU").library("/nonexistent/openvino/libs");
    let err = OpenVinoFactory::new(&cfg).unwrap_err();
    assert!(
        matches!(err, OpenVinoError::LibraryNotFound { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/openvino/libs"),
        "names where it looked: {msg}"
    );
    assert!(
        msg.contains("scripts/setup.sh"),
        "says how to install: {msg}"
    );
    assert!(
        msg.contains("ACCELPOOL_OPENVINO_LIB"),
        "names the variable: {msg}"
    );
}
