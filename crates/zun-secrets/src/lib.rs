//! Secrets the service stores (registry passwords) are sealed with
//! AES-256-GCM under one key. There is no built-in key: the operator
//! provides a key file, or the service generates one on first start and
//! keeps it in a file only its own user may read. A sealed value is bound
//! to the record it belongs to (its "context", e.g. the registry's uuid), so
//! copying a sealed password onto another record does not decrypt.
//!
//! The same key authenticates the API to compute agents: [`SecretKey::mac`]
//! derives a per-purpose, per-host token (HMAC-SHA256) that only holders of
//! the key can compute, and [`SecretKey::verify_mac`] checks one in
//! constant time.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every sealed value; names the scheme so it can change later.
const SCHEME: &str = "v1:";
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {path} may be read by other users (mode {mode:o}); make it readable by the service only (chmod 600)"
    )]
    ExposedKeyFile { path: PathBuf, mode: u32 },
    #[error("key file {path} does not hold a base64-encoded 32-byte key")]
    MalformedKey { path: PathBuf },
    #[error("the secret is too large to encrypt")]
    TooLarge,
    /// The value was not sealed by this key for this context, or was altered.
    #[error("the stored secret cannot be decrypted with this service's key")]
    Undecryptable,
}

/// The service's secret key.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
    /// The raw key, for [`SecretKey::mac`] (a different algorithm from the
    /// cipher, and every MAC names its purpose, so the uses do not mix).
    mac_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Reads the key at `path`, or, when there is no file, generates one
    /// and writes it there readable by this user only. A key file that
    /// others may read is refused rather than used.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        match Self::load(path) {
            Err(SecretsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Self::create(path)?;
                Self::load(path)
            }
            other => other,
        }
    }

    /// Reads an existing key file.
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let io = |source| SecretsError::Io {
            path: path.to_owned(),
            source,
        };
        let mode = fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SecretsError::ExposedKeyFile {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let text = fs::read_to_string(path).map_err(io)?;
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .filter(|b| b.len() == KEY_LEN)
            .ok_or_else(|| SecretsError::MalformedKey {
                path: path.to_owned(),
            })?;
        let mut mac_key = [0u8; KEY_LEN];
        mac_key.copy_from_slice(&bytes);
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            mac_key,
        })
    }

    /// Writes a new random key to `path` without ever replacing one: the
    /// key is written to a private temporary file that is then hard-linked
    /// into place, which fails if another process got there first (its key
    /// is then the one everybody uses).
    fn create(path: &Path) -> Result<(), SecretsError> {
        let io = |source| SecretsError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let key = Aes256Gcm::generate_key(OsRng);
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            writeln!(file, "{}", STANDARD.encode(key))?;
            file.sync_all()
        })();
        let linked = written.and_then(|()| fs::hard_link(&temporary, path));
        // The temporary name is ours alone; it goes whatever happened.
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated the service's secret key");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext` for the record named by `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, SecretsError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        // Fails only beyond GCM's length limit (64 GiB).
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| SecretsError::TooLarge)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SCHEME}{}", STANDARD.encode(out)))
    }

    /// Decrypts a value sealed by [`SecretKey::seal`] for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretsError> {
        let bytes = sealed
            .strip_prefix(SCHEME)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(SecretsError::Undecryptable)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SecretsError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretsError::Undecryptable)
    }
}

impl SecretKey {
    fn hmac(&self, purpose: &str, message: &str) -> HmacSha256 {
        // Any key length is valid for HMAC.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        // Length-prefixed, so (purpose, message) pairs cannot collide.
        mac.update(&(purpose.len() as u64).to_be_bytes());
        mac.update(purpose.as_bytes());
        mac.update(message.as_bytes());
        mac
    }

