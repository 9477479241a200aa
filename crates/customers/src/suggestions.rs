//! Merge suggestions: probabilistic matching ([`crate::matching`]) run over every customer.
//!
//! A run reads the customers page by page, opens each one's contact fields in memory (name split
//! into first and last, date of birth, postcode, email, phone) and forgets them when it ends:
//! nothing decrypted is written. Pairs at or above the review threshold are stored in
//! `customer_match_suggestions` with their score and per-field evidence (levels and weights, never
//! values). With `auto_merge`, pairs at or above the high threshold are merged at once (the older
//! customer stays; the merge is recorded and can be undone like any other). A pair dismissed,
//! merged, or merged and undone is not suggested again: an undone merge is a person's decision.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use dermis_store::StoreError;
use dermis_store::sqlx::{self, Row};

use crate::CustomersError;
use crate::matching::{Decision, FieldEvidence, MatchConfig, Record, find_matches};
use crate::service::Customers;

/// Customers read per page during a run.
const PAGE: u32 = 500;

/// What a run did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatchRunReport {
    /// Customers compared.
    pub customers: usize,
    /// Candidate pairs compared (after blocking).
    pub pairs_compared: usize,
    /// Blocks expanded.
    pub blocks: usize,
    /// Blocks skipped for being larger than the cap (a shared value such as a store's phone).
    pub skipped_blocks: usize,
    /// Pairs at or above the review threshold found by this run (new or already known).
    pub suggested: usize,
    /// New suggestions stored for review.
    pub new_for_review: usize,
    /// Merges made automatically (above the auto-merge threshold), by merge id.
    pub auto_merged: Vec<String>,
    /// Milliseconds the run took.
    pub took_ms: u64,
}

/// A stored suggestion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatchSuggestion {
    /// `sug_...`.
    pub id: String,
    /// One customer.
    pub a: String,
    /// The other.
    pub b: String,
    /// The sum of the field weights (log2 likelihood ratio).
    pub score: f64,
    /// The posterior match probability.
    pub probability: f64,
    /// `auto_merge` or `review`.
    pub decision: String,
    /// Each field's level and weight.
    #[schema(value_type = Vec<Object>)]
    pub evidence: serde_json::Value,
    /// `pending`, `merged` or `dismissed`.
    pub status: String,
    /// The merge, once merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// Settings of a run asked for through the API.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRunRequest {
    /// Merge pairs at or above the auto-merge threshold at once (default true).
    #[serde(default)]
    pub auto_merge: Option<bool>,
    /// Suggest pairs scoring at least this (default 12).
    #[serde(default)]
    pub review_threshold: Option<f64>,
    /// Merge without review at or above this (default 30; at least the review threshold).
    #[serde(default)]
    pub auto_merge_threshold: Option<f64>,
}

impl MatchRunRequest {
    /// The run's configuration, checked.
    pub fn config(&self) -> Result<(MatchConfig, bool), CustomersError> {
        let mut c = MatchConfig::default();
        if let Some(t) = self.review_threshold {
            if !t.is_finite() || !(0.0..=200.0).contains(&t) {
                return Err(CustomersError::Invalid { field: "review_threshold", message: "must be 0–200".into() });
            }
            c.review_threshold = t;
        }
        if let Some(t) = self.auto_merge_threshold {
            if !t.is_finite() || !(0.0..=200.0).contains(&t) {
                return Err(CustomersError::Invalid {
                    field: "auto_merge_threshold", message: "must be 0–200".into()
                });
            }
            c.auto_merge_threshold = t;
        }
        if c.auto_merge_threshold < c.review_threshold {
            return Err(CustomersError::Invalid {
                field: "auto_merge_threshold",
                message: "must be at least the review threshold".into(),
            });
        }
        Ok((c, self.auto_merge.unwrap_or(true)))
    }
}

/// Splits a full name into first and last (the last word is the family name).
fn split_name(name: &str) -> (Option<&str>, Option<&str>) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((first, last)) => (Some(first.trim()), Some(last)),
        None if name.is_empty() => (None, None),
        None => (None, Some(name)),
    }
}

