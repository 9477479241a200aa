//! Envelope encryption of customers' personal and health data, and keyed hashes for lookups.
//!
//! - Every customer has a **data key** ([`DataKey`], 32 random bytes). Each personal or health
//!   field is sealed under it with AES-256-GCM; the associated data binds the ciphertext to the
//!   customer's id and the field's name, so a ciphertext copied to another customer or field does
//!   not open. Format (base64 in a TEXT column): version byte [`FORMAT_V1`], 12-byte random
//!   nonce, ciphertext and 16-byte tag.
//! - Data keys are stored only **wrapped** by a [`MasterKey`] (AES-256-GCM again, associated data
//!   = the owner), with the master key's id. [`LocalMasterKey`] takes 32 bytes from configuration
//!   (base64 in an environment variable or a file); a KMS implements the same trait.
//! - Rotating the master key re-wraps data keys only ([`Keyring`] knows the current key and the
//!   previous ones); no field is re-encrypted.
//! - Destroying a customer's wrapped data key makes every copy of their ciphertexts unreadable
//!   (crypto-shredding): backups, replicas, WAL pages.
//! - Lookups (email, phone, loyalty number, user id) go through [`LookupHasher`]: HMAC-SHA256
//!   under a key per kind, derived (HKDF-SHA256) from a lookup secret that is itself stored
//!   wrapped by the master key, so rotation does not change the hashes.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The version byte that starts every ciphertext this module writes.
pub const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What can go wrong sealing or opening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not a ciphertext of a known format.
    #[error("not a ciphertext of a known format")]
    Format,
    /// The key or the associated data is wrong, or the ciphertext was altered.
    #[error("the ciphertext does not open with this key and associated data")]
    Decrypt,
    /// A wrapped key names a master key that is not configured.
    #[error("the master key {0:?} is not configured")]
    UnknownMasterKey(String),
    /// The data key does not exist (any more): its data is shredded.
    #[error("the data key does not exist; the data it sealed is unreadable")]
    KeyDestroyed,
    /// The master key could not be loaded or used.
    #[error("master key: {0}")]
    MasterKey(String),
}

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    // Encryption fails only for plaintexts over 64 GB.
    let sealed = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad }).unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open(key: &[u8; 32], aad: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if data.len() < 1 + NONCE_LEN + TAG_LEN || data[0] != FORMAT_V1 {
        return Err(CryptoError::Format);
    }
    let cipher = Aes256Gcm::new(key.into());
    let nonce = Nonce::from_slice(&data[1..1 + NONCE_LEN]);
    cipher
        .decrypt(nonce, Payload { msg: &data[1 + NONCE_LEN..], aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Decrypt)
}

/// The associated data of a field's ciphertext: it belongs to this customer and this field.
pub fn field_aad(customer_id: &str, field: &str) -> Vec<u8> {
    format!("dermis.customers.field.v1\0{customer_id}\0{field}").into_bytes()
}

/// The associated data of a wrapped data key: it belongs to this owner.
pub fn key_aad(owner: &str) -> Vec<u8> {
    format!("dermis.customers.key.v1\0{owner}").into_bytes()
}

/// A customer's data key (zeroed when dropped; never printed).
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// A key from its bytes (for a [`MasterKey`] that unwrapped it).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes (for a [`MasterKey`] to wrap it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key for another use, derived from this one (HKDF-SHA256 with `label`).
    pub fn derive(&self, label: &str) -> DataKey {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"dermis.customers.derive.v1"), self.as_bytes());
        let mut k = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit.
        let _ = hk.expand(label.as_bytes(), k.as_mut());
        Self(k)
    }

    /// Seals one field of one customer; base64 text.
    pub fn encrypt(&self, customer_id: &str, field: &str, plaintext: &[u8]) -> String {
        B64.encode(seal(&self.0, &field_aad(customer_id, field), plaintext))
    }

    /// Opens what [`DataKey::encrypt`] sealed for the same customer and field.
    pub fn decrypt(&self, customer_id: &str, field: &str, ciphertext: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let data = B64.decode(ciphertext).map_err(|_| CryptoError::Format)?;
        open(&self.0, &field_aad(customer_id, field), &data)
    }
}

/// A key-encryption key: wraps and unwraps data keys. A KMS implements it too.
#[async_trait]
pub trait MasterKey: Send + Sync + fmt::Debug + 'static {
    /// Stable id stored beside every key it wrapped (so rotation knows which key opens a row).
    fn id(&self) -> &str;
    /// Wraps a data key, bound to `aad`.
    async fn wrap(&self, key: &DataKey, aad: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Unwraps what [`MasterKey::wrap`] returned for the same `aad`.
    async fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, CryptoError>;
}

