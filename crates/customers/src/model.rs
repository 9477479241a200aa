//! What the customers domain stores (encrypted) and returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
            /// Parses a wire name (exact).
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
            /// The wire names, comma-separated (for error messages).
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

wire_enum!(
    /// Skin type.
    SkinType { Dry = "dry", Oily = "oily", Combination = "combination", Normal = "normal", Sensitive = "sensitive" }
);

wire_enum!(
    /// Where a skin fact comes from.
    FactSource {
        /// The customer said so.
        SelfDeclared = "self_declared",
        /// A quiz answer.
        Quiz = "quiz",
        /// A store advisor.
        Advisor = "advisor",
        /// A skin analyzer or wearable.
        Device = "device",
        /// A dermatologist's assessment.
        Dermatologist = "dermatologist",
        /// Inferred from behaviour.
        Inferred = "inferred",
    }
);

wire_enum!(
    /// A skin condition (health data).
    Condition {
        Acne = "acne", Eczema = "eczema", Rosacea = "rosacea", Hyperpigmentation = "hyperpigmentation",
        Melasma = "melasma", Psoriasis = "psoriasis", Dermatitis = "dermatitis",
        SeborrheicDermatitis = "seborrheic_dermatitis", PerioralDermatitis = "perioral_dermatitis",
        KeratosisPilaris = "keratosis_pilaris",
    }
);

wire_enum!(
    /// How much sun the customer gets.
    SunExposure { Low = "low", Moderate = "moderate", High = "high" }
);

wire_enum!(
    /// The climate the customer lives in.
    Climate { Dry = "dry", Humid = "humid", Temperate = "temperate", Cold = "cold", Tropical = "tropical" }
);

wire_enum!(
    /// What a consent is for.
    Purpose {
        /// Personalized recommendations and content.
        Personalization = "personalization",
        /// Marketing email.
        MarketingEmail = "marketing_email",
        /// Marketing text messages.
        MarketingSms = "marketing_sms",
        /// Analytics.
        Analytics = "analytics",
        /// Processing health data (conditions, sensitivities, allergies, pregnancy).
        HealthData = "health_data",
    }
);

wire_enum!(
    /// What a skin analyzer or wearable measures (`Skin Measurement Recorded`).
    Metric {
        /// Stratum corneum hydration.
        Hydration = "hydration",
        /// Sebum.
        Sebum = "sebum",
        /// Transepidermal water loss.
        Tewl = "tewl",
        /// Pigmentation.
        Pigmentation = "pigmentation",
        /// Redness.
        Redness = "redness",
        /// UV exposure.
        UvExposure = "uv_exposure",
    }
);

/// One fact of a skin profile, with where it comes from and when it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Fact<T> {
    /// The value.
    pub value: T,
    /// Where it comes from.
    pub source: FactSource,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
}

/// How an ingredient name given by a customer was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngredientMatch {
    /// One ingredient of the knowledge base (`id` is its canonical id).
    Ingredient,
    /// A family of ingredients (`id` is the family: `fragrance`, `parabens` ...).
    Family,
    /// Not known to the knowledge base: kept as written, reported in `unknown_allergens`.
    Unknown,
}

/// An allergy or sensitivity: the name as given and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IngredientRef {
    /// The name as the customer gave it.
    pub name: String,
    /// What it resolved to.
    #[serde(rename = "match")]
    pub matched: IngredientMatch,
    /// The canonical ingredient id or the family (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Lifestyle facts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Lifestyle {
    /// Sun exposure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sun_exposure: Option<SunExposure>,
    /// Climate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub climate: Option<Climate>,
}

/// The skin facts that are not health data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct SkinFacts {
    /// Skin type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skin_type: Option<Fact<SkinType>>,
    /// Skin tone, as given (`fair`, `medium`, `deep`, a Fitzpatrick type ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skin_tone: Option<Fact<String>>,
    /// Concerns the customer wants addressed (the catalog's concerns: acne, hyperpigmentation,
    /// redness, dryness, aging, dullness, pores, sensitivity): the "goals".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concerns: Option<Fact<Vec<String>>>,
    /// Lifestyle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifestyle: Option<Fact<Lifestyle>>,
}