fn evidence_json(e: &[FieldEvidence]) -> String {
    serde_json::to_string(e).unwrap_or_else(|_| "[]".into())
}

fn row_to_suggestion(r: &sqlx::any::AnyRow) -> Result<MatchSuggestion, StoreError> {
    let evidence: String = r.try_get("evidence")?;
    Ok(MatchSuggestion {
        id: r.try_get("id")?,
        a: r.try_get("a")?,
        b: r.try_get("b")?,
        score: r.try_get("score")?,
        probability: r.try_get("probability")?,
        decision: r.try_get("decision")?,
        evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
        status: r.try_get("status")?,
        merge_id: r.try_get("merge_id")?,
        created_at: dermis_core::clock::rfc3339(r.try_get::<i64, _>("created_at")?),
    })
}

const COLUMNS: &str = "id, a, b, score, probability, decision, evidence, status, merge_id, created_at";

impl Customers {
    /// Every live customer (not merged away) as matching sees it.
    async fn match_records(&self) -> Result<Vec<Record>, CustomersError> {
        let merged = crate::store::merged_away(self.db.reader()).await?;
        let mut after = String::new();
        let mut out = Vec::new();
        loop {
            let page = self.page(&after, PAGE).await?;
            let Some((last, _)) = page.last() else { return Ok(out) };
            after = last.id.clone();
            for (c, _) in page.iter().filter(|(c, _)| !merged.contains(&c.id)) {
                let (first, last) = c.contact.name.as_deref().map(split_name).unwrap_or((None, None));
                out.push(Record::normalized(
                    c.id.clone(),
                    first,
                    last,
                    c.contact.date_of_birth.as_deref(),
                    c.contact.address.as_ref().and_then(|a| a.postal_code.as_deref()),
                    c.contact.email.as_deref(),
                    c.contact.phone.as_deref(),
                ));
            }
        }
    }

