//! Ed25519 signing keys: generation on first use, PEM files that OpenSSL
//! reads too, key ids, and the key ring `verify` trusts.
//!
//! A private key file is refused, as ssh refuses one, when its owner is the
//! user running Exhibit and group or others may access it: a signing key
//! others can read signs nothing an auditor should trust. Keys rotate
//! (`exhibit keys rotate`): the retiring key signs a checkpoint naming its
//! successor, and its file is kept beside the current one as
//! `<key>.retired-<id>`, so that the writer can still recognise the chain it
//! extends ([`retired_beside`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
    spki::der::pem::LineEnding,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Errors loading or creating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 key in PEM form.
    #[error("{path}: not an Ed25519 {what} in PEM form: {detail}")]
    Format {
        /// The key file.
        path: PathBuf,
        /// "private key" or "public key".
        what: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The private key file is accessible by group or others.
    #[error(
        "permissions {mode:04o} for '{path}' are too open: a signing key must not be \
         accessible by group or others, as ssh requires of private keys \
         (chmod 600 '{path}'); this key is not used"
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key path is a symbolic link to nothing.
    #[error(
        "{path} is a symbolic link to {target}, which does not exist: \
         fix or remove the link (a new key is created only where nothing is)"
    )]
    DanglingLink {
        /// The key path.
        path: PathBuf,
        /// Where the link points.
        target: PathBuf,
    },
}

/// A public key and its id.
#[derive(Clone, Debug)]
pub struct PublicKey {
    id: String,
    key: VerifyingKey,
}

impl PublicKey {
    fn new(key: VerifyingKey) -> Self {
        let id = crate::evidence::sha256_hex(key.as_bytes())[..16].to_string();
        PublicKey { id, key }
    }

    /// The key id: the first 16 hex digits of the SHA-256 of the raw key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SubjectPublicKeyInfo PEM, as `openssl pkey -pubin` reads it.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key encodes")
    }

    /// Parses a SubjectPublicKeyInfo PEM.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        VerifyingKey::from_public_key_pem(pem)
            .map(Self::new)
            .map_err(|e| e.to_string())
    }

    /// Loads a public key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_pem(&pem).map_err(|detail| KeyError::Format {
            path: path.into(),
            what: "public key",
            detail,
        })
    }

    /// Strict Ed25519 verification of `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &sig).is_ok() && self.key.verify(message, &sig).is_ok()
    }
}

/// The agent's signing key.
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, even in debug logs.
        write!(f, "Signer({})", self.public.id)
    }
}

impl Signer {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Self::from_key(SigningKey::from_bytes(&seed))
    }

    fn from_key(key: SigningKey) -> Self {
        let public = PublicKey::new(key.verifying_key());
        Signer { key, public }
    }

    /// Loads the PKCS#8 PEM at `path`, or creates one there (mode 0600) when
    /// nothing is there yet. Returns the signer and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Ok(signer) => Ok((signer, false)),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                // A link to a missing file is not "no key yet": creating a
                // key there would fail, and the link is a mistake to fix.
                if let Ok(meta) = fs::symlink_metadata(path)
                    && meta.file_type().is_symlink()
                {
                    return Err(KeyError::DanglingLink {
                        path: path.into(),
                        target: fs::read_link(path).unwrap_or_default(),
                    });
                }
                let signer = Self::generate();
                match signer.write_private(path) {
                    Ok(()) => Ok((signer, true)),
                    // Another process created it first: use theirs (read
                    // once: a file that vanished again is an error).
                    Err(KeyError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Self::load(path).map(|s| (s, false))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Loads the PKCS#8 PEM at `path`, refusing a file that group or others
    /// may access.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.into(),
            source,
        };
        let mut file = fs::File::open(path).map_err(io)?;
        check_private_permissions(path, &file.metadata().map_err(io)?)?;
        let mut pem = String::new();
        std::io::Read::read_to_string(&mut file, &mut pem).map_err(io)?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Format {
            path: path.into(),
            what: "private key",
            detail: e.to_string(),
        })?;
        Ok(Self::from_key(key))
    }

    /// Writes the private key as PKCS#8 PEM to a new file (mode 0600);
    /// fails if the file exists.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        self.write_private(path)
    }

    fn write_private(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.into(),
            source,
        };
        // PKCS#8 v1 (no embedded public key): the form OpenSSL writes itself.
        let pem = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key encodes");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        // Written whole to a temporary file (mode 0600 from the start), then
        // linked into place: another process never reads a half-written key,
        // and linking fails if one appeared meanwhile.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".key-")
            .permissions(private_permissions())
            .tempfile_in(dir)
            .map_err(io)?;
        tmp.write_all(pem.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        fs::hard_link(tmp.path(), path).map_err(io)?;
        Ok(())
    }

    /// The id of this key.
    pub fn key_id(&self) -> &str {
        self.public.id()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `message`, returning the raw 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A successor signing key, written beside the current key file as
/// `<key>.new` while the store records the rotation (a checkpoint signed by
/// the current key that names it); [`StagedKey::install`] then moves it
/// into place. Staged first, so that a crash between the two steps leaves
/// the new key on disk rather than a rotation naming a key nobody has.
#[derive(Debug)]
pub struct StagedKey {
    signer: Signer,
    path: PathBuf,
    staged: PathBuf,
}

impl StagedKey {
    /// Generates a key and writes it (mode 0600) to `<path>.new`; fails if
    /// that file exists.
    pub fn beside(path: &Path) -> Result<Self, KeyError> {
        let signer = Signer::generate();
        let staged = PathBuf::from(format!("{}.new", path.display()));
        signer.save(&staged)?;
        Ok(StagedKey {
            signer,
            path: path.to_path_buf(),
            staged,
        })
    }

    /// The new key.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Keeps the current key file as `<path>.retired-<retired_id>` and
    /// moves the staged key to `path`; returns where the retired key is.
    pub fn install(self, retired_id: &str) -> std::io::Result<PathBuf> {
        let retired = PathBuf::from(format!("{}.retired-{retired_id}", self.path.display()));
        fs::rename(&self.path, &retired).and_then(|()| fs::rename(&self.staged, &self.path))?;
        Ok(retired)
    }
}

/// The public halves of the keys retired from `path` by earlier rotations
/// (`<path>.retired-<id>`, see [`StagedKey::install`]), by id. A retired
/// file that cannot be read is an error: the chain it signed could no longer
/// be recognised.
pub fn retired_beside(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.retired-");
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(KeyError::Io {
                path: dir.into(),
                source,
            });
        }
    };
    let mut retired = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        let file_name = entry.file_name();
        if file_name.to_str().is_some_and(|n| n.starts_with(&prefix)) {
            retired.push(Signer::load(&entry.path())?.public());
        }
    }
    retired.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(retired)
}