    /// 32 bytes of key material for `purpose`, the same in every process
    /// holding this key and unrelated to any other purpose's (HMAC-SHA256
    /// as a PRF): e.g. the seed of the agents' certificate authority.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        self.hmac(purpose, "").finalize().into_bytes().into()
    }

    /// HMAC-SHA256 of `message` for `purpose` (a fixed string naming the
    /// use, e.g. `"zun agent endpoint v2"`), as lowercase hex.
    pub fn mac(&self, purpose: &str, message: &str) -> String {
        let tag = self.hmac(purpose, message).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `candidate` is [`SecretKey::mac`] of `message` for `purpose`;
    /// compared in constant time.
    pub fn verify_mac(&self, purpose: &str, message: &str, candidate: &str) -> bool {
        let Some(bytes) = decode_hex(candidate) else {
            return false;
        };
        self.hmac(purpose, message).verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_in(dir: &tempfile::TempDir) -> (PathBuf, SecretKey) {
        let path = dir.path().join("keys/secret.key");
        let key = SecretKey::load_or_create(&path).expect("key");
        (path, key)
    }

    #[test]
    fn a_generated_key_is_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, key) = key_in(&dir);
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = key.seal("s3cret", "uuid-1").expect("seal");
        // A second start reads the same key instead of making a new one.
        let again = SecretKey::load_or_create(&path).expect("reload");
        assert_eq!(again.open(&sealed, "uuid-1").expect("open"), "s3cret");
        let leftovers = fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .count();
        assert_eq!(leftovers, 1, "only the key file remains");
    }

    #[test]
    fn sealed_values_hide_the_plaintext_and_bind_their_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, key) = key_in(&dir);
        let sealed = key.seal("hunter2-password", "registry-a").expect("seal");
        assert!(sealed.starts_with(SCHEME));
        assert!(!sealed.contains("hunter2"));
        // Fresh nonce every time.
        assert_ne!(
            sealed,
            key.seal("hunter2-password", "registry-a").expect("seal")
        );
        assert_eq!(
            key.open(&sealed, "registry-a").expect("open"),
            "hunter2-password"
        );
        assert!(matches!(
            key.open(&sealed, "registry-b"),
            Err(SecretsError::Undecryptable)
        ));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(key.open(&tampered, "registry-a").is_err());
        assert!(key.open("plain", "registry-a").is_err());
        assert!(key.open("v1:", "registry-a").is_err());
    }

    #[test]
    fn another_key_cannot_open() {
        let (one, two) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (_, a) = key_in(&one);
        let (_, b) = key_in(&two);
        assert!(b.open(&a.seal("x", "c").expect("seal"), "c").is_err());
    }

    #[test]
    fn exposed_or_malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _) = key_in(&dir);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            SecretKey::load(&path),
            Err(SecretsError::ExposedKeyFile { mode: 0o644, .. })
        ));
        fs::write(&path, "c2hvcnQ=\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            SecretKey::load(&path),
            Err(SecretsError::MalformedKey { .. })
        ));
    }

    #[test]
    fn macs_are_stable_bound_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, key) = key_in(&dir);
        let token = key.mac("agent", "host-1");
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        // The same key (another process) derives the same token.
        let again = SecretKey::load(&path).expect("reload");
        assert_eq!(again.mac("agent", "host-1"), token);
        assert!(again.verify_mac("agent", "host-1", &token));
        // Bound to the host and the purpose.
        assert_ne!(key.mac("agent", "host-2"), token);
        assert!(!key.verify_mac("agent", "host-2", &token));
        assert!(!key.verify_mac("other", "host-1", &token));
        assert_ne!(key.mac("agen", "thost-1"), token);
        // Malformed or truncated candidates fail.
        assert!(!key.verify_mac("agent", "host-1", ""));
        assert!(!key.verify_mac("agent", "host-1", &token[..62]));
        assert!(!key.verify_mac("agent", "host-1", "zz"));
        assert!(!key.verify_mac("agent", "host-1", &token.to_uppercase().replace('A', "é")));
        // Another key derives another token.
        let other_dir = tempfile::tempdir().expect("tempdir");
        let (_, other) = key_in(&other_dir);
        assert!(!other.verify_mac("agent", "host-1", &token));
    }
}
