//! Checks of a variant's configuration that other domains own: the recommendation engine knows
//! what `rules` may say, this domain does not (and does not depend on it). The server, where
//! both meet, gives [`crate::Experiments`] a [`VariantConfigCheck`]; an experiment whose
//! variant fails it is refused at creation (a 422 naming `variants[i].config.<field>`).

use dermis_core::FieldError;
use serde_json::Value;

use crate::model::Definition;

/// Checks one variant's configuration.
pub trait VariantConfigCheck: Send + Sync + 'static {
    /// The problems of `config`: (field under the config, e.g. `rules[1].when`, message).
    fn check(&self, config: &Value) -> Vec<(String, String)>;
}

/// The problems of every variant of `definition`, named by field.
pub fn problems(check: &dyn VariantConfigCheck, definition: &Definition) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, v) in definition.variants.iter().enumerate() {
        for (field, message) in check.check(&v.config) {
            errors.push(FieldError::new(format!("variants[{i}].config.{field}"), message));
        }
    }
    errors
}
