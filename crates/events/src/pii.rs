//! What of a customer's personal data the event log does not keep: [`PiiPolicy`].
//!
//! `identify` traits (email, phone, names, address, birthday, allergies and health traits), the
//! same keys in any message's `context.traits`, `properties.email` / `phone` / `allergies` of
//! `track` events, and the health properties of the registered skincare events
//! ([`HEALTH_EVENT_PROPERTIES`]: the skin quiz's health answers, a skin measurement's readings,
//! a dermatologist assessment's conditions, contraindicated ingredients and notes) are *moved
//! out* before a message is stored: the hooks of this node (the customers domain's among them,
//! which keeps them encrypted on the customer's profile) see the message whole in
//! [`crate::ingest::IngestHook::prepare`]; the log keeps, in place of each
//! value, a marker `{"$moved": "customers"}` naming where it went, so an export or a replay
//! still shows which traits the message carried. It holds whatever hooks are registered: a
//! deployment without the customers hook stores the same markers and the values go nowhere.
//! Messages stored before this policy (or before its [`VERSION`]) are rewritten once in the
//! background ([`crate::ingest::Ingestor::move_stored_pii`]).

use serde_json::{Map, Value};

use crate::schemas::normalize_name;

/// The policy's version: a log rewritten under an older one is rewritten once more (1: traits
/// and contact properties; 2: the registered skincare events' health properties).
pub const VERSION: i64 = 2;

/// The marker a moved value leaves: `{"$moved": "<where>"}`.
pub const MOVED: &str = "$moved";

/// Trait keys that name a person, their contact or their health (compared without case, `_`,
/// `-` or spaces: `firstName`, `first_name` and `First Name` are one key).
const TRAIT_KEYS: &[&str] = &[
    "email",
    "phone",
    "mobile",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "address",
    "street",
    "city",
    "postalcode",
    "zip",
    "zipcode",
    "birthday",
    "dateofbirth",
    "dob",
    "allergies",
    "allergy",
    "sensitivities",
    "conditions",
    "skinconditions",
    "pregnant",
    "breastfeeding",
    "medications",
    "health",
];

/// `properties` keys moved out of `track` events.
const PROPERTY_KEYS: &[&str] = &["email", "phone", "allergies", "allergy"];

/// `properties` keys of the registered skincare events (by event name, as the schemas name
/// them) that are health data and moved out; the rest (the quiz's skin type and concerns, the
/// device, the clinic) stays in the log.
pub const HEALTH_EVENT_PROPERTIES: &[(&[&str], &[&str])] = &[
    (
        &["Skin Quiz Completed", "skin_quiz_completed"],
        &[
            "sensitivities",
            "allergies",
            "allergy",
            "pregnant",
            "breastfeeding",
            "conditions",
            "skinconditions",
            "medications",
            "health",
            // Raw answers keyed by question id: may hold any of the above.
            "answers",
        ],
    ),
    (
        &["Skin Measurement Recorded", "skin_measurement_recorded"],
        &["hydration", "sebum", "tewl", "pigmentation", "redness", "uvexposure"],
    ),
    (
        &["Dermatologist Assessment Recorded", "dermatologist_assessment_recorded"],
        &["conditions", "contraindicatedingredients", "notes"],
    ),
];

/// Which keys of a message the event log does not keep, and what the marker names.
#[derive(Debug, Clone)]
pub struct PiiPolicy {
    traits: Vec<String>,
    properties: Vec<String>,
    /// Normalized event name → folded property keys.
    events: Vec<(String, Vec<String>)>,
    moved_to: String,
}

impl Default for PiiPolicy {
    /// The bundled lists, moved to `customers`.
    fn default() -> Self {
        Self {
            traits: TRAIT_KEYS.iter().map(|k| (*k).to_owned()).collect(),
            properties: PROPERTY_KEYS.iter().map(|k| (*k).to_owned()).collect(),
            events: HEALTH_EVENT_PROPERTIES
                .iter()
                .flat_map(|(names, keys)| {
                    names.iter().map(|n| (normalize_name(n), keys.iter().map(|k| (*k).to_owned()).collect()))
                })
                .collect(),
            moved_to: "customers".into(),
        }
    }
}

/// A key as the lists compare it.
fn folded(key: &str) -> String {
    key.chars().filter(|c| !matches!(c, '_' | '-' | ' ' | '.')).flat_map(char::to_lowercase).collect()
}

