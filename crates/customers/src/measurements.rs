//! Skin measurements and the other facts the event stream brings beyond the identity graph.
//!
//! - `Skin Measurement Recorded` (a skin analyzer or wearable): each reading ({value, unit} of
//!   hydration, sebum, TEWL, pigmentation, redness, UV exposure) is a row of
//!   `customer_measurements`: metric and times in clear, the reading sealed under the
//!   customer's data key (associated data: the customer and `measurement.<row id>`). Stored only
//!   under the `health_data` consent; without it the reading is dropped and counted
//!   (`customers_measurements_skipped_total{reason="no_health_data_consent"}`), never kept.
//!   The profile shows per metric the latest reading and the trend ([`trend`]: least-squares
//!   slope per 30 days over the last 90 days, fitted to the readings in the latest one's unit).
//! - `Dermatologist Assessment Recorded`: conditions and contraindicated ingredients with source
//!   `dermatologist` (under `health_data` only).
//! - Consent carried in an event's context (Segment's `context.consent.categoryPreferences`,
//!   RudderStack's `context.consentManagement`), mapped to purposes by the feed
//!   ([`crate::feed::ConsentMapping`]) and recorded in the ledger with channel `event`, the
//!   write key as actor and the event's time: a decision older than the latest one recorded
//!   for a purpose changes nothing.
//!
//! Every step is idempotent on the message (`customer_feed_applied`, per step).

use std::collections::BTreeMap;

use dermis_core::FieldError;
use dermis_core::clock::rfc3339;
use dermis_core::ids::new_id;
use dermis_store::StoreError;
use dermis_store::sqlx::AnyConnection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::CustomersError;
use crate::crypto::{DataKey, LookupKind};
use crate::input::{NewConsent, SkinChanges};
use crate::model::{Customer, FactSource, MeasurementSummary, Metric, Purpose, Reading, Trend};
use crate::service::{Actor, CONSENT_CHANGED, Customers, seal};
use crate::store::{self, ConsentRow, MeasurementRow};

/// The trend's window.
pub const TREND_WINDOW_DAYS: u32 = 90;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A unit and its plausible range (`("%", 0.0, 100.0)`).
pub type UnitRange = (&'static str, f64, f64);

/// The units each metric may be given in, with the plausible range of each (the same as
/// `crates/events/schemas/skin_measurement_recorded.v1.json`).
pub const UNITS: &[(Metric, &[UnitRange])] = &[
    (Metric::Hydration, &[("%", 0.0, 100.0), ("au", 0.0, 150.0)]),
    (Metric::Sebum, &[("ug/cm2", 0.0, 500.0), ("%", 0.0, 100.0)]),
    (Metric::Tewl, &[("g/m2/h", 0.0, 250.0)]),
    (Metric::Pigmentation, &[("%", 0.0, 100.0), ("index", 0.0, 1000.0)]),
    (Metric::Redness, &[("%", 0.0, 100.0), ("index", 0.0, 1000.0)]),
    (Metric::UvExposure, &[("uv_index", 0.0, 20.0), ("sed", 0.0, 1000.0), ("j/m2", 0.0, 100_000.0)]),
];

fn units(metric: Metric) -> &'static [UnitRange] {
    UNITS.iter().find(|(m, _)| *m == metric).map(|(_, u)| *u).unwrap_or(&[])
}

/// One validated reading.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    /// Metric.
    pub metric: Metric,
    /// Value (finite, in range for its unit).
    pub value: f64,
    /// Unit (one of the metric's).
    pub unit: &'static str,
}

/// A validated `Skin Measurement Recorded`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeasurement {
    /// The device's id.
    pub device_id: String,
    /// The device's model.
    pub device_model: Option<String>,
    /// The readings (at least one).
    pub readings: Vec<NewReading>,
}

fn short_text(v: Option<&Value>, field: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(FieldError::new(field, format!("must be a string of 1–{max} characters")));
            None
        }
    }
}

