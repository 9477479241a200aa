//! An experiment's definition as a brand writes it, and its checks: a split that does not sum to
//! 1, a bad coverage or namespace share, duplicate variant keys are refused with the field named.

use dermis_core::FieldError;
use dermis_experiments::growthbook::{self, Namespace};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Defined, assigning no one.
    Draft,
    /// Assigning visitors.
    Running,
    /// Stopped: assigns no one; results stay.
    Stopped,
}

impl Status {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }

    /// From storage.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "running" => Some(Self::Running),
            "stopped" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// A variant: index 0 is the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantDef {
    /// Its key (`control`, `ease-v2` ...), unique in the experiment.
    pub key: String,
    /// Its share of the traffic; the weights sum to 1.
    pub weight: f64,
    /// What the variant does, for the placement that reads it: e.g. a recommendation strategy
    /// (`{"model": "ease"}`), blend weights, business rules. Any JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Value,
}

/// Who may enter: empty lists let everyone in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Targeting {
    /// Skin types (`dry`, `oily` ...).
    #[serde(default)]
    pub skin_types: Vec<String>,
    /// Channels (`web`, `app`, `pos` ...).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Regions (the brand's codes, e.g. `DE`, `FR`).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Loyalty tiers.
    #[serde(default)]
    pub loyalty_tiers: Vec<String>,
}

/// How traffic is split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Allocation {
    /// By the variants' weights, for the whole run.
    #[default]
    Fixed,
    /// Thompson sampling on conversion: every variant gets at least `min_units` visitors, then
    /// new visitors go to each with the probability that it is the best (refreshed at most once
    /// a second). Visitors already assigned keep their variant.
    Bandit {
        /// Visitors each variant gets before the split follows the results.
        #[serde(default = "default_min_units")]
        min_units: u64,
    },
}

fn default_min_units() -> u64 {
    100
}

/// A namespace share: experiments of one namespace with disjoint shares never share a visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDef {
    /// The namespace.
    pub id: String,
    /// Start of the share, in `[0, 1)`.
    pub start: f64,
    /// End of the share, in `(start, 1]`.
    pub end: f64,
}

/// An experiment as defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Its key: `[a-z0-9_-]`, 1 to 64 characters; the hash seed.
    pub key: String,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// The placement it runs on (`home`, `pdp`, `cart` ...), if any.
    #[serde(default)]
    pub placement: Option<String>,
    /// The variants, control first.
    pub variants: Vec<VariantDef>,
    /// The share of visitors that enter (after the namespace), `[0, 1]`.
    #[serde(default = "one")]
    pub coverage: f64,
    /// A namespace share, for mutually exclusive experiments.
    #[serde(default)]
    pub namespace: Option<NamespaceDef>,
    /// GrowthBook's hash version: 2 (default) or 1.
    #[serde(default = "two")]
    pub hash_version: u32,
    /// Who may enter.
    #[serde(default)]
    pub targeting: Targeting,
    /// Fixed split or bandit.
    #[serde(default)]
    pub allocation: Allocation,
}

fn one() -> f64 {
    1.0
}

fn two() -> u32 {
    2
}

impl Definition {
    /// The GrowthBook experiment this definition assigns with, with these weights.
    pub fn growthbook(&self, weights: Option<Vec<f64>>) -> growthbook::Experiment {
        growthbook::Experiment {
            key: self.key.clone(),
            seed: None,
            hash_version: self.hash_version,
            variations: self.variants.len(),
            weights: Some(weights.unwrap_or_else(|| self.variants.iter().map(|v| v.weight).collect())),
            coverage: self.coverage,
            namespace: self.namespace.as_ref().map(|n| Namespace::new(n.id.clone(), n.start, n.end)),
            ranges: None,
            active: true,
        }
    }

    /// Every problem of the definition, by field.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let key_ok = !self.key.is_empty()
            && self.key.len() <= 64
            && self.key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !key_ok {
            errors.push(FieldError::new("key", "1 to 64 characters of a-z, 0-9, - and _"));
        }
        if self.name.len() > 200 {
            errors.push(FieldError::new("name", "at most 200 characters"));
        }
        if self.placement.as_ref().is_some_and(|p| p.is_empty() || p.len() > 64) {
            errors.push(FieldError::new("placement", "1 to 64 characters"));
        }
        if !(2..=20).contains(&self.variants.len()) {
            errors.push(FieldError::new("variants", "2 to 20 variants, the control first"));
        }
        for (i, v) in self.variants.iter().enumerate() {
            if v.key.is_empty() || v.key.len() > 64 {
                errors.push(FieldError::new(format!("variants[{i}].key"), "1 to 64 characters"));
            }
            if self.variants[..i].iter().any(|o| o.key == v.key) {
                errors.push(FieldError::new(format!("variants[{i}].key"), "used by another variant"));
            }
            if !v.weight.is_finite() || v.weight < 0.0 {
                errors.push(FieldError::new(format!("variants[{i}].weight"), "a share between 0 and 1"));
            }
            if !(v.config.is_object() || v.config.is_null()) || v.config.to_string().len() > 16_384 {
                errors.push(FieldError::new(format!("variants[{i}].config"), "a JSON object of at most 16 KB"));
            }
        }
        let total: f64 = self.variants.iter().map(|v| v.weight).sum();
        if self.variants.len() >= 2 && (total - 1.0).abs() > 1e-6 {
            errors.push(FieldError::new("variants", format!("the weights sum to {total}, not 1")));
        }
        if !(0.0..=1.0).contains(&self.coverage) {
            errors.push(FieldError::new("coverage", "a share between 0 and 1"));
        }
        if let Some(ns) = &self.namespace
            && (ns.id.is_empty() || ns.id.len() > 64 || !(0.0 <= ns.start && ns.start < ns.end && ns.end <= 1.0))
        {
            errors.push(FieldError::new("namespace", "an id and a share 0 <= start < end <= 1"));
        }
        if !matches!(self.hash_version, 1 | 2) {
            errors.push(FieldError::new("hash_version", "1 or 2"));
        }
        let t = &self.targeting;
        for (name, list) in [
            ("targeting.skin_types", &t.skin_types),
            ("targeting.channels", &t.channels),
            ("targeting.regions", &t.regions),
            ("targeting.loyalty_tiers", &t.loyalty_tiers),
        ] {
            if list.len() > 50 || list.iter().any(|x| x.is_empty() || x.len() > 64) {
                errors.push(FieldError::new(name, "at most 50 values of 1 to 64 characters"));
            }
        }
        if let Allocation::Bandit { min_units } = self.allocation
            && min_units > 1_000_000
        {
            errors.push(FieldError::new("allocation.min_units", "at most 1,000,000"));
        }
        errors
    }

    /// Whether two definitions could share a visitor through their namespaces.
    pub fn overlaps(&self, other: &Definition) -> bool {
        match (&self.namespace, &other.namespace) {
            (Some(a), Some(b)) => a.id == b.id && a.start < b.end && b.start < a.end,
            _ => false,
        }
    }
}

