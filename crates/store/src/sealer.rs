//! Encryption of secrets at rest (connector credentials, cached provider
//! tokens, webhook signing secrets): the [`Sealer`] port implemented with
//! XChaCha20-Poly1305.
//!
//! XChaCha's 24-byte nonce is large enough to draw at random for every seal
//! without tracking counters. Each ciphertext is tagged with the id of the
//! key that made it, so after a key rotation older keys can still open old
//! data while everything new is sealed with the current key. The master key
//! comes from `SEVER_MASTER_KEY` (base64) or a key file that only its owner
//! can read; it is never logged, displayed or written anywhere else.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sever_core::{SealError, Sealed, Sealer};
use sha2::{Digest, Sha256};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a master key could not be loaded. Messages name files and fixes,
/// never key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the master key must be {KEY_LEN} random bytes in base64 \
         (generate one with `openssl rand -base64 32`): {0}"
    )]
    Invalid(String),
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {path} can be read by other users (mode {mode:03o}); \
         restrict it with `chmod 600 {path}`",
        path = .path.display()
    )]
    Insecure { path: PathBuf, mode: u32 },
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        let cipher = XChaCha20Poly1305::new_from_slice(bytes)
            .map_err(|_| KeyError::Invalid(format!("got {} bytes, not {KEY_LEN}", bytes.len())))?;
        Ok(Self {
            id: key_id(bytes),
            cipher,
        })
    }
}

/// A stable, non-secret name for a key: the first 8 hex digits of a
/// domain-separated SHA-256 of it.
fn key_id(key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"sever key id v1\0")
        .chain_update(key)
        .finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The [`Sealer`] of Sever: one current key, plus older keys that can still
/// open what they sealed.
pub struct XChaChaSealer {
    current: Key,
    older: Vec<Key>,
}

impl fmt::Debug for XChaChaSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XChaChaSealer")
            .field("key_id", &self.current.id)
            .field(
                "older_key_ids",
                &self.older.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn decode_base64(encoded: &str) -> Result<SecretSlice<u8>, KeyError> {
    let encoded = encoded.trim();
    STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map(SecretSlice::from)
        .map_err(|_| KeyError::Invalid("the value is not valid base64".into()))
}

impl XChaChaSealer {
    /// A sealer whose current key is `key` (32 bytes).
    pub fn from_bytes(key: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            current: Key::new(key)?,
            older: Vec::new(),
        })
    }

    /// A sealer from a base64 key, the form of `SEVER_MASTER_KEY`.
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        Self::from_bytes(decode_base64(encoded)?.expose_secret())
    }

    /// Also accept data sealed with an older (base64) key, after a rotation.
    pub fn with_older_key_base64(mut self, encoded: &str) -> Result<Self, KeyError> {
        let key = Key::new(decode_base64(encoded)?.expose_secret())?;
        if key.id != self.current.id && self.older.iter().all(|k| k.id != key.id) {
            self.older.push(key);
        }
        Ok(self)
    }

    /// The id that tags everything this sealer seals.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Load the key file at `path`, or create it (mode 0600, parent
    /// directories 0700) holding a fresh random key. Refuses a key file that
    /// its group or other users can read. Concurrent first starts agree on
    /// one key: the file appears complete or not at all.
    pub fn load_or_create_key_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(_) => return Self::load_key_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let sealer = Self::from_bytes(&key);
        let encoded = SecretString::from(STANDARD.encode(key));
        key.fill(0);
        let sealer = sealer?;
        match publish_new_file(path, encoded.expose_secret().as_bytes()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), key_id = sealer.key_id(), "created a new master key file");
                Ok(sealer)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_key_file(path),
            Err(e) => Err(io(e)),
        }
    }

    fn load_key_file(path: &Path) -> Result<Self, KeyError> {
        Self::from_key_lines(path, &read_key_lines(path)?)
    }

    /// The first key current, the others older keys.
    fn from_key_lines(path: &Path, keys: &[SecretString]) -> Result<Self, KeyError> {
        let in_file = |e| match e {
            KeyError::Invalid(why) => KeyError::Invalid(format!("in {}: {why}", path.display())),
            other => other,
        };
        let Some((current, older)) = keys.split_first() else {
            return Err(in_file(KeyError::Invalid("the file holds no key".into())));
        };
        let mut sealer = Self::from_base64(current.expose_secret()).map_err(in_file)?;
        for k in older {
            sealer = sealer
                .with_older_key_base64(k.expose_secret())
                .map_err(in_file)?;
        }
        Ok(sealer)
    }

    /// The ids of the older keys this sealer can still open.
    pub fn older_key_ids(&self) -> Vec<String> {
        self.older.iter().map(|k| k.id.clone()).collect()
    }

    /// First step of `sever keys rotate` with a key file: put a fresh random
    /// key first in the file at `path`, keeping every key it held as an
    /// older key (so whatever they sealed still opens, even if the rotation
    /// stops half-way), and return the sealer of the new file. The file is
    /// replaced atomically. Finish with [`XChaChaSealer::retire_older_keys`]
    /// once nothing is sealed with the older keys any more.
    pub fn rotate_key_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let mut keys = read_key_lines(path)?;
        let mut fresh = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        keys.insert(0, SecretString::from(STANDARD.encode(fresh)));
        fresh.fill(0);
        // Validate before the file changes: a bad older line fails here.
        let sealer = Self::from_key_lines(path, &keys)?;
        write_key_lines(path, &keys)?;
        tracing::info!(path = %path.display(), key_id = sealer.key_id(), "added a new master key");
        Ok(sealer)
    }

    /// Last step of a rotation: leave only the current (first) key in the
    /// key file at `path`, replacing the file atomically. The older keys are
    /// gone for good: anything still sealed with them can no longer be opened.
    pub fn retire_older_keys(path: impl AsRef<Path>) -> Result<(), KeyError> {
        let path = path.as_ref();
        let keys = read_key_lines(path)?;
        Self::from_key_lines(path, &keys)?;
        if keys.len() > 1 {
            write_key_lines(path, &keys[..1])?;
        }
        Ok(())
    }
}

