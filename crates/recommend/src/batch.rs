//! Recommendations for a list of customers, written as CSV (`user_id,rank,product_id`): what
//! `dermis recommend-batch` runs.

use std::collections::HashSet;
use std::io::Write;

use rayon::prelude::*;

use crate::data::{History, Interactions};
use crate::model::Model;

/// What a batch wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub users: usize,
    /// Users the interactions do not know.
    pub unknown_users: usize,
    /// Users with no positive signal, given the fallback's (or the model's) non-personal list.
    pub non_personal: usize,
    pub rows: usize,
}

/// Writes the top `k` of `model` for each of `users` (external ids, in order) to `out` with a
/// header, ranks from 1. Products the customer interacted with are never listed; with
/// `catalog`, only products whose external id is in it are. A customer with no positive signal
/// (unknown, or only "not for me") has nothing to personalize from and gets `fallback`'s list
/// (popularity) when one is given.
pub fn write_recommendations(
    model: &dyn Model,
    fallback: Option<&dyn Model>,
    data: &Interactions,
    users: &[String],
    k: usize,
    catalog: Option<&HashSet<String>>,
    out: &mut dyn Write,
) -> std::io::Result<BatchSummary> {
    let allowed: Option<Vec<bool>> = catalog.map(|c| data.items().ids().iter().map(|id| c.contains(id)).collect());
    let allow = allowed.as_ref().map(|a| move |i: u32| a[i as usize]);
    let allow_ref: Option<&(dyn Fn(u32) -> bool + Sync)> = allow.as_ref().map(|f| f as &(dyn Fn(u32) -> bool + Sync));
    let mut summary = BatchSummary::default();
    writeln!(out, "user_id,rank,product_id")?;
    // In chunks, so memory stays flat for long user lists while both cores work.
    for chunk in users.chunks(4096) {
        let lists: Vec<_> = chunk
            .par_iter()
            .map(|id| {
                let user = data.users().get(id);
                let history = user.map_or(History::EMPTY, |u| data.history(u));
                let personal = history.weights.iter().any(|&w| w > 0.0);
                let chosen = match fallback {
                    Some(f) if !personal => f,
                    _ => model,
                };
                (user.is_none(), !personal, chosen.recommend(history, k, allow_ref))
            })
            .collect();
        for (id, (unknown, impersonal, list)) in chunk.iter().zip(lists) {
            summary.users += 1;
            summary.unknown_users += usize::from(unknown);
            summary.non_personal += usize::from(impersonal);
            for (rank, s) in list.iter().enumerate() {
                writeln!(out, "{},{},{}", csv_field(id), rank + 1, csv_field(data.items().id(s.item)))?;
                summary.rows += 1;
            }
        }
    }
    Ok(summary)
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}