/// Refuses a private key file that group or others may access, when it
/// belongs to the user running Exhibit (ssh's rule: a key owned by another
/// user, such as a secret mounted by an orchestrator, is that user's
/// business).
#[cfg(unix)]
fn check_private_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mode = meta.mode() & 0o7777;
    if meta.uid() == uid && mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_permissions(_: &Path, _: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

fn private_permissions() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(0o600)
}

/// The public keys `verify` trusts, by id.
#[derive(Default, Clone, Debug)]
pub struct KeyRing {
    keys: BTreeMap<String, PublicKey>,
}

impl KeyRing {
    /// Adds a key.
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.id().to_string(), key);
    }

    /// Looks a key up by id.
    pub fn get(&self, id: &str) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The ids of every key.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether the ring holds the key `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/agent.pem");
        let (a, created) = Signer::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = Signer::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.key_id(), b.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let pem = a.public().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pem).unwrap().id(), a.key_id());
        let sig = a.sign(b"msg");
        assert!(a.public().verify(b"msg", &sig));
        assert!(!a.public().verify(b"msh", &sig));
    }

    #[test]
    fn a_staged_key_replaces_the_current_one_which_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.pem");
        let (old, _) = Signer::load_or_create(&path).unwrap();
        let staged = StagedKey::beside(&path).unwrap();
        let new_id = staged.signer().key_id().to_string();
        assert_ne!(new_id, old.key_id());
        assert!(dir.path().join("agent.pem.new").exists());
        // A second rotation cannot start while one is staged.
        assert!(StagedKey::beside(&path).is_err());
        let retired = staged.install(old.key_id()).unwrap();
        assert_eq!(
            retired,
            dir.path()
                .join(format!("agent.pem.retired-{}", old.key_id()))
        );
        assert_eq!(Signer::load_or_create(&path).unwrap().0.key_id(), new_id);
        assert_eq!(
            Signer::load_or_create(&retired).unwrap().0.key_id(),
            old.key_id()
        );
        assert!(!dir.path().join("agent.pem.new").exists());
    }

    #[test]
    fn a_key_others_can_read_is_refused_as_ssh_refuses_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.pem");
        let (created, _) = Signer::load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Signer::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::TooOpen { mode: m, .. } if m == mode),
                "{mode:o}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("permissions 0{mode:o}")) && text.contains("agent.pem"),
                "{text}"
            );
        }
        // Owner-only modes are fine, read-only included.
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                Signer::load_or_create(&path).unwrap().0.key_id(),
                created.key_id()
            );
        }
    }

    #[test]
    fn a_dangling_symlink_at_the_key_path_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.pem");
        let target = dir.path().join("mounted/agent.pem");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = Signer::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyError::DanglingLink { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("symbolic link") && text.contains("mounted/agent.pem"),
            "{text}"
        );
        assert!(!target.exists(), "no key was created through the link");
    }

    #[test]
    fn retired_keys_beside_the_key_file_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.pem");
        assert!(retired_beside(&path).unwrap().is_empty());
        let (first, _) = Signer::load_or_create(&path).unwrap();
        StagedKey::beside(&path)
            .unwrap()
            .install(first.key_id())
            .unwrap();
        let (second, _) = Signer::load_or_create(&path).unwrap();
        StagedKey::beside(&path)
            .unwrap()
            .install(second.key_id())
            .unwrap();
        // Another key file's retirees are not this one's.
        let (_, _) = Signer::load_or_create(&dir.path().join("other.pem")).unwrap();
        let mut want = vec![first.key_id().to_string(), second.key_id().to_string()];
        want.sort();
        let got: Vec<String> = retired_beside(&path)
            .unwrap()
            .iter()
            .map(|k| k.id().to_string())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        fs::write(&path, "not a key").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = Signer::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("k.pem") && err.contains("private key"),
            "{err}"
        );
    }
}
