//! Run manifests: what a job's rows depend on, kept beside its log as
//! `<log>.manifest.json`, so that a rerun into the same log cannot mix settings.
//!
//! The log itself stays in the paper's TSV format. Its manifest holds the crate version, the
//! noise-stream version ([`NOISE_STREAM_VERSION`]) and named settings (model digest,
//! data set, sigma, n, alpha, seed, selection, ...), which the caller chooses. [`Manifest::attach`]
//! writes the manifest when a log starts and compares it when a log is resumed: identical
//! settings resume (a newer crate version may resume while the noise stream is unchanged);
//! any other difference is refused, listing the fields, and the log is left untouched.
//!
//! # Example
//! ```
//! use randomized_smoothing::Error;
//! use randomized_smoothing::workflow::manifest::Manifest;
//!
//! let dir = std::env::temp_dir().join(format!("doc-manifest-{}", std::process::id()));
//! let log = dir.join("certify.tsv");
//! let run = |sigma: f64| Manifest::new().set("command", "certify").set("sigma", sigma);
//! drop(run(0.25).attach(&log)?); // a new log: the manifest is written (and the lock released)
//! drop(run(0.25).attach(&log)?); // the same settings resume
//! let refused = run(0.5).attach(&log).unwrap_err();
//! assert!(matches!(&refused, Error::RunMismatch { differences, .. }
//!                  if differences == &["sigma: the log has 0.25, this run 0.5"]));
//! # std::fs::remove_dir_all(dir).ok();
//! # Ok::<(), Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::lock::RunLock;
use super::selection::{Selection, Shard};
use crate::digest::Hasher;
use crate::error::{Error, IoOperation, Result};
use crate::smoothing::NOISE_STREAM_VERSION;

/// Everything a job's rows depend on: the crate version, the noise-stream version and named
/// settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    crate_version: String,
    noise_stream: u32,
    settings: BTreeMap<String, String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self::new()
    }
}

impl Manifest {
    /// A manifest of this crate version and noise stream, with no settings yet.
    pub fn new() -> Self {
        Self {
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            noise_stream: NOISE_STREAM_VERSION,
            settings: BTreeMap::new(),
        }
    }

    /// Sets `key` to `value` (as its `Display` text, which is what is compared).
    pub fn set(mut self, key: &str, value: impl Display) -> Self {
        self.settings.insert(key.to_string(), value.to_string());
        self
    }

    /// The settings, by name.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// The examples the run selects, from its `skip`, `max` (a count or `all`) and `shard`
    /// (`k/N`) settings, which the program's manifests record; `None` for a manifest without
    /// them.
    ///
    /// # Errors
    /// [`Error::MalformedData`] if one of them does not parse.
    ///
    /// # Example
    /// ```
    /// use randomized_smoothing::workflow::jobs::{Selection, Shard};
    /// use randomized_smoothing::workflow::manifest::Manifest;
    ///
    /// let run = Manifest::new().set("skip", 20).set("max", "all").set("shard", "1/4");
    /// assert_eq!(run.selection()?, Some(Selection::new(20, None, Shard::new(1, 4)?)?));
    /// assert_eq!(Manifest::new().set("skip", 20).selection()?, None);
    /// # Ok::<(), randomized_smoothing::Error>(())
    /// ```
    pub fn selection(&self) -> Result<Option<Selection>> {
        let get = |key: &str| self.settings.get(key).map(String::as_str);
        let (Some(skip), Some(max), Some(shard)) = (get("skip"), get("max"), get("shard")) else {
            return Ok(None);
        };
        let bad = |key: &str, value: &str| Error::MalformedData {
            format: "run manifest",
            location: key.to_string(),
            reason: format!("{value:?} is not a valid {key}"),
        };
        let skip = skip.parse().map_err(|_| bad("skip", skip))?;
        let max = match max {
            "all" => None,
            m => Some(m.parse().map_err(|_| bad("max", m))?),
        };
        let shard = Shard::parse(shard).map_err(|_| bad("shard", shard))?;
        Selection::new(skip, max, shard)
            .map(Some)
            .map_err(|_| bad("skip", &skip.to_string()))
    }

    /// The noise-stream version the rows were drawn with.
    pub fn noise_stream(&self) -> u32 {
        self.noise_stream
    }

    /// The crate version that wrote the manifest.
    pub fn crate_version(&self) -> &str {
        &self.crate_version
    }

    /// Where the manifest of `log` lives: `<log>.manifest.json`.
    pub fn path_of(log: &Path) -> PathBuf {
        let mut name = log.as_os_str().to_owned();
        name.push(".manifest.json");
        PathBuf::from(name)
    }

