//! [`OnlineProfile`]: what serving needs to know about a customer (skin type, concerns,
//! conditions, resolved allergies, sensitivities and a dermatologist's contraindicated
//! ingredients (canonical ids, families, and the names the knowledge base does not know, kept
//! to be matched by name), pregnancy, consent state), derived from a
//! [`Customer`] under its consents: health facts only while `health_data` is granted. Kept by
//! [`crate::projection::ProfileProjection`] in memory or in [`crate::online::RedisProfiles`].

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::FAMILIES;
use serde::Serialize;

use crate::model::{Condition, Consents, Customer, IngredientMatch, IngredientRef, Purpose, SkinType};

/// Which purposes are granted now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConsentFlags {
    /// Personalized output.
    pub personalization: bool,
    /// Marketing email.
    pub marketing_email: bool,
    /// Marketing SMS.
    pub marketing_sms: bool,
    /// Analytics.
    pub analytics: bool,
    /// Health data.
    pub health_data: bool,
}

/// What serving needs to know about a customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OnlineProfile {
    /// Customer id.
    pub customer_id: String,
    /// The profile's version.
    pub version: i64,
    /// Skin type.
    pub skin_type: Option<SkinType>,
    /// Concerns (the catalog's vocabulary).
    pub concerns: Vec<String>,
    /// Skin conditions (health).
    pub conditions: Vec<Condition>,
    /// Canonical ingredient ids the customer is allergic to, families expanded (health).
    pub allergy_ids: BTreeSet<String>,
    /// Families named as allergies (health).
    pub allergy_families: Vec<String>,
    /// Allergy names the knowledge base does not know (health): match them by name.
    pub unknown_allergens: Vec<String>,
    /// Canonical ingredient ids the skin reacts to, families expanded (health).
    pub sensitivity_ids: BTreeSet<String>,
    /// Families named as sensitivities (health).
    #[serde(default)]
    pub sensitivity_families: Vec<String>,
    /// Sensitivity names the knowledge base does not know (health): match them by name.
    #[serde(default)]
    pub unknown_sensitivities: Vec<String>,
    /// Canonical ingredient ids a dermatologist contraindicated, families expanded (health).
    #[serde(default)]
    pub contraindicated_ids: BTreeSet<String>,
    /// Families a dermatologist contraindicated (health).
    #[serde(default)]
    pub contraindicated_families: Vec<String>,
    /// Contraindicated names the knowledge base does not know (health): match them by name.
    #[serde(default)]
    pub unknown_contraindicated: Vec<String>,
    /// Pregnant (health).
    pub pregnant: bool,
    /// Breastfeeding (health).
    pub breastfeeding: bool,
    /// Consent state.
    pub consents: ConsentFlags,
    /// The user id the customer's events carry (`userId`), to find what they did.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The ingredient ids of each family, computed once (a family scans the whole knowledge base).
fn family_ids(family: &str) -> Option<&'static BTreeSet<String>> {
    static FAMILY_IDS: OnceLock<HashMap<&'static str, BTreeSet<String>>> = OnceLock::new();
    FAMILY_IDS
        .get_or_init(|| {
            let kb = KnowledgeBase::bundled();
            FAMILIES.iter().map(|(f, _)| (*f, kb.expand(f).unwrap_or_default())).collect()
        })
        .get(family)
}

fn expand(refs: &[IngredientRef], ids: &mut BTreeSet<String>, families: &mut Vec<String>, unknown: &mut Vec<String>) {
    for r in refs {
        match (r.matched, &r.id) {
            (IngredientMatch::Family, Some(f)) => {
                families.push(f.clone());
                ids.extend(family_ids(f).into_iter().flatten().cloned());
            }
            (IngredientMatch::Ingredient, Some(id)) => {
                ids.insert(id.clone());
            }
            _ => unknown.push(r.name.clone()),
        }
    }
}

impl OnlineProfile {
    /// The facts of a customer under its consents.
    pub fn of(c: &Customer, consents: &Consents) -> Self {
        let flags = ConsentFlags {
            personalization: consents.granted(Purpose::Personalization),
            marketing_email: consents.granted(Purpose::MarketingEmail),
            marketing_sms: consents.granted(Purpose::MarketingSms),
            analytics: consents.granted(Purpose::Analytics),
            health_data: consents.granted(Purpose::HealthData),
        };
        let skin = &c.skin_profile.skin;
        let mut p = OnlineProfile {
            customer_id: c.id.clone(),
            version: c.version,
            skin_type: skin.skin_type.as_ref().map(|f| f.value),
            concerns: skin.concerns.as_ref().map(|f| f.value.clone()).unwrap_or_default(),
            consents: flags,
            user_id: c.identifiers.user_id.clone(),
            ..Default::default()
        };
        if flags.health_data {
            let h = &c.skin_profile.health;
            p.conditions = h.conditions.as_ref().map(|f| f.value.clone()).unwrap_or_default();
            if let Some(a) = &h.allergies {
                expand(&a.value, &mut p.allergy_ids, &mut p.allergy_families, &mut p.unknown_allergens);
            }
            if let Some(s) = &h.sensitivities {
                expand(&s.value, &mut p.sensitivity_ids, &mut p.sensitivity_families, &mut p.unknown_sensitivities);
            }
            if let Some(ci) = &h.contraindicated_ingredients {
                expand(
                    &ci.value,
                    &mut p.contraindicated_ids,
                    &mut p.contraindicated_families,
                    &mut p.unknown_contraindicated,
                );
            }
            p.pregnant = h.pregnant.as_ref().is_some_and(|f| f.value);
            p.breastfeeding = h.breastfeeding.as_ref().is_some_and(|f| f.value);
        }
        p
    }
}
