//! What an experiment's variant on a placement may change in a recommendation request besides
//! the source weights (`blend`): its own business rules (`rules`, boost, bury and pin as in the
//! engine's rules file, applied after them) and the order of the top of the list (`contextual`,
//! chosen by a [`TopOrdering`] the experiments domain provides: a contextual bandit). Both act
//! through the request's [`Rerank`](super::rerank::Rerank): on the list the safety layer
//! produced, which they can reorder but never add to, so no rule and no exploration can show a
//! product the safety layer excluded.

use serde_json::Value;

use super::engine::TimeOfDay;
use super::products::ProductEntry;
use crate::expr::{BusinessRules, RulesError};

/// What the request says about its visitor and moment, as a contextual ordering reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServedContext {
    /// The profile's skin type.
    pub skin_type: Option<String>,
    /// The channel (`web`, `app`, `pos`, `marketplace:NAME`).
    pub channel: Option<String>,
    /// Morning or evening routine, when the request says.
    pub time_of_day: Option<TimeOfDay>,
    /// The UV index where the customer is, when the request gave a location.
    pub uv_index: Option<f32>,
}

/// Chooses the top positions of a list among its first items, and learns from what was shown
/// (a contextual bandit of an experiment's variant).
pub trait TopOrdering: Send + Sync + std::fmt::Debug {
    /// Indices into `candidates` (product ids, in ranked order) to put first, best first (at
    /// most as many as it orders; the rest keep their order).
    fn order(&self, context: &ServedContext, candidates: &[&str]) -> Vec<usize>;

    /// The response `recommendation_id` showed `shown` (product id and external id, in order):
    /// what it placed first is remembered, for the rewards that name the response later.
    fn served(&self, recommendation_id: &str, context: &ServedContext, shown: &[(&str, Option<&str>)]);
}

/// Most rules a variant may carry.
pub const MAX_VARIANT_RULES: usize = 50;

/// A variant's rules (`config.rules`, an array of rules as in the rules file: `{"id", "when",
/// "action": {"type": "boost" | "bury" | "pin", ...}, "placements"}`), compiled; `None` when
/// it has none. Errors name the field under the config: `rules[2].when` and why.
pub fn rules(config: &Value) -> Result<Option<BusinessRules>, Vec<(String, String)>> {
    let Some(list) = config.get("rules") else { return Ok(None) };
    let Some(array) = list.as_array() else {
        return Err(vec![("rules".into(), "an array of rules: {id, when, action, placements}".into())]);
    };
    if array.len() > MAX_VARIANT_RULES {
        return Err(vec![("rules".into(), format!("at most {MAX_VARIANT_RULES} rules"))]);
    }
    let index = |id: &str| array.iter().position(|r| r.get("id").and_then(Value::as_str) == Some(id));
    let text = serde_json::json!({ "rules": list }).to_string();
    match super::filter::rules(&text) {
        Ok(r) => Ok(Some(r)),
        Err(RulesError::Expr { rule, source }) => {
            let field = index(&rule).map_or("rules".to_owned(), |i| format!("rules[{i}].when"));
            Err(vec![(field, source.to_string())])
        }
        Err(RulesError::Invalid { rule, reason }) => {
            let field = index(&rule).map_or("rules".to_owned(), |i| format!("rules[{i}]"));
            Err(vec![(field, reason)])
        }
        Err(RulesError::Json(e)) => Err(vec![("rules".into(), e.to_string())]),
    }
}

/// The reordering a variant asks for: its `rules` on the safe list (as the engine's own rules
/// are applied: boosts, then burials, then pins), then `top` choosing the first positions.
pub fn rerank<'a>(
    rules: Option<&'a BusinessRules>,
    placement: Option<&'a str>,
    top: Option<(&'a dyn TopOrdering, &'a ServedContext)>,
) -> impl Fn(&[(&ProductEntry, f32)]) -> Vec<(usize, f32)> + Send + Sync + 'a {
    move |list: &[(&ProductEntry, f32)]| {
        let mut items: Vec<(usize, f32)> = list.iter().enumerate().map(|(i, &(_, s))| (i, s)).collect();
        if let Some(r) = rules {
            r.apply_with(placement, &mut items, |t| t.1, |t, v| t.1 = v, |t, e| e.eval(list[t.0].0));
        }
        if let Some((top, context)) = top {
            let ids: Vec<&str> = items.iter().map(|t| list[t.0].0.id.as_str()).collect();
            let mut picked = vec![false; items.len()];
            let mut out = Vec::with_capacity(items.len());
            for c in top.order(context, &ids) {
                if c < items.len() && !picked[c] {
                    picked[c] = true;
                    out.push(items[c]);
                }
            }
            out.extend(items.iter().zip(&picked).filter(|(_, p)| !**p).map(|(t, _)| *t));
            items = out;
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_rules_name_their_field() {
        assert!(rules(&json!({"blend": {}})).unwrap().is_none());
        let ok = json!({"rules": [{"id": "no-oils", "when": "concerns has \"acne\"", "action": {"type": "bury"}}]});
        assert_eq!(rules(&ok).unwrap().unwrap().rules().count(), 1);
        let bad = json!({"rules": [
            {"id": "a", "when": "price < 10", "action": {"type": "bury"}},
            {"id": "b", "when": "price <=", "action": {"type": "bury"}}]});
        let e = rules(&bad).unwrap_err();
        assert_eq!(e[0].0, "rules[1].when", "{e:?}");
        assert!(e[0].1.contains("expected a value"), "{e:?}");
        let unknown = json!({"rules": [{"id": "a", "when": "colour = \"red\"", "action": {"type": "bury"}}]});
        assert_eq!(rules(&unknown).unwrap_err()[0].0, "rules[0].when");
        let zero = json!({"rules": [{"id": "a", "when": "true", "action": {"type": "pin", "position": 0}}]});
        assert_eq!(rules(&zero).unwrap_err()[0].0, "rules[0]");
        let shape = json!({"rules": [{"id": "a", "when": "true", "action": {"type": "shuffle"}}]});
        assert_eq!(rules(&shape).unwrap_err()[0].0, "rules");
        assert_eq!(rules(&json!({"rules": {"id": "a"}})).unwrap_err()[0].0, "rules");
    }
}
