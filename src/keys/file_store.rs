//! The embedded key store: a folder with one PKCS#8 PEM per key (mode 0600) and `manifest.json`.
//!
//! Every file is written to a temporary name, fsynced, renamed over its final name, and the folder
//! fsynced: the rename of `manifest.json` is the commit point of a key-set change. Key files are
//! written before the manifest that names them, so a crash leaves at worst an unreferenced file
//! or a temporary one; [`KeyStore::remove_leftovers`] deletes those at the next start. The very
//! first commit writes an empty manifest before any key file, so key files without any manifest
//! never come from a crash: they mean the manifest was lost, and the store refuses to start a new
//! key set over them ([`KeyStoreError::Orphaned`]).

use std::collections::HashSet;
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
        let Some(manifest) = self.read_manifest()? else {
            self.refuse_orphaned_keys()?;
            return Ok(None);
        };
        let origin = self.dir.join(MANIFEST).display().to_string();
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
                source: e,
            })?;
            keys.push(StoredKey {
                meta: meta.clone(),
                pem: Zeroizing::new(pem),
                origin,
            });
        }
        Ok(Some((manifest, keys)))
    }

    /// The stored manifest, `None` if there is none.
    fn read_manifest(&self) -> Result<Option<Manifest>, KeyStoreError> {
        let manifest_path = self.dir.join(MANIFEST);
        let origin = manifest_path.display().to_string();
        let text = match fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(KeyStoreError::Io { origin, source: e });
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
        Ok(Some(manifest))
    }

    /// With no manifest, the folder must hold no private key: [`KeyStoreError::Orphaned`] names
    /// every `.pem` file it finds (any name, not only this store's: better to stop than to
    /// guess).
    fn refuse_orphaned_keys(&self) -> Result<(), KeyStoreError> {
        let mut keys: Vec<String> = self
            .file_names()?
            .into_iter()
            .filter(|name| name.ends_with(".pem"))
            .map(|name| self.dir.join(name).display().to_string())
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        keys.sort();
        Err(KeyStoreError::Orphaned {
            manifest: self.dir.join(MANIFEST).display().to_string(),
            keys,
        })
    }

    /// The names of the folder's entries (names that are not UTF-8 are none of this store's).
    fn file_names(&self) -> Result<Vec<String>, KeyStoreError> {
        let io = |e: std::io::Error| KeyStoreError::Io {
            origin: self.dir.display().to_string(),
            source: e,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(self.dir.as_path()).map_err(io)? {
            if let Ok(name) = entry.map_err(io)?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Deletes, under the commit lock (so no commit is half done meanwhile), the temporary files
    /// of interrupted writes and the key files the manifest does not publish: keys written
    /// before a crash kept their manifest from being committed, and keys the manifest marks
    /// removed or revoked whose deletion (the commit's last step) a crash cut short. Only names
    /// this store writes are touched; without a manifest nothing is.
    fn remove_leftovers_blocking(&self) -> Result<Vec<String>, KeyStoreError> {
        let _lock = self.lock()?;
        let Some(manifest) = self.read_manifest()? else {
            return Ok(Vec::new());
        };
        let published: HashSet<&str> = manifest
            .keys
            .iter()
            .filter(|m| m.state.is_published())
            .map(|m| m.kid.as_str())
            .collect();
        let mut removed = Vec::new();
        for name in self.file_names()? {
            let leftover = is_temp_file(&name)
                || key_file_kid(&name).is_some_and(|kid| !published.contains(kid));
            if !leftover {
                continue;
            }
            let path = self.dir.join(&name);
            fs::remove_file(&path).map_err(|e| KeyStoreError::Io {
                origin: path.display().to_string(),
                source: e,
            })?;
            removed.push(path.display().to_string());
        }
        if !removed.is_empty() {
            File::open(self.dir.as_path())
                .and_then(|dir| dir.sync_all())
                .map_err(|e| KeyStoreError::Io {
                    origin: self.dir.display().to_string(),
                    source: e,
                })?;
        }
        removed.sort();
        Ok(removed)
    }

    /// Takes the exclusive lock on `.lock` that serialises writers across processes (the server
    /// and the CLI); it is held until the returned file is dropped.
    fn lock(&self) -> Result<File, KeyStoreError> {
        let lock_path = self.dir.join(".lock");
        let io = |e: std::io::Error| KeyStoreError::Io {
            origin: lock_path.display().to_string(),
            source: e,
        };
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io)?;
        lock.lock().map_err(io)?;
        Ok(lock)
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
            Err(e) => Err(KeyStoreError::Io { origin, source: e }),
        }
    }

    fn commit_blocking(
        &self,
        manifest: &Manifest,
        new_keys: &[(String, Zeroizing<String>)],
    ) -> Result<(), KeyStoreError> {
        // The lock serialises writers across processes (the server and the CLI); the generation
        // check turns a lost update into a clean `Stale` error.
        let _lock = self.lock()?;
        let stored = self.generation_blocking()?;
        let expected = manifest.generation.saturating_sub(1);
        if stored != expected {
            return Err(KeyStoreError::Stale { stored, expected });
        }
        let mut writes = 0usize;
        let manifest_path = self.dir.join(MANIFEST);
        if stored == 0 && !manifest_path.exists() {
            // The first commit: never over keys whose manifest was lost, and an empty manifest
            // first, so that a crash before the real one leaves unnamed key files (removed at
            // the next start) rather than key files without a manifest (refused).
            self.refuse_orphaned_keys()?;
            let empty = Manifest {
                format: Manifest::FORMAT,
                generation: 0,
                keys: Vec::new(),
                changes: Vec::new(),
            };
            let json =
                serde_json::to_vec_pretty(&empty).map_err(|source| KeyStoreError::Encode {
                    origin: MANIFEST.into(),
                    source,
                })?;
            self.check_fault(writes)?;
            write_atomic(&manifest_path, &json)?;
            writes += 1;
        }
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
        let json = serde_json::to_vec_pretty(manifest).map_err(|source| KeyStoreError::Encode {
            origin: MANIFEST.into(),
            source,
        })?;
        self.check_fault(writes)?;
        write_atomic(&manifest_path, &json)?;
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
                source: std::io::Error::other("simulated crash (fault injection)"),
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

/// The kid of `name` if it is a key file this store writes: `<kid>.pem`, the kid an RFC 7638
/// thumbprint (base64url of a SHA-256, 43 characters), so an operator's `backup.pem` is not one.
fn key_file_kid(name: &str) -> Option<&str> {
    let kid = name.strip_suffix(".pem")?;
    (kid.len() == 43 && is_safe_kid(kid)).then_some(kid)
}

/// Whether `name` is a temporary file of [`write_atomic`] for the manifest or a key file:
/// `.<final name>.tmp-<pid>`.
fn is_temp_file(name: &str) -> bool {
    let Some((target, pid)) = name
        .strip_prefix('.')
        .and_then(|rest| rest.rsplit_once(".tmp-"))
    else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && (target == MANIFEST || key_file_kid(target).is_some())
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the complete new one:
/// temporary file (0600) in the same folder, write, fsync, rename, fsync the folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let origin = path.display().to_string();
    let io = |e: std::io::Error| KeyStoreError::Io {
        origin: origin.clone(),
        source: e,
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
            .map_err(|source| KeyStoreError::Worker {
                origin: this_dir(&self.dir),
                source,
            })?
    }

    async fn generation(&self) -> Result<u64, KeyStoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.generation_blocking())
            .await
            .map_err(|source| KeyStoreError::Worker {
                origin: this_dir(&self.dir),
                source,
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
            .map_err(|source| KeyStoreError::Worker {
                origin: this_dir(&self.dir),
                source,
            })?
    }

    async fn remove_leftovers(&self) -> Result<Vec<String>, KeyStoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.remove_leftovers_blocking())
            .await
            .map_err(|source| KeyStoreError::Worker {
                origin: this_dir(&self.dir),
                source,
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
            changes: Vec::new(),
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
            changes: Vec::new(),
        };
        store
            .commit_blocking(&first, &[("one".into(), Zeroizing::new("1".into()))])
            .unwrap();
        let second = Manifest {
            format: Manifest::FORMAT,
            generation: 2,
            keys: vec![meta("one"), meta("two")],
            changes: Vec::new(),
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
            changes: Vec::new(),
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

    /// A kid shaped like a real thumbprint (43 base64url characters).
    fn kid(c: char) -> String {
        std::iter::repeat_n(c, 43).collect()
    }

    #[test]
    fn leftovers_of_interrupted_commits_are_removed_and_named_keys_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path()).unwrap();
        let (live, revoked, orphan) = (kid('a'), kid('b'), kid('c'));
        let mut gone = meta(&revoked);
        gone.state = KeyState::Revoked;
        let manifest = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta(&live), gone],
            changes: Vec::new(),
        };
        store
            .commit_blocking(&manifest, &[(live.clone(), Zeroizing::new("1".into()))])
            .unwrap();
        let plant = |name: &str| fs::write(dir.path().join(name), "x").unwrap();
        plant(&format!("{revoked}.pem"));
        plant(&format!("{orphan}.pem"));
        plant(&format!(".{orphan}.pem.tmp-4242"));
        plant(".manifest.json.tmp-17");
        plant("backup.pem");
        plant("notes.tmp-1");

        let removed = store.remove_leftovers_blocking().unwrap();
        assert_eq!(removed.len(), 4, "{removed:?}");
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".lock".to_string(),
                format!("{live}.pem"),
                "backup.pem".into(),
                "manifest.json".into(),
                "notes.tmp-1".into(),
            ]
        );
        assert!(store.remove_leftovers_blocking().unwrap().is_empty());
    }

    #[test]
    fn key_files_without_a_manifest_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path()).unwrap();
        let name = format!("{}.pem", kid('k'));
        fs::write(dir.path().join(&name), "x").unwrap();
        let Err(KeyStoreError::Orphaned { keys, .. }) = store.load_blocking() else {
            panic!("a key file without a manifest must be refused");
        };
        assert!(keys[0].ends_with(&name));
        assert!(
            store.remove_leftovers_blocking().unwrap().is_empty(),
            "nothing is removed without a manifest"
        );
        let first = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta("one")],
            changes: Vec::new(),
        };
        assert!(matches!(
            store.commit_blocking(&first, &[("one".into(), Zeroizing::new("1".into()))]),
            Err(KeyStoreError::Orphaned { .. })
        ));
        assert!(dir.path().join(&name).exists());
    }

    #[test]
    fn a_first_commit_cut_short_leaves_an_empty_manifest_and_removable_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(dir.path()).unwrap();
        let live = kid('z');
        let first = Manifest {
            format: Manifest::FORMAT,
            generation: 1,
            keys: vec![meta(&live)],
            changes: Vec::new(),
        };
        // The empty manifest and the key file are written; the crash comes before the manifest.
        let failing = store.clone().fail_after_writes(2);
        assert!(
            failing
                .commit_blocking(&first, &[(live.clone(), Zeroizing::new("1".into()))])
                .is_err()
        );
        let (empty, keys) = store.load_blocking().unwrap().unwrap();
        assert!(empty.keys.is_empty() && keys.is_empty());
        assert_eq!(store.remove_leftovers_blocking().unwrap().len(), 1);
        store
            .commit_blocking(&first, &[(live, Zeroizing::new("1".into()))])
            .unwrap();
    }

    #[test]
    fn path_like_kids_are_refused() {
        assert!(!is_safe_kid("../etc/passwd"));
        assert!(!is_safe_kid(""));
        assert!(is_safe_kid("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    }
}