    /// The SHA-256 of the manifest's content (each field length-prefixed, settings in name
    /// order), which its JSON records so that an edited or damaged manifest is noticed.
    fn digest(&self) -> String {
        let mut h = Hasher::default();
        h.field(self.crate_version.as_bytes());
        h.field(&self.noise_stream.to_le_bytes());
        for (key, value) in &self.settings {
            h.field(key.as_bytes());
            h.field(value.as_bytes());
        }
        h.hex()
    }

    /// The manifest as JSON, with the SHA-256 of its content.
    pub fn to_json(&self) -> String {
        let value = json!({
            "crate_version": self.crate_version,
            "noise_stream": self.noise_stream,
            "settings": self.settings,
            "sha256": self.digest(),
        });
        serde_json::to_string_pretty(&value).expect("strings and numbers serialize") + "\n"
    }

    /// Reads a manifest written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    /// [`Error::MalformedData`] for anything else; [`Error::CorruptedFile`] if the content no
    /// longer matches the SHA-256 it records.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::parse(text, Path::new("(manifest text)"))
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let malformed = |reason: String| Error::MalformedData {
            format: "run manifest",
            location: "JSON".into(),
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let crate_version = value["crate_version"]
            .as_str()
            .ok_or_else(|| malformed("no crate_version string".into()))?
            .to_string();
        let noise_stream = value["noise_stream"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| malformed("no noise_stream number".into()))?;
        let settings = match &value["settings"] {
            Value::Object(map) => strings(map)
                .ok_or_else(|| malformed("settings must map names to strings".into()))?,
            _ => return Err(malformed("no settings object".into())),
        };
        let recorded = value["sha256"]
            .as_str()
            .ok_or_else(|| malformed("no sha256 string".into()))?;
        let manifest = Self {
            crate_version,
            noise_stream,
            settings,
        };
        let actual = manifest.digest();
        if actual != recorded {
            return Err(Error::CorruptedFile {
                path: path.to_path_buf(),
                part: "settings".into(),
                expected: recorded.to_string(),
                actual,
            });
        }
        Ok(manifest)
    }

    /// What differs between the manifest of an existing log (`earlier`) and this run's, one
    /// line per field: the noise stream and every setting present in either. The crate
    /// version alone does not count: a newer crate with the same noise stream draws the same
    /// samples.
    pub fn differences(&self, earlier: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        if self.noise_stream != earlier.noise_stream {
            out.push(format!(
                "noise_stream: the log has {} (crate {}), this run {} (crate {})",
                earlier.noise_stream, earlier.crate_version, self.noise_stream, self.crate_version
            ));
        }
        let keys: std::collections::BTreeSet<&String> = self
            .settings
            .keys()
            .chain(earlier.settings.keys())
            .collect();
        for key in keys {
            let (was, now) = (earlier.settings.get(key), self.settings.get(key));
            if was != now {
                let show = |v: Option<&String>| v.map_or("nothing".to_string(), |v| v.clone());
                out.push(format!(
                    "{key}: the log has {}, this run {}",
                    show(was),
                    show(now)
                ));
            }
        }
        out
    }

    /// The differences of [`differences`](Self::differences) in the settings `keys` only:
    /// how a run that reads another run's log (an attack reading a certification log) checks
    /// that both are of the same model, data and noise.
    pub fn differences_in(&self, earlier: &Manifest, keys: &[&str]) -> Vec<String> {
        let pick = |m: &Manifest| Manifest {
            settings: m
                .settings
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..self.clone()
        };
        pick(self).differences(&pick(earlier))
    }

    /// The manifest beside `log`, if it has one.
    ///
    /// # Errors
    /// [`Error::MalformedData`] for an unreadable manifest, [`Error::CorruptedFile`] for an
    /// edited or damaged one; [`Error::Io`] for the file.
    pub fn of_log(log: &Path) -> Result<Option<Manifest>> {
        let path = Self::path_of(log);
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(IoOperation::Read, &path, e)),
        }
    }

    /// Binds this run to `log`: takes the log's [`RunLock`] (returned, to be held for the
    /// run), then writes the manifest beside a log that does not exist yet (or holds at most
    /// its header), or checks it against the manifest of a log being resumed.
    ///
    /// # Errors
    /// [`Error::Locked`] when another run holds the log; [`Error::RunMismatch`] when the
    /// settings differ, or when the log has rows but no
    /// manifest (written by an older version or by hand), leaving both files untouched;
    /// [`Error::MalformedData`] for an unreadable manifest; [`Error::Io`] for the files.
    pub fn attach(&self, log: &Path) -> Result<RunLock> {
        let lock = RunLock::acquire(log)?;
        let mismatch = |differences| Error::RunMismatch {
            log: log.to_path_buf(),
            differences,
        };
        match Self::of_log(log)? {
            Some(earlier) => {
                let differences = self.differences(&earlier);
                if differences.is_empty() {
                    Ok(lock)
                } else {
                    Err(mismatch(differences))
                }
            }
            None if has_rows(log)? => Err(mismatch(vec![
                "the log has rows but no manifest (written by an older version or another \
                 program): its settings cannot be checked"
                    .into(),
            ])),
            None => self.write_beside(log).map(|()| lock),
        }
    }

    /// Writes the manifest of `log`, replacing any: whole under a temporary name of this
    /// process, then renamed, so that a reader never sees a partial manifest (and two
    /// writers never share a temporary file).
    ///
    /// # Errors
    /// [`Error::Io`] for the files.
    pub fn write_beside(&self, log: &Path) -> Result<()> {
        let path = Self::path_of(log);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(IoOperation::CreateFolder, dir, e))?;
        }
        let partial = path.with_extension(format!("json.{}.partial", std::process::id()));
        fs::write(&partial, self.to_json())
            .map_err(|e| Error::io(IoOperation::Write, &partial, e))?;
        fs::rename(&partial, &path).map_err(|e| Error::io(IoOperation::Rename, &path, e))
    }
}

