//! CubeCL's kernel caches, kept between runs in one folder.
//!
//! A CubeCL backend (`cuda`, `vulkan`) compiles each kernel the first time a process launches
//! it and, for the operations that have several kernels (matrix products, convolutions,
//! reductions), times them on the first input of each shape class to keep the fastest. On an
//! H100 this made the first image of a run take 60 s (docs/benchmarks.md). CubeCL can keep
//! both results on disk: the autotune results by default under the nearest `target/` folder
//! above the working folder (or the user's cache folder), the compiled kernels (PTX on CUDA,
//! SPIR-V on Vulkan) only when its configuration names a place. [`KernelCache`] names one
//! folder for both, before the first CubeCL device starts.

use std::path::{Path, PathBuf};

use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

use crate::error::{Error, IoOperation, Result};

/// The files CubeCL reads its settings from, as it looks for them: in the working folder,
/// then in each folder above, the first of these that exists (whole files, then the
/// `[cubecl]` section of Burn's).
const CONFIG_FILES: [&str; 2] = ["cubecl.toml", "CubeCL.toml"];
const SECTION_FILES: [&str; 2] = ["burn.toml", "Burn.toml"];

/// One folder for CubeCL's autotune results and compiled kernels, shared by every run that
/// names it.
///
/// Inside it CubeCL writes `autotune/<version>/<device>/<operation>.json.log` and
/// `cuda/<version>/ptx.json.log` or `vulkan/<version>/spirv.json.log`: append-only logs, safe
/// to share between concurrent runs (CubeCL locks them) and to delete.
///
/// The other settings (the autotune level, logging) stay CubeCL's: its configuration file
/// (`cubecl.toml`, or the `[cubecl]` section of `burn.toml`, in the working folder or above)
/// and environment variables (`CUBECL_AUTOTUNE_LEVEL`, `CUBECL_DEBUG_LOG`, ...), read here as
/// CubeCL reads them, except that a malformed file is an error rather than CubeCL's panic.
///
/// # Example
/// ```
/// use randomized_smoothing::runtime::KernelCache;
///
/// let cache = KernelCache::new(std::env::temp_dir().join("kernels"));
/// assert!(cache.dir().ends_with("kernels"));
/// // Where a program keeps it unless told otherwise (None without a home folder).
/// if let Some(default) = KernelCache::user_default() {
///     assert!(default.dir().ends_with("randomized-smoothing/kernels"));
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    dir: PathBuf,
}

impl KernelCache {
    /// The caches in `dir`, made when [`install`](Self::install)ed.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `randomized-smoothing/kernels` in the user's cache folder: `$XDG_CACHE_HOME`, else
    /// `$HOME/.cache`; `None` when neither is set.
    pub fn user_default() -> Option<Self> {
        let nonempty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let root = nonempty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| nonempty("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(Self::new(root.join("randomized-smoothing").join("kernels")))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// CubeCL's settings for this process: those of its configuration file found from `cwd`
    /// upward and of its environment variables, with both caches in this folder.
    pub(crate) fn settings(&self, cwd: &Path) -> Result<CubeClRuntimeConfig> {
        let mut settings = user_settings(cwd)?.override_from_env();
        settings.autotune.cache = CacheConfig::File(self.dir.clone());
        settings.compilation.cache = Some(CacheConfig::File(self.dir.clone()));
        Ok(settings)
    }

    /// Makes the folder, checks that it can be written, and hands CubeCL its settings
    /// ([`settings`](Self::settings) from the working folder). Call it once, when the
    /// program starts, before any CubeCL device is used: CubeCL reads its settings once per
    /// process.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if CubeCL has already read its settings (the caches would
    /// silently stay where they were); [`Error::MalformedData`] for a configuration file
    /// that is not valid TOML or has a setting of the wrong type; [`Error::Io`] if the folder
    /// cannot be made or written.
    pub fn install(&self) -> Result<()> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(IoOperation::Inspect, ".", e))?;
        let settings = self.settings(&cwd)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(IoOperation::CreateFolder, &self.dir, e))?;
        // CubeCL panics on a cache it cannot write; this is the same failure, typed, and now.
        let probe = self.dir.join(format!(".write-test-{}", std::process::id()));
        std::fs::write(&probe, b"").map_err(|e| Error::io(IoOperation::Write, &probe, e))?;
        std::fs::remove_file(&probe).map_err(|e| Error::io(IoOperation::Remove, &probe, e))?;
        let mut slot = CubeClRuntimeConfig::storage().lock();
        if slot.is_some() {
            return Err(Error::InvalidParameter {
                name: "kernel cache",
                reason: "CubeCL has already read its settings: install the kernel cache before \
                         the first CubeCL device is used"
                    .into(),
            });
        }
        *slot = Some(std::sync::Arc::new(settings));
        Ok(())
    }
}

/// Checks CubeCL's configuration file, found from the working folder upward as CubeCL finds
/// it, without changing any setting: for a program that leaves the caches where CubeCL puts
/// them but would rather report a malformed file than let CubeCL panic on it at the first
/// kernel. Returns the file, if there is one.
///
/// # Errors
/// As [`KernelCache::install`], for the file.
pub fn check_cubecl_settings() -> Result<Option<PathBuf>> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(IoOperation::Inspect, ".", e))?;
    Ok(find_settings(&cwd)?.map(|(path, _)| path))
}

