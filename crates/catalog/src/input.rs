//! Requests as clients send them, and their parsing into validated values. Every field problem
//! is collected, so a client learns about all of them in one 422.

use dermis_core::{FieldError, Problem};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::model::{Money, ProductStatus, Variant};

/// Largest price accepted, in minor units (one billion in major units).
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000_000;

/// Create a product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Name, 1–300 characters.
    pub name: String,
    /// Brand, 1–120 characters.
    pub brand: String,
    /// Identifier in the source system, unique, 1–100 visible characters.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Category path, up to 200 characters.
    #[serde(default)]
    pub category: Option<String>,
    /// Description, up to 10,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Ingredient list as printed (INCI), up to 20,000 characters.
    #[serde(default)]
    pub ingredients: Option<String>,
    /// Merchandising highlights, up to 50 of 1–100 characters (`Vegan`, `Best for Dry Skin`).
    #[serde(default)]
    pub highlights: Vec<String>,
}

/// Change a product (JSON merge patch: absent = unchanged, `null` = cleared).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// New external id, or `null` to clear.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// New category, or `null` to clear.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// New description, or `null` to clear.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New ingredient list, or `null` to clear.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub ingredients: Option<Option<String>>,
    /// New highlights (replace the old ones).
    #[serde(default)]
    pub highlights: Option<Vec<String>>,
    /// New status.
    #[serde(default)]
    pub status: Option<ProductStatus>,
}

/// Create a SKU under a product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSku {
    /// Merchant SKU code, unique, 1–64 of `A-Z a-z 0-9 - _ .`.
    pub code: String,
    /// GTIN with a valid check digit (8, 12, 13 or 14 digits), unique.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Shade, size, scent, formula.
    #[serde(default)]
    pub variant: Variant,
    /// List price.
    pub price: Money,
}

/// Change a SKU (JSON merge patch).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSku {
    /// New code.
    #[serde(default)]
    pub code: Option<String>,
    /// New barcode, or `null` to clear.
    #[serde(default, deserialize_with = "dermis_core::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub barcode: Option<Option<String>>,
    /// New variant (replaces the whole variant).
    #[serde(default)]
    pub variant: Option<Variant>,
    /// New price.
    #[serde(default)]
    pub price: Option<Money>,
    /// New status.
    #[serde(default)]
    pub status: Option<ProductStatus>,
}

/// Search, filters and paging of `GET /v1/products`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProducts {
    /// Words that must all appear in the name, brand or category, as whole words (any case,
    /// accents ignored; the last word may be the start of one; words of 5 letters or more may
    /// have a typo, of 9 or more two). Results come by relevance (highlights and ingredient names
    /// count too), best first.
    pub q: Option<String>,
    /// Only this brand (exact).
    pub brand: Option<String>,
    /// Only this category or its subcategories (`Skincare/Moisturizers`).
    pub category: Option<String>,
    /// Only this status.
    pub status: Option<ProductStatus>,
    /// Only the product with this external id.
    pub external_id: Option<String>,
    /// cleanser, toner, exfoliant, serum, eye, moisturizer, sunscreen or mask.
    pub routine_step: Option<String>,
    /// Concerns its actives must address, comma-separated: acne, hyperpigmentation, redness,
    /// dryness, aging, dullness, pores, sensitivity.
    pub concern: Option<String>,
    /// dry, oily, combination, normal or sensitive: declared for it (or undeclared) and with
    /// ingredients that fit it (oily/combination: non-comedogenic; dry: no drying alcohol;
    /// sensitive: fragrance-free, no contact allergen, no drying alcohol).
    pub skin_type: Option<String>,
    /// Lowest SKU price at least this (minor units).
    pub price_min: Option<i64>,
    /// Lowest SKU price at most this (minor units).
    pub price_max: Option<i64>,
    /// Free of fragrance, essential oils and EU-labelled fragrance allergens.
    pub fragrance_free: Option<bool>,
    /// Free of essential oils.
    pub essential_oil_free: Option<bool>,
    /// Free of drying alcohols.
    pub drying_alcohol_free: Option<bool>,
    /// No ingredient with a comedogenic rating of 3 or more.
    pub non_comedogenic: Option<bool>,
    /// No ingredient to avoid or use with caution in pregnancy.
    pub pregnancy_safe: Option<bool>,
    /// Declared vegan.
    pub vegan: Option<bool>,
    /// Whether the ingredient list is known.
    pub has_ingredients: Option<bool>,
    /// Ingredients or families to avoid, comma-separated (any synonym; families such as
    /// `fragrance`, `fragrance-allergens`, `essential-oils`, `drying-alcohols`, `parabens`,
    /// `sulfates`, `silicones`, `retinoids`, `ahas`, `bhas`, `contact-allergens`, `uv-filters`).
    /// Products whose ingredient list is unknown never match.
    pub exclude_ingredients: Option<String>,
    /// Ingredients or families that must all be present, comma-separated.
    pub include_ingredients: Option<String>,
    /// `true` to count matches per routine step, brand, category, concern, fragrance_free, vegan.
    pub facets: Option<bool>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<dermis_core::Limit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Paging of `GET /v1/products/{id}/skus`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSkus {
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<dermis_core::Limit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// External id.
    pub external_id: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Ingredients.
    pub ingredients: Option<String>,
    /// Highlights.
    pub highlights: Vec<String>,
}