/// Parses the properties of a `Skin Measurement Recorded` event: every reading checked (a
/// known unit, a finite number in the unit's plausible range).
pub fn parse_measurement(props: &Value) -> Result<NewMeasurement, Vec<FieldError>> {
    let mut errors = Vec::new();
    let device_id = short_text(props.get("device_id"), "device_id", 512, &mut errors);
    if device_id.is_none() && errors.is_empty() {
        errors.push(FieldError::new("device_id", "is required"));
    }
    let device_model = short_text(props.get("device_model"), "device_model", 200, &mut errors);
    let mut readings = Vec::new();
    for metric in Metric::ALL {
        let Some(r) = props.get(metric.as_str()).filter(|v| !v.is_null()) else { continue };
        let field = metric.as_str();
        let unit = r.get("unit").and_then(Value::as_str).map(str::trim);
        let allowed = units(*metric);
        let Some(&(unit, lo, hi)) = unit.and_then(|u| allowed.iter().find(|(a, _, _)| *a == u)) else {
            let names: Vec<&str> = allowed.iter().map(|(u, _, _)| *u).collect();
            errors.push(FieldError::new(format!("{field}.unit"), format!("must be one of {}", names.join(", "))));
            continue;
        };
        match r.get("value").and_then(Value::as_f64) {
            Some(v) if v.is_finite() && (lo..=hi).contains(&v) => {
                readings.push(NewReading { metric: *metric, value: v, unit })
            }
            _ => errors
                .push(FieldError::new(format!("{field}.value"), format!("must be a number from {lo} to {hi} {unit}"))),
        }
    }
    if readings.is_empty() && errors.is_empty() {
        errors.push(FieldError::new("measurements", format!("give at least one of {}", Metric::names())));
    }
    match device_id {
        Some(device_id) if errors.is_empty() => Ok(NewMeasurement { device_id, device_model, readings }),
        _ => Err(errors),
    }
}

/// A reading as sealed in `customer_measurements.reading`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SealedReading {
    value: f64,
    unit: String,
    device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_model: Option<String>,
}

fn reading_field(row_id: &str) -> String {
    format!("measurement.{row_id}")
}

/// The least-squares slope of `points` (time in ms, value), per 30 days; `None` with fewer
/// than two distinct times.
pub fn trend(points: &[(i64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let t0 = points[0].0;
    let xs: Vec<f64> = points.iter().map(|(t, _)| (t - t0) as f64 / DAY_MS as f64).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = points.iter().map(|(_, v)| v).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = xs.iter().zip(points).map(|(x, (_, y))| (x - mx) * (y - my)).sum();
    let per_day = sxy / sxx;
    Some((per_day * 30.0 * 1e6).round() / 1e6)
}

/// One ingested message, as the feed applies it beyond the identity graph.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Its source.
    pub write_key_id: String,
    /// Its `messageId`.
    pub message_id: String,
    /// `userId`.
    pub user_id: Option<String>,
    /// `anonymousId`.
    pub anonymous_id: Option<String>,
    /// The event's time (skew-corrected), ms.
    pub at_ms: i64,
    /// What to do.
    pub action: FeedAction,
}

/// Consent decisions an event carried, mapped to purposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConsents {
    /// Purposes and decisions (each purpose once).
    pub decisions: Vec<(Purpose, bool)>,
    /// The consent text's version, if the event names one (else `unspecified`).
    pub text_version: String,
    /// A consent-change event (`Segment Consent Preference Updated`): its decisions are
    /// recorded even when they repeat the current state.
    pub explicit: bool,
}

/// What a message asks of the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedAction {
    /// Store device readings (under `health_data`).
    Measurement(NewMeasurement),
    /// Apply a dermatologist's assessment (under `health_data`).
    Assessment(SkinChanges),
    /// Record consent decisions.
    Consent(EventConsents),
}