/// The skin facts that are health data (GDPR art. 9): stored only under the `health_data`
/// consent, deleted when it is withdrawn.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct HealthFacts {
    /// Diagnosed or declared skin conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Fact<Vec<Condition>>>,
    /// Ingredients or families the skin reacts to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivities: Option<Fact<Vec<IngredientRef>>>,
    /// Ingredients or families the customer is allergic to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allergies: Option<Fact<Vec<IngredientRef>>>,
    /// Pregnant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pregnant: Option<Fact<bool>>,
    /// Breastfeeding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breastfeeding: Option<Fact<bool>>,
    /// Ingredients or families a dermatologist said to avoid (resolved like allergies; a name
    /// the knowledge base does not know is kept with `match: unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contraindicated_ingredients: Option<Fact<Vec<IngredientRef>>>,
    /// Who made the latest dermatologist assessment, and their notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Fact<AssessmentNote>>,
}

/// The latest dermatologist assessment's origin and notes (health data).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct AssessmentNote {
    /// The clinic.
    pub clinic_id: String,
    /// The dermatologist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dermatologist_id: Option<String>,
    /// Free-text notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One reading of a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reading {
    /// The value, in `unit`.
    pub value: f64,
    /// The unit (`%`, `au`, `ug/cm2`, `g/m2/h`, `index`, `uv_index`, `sed`, `j/m2`).
    pub unit: String,
    /// When it was measured (RFC 3339; the event's time).
    pub measured_at: String,
}

/// A metric's trend: the least-squares slope of the readings of the last `window_days` days
/// that share the latest reading's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trend {
    /// Change per 30 days, in `unit` (absent with fewer than two readings at distinct times).
    pub per_30_days: Option<f64>,
    /// The unit.
    pub unit: String,
    /// How many readings the slope is fitted to.
    pub points: usize,
    /// The window, in days.
    pub window_days: u32,
}

/// What the profile shows of one metric: the latest reading and the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeasurementSummary {
    /// The latest reading.
    pub latest: Reading,
    /// The trend over the last 90 days.
    pub trend: Trend,
    /// Always `device`.
    pub source: FactSource,
    /// The model of the device that took the latest reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_model: Option<String>,
}

impl HealthFacts {
    /// Whether no health fact is held.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A skin profile: every fact with its source and time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct SkinProfile {
    /// Facts that are not health data.
    #[serde(flatten)]
    pub skin: SkinFacts,
    /// Health facts.
    #[serde(flatten)]
    pub health: HealthFacts,
    /// Per metric, the latest device measurement and its trend (health data; kept as a time
    /// series in `customer_measurements`, not in the profile row).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measurements: BTreeMap<Metric, MeasurementSummary>,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    /// First line.
    pub line1: String,
    /// Second line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Region or state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code (`FR`).
    pub country: String,
}

/// Contact data (personal data, encrypted at rest).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email address, as given (lookups ignore case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number in E.164 (`+33612345678`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Date of birth (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// A loyalty membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Loyalty {
    /// Card or member number.
    pub number: String,
    /// Tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Points.
    #[serde(default)]
    pub points: i64,
}

/// Identifiers (encrypted at rest; looked up through keyed hashes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Identifiers {
    /// The id the web shop's SDK sends as `userId`; accepted wherever a customer id is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Loyalty membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loyalty: Option<Loyalty>,
    /// Ids per channel (`{"pos": "R-1234"}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_ids: BTreeMap<String, String>,
}

