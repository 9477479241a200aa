//! Requests as clients send them, and their parsing into validated values ("parse, don't
//! validate": past this module, a phone is E.164, an email has been checked, a skin type is one of
//! five, an allergy name has been resolved through the knowledge base). Every field problem is
//! collected, so a client learns about all of them in one 422.

use std::collections::BTreeMap;

use dermis_core::{FieldError, Problem};
use dermis_ingredients::KnowledgeBase;
use dermis_ingredients::kb::{CONCERNS, FAMILIES};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::crypto::LookupKind;
use crate::model::{
    Address, AssessmentNote, Climate, Condition, Contact, FactSource, IngredientMatch, IngredientRef, Lifestyle,
    Loyalty, Purpose, SkinType, SunExposure,
};

/// A merge-patch member: absent (`None`), `null` (`Some(None)`), or a value.
pub type Change<T> = Option<Option<T>>;

/// Create a customer.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    /// Full name, 1–200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number in E.164 (`+33612345678`; spaces, dots, dashes and brackets are ignored).
    #[serde(default)]
    pub phone: Option<String>,
    /// Date of birth, `YYYY-MM-DD`.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
    /// Loyalty membership (the number is unique).
    #[serde(default)]
    pub loyalty: Option<Loyalty>,
    /// Ids per channel (`{"pos": "R-1234"}`): up to 20, channel `[a-z0-9_-]{1,50}`.
    #[serde(default)]
    pub external_ids: BTreeMap<String, String>,
    /// The id the web shop's SDK sends as `userId` (unique).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Consents collected with the sign-up, recorded before the skin profile is stored.
    #[serde(default)]
    pub consents: Vec<ConsentDecision>,
    /// Skin profile (health fields need the `health_data` consent).
    #[serde(default)]
    pub skin_profile: Option<PutSkinProfile>,
}

/// A consent decision given with a sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentDecision {
    /// `personalization`, `marketing_email`, `marketing_sms`, `analytics` or `health_data`.
    pub purpose: String,
    /// Granted or denied.
    pub granted: bool,
    /// Version of the text shown, 1–50 characters.
    pub text_version: String,
    /// Channel (`web`, `app`, `pos` ...; default `api`).
    #[serde(default)]
    pub channel: Option<String>,
}

/// Change a customer (JSON merge patch: absent = unchanged, `null` = cleared).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    /// Name.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Change<String>,
    /// Email.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Change<String>,
    /// Phone (E.164).
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Change<String>,
    /// Date of birth.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub date_of_birth: Change<String>,
    /// Address (replaces the whole address).
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Address>)]
    pub address: Change<Address>,
    /// Loyalty (replaces the whole membership).
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Loyalty>)]
    pub loyalty: Change<Loyalty>,
    /// Ids per channel, merged: a channel set to `null` is removed.
    #[serde(default)]
    pub external_ids: Option<BTreeMap<String, Option<String>>>,
    /// The shop's user id.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub user_id: Change<String>,
}

/// Set skin facts. Members sent replace those facts, `null` removes one, absent ones stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSkinProfile {
    /// Where these facts come from: `self_declared` (default), `quiz`, `advisor`, `device`,
    /// `dermatologist` or `inferred`.
    #[serde(default)]
    pub source: Option<String>,
    /// `dry`, `oily`, `combination`, `normal` or `sensitive`.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub skin_type: Change<String>,
    /// Skin tone, 1–50 characters.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub skin_tone: Change<String>,
    /// Concerns: acne, hyperpigmentation, redness, dryness, aging, dullness, pores, sensitivity.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub concerns: Change<Vec<String>>,
    /// Lifestyle: `sun_exposure` (low, moderate, high) and `climate` (dry, humid, temperate,
    /// cold, tropical).
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Object>)]
    pub lifestyle: Change<LifestyleInput>,
    /// Health: skin conditions (acne, eczema, rosacea, hyperpigmentation, melasma, psoriasis ...).
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub conditions: Change<Vec<String>>,
    /// Health: ingredient or family names the skin reacts to.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub sensitivities: Change<Vec<String>>,
    /// Health: ingredient or family names (any synonym: `vitamin e`, `fragrance`, `parabens`).
    /// A name the knowledge base does not know is kept and reported in `unknown_allergens`.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allergies: Change<Vec<String>>,
    /// Health: pregnant.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<bool>)]
    pub pregnant: Change<bool>,
    /// Health: breastfeeding.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<bool>)]
    pub breastfeeding: Change<bool>,
}

