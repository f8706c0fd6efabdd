//! Native code is loaded only from where the user put it: with `HOME`
//! unset and relative `XDG_DATA_HOME`, `ACCELPOOL_HOME` and
//! `ACCELPOOL_OPENVINO_LIB`, a library planted under the current directory
//! is never chosen. Its own test binary: it changes the environment and the
//! current directory of the process.
#![cfg(feature = "openvino")]

use std::path::{Path, PathBuf};

use accelpool::openvino::library;

/// Plants a fake `libopenvino_c.so.9999` where a relative value would lead.
fn plant(root: &Path, home: &str) -> PathBuf {
    let libs = root
        .join(home)
        .join("accelpool/venv/lib/python3.11/site-packages/openvino/libs");
    std::fs::create_dir_all(&libs).unwrap();
    let lib = libs.join("libopenvino_c.so.9999");
    std::fs::write(&lib, b"not a library").unwrap();
    lib
}

#[test]
fn relative_and_empty_locations_are_ignored_never_resolved_against_the_current_directory() {
    let cwd = std::env::temp_dir().join(format!("accelpool-cwd-{}", std::process::id()));
    let planted = [
        plant(&cwd, "."),
        plant(&cwd, "data"),
        plant(&cwd, "rel"),
        plant(&cwd, "lib"),
    ];
    std::env::set_current_dir(&cwd).unwrap();
    std::env::remove_var("HOME");
    std::env::set_var("XDG_DATA_HOME", "data");
    std::env::set_var("ACCELPOOL_HOME", "rel/accelpool");
    std::env::set_var(library::LIBRARY_ENV, "lib/accelpool");

    assert_eq!(
        library::setup_home(),
        None,
        "no absolute home: none is used"
    );
    let mut searched = Vec::new();
    let found = library::find(Some(Path::new("lib")), &mut searched);
    if let Some(found) = &found {
        assert!(found.is_absolute(), "{}", found.display());
        assert!(
            !found.starts_with(&cwd),
            "loaded a planted library: {}",
            found.display()
        );
    }
    let said = searched.join("\n");
    for what in [
        "the backend's `library`",
        "ACCELPOOL_OPENVINO_LIB",
        "ACCELPOOL_HOME",
        "XDG_DATA_HOME",
    ] {
        assert!(
            said.contains(&format!("{what}: `")) && said.contains("ignored: only absolute paths"),
            "{what} is named as ignored:\n{said}"
        );
    }
    assert!(said.contains("the setup install (skipped"), "{said}");
    for p in &planted {
        assert!(Some(p) != found.as_ref());
    }

    // An empty variable is ignored the same way.
    std::env::set_var(library::LIBRARY_ENV, "");
    let mut searched = Vec::new();
    let _ = library::find(None, &mut searched);
    assert!(searched
        .join("\n")
        .contains("ACCELPOOL_OPENVINO_LIB: an empty value"));
    std::env::set_current_dir(std::env::temp_dir()).unwrap();
    std::fs::remove_dir_all(&cwd).unwrap();
}
