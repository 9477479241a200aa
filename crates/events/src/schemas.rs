//! The registry of event schemas: `schemas/<name>.v<N>.json`, compiled in. A `track` event whose
//! name (`Product Viewed` or `product_viewed`, any case) is registered must have `properties`
//! valid against the highest version; other event names are accepted as custom events.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

macro_rules! schema_files {
    ($($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!("../schemas/", $name)))),+]
    };
}

const FILES: &[(&str, &str)] = schema_files!(
    "product_viewed.v1.json",
    "product_added.v1.json",
    "product_removed.v1.json",
    "cart_viewed.v1.json",
    "checkout_started.v1.json",
    "order_completed.v1.json",
    "order_refunded.v1.json",
    "order_cancelled.v1.json",
    "products_searched.v1.json",
    "product_reviewed.v1.json",
    "experiment_viewed.v1.json",
    "skin_quiz_completed.v1.json",
    "survey_response.v1.json",
    "poll_answer.v1.json",
    "routine_logged.v1.json",
    "reaction_reported.v1.json",
    "pos_transaction.v1.json",
    "skin_measurement_recorded.v1.json",
    "dermatologist_assessment_recorded.v1.json",
);

struct Entry {
    reference: String,
    version: u32,
    validator: Arc<jsonschema::Validator>,
}

/// The schemas, by normalized event name.
pub struct SchemaRegistry {
    by_event: HashMap<String, Entry>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry").field("events", &self.by_event.len()).finish()
    }
}

/// `Product Viewed`, `product_viewed` and `PRODUCT VIEWED` are one event.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase().replace([' ', '-'], "_")
}

/// The result of checking one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No schema is registered for this event name.
    Unregistered,
    /// Valid against this schema (`product_viewed@1`).
    Valid(String),
    /// Invalid: the schema and the errors (`/price: -1 is less than the minimum of 0`).
    Invalid(String, Vec<String>),
}