/// A customer as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Dermis id (`cus_...`).
    pub id: String,
    /// Version, for `If-Match` (also the `ETag`).
    pub version: i64,
    /// Contact data.
    #[serde(flatten)]
    pub contact: Contact,
    /// Identifiers.
    #[serde(flatten)]
    pub identifiers: Identifiers,
    /// Skin profile.
    pub skin_profile: SkinProfile,
    /// Allergy names the knowledge base does not know: kept, not used to filter by ingredient.
    pub unknown_allergens: Vec<String>,
    /// Fields withheld from this caller (their role may not read them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl Customer {
    /// Recomputes `unknown_allergens` from the allergies held.
    pub(crate) fn refresh_unknown(&mut self) {
        self.unknown_allergens = self
            .skin_profile
            .health
            .allergies
            .iter()
            .flat_map(|f| f.value.iter())
            .filter(|a| a.matched == IngredientMatch::Unknown)
            .map(|a| a.name.clone())
            .collect();
    }

    /// Removes the health facts (a caller whose role may not read them).
    pub fn redact_health(&mut self) {
        let h = &self.skin_profile.health;
        let mut withheld = Vec::new();
        for (name, present) in [
            ("conditions", h.conditions.is_some()),
            ("sensitivities", h.sensitivities.is_some()),
            ("allergies", h.allergies.is_some()),
            ("pregnant", h.pregnant.is_some()),
            ("breastfeeding", h.breastfeeding.is_some()),
            ("contraindicated_ingredients", h.contraindicated_ingredients.is_some()),
            ("assessment", h.assessment.is_some()),
            ("measurements", !self.skin_profile.measurements.is_empty()),
        ] {
            if present {
                withheld.push(format!("skin_profile.{name}"));
            }
        }
        if !self.unknown_allergens.is_empty() {
            withheld.push("unknown_allergens".into());
        }
        self.skin_profile.health = HealthFacts::default();
        self.skin_profile.measurements.clear();
        self.unknown_allergens.clear();
        self.redacted.extend(withheld);
    }
}

/// One entry of the consent ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentEvent {
    /// Purpose.
    pub purpose: Purpose,
    /// Granted (`false`: denied or withdrawn).
    pub granted: bool,
    /// Version of the text the customer was shown.
    pub text_version: String,
    /// Channel it was collected on (`web`, `app`, `pos`, `api` ...).
    pub channel: String,
    /// Who recorded it (customer id for the customer, else the credential's subject).
    pub actor: String,
    /// The actor's role.
    pub actor_role: String,
    /// When (RFC 3339).
    pub recorded_at: String,
}

/// The current state of one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentState {
    /// Purpose.
    pub purpose: Purpose,
    /// Granted now (`false` when denied, withdrawn or never asked).
    pub granted: bool,
    /// Text version of the latest decision (absent when never asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_version: Option<String>,
    /// When the latest decision was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
}

/// A customer's consents: the state of every purpose, and the ledger oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Consents {
    /// The customer.
    pub customer_id: String,
    /// Every purpose's current state.
    pub current: Vec<ConsentState>,
    /// Every decision recorded, oldest first.
    pub history: Vec<ConsentEvent>,
}

impl Consents {
    /// Folds the ledger into the current state of every purpose.
    pub fn from_history(customer_id: String, history: Vec<ConsentEvent>) -> Self {
        let current = Purpose::ALL
            .iter()
            .map(|p| match history.iter().rev().find(|e| e.purpose == *p) {
                Some(e) => ConsentState {
                    purpose: *p,
                    granted: e.granted,
                    text_version: Some(e.text_version.clone()),
                    recorded_at: Some(e.recorded_at.clone()),
                },
                None => ConsentState { purpose: *p, granted: false, text_version: None, recorded_at: None },
            })
            .collect();
        Self { customer_id, current, history }
    }

    /// Whether a purpose is granted now.
    pub fn granted(&self, purpose: Purpose) -> bool {
        self.current.iter().any(|c| c.purpose == purpose && c.granted)
    }
}

/// A consultation: while open, associates of its store read the customer's health facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Consultation {
    /// Id (`cst_...`).
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Store.
    pub store_id: String,
    /// Who opened it.
    pub opened_by: String,
    /// Opened (RFC 3339).
    pub opened_at: String,
    /// Expires (RFC 3339).
    pub expires_at: String,
}
