//! Experiments on recommendation placements: the recommendation routes ask through their own
//! trait ([`PlacementExperiments`]); the experiments domain answers. Wired here because the
//! server is where both sides meet:
//! - a variant's `config.blend` (source weights) is read by the routes;
//! - its `config.rules` (boost, bury, pin, as the engine's rules file) are compiled here, once
//!   per variant, and applied by the engine after its own rules, on the safe list only;
//! - its `config.contextual` (`{"top", "pool", "alpha"}`) gets the variant's contextual bandit
//!   ([`dermis_feedback::contextual`]) to choose the top of the list;
//! - [`VariantChecks`] lets the experiments domain refuse a variant whose `rules` or
//!   `contextual` are invalid when the experiment is created (a 422 naming the field).

use std::sync::Arc;

use dermis_feedback::Experiments;
use dermis_feedback::contextual::{Contextual, ContextualConfig, Features, VariantBandit};
use dermis_feedback::model::Attributes;
use dermis_feedback::variants::VariantConfigCheck;
use dermis_recommend::expr::BusinessRules;
use dermis_recommend::routes::{PlacementExperiments, PlacementVariant};
use dermis_recommend::serving::TimeOfDay;
use dermis_recommend::serving::variant::{self, ServedContext, TopOrdering};
use serde_json::Value;

/// A variant's compiled rules, with the rules they were compiled from.
type CompiledRules = Arc<(Value, Option<Arc<BusinessRules>>)>;

/// The experiments domain as the recommendation routes see it.
pub struct Placements {
    experiments: Experiments,
    contextual: Contextual,
    /// Compiled rules by (experiment, variant).
    rules: moka::sync::Cache<(String, String), CompiledRules>,
}

impl Placements {
    /// Over `experiments`, with this node's contextual bandits.
    pub fn new(experiments: Experiments, contextual: Contextual) -> Self {
        Self { experiments, contextual, rules: moka::sync::Cache::new(10_000) }
    }

    fn rules_of(&self, experiment: &str, variant: &str, config: &Value) -> Option<Arc<BusinessRules>> {
        let source = config.get("rules")?;
        let key = (experiment.to_owned(), variant.to_owned());
        if let Some(hit) = self.rules.get(&key)
            && &hit.0 == source
        {
            return hit.1.clone();
        }
        let compiled = match variant::rules(config) {
            Ok(r) => r.map(Arc::new),
            Err(errors) => {
                // Checked when the experiment was created; one defined before the check is
                // served without its rules.
                tracing::warn!(experiment, variant, ?errors, "a variant's rules do not compile; served without them");
                None
            }
        };
        self.rules.insert(key, Arc::new((source.clone(), compiled.clone())));
        compiled
    }
}

impl PlacementExperiments for Placements {
    fn variant(
        &self,
        placement: &str,
        unit: &str,
        channel: Option<&str>,
        skin_type: Option<&str>,
    ) -> Option<PlacementVariant> {
        let attributes = Attributes {
            skin_type: skin_type.map(str::to_owned),
            channel: channel.map(str::to_owned),
            ..Attributes::default()
        };
        let (experiment, variant, config) = self.experiments.placement_variant(placement, unit, &attributes)?;
        let rules = self.rules_of(&experiment, &variant, &config);
        let top = match ContextualConfig::from_config(&config) {
            Ok(Some(c)) => {
                Some(Arc::new(Top(self.contextual.variant(&experiment, &variant, c))) as Arc<dyn TopOrdering>)
            }
            Ok(None) => None,
            Err(errors) => {
                tracing::warn!(
                    experiment,
                    variant,
                    ?errors,
                    "a variant's contextual configuration is invalid; ignored"
                );
                None
            }
        };
        Some(PlacementVariant { experiment, variant, config, rules, top })
    }
}

/// A variant's contextual bandit, as the recommendation routes use it.
#[derive(Debug)]
struct Top(VariantBandit);

fn features(c: &ServedContext) -> Features<'_> {
    Features {
        skin_type: c.skin_type.as_deref(),
        channel: c.channel.as_deref(),
        pm: c.time_of_day.map(|t| t == TimeOfDay::Pm),
        uv_index: c.uv_index.map(f64::from),
    }
}

impl TopOrdering for Top {
    fn order(&self, context: &ServedContext, candidates: &[&str]) -> Vec<usize> {
        self.0.order(&features(context), candidates)
    }

    fn served(&self, recommendation_id: &str, context: &ServedContext, shown: &[(&str, Option<&str>)]) {
        self.0.served(recommendation_id, &features(context), shown);
    }
}

/// Checks a variant's `rules` (as the recommendation engine reads them) and `contextual`.
#[derive(Debug, Default)]
pub struct VariantChecks;

impl VariantConfigCheck for VariantChecks {
    fn check(&self, config: &Value) -> Vec<(String, String)> {
        let mut errors = variant::rules(config).err().unwrap_or_default();
        errors.extend(ContextualConfig::from_config(config).err().unwrap_or_default());
        errors
    }
}
