//! The library search refuses a shared object that is not OpenVINO's C
//! library, names the right file, and treats an empty variable as unset.
//! Its own test binary (one test), because loading the library is once per
//! process and the test changes the environment.
#![cfg(feature = "openvino")]

use accelpool::openvino::{library, OpenVinoError};

#[test]
fn wrong_libraries_are_refused_by_name_and_the_right_one_still_loads() {
    // An empty variable is ignored: the search goes on to the setup install.
    // This binary runs this one test: no other thread reads the environment.
    std::env::set_var(library::LIBRARY_ENV, "");
    let mut searched = Vec::new();
    let right = library::find(None, &mut searched).unwrap_or_else(|| {
        panic!("the OpenVINO library, installed by scripts/setup.sh, was not found: {searched:?}")
    });
    std::env::remove_var(library::LIBRARY_ENV);
    assert!(
        right
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("libopenvino_c.so"),
        "{}",
        right.display()
    );
    let libs = right.parent().unwrap();
    let named = |prefix: &str| {
        std::fs::read_dir(libs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}* beside the C library"))
    };

    // The C++ library beside the right one: refused, naming the right one.
    let cpp = named("libopenvino.so");
    let err = library::load(Some(&cpp), false).unwrap_err();
    assert!(matches!(err, OpenVinoError::NotOpenVinoC { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("is not the OpenVINO C library")
            && msg.contains("ov_")
            && msg.contains(&format!("{} instead", right.display())),
        "{msg}"
    );
    // Some other shared object (threading library shipped in the wheel).
    let other = named("libtbb.so");
    let err = library::load(Some(&other), false).unwrap_err();
    assert!(matches!(err, OpenVinoError::NotOpenVinoC { .. }), "{err}");

    // A copy of the right library in a folder every user may write to (no
    // sticky bit): refused before it is opened.
    use std::os::unix::fs::PermissionsExt;
    let open_dir = std::env::temp_dir().join(format!("accelpool-ww-{}", std::process::id()));
    std::fs::create_dir_all(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let planted = open_dir.join(right.file_name().unwrap());
    std::fs::copy(&right, &planted).unwrap();
    let err = library::load(Some(&planted), false).unwrap_err();
    std::fs::remove_dir_all(&open_dir).unwrap();
    assert!(
        matches!(
            err,
            OpenVinoError::InsecurePath {
                what: "library",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no sticky bit"), "{err}");

    // None was handed to the runtime: the right one loads afterwards, and
    // its version is known.
    assert_eq!(library::load(Some(&right), false).unwrap(), right);
    let version = library::runtime_version().unwrap();
    assert!(version.starts_with("20"), "{version}");
}