/// The settings of CubeCL's configuration file found from `cwd` upward, or its defaults.
fn user_settings(cwd: &Path) -> Result<CubeClRuntimeConfig> {
    Ok(find_settings(cwd)?.map(|(_, s)| s).unwrap_or_default())
}

/// The first configuration file CubeCL would read from `cwd` upward, and its settings.
fn find_settings(cwd: &Path) -> Result<Option<(PathBuf, CubeClRuntimeConfig)>> {
    for dir in cwd.ancestors() {
        for name in CONFIG_FILES {
            let path = dir.join(name);
            if let Some(text) = read_if_present(&path)? {
                return parse(&path, toml::from_str(&text)).map(|s| Some((path, s)));
            }
        }
        for name in SECTION_FILES {
            let path = dir.join(name);
            let Some(text) = read_if_present(&path)? else {
                continue;
            };
            let mut table: toml::Table = parse(&path, toml::from_str(&text))?;
            // CubeCL goes on upward when Burn's file has no `[cubecl]` section.
            if let Some(section) = table.remove("cubecl") {
                return parse(&path, section.try_into()).map(|s| Some((path, s)));
            }
        }
    }
    Ok(None)
}

fn read_if_present(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(IoOperation::Read, path, e)),
    }
}

fn parse<T>(path: &Path, parsed: std::result::Result<T, toml::de::Error>) -> Result<T> {
    parsed.map_err(|e| Error::MalformedData {
        format: "CubeCL settings (TOML)",
        location: path.display().to_string(),
        reason: e.message().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cubecl_runtime::config::autotune::AutotuneLevel;

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rs-kernel-cache-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        dir
    }

    #[test]
    fn both_caches_go_to_the_folder_and_the_rest_stays_the_users() {
        let dir = folder("settings");
        let cache = KernelCache::new(dir.join("kernels"));
        // No file: CubeCL's defaults, but the caches here (the compiled-kernel cache is off
        // by default).
        let s = cache.settings(&dir.join("a/b")).unwrap();
        assert!(matches!(&s.autotune.cache, CacheConfig::File(p) if p == &dir.join("kernels")));
        assert!(
            matches!(&s.compilation.cache, Some(CacheConfig::File(p)) if p == &dir.join("kernels"))
        );
        // A file two folders up is found, its level kept, its cache place overridden.
        std::fs::write(
            dir.join("cubecl.toml"),
            "[autotune]\nlevel = \"minimal\"\ncache = \"local\"\n",
        )
        .unwrap();
        let s = cache.settings(&dir.join("a/b")).unwrap();
        if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_none() {
            assert!(matches!(s.autotune.level, AutotuneLevel::Minimal));
        }
        assert!(matches!(&s.autotune.cache, CacheConfig::File(p) if p == &dir.join("kernels")));
        // A nearer burn.toml without a [cubecl] section is passed over, as CubeCL does; one
        // with it wins.
        std::fs::write(dir.join("a/burn.toml"), "[other]\nx = 1\n").unwrap();
        assert_eq!(
            find_settings(&dir.join("a/b")).unwrap().unwrap().0,
            dir.join("cubecl.toml")
        );
        std::fs::write(
            dir.join("a/burn.toml"),
            "[cubecl.autotune]\nlevel = \"full\"\n",
        )
        .unwrap();
        let (path, s) = find_settings(&dir.join("a/b")).unwrap().unwrap();
        assert_eq!(path, dir.join("a/burn.toml"));
        assert!(matches!(s.autotune.level, AutotuneLevel::Full));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn installs_once_before_cubecl_reads_its_settings() {
        let dir = folder("install");
        // A folder that cannot be made (below a file): an I/O error, and nothing installed.
        std::fs::write(dir.join("file"), b"").unwrap();
        let blocked = KernelCache::new(dir.join("file/kernels"));
        assert!(matches!(blocked.install(), Err(Error::Io { .. })));
        let cache = KernelCache::new(dir.join("kernels"));
        cache.install().unwrap();
        assert!(dir.join("kernels").is_dir());
        let read = CubeClRuntimeConfig::get();
        assert!(matches!(&read.autotune.cache, CacheConfig::File(p) if p == cache.dir()));
        // Once CubeCL has its settings, a second install is refused rather than ignored.
        assert!(matches!(
            cache.install(),
            Err(Error::InvalidParameter {
                name: "kernel cache",
                ..
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_settings_are_an_error_not_a_panic() {
        let dir = folder("malformed");
        let cache = KernelCache::new(dir.join("kernels"));
        for (file, text) in [
            ("cubecl.toml", "[autotune\nlevel = 1"),
            ("cubecl.toml", "[autotune]\nlevel = \"fastest\"\n"),
            ("burn.toml", "[cubecl]\nautotune = 3\n"),
        ] {
            let _ = std::fs::remove_file(dir.join("cubecl.toml"));
            std::fs::write(dir.join(file), text).unwrap();
            match cache.settings(&dir.join("a/b")) {
                Err(Error::MalformedData { location, .. }) => {
                    assert_eq!(location, dir.join(file).display().to_string())
                }
                other => panic!("{file}: {text:?} gave {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