/// Validated changes to a product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    /// New name.
    pub name: Option<String>,
    /// New brand.
    pub brand: Option<String>,
    /// New or cleared external id.
    pub external_id: Option<Option<String>>,
    /// New or cleared category.
    pub category: Option<Option<String>>,
    /// New or cleared description.
    pub description: Option<Option<String>>,
    /// New or cleared ingredients.
    pub ingredients: Option<Option<String>>,
    /// New highlights.
    pub highlights: Option<Vec<String>>,
    /// New status.
    pub status: Option<ProductStatus>,
}

/// A validated new SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSku {
    /// Code.
    pub code: String,
    /// Barcode.
    pub barcode: Option<String>,
    /// Variant.
    pub variant: Variant,
    /// Price.
    pub price: Money,
}

/// Validated changes to a SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkuChanges {
    /// New code.
    pub code: Option<String>,
    /// New or cleared barcode.
    pub barcode: Option<Option<String>>,
    /// New variant.
    pub variant: Option<Variant>,
    /// New price.
    pub price: Option<Money>,
    /// New status.
    pub status: Option<ProductStatus>,
}

/// Collects field errors while parsing.
#[derive(Default)]
struct Check(Vec<FieldError>);

impl Check {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Trimmed text of 1..=max characters without control characters.
    fn text(&mut self, field: &str, value: String, max: usize) -> String {
        let v = value.trim().to_owned();
        let n = v.chars().count();
        if n == 0 {
            self.fail(field, "must not be empty");
        } else if n > max {
            self.fail(field, format!("must be at most {max} characters (got {n})"));
        } else if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            self.fail(field, "must not contain control characters");
        }
        v
    }

    fn opt_text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        value.map(|v| self.text(field, v, max))
    }

    fn external_id(&mut self, value: String) -> String {
        if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            self.fail("external_id", "must be 1 to 100 visible ASCII characters");
        }
        value
    }

    fn code(&mut self, value: String) -> String {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            self.fail("code", "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'");
        }
        value
    }

    fn barcode(&mut self, value: String) -> String {
        if let Err(m) = check_gtin(&value) {
            self.fail("barcode", m);
        }
        value
    }

    fn money(&mut self, field: &str, m: Money) -> Money {
        if !(0..=MAX_AMOUNT_MINOR).contains(&m.amount_minor) {
            self.fail(&format!("{field}.amount_minor"), format!("must be between 0 and {MAX_AMOUNT_MINOR}"));
        }
        if m.currency.len() != 3 || !m.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            self.fail(&format!("{field}.currency"), "must be an ISO 4217 code of three upper-case letters");
        }
        m
    }

    fn variant(&mut self, v: Variant) -> Variant {
        Variant {
            shade: self.opt_text("variant.shade", v.shade, 100),
            size: self.opt_text("variant.size", v.size, 100),
            scent: self.opt_text("variant.scent", v.scent, 100),
            formula: self.opt_text("variant.formula", v.formula, 100),
        }
    }

    fn highlights(&mut self, v: Vec<String>) -> Vec<String> {
        if v.len() > 50 {
            self.fail("highlights", "at most 50 highlights");
        }
        v.into_iter().enumerate().map(|(i, h)| self.text(&format!("highlights[{i}]"), h, 100)).collect()
    }

    fn done<T>(self, value: T) -> Result<T, Problem> {
        if self.0.is_empty() { Ok(value) } else { Err(Problem::validation(self.0)) }
    }
}