/// The keys of a key file, one base64 key per non-empty line, current first.
/// Refuses a key file that its group or other users can read.
fn read_key_lines(path: &Path) -> Result<Vec<SecretString>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Insecure {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let contents = SecretString::from(std::fs::read_to_string(path).map_err(io)?);
    Ok(contents
        .expose_secret()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| SecretString::from(l.to_string()))
        .collect())
}

fn write_key_lines(path: &Path, keys: &[SecretString]) -> Result<(), KeyError> {
    let mut text = String::new();
    for k in keys {
        text.push_str(k.expose_secret());
        text.push('\n');
    }
    // Zeroed when dropped.
    let text = SecretString::from(text);
    replace_file(path, text.expose_secret().as_bytes()).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A private (0600) temporary file beside `path` holding `contents`, synced.
fn write_temp_beside(path: &Path, contents: &[u8]) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Make a new or renamed entry in `path`'s directory durable; not every
/// platform can sync a directory.
fn sync_parent(path: &Path) {
    if let Some(dir) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .and_then(|p| std::fs::File::open(p).ok())
    {
        let _ = dir.sync_all();
    }
}

/// Replace `path` with `contents` at once: readers see the old file or the
/// new one, never a mix, whenever the process stops.
fn replace_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = write_temp_beside(path, contents)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path);
    Ok(())
}

/// Write `contents` to a private temporary file beside `path`, then link it
/// into place, which fails if `path` already exists: readers never see a
/// half-written key, and two writers never overwrite each other.
fn publish_new_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(parent)?;
    }
    let mut with_newline = contents.to_vec();
    with_newline.push(b'\n');
    let tmp = write_temp_beside(path, &with_newline);
    with_newline.fill(0);
    let tmp = tmp?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked?;
    sync_parent(path);
    Ok(())
}

