//! A unit's pre-period, the covariates of CUPED: what the visitor did in the
//! [`PRE_PERIOD_DAYS`] days before their first exposure, read from the event log (the events
//! domain's public reads, by the visitor's user id and anonymous id) when the unit is made.
//!
//! The window ends at the exposure, so nothing in it can be an effect of the variant (a unit's
//! outcomes count from its exposure on): the covariate is independent of the assignment, which is
//! what keeps the CUPED-adjusted uplift unbiased. It counts the events the outcomes count:
//! `Product Clicked`, `Product Added` and `Order Completed` (orders and their revenue).
//!
//! Reading is bounded: at most [`MAX_EVENTS`] events per id, from the first event stored in the
//! window on (event ids follow arrival time, so the scan starts a day before the window to allow
//! for clock skew; an event imported later with an old timestamp arrives later and is found too).

use std::collections::HashSet;

use dermis_events::log::{self, Subject};
use dermis_events::message::parse_time;
use dermis_store::{Db, StoreError};
use serde_json::Value;

use crate::store::PrePeriod;

/// The length of the pre-period.
pub const PRE_PERIOD_DAYS: i64 = 28;
const DAY_MS: i64 = 86_400_000;
/// Events read per id at most (a visitor with more in 28 days is a bot or a test).
pub const MAX_EVENTS: usize = 20_000;
const PAGE: u32 = 1_000;

/// What the visitor with these ids did in the [`PRE_PERIOD_DAYS`] days before `exposed_at` (ms).
pub async fn of_visitor(
    db: &Db,
    user_id: Option<&str>,
    anonymous_id: Option<&str>,
    exposed_at: i64,
) -> Result<PrePeriod, StoreError> {
    let from = exposed_at - PRE_PERIOD_DAYS * DAY_MS;
    // Event ids carry the system clock's arrival time: start a day early, and never after now.
    let floor = log::id_floor(from.min(dermis_core::clock::now_ms() - PRE_PERIOD_DAYS * DAY_MS) - DAY_MS);
    let mut subjects = Vec::new();
    if let Some(u) = user_id.filter(|u| !u.is_empty()) {
        subjects.push(Subject::User(u.to_owned()));
    }
    if let Some(a) = anonymous_id.filter(|a| !a.is_empty()) {
        subjects.push(Subject::Anonymous(a.to_owned()));
    }
    let mut seen = HashSet::new();
    let mut pre = PrePeriod::default();
    for who in &subjects {
        let mut after = floor.clone();
        let mut read = 0;
        while read < MAX_EVENTS {
            let page = log::events_of(db, who, Some(&after), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            read += page.len();
            let full = page.len() == PAGE as usize;
            for e in page {
                if seen.insert(e.id) {
                    add(&mut pre, &e.message, from, exposed_at);
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok(pre)
}

/// Adds one stored message to the pre-period when it lies in `[from, to)`.
fn add(pre: &mut PrePeriod, message: &Value, from: i64, to: i64) {
    let Some(at) = message.get("timestamp").and_then(Value::as_str).and_then(parse_time) else { return };
    if at < from || at >= to {
        return;
    }
    let Some(event) = message.get("event").and_then(Value::as_str) else { return };
    let properties = message.get("properties").cloned().unwrap_or(Value::Null);
    match event.to_ascii_lowercase().replace('_', " ").as_str() {
        "product clicked" => pre.clicks += 1.0,
        "product added" => pre.add_to_carts += 1.0,
        "order completed" => {
            pre.conversions += 1.0;
            pre.revenue += crate::model::revenue(&properties);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_window_before_the_exposure_counts() {
        let t = |s: &str| parse_time(s).unwrap();
        let exposed = t("2026-11-29T12:00:00Z");
        let from = exposed - PRE_PERIOD_DAYS * DAY_MS;
        let mut pre = PrePeriod::default();
        let order = |at: &str, revenue: f64| json!({"event": "Order Completed", "timestamp": at, "properties": {"revenue": revenue}});
        add(&mut pre, &order("2026-11-20T10:00:00Z", 30.0), from, exposed);
        add(&mut pre, &order("2026-11-29T11:59:59Z", 10.0), from, exposed);
        add(&mut pre, &order("2026-11-29T12:00:00Z", 99.0), from, exposed); // the exposure's own time: an outcome
        add(&mut pre, &order("2026-10-01T00:00:00Z", 99.0), from, exposed); // before the window
        add(&mut pre, &json!({"event": "product_clicked", "timestamp": "2026-11-25T00:00:00Z"}), from, exposed);
        add(&mut pre, &json!({"event": "Product Added", "timestamp": "2026-11-25T00:00:00Z"}), from, exposed);
        add(&mut pre, &json!({"event": "Product Viewed", "timestamp": "2026-11-25T00:00:00Z"}), from, exposed);
        assert_eq!(pre, PrePeriod { clicks: 1.0, add_to_carts: 1.0, conversions: 2.0, revenue: 40.0 });
    }
}
