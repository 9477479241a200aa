//! The feedback tables' SQL (one text for SQLite and PostgreSQL).

use dermis_store::sqlx::{self, Row};
use dermis_store::{Db, StoreError};

use crate::model::{Definition, Status};

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The definition.
    pub definition: Definition,
    /// Its status.
    pub status: Status,
    /// When it was created, started, stopped (ms).
    pub created_at: i64,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it stopped.
    pub stopped_at: Option<i64>,
}

fn decode(row: &dermis_store::sqlx::any::AnyRow) -> Result<Stored, StoreError> {
    let body: String = row.try_get("body")?;
    let status: String = row.try_get("status")?;
    Ok(Stored {
        definition: serde_json::from_str(&body).map_err(|e| StoreError::InvalidInput(format!("experiment: {e}")))?,
        status: Status::parse(&status).ok_or_else(|| StoreError::InvalidInput(format!("status {status}")))?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        stopped_at: row.try_get("stopped_at")?,
    })
}

const COLUMNS: &str = "key, status, body, created_at, started_at, stopped_at";

/// Inserts a new experiment; `false` when the key is taken.
pub async fn insert(db: &Db, definition: &Definition, now: i64) -> Result<bool, StoreError> {
    let body = serde_json::to_string(definition).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
    let done = sqlx::query(
        "INSERT INTO feedback_experiments (key, status, namespace, body, created_at) VALUES ($1, 'draft', $2, $3, $4) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(&definition.key)
    .bind(definition.namespace.as_ref().map(|n| n.id.clone()))
    .bind(body)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One experiment.
pub async fn get(db: &Db, key: &str) -> Result<Option<Stored>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM feedback_experiments WHERE key = $1"))
        .bind(key)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Every experiment, newest first.
pub async fn list(db: &Db) -> Result<Vec<Stored>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM feedback_experiments ORDER BY created_at DESC, key"))
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(decode).collect()
}

/// Moves an experiment from `from` to `to`; `false` when it was not in `from`.
pub async fn transition(db: &Db, key: &str, from: Status, to: Status, now: i64) -> Result<bool, StoreError> {
    let column = if to == Status::Running { "started_at" } else { "stopped_at" };
    let done = sqlx::query(&format!(
        "UPDATE feedback_experiments SET status = $1, {column} = $2 WHERE key = $3 AND status = $4"
    ))
    .bind(to.as_str())
    .bind(now)
    .bind(key)
    .bind(from.as_str())
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The variant and unit of an id already assigned in an experiment.
pub async fn assignment(db: &Db, experiment: &str, id_key: &str) -> Result<Option<(usize, String)>, StoreError> {
    Ok(assignment_with_propensity(db, experiment, id_key).await?.map(|(variant, unit, _)| (variant, unit)))
}

/// The variant, unit and propensity (when recorded) of an id already assigned in an experiment.
pub async fn assignment_with_propensity(
    db: &Db,
    experiment: &str,
    id_key: &str,
) -> Result<Option<(usize, String, Option<f64>)>, StoreError> {
    let row = sqlx::query(
        "SELECT variant, unit_key, propensity FROM feedback_assignments WHERE experiment = $1 AND id_key = $2",
    )
    .bind(experiment)
    .bind(id_key)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| Ok((r.try_get::<i64, _>(0)? as usize, r.try_get(1)?, r.try_get::<Option<f64>, _>(2)?))).transpose()
}

/// Records ids' assignment (an id assigned before keeps its first one), propensity unknown.
pub async fn assign(
    db: &Db,
    experiment: &str,
    id_keys: &[String],
    unit_key: &str,
    variant: usize,
    now: i64,
) -> Result<(), StoreError> {
    assign_with_propensity(db, experiment, id_keys, unit_key, variant, None, now).await
}

/// Records ids' assignment with the probability the variant had of being chosen (an id assigned
/// before keeps its first one).
pub async fn assign_with_propensity(
    db: &Db,
    experiment: &str,
    id_keys: &[String],
    unit_key: &str,
    variant: usize,
    propensity: Option<f64>,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    for id_key in id_keys {
        sqlx::query(
            "INSERT INTO feedback_assignments (experiment, id_key, unit_key, variant, assigned_at, propensity) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (experiment, id_key) DO NOTHING",
        )
        .bind(experiment)
        .bind(id_key)
        .bind(unit_key)
        .bind(variant as i64)
        .bind(now)
        .bind(propensity)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every unit of running experiments that one of these ids belongs to: (experiment, unit).
pub async fn units_of(db: &Db, id_keys: &[String]) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for id_key in id_keys {
        let rows = sqlx::query(
            "SELECT a.experiment, a.unit_key FROM feedback_assignments a, feedback_experiments e \
             WHERE a.id_key = $1 AND e.key = a.experiment AND e.status = 'running'",
        )
        .bind(id_key)
        .fetch_all(db.reader())
        .await?;
        for row in rows {
            let pair: (String, String) = (row.try_get(0)?, row.try_get(1)?);
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    Ok(out)
}

/// Marks a message counted; `false` when it was counted before.
pub async fn first_sight(db: &Db, message_key: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO feedback_seen (message_key, seen_at) VALUES ($1, $2) ON CONFLICT (message_key) DO NOTHING",
    )
    .bind(message_key)
    .bind(now)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets a sighting (the message could not be counted; its retry will be).
pub async fn unsee(db: &Db, message_key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM feedback_seen WHERE message_key = $1").bind(message_key).execute(db.writer()).await?;
    Ok(())
}

/// A unit's exposure (the first one counts); `true` when this one made the unit.
pub async fn expose(db: &Db, experiment: &str, unit_key: &str, variant: usize, at: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO feedback_units (experiment, unit_key, variant, exposed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (experiment, unit_key) DO NOTHING",
    )
    .bind(experiment)
    .bind(unit_key)
    .bind(variant as i64)
    .bind(at)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a unit did in its pre-period (the CUPED covariates).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrePeriod {
    /// Product clicks.
    pub clicks: f64,
    /// Add-to-carts.
    pub add_to_carts: f64,
    /// Orders.
    pub conversions: f64,
    /// Revenue.
    pub revenue: f64,
}

/// Records what is known of a new unit: the propensity of its variant and its pre-period (read
/// at `now`).
pub async fn describe_unit(
    db: &Db,
    experiment: &str,
    unit_key: &str,
    propensity: Option<f64>,
    pre: Option<PrePeriod>,
    now: i64,
) -> Result<(), StoreError> {
    let p = pre.unwrap_or_default();
    sqlx::query(
        "UPDATE feedback_units SET propensity = $1, pre_at = $2, pre_clicks = $3, pre_add_to_carts = $4, \
         pre_conversions = $5, pre_revenue = $6 WHERE experiment = $7 AND unit_key = $8",
    )
    .bind(propensity)
    .bind(pre.map(|_| now))
    .bind(p.clicks)
    .bind(p.add_to_carts)
    .bind(p.conversions)
    .bind(p.revenue)
    .bind(experiment)
    .bind(unit_key)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// What one event adds to a unit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Product clicks.
    pub clicks: i64,
    /// Add-to-carts.
    pub add_to_carts: i64,
    /// Orders.
    pub conversions: i64,
    /// Revenue.
    pub revenue: f64,
    /// Returns and refunds.
    pub returns: i64,
    /// Adverse reactions reported.
    pub reactions: i64,
}

/// Adds an event's outcome to a unit exposed at or before `at`.
pub async fn add_outcome(db: &Db, experiment: &str, unit_key: &str, at: i64, o: Outcome) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE feedback_units SET clicks = clicks + $1, add_to_carts = add_to_carts + $2, \
         conversions = conversions + $3, revenue = revenue + $4, returns = returns + $5, reactions = reactions + $6 \
         WHERE experiment = $7 AND unit_key = $8 AND exposed_at <= $9",
    )
    .bind(o.clicks)
    .bind(o.add_to_carts)
    .bind(o.conversions)
    .bind(o.revenue)
    .bind(o.returns)
    .bind(o.reactions)
    .bind(experiment)
    .bind(unit_key)
    .bind(at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Sufficient statistics of one variant's units.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VariantTotals {
    /// Units exposed.
    pub units: u64,
    /// Units that clicked.
    pub clicked: u64,
    /// Units that added to cart.
    pub added: u64,
    /// Units that ordered.
    pub converted: u64,
    /// Σ revenue per unit.
    pub revenue: f64,
    /// Σ revenue² per unit.
    pub revenue_squares: f64,
    /// Units that returned something.
    pub returned: u64,
    /// Units that reported a reaction.
    pub reacted: u64,
}

/// Totals per variant index.
pub async fn totals(db: &Db, experiment: &str) -> Result<Vec<(usize, VariantTotals)>, StoreError> {
    let rows = sqlx::query(
        "SELECT variant, COUNT(*), \
         SUM(CASE WHEN clicks > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN add_to_carts > 0 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN conversions > 0 THEN 1 ELSE 0 END), SUM(revenue), SUM(revenue * revenue), \
         SUM(CASE WHEN returns > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN reactions > 0 THEN 1 ELSE 0 END) \
         FROM feedback_units WHERE experiment = $1 GROUP BY variant ORDER BY variant",
    )
    .bind(experiment)
    .fetch_all(db.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let count =
            |i: usize| -> Result<u64, StoreError> { Ok(row.try_get::<Option<i64>, _>(i)?.unwrap_or(0).max(0) as u64) };
        out.push((
            row.try_get::<i64, _>(0)? as usize,
            VariantTotals {
                units: count(1)?,
                clicked: count(2)?,
                added: count(3)?,
                converted: count(4)?,
                revenue: row.try_get::<Option<f64>, _>(5)?.unwrap_or(0.0),
                revenue_squares: row.try_get::<Option<f64>, _>(6)?.unwrap_or(0.0),
                returned: count(7)?,
                reacted: count(8)?,
            },
        ));
    }
    Ok(out)
}

/// The CUPED sums of one covariate `x` (a pre-period value) against its metric `y` in one
/// variant: Σx, Σx², Σxy and the units with `x > 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CovariateSums {
    /// Σ x.
    pub sum: f64,
    /// Σ x².
    pub sum_squares: f64,
    /// Σ x·y.
    pub sum_products: f64,
    /// Units with a non-zero covariate.
    pub with_history: u64,
}

/// One variant's CUPED sums.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CupedTotals {
    /// Units whose pre-period was read (the others count as 0).
    pub looked_up: u64,
    /// Pre-period clicks against clicking (0 or 1).
    pub clicks: CovariateSums,
    /// Pre-period add-to-carts against adding to cart (0 or 1).
    pub add_to_carts: CovariateSums,
    /// Pre-period orders against ordering (0 or 1).
    pub conversions: CovariateSums,
    /// Pre-period revenue against revenue.
    pub revenue: CovariateSums,
}

/// The CUPED sums per variant index. Computed from each unit's stored metric and covariate, so a
/// unit whose metric grows over several outcome events is summed with its current value.
pub async fn cuped_totals(db: &Db, experiment: &str) -> Result<Vec<(usize, CupedTotals)>, StoreError> {
    let mut columns = vec!["variant".to_owned(), "COUNT(pre_at)".to_owned()];
    // Σxy: for a unit's 0-or-1 metric, the covariate where the metric is 1.
    for (x, xy) in [
        ("pre_clicks", "CASE WHEN clicks > 0 THEN pre_clicks ELSE 0.0 END"),
        ("pre_add_to_carts", "CASE WHEN add_to_carts > 0 THEN pre_add_to_carts ELSE 0.0 END"),
        ("pre_conversions", "CASE WHEN conversions > 0 THEN pre_conversions ELSE 0.0 END"),
        ("pre_revenue", "pre_revenue * revenue"),
    ] {
        columns.push(format!("SUM({x})"));
        columns.push(format!("SUM({x} * {x})"));
        columns.push(format!("SUM({xy})"));
        columns.push(format!("SUM(CASE WHEN {x} > 0 THEN 1 ELSE 0 END)"));
    }
    let rows = sqlx::query(&format!(
        "SELECT {} FROM feedback_units WHERE experiment = $1 GROUP BY variant ORDER BY variant",
        columns.join(", ")
    ))
    .bind(experiment)
    .fetch_all(db.reader())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let count =
            |i: usize| -> Result<u64, StoreError> { Ok(row.try_get::<Option<i64>, _>(i)?.unwrap_or(0).max(0) as u64) };
        let real = |i: usize| -> Result<f64, StoreError> { Ok(row.try_get::<Option<f64>, _>(i)?.unwrap_or(0.0)) };
        let sums = |i: usize| -> Result<CovariateSums, StoreError> {
            Ok(CovariateSums {
                sum: real(i)?,
                sum_squares: real(i + 1)?,
                sum_products: real(i + 2)?,
                with_history: count(i + 3)?,
            })
        };
        out.push((
            row.try_get::<i64, _>(0)? as usize,
            CupedTotals {
                looked_up: count(1)?,
                clicks: sums(2)?,
                add_to_carts: sums(6)?,
                conversions: sums(10)?,
                revenue: sums(14)?,
            },
        ));
    }
    Ok(out)
}

/// A unit as off-policy evaluation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedUnit {
    /// Its key (a pseudonym).
    pub unit_key: String,
    /// Its variant index.
    pub variant: usize,
    /// The probability its variant had of being chosen for it.
    pub propensity: f64,
    /// Whether it ordered.
    pub converted: bool,
    /// Its revenue.
    pub revenue: f64,
}

