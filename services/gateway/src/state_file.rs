//! Registrations that survive restarts.
//!
//! With `state_file` set, every change made through the admin API is
//! written to that file before it takes effect: a temporary file in the same
//! directory, fsync, rename over the old one, fsync of the directory, so a
//! crash leaves either the old or the new file, never a torn one. At start
//! the file is loaded; a file that cannot be read or parsed stops start-up
//! and is left untouched for a human to look at.
//!
//! Writing blocks on the disk, so the registry writes from a blocking
//! thread, one change at a time, in the order the changes take effect: the
//! file is the registry's [`Store`]. Depends on `backends` and `spec`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backends::Store;
use crate::spec::ServerSpec;

/// The file's format.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Contents {
    /// Format version, for future changes.
    version: u32,
    /// The API-registered servers, in registration order.
    servers: Vec<ServerSpec>,
}

const VERSION: u32 = 1;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Reading failed (permissions, I/O).
    #[error("state file {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The contents are not a valid state file.
    #[error("state file {path} is corrupt ({message}); fix or remove it, it was not modified")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Writing failed (the change was not applied).
    #[error("state file {path}: cannot write: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A state file location.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file at `path` (not touched until loaded or saved).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// The saved servers; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<ServerSpec>, StateFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateFileError::Read {
                    path: self.shown(),
                    source,
                })
            }
        };
        let corrupt = |message: String| StateFileError::Corrupt {
            path: self.shown(),
            message,
        };
        let contents: Contents = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if contents.version != VERSION {
            return Err(corrupt(format!("unsupported version {}", contents.version)));
        }
        for (i, spec) in contents.servers.iter().enumerate() {
            spec.validate()
                .map_err(|e| corrupt(format!("servers[{i}].{e}")))?;
        }
        Ok(contents.servers)
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// Where the next contents are written before they replace the file.
    pub(crate) fn temp_path(&self) -> PathBuf {
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        self.dir()
            .join(format!(".{file_name}.tmp-{}", std::process::id()))
    }

    /// Replaces the file's contents atomically. Blocks on the disk: call it
    /// off the runtime's threads.
    pub fn save(&self, servers: &[ServerSpec]) -> Result<(), StateFileError> {
        let write_err = |source: std::io::Error| StateFileError::Write {
            path: self.shown(),
            source,
        };
        let contents = Contents {
            version: VERSION,
            servers: servers.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&contents)
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        let dir = self.dir();
        let tmp = self.temp_path();
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself must reach the disk too.
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}

impl Store for StateFile {
    fn save(&self, specs: &[ServerSpec]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        StateFile::save(self, specs).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{Registry, RegistryError, Source};
    use observability::clock::SystemClock;
    use std::sync::Arc;

    fn spec(name: &str) -> ServerSpec {
        ServerSpec {
            name: name.into(),
            url: "http://127.0.0.1:5000".into(),
            weight: Some(2),
        }
    }

    #[test]
    fn round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("registry.json"));
        assert!(f.load().unwrap().is_empty());
        f.save(&[spec("a"), spec("b")]).unwrap();
        assert_eq!(f.load().unwrap(), vec![spec("a"), spec("b")]);
        f.save(&[]).unwrap();
        assert!(f.load().unwrap().is_empty());
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_files_are_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        for bad in [
            "{",
            "[]",
            r#"{"version":2,"servers":[]}"#,
            r#"{"version":1,"servers":[{"name":"a b","url":"http://x:1"}]}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = StateFile::new(&path).load().unwrap_err().to_string();
            assert!(e.contains("corrupt") && e.contains("registry.json"), "{e}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
    }

    /// A state file write that takes as long as the test wants: the
    /// temporary file is a FIFO, whose opening for writing waits for a
    /// reader. (A FIFO cannot be synced either, so the write then fails.)
    #[tokio::test]
    async fn state_file_writes_leave_the_runtime_free_and_apply_only_once_saved() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("registry.json"));
        let r = Arc::new(Registry::new(Arc::new(SystemClock)).with_store(Arc::new(file.clone())));
        r.register(
            &ServerSpec {
                name: "a".into(),
                url: "http://x:1".into(),
                weight: None,
            },
            Source::Api,
        )
        .await
        .unwrap();
        let saved = std::fs::read_to_string(file.path()).unwrap();
        let fifo = file.temp_path();
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());

        // The reader waits for word from this (single-threaded) runtime,
        // and gives up waiting after a while, so that a runtime blocked by
        // the write fails the test instead of hanging it.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let blocked = wait
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_err();
            let mut written = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::open(fifo).unwrap(), &mut written)
                .unwrap();
            (blocked, written)
        });
        let removal = tokio::spawn({
            let r = r.clone();
            async move { r.remove("a").await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !removal.is_finished(),
            "the write ran on the runtime's thread, which waited for the reader"
        );
        assert!(r.get("a").is_some(), "applied before it was saved");
        go.send(()).unwrap();
        let (blocked, written) = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        assert!(!blocked, "the runtime's thread was blocked by the write");
        assert!(!written.contains("\"a\""), "{written}");
        let e = removal.await.unwrap().unwrap_err();
        assert!(matches!(e, RegistryError::Persist(_)), "{e}");
        assert!(r.get("a").is_some(), "a failed save changed the registry");
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), saved);

        // Without the FIFO in the way, the same change goes through.
        assert!(r.remove("a").await.unwrap().is_some());
        assert!(!std::fs::read_to_string(file.path())
            .unwrap()
            .contains("\"a\""));
    }
}
