//! What the catalog stores and returns.

use dermis_ingredients::ProductFacts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a product or SKU is sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// On sale.
    Active,
    /// No longer sold; kept for history, orders and returns.
    Discontinued,
}

impl ProductStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Discontinued => "discontinued",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "discontinued" => Some(Self::Discontinued),
            _ => None,
        }
    }
}

/// A price: an amount in the currency's minor unit (cents), and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Amount in minor units (1250 = 12.50 EUR; 1250 = 1250 JPY).
    pub amount_minor: i64,
    /// ISO 4217 code, upper case (`EUR`).
    pub currency: String,
}

/// A product as customers know it (one name, one brand), sold as one or more [`Sku`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Product {
    /// `prd_...`.
    pub id: String,
    /// The identifier in the system it was imported from (e.g. Sephora's `P473671`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category path (`Skincare/Moisturizers/Face Creams`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The ingredient list as printed on the pack (INCI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingredients: Option<String>,
    /// Merchandising highlights (`Vegan`, `Best for Dry Skin`, `Good for: Pores`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub highlights: Vec<String>,
    /// What the ingredients, category and highlights say about the product. Facts that need the
    /// ingredient list are `null` when it is unknown. `ingredients` (the parsed, resolved list) is
    /// included when one product is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<ProductFacts>,
    /// Whether it is sold.
    pub status: ProductStatus,
    /// Increases with every change; send it back in `If-Match` to update safely.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// What distinguishes a SKU from its siblings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Shade (`02 Light Neutral`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shade: Option<String>,
    /// Size (`50 mL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Scent (`Unscented`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scent: Option<String>,
    /// Formula (`Matte`, `Rich`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
}

/// A stock-keeping unit: one sellable variant of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Sku {
    /// `sku_...`.
    pub id: String,
    /// The product it belongs to.
    pub product_id: String,
    /// The merchant's SKU code, unique across the catalog.
    pub code: String,
    /// GTIN (EAN-8, UPC-A, EAN-13 or GTIN-14), unique across the catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    /// What distinguishes it from its siblings.
    pub variant: Variant,
    /// List price.
    pub price: Money,
    /// Whether it is sold.
    pub status: ProductStatus,
    /// Increases with every change.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}
