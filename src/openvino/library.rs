//! Finding and loading the OpenVINO C library at run time.
//!
//! The crate links OpenVINO at run time, so it builds without OpenVINO and
//! reports a clear error when a pool starts an OpenVINO group without it.
//! The library is looked for, in this order:
//!
//! 1. `library` in the backend config: the `libopenvino_c` file or its folder;
//! 2. the `ACCELPOOL_OPENVINO_LIB` environment variable: the same;
//! 3. where `scripts/setup.sh` installs the `openvino` wheel:
//!    `$ACCELPOOL_HOME` (default `${XDG_DATA_HOME:-~/.local/share}/accelpool`)
//!    `/venv/lib/python3*/site-packages/openvino/libs`;
//! 4. the `openvino` crate's own finder (`OPENVINO_INSTALL_DIR`, system paths).
//!
//! The PyPI wheel ships only versioned names (`libopenvino_c.so.2641`), so a
//! folder is searched for `libopenvino_c.so` and `libopenvino_c.so.*`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::OpenVinoError;

/// The environment variable naming the library file or its folder.
pub const LIBRARY_ENV: &str = "ACCELPOOL_OPENVINO_LIB";

static LOADED: OnceLock<PathBuf> = OnceLock::new();

/// Loads the OpenVINO C library once per process and returns its path.
/// Later calls return the first library's path whatever they are given:
/// one process holds one OpenVINO runtime.
pub fn load(configured: Option<&Path>) -> Result<PathBuf, OpenVinoError> {
    if let Some(p) = LOADED.get() {
        return Ok(p.clone());
    }
    let mut searched = Vec::new();
    let path = find(configured, &mut searched).ok_or_else(|| OpenVinoError::LibraryNotFound {
        searched: searched.clone(),
    })?;
    openvino_sys::library::load_from(&path).map_err(|message| OpenVinoError::LibraryLoad {
        path: path.clone(),
        message,
    })?;
    Ok(LOADED.get_or_init(|| path).clone())
}

/// Where the library would be loaded from, without loading it. `searched`
/// receives each place looked at, for the error message.
pub fn find(configured: Option<&Path>, searched: &mut Vec<String>) -> Option<PathBuf> {
    if let Some(p) = configured {
        searched.push(format!("config `library`: {}", p.display()));
        return resolve(p);
    }
    if let Some(p) = std::env::var_os(LIBRARY_ENV) {
        let p = PathBuf::from(p);
        searched.push(format!("{LIBRARY_ENV}={}", p.display()));
        return resolve(&p);
    }
    let home = setup_home();
    searched.push(format!(
        "{}/venv/lib/python3*/site-packages/openvino/libs",
        home.display()
    ));
    if let Some(found) = wheel_libs(&home).and_then(|d| resolve(&d)) {
        return Some(found);
    }
    searched
        .push("the openvino crate's finder (OPENVINO_INSTALL_DIR, system library paths)".into());
    openvino_sys::library::find().filter(|p| p.is_file())
}

/// The folder `scripts/setup.sh` installs into.
pub fn setup_home() -> PathBuf {
    if let Some(h) = std::env::var_os("ACCELPOOL_HOME") {
        return PathBuf::from(h);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("accelpool")
}

/// `openvino/libs` inside the setup venv, whatever its Python version.
fn wheel_libs(home: &Path) -> Option<PathBuf> {
    let lib = home.join("venv/lib");
    let mut pythons: Vec<_> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
        })
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .rev()
        .map(|p| p.join("site-packages/openvino/libs"))
        .find(|p| p.is_dir())
}

/// A file is taken as it is; a folder is searched for the C library.
fn resolve(p: &Path) -> Option<PathBuf> {
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(p)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|f| {
            f.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n == "libopenvino_c.so"
                    || n.starts_with("libopenvino_c.so.")
                    || n == "libopenvino_c.dylib"
                    || n == "openvino_c.dll"
            })
        })
        .collect();
    // The unversioned name sorts first; otherwise take the newest version.
    found.sort();
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_with_only_a_versioned_name_resolves() {
        let dir = std::env::temp_dir().join(format!("accelpool-lib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libopenvino_c.so.2641"), b"").unwrap();
        std::fs::write(dir.join("libopenvino.so.2641"), b"").unwrap();
        assert_eq!(resolve(&dir), Some(dir.join("libopenvino_c.so.2641")));
        assert_eq!(
            resolve(&dir.join("libopenvino_c.so.2641")),
            Some(dir.join("libopenvino_c.so.2641"))
        );
        assert_eq!(resolve(&dir.join("missing")), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