/// Checks a GTIN-8/12/13/14 and its GS1 check digit.
pub fn check_gtin(code: &str) -> Result<(), String> {
    if !matches!(code.len(), 8 | 12 | 13 | 14) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a GTIN of 8, 12, 13 or 14 digits".into());
    }
    let digits: Vec<u32> = code.bytes().map(|b| u32::from(b - b'0')).collect();
    let (body, check) = digits.split_at(digits.len() - 1);
    let sum: u32 = body.iter().rev().enumerate().map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d }).sum();
    let expected = (10 - sum % 10) % 10;
    if expected != check[0] {
        return Err(format!("has a wrong check digit (expected {expected})"));
    }
    Ok(())
}

impl CreateProduct {
    /// Validates the request.
    pub fn parse(self) -> Result<NewProduct, Problem> {
        let mut c = Check::default();
        let p = NewProduct {
            name: c.text("name", self.name, 300),
            brand: c.text("brand", self.brand, 120),
            external_id: self.external_id.map(|v| c.external_id(v)),
            category: c.opt_text("category", self.category, 200),
            description: c.opt_text("description", self.description, 10_000),
            ingredients: c.opt_text("ingredients", self.ingredients, 20_000),
            highlights: c.highlights(self.highlights),
        };
        c.done(p)
    }
}

impl UpdateProduct {
    /// Validates the request.
    pub fn parse(self) -> Result<ProductChanges, Problem> {
        let mut c = Check::default();
        let ch = ProductChanges {
            name: self.name.map(|v| c.text("name", v, 300)),
            brand: self.brand.map(|v| c.text("brand", v, 120)),
            external_id: self.external_id.map(|o| o.map(|v| c.external_id(v))),
            category: self.category.map(|o| c.opt_text("category", o, 200)),
            description: self.description.map(|o| c.opt_text("description", o, 10_000)),
            ingredients: self.ingredients.map(|o| c.opt_text("ingredients", o, 20_000)),
            highlights: self.highlights.map(|h| c.highlights(h)),
            status: self.status,
        };
        c.done(ch)
    }
}

impl CreateSku {
    /// Validates the request.
    pub fn parse(self) -> Result<NewSku, Problem> {
        let mut c = Check::default();
        let s = NewSku {
            code: c.code(self.code),
            barcode: self.barcode.map(|v| c.barcode(v)),
            variant: c.variant(self.variant),
            price: c.money("price", self.price),
        };
        c.done(s)
    }
}

impl UpdateSku {
    /// Validates the request.
    pub fn parse(self) -> Result<SkuChanges, Problem> {
        let mut c = Check::default();
        let s = SkuChanges {
            code: self.code.map(|v| c.code(v)),
            barcode: self.barcode.map(|o| o.map(|v| c.barcode(v))),
            variant: self.variant.map(|v| c.variant(v)),
            price: self.price.map(|m| c.money("price", m)),
            status: self.status,
        };
        c.done(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_check_digits() {
        assert!(check_gtin("4006381333931").is_ok()); // EAN-13
        assert!(check_gtin("036000291452").is_ok()); // UPC-A
        assert!(check_gtin("96385074").is_ok()); // EAN-8
        assert!(check_gtin("4006381333932").is_err());
        assert!(check_gtin("40063813339a1").is_err());
        assert!(check_gtin("123").is_err());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let p = CreateSku {
            code: "has space".into(),
            barcode: Some("123".into()),
            variant: Variant { shade: Some(" ".into()), ..Variant::default() },
            price: Money { amount_minor: -1, currency: "eur".into() },
        }
        .parse()
        .unwrap_err();
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["code", "barcode", "variant.shade", "price.amount_minor", "price.currency"]);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        let ok = CreateProduct {
            name: "  Hydra Cream ".into(),
            brand: "Dermis Labs".into(),
            external_id: Some("P1".into()),
            category: None,
            description: None,
            ingredients: None,
            highlights: vec!["Vegan".into()],
        }
        .parse()
        .unwrap();
        assert_eq!(ok.name, "Hydra Cream");
        let long = CreateProduct {
            name: "x".repeat(301),
            brand: "b".into(),
            external_id: None,
            category: None,
            description: None,
            ingredients: None,
            highlights: Vec::new(),
        };
        assert_eq!(long.parse().unwrap_err().errors[0].field, "name");
    }
}
