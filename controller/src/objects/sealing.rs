//! Secrets at rest: a Secret's `spec.data` is stored sealed (ChaCha20-Poly1305, a random
//! nonce per write, the object's kind, namespace and name as associated data, so a sealed
//! value cannot be moved to another secret), under the keys of the key file nanocld creates
//! on first start (`--secrets-key`, mode 0600).
//!
//! The key file holds one key per line (base64 of 32 bytes), the newest first: secrets are
//! sealed with the first, opened with whichever sealed them (its id is stored with the
//! value). Rotation: put a new key on the first line on every nanocld, restart them; the
//! leader seals every secret again with it (`needs_resealing`); then the old line can go.
//!
//! One keyring per process (`install`); without one (tests, benchmarks), a key made at
//! random on first use.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The prefix of a sealed value: its format.
const FORMAT: &str = "nanocl-v1";

/// The keys of this process, the newest first.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Keyring")
            .field(
                "ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or creating it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its content is not keys.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong (never the content).
        message: String,
    },
    /// Others may read it.
    #[error("{path} is readable by other users (mode {mode:o}): chmod 600 {path}")]
    TooOpen {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
}

fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::digest(key);
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl Keyring {
    /// One random key.
    pub fn random() -> Keyring {
        let key: [u8; 32] = rand::random();
        Keyring {
            keys: vec![(key_id(&key), key)],
        }
    }

    /// Reads the key file at `path`, creating it with one random key (mode 0600) when it
    /// does not exist.
    pub fn load_or_create(path: &Path) -> Result<Keyring, KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(io)?;
            // Written whole beside it, then linked into place: several nanocld starting
            // at once on one file all end up with the one that was linked first.
            let key: [u8; 32] = rand::random();
            let mut file = tempfile::Builder::new()
                .prefix(".secrets-key-")
                .tempfile_in(dir)
                .map_err(io)?;
            writeln!(
                file,
                "{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            )
            .map_err(io)?;
            file.as_file().sync_all().map_err(io)?;
            match std::fs::hard_link(file.path(), path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created the key file secrets are sealed with: back it up, and give every nanocld of this store the same one")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::TooOpen {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(&text).map_err(|(line, message)| KeyFileError::Invalid {
            path: path.display().to_string(),
            line,
            message,
        })
    }

    /// Parses a key file's text: (line, message) of the first problem.
    pub fn parse(text: &str) -> Result<Keyring, (usize, String)> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|_| (i + 1, "not base64".to_owned()))?;
            let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                (i + 1, format!("a key is 32 bytes, this one {}", b.len()))
            })?;
            keys.push((key_id(&key), key));
        }
        if keys.is_empty() {
            return Err((1, "no key in the file".to_owned()));
        }
        Ok(Keyring { keys })
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plaintext` for the object named by `aad`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> String {
        let (id, key) = &self.keys[0];
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // Encryption with a valid key and nonce cannot fail: the error type has no cases
        // for it; an empty output is refused by `open`, never silently stored as data.
        let sealed = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "{FORMAT}:{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// Opens a value sealed for `aad`; the message says why not (never the content).
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, String> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(FORMAT), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("the sealed value has an unknown format".into());
        };
        let Some((_, key)) = self.keys.iter().find(|(k, _)| k == id) else {
            return Err(format!(
                "it was sealed with key {id}, which is not in this nanocld's key file (--secrets-key): give every nanocld of the store the same key file"
            ));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the sealed value is not base64".to_owned())?;
        if bytes.len() < 12 + 16 {
            return Err("the sealed value is truncated".into());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        ChaCha20Poly1305::new(Key::from_slice(key))
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| format!("the sealed value does not open with key {id} (altered, or sealed for another object)"))
    }

    /// Whether `sealed` was sealed with another key than the current one.
    pub fn needs_resealing(&self, sealed: &str) -> bool {
        sealed.split(':').nth(1) != Some(self.current_id())
    }

    /// A keyed digest of `data` (16 hex digits): tells values apart without telling them.
    pub fn digest(&self, data: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.keys[0].1)
            .expect("HMAC takes keys of any length");
        mac.update(b"nanocl digest\0");
        mac.update(data);
        mac.finalize()
            .into_bytes()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

static KEYRING: OnceLock<Keyring> = OnceLock::new();

/// Makes `keyring` this process's; `false` when one was already in use.
pub fn install(keyring: Keyring) -> bool {
    KEYRING.set(keyring).is_ok()
}

/// This process's keyring (a random one when none was installed).
pub fn keyring() -> &'static Keyring {
    KEYRING.get_or_init(Keyring::random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_should_open_only_for_their_object_and_key() {
        let ring = Keyring::random();
        let sealed = ring.seal("Secret/a/db", b"hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            ring.open("Secret/a/db", &sealed).as_deref(),
            Ok(&b"hunter2"[..])
        );
        assert!(
            ring.open("Secret/a/other", &sealed).is_err(),
            "bound to its object"
        );
        let other = Keyring::random();
        let e = other.open("Secret/a/db", &sealed).expect_err("another key");
        assert!(e.contains("not in this nanocld's key file"), "{e}");
        assert_ne!(
            ring.seal("Secret/a/db", b"x"),
            ring.seal("Secret/a/db", b"x"),
            "a nonce per seal"
        );
    }

    #[test]
    fn nanocld_starting_together_should_share_one_new_key_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("secrets.key");
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| Keyring::load_or_create(&path).map(|k| k.current_id().to_owned()))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread").expect("a keyring"))
                .collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "only the key file stays");
    }

    #[test]
    fn key_files_should_be_created_private_and_rotated_by_their_first_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("keys/secrets.key");
        let first = Keyring::load_or_create(&path).expect("created");
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);
        let sealed = first.seal("Secret/a/db", b"v");
        // A new key on the first line: new values sealed with it, old ones still open.
        let old = std::fs::read_to_string(&path).expect("read");
        let new_key: [u8; 32] = rand::random();
        std::fs::write(
            &path,
            format!(
                "{}\n{old}",
                base64::engine::general_purpose::STANDARD.encode(new_key)
            ),
        )
        .expect("write");
        let rotated = Keyring::load_or_create(&path).expect("rotated");
        assert_ne!(rotated.current_id(), first.current_id());
        assert_eq!(
            rotated.open("Secret/a/db", &sealed).as_deref(),
            Ok(&b"v"[..])
        );
        assert!(rotated.needs_resealing(&sealed));
        assert!(!rotated.needs_resealing(&rotated.seal("Secret/a/db", b"v")));
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let open = Keyring::load_or_create(&path).expect_err("too open");
        assert!(open.to_string().contains("chmod 600"), "{open}");
        assert_eq!(
            Keyring::parse("not-a-key\n")
                .map(|_| ())
                .map_err(|(l, m)| format!("{l}: {m}")),
            Err("1: not base64".to_owned())
        );
    }
}