    /// Runs probabilistic matching over every customer, stores the suggestions and (with
    /// `auto_merge`) merges the pairs above the high threshold, as `actor`.
    pub async fn run_matching(
        &self,
        config: &MatchConfig,
        auto_merge: bool,
        actor: &str,
    ) -> Result<MatchRunReport, CustomersError> {
        let started = std::time::Instant::now();
        let records = self.match_records().await?;
        let run = find_matches(&records, config)
            .map_err(|e| CustomersError::Invalid { field: "thresholds", message: e.to_string() })?;
        let now = self.clock.now_ms();
        let mut new_for_review = 0;
        let mut to_merge = Vec::new();
        for s in &run.suggestions {
            let (a, b) = if s.a <= s.b { (&s.a, &s.b) } else { (&s.b, &s.a) };
            let decision = match s.decision {
                Decision::AutoMerge => "auto_merge",
                Decision::Review => "review",
            };
            let id = dermis_core::ids::new_id("sug");
            let inserted = sqlx::query(
                "INSERT INTO customer_match_suggestions (id, a, b, score, probability, decision, evidence, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) ON CONFLICT (a, b) DO NOTHING",
            )
            .bind(&id)
            .bind(a)
            .bind(b)
            .bind(s.score)
            .bind(s.probability)
            .bind(decision)
            .bind(evidence_json(&s.evidence))
            .bind(now)
            .execute(self.db.writer())
            .await
            .map_err(StoreError::from)?
            .rows_affected();
            let status: Option<String> =
                sqlx::query("SELECT status FROM customer_match_suggestions WHERE a = $1 AND b = $2")
                    .bind(a)
                    .bind(b)
                    .fetch_optional(self.db.reader())
                    .await
                    .map_err(StoreError::from)?
                    .map(|r| r.get(0));
            if status.as_deref() != Some("pending") {
                continue; // decided before: dismissed or merged (and perhaps undone)
            }
            if auto_merge && s.decision == Decision::AutoMerge {
                to_merge.push((a.clone(), b.clone()));
            } else if inserted > 0 {
                new_for_review += 1;
            }
        }
        let mut auto_merged = Vec::new();
        for (a, b) in to_merge {
            // The older customer (ids are time-ordered) stays. A customer merged away earlier in
            // this run is skipped: its pair stays for review.
            match self.merge(&a, &b, &format!("matching:{actor}")).await {
                Ok(m) => {
                    self.decide_pair(&a, &b, "merged", Some(&m.id)).await?;
                    auto_merged.push(m.id);
                }
                Err(CustomersError::NotFound(_) | CustomersError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        metrics::counter!("dermis_customers_auto_merges_total").increment(auto_merged.len() as u64);
        Ok(MatchRunReport {
            customers: records.len(),
            pairs_compared: run.stats.pairs_compared,
            blocks: run.stats.blocks,
            skipped_blocks: run.stats.skipped_blocks.len(),
            suggested: run.suggestions.len(),
            new_for_review,
            auto_merged,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn decide_pair(&self, a: &str, b: &str, status: &str, merge_id: Option<&str>) -> Result<(), CustomersError> {
        sqlx::query(
            "UPDATE customer_match_suggestions SET status = $1, merge_id = $2, decided_at = $3 WHERE a = $4 AND b = $5",
        )
        .bind(status)
        .bind(merge_id)
        .bind(self.clock.now_ms())
        .bind(a)
        .bind(b)
        .execute(self.db.writer())
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }

    /// Suggestions with `status` (`pending` by default), best first.
    pub async fn match_suggestions(&self, status: &str, limit: u32) -> Result<Vec<MatchSuggestion>, CustomersError> {
        if !matches!(status, "pending" | "merged" | "dismissed") {
            return Err(CustomersError::Invalid { field: "status", message: "pending, merged or dismissed".into() });
        }
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM customer_match_suggestions WHERE status = $1 ORDER BY score DESC, id LIMIT $2"
        ))
        .bind(status)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.db.reader())
        .await
        .map_err(StoreError::from)?;
        Ok(rows.iter().map(row_to_suggestion).collect::<Result<_, _>>()?)
    }

    async fn pending_suggestion(&self, id: &str) -> Result<MatchSuggestion, CustomersError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM customer_match_suggestions WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.reader())
            .await
            .map_err(StoreError::from)?
            .ok_or_else(|| CustomersError::NotFound(format!("suggestion {id}")))?;
        let s = row_to_suggestion(&row)?;
        // A decided suggestion is no longer pending: deciding again finds nothing (as undoing a
        // merge twice does).
        if s.status != "pending" {
            return Err(CustomersError::NotFound(format!("pending suggestion {id} ({} already)", s.status)));
        }
        Ok(s)
    }

    /// Accepts a pending suggestion: merges its pair (the older customer stays).
    pub async fn accept_suggestion(&self, id: &str, actor: &str) -> Result<crate::identity::Merge, CustomersError> {
        let s = self.pending_suggestion(id).await?;
        let m = self.merge(&s.a, &s.b, actor).await?;
        self.decide_pair(&s.a, &s.b, "merged", Some(&m.id)).await?;
        Ok(m)
    }

    /// Dismisses a pending suggestion: the pair is not suggested again.
    pub async fn dismiss_suggestion(&self, id: &str) -> Result<(), CustomersError> {
        let s = self.pending_suggestion(id).await?;
        self.decide_pair(&s.a, &s.b, "dismissed", None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_on_the_last_word() {
        assert_eq!(split_name("Ada  Lovelace"), (Some("Ada"), Some("Lovelace")));
        assert_eq!(split_name("Mary Jane Watson"), (Some("Mary Jane"), Some("Watson")));
        assert_eq!(split_name("Cher"), (None, Some("Cher")));
        assert_eq!(split_name("  "), (None, None));
    }

    #[test]
    fn thresholds_are_checked() {
        let bad =
            MatchRunRequest { review_threshold: Some(40.0), auto_merge_threshold: Some(20.0), ..Default::default() };
        assert!(matches!(bad.config(), Err(CustomersError::Invalid { .. })));
        let nan = MatchRunRequest { review_threshold: Some(f64::NAN), ..Default::default() };
        assert!(nan.config().is_err());
        let (c, auto) = MatchRunRequest::default().config().unwrap();
        assert!(auto && c.auto_merge_threshold >= c.review_threshold);
    }
}
