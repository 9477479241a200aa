//! The hash of an entry: SHA-256 over a canonical, unambiguous encoding of every column but the
//! hash itself.
//!
//! Encoding (version 1): the tag `dermis-audit-v1`, then `seq` and `at` as 8-byte big-endian
//! signed integers, then `actor`, `role`, `purpose`, `request_id`, `action` as strings, then
//! `subject` as one byte (0 absent, 1 present) followed by the string when present, then the
//! number of `fields` (8-byte big-endian) and each field as a string, then `prev_hash` as a
//! string. A string is its UTF-8 length (8-byte big-endian) followed by its bytes. Lengths make
//! every boundary explicit: moving a character from `actor` to `role` changes the hash.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const TAG: &[u8] = b"dermis-audit-v1";

/// The columns an entry's hash covers.
#[derive(Debug, Clone, Copy)]
pub struct Hashed<'a> {
    /// Position in the chain.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Who.
    pub actor: &'a str,
    /// Role.
    pub role: &'a str,
    /// Purpose.
    pub purpose: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// Action.
    pub action: &'a str,
    /// Customer concerned.
    pub subject: Option<&'a str>,
    /// Field names.
    pub fields: &'a [String],
    /// The previous entry's hash (hex).
    pub prev_hash: &'a str,
}

impl Hashed<'_> {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(TAG);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at.to_be_bytes());
        for s in [self.actor, self.role, self.purpose, self.request_id, self.action] {
            string(&mut out, s);
        }
        match self.subject {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                string(&mut out, s);
            }
        }
        out.extend_from_slice(&(self.fields.len() as u64).to_be_bytes());
        for f in self.fields {
            string(&mut out, f);
        }
        string(&mut out, self.prev_hash);
        out
    }

    /// SHA-256 of [`Hashed::encode`], in lower-case hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.encode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(fields: &[String]) -> Hashed<'_> {
        Hashed {
            seq: 1,
            at: 1_700_000_000_000,
            actor: "ab",
            role: "admin",
            purpose: "support",
            request_id: "r1",
            action: "customer.read",
            subject: Some("c1"),
            fields,
            prev_hash: GENESIS,
        }
    }

    #[test]
    fn every_column_and_every_boundary_changes_the_hash() {
        let fields = vec!["email".to_owned(), "phone".to_owned()];
        let h = base(&fields).hash();
        assert_eq!(h.len(), 64);
        assert_eq!(h, base(&fields).hash(), "deterministic");
        let moved = Hashed { actor: "a", role: "badmin", ..base(&fields) };
        assert_ne!(moved.hash(), h, "a character moved between columns");
        let joined = vec!["emailphone".to_owned()];
        assert_ne!(base(&joined).hash(), h, "fields joined");
        assert_ne!(Hashed { subject: None, ..base(&fields) }.hash(), h);
        assert_ne!(
            Hashed { subject: Some(""), ..base(&fields) }.hash(),
            Hashed { subject: None, ..base(&fields) }.hash()
        );
        assert_ne!(Hashed { seq: 2, ..base(&fields) }.hash(), h);
        assert_ne!(Hashed { at: 1, ..base(&fields) }.hash(), h);
        assert_ne!(Hashed { prev_hash: &"1".repeat(64), ..base(&fields) }.hash(), h);
    }
}