/// A master key held in this process: 32 bytes from configuration.
pub struct LocalMasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for LocalMasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl LocalMasterKey {
    /// The key made of these bytes. Its id is derived from them (`local:` and 16 hex digits of
    /// a SHA-256 over a label and the key), so the same bytes always have the same id.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"dermis.customers.master-key-id.v1");
        h.update(bytes);
        let digest = h.finalize();
        let id = format!("local:{}", &hex_lower(&digest)[..16]);
        Self { id, key: Zeroizing::new(bytes) }
    }

    /// The key from base64 text (standard alphabet, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let t = text.trim();
        let bytes = Zeroizing::new(
            B64.decode(t)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
                .map_err(|_| CryptoError::MasterKey("the master key is not base64".into()))?,
        );
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::MasterKey(format!("the master key must be 32 bytes, not {}", bytes.len())))?;
        Ok(Self::from_bytes(arr))
    }

    /// The key from a file holding its base64.
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| CryptoError::MasterKey(format!("reading {}: {e}", path.display())))?,
        );
        Self::from_base64(&text)
    }

    /// The key in `path`, or a new random one written there (mode 0600) for the embedded
    /// deployment. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), CryptoError> {
        if path.exists() {
            return Self::from_file(path).map(|k| (k, false));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let text = Zeroizing::new(B64.encode(bytes.as_ref()));
        write_private(path, &text).map_err(|e| CryptoError::MasterKey(format!("writing {}: {e}", path.display())))?;
        Ok((Self::from_bytes(*bytes), true))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl MasterKey for LocalMasterKey {
    fn id(&self) -> &str {
        &self.id
    }

    async fn wrap(&self, key: &DataKey, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(seal(&self.key, aad, key.as_bytes()))
    }

    async fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, CryptoError> {
        let bytes = open(&self.key, aad, wrapped)?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CryptoError::Format)?;
        Ok(DataKey::from_bytes(arr))
    }
}

/// The configured master keys: the current one wraps, every one unwraps what it wrapped.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Arc<dyn MasterKey>,
    previous: Vec<Arc<dyn MasterKey>>,
}

/// The file of the embedded deployment's generated master key, in the data folder.
pub const MASTER_KEY_FILE: &str = "master.key";

/// A data key wrapped by a master key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The master key's id.
    pub master_key_id: String,
    /// The wrapped key (base64).
    pub wrapped: String,
}

impl Keyring {
    /// A keyring wrapping with `current`.
    pub fn new(current: Arc<dyn MasterKey>) -> Self {
        Self { current, previous: Vec::new() }
    }

    /// The keyring from configuration: the master key as base64 (`key`), else the file holding
    /// it (`file`), else (`embedded` only: one node on a SQLite file) the key in
    /// `DATA_DIR/master.key`, created on first start (mode 0600; losing it loses every customer's
    /// data). Scale-out nodes must share one configured key, so without one that is an error.
    /// Keys in `previous` (base64) still unwrap during a rotation. Returns the keyring and the
    /// path of a key file it created.
    pub fn configured(
        key: Option<&str>,
        file: Option<&Path>,
        previous: &[String],
        data_dir: &Path,
        embedded: bool,
    ) -> Result<(Self, Option<std::path::PathBuf>), CryptoError> {
        let (current, created) = if let Some(k) = key.filter(|k| !k.trim().is_empty()) {
            (LocalMasterKey::from_base64(k)?, None)
        } else if let Some(file) = file.filter(|f| !f.as_os_str().is_empty()) {
            (LocalMasterKey::from_file(file)?, None)
        } else if embedded {
            let path = data_dir.join(MASTER_KEY_FILE);
            let (k, created) = LocalMasterKey::load_or_create(&path)?;
            (k, created.then_some(path))
        } else {
            return Err(CryptoError::MasterKey(
                "configure customers.master_key (DERMIS_CUSTOMERS__MASTER_KEY, base64 of 32 random bytes) or customers.master_key_file: every node must share one master key".into(),
            ));
        };
        let mut ring = Self::new(Arc::new(current));
        for k in previous.iter().filter(|k| !k.trim().is_empty()) {
            ring = ring.with_previous(Arc::new(LocalMasterKey::from_base64(k)?));
        }
        Ok((ring, created))
    }

    /// Also unwraps keys wrapped by `old` (during a rotation).
    pub fn with_previous(mut self, old: Arc<dyn MasterKey>) -> Self {
        self.previous.push(old);
        self
    }