impl PiiPolicy {
    /// Also moves out these trait keys and `track` properties (configuration adds to the
    /// bundled lists, never removes from them).
    pub fn with_extra(mut self, traits: &[String], properties: &[String]) -> Self {
        for (list, extra) in [(&mut self.traits, traits), (&mut self.properties, properties)] {
            for k in extra.iter().map(|k| folded(k)).filter(|k| !k.is_empty()) {
                if !list.contains(&k) {
                    list.push(k);
                }
            }
        }
        self
    }

    /// Whether a `traits` key is moved out.
    pub fn is_personal_trait(&self, key: &str) -> bool {
        let k = folded(key);
        self.traits.contains(&k)
    }

    fn is_personal_property(&self, key: &str) -> bool {
        let k = folded(key);
        self.properties.contains(&k)
    }

    /// The health property keys of a registered skincare event (empty for any other).
    fn event_keys(&self, event: Option<&str>) -> &[String] {
        let Some(e) = event.map(normalize_name) else { return &[] };
        self.events.iter().find(|(n, _)| *n == e).map_or(&[], |(_, keys)| keys.as_slice())
    }

    /// Whether `key` of a `track` event named `event` is moved out: a contact property, or a
    /// health property of a registered skincare event.
    pub fn is_personal_track_property(&self, event: Option<&str>, key: &str) -> bool {
        self.is_personal_property(key) || self.event_keys(event).contains(&folded(key))
    }

    /// Whether `v` is a marker a moved value left.
    pub fn is_moved(v: &Value) -> bool {
        Self::is_marker(v)
    }

    /// The marker a moved value leaves.
    pub fn marker(&self) -> Value {
        let mut m = Map::new();
        m.insert(MOVED.into(), Value::String(self.moved_to.clone()));
        Value::Object(m)
    }

    fn is_marker(v: &Value) -> bool {
        v.as_object().is_some_and(|o| o.len() == 1 && o.contains_key(MOVED))
    }

    /// Replaces the personal values of `payload` (a message as stored, or as received for a
    /// dead letter) by markers; returns how many it replaced (0: nothing personal, or moved
    /// already).
    pub fn strip(&self, payload: &mut Value) -> usize {
        let Value::Object(o) = payload else { return 0 };
        let is_track = o.get("type").and_then(Value::as_str) == Some("track");
        let mut n = 0;
        if let Some(Value::Object(t)) = o.get_mut("traits") {
            n += self.strip_map(t, Self::is_personal_trait);
        }
        if let Some(Value::Object(t)) = o.get_mut("context").and_then(|c| c.get_mut("traits")) {
            n += self.strip_map(t, Self::is_personal_trait);
        }
        let event = o.get("event").and_then(Value::as_str).map(normalize_name);
        if is_track && let Some(Value::Object(p)) = o.get_mut("properties") {
            let health = self.event_keys(event.as_deref());
            for (k, v) in p.iter_mut() {
                let k = folded(k);
                if (self.properties.contains(&k) || health.contains(&k)) && !v.is_null() && !Self::is_marker(v) {
                    *v = self.marker();
                    n += 1;
                }
            }
        }
        n
    }

    /// Whether [`Self::strip`] would change `payload`.
    pub fn holds_personal(&self, payload: &Value) -> bool {
        let Value::Object(o) = payload else { return false };
        let is_track = o.get("type").and_then(Value::as_str) == Some("track");
        let any = |m: Option<&Value>, personal: fn(&Self, &str) -> bool| {
            m.and_then(Value::as_object)
                .is_some_and(|m| m.iter().any(|(k, v)| personal(self, k) && !v.is_null() && !Self::is_marker(v)))
        };
        any(o.get("traits"), Self::is_personal_trait)
            || any(o.get("context").and_then(|c| c.get("traits")), Self::is_personal_trait)
            || (is_track
                && o.get("properties").and_then(Value::as_object).is_some_and(|p| {
                    let event = o.get("event").and_then(Value::as_str);
                    p.iter()
                        .any(|(k, v)| self.is_personal_track_property(event, k) && !v.is_null() && !Self::is_marker(v))
                }))
    }