impl FeedAction {
    /// The step's name in `customer_feed_applied`.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Measurement(_) => "measurement",
            Self::Assessment(_) => "assessment",
            Self::Consent(_) => "consent",
        }
    }
}

/// What applying a [`FeedEvent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedOutcome {
    /// Stored (`n`: readings stored, or consent decisions recorded; 1 for an assessment).
    Applied(usize),
    /// The message had been applied already.
    Duplicate,
    /// No known customer is named by the message's user id or anonymous id.
    UnknownCustomer,
    /// Health data without the `health_data` consent: nothing stored (counted).
    NoConsent,
    /// Consent decisions that change nothing (the same as, or older than, those recorded).
    Unchanged,
}

/// A decision wins over the ledger when it is newer than every decision recorded for its
/// purpose and either differs from the current one or `explicit`.
fn consent_changes(rows: &[ConsentRow], c: &EventConsents, at: i64) -> Vec<(Purpose, bool)> {
    c.decisions
        .iter()
        .copied()
        .filter(|(p, granted)| {
            let mut mine = rows.iter().filter(|r| r.purpose == p.as_str());
            let newest = mine.clone().map(|r| r.recorded_at).max();
            let current = mine.next_back().map(|r| r.granted);
            match (newest, current) {
                (Some(t), Some(g)) => at > t && (g != *granted || c.explicit),
                _ => true,
            }
        })
        .collect()
}

impl Customers {
    /// The customer a feed event names: its user id's, else its anonymous id's (as merged).
    async fn feed_customer(&self, ev: &FeedEvent) -> Result<Option<String>, CustomersError> {
        let mut found = None;
        if let Some(u) = &ev.user_id {
            found = self.find_identifier(LookupKind::UserId, u).await?;
        }
        if found.is_none()
            && let Some(a) = &ev.anonymous_id
        {
            found = self.find_identifier(LookupKind::AnonymousId, a).await?;
        }
        match found {
            Some(id) => Ok(Some(self.surviving(&id).await?)),
            None => Ok(None),
        }
    }

    /// Applies one feed event in one transaction; applying it again changes nothing.
    pub async fn apply_feed(&self, ev: &FeedEvent) -> Result<FeedOutcome, CustomersError> {
        let step = ev.action.step();
        let outcome = self.apply_feed_inner(ev).await?;
        let label = match outcome {
            FeedOutcome::Applied(_) => "applied",
            FeedOutcome::Duplicate => "duplicate",
            FeedOutcome::UnknownCustomer => "unknown_customer",
            FeedOutcome::NoConsent => "no_health_data_consent",
            FeedOutcome::Unchanged => "unchanged",
        };
        metrics::counter!("customers_feed_events_total", "step" => step, "outcome" => label).increment(1);
        match (&ev.action, outcome) {
            (FeedAction::Measurement(m), FeedOutcome::Applied(n)) => {
                metrics::counter!("customers_measurements_stored_total").increment(n as u64);
                let dropped = m.readings.len().saturating_sub(n);
                if dropped > 0 {
                    metrics::counter!("customers_measurements_skipped_total", "reason" => "duplicate")
                        .increment(dropped as u64);
                }
            }
            (FeedAction::Measurement(m), FeedOutcome::NoConsent | FeedOutcome::UnknownCustomer) => {
                metrics::counter!("customers_measurements_skipped_total", "reason" => label)
                    .increment(m.readings.len() as u64);
                tracing::info!(
                    message_id = ev.message_id,
                    readings = m.readings.len(),
                    reason = label,
                    "skin measurements not stored"
                );
            }
            (FeedAction::Assessment(_), FeedOutcome::NoConsent) => {
                metrics::counter!("customers_health_facts_skipped_total", "source" => "dermatologist").increment(1);
                tracing::info!(
                    message_id = ev.message_id,
                    "a dermatologist assessment without the health_data consent was not stored"
                );
            }
            _ => {}
        }
        Ok(outcome)
    }