/// A dermatologist's assessment: the body of `POST /v1/customers/{id}/assessments`, and the
/// properties of the `Dermatologist Assessment Recorded` event.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAssessment {
    /// Diagnosed conditions (acne, eczema, rosacea, hyperpigmentation, melasma, psoriasis,
    /// dermatitis, seborrheic_dermatitis, perioral_dermatitis, keratosis_pilaris); they replace
    /// the conditions held, with source `dermatologist`.
    #[serde(default)]
    pub conditions: Option<Vec<String>>,
    /// Ingredient or family names to avoid, resolved through the ingredient knowledge base; a
    /// name it does not know is kept and reported in `unknown_ingredients`.
    #[serde(default)]
    pub contraindicated_ingredients: Option<Vec<String>>,
    /// Free-text notes (at most 2,000 characters).
    #[serde(default)]
    pub notes: Option<String>,
    /// The clinic (1–512 characters).
    #[serde(default)]
    pub clinic_id: Option<String>,
    /// The dermatologist (1–512 characters; for a `dermatologist` caller, their token's subject).
    #[serde(default)]
    pub dermatologist_id: Option<String>,
}

impl RecordAssessment {
    /// The members of an event's (open) properties that an assessment reads.
    pub const MEMBERS: [&'static str; 5] =
        ["conditions", "contraindicated_ingredients", "notes", "clinic_id", "dermatologist_id"];

    /// Validates an assessment into skin changes with source `dermatologist` (every name
    /// resolved now).
    pub fn parse(&self) -> Result<SkinChanges, Problem> {
        let mut errors = Vec::new();
        let clinic_id = match self.clinic_id.as_deref() {
            Some(c) => text("clinic_id", c, 512, &mut errors),
            None => {
                errors.push(FieldError::new("clinic_id", "is required"));
                None
            }
        };
        let dermatologist_id =
            self.dermatologist_id.as_deref().and_then(|d| text("dermatologist_id", d, 512, &mut errors));
        let notes = match self.notes.as_deref().map(str::trim) {
            Some(n) if n.chars().count() > 2000 => {
                errors.push(FieldError::new("notes", "at most 2,000 characters"));
                None
            }
            Some("") | None => None,
            Some(n) => Some(n.to_owned()),
        };
        if self.conditions.is_none() && self.contraindicated_ingredients.is_none() {
            errors.push(FieldError::new("conditions", "give conditions, contraindicated_ingredients or both"));
        }
        let conditions = self.conditions.as_ref().and_then(|list| {
            if list.len() > 20 {
                errors.push(FieldError::new("conditions", "at most 20 conditions"));
                return None;
            }
            let mut out = Vec::new();
            for (i, c) in list.iter().enumerate() {
                match Condition::parse(c.trim()) {
                    Some(c) if !out.contains(&c) => out.push(c),
                    Some(_) => {}
                    None => errors.push(FieldError::new(
                        format!("conditions[{i}]"),
                        format!("must be one of {}", Condition::names()),
                    )),
                }
            }
            Some(out)
        });
        let contraindicated = self
            .contraindicated_ingredients
            .as_ref()
            .and_then(|l| ingredient_list("contraindicated_ingredients", l, &mut errors));
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(SkinChanges {
            source: FactSource::Dermatologist,
            conditions: conditions.map(Some),
            contraindicated_ingredients: contraindicated.map(Some),
            assessment: clinic_id.map(|clinic_id| Some(AssessmentNote { clinic_id, dermatologist_id, notes })),
            ..Default::default()
        })
    }
}

/// Lifestyle as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifestyleInput {
    /// low, moderate or high.
    #[serde(default)]
    pub sun_exposure: Option<String>,
    /// dry, humid, temperate, cold or tropical.
    #[serde(default)]
    pub climate: Option<String>,
}

/// Merge another customer into this one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The customer merged into the one in the path (customer id or linked user id).
    pub other: String,
}