    fn strip_map(&self, m: &mut Map<String, Value>, personal: fn(&Self, &str) -> bool) -> usize {
        let mut n = 0;
        for (k, v) in m.iter_mut() {
            if personal(self, k) && !v.is_null() && !Self::is_marker(v) {
                *v = self.marker();
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn personal_traits_are_replaced_by_markers_and_the_rest_is_kept() {
        let p = PiiPolicy::default();
        let mut m = json!({
            "type": "identify", "userId": "u1",
            "traits": {"email": "a@b.c", "firstName": "Ada", "Last_Name": "L", "address": {"city": "Paris"},
                       "birthday": "1990-01-01", "allergies": ["Linalool"], "skin_type": "dry", "plan": "gold",
                       "phone": null},
            "context": {"traits": {"email": "a@b.c", "locale": "fr"}, "ip": "1.2.3.4"}
        });
        assert!(p.holds_personal(&m));
        assert_eq!(p.strip(&mut m), 7);
        let moved = json!({"$moved": "customers"});
        for k in ["email", "firstName", "Last_Name", "address", "birthday", "allergies"] {
            assert_eq!(m["traits"][k], moved, "{k}");
        }
        assert_eq!(m["traits"]["skin_type"], "dry");
        assert_eq!(m["traits"]["plan"], "gold");
        assert_eq!(m["traits"]["phone"], Value::Null, "nothing to move");
        assert_eq!(m["context"]["traits"]["email"], moved);
        assert_eq!(m["context"]["traits"]["locale"], "fr");
        assert!(!p.holds_personal(&m), "moved once");
        assert_eq!(p.strip(&mut m), 0);
    }

    #[test]
    fn track_properties_lose_contact_fields_only_on_track() {
        let p = PiiPolicy::default();
        let mut t = json!({"type": "track", "event": "Order Completed",
            "properties": {"email": "a@b.c", "phone": "+33600000000", "total": 12, "name": "Serum"}});
        assert_eq!(p.strip(&mut t), 2);
        assert_eq!(t["properties"]["total"], 12);
        assert_eq!(t["properties"]["name"], "Serum", "a product's name is not a person's");
        let extra = PiiPolicy::default().with_extra(&["Loyalty_Card".into()], &["coupon".into()]);
        let mut t = json!({"type": "track", "properties": {"coupon": "C1"}, "traits": {"loyaltyCard": "9"}});
        assert_eq!(extra.strip(&mut t), 2);
        let mut page = json!({"type": "page", "properties": {"email": "x"}});
        assert_eq!(p.strip(&mut page), 0);
        let mut not_object = json!("garbage");
        assert_eq!(p.strip(&mut not_object), 0);
    }

    #[test]
    fn skincare_events_lose_their_health_properties_and_keep_the_rest() {
        let p = PiiPolicy::default();
        let moved = json!({"$moved": "customers"});
        let mut quiz = json!({"type": "track", "event": "skin-quiz-completed", "properties": {
            "quiz_id": "q3", "skin_type": "dry", "concerns": ["acne"], "sensitivities": ["Quibblewort"],
            "pregnant": false, "breastfeeding": true, "conditions": ["eczema"], "answers": {"q7": "yes"}}});
        assert!(p.holds_personal(&quiz));
        assert_eq!(p.strip(&mut quiz), 5);
        for k in ["sensitivities", "pregnant", "breastfeeding", "conditions", "answers"] {
            assert_eq!(quiz["properties"][k], moved, "{k}");
        }
        assert_eq!(quiz["properties"]["skin_type"], "dry");
        assert_eq!(quiz["properties"]["concerns"], json!(["acne"]));
        assert_eq!(quiz["properties"]["quiz_id"], "q3");
        assert!(!p.holds_personal(&quiz));

        let mut m = json!({"type": "track", "event": "Skin Measurement Recorded", "properties": {
            "device_id": "dev-1", "device_model": "S2", "hydration": {"value": 37.913, "unit": "%"},
            "uv_exposure": {"value": 3, "unit": "uv_index"}}});
        assert_eq!(p.strip(&mut m), 2);
        assert_eq!(m["properties"]["hydration"], moved);
        assert_eq!(m["properties"]["uv_exposure"], moved);
        assert_eq!(m["properties"]["device_id"], "dev-1");
        assert_eq!(m["properties"]["device_model"], "S2");

        let mut a = json!({"type": "track", "event": "dermatologist_assessment_recorded", "properties": {
            "clinic_id": "c1", "dermatologist_id": "dr", "conditions": ["rosacea"],
            "contraindicated_ingredients": ["retinol"], "notes": "avoid actives"}});
        assert_eq!(p.strip(&mut a), 3);
        assert_eq!(a["properties"]["clinic_id"], "c1");
        assert_eq!(a["properties"]["dermatologist_id"], "dr");

        // The same keys on another event, or outside `properties`, are not health data here.
        let mut other = json!({"type": "track", "event": "Product Viewed", "properties": {"redness": 1, "notes": "x"}});
        assert_eq!(p.strip(&mut other), 0);
        let mut page = json!({"type": "page", "event": "Skin Measurement Recorded", "properties": {"sebum": 1}});
        assert_eq!(p.strip(&mut page), 0);
    }
}