impl SchemaRegistry {
    /// The schemas shipped with this build.
    pub fn bundled() -> &'static SchemaRegistry {
        static REGISTRY: OnceLock<SchemaRegistry> = OnceLock::new();
        REGISTRY.get_or_init(|| Self::from_files(FILES).expect("the bundled event schemas are valid"))
    }

    /// Builds a registry from `(file name, JSON Schema)` pairs.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Self, String> {
        let mut by_event: HashMap<String, Entry> = HashMap::new();
        for (file, text) in files {
            let (stem, version) = file
                .strip_suffix(".json")
                .and_then(|s| s.rsplit_once(".v"))
                .and_then(|(n, v)| v.parse::<u32>().ok().map(|v| (n, v)))
                .ok_or_else(|| format!("{file}: name must be <event>.v<N>.json"))?;
            let schema: Value = serde_json::from_str(text).map_err(|e| format!("{file}: {e}"))?;
            let validator = Arc::new(jsonschema::validator_for(&schema).map_err(|e| format!("{file}: {e}"))?);
            let mut names = vec![stem.to_owned()];
            if let Some(Value::Array(extra)) = schema.get("x-event-names") {
                names.extend(extra.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            for name in names {
                let key = normalize_name(&name);
                let newer = by_event.get(&key).is_none_or(|e| e.version < version);
                if newer {
                    by_event.insert(
                        key,
                        Entry { reference: format!("{stem}@{version}"), version, validator: validator.clone() },
                    );
                }
            }
        }
        Ok(Self { by_event })
    }

    /// How many event names are registered.
    pub fn len(&self) -> usize {
        self.by_event.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_event.is_empty()
    }

    /// Checks a `track` event's properties.
    pub fn check(&self, event: &str, properties: &Value) -> Check {
        let Some(entry) = self.by_event.get(&normalize_name(event)) else { return Check::Unregistered };
        let empty = Value::Object(Default::default());
        let props = if properties.is_null() { &empty } else { properties };
        let errors: Vec<String> = entry
            .validator
            .iter_errors(props)
            .take(20)
            .map(|e| {
                let path = e.instance_path.to_string();
                format!("properties{}: {e}", if path.is_empty() { String::new() } else { path })
            })
            .collect();
        if errors.is_empty() {
            Check::Valid(entry.reference.clone())
        } else {
            Check::Invalid(entry.reference.clone(), errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bundled_schemas_load_and_validate() {
        let r = SchemaRegistry::bundled();
        assert!(r.len() >= 19, "{}", r.len());
        assert_eq!(
            r.check("Product Viewed", &json!({"product_id": "P1", "price": 12.5})),
            Check::Valid("product_viewed@1".into())
        );
        assert_eq!(r.check("product_viewed", &json!({"product_id": "P1"})), Check::Valid("product_viewed@1".into()));
        match r.check("Product Viewed", &json!({"price": -3})) {
            Check::Invalid(reference, errors) => {
                assert_eq!(reference, "product_viewed@1");
                assert!(errors.len() >= 2, "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.check("Newsletter Signed Up", &json!({})), Check::Unregistered);
        match r.check("reaction_reported", &json!({"product_id": "P1", "severity": "apocalyptic"})) {
            Check::Invalid(_, errors) => assert!(errors.iter().any(|e| e.contains("severity")), "{errors:?}"),
            other => panic!("{other:?}"),
        }
    }

    fn invalid(event: &str, properties: Value) -> Vec<String> {
        match SchemaRegistry::bundled().check(event, &properties) {
            Check::Invalid(_, errors) => errors,
            other => panic!("{properties} passed: {other:?}"),
        }
    }

    #[test]
    fn skin_measurements_need_known_units_and_plausible_values() {
        let r = SchemaRegistry::bundled();
        let ok = json!({"device_id": "dev-1", "device_model": "SkinScope S2",
            "hydration": {"value": 41.5, "unit": "%"}, "sebum": {"value": 88, "unit": "ug/cm2"},
            "tewl": {"value": 14.2, "unit": "g/m2/h"}, "pigmentation": {"value": 310, "unit": "index"},
            "redness": {"value": 12, "unit": "%"}, "uv_exposure": {"value": 3, "unit": "uv_index"}});
        assert_eq!(r.check("Skin Measurement Recorded", &ok), Check::Valid("skin_measurement_recorded@1".into()));
        let errors =
            invalid("Skin Measurement Recorded", json!({"device_id": "d", "hydration": {"value": 140, "unit": "%"}}));
        assert!(errors.iter().any(|e| e.contains("/hydration/value") && e.contains("100")), "{errors:?}");
        let errors =
            invalid("skin_measurement_recorded", json!({"device_id": "d", "tewl": {"value": 3, "unit": "furlongs"}}));
        assert!(errors.iter().any(|e| e.contains("/tewl/unit")), "{errors:?}");
        let errors =
            invalid("skin_measurement_recorded", json!({"device_id": "d", "sebum": {"value": "lots", "unit": "%"}}));
        assert!(errors.iter().any(|e| e.contains("/sebum/value")), "{errors:?}");
        invalid("skin_measurement_recorded", json!({"device_id": "d"}));
        invalid("skin_measurement_recorded", json!({"hydration": {"value": 40, "unit": "%"}}));
        invalid("skin_measurement_recorded", json!({"device_id": "d", "redness": {"value": -1, "unit": "%"}}));
    }

    #[test]
    fn dermatologist_assessments_name_known_conditions_and_a_clinic() {
        let r = SchemaRegistry::bundled();
        let ok = json!({"clinic_id": "c-1", "dermatologist_id": "dr-1", "conditions": ["rosacea"],
            "contraindicated_ingredients": ["retinol"], "notes": "no actives"});
        assert_eq!(
            r.check("Dermatologist Assessment Recorded", &ok),
            Check::Valid("dermatologist_assessment_recorded@1".into())
        );
        let errors =
            invalid("Dermatologist Assessment Recorded", json!({"clinic_id": "c-1", "conditions": ["lycanthropy"]}));
        assert!(errors.iter().any(|e| e.contains("/conditions/0")), "{errors:?}");
        invalid("Dermatologist Assessment Recorded", json!({"conditions": ["acne"]}));
        invalid("Dermatologist Assessment Recorded", json!({"clinic_id": "c-1"}));
        invalid("Dermatologist Assessment Recorded", json!({"clinic_id": "c-1", "contraindicated_ingredients": [""]}));
    }
}
