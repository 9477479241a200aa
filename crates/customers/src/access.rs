//! What the audit log is told about an access to customers' data: the purpose a caller gives
//! (`x-purpose`), the names of the fields a request returned or wrote (never their values), and
//! the one way handlers record, which refuses to answer (503) when the log cannot be written.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dermis_audit::{Auditor, Entry};
use dermis_core::{FieldError, Problem};

use crate::input::{CustomerChanges, SkinChanges};
use crate::model::Customer;

/// Longest purpose accepted, in bytes.
const MAX_PURPOSE: usize = 32;

/// The purpose of an access as the caller states it in the `x-purpose` header (`support`,
/// `order_fulfilment` ...): 1–32 of `a-z`, `0-9` and `_`. Absent: the handler's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPurpose(Option<String>);

impl AccessPurpose {
    /// The stated purpose, or `default`.
    pub fn or(&self, default: &str) -> String {
        self.0.clone().unwrap_or_else(|| default.to_owned())
    }

    /// Parses a header value.
    pub fn parse(value: &str) -> Result<Self, Problem> {
        let ok = !value.is_empty()
            && value.len() <= MAX_PURPOSE
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(Some(value.to_owned())))
        } else {
            Err(Problem::validation(vec![FieldError::new(
                "x-purpose",
                format!("a purpose is 1–{MAX_PURPOSE} characters of a-z, 0-9 and _ (`support`)"),
            )]))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AccessPurpose {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("x-purpose") {
            None => Ok(Self(None)),
            Some(v) => Self::parse(v.to_str().map_err(|_| Self::parse("").unwrap_err())?),
        }
    }
}

/// The names of the fields a customer representation holds (what a read returned): contact
/// fields, identifiers and skin facts present, with health facts only when not withheld.
pub fn returned_fields(c: &Customer) -> Vec<String> {
    let k = &c.contact;
    let i = &c.identifiers;
    let s = &c.skin_profile.skin;
    let h = &c.skin_profile.health;
    let present = [
        ("name", k.name.is_some()),
        ("email", k.email.is_some()),
        ("phone", k.phone.is_some()),
        ("date_of_birth", k.date_of_birth.is_some()),
        ("address", k.address.is_some()),
        ("user_id", i.user_id.is_some()),
        ("loyalty", i.loyalty.is_some()),
        ("external_ids", !i.external_ids.is_empty()),
        ("skin_profile.skin_type", s.skin_type.is_some()),
        ("skin_profile.skin_tone", s.skin_tone.is_some()),
        ("skin_profile.concerns", s.concerns.is_some()),
        ("skin_profile.lifestyle", s.lifestyle.is_some()),
        ("skin_profile.conditions", h.conditions.is_some()),
        ("skin_profile.sensitivities", h.sensitivities.is_some()),
        ("skin_profile.allergies", h.allergies.is_some()),
        ("skin_profile.pregnant", h.pregnant.is_some()),
        ("skin_profile.breastfeeding", h.breastfeeding.is_some()),
        ("skin_profile.contraindicated_ingredients", h.contraindicated_ingredients.is_some()),
        ("skin_profile.assessment", h.assessment.is_some()),
        ("skin_profile.measurements", !c.skin_profile.measurements.is_empty()),
        ("unknown_allergens", !c.unknown_allergens.is_empty()),
    ];
    present.into_iter().filter(|(_, p)| *p).map(|(n, _)| n.to_owned()).collect()
}

/// The names of the contact fields and identifiers a patch sets or removes.
pub fn changed_fields(c: &CustomerChanges) -> Vec<String> {
    let sent = [
        ("name", c.name.is_some()),
        ("email", c.email.is_some()),
        ("phone", c.phone.is_some()),
        ("date_of_birth", c.date_of_birth.is_some()),
        ("address", c.address.is_some()),
        ("loyalty", c.loyalty.is_some()),
        ("external_ids", !c.external_ids.is_empty()),
        ("user_id", c.user_id.is_some()),
    ];
    sent.into_iter().filter(|(_, p)| *p).map(|(n, _)| n.to_owned()).collect()
}

/// The names of the skin facts a skin-profile request sets or removes.
pub fn skin_fields(c: &SkinChanges) -> Vec<String> {
    let sent = [
        ("skin_profile.skin_type", c.skin_type.is_some()),
        ("skin_profile.skin_tone", c.skin_tone.is_some()),
        ("skin_profile.concerns", c.concerns.is_some()),
        ("skin_profile.lifestyle", c.lifestyle.is_some()),
        ("skin_profile.conditions", c.conditions.is_some()),
        ("skin_profile.sensitivities", c.sensitivities.is_some()),
        ("skin_profile.allergies", c.allergies.is_some()),
        ("skin_profile.pregnant", c.pregnant.is_some()),
        ("skin_profile.breastfeeding", c.breastfeeding.is_some()),
        ("skin_profile.contraindicated_ingredients", c.contraindicated_ingredients.is_some()),
        ("skin_profile.assessment", c.assessment.is_some()),
    ];
    sent.into_iter().filter(|(_, p)| *p).map(|(n, _)| n.to_owned()).collect()
}

/// Records `entries` in order before a handler answers. When the log cannot take them the
/// request is answered 503 and without its data: an access that was not recorded is not
/// served.
pub async fn record(audit: &dyn Auditor, entries: Vec<Entry>) -> Result<(), Problem> {
    match audit.record_all(entries).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "the audit log refused an entry; the request is not answered");
            Err(Problem::unavailable(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_short_tokens() {
        assert_eq!(AccessPurpose::parse("support").unwrap().or("x"), "support");
        assert_eq!(AccessPurpose::default().or("gdpr_export"), "gdpr_export");
        for bad in ["", "Support", "a b", "x".repeat(33).as_str(), "é"] {
            assert!(AccessPurpose::parse(bad).is_err(), "{bad:?}");
        }
    }
}
