//! Pseudonymous analytics: what analysts may see of customers, and under which ids.
//!
//! An analytics id is `anl_` and 32 hex digits of HMAC-SHA256 over the customer id, under a key
//! derived from the deployment's lookup secret for one *purpose* (`analytics`, `churn_model`,
//! `agency_x` ...): the same customer has the same id within a purpose, unrelated ids across
//! purposes, and no id can be turned back into the customer without the secret. An analytics
//! profile holds no direct identifier (no name, email, phone, address, user id, customer id, date
//! of birth) and no health fact (GDPR art. 9): skin type and tone, concerns, lifestyle, loyalty
//! tier, an age band, the channels a customer is known on, and the consent state. Only customers
//! who granted the `analytics` consent are listed. The paging cursor is sealed, so it does not
//! reveal a customer id either.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::CustomersError;
use crate::crypto::DataKey;
use crate::model::{Customer, Purpose};
use crate::service::Customers;

/// Longest purpose accepted, in bytes.
const MAX_PURPOSE: usize = 32;

/// Derives the analytics ids of every purpose from one key.
#[derive(Debug)]
pub struct AnalyticsIds {
    key: DataKey,
}

impl AnalyticsIds {
    /// Ids under `key` (derived from the deployment's lookup secret).
    pub fn new(key: DataKey) -> Self {
        Self { key }
    }

    /// The analytics id of `customer_id` for `purpose`.
    pub fn id(&self, purpose: &str, customer_id: &str) -> String {
        let k = self.key.derive(&format!("analytics:{purpose}"));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_bytes()).expect("HMAC accepts any key");
        mac.update(customer_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("anl_{hex}")
    }

    fn cursor(&self, last_id: &str) -> String {
        self.key.encrypt("cursor", "analytics", last_id.as_bytes())
    }

    fn after(&self, cursor: &str) -> Result<String, CustomersError> {
        let bad = || CustomersError::Invalid { field: "cursor", message: "not a cursor this list gave".into() };
        let plain = self.key.decrypt("cursor", "analytics", cursor).map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    }
}

/// Checks a purpose: 1–32 of `a-z`, `0-9` and `_`.
pub fn parse_purpose(purpose: &str) -> Result<&str, CustomersError> {
    let ok = !purpose.is_empty()
        && purpose.len() <= MAX_PURPOSE
        && purpose.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(purpose)
    } else {
        Err(CustomersError::Invalid { field: "purpose", message: "1–32 characters of a-z, 0-9 and _".into() })
    }
}

/// What an analyst sees of one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AnalyticsProfile {
    /// The customer's id for this purpose (`anl_...`).
    pub analytics_id: String,
    /// Skin type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skin_type: Option<String>,
    /// Skin tone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skin_tone: Option<String>,
    /// Concerns.
    pub concerns: Vec<String>,
    /// Sun exposure (lifestyle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sun_exposure: Option<String>,
    /// Climate (lifestyle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub climate: Option<String>,
    /// Loyalty tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loyalty_tier: Option<String>,
    /// Age band (`18-24`, `25-34`, `35-44`, `45-54`, `55-64`, `65+`, `under-18`), from the date of
    /// birth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_band: Option<String>,
    /// Channels the customer has an id on (`pos`, `app` ...), not the ids.
    pub channels: Vec<String>,
    /// Purposes the customer granted.
    pub consents: Vec<String>,
}

/// A page of analytics profiles.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalyticsPage {
    /// The purpose the ids are for.
    pub purpose: String,
    /// Customers who granted `analytics`, in a stable order.
    pub items: Vec<AnalyticsProfile>,
    /// Give it back as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Whole years between a `YYYY-MM-DD` birth date and `today` (`YYYY-MM-DD`).
fn age(birth: &str, today: &str) -> Option<i64> {
    let parse = |s: &str| -> Option<(i64, i64, i64)> {
        let mut p = s.splitn(3, '-').map(|x| x.parse::<i64>().ok());
        Some((p.next()??, p.next()??, p.next()??))
    };
    let (by, bm, bd) = parse(birth)?;
    let (ty, tm, td) = parse(today.get(..10)?)?;
    Some(ty - by - i64::from((tm, td) < (bm, bd)))
}

fn age_band(years: i64) -> &'static str {
    match years {
        ..18 => "under-18",
        18..25 => "18-24",
        25..35 => "25-34",
        35..45 => "35-44",
        45..55 => "45-54",
        55..65 => "55-64",
        _ => "65+",
    }
}

