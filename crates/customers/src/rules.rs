//! The rules of the identity graph: per-kind limits and values that never link anyone.

use crate::crypto::LookupKind;

/// The rules of the identity graph.
#[derive(Debug, Clone)]
pub struct IdentityRules {
    /// An identifier seen with more customers than this is blocked.
    pub max_customers_per_identifier: i64,
    /// Anonymous ids one customer keeps (the oldest goes first).
    pub max_anonymous_ids: usize,
    /// Device ids one customer keeps.
    pub max_device_ids: usize,
    /// POS receipt ids one customer keeps.
    pub max_pos_receipts: usize,
    /// Values that never link anyone, per kind (normalized: emails lowercased; `None`: any kind).
    pub blocked: Vec<(Option<LookupKind>, String)>,
}

impl Default for IdentityRules {
    fn default() -> Self {
        let junk = [
            "",
            "0",
            "-1",
            "null",
            "undefined",
            "unknown",
            "none",
            "nan",
            "anonymous",
            "guest",
            "test",
            "00000000-0000-0000-0000-000000000000",
        ];
        let mut blocked: Vec<(Option<LookupKind>, String)> = junk.iter().map(|v| (None, (*v).to_owned())).collect();
        for e in ["test@test.com", "noreply@example.com", "no-reply@example.com", "email@example.com"] {
            blocked.push((Some(LookupKind::Email), e.to_owned()));
        }
        Self {
            max_customers_per_identifier: 10,
            max_anonymous_ids: 50,
            max_device_ids: 10,
            max_pos_receipts: 1000,
            blocked,
        }
    }
}

impl IdentityRules {
    /// How many identifiers of `kind` one customer keeps.
    pub fn limit(&self, kind: LookupKind) -> usize {
        match kind {
            LookupKind::AnonymousId => self.max_anonymous_ids,
            LookupKind::DeviceId => self.max_device_ids,
            LookupKind::PosReceiptId => self.max_pos_receipts,
            LookupKind::Email
            | LookupKind::Phone
            | LookupKind::LoyaltyNumber
            | LookupKind::UserId
            | LookupKind::CustomerNumber => 1,
        }
    }

    /// Whether a (normalized) value is on the configured list.
    pub fn listed(&self, kind: LookupKind, value: &str) -> bool {
        let v = value.trim().to_lowercase();
        self.blocked.iter().any(|(k, b)| k.is_none_or(|k| k == kind) && *b == v)
    }
}
