//! Pseudonymous customer keys. Everything derived from the event stream (the feature store, its
//! snapshots and Redis keys, the `events.ingested` erasure messages on the bus, erasure records)
//! knows a customer only as `HMAC-SHA256(key, customer id)` (hex, 128 bits): after an erasure,
//! what stays on the bus for its retention period, in an old snapshot or in a record that the
//! erasure happened names nobody in clear. The key is generated once per deployment and kept in
//! the database (`pseudonym_keys`, owned by this crate), so every node computes the same
//! pseudonym.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};

/// Computes customers' pseudonyms with the deployment's key.
#[derive(Clone)]
pub struct Pseudonyms {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

impl Pseudonyms {
    /// Pseudonyms under `key` (tests; [`Pseudonyms::load`] in a deployment).
    pub fn with_key(key: &[u8]) -> Self {
        Self { mac: Hmac::new_from_slice(key).expect("HMAC takes a key of any length") }
    }

    /// The deployment's pseudonyms: the key stored in `pseudonym_keys`, created on first use (the
    /// first node to insert wins; every node reads the same row back).
    pub async fn load(db: &Db) -> Result<Self, StoreError> {
        use rand::RngCore;
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO pseudonym_keys (name, secret) VALUES ('customer-pseudonyms', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(hex::encode(fresh))
        .execute(db.writer())
        .await?;
        let row = sqlx::query("SELECT secret FROM pseudonym_keys WHERE name = 'customer-pseudonyms'")
            .fetch_one(db.writer())
            .await?;
        let secret: String = row.try_get(0)?;
        let key = hex::decode(secret.trim())
            .map_err(|e| StoreError::Other(format!("pseudonym_keys holds no hex key: {e}")))?;
        Ok(Self::with_key(&key))
    }

    /// Whether `id` has the shape of a pseudonym (`cx_` and 32 lower-case hex digits).
    pub fn is_pseudonym(id: &str) -> bool {
        id.len() == 35
            && id.starts_with("cx_")
            && id[3..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// `id` as a pseudonym: unchanged when it is one already, else hashed (an update of the
    /// previous release, which named customers in clear, still on the bus at an upgrade).
    pub fn ensure(&self, id: &mut String) {
        if !Self::is_pseudonym(id) {
            *id = self.customer(id);
        }
    }

    /// The customer's pseudonym (`cx_` and 32 hex digits).
    pub fn customer(&self, customer_id: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(customer_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("cx_{}", hex::encode(&digest[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_key_and_say_nothing_of_the_id() {
        let a = Pseudonyms::with_key(b"key-a");
        let b = Pseudonyms::with_key(b"key-b");
        assert_eq!(a.customer("u-42"), a.customer("u-42"));
        assert_ne!(a.customer("u-42"), a.customer("u-43"));
        assert_ne!(a.customer("u-42"), b.customer("u-42"), "another deployment, another pseudonym");
        let p = a.customer("ana@example.com");
        assert!(p.starts_with("cx_") && p.len() == 35 && !p.contains("ana"), "{p}");
        assert!(Pseudonyms::is_pseudonym(&p) && !Pseudonyms::is_pseudonym("cx_ana"));
        let (mut clear, mut hidden) = ("ana@example.com".to_owned(), p.clone());
        a.ensure(&mut clear);
        a.ensure(&mut hidden);
        assert_eq!((clear, hidden), (p.clone(), p), "a clear id is hashed, a pseudonym kept");
    }
}
