//! The embedded key store: a folder with one PKCS#8 PEM per key (mode 0600) and `manifest.json`.
//!
//! Every file is written to a temporary name, fsynced, renamed over its final name, and the folder
//! fsynced: the rename of `manifest.json` is the commit point of a key-set change. Key files are
//! written before the manifest that names them, so a crash leaves at worst an unreferenced file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::store::{KeyStore, KeyStoreError, Manifest, StoredKey};

const MANIFEST: &str = "manifest.json";

/// A key store in a local folder. Not shared between machines: replicas use the SQL store.
#[derive(Clone, Debug)]
pub struct FileKeyStore {
    dir: Arc<PathBuf>,
    /// Test hook: fail a commit after this many files were written (crash simulation).
    fail_after_writes: Option<usize>,
}

impl FileKeyStore {
    /// Opens (creating if needed, mode 0700 whatever the umask) the folder and checks that it
    /// is writable. An existing folder open to group or others is tightened to 0700.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileKeyStore, KeyStoreError> {
        let dir = dir.into();
        let unwritable = |reason: String| KeyStoreError::Unwritable {
            path: dir.display().to_string(),
            reason,
        };
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
        {
            return Err(unwritable(e.to_string()));
        }
        let meta = fs::metadata(&dir).map_err(|e| unwritable(e.to_string()))?;
        if !meta.is_dir() {
            return Err(unwritable("not a directory".into()));
        }
        // `mode` is filtered by the umask and applies only to a folder created now.
        if meta.permissions().mode() & 0o777 != 0o700 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| unwritable(format!("cannot make it private (0700): {e}")))?;
        }
        let probe = dir.join(format!(".probe-{}", std::process::id()));
        File::create(&probe).map_err(|e| unwritable(e.to_string()))?;
        let _ = fs::remove_file(&probe);
        Ok(FileKeyStore {
            dir: Arc::new(dir),
            fail_after_writes: None,
        })
    }

    /// Makes the next commits fail after `n` file writes, leaving what a crash there would leave.
    #[doc(hidden)]
    pub fn fail_after_writes(mut self, n: usize) -> FileKeyStore {
        self.fail_after_writes = Some(n);
        self
    }

    /// The folder this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key_path(&self, kid: &str) -> PathBuf {
        self.dir.join(format!("{kid}.pem"))
    }

    fn load_blocking(&self) -> Result<Option<(Manifest, Vec<StoredKey>)>, KeyStoreError> {
        let manifest_path = self.dir.join(MANIFEST);
        let origin = manifest_path.display().to_string();
        let text = match fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(KeyStoreError::Io {
                    origin,
                    reason: e.to_string(),
                });
            }
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| KeyStoreError::Corrupt {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != Manifest::FORMAT {
            return Err(KeyStoreError::Corrupt {
                origin,
                reason: format!("unknown manifest format {}", manifest.format),
            });
        }
        let mut keys = Vec::new();
        for meta in manifest.keys.iter().filter(|m| m.state.is_published()) {
            if !is_safe_kid(&meta.kid) {
                return Err(KeyStoreError::Corrupt {
                    origin,
                    reason: format!("invalid kid {:?}", meta.kid),
                });
            }
            let path = self.key_path(&meta.kid);
            let origin = path.display().to_string();
            let pem = fs::read_to_string(&path).map_err(|e| KeyStoreError::Io {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            keys.push(StoredKey {
                meta: meta.clone(),
                pem: Zeroizing::new(pem),
                origin,
            });
        }
        Ok(Some((manifest, keys)))
    }

    fn generation_blocking(&self) -> Result<u64, KeyStoreError> {
        let manifest_path = self.dir.join(MANIFEST);
        let origin = manifest_path.display().to_string();
        match fs::read(&manifest_path) {
            Ok(bytes) => {
                #[derive(serde::Deserialize)]
                struct Generation {
                    generation: u64,
                }
                serde_json::from_slice::<Generation>(&bytes)
                    .map(|g| g.generation)
                    .map_err(|e| KeyStoreError::Corrupt {
                        origin,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(KeyStoreError::Io {
                origin,
                reason: e.to_string(),
            }),
        }
    }

    fn commit_blocking(
        &self,
        manifest: &Manifest,
        new_keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError> {
        // An exclusive lock on `.lock` serialises writers across processes (the server and the
        // CLI); the generation check turns a lost update into a clean `Stale` error.
        let lock_path = self.dir.join(".lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| KeyStoreError::Io {
                origin: lock_path.display().to_string(),
                reason: e.to_string(),
            })?;
        lock.lock().map_err(|e| KeyStoreError::Io {
            origin: lock_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let stored = self.generation_blocking()?;
        let expected = manifest.generation.saturating_sub(1);
        if stored != expected {
            return Err(KeyStoreError::Stale { stored, expected });
        }
        let mut writes = 0usize;
        for (kid, pem) in new_keys {
            if !is_safe_kid(kid) {
                return Err(KeyStoreError::Corrupt {
                    origin: kid.clone(),
                    reason: "invalid kid".into(),
                });
            }
            self.check_fault(writes)?;
            write_atomic(&self.key_path(kid), pem.as_bytes())?;
            writes += 1;
        }
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| KeyStoreError::Io {
            origin: MANIFEST.into(),
            reason: e.to_string(),
        })?;
        self.check_fault(writes)?;
        write_atomic(&self.dir.join(MANIFEST), &json)?;
        // The private bytes of keys that can no longer sign or verify anything have no use left.
        for meta in manifest.keys.iter().filter(|m| !m.state.is_published()) {
            let _ = fs::remove_file(self.key_path(&meta.kid));
        }
        Ok(())
    }

    fn check_fault(&self, writes: usize) -> Result<(), KeyStoreError> {
        match self.fail_after_writes {
            Some(limit) if writes >= limit => Err(KeyStoreError::Io {
                origin: self.dir.display().to_string(),
                reason: "simulated crash (fault injection)".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// A `kid` is a base64url thumbprint; anything else must not become part of a file name.
fn is_safe_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 128
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the complete new one:
/// temporary file (0600) in the same folder, write, fsync, rename, fsync the folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let origin = path.display().to_string();
    let io = |e: std::io::Error| KeyStoreError::Io {
        origin: origin.clone(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` applies only when the file is created; make sure a leftover temp file is 0600 too.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[async_trait]
impl KeyStore for FileKeyStore {
    async fn load(&self) -> Result<Option<(Manifest, Vec<StoredKey>)>, KeyStoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.load_blocking())
            .await
            .map_err(|e| KeyStoreError::Io {
                origin: this_dir(&self.dir),
                reason: e.to_string(),
            })?
    }

    async fn generation(&self) -> Result<u64, KeyStoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.generation_blocking())
            .await
            .map_err(|e| KeyStoreError::Io {
                origin: this_dir(&self.dir),
                reason: e.to_string(),
            })?
    }

    async fn commit(
        &self,
        manifest: &Manifest,
        new_keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError> {
        let this = self.clone();
        let manifest = manifest.clone();
        let new_keys = new_keys.to_vec();
        tokio::task::spawn_blocking(move || this.commit_blocking(&manifest, &new_keys))
            .await
            .map_err(|e| KeyStoreError::Io {
                origin: this_dir(&self.dir),
                reason: e.to_string(),
            })?
    }

    fn describe(&self) -> String {
        format!("file key store at {}", self.dir.display())
    }
}

fn this_dir(dir: &Path) -> String {
    dir.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, KeyMeta, KeyState};

    fn meta(kid: &str) -> KeyMeta {
        KeyMeta {
            kid: kid.into(),
            alg: Alg::Es256,
            state: KeyState::Active,
            created_at: 1,
            activated_at: Some(1),
            retired_at: None,
            remove_after: None,
            removed_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn key_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path()).unwrap();
        let manifest = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta("abc")],
        };
        store
            .commit_blocking(&manifest, &[("abc".into(), Zeroizing::new("pem".into()))])
            .unwrap();
        let mode = fs::metadata(dir.path().join("abc.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (loaded, keys) = store.load_blocking().unwrap().unwrap();
        assert_eq!(loaded, manifest);
        assert_eq!(keys[0].pem.as_str(), "pem");
    }

    #[test]
    fn a_failed_commit_keeps_the_previous_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path()).unwrap();
        let first = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta("one")],
        };
        store
            .commit_blocking(&first, &[("one".into(), Zeroizing::new("1".into()))])
            .unwrap();
        let second = Manifest {
            format: Manifest::FORMAT,
            generation: 2,
            keys: vec![meta("one"), meta("two")],
        };
        let failing = store.clone().fail_after_writes(1);
        assert!(
            failing
                .commit_blocking(&second, &[("two".into(), Zeroizing::new("2".into()))])
                .is_err()
        );
        assert_eq!(store.load_blocking().unwrap().unwrap().0, first);
    }

    #[test]
    fn a_commit_on_a_stale_generation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path()).unwrap();
        let first = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta("one")],
        };
        store
            .commit_blocking(&first, &[("one".into(), Zeroizing::new("1".into()))])
            .unwrap();
        let stale = Manifest {
            generation: 1,
            ..first.clone()
        };
        assert!(matches!(
            store.commit_blocking(&stale, &[]),
            Err(KeyStoreError::Stale {
                stored: 1,
                expected: 0
            })
        ));
        assert_eq!(store.generation_blocking().unwrap(), 1);
    }

    #[test]
    fn path_like_kids_are_refused() {
        assert!(!is_safe_kid("../etc/passwd"));
        assert!(!is_safe_kid(""));
        assert!(is_safe_kid("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    }
}