impl MergeRequest {
    /// The other customer's reference, checked.
    pub fn parse(&self) -> Result<String, Problem> {
        parse_identifier(&self.other, 200).map_err(|m| Problem::validation(vec![FieldError::new("other", m)]))
    }
}

/// Record a consent decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutConsent {
    /// Granted (`false`: denied or withdrawn).
    pub granted: bool,
    /// Version of the text shown, 1–50 characters.
    pub text_version: String,
    /// Channel (`web`, `app`, `pos` ...; default `api`), `[a-z0-9_-]{1,30}`.
    #[serde(default)]
    pub channel: Option<String>,
}

/// Open a consultation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenConsultation {
    /// How long it stays open, 5–240 minutes (default 30).
    #[serde(default)]
    pub minutes: Option<i64>,
    /// The store (admins and services only; an associate's is the one of their credential).
    #[serde(default)]
    pub store_id: Option<String>,
}

impl OpenConsultation {
    /// The duration in milliseconds.
    pub fn duration_ms(&self) -> Result<i64, Problem> {
        match self.minutes.unwrap_or(30) {
            m @ 5..=240 => Ok(m * 60_000),
            _ => Err(Problem::validation(vec![FieldError::new("minutes", "must be from 5 to 240")])),
        }
    }
}

/// Find a customer by exactly one identifier.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindCustomers {
    /// Email (any case).
    pub email: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// Loyalty number.
    pub loyalty_number: Option<String>,
    /// The shop's user id.
    pub user_id: Option<String>,
}

// ---------------------------------------------------------------- validated values

/// A validated consent decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// Purpose.
    pub purpose: Purpose,
    /// Granted.
    pub granted: bool,
    /// Text version.
    pub text_version: String,
    /// Channel.
    pub channel: String,
}

/// A validated new customer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomer {
    /// Contact data.
    pub contact: Contact,
    /// User id.
    pub user_id: Option<String>,
    /// Loyalty.
    pub loyalty: Option<Loyalty>,
    /// External ids.
    pub external_ids: BTreeMap<String, String>,
    /// Consents, recorded first.
    pub consents: Vec<NewConsent>,
    /// Skin facts.
    pub skin: Option<SkinChanges>,
}

/// Validated changes to a customer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerChanges {
    /// Name.
    pub name: Change<String>,
    /// Email.
    pub email: Change<String>,
    /// Phone.
    pub phone: Change<String>,
    /// Date of birth.
    pub date_of_birth: Change<String>,
    /// Address.
    pub address: Change<Address>,
    /// Loyalty.
    pub loyalty: Change<Loyalty>,
    /// External ids to set (`Some`) or remove (`None`).
    pub external_ids: BTreeMap<String, Option<String>>,
    /// User id.
    pub user_id: Change<String>,
}

/// Validated skin facts to set or remove.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SkinChanges {
    /// Source of every fact set.
    pub source: FactSource,
    /// Skin type.
    pub skin_type: Change<SkinType>,
    /// Tone.
    pub skin_tone: Change<String>,
    /// Concerns.
    pub concerns: Change<Vec<String>>,
    /// Lifestyle.
    pub lifestyle: Change<Lifestyle>,
    /// Conditions (health).
    pub conditions: Change<Vec<Condition>>,
    /// Sensitivities (health).
    pub sensitivities: Change<Vec<IngredientRef>>,
    /// Allergies (health).
    pub allergies: Change<Vec<IngredientRef>>,
    /// Pregnant (health).
    pub pregnant: Change<bool>,
    /// Breastfeeding (health).
    pub breastfeeding: Change<bool>,
    /// Contraindicated ingredients (health; a dermatologist's).
    pub contraindicated_ingredients: Change<Vec<IngredientRef>>,
    /// Who assessed and their notes (health; a dermatologist's).
    pub assessment: Change<AssessmentNote>,
}

// The enum is made by a macro that cannot mark its default variant.
#[allow(clippy::derivable_impls)]
impl Default for FactSource {
    fn default() -> Self {
        Self::SelfDeclared
    }
}