impl Sealer for XChaChaSealer {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let blob = match self
            .current
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
        {
            Ok(ciphertext) => [nonce.as_slice(), &ciphertext].concat(),
            // Only a plaintext beyond 256 GiB fails; an empty blob never opens.
            Err(_) => {
                tracing::error!(len = plaintext.len(), "sealing failed");
                Vec::new()
            }
        };
        Sealed {
            key_id: self.current.id.clone(),
            blob,
        }
    }

    fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.blob.split_at(NONCE_LEN);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn sealed_data_opens_only_with_the_same_aad_and_intact_bytes() {
        let s = XChaChaSealer::from_base64(KEY_A).unwrap();
        let sealed = s.seal(b"token-value", b"okta:token");
        assert_eq!(sealed.key_id, s.key_id());
        assert_eq!(
            sealed.blob.len(),
            NONCE_LEN + b"token-value".len() + TAG_LEN
        );
        assert_eq!(s.open(&sealed, b"okta:token").unwrap(), b"token-value");
        assert!(matches!(
            s.open(&sealed, b"entra:token"),
            Err(SealError::Corrupt)
        ));
        let mut tampered = sealed.clone();
        tampered.blob[NONCE_LEN] ^= 1;
        assert!(matches!(
            s.open(&tampered, b"okta:token"),
            Err(SealError::Corrupt)
        ));
        let short = Sealed {
            key_id: sealed.key_id.clone(),
            blob: vec![0; 10],
        };
        assert!(matches!(
            s.open(&short, b"okta:token"),
            Err(SealError::Corrupt)
        ));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let s = XChaChaSealer::from_base64(KEY_A).unwrap();
        let a = s.seal(b"same", b"");
        let b = s.seal(b"same", b"");
        assert_ne!(a.blob[..NONCE_LEN], b.blob[..NONCE_LEN]);
        assert_ne!(a.blob, b.blob);
    }

    #[test]
    fn older_keys_open_what_they_sealed_and_unknown_keys_are_named() {
        let old = XChaChaSealer::from_base64(KEY_A).unwrap();
        let sealed = old.seal(b"secret", b"aad");
        let rotated = XChaChaSealer::from_base64(KEY_B)
            .unwrap()
            .with_older_key_base64(KEY_A)
            .unwrap();
        assert_ne!(rotated.key_id(), old.key_id());
        assert_eq!(rotated.open(&sealed, b"aad").unwrap(), b"secret");
        assert_eq!(rotated.seal(b"x", b"").key_id, rotated.key_id());
        let fresh = XChaChaSealer::from_base64(KEY_B).unwrap();
        match fresh.open(&sealed, b"aad") {
            Err(SealError::UnknownKey(id)) => assert_eq!(id, old.key_id()),
            other => panic!("expected UnknownKey, got {other:?}"),
        }
    }

    #[test]
    fn key_ids_are_stable_short_hex() {
        let a = XChaChaSealer::from_base64(KEY_A).unwrap();
        assert_eq!(a.key_id().len(), 8);
        assert!(a.key_id().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            XChaChaSealer::from_base64(KEY_A).unwrap().key_id(),
            a.key_id()
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["not base64!!", "c2hvcnQ=", ""] {
            let err = XChaChaSealer::from_base64(bad).unwrap_err().to_string();
            assert!(err.contains("openssl rand -base64 32"), "{err}");
            if !bad.is_empty() {
                assert!(!err.contains(bad), "{err}");
            }
        }
        // Unpadded base64 and surrounding whitespace are accepted.
        let unpadded = KEY_A.trim_end_matches('=');
        let s = XChaChaSealer::from_base64(&format!(" {unpadded}\n")).unwrap();
        assert_eq!(
            s.key_id(),
            XChaChaSealer::from_base64(KEY_A).unwrap().key_id()
        );
    }

    #[test]
    fn debug_output_shows_key_ids_not_key_bytes() {
        let s = XChaChaSealer::from_base64(KEY_B)
            .unwrap()
            .with_older_key_base64(KEY_A)
            .unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains(s.key_id()), "{shown}");
        for forbidden in [KEY_A, KEY_B, "32, 33, 34", "0x20", "[0, 1, 2"] {
            assert!(!shown.contains(forbidden), "{shown}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/master.key");
        let first = XChaChaSealer::load_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = XChaChaSealer::load_or_create_key_file(&path).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        let sealed = first.seal(b"x", b"y");
        assert_eq!(again.open(&sealed, b"y").unwrap(), b"x");
        // Only the key file is left behind, no temporary file.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("master.key")]);
    }

    #[cfg(unix)]
    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        XChaChaSealer::load_or_create_key_file(&path)
                            .unwrap()
                            .key_id()
                            .to_string()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, KEY_A).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = XChaChaSealer::load_or_create_key_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains(KEY_A), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = XChaChaSealer::load_or_create_key_file(&path).unwrap();
        assert_eq!(
            s.key_id(),
            XChaChaSealer::from_base64(KEY_A).unwrap().key_id()
        );
    }

    #[cfg(unix)]
    #[test]
    fn rotating_a_key_file_keeps_the_old_key_until_it_is_retired() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let old = XChaChaSealer::load_or_create_key_file(&path).unwrap();
        let old_text = std::fs::read_to_string(&path).unwrap();
        let sealed = old.seal(b"secret", b"aad");

        let rotated = XChaChaSealer::rotate_key_file(&path).unwrap();
        assert_ne!(rotated.key_id(), old.key_id());
        assert_eq!(rotated.older_key_ids(), vec![old.key_id().to_string()]);
        assert_eq!(rotated.open(&sealed, b"aad").unwrap(), b"secret");
        // A process starting mid-rotation loads both keys, the new one current.
        let reloaded = XChaChaSealer::load_or_create_key_file(&path).unwrap();
        assert_eq!(reloaded.key_id(), rotated.key_id());
        assert_eq!(reloaded.open(&sealed, b"aad").unwrap(), b"secret");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        XChaChaSealer::retire_older_keys(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(old_text.trim()), "the old key is gone");
        assert_eq!(text.lines().count(), 1);
        let after = XChaChaSealer::load_or_create_key_file(&path).unwrap();
        assert_eq!(after.key_id(), rotated.key_id());
        assert!(after.older_key_ids().is_empty());
        assert!(matches!(
            after.open(&sealed, b"aad"),
            Err(SealError::UnknownKey(_))
        ));
        // Only the key file is left behind, no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_key_file_is_named_but_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path).unwrap().write_all(b"c2hvcnQ=").unwrap();
        let err = XChaChaSealer::load_or_create_key_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(!err.contains("c2hvcnQ="), "{err}");
    }
}
