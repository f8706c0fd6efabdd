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
//! # Only absolute paths
//!
//! Native code is loaded only from where the user put it. A relative or empty
//! value anywhere in that list (the config's `library`, the variables above,
//! `HOME`, a path from the crate's finder) is **ignored with a warning naming
//! it**, and the search goes on; the error, if nothing is found, lists it as
//! ignored. A relative value would be resolved against the current directory,
//! which may be writable by others (the XDG specification likewise says
//! relative values are to be ignored). With `HOME` unset and no absolute
//! `ACCELPOOL_HOME` or `XDG_DATA_HOME`, step 3 is skipped.
//!
//! # What is loaded
//!
//! The PyPI wheel ships only versioned names (`libopenvino_c.so.2641`): a
//! folder resolves to `libopenvino_c.so` if present, otherwise the newest
//! `libopenvino_c.so.*` by its numeric suffix. Before the file is handed to
//! the runtime binding it is checked: not writable by other users (see
//! [`check_not_world_writable`]) unless allowed, and exporting the C API;
//! after loading, the runtime's version must be at least [`MIN_VERSION`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::OpenVinoError;

/// The environment variable naming the library file or its folder.
pub const LIBRARY_ENV: &str = "ACCELPOOL_OPENVINO_LIB";

/// The oldest OpenVINO runtime this crate supports (year, release): the
/// first with the C API the `openvino` binding 0.11 calls.
pub const MIN_VERSION: (u32, u32) = (2025, 1);

/// The library loaded, and the runtime's version.
static LOADED: OnceLock<(PathBuf, String)> = OnceLock::new();

/// The version of the loaded runtime (its build number, such as
/// `2026.4.1-20434-...`), once [`load`] has succeeded.
pub fn runtime_version() -> Option<&'static str> {
    LOADED.get().map(|(_, v)| v.as_str())
}

/// Loads the OpenVINO C library once per process and returns its path.
/// Later calls return the first library's path whatever they are given:
/// one process holds one OpenVINO runtime.
///
/// The file found is checked before it is handed to the runtime: a shared
/// object that lacks the C API's functions (the C++ `libopenvino.so` beside
/// the right one, or any other library) is refused with
/// [`OpenVinoError::NotOpenVinoC`], which names the file to use instead.
///
/// `allow_insecure` skips the check that no other user may write the file
/// or its folders (for development only: see [`check_not_world_writable`]).
pub fn load(configured: Option<&Path>, allow_insecure: bool) -> Result<PathBuf, OpenVinoError> {
    if let Some((p, _)) = LOADED.get() {
        return Ok(p.clone());
    }
    let mut searched = Vec::new();
    let path = find(configured, &mut searched).ok_or_else(|| OpenVinoError::LibraryNotFound {
        searched: searched.clone(),
    })?;
    if !allow_insecure {
        check_not_world_writable(&path, "library")?;
    }
    check_c_api(&path)?;
    openvino_sys::library::load_from(&path).map_err(|message| OpenVinoError::LibraryLoad {
        path: path.clone(),
        message,
    })?;
    let version = openvino::version().build_number;
    if !version_at_least(&version, MIN_VERSION) {
        return Err(OpenVinoError::LibraryTooOld {
            path,
            version,
            minimum: format!("{}.{}", MIN_VERSION.0, MIN_VERSION.1),
        });
    }
    tracing::info!("loaded OpenVINO {version} from {}", path.display());
    Ok(LOADED.get_or_init(|| (path, version)).0.clone())
}

/// True if a build number (`2026.4.1-20434-...`) is at least `min`.
fn version_at_least(build: &str, min: (u32, u32)) -> bool {
    let mut parts = build
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(year), Some(release)) => (year, release) >= min,
        _ => false,
    }
}