    /// The id of the master key new keys are wrapped with.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Wraps `key` for `owner` with the current master key.
    pub async fn wrap(&self, owner: &str, key: &DataKey) -> Result<WrappedKey, CryptoError> {
        let wrapped = self.current.wrap(key, &key_aad(owner)).await?;
        Ok(WrappedKey { master_key_id: self.current.id().to_owned(), wrapped: B64.encode(wrapped) })
    }

    /// Unwraps `owner`'s key with the master key that wrapped it.
    pub async fn unwrap(&self, owner: &str, w: &WrappedKey) -> Result<DataKey, CryptoError> {
        let master = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id() == w.master_key_id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(w.master_key_id.clone()))?;
        let data = B64.decode(&w.wrapped).map_err(|_| CryptoError::Format)?;
        master.unwrap(&data, &key_aad(owner)).await
    }

    /// Re-wraps `owner`'s key with the current master key (rotation); `None` when it already is.
    pub async fn rewrap(&self, owner: &str, w: &WrappedKey) -> Result<Option<WrappedKey>, CryptoError> {
        if w.master_key_id == self.current.id() {
            return Ok(None);
        }
        let key = self.unwrap(owner, w).await?;
        self.wrap(owner, &key).await.map(Some)
    }
}

/// What a lookup hash is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LookupKind {
    /// An email address, trimmed and lowercased.
    Email,
    /// A phone number in E.164.
    Phone,
    /// A loyalty card number.
    LoyaltyNumber,
    /// The id the web shop's SDK sends as `userId`.
    UserId,
    /// The SDK's `anonymousId` (a browser or app install).
    AnonymousId,
    /// A device id (`context.device.id`: a phone, a store's tablet, a skin analyzer).
    DeviceId,
    /// A point-of-sale receipt id.
    PosReceiptId,
    /// A customer number another system (a CRM, a POS) gives the customer.
    CustomerNumber,
}

impl LookupKind {
    /// Every kind.
    pub const ALL: [LookupKind; 8] = [
        Self::Email,
        Self::Phone,
        Self::LoyaltyNumber,
        Self::UserId,
        Self::AnonymousId,
        Self::DeviceId,
        Self::PosReceiptId,
        Self::CustomerNumber,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::LoyaltyNumber => "loyalty_number",
            Self::UserId => "user_id",
            Self::AnonymousId => "anonymous_id",
            Self::DeviceId => "device_id",
            Self::PosReceiptId => "pos_receipt_id",
            Self::CustomerNumber => "customer_number",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Keyed hashes for lookups: one HMAC-SHA256 key per [`LookupKind`], derived from one secret.
#[derive(Clone)]
pub struct LookupHasher {
    keys: Arc<[Zeroizing<[u8; 32]>; 8]>,
}

impl fmt::Debug for LookupHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LookupHasher(..)")
    }
}