impl SkinChanges {
    /// Whether it sets (not only removes) a health fact: that needs the `health_data` consent.
    pub fn sets_health(&self) -> bool {
        matches!(self.conditions, Some(Some(_)))
            || matches!(self.sensitivities, Some(Some(_)))
            || matches!(self.allergies, Some(Some(_)))
            || matches!(self.pregnant, Some(Some(_)))
            || matches!(self.breastfeeding, Some(Some(_)))
            || matches!(self.contraindicated_ingredients, Some(Some(_)))
            || matches!(self.assessment, Some(Some(_)))
    }
}

/// A validated lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// What is looked up.
    pub kind: LookupKind,
    /// The normalized value (hashed, never stored).
    pub value: String,
}

// ---------------------------------------------------------------- parsers

fn visible(s: &str) -> bool {
    !s.chars().any(|c| c.is_control())
}

fn text(field: &str, raw: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max || !visible(t) {
        errors.push(FieldError::new(field, format!("must be 1–{max} characters without control characters")));
        return None;
    }
    Some(t.to_owned())
}

/// Normalizes an email address for lookups: trimmed, lowercased.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// Parses an email address: one `@`, a local part of 1–64 characters, a domain with a dot, no
/// spaces, at most 254 characters. Returns it trimmed.
pub fn parse_email(raw: &str) -> Result<String, &'static str> {
    let t = raw.trim();
    let bad = "must be an email address such as name@example.com";
    if t.len() > 254 || !visible(t) || t.chars().any(char::is_whitespace) {
        return Err(bad);
    }
    let (local, domain) = t.split_once('@').ok_or(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || !l.chars().all(|c| c.is_alphanumeric() || c == '-'))
    {
        return Err(bad);
    }
    Ok(t.to_owned())
}

/// Parses a phone number into E.164: `+`, then 8–15 digits, the first not 0. Spaces, dots,
/// dashes and brackets are ignored (`+33 6 12-34-56-78` is `+33612345678`).
pub fn parse_phone(raw: &str) -> Result<String, &'static str> {
    let bad = "must be a phone number in E.164 form: + then the country code and 8 to 15 digits in all";
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\u{a0}')).collect();
    let digits = compact.strip_prefix('+').ok_or(bad)?;
    if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) || digits.starts_with('0') {
        return Err(bad);
    }
    Ok(compact)
}

/// Parses a date of birth `YYYY-MM-DD`: a real date, from 1900, not after `today_ms`.
pub fn parse_date_of_birth(raw: &str, today_ms: i64) -> Result<String, &'static str> {
    let bad = "must be a date YYYY-MM-DD from 1900 and not in the future";
    let t = raw.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad);
    }
    let (y, m, d): (i64, u32, u32) = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) => (y, m, d),
        _ => return Err(bad),
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad),
    };
    if y < 1900 || d == 0 || d > days {
        return Err(bad);
    }
    if days_from_civil(y, m, d) * 86_400_000 > today_ms {
        return Err(bad);
    }
    Ok(t.to_owned())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a user id or loyalty number: 1–200 visible characters, trimmed.
fn parse_identifier(raw: &str, max: usize) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max || !visible(t) {
        return Err(format!("must be 1–{max} characters without control characters"));
    }
    Ok(t.to_owned())
}

fn parse_address(a: &Address, errors: &mut Vec<FieldError>) -> Option<Address> {
    let n = errors.len();
    let line1 = text("address.line1", &a.line1, 200, errors);
    let line2 = a.line2.as_deref().and_then(|l| text("address.line2", l, 200, errors));
    let city = text("address.city", &a.city, 100, errors);
    let postal_code = a.postal_code.as_deref().and_then(|l| text("address.postal_code", l, 20, errors));
    let region = a.region.as_deref().and_then(|l| text("address.region", l, 100, errors));
    let country = a.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
        errors.push(FieldError::new("address.country", "must be an ISO 3166-1 alpha-2 code such as FR"));
    }
    (errors.len() == n).then(|| Address {
        line1: line1.unwrap_or_default(),
        line2,
        city: city.unwrap_or_default(),
        postal_code,
        region,
        country,
    })
}