/// The SHA-256 of a file's bytes, as 64 hexadecimal digits: what a manifest records of a
/// model or data file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read.
pub fn file_digest(path: &Path) -> Result<String> {
    crate::digest::of_file(path)
}

/// One SHA-256 over several files' names and contents: what a manifest records of a data
/// set read from files (MNIST's two IDX files, CIFAR-10's batches).
///
/// # Errors
/// [`Error::Io`] if a file cannot be read.
pub fn files_digest(paths: &[PathBuf]) -> Result<String> {
    let mut h = Hasher::default();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        h.field(name.unwrap_or_default().as_bytes());
        h.field(crate::digest::of_file(path)?.as_bytes());
    }
    Ok(h.hex())
}

/// One SHA-256 over the listing of a folder tree: every file's path relative to `dir`, in
/// order, and its length. It is what a manifest records of an image folder (ImageNet's
/// 50,000 validation images would take minutes to hash): it notices files added, removed,
/// renamed or resized, not bytes changed in place.
///
/// # Errors
/// [`Error::Io`] if the tree cannot be listed.
pub fn listing_digest(dir: &Path) -> Result<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, u64)>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(|e| Error::io(IoOperation::ListFolder, dir, e))? {
            let entry = entry.map_err(|e| Error::io(IoOperation::ListFolder, dir, e))?;
            let path = entry.path();
            let meta =
                fs::metadata(&path).map_err(|e| Error::io(IoOperation::Inspect, &path, e))?;
            if meta.is_dir() {
                walk(&path, root, out)?;
            } else {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                out.push((relative.to_string_lossy().into_owned(), meta.len()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut h = Hasher::default();
    for (name, len) in files {
        h.field(name.as_bytes());
        h.field(&len.to_le_bytes());
    }
    Ok(h.hex())
}

/// Whether `log` holds anything beyond a header line.
fn has_rows(log: &Path) -> Result<bool> {
    match fs::read_to_string(log) {
        Ok(text) => Ok(text.lines().nth(1).is_some_and(|l| !l.is_empty())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(IoOperation::Read, log, e)),
    }
}

fn strings(map: &Map<String, Value>) -> Option<BTreeMap<String, String>> {
    map.iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let m = Manifest::new().set("sigma", 0.25).set("model", "abc");
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn a_newer_crate_with_the_same_stream_resumes_another_stream_does_not() {
        let now = Manifest::new().set("n", 100);
        let mut older = now.clone();
        older.crate_version = "0.0.1".into();
        assert!(now.differences(&older).is_empty());
        older.noise_stream = NOISE_STREAM_VERSION - 1;
        let d = now.differences(&older);
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("noise_stream:"), "{d:?}");
    }

    #[test]
    fn missing_and_extra_settings_are_differences() {
        let a = Manifest::new().set("n", 100).set("two_sided", false);
        let b = Manifest::new().set("n", 100).set("seed", 1);
        assert_eq!(
            a.differences(&b),
            vec![
                "seed: the log has 1, this run nothing".to_string(),
                "two_sided: the log has nothing, this run false".to_string(),
            ]
        );
    }

    #[test]
    fn an_edited_manifest_is_refused() {
        let json = Manifest::new().set("sigma", 0.25).to_json();
        let edited = json.replace("0.25", "0.50");
        assert_ne!(json, edited);
        assert!(matches!(
            Manifest::from_json(&edited),
            Err(Error::CorruptedFile { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for text in [
            "",
            "{",
            "[]",
            "{\"crate_version\": 1}",
            "{\"crate_version\": \"1\", \"noise_stream\": 3, \"settings\": {\"a\": 1}}",
            "{\"crate_version\": \"1\", \"noise_stream\": 3, \"settings\": {}}",
        ] {
            assert!(
                matches!(Manifest::from_json(text), Err(Error::MalformedData { .. })),
                "{text}"
            );
        }
    }
}
