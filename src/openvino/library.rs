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
///
/// The file found is checked before it is handed to the runtime: a shared
/// object that lacks the C API's functions (the C++ `libopenvino.so` beside
/// the right one, or any other library) is refused with
/// [`OpenVinoError::NotOpenVinoC`], which names the file to use instead.
pub fn load(configured: Option<&Path>) -> Result<PathBuf, OpenVinoError> {
    if let Some(p) = LOADED.get() {
        return Ok(p.clone());
    }
    let mut searched = Vec::new();
    let path = find(configured, &mut searched).ok_or_else(|| OpenVinoError::LibraryNotFound {
        searched: searched.clone(),
    })?;
    check_c_api(&path)?;
    openvino_sys::library::load_from(&path).map_err(|message| OpenVinoError::LibraryLoad {
        path: path.clone(),
        message,
    })?;
    Ok(LOADED.get_or_init(|| path).clone())
}

/// Functions of the C API this crate calls first; a library without them is
/// not `libopenvino_c` (the binding would panic on the first call).
const C_API: [&str; 4] = [
    "ov_get_openvino_version",
    "ov_core_create",
    "ov_core_read_model",
    "ov_core_compile_model",
];

/// Opens `path` and checks that it exports the C API, without handing it to
/// the binding (which keeps the first library it is given for good).
fn check_c_api(path: &Path) -> Result<(), OpenVinoError> {
    // SAFETY: opening a shared library runs its initialisers. The file is
    // the one the user configured or the setup installed, and it is about to
    // be loaded for inference anyway; nothing from it is called here but the
    // symbol lookups, which only read its export table.
    let lib =
        unsafe { libloading::Library::new(path) }.map_err(|e| OpenVinoError::LibraryLoad {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    for name in C_API {
        // SAFETY: the symbol is looked up, never called, and the pointer type
        // is only a placeholder (it does not outlive `lib`).
        let found = unsafe { lib.get::<unsafe extern "C" fn()>(name.as_bytes()) }.is_ok();
        if !found {
            return Err(OpenVinoError::NotOpenVinoC {
                path: path.to_path_buf(),
                missing: name,
                instead: path.parent().and_then(resolve_folder),
            });
        }
    }
    Ok(())
}

/// Where the library would be loaded from, without loading it. `searched`
/// receives each place looked at, for the error message. An empty
/// environment variable is ignored (the search goes on); a set one that
/// holds no library ends the search, since the user asked for that place.
pub fn find(configured: Option<&Path>, searched: &mut Vec<String>) -> Option<PathBuf> {
    if let Some(p) = configured {
        searched.push(format!("config `library`: {}", p.display()));
        return resolve(p);
    }
    match std::env::var_os(LIBRARY_ENV) {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            searched.push(format!("{LIBRARY_ENV}={}", p.display()));
            return resolve(&p);
        }
        Some(_) => log::warn!("{LIBRARY_ENV} is set but empty; ignoring it"),
        None => {}
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
    resolve_folder(p)
}

/// The C library in a folder: the unversioned name if present, otherwise
/// the newest version by its numeric suffix (`.so.2641` after `.so.2541`,
/// and after `.so.999`).
fn resolve_folder(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rank = library_rank(&name)?;
            Some((rank, e.path()))
        })
        .filter(|(_, p)| p.is_file())
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, p)| p)
}

/// How a file name ranks as the C library: `None` if it is not one; the
/// unversioned name above every version; versions compared as numbers, part
/// by part (`libopenvino_c.so.2026.4.1`, `libopenvino_c.so.2641`).
fn library_rank(name: &str) -> Option<(bool, Vec<u64>)> {
    if matches!(
        name,
        "libopenvino_c.so" | "libopenvino_c.dylib" | "openvino_c.dll"
    ) {
        return Some((true, Vec::new()));
    }
    let version = name.strip_prefix("libopenvino_c.so.")?;
    let parts = version
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<Vec<_>>>()?;
    Some((false, parts))
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

    #[test]
    fn the_newest_version_wins_by_number_not_by_text() {
        let dir = std::env::temp_dir().join(format!("accelpool-libv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for v in ["2541", "2641", "999", "2641.bak"] {
            std::fs::write(dir.join(format!("libopenvino_c.so.{v}")), b"").unwrap();
        }
        assert_eq!(resolve(&dir), Some(dir.join("libopenvino_c.so.2641")));
        std::fs::write(dir.join("libopenvino_c.so"), b"").unwrap();
        assert_eq!(resolve(&dir), Some(dir.join("libopenvino_c.so")));
        std::fs::remove_dir_all(dir).unwrap();
        assert_eq!(library_rank("libopenvino.so.2641"), None);
        assert!(library_rank("libopenvino_c.so.10") > library_rank("libopenvino_c.so.9"));
    }
}