fn parse_loyalty(l: &Loyalty, errors: &mut Vec<FieldError>) -> Option<Loyalty> {
    let n = errors.len();
    let number = parse_identifier(&l.number, 64).map_err(|m| errors.push(FieldError::new("loyalty.number", m))).ok();
    let tier = l.tier.as_deref().and_then(|t| text("loyalty.tier", t, 50, errors));
    if !(0..=1_000_000_000_000).contains(&l.points) {
        errors.push(FieldError::new("loyalty.points", "must be from 0 to 10^12"));
    }
    (errors.len() == n).then(|| Loyalty { number: number.unwrap_or_default(), tier, points: l.points })
}

fn channel_name(field: &str, raw: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= max
        && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        errors.push(FieldError::new(field, format!("must be 1–{max} of a-z, 0-9, _ and -")));
        return None;
    }
    Some(raw.to_owned())
}

fn parse_external_ids<'a>(
    ids: impl Iterator<Item = (&'a String, Option<&'a String>)>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (channel, id) in ids {
        let field = format!("external_ids.{}", channel.chars().take(50).collect::<String>());
        let Some(c) = channel_name(&field, channel, 50, errors) else { continue };
        let id = match id {
            Some(id) => match parse_identifier(id, 200) {
                Ok(v) => Some(v),
                Err(m) => {
                    errors.push(FieldError::new(field, m));
                    continue;
                }
            },
            None => None,
        };
        out.insert(c, id);
    }
    if out.len() > 20 {
        errors.push(FieldError::new("external_ids", "at most 20 channels"));
    }
    out
}

/// Parses a consent purpose (path segment or body member).
pub fn parse_purpose(field: &str, raw: &str) -> Result<Purpose, FieldError> {
    Purpose::parse(raw).ok_or_else(|| FieldError::new(field, format!("must be one of {}", Purpose::names())))
}

fn parse_consent_parts(
    prefix: &str,
    text_version: &str,
    channel: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> (String, String) {
    let tv = text(&format!("{prefix}text_version"), text_version, 50, errors).unwrap_or_default();
    let ch = match channel {
        Some(c) => channel_name(&format!("{prefix}channel"), c, 30, errors).unwrap_or_default(),
        None => "api".to_owned(),
    };
    (tv, ch)
}

impl PutConsent {
    /// Validates a consent decision for `purpose` (the path segment).
    pub fn parse(&self, purpose: &str) -> Result<NewConsent, Problem> {
        let mut errors = Vec::new();
        let p = parse_purpose("purpose", purpose).map_err(|e| errors.push(e)).ok();
        let (text_version, channel) = parse_consent_parts("", &self.text_version, self.channel.as_deref(), &mut errors);
        match p {
            Some(purpose) if errors.is_empty() => {
                Ok(NewConsent { purpose, granted: self.granted, text_version, channel })
            }
            _ => Err(Problem::validation(errors)),
        }
    }
}

/// Resolves an ingredient or family name through the knowledge base.
pub fn resolve_ingredient(kb: &KnowledgeBase, name: &str) -> IngredientRef {
    let family = name.trim().to_lowercase().replace([' ', '_'], "-");
    if FAMILIES.iter().any(|(f, _)| *f == family) {
        return IngredientRef { name: name.to_owned(), matched: IngredientMatch::Family, id: Some(family) };
    }
    match kb.resolve_label(name) {
        Some(i) => {
            IngredientRef { name: name.to_owned(), matched: IngredientMatch::Ingredient, id: Some(i.id.clone()) }
        }
        None => IngredientRef { name: name.to_owned(), matched: IngredientMatch::Unknown, id: None },
    }
}

fn ingredient_list(field: &str, names: &[String], errors: &mut Vec<FieldError>) -> Option<Vec<IngredientRef>> {
    if names.len() > 100 {
        errors.push(FieldError::new(field, "at most 100 names"));
        return None;
    }
    let kb = KnowledgeBase::bundled();
    let mut out: Vec<IngredientRef> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let name = text(&format!("{field}[{i}]"), n, 100, errors)?;
        if !out.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
            out.push(resolve_ingredient(kb, &name));
        }
    }
    Some(out)
}

fn change<T, U>(c: &Change<T>, f: impl FnOnce(&T) -> Option<U>) -> Change<U> {
    match c {
        None => None,
        Some(None) => Some(None),
        Some(Some(v)) => f(v).map(Some),
    }
}