/// Refuses a file that other users may change, like OpenSSH's
/// `StrictModes`: the file must not be world-writable, and no folder above
/// it may be world-writable unless it has the sticky bit (as `/tmp` does,
/// where others may add files but not replace yours). `what` names the
/// file in the error (`library`, `model`). Turned off by the backend's
/// `allow_insecure_paths` (development only).
pub fn check_not_world_writable(path: &Path, what: &'static str) -> Result<(), OpenVinoError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        const WORLD_WRITABLE: u32 = 0o002;
        const STICKY: u32 = 0o1000;
        let insecure = |p: &Path, reason: &str| OpenVinoError::InsecurePath {
            what,
            path: path.to_path_buf(),
            reason: format!("{} {reason}", p.display()),
        };
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Ok(meta) = std::fs::metadata(&file) {
            if meta.permissions().mode() & WORLD_WRITABLE != 0 {
                return Err(insecure(&file, "is writable by every user"));
            }
        }
        for dir in file.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & WORLD_WRITABLE != 0 && mode & STICKY == 0 {
                return Err(insecure(
                    dir,
                    "is a folder every user may write to (and it has no sticky bit)",
                ));
            }
        }
    }
    let _ = (path, what);
    Ok(())
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
#[allow(unsafe_code)] // the crate's one `unsafe`: see docs/ARCHITECTURE.md
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
    if let Some(p) =
        configured.and_then(|p| absolute("the backend's `library`", p.as_os_str(), searched))
    {
        searched.push(format!("config `library`: {}", p.display()));
        return resolve(&p);
    }
    if let Some(v) = std::env::var_os(LIBRARY_ENV) {
        if let Some(p) = absolute(LIBRARY_ENV, &v, searched) {
            searched.push(format!("{LIBRARY_ENV}={}", p.display()));
            return resolve(&p);
        }
    }
    match setup_home_noting(searched) {
        Some(home) => {
            searched.push(format!(
                "{}/venv/lib/python3*/site-packages/openvino/libs",
                home.display()
            ));
            if let Some(found) = wheel_libs(&home).and_then(|d| resolve(&d)) {
                return Some(found);
            }
        }
        None => searched.push(
            "the setup install (skipped: no absolute ACCELPOOL_HOME, XDG_DATA_HOME or HOME)".into(),
        ),
    }
    searched
        .push("the openvino crate's finder (OPENVINO_INSTALL_DIR, system library paths)".into());
    openvino_sys::library::find().filter(|p| p.is_absolute() && p.is_file())
}

/// `value` as a path if it is absolute; otherwise `None`, with a warning
/// naming `what` and the value, and a note in `searched`.
fn absolute(what: &str, value: &std::ffi::OsStr, searched: &mut Vec<String>) -> Option<PathBuf> {
    let p = Path::new(value);
    if p.is_absolute() {
        return Some(p.to_path_buf());
    }
    let shown = if value.is_empty() {
        "an empty value".to_owned()
    } else {
        format!("`{}`, a relative path", p.display())
    };
    tracing::warn!("{what} is {shown}; ignoring it (only absolute paths are searched)");
    searched.push(format!(
        "{what}: {shown} (ignored: only absolute paths are searched)"
    ));
    None
}

/// The folder `scripts/setup.sh` installs into: `$ACCELPOOL_HOME`, else
/// `$XDG_DATA_HOME/accelpool`, else `$HOME/.local/share/accelpool`, each
/// taken only if absolute (a relative or empty one is ignored with a
/// warning). `None` when none is set: the current directory is never used.
pub fn setup_home() -> Option<PathBuf> {
    setup_home_noting(&mut Vec::new())
}

fn setup_home_noting(searched: &mut Vec<String>) -> Option<PathBuf> {
    for (var, suffix) in [
        ("ACCELPOOL_HOME", ""),
        ("XDG_DATA_HOME", "accelpool"),
        ("HOME", ".local/share/accelpool"),
    ] {
        if let Some(v) = std::env::var_os(var) {
            if let Some(p) = absolute(var, &v, searched) {
                return Some(p.join(suffix));
            }
        }
    }
    None
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