/// What is known of a visitor for targeting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Skin type.
    pub skin_type: Option<String>,
    /// Channel.
    pub channel: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Loyalty tier.
    pub loyalty_tier: Option<String>,
}

impl Targeting {
    /// Whether a visitor with these attributes may enter (an empty list lets everyone in; a
    /// list needs the attribute to be one of its values).
    pub fn admits(&self, a: &Attributes) -> bool {
        let fits = |list: &[String], value: &Option<String>| {
            list.is_empty() || value.as_ref().is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        fits(&self.skin_types, &a.skin_type)
            && fits(&self.channels, &a.channel)
            && fits(&self.regions, &a.region)
            && fits(&self.loyalty_tiers, &a.loyalty_tier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(weights: &[f64]) -> Definition {
        Definition {
            key: "home-recs".into(),
            name: String::new(),
            placement: Some("home".into()),
            variants: weights
                .iter()
                .enumerate()
                .map(|(i, w)| VariantDef { key: format!("v{i}"), weight: *w, config: Value::Null })
                .collect(),
            coverage: 1.0,
            namespace: None,
            hash_version: 2,
            targeting: Targeting::default(),
            allocation: Allocation::Fixed,
        }
    }

    #[test]
    fn a_split_must_sum_to_one() {
        assert!(definition(&[0.5, 0.5]).problems().is_empty());
        let bad = definition(&[0.5, 0.6]).problems();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].message.contains("sum to 1.1"), "{bad:?}");
    }

    #[test]
    fn namespaces_overlap_only_on_shared_ranges() {
        let mut a = definition(&[0.5, 0.5]);
        let mut b = definition(&[0.5, 0.5]);
        a.namespace = Some(NamespaceDef { id: "home".into(), start: 0.0, end: 0.5 });
        b.namespace = Some(NamespaceDef { id: "home".into(), start: 0.5, end: 1.0 });
        assert!(!a.overlaps(&b));
        b.namespace = Some(NamespaceDef { id: "home".into(), start: 0.4, end: 1.0 });
        assert!(a.overlaps(&b));
        b.namespace = Some(NamespaceDef { id: "pdp".into(), start: 0.4, end: 1.0 });
        assert!(!a.overlaps(&b));
    }

    #[test]
    fn targeting_lets_in_listed_values_only() {
        let t = Targeting { skin_types: vec!["dry".into()], ..Targeting::default() };
        assert!(t.admits(&Attributes { skin_type: Some("Dry".into()), ..Attributes::default() }));
        assert!(!t.admits(&Attributes { skin_type: Some("oily".into()), ..Attributes::default() }));
        assert!(!t.admits(&Attributes::default()), "unknown skin type: not targeted");
        assert!(Targeting::default().admits(&Attributes::default()));
    }
}

/// The revenue an `Order Completed` event (or another outcome) states: its `revenue`, `total` or
/// `value`, else the sum of its products' price × quantity; never negative.
pub(crate) fn revenue(properties: &Value) -> f64 {
    for key in ["revenue", "total", "value"] {
        if let Some(v) = properties.get(key).and_then(Value::as_f64)
            && v.is_finite()
            && v >= 0.0
        {
            return v;
        }
    }
    properties
        .get("products")
        .and_then(Value::as_array)
        .map(|products| {
            products
                .iter()
                .map(|p| {
                    let price = p.get("price").and_then(Value::as_f64).unwrap_or(0.0);
                    let quantity = p.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
                    if price.is_finite() && quantity.is_finite() && price >= 0.0 && quantity >= 0.0 {
                        price * quantity
                    } else {
                        0.0
                    }
                })
                .sum()
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod revenue_tests {
    use super::*;

    #[test]
    fn revenue_comes_from_the_total_or_the_products() {
        assert_eq!(revenue(&serde_json::json!({"revenue": 42.5})), 42.5);
        let products = serde_json::json!({"products": [{"price": 10.0, "quantity": 2}, {"price": 5.0}]});
        assert_eq!(revenue(&products), 25.0);
        assert_eq!(revenue(&serde_json::json!({"revenue": -3})), 0.0, "a negative total is not revenue");
    }
}