    async fn apply_feed_inner(&self, ev: &FeedEvent) -> Result<FeedOutcome, CustomersError> {
        let step = ev.action.step();
        if store::feed_applied(self.db.reader(), &ev.write_key_id, &ev.message_id, step).await? {
            return Ok(FeedOutcome::Duplicate);
        }
        let Some(id) = self.feed_customer(ev).await? else { return Ok(FeedOutcome::UnknownCustomer) };
        let now = self.clock.now_ms();
        // An event's time, but never in the future (a client clock must not outrank what
        // happens next).
        let at = ev.at_ms.min(now);
        if let FeedAction::Consent(c) = &ev.action {
            // Most events repeat the consent state they were sent under: find that out reading.
            let rows = store::consents(self.db.reader(), &id).await?;
            if consent_changes(&rows, c, at).is_empty() {
                return Ok(FeedOutcome::Unchanged);
            }
        }
        let mut tx = self.db.begin().await?;
        if !store::lock_customer(&mut tx, &id).await? {
            return Ok(FeedOutcome::UnknownCustomer);
        }
        if !store::mark_feed_applied(&mut tx, &ev.write_key_id, &ev.message_id, step, now).await? {
            return Ok(FeedOutcome::Duplicate);
        }
        match &ev.action {
            FeedAction::Measurement(m) => {
                if !self.consents_in(&mut tx, &id).await?.granted(Purpose::HealthData) {
                    // Recorded as applied: granting the consent later does not bring it back.
                    tx.commit().await.map_err(StoreError::from)?;
                    return Ok(FeedOutcome::NoConsent);
                }
                let dek = self.data_key(&mut tx, &id).await?;
                let mut stored = 0;
                for r in &m.readings {
                    let row_id = new_id("msr");
                    let sealed = SealedReading {
                        value: r.value,
                        unit: r.unit.to_owned(),
                        device_id: m.device_id.clone(),
                        device_model: m.device_model.clone(),
                    };
                    let row = MeasurementRow {
                        reading: seal(&dek, &id, &reading_field(&row_id), &sealed)?,
                        id: row_id,
                        customer_id: id.clone(),
                        metric: r.metric.as_str().to_owned(),
                        measured_at: at,
                        write_key_id: ev.write_key_id.clone(),
                        message_id: ev.message_id.clone(),
                        recorded_at: now,
                    };
                    stored += usize::from(store::insert_measurement(&mut tx, &row).await?);
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(FeedOutcome::Applied(stored))
            }
            FeedAction::Assessment(changes) => {
                let consents = self.consents_in(&mut tx, &id).await?;
                if !consents.granted(Purpose::HealthData) {
                    tx.commit().await.map_err(StoreError::from)?;
                    return Ok(FeedOutcome::NoConsent);
                }
                let (current, row) = self.read_in(&mut tx, &id).await?;
                let mut next = current.clone();
                crate::service::apply_skin(&mut next.skin_profile, changes.clone(), &rfc3339(now));
                if next.skin_profile == current.skin_profile {
                    tx.commit().await.map_err(StoreError::from)?;
                    return Ok(FeedOutcome::Applied(0));
                }
                let saved = self.save(&mut tx, next, &row).await?;
                tx.commit().await.map_err(StoreError::from)?;
                self.committed(&saved, Some(&consents)).await;
                Ok(FeedOutcome::Applied(1))
            }
            FeedAction::Consent(c) => {
                let rows = store::consents(&mut *tx, &id).await?;
                let changes = consent_changes(&rows, c, at);
                if changes.is_empty() {
                    tx.commit().await.map_err(StoreError::from)?;
                    return Ok(FeedOutcome::Unchanged);
                }
                let (mut customer, row) = self.read_in(&mut tx, &id).await?;
                let actor = Actor { id: ev.write_key_id.clone(), role: "write_key".into() };
                for (purpose, granted) in &changes {
                    let consent = NewConsent {
                        purpose: *purpose,
                        granted: *granted,
                        text_version: c.text_version.clone(),
                        channel: "event".into(),
                    };
                    self.append_consent(&mut tx, &id, &consent, &actor, at).await?;
                    if *purpose == Purpose::HealthData && !granted {
                        customer = self.withdraw_health_in(&mut tx, customer, &row).await?;
                    }
                    let payload = json!({
                        "customer_id": id, "version": customer.version, "purpose": purpose, "granted": granted,
                    });
                    store::append_event(&mut tx, CONSENT_CHANGED, &id, &payload, now).await?;
                }
                let consents = self.consents_in(&mut tx, &id).await?;
                tx.commit().await.map_err(StoreError::from)?;
                self.committed(&customer, Some(&consents)).await;
                Ok(FeedOutcome::Applied(changes.len()))
            }
        }
    }

    /// Fills `c.skin_profile.measurements`: per metric the latest reading and the trend.
    pub(crate) async fn load_measurements(
        &self,
        conn: &mut AnyConnection,
        c: &mut Customer,
    ) -> Result<(), CustomersError> {
        let latest = store::latest_measurements(&mut *conn, &c.id).await?;
        if latest.is_empty() {
            return Ok(());
        }
        let dek = self.data_key(conn, &c.id).await?;
        let since = self.clock.now_ms() - i64::from(TREND_WINDOW_DAYS) * DAY_MS;
        let window = store::measurements_since(&mut *conn, &c.id, since, 20_000).await?;
        let mut out = BTreeMap::new();
        for row in &latest {
            let Some(metric) = Metric::parse(&row.metric) else { continue };
            let last = open_reading(&dek, &c.id, row)?;
            let mut points = Vec::new();
            for w in window.iter().filter(|w| w.metric == row.metric) {
                let r = open_reading(&dek, &c.id, w)?;
                if r.unit == last.unit {
                    points.push((w.measured_at, r.value));
                }
            }
            out.insert(
                metric,
                MeasurementSummary {
                    latest: Reading {
                        value: last.value,
                        unit: last.unit.clone(),
                        measured_at: rfc3339(row.measured_at),
                    },
                    trend: Trend {
                        per_30_days: trend(&points),
                        unit: last.unit,
                        points: points.len(),
                        window_days: TREND_WINDOW_DAYS,
                    },
                    source: FactSource::Device,
                    device_model: last.device_model,
                },
            );
        }
        c.skin_profile.measurements = out;
        Ok(())
    }

    /// Every reading of a customer's measurements taken at or after `since_ms`, oldest first
    /// (for exports).
    pub async fn measurements(&self, reference: &str, since_ms: i64) -> Result<Vec<MeasurementPoint>, CustomersError> {
        let id = self.resolve_or_404(reference).await?;
        let mut conn = self.db.reader().acquire().await.map_err(StoreError::from)?;
        let rows = store::measurements_since(&mut *conn, &id, since_ms, 100_000).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let dek = self.data_key(&mut conn, &id).await?;
        rows.iter()
            .filter_map(|row| Some((Metric::parse(&row.metric)?, row)))
            .map(|(metric, row)| {
                let r = open_reading(&dek, &id, row)?;
                Ok(MeasurementPoint {
                    metric,
                    value: r.value,
                    unit: r.unit,
                    measured_at: rfc3339(row.measured_at),
                    device_id: r.device_id,
                    device_model: r.device_model,
                })
            })
            .collect()
    }

    /// Forgets which feed steps were applied more than 8 days ago (the buses keep a message a
    /// week); returns how many.
    pub async fn purge_feed_steps(&self) -> Result<u64, CustomersError> {
        const KEEP_MS: i64 = 8 * DAY_MS;
        Ok(store::purge_feed_applied(self.db.writer(), self.clock.now_ms() - KEEP_MS).await?)
    }
}

/// One stored reading, opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeasurementPoint {
    /// Metric.
    pub metric: Metric,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// When (RFC 3339).
    pub measured_at: String,
    /// The device's id.
    pub device_id: String,
    /// The device's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_model: Option<String>,
}