fn profile(ids: &AnalyticsIds, purpose: &str, c: &Customer, consents: &[Purpose], today: &str) -> AnalyticsProfile {
    let skin = &c.skin_profile.skin;
    let lifestyle = skin.lifestyle.as_ref().map(|f| &f.value);
    AnalyticsProfile {
        analytics_id: ids.id(purpose, &c.id),
        skin_type: skin.skin_type.as_ref().map(|f| f.value.as_str().to_owned()),
        skin_tone: skin.skin_tone.as_ref().map(|f| f.value.clone()),
        concerns: skin.concerns.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
        sun_exposure: lifestyle.and_then(|l| l.sun_exposure.map(|s| s.as_str().to_owned())),
        climate: lifestyle.and_then(|l| l.climate.map(|s| s.as_str().to_owned())),
        loyalty_tier: c.identifiers.loyalty.as_ref().and_then(|l| l.tier.clone()),
        age_band: c.contact.date_of_birth.as_deref().and_then(|b| age(b, today)).map(|y| age_band(y).to_owned()),
        channels: c.identifiers.external_ids.keys().cloned().collect(),
        consents: consents.iter().map(|p| p.as_str().to_owned()).collect(),
    }
}

impl Customers {
    /// The analytics id of a customer (by customer id or linked user id) for `purpose`.
    pub async fn analytics_id(&self, purpose: &str, reference: &str) -> Result<String, CustomersError> {
        let purpose = parse_purpose(purpose)?;
        let id = self.resolve(reference).await?.ok_or_else(|| CustomersError::NotFound(reference.to_owned()))?;
        Ok(self.analytics.id(purpose, &id))
    }

    /// A page of the customers who granted `analytics`, as analysts see them under `purpose`.
    pub async fn analytics_page(
        &self,
        purpose: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AnalyticsPage, CustomersError> {
        let purpose = parse_purpose(purpose)?;
        let limit = limit.clamp(1, 500);
        let mut after = match cursor {
            Some(c) => self.analytics.after(c)?,
            None => String::new(),
        };
        let today = dermis_core::clock::rfc3339(self.clock.now_ms());
        // A customer merged into another is that other one now: listed once, as the winner.
        let merged = crate::store::merged_away(self.db.reader()).await?;
        let mut items = Vec::new();
        loop {
            let page = self.page(&after, limit).await?;
            let full = page.len() as u32 == limit;
            for (c, consents) in &page {
                after = c.id.clone();
                if merged.contains(&c.id) || !consents.granted(Purpose::Analytics) {
                    continue;
                }
                let granted: Vec<Purpose> = Purpose::ALL.iter().copied().filter(|p| consents.granted(*p)).collect();
                items.push(profile(&self.analytics, purpose, c, &granted, &today));
                if items.len() as u32 == limit {
                    return Ok(AnalyticsPage {
                        purpose: purpose.to_owned(),
                        items,
                        next_cursor: Some(self.analytics.cursor(&after)),
                    });
                }
            }
            if !full {
                return Ok(AnalyticsPage { purpose: purpose.to_owned(), items, next_cursor: None });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_within_a_purpose_and_unrelated_across() {
        let ids = AnalyticsIds::new(DataKey::from_bytes([7; 32]));
        let a = ids.id("analytics", "cus_1");
        assert_eq!(a, ids.id("analytics", "cus_1"));
        assert!(a.starts_with("anl_") && a.len() == 36);
        assert_ne!(a, ids.id("churn_model", "cus_1"));
        assert_ne!(a, ids.id("analytics", "cus_2"));
        assert_ne!(a, AnalyticsIds::new(DataKey::from_bytes([8; 32])).id("analytics", "cus_1"));
    }

    #[test]
    fn cursors_are_sealed_and_checked() {
        let ids = AnalyticsIds::new(DataKey::from_bytes([7; 32]));
        let c = ids.cursor("cus_01abc");
        assert!(!c.contains("cus_01abc"));
        assert_eq!(ids.after(&c).unwrap(), "cus_01abc");
        assert!(ids.after("cus_01abc").is_err());
    }

    #[test]
    fn ages_fall_in_bands() {
        assert_eq!(age("1990-06-15", "2026-06-14T00:00:00Z"), Some(35));
        assert_eq!(age("1990-06-15", "2026-06-15T00:00:00Z"), Some(36));
        assert_eq!(age_band(17), "under-18");
        assert_eq!(age_band(24), "18-24");
        assert_eq!(age_band(70), "65+");
        assert_eq!(age("garbage", "2026-06-15"), None);
        assert!(parse_purpose("Bad Purpose").is_err() && parse_purpose("churn_model").is_ok());
    }
}