impl PutSkinProfile {
    /// Validates the facts; every name is resolved now.
    pub fn parse(&self) -> Result<SkinChanges, Problem> {
        let mut errors = Vec::new();
        let out = self.parse_into(&mut errors, "");
        if errors.is_empty() { Ok(out) } else { Err(Problem::validation(errors)) }
    }

    fn parse_into(&self, errors: &mut Vec<FieldError>, prefix: &str) -> SkinChanges {
        let f = |name: &str| format!("{prefix}{name}");
        let source = match self.source.as_deref() {
            None => FactSource::SelfDeclared,
            Some(s) => FactSource::parse(s).unwrap_or_else(|| {
                errors.push(FieldError::new(f("source"), format!("must be one of {}", FactSource::names())));
                FactSource::SelfDeclared
            }),
        };
        let skin_type = change(&self.skin_type, |s| {
            SkinType::parse(s.trim()).or_else(|| {
                errors.push(FieldError::new(f("skin_type"), format!("must be one of {}", SkinType::names())));
                None
            })
        });
        let skin_tone = change(&self.skin_tone, |s| text(&f("skin_tone"), s, 50, errors));
        let concerns = change(&self.concerns, |list| {
            let mut out = Vec::new();
            for c in list {
                let c = c.trim().to_lowercase();
                if !CONCERNS.contains(&c.as_str()) {
                    errors.push(FieldError::new(f("concerns"), format!("must each be one of {}", CONCERNS.join(", "))));
                    return None;
                }
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            Some(out)
        });
        let lifestyle = change(&self.lifestyle, |l| {
            let n = errors.len();
            let sun_exposure = l.sun_exposure.as_deref().and_then(|s| {
                SunExposure::parse(s).or_else(|| {
                    errors.push(FieldError::new(
                        f("lifestyle.sun_exposure"),
                        format!("must be one of {}", SunExposure::names()),
                    ));
                    None
                })
            });
            let climate = l.climate.as_deref().and_then(|s| {
                Climate::parse(s).or_else(|| {
                    errors
                        .push(FieldError::new(f("lifestyle.climate"), format!("must be one of {}", Climate::names())));
                    None
                })
            });
            (errors.len() == n).then_some(Lifestyle { sun_exposure, climate })
        });
        let conditions = change(&self.conditions, |list| {
            let mut out = Vec::new();
            for c in list {
                match Condition::parse(c.trim()) {
                    Some(c) if !out.contains(&c) => out.push(c),
                    Some(_) => {}
                    None => {
                        errors.push(FieldError::new(
                            f("conditions"),
                            format!("must each be one of {}", Condition::names()),
                        ));
                        return None;
                    }
                }
            }
            Some(out)
        });
        let sensitivities = change(&self.sensitivities, |l| ingredient_list(&f("sensitivities"), l, errors));
        let allergies = change(&self.allergies, |l| ingredient_list(&f("allergies"), l, errors));
        SkinChanges {
            source,
            skin_type,
            skin_tone,
            concerns,
            lifestyle,
            conditions,
            sensitivities,
            allergies,
            pregnant: self.pregnant,
            breastfeeding: self.breastfeeding,
            contraindicated_ingredients: None,
            assessment: None,
        }
    }
}

impl CreateCustomer {
    /// Validates a new customer; `today_ms` bounds the date of birth.
    pub fn parse(&self, today_ms: i64) -> Result<NewCustomer, Problem> {
        let mut errors = Vec::new();
        let name = self.name.as_deref().and_then(|n| text("name", n, 200, &mut errors));
        let email = self
            .email
            .as_deref()
            .and_then(|e| parse_email(e).map_err(|m| errors.push(FieldError::new("email", m))).ok());
        let phone = self
            .phone
            .as_deref()
            .and_then(|p| parse_phone(p).map_err(|m| errors.push(FieldError::new("phone", m))).ok());
        let date_of_birth = self.date_of_birth.as_deref().and_then(|d| {
            parse_date_of_birth(d, today_ms).map_err(|m| errors.push(FieldError::new("date_of_birth", m))).ok()
        });
        let address = self.address.as_ref().and_then(|a| parse_address(a, &mut errors));
        let loyalty = self.loyalty.as_ref().and_then(|l| parse_loyalty(l, &mut errors));
        let external_ids = parse_external_ids(self.external_ids.iter().map(|(k, v)| (k, Some(v))), &mut errors)
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let user_id = self
            .user_id
            .as_deref()
            .and_then(|u| parse_identifier(u, 200).map_err(|m| errors.push(FieldError::new("user_id", m))).ok());
        if self.consents.len() > Purpose::ALL.len() {
            errors.push(FieldError::new("consents", "at most one decision per purpose"));
        }
        let mut consents: Vec<NewConsent> = Vec::new();
        for (i, c) in self.consents.iter().enumerate() {
            let prefix = format!("consents[{i}].");
            let purpose = parse_purpose(&format!("{prefix}purpose"), &c.purpose).map_err(|e| errors.push(e)).ok();
            let (text_version, channel) =
                parse_consent_parts(&prefix, &c.text_version, c.channel.as_deref(), &mut errors);
            if let Some(purpose) = purpose {
                if consents.iter().any(|x| x.purpose == purpose) {
                    errors.push(FieldError::new(format!("{prefix}purpose"), "is given twice"));
                }
                consents.push(NewConsent { purpose, granted: c.granted, text_version, channel });
            }
        }
        let skin = self.skin_profile.as_ref().map(|s| s.parse_into(&mut errors, "skin_profile."));
        if self.name.is_none()
            && self.email.is_none()
            && self.phone.is_none()
            && self.user_id.is_none()
            && self.loyalty.is_none()
        {
            errors.push(FieldError::new("name", "give at least one of name, email, phone, user_id or loyalty"));
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(NewCustomer {
            contact: Contact { name, email, phone, date_of_birth, address },
            user_id,
            loyalty,
            external_ids,
            consents,
            skin,
        })
    }
}

impl UpdateCustomer {
    /// Validates the changes.
    pub fn parse(&self, today_ms: i64) -> Result<CustomerChanges, Problem> {
        let mut errors = Vec::new();
        let name = change(&self.name, |n| text("name", n, 200, &mut errors));
        let email = change(&self.email, |e| parse_email(e).map_err(|m| errors.push(FieldError::new("email", m))).ok());
        let phone = change(&self.phone, |p| parse_phone(p).map_err(|m| errors.push(FieldError::new("phone", m))).ok());
        let date_of_birth = change(&self.date_of_birth, |d| {
            parse_date_of_birth(d, today_ms).map_err(|m| errors.push(FieldError::new("date_of_birth", m))).ok()
        });
        let address = change(&self.address, |a| parse_address(a, &mut errors));
        let loyalty = change(&self.loyalty, |l| parse_loyalty(l, &mut errors));
        let external_ids = match &self.external_ids {
            Some(m) => parse_external_ids(m.iter().map(|(k, v)| (k, v.as_ref())), &mut errors),
            None => BTreeMap::new(),
        };
        let user_id = change(&self.user_id, |u| {
            parse_identifier(u, 200).map_err(|m| errors.push(FieldError::new("user_id", m))).ok()
        });
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(CustomerChanges { name, email, phone, date_of_birth, address, loyalty, external_ids, user_id })
    }
}

impl FindCustomers {
    /// Validates a lookup: exactly one identifier.
    pub fn parse(&self) -> Result<Lookup, Problem> {
        let given: Vec<(LookupKind, &str)> = [
            (LookupKind::Email, self.email.as_deref()),
            (LookupKind::Phone, self.phone.as_deref()),
            (LookupKind::LoyaltyNumber, self.loyalty_number.as_deref()),
            (LookupKind::UserId, self.user_id.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let [(kind, raw)] = given.as_slice() else {
            return Err(Problem::validation(vec![FieldError::new(
                "email",
                "give exactly one of email, phone, loyalty_number, user_id",
            )]));
        };
        let value = match kind {
            LookupKind::Email => parse_email(raw).map(|e| normalize_email(&e)).map_err(|m| FieldError::new("email", m)),
            LookupKind::Phone => parse_phone(raw).map_err(|m| FieldError::new("phone", m)),
            LookupKind::LoyaltyNumber => parse_identifier(raw, 64).map_err(|m| FieldError::new("loyalty_number", m)),
            LookupKind::UserId => parse_identifier(raw, 200).map_err(|m| FieldError::new("user_id", m)),
            // Not offered by this request; the identity graph normalizes them itself.
            other @ (LookupKind::AnonymousId
            | LookupKind::DeviceId
            | LookupKind::PosReceiptId
            | LookupKind::CustomerNumber) => parse_identifier(raw, 200).map_err(|m| FieldError::new(other.as_str(), m)),
        }
        .map_err(|e| Problem::validation(vec![e]))?;
        Ok(Lookup { kind: *kind, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: i64 = 1_780_000_000_000; // 2026-05-28

    #[test]
    fn phones_are_normalized_to_e164_or_refused() {
        assert_eq!(parse_phone("+33 6 12-34-56-78").unwrap(), "+33612345678");
        assert_eq!(parse_phone("+1 (415) 555.0100").unwrap(), "+14155550100");
        for bad in ["0612345678", "+0612345678", "+33 6 12", "+336123456789012345", "+33abc45678", ""] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_checked_and_normalized_for_lookups() {
        assert_eq!(parse_email("  Ada@Example.COM ").unwrap(), "Ada@Example.COM");
        assert_eq!(normalize_email(" Ada@Example.COM "), "ada@example.com");
        for bad in ["ada", "ada@", "@example.com", "ada@example", "a da@example.com", "a@b@c.com", "ada@-x.com"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_of_birth_are_real_past_dates() {
        assert!(parse_date_of_birth("1990-02-28", TODAY).is_ok());
        assert!(parse_date_of_birth("2000-02-29", TODAY).is_ok());
        for bad in ["1990-02-30", "1900-02-29", "1899-12-31", "2030-01-01", "1990-1-01", "19900101", "1990-13-01"] {
            assert!(parse_date_of_birth(bad, TODAY).is_err(), "{bad}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn allergies_resolve_to_ingredients_and_families_and_unknown_names_are_kept() {
        let p = PutSkinProfile {
            allergies: Some(Some(vec!["Fragrance".into(), "vitamin e".into(), "zorblax extract".into()])),
            skin_type: Some(Some("oily".into())),
            ..Default::default()
        };
        let c = p.parse().unwrap();
        let a = c.allergies.clone().unwrap().unwrap();
        assert_eq!(a[0].matched, IngredientMatch::Family);
        assert_eq!(a[0].id.as_deref(), Some("fragrance"));
        assert_eq!(a[1].matched, IngredientMatch::Ingredient);
        assert_eq!(a[1].id.as_deref(), Some("tocopherol"));
        assert_eq!(a[2].matched, IngredientMatch::Unknown);
        assert_eq!(a[2].name, "zorblax extract");
        assert!(c.sets_health());
        assert_eq!(c.skin_type, Some(Some(SkinType::Oily)));
    }

    #[test]
    fn unknown_values_are_clear_422s() {
        let p = PutSkinProfile {
            skin_type: Some(Some("shiny".into())),
            source: Some("horoscope".into()),
            conditions: Some(Some(vec!["acne".into(), "gremlins".into()])),
            ..Default::default()
        };
        let e = p.parse().unwrap_err();
        assert_eq!(e.kind.status().as_u16(), 422);
        let fields: Vec<&str> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["source", "skin_type", "conditions"]);
        assert!(e.errors[1].message.contains("dry, oily, combination, normal, sensitive"));
        let bad =
            PutConsent { granted: true, text_version: "v1".into(), channel: None }.parse("newsletter").unwrap_err();
        assert!(bad.errors[0].message.contains("health_data"));
    }

    #[test]
    fn a_lookup_takes_exactly_one_identifier() {
        let one = FindCustomers { email: Some(" ADA@example.com".into()), ..Default::default() }.parse().unwrap();
        assert_eq!(one, Lookup { kind: LookupKind::Email, value: "ada@example.com".into() });
        assert!(FindCustomers::default().parse().is_err());
        let two =
            FindCustomers { email: Some("a@b.co".into()), phone: Some("+33612345678".into()), ..Default::default() };
        assert!(two.parse().is_err());
        assert!(FindCustomers { phone: Some("12".into()), ..Default::default() }.parse().is_err());
    }
}