/// The units of an experiment with a known propensity, and how many have none.
pub async fn logged_units(db: &Db, experiment: &str) -> Result<(Vec<LoggedUnit>, u64), StoreError> {
    let rows = sqlx::query(
        "SELECT unit_key, variant, propensity, conversions, revenue FROM feedback_units \
         WHERE experiment = $1 AND propensity IS NOT NULL ORDER BY unit_key",
    )
    .bind(experiment)
    .fetch_all(db.reader())
    .await?;
    let units = rows
        .iter()
        .map(|r| {
            Ok(LoggedUnit {
                unit_key: r.try_get(0)?,
                variant: r.try_get::<i64, _>(1)?.max(0) as usize,
                propensity: r.try_get(2)?,
                converted: r.try_get::<i64, _>(3)? > 0,
                revenue: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let missing: i64 = sqlx::query("SELECT COUNT(*) FROM feedback_units WHERE experiment = $1 AND propensity IS NULL")
        .bind(experiment)
        .fetch_one(db.reader())
        .await?
        .try_get(0)?;
    Ok((units, missing.max(0) as u64))
}

/// Forgets erased visitors (their pseudonyms) in every experiment.
pub async fn forget(db: &Db, id_keys: &[String]) -> Result<(), StoreError> {
    for id_key in id_keys {
        let units: Vec<(String, String)> =
            sqlx::query("SELECT experiment, unit_key FROM feedback_assignments WHERE id_key = $1")
                .bind(id_key)
                .fetch_all(db.reader())
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, StoreError>>()?;
        let mut tx = db.begin().await?;
        for (experiment, unit) in units {
            sqlx::query("DELETE FROM feedback_units WHERE experiment = $1 AND unit_key = $2")
                .bind(&experiment)
                .bind(&unit)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM feedback_assignments WHERE experiment = $1 AND unit_key = $2")
                .bind(&experiment)
                .bind(&unit)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM feedback_quiz_responses WHERE visitor_key = $1")
            .bind(id_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