fn open_reading(dek: &DataKey, customer_id: &str, row: &MeasurementRow) -> Result<SealedReading, CustomersError> {
    let plain = dek.decrypt(customer_id, &reading_field(&row.id), &row.reading)?;
    serde_json::from_slice(&plain)
        .map_err(|e| CustomersError::Store(StoreError::Other(format!("corrupt measurement {}: {e}", row.id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_need_a_known_unit_and_a_plausible_finite_value() {
        let ok = parse_measurement(&json!({"device_id": "d1", "device_model": "S2",
            "hydration": {"value": 40, "unit": "%"}, "tewl": {"value": 12.5, "unit": "g/m2/h"}}))
        .unwrap();
        assert_eq!(ok.readings.len(), 2);
        assert_eq!(ok.readings[0], NewReading { metric: Metric::Hydration, value: 40.0, unit: "%" });
        let errors = parse_measurement(&json!({"device_id": "d1", "hydration": {"value": 140, "unit": "%"},
            "sebum": {"value": 3, "unit": "furlongs"}, "redness": {"value": "x", "unit": "%"}}))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["hydration.value", "sebum.unit", "redness.value"]);
        assert!(parse_measurement(&json!({"device_id": "d1"})).is_err(), "no reading at all");
        assert!(parse_measurement(&json!({"hydration": {"value": 40, "unit": "%"}})).is_err(), "no device");
    }

    #[test]
    fn the_trend_is_the_least_squares_slope_per_30_days() {
        let day = DAY_MS;
        // +1 per day, exactly: 30 per 30 days.
        let pts: Vec<(i64, f64)> = (0..10).map(|i| (i * day, 40.0 + i as f64)).collect();
        assert_eq!(trend(&pts), Some(30.0));
        // Noise around a slope of -0.5/day fits -15 per 30 days.
        let pts = [(0, 50.0), (day, 49.0), (2 * day, 49.5), (3 * day, 48.0), (4 * day, 48.0)];
        let t = trend(&pts).unwrap();
        assert!((t - (-15.0)).abs() < 1e-9, "{t}");
        assert_eq!(trend(&[(0, 1.0)]), None);
        assert_eq!(trend(&[(5, 1.0), (5, 2.0)]), None, "no time span, no slope");
    }

    #[test]
    fn an_older_or_repeated_consent_decision_changes_nothing() {
        let row = |purpose: &str, granted: bool, at: i64| ConsentRow {
            id: format!("cns_{at:010}"),
            customer_id: "c".into(),
            purpose: purpose.into(),
            granted,
            text_version: "v1".into(),
            channel: "api".into(),
            actor: "a".into(),
            actor_role: "admin".into(),
            recorded_at: at,
        };
        let rows = vec![row("health_data", true, 100), row("analytics", false, 50)];
        let ev = |decisions: Vec<(Purpose, bool)>| EventConsents {
            decisions,
            text_version: "unspecified".into(),
            explicit: false,
        };
        let c = ev(vec![(Purpose::HealthData, false), (Purpose::Analytics, true), (Purpose::MarketingSms, true)]);
        assert_eq!(consent_changes(&rows, &c, 90), vec![(Purpose::Analytics, true), (Purpose::MarketingSms, true)]);
        assert_eq!(
            consent_changes(&rows, &c, 120),
            vec![(Purpose::HealthData, false), (Purpose::Analytics, true), (Purpose::MarketingSms, true)]
        );
        let same = ev(vec![(Purpose::HealthData, true)]);
        assert!(consent_changes(&rows, &same, 120).is_empty());
        let explicit = EventConsents { explicit: true, ..same };
        assert_eq!(consent_changes(&rows, &explicit, 120), vec![(Purpose::HealthData, true)]);
    }
}