impl LookupHasher {
    /// The hasher derived from the deployment's lookup secret.
    pub fn new(secret: &DataKey) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"dermis.customers.lookup.v1"), secret.as_bytes());
        let keys = LookupKind::ALL.map(|kind| {
            let mut k = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's limit of 8,160.
            let _ = hk.expand(kind.as_str().as_bytes(), k.as_mut());
            k
        });
        Self { keys: Arc::new(keys) }
    }

    /// The hash of an already normalized value (hex).
    pub fn hash(&self, kind: LookupKind, normalized: &str) -> String {
        let i = LookupKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.keys[i].as_ref()).expect("HMAC accepts any key");
        mac.update(normalized.as_bytes());
        hex_lower(&mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(byte: u8) -> Arc<dyn MasterKey> {
        Arc::new(LocalMasterKey::from_bytes([byte; 32]))
    }

    #[test]
    fn a_field_round_trips_and_is_bound_to_customer_and_field() {
        let k = DataKey::generate();
        let c = k.encrypt("cus_1", "contact", b"ada@example.com");
        assert!(!c.contains("ada@example"), "{c}");
        assert_eq!(k.decrypt("cus_1", "contact", &c).unwrap().as_slice(), b"ada@example.com");
        assert_eq!(k.decrypt("cus_2", "contact", &c), Err(CryptoError::Decrypt), "another customer");
        assert_eq!(k.decrypt("cus_1", "health", &c), Err(CryptoError::Decrypt), "another field");
        assert_eq!(DataKey::generate().decrypt("cus_1", "contact", &c), Err(CryptoError::Decrypt), "another key");
        // Two seals of the same text differ (random nonce).
        assert_ne!(c, k.encrypt("cus_1", "contact", b"ada@example.com"));
    }

    #[test]
    fn an_altered_or_unknown_ciphertext_is_refused() {
        let k = DataKey::generate();
        let c = B64.decode(k.encrypt("cus_1", "f", b"x")).unwrap();
        let mut bad = c.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(k.decrypt("cus_1", "f", &B64.encode(&bad)), Err(CryptoError::Decrypt));
        let mut v2 = c;
        v2[0] = 2;
        assert_eq!(k.decrypt("cus_1", "f", &B64.encode(&v2)), Err(CryptoError::Format));
        assert_eq!(k.decrypt("cus_1", "f", "not base64!"), Err(CryptoError::Format));
    }

    #[tokio::test]
    async fn rotation_rewraps_keys_and_data_stays_readable() {
        let old = Keyring::new(master(1));
        let dek = DataKey::generate();
        let field = dek.encrypt("cus_1", "contact", b"+33612345678");
        let stored = old.wrap("cus_1", &dek).await.unwrap();
        assert!(old.wrap("cus_2", &dek).await.is_ok());
        assert!(old.unwrap("cus_2", &stored).await.is_err(), "a wrapped key is bound to its owner");

        let new = Keyring::new(master(2)).with_previous(master(1));
        let rewrapped = new.rewrap("cus_1", &stored).await.unwrap().expect("re-wrapped");
        assert_eq!(rewrapped.master_key_id, new.current_id());
        assert!(new.rewrap("cus_1", &rewrapped).await.unwrap().is_none(), "already current");
        // The old master key is no longer needed.
        let only_new = Keyring::new(master(2));
        let key = only_new.unwrap("cus_1", &rewrapped).await.unwrap();
        assert_eq!(key.decrypt("cus_1", "contact", &field).unwrap().as_slice(), b"+33612345678");
        assert_eq!(
            only_new.unwrap("cus_1", &stored).await.unwrap_err(),
            CryptoError::UnknownMasterKey(stored.master_key_id.clone())
        );
    }

    #[tokio::test]
    async fn a_shredded_key_leaves_nothing_readable() {
        let ring = Keyring::new(master(7));
        let dek = DataKey::generate();
        let field = dek.encrypt("cus_1", "health", br#"{"allergies":["limonene"]}"#);
        let wrapped = ring.wrap("cus_1", &dek).await.unwrap();
        drop(dek);
        drop(wrapped); // the only copy of the key is gone: erasure deletes the row
        // No other key opens the field, not even a new key for the same customer.
        let again = DataKey::generate();
        assert_eq!(again.decrypt("cus_1", "health", &field), Err(CryptoError::Decrypt));
    }

    #[test]
    fn master_keys_load_from_base64_and_files() {
        let text = B64.encode([9u8; 32]);
        let a = LocalMasterKey::from_base64(&format!(" {text}\n")).unwrap();
        assert_eq!(a.id(), LocalMasterKey::from_bytes([9u8; 32]).id());
        assert!(LocalMasterKey::from_base64(&B64.encode([1u8; 16])).is_err());
        assert!(LocalMasterKey::from_base64("***").is_err());
        let dir = std::env::temp_dir().join(format!("dermis-mk-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("master.key");
        let _ = std::fs::remove_file(&path);
        let (k1, created) = LocalMasterKey::load_or_create(&path).unwrap();
        assert!(created);
        let (k2, created) = LocalMasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.id(), k2.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_embedded_deployment_makes_its_key_and_scale_out_needs_one_configured() {
        let dir = std::env::temp_dir().join(format!("dermis-ring-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::remove_file(dir.join(MASTER_KEY_FILE));
        let (ring, created) = Keyring::configured(None, None, &[], &dir, true).unwrap();
        assert_eq!(created, Some(dir.join(MASTER_KEY_FILE)));
        let (again, created) = Keyring::configured(None, None, &[], &dir, true).unwrap();
        assert_eq!(created, None);
        assert_eq!(ring.current_id(), again.current_id(), "the same key after a restart");
        let e = Keyring::configured(None, None, &[], &dir, false).unwrap_err();
        assert!(e.to_string().contains("DERMIS_CUSTOMERS__MASTER_KEY"));
        let configured = Keyring::configured(Some(&B64.encode([9u8; 32])), None, &[], &dir, false).unwrap().0;
        assert_ne!(configured.current_id(), ring.current_id(), "a configured key wins over the file");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lookup_hashes_are_keyed_per_kind() {
        let secret = DataKey::generate();
        let h = LookupHasher::new(&secret);
        let e = h.hash(LookupKind::Email, "ada@example.com");
        assert_eq!(e, LookupHasher::new(&secret).hash(LookupKind::Email, "ada@example.com"));
        assert_ne!(e, h.hash(LookupKind::UserId, "ada@example.com"));
        assert_ne!(e, LookupHasher::new(&DataKey::generate()).hash(LookupKind::Email, "ada@example.com"));
        assert_eq!(e.len(), 64);
    }
}
