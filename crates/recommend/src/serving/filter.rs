//! Product attributes as filter expressions and business rules read them ([`crate::expr`]):
//! the fields a request's `filter` and a rule's `when` may name, and their values for a
//! [`ProductEntry`].

use dermis_core::{FieldError, Problem};

use super::engine::ProductFilter;
use super::products::ProductEntry;
use crate::expr::{self, Attributes, BusinessRules, FieldKind, Value};

/// Every field an expression may name.
pub const FIELDS: &[(&str, FieldKind)] = &[
    ("product_id", FieldKind::Str),
    ("external_id", FieldKind::Str),
    ("name", FieldKind::Str),
    ("brand", FieldKind::Str),
    ("category", FieldKind::Path),
    ("price", FieldKind::Num),
    ("routine_step", FieldKind::Str),
    ("concerns", FieldKind::List),
    ("actives", FieldKind::List),
    ("skin_types", FieldKind::List),
    ("highlights", FieldKind::List),
    ("allergens", FieldKind::List),
    ("has_ingredients", FieldKind::Bool),
    ("fragrance_free", FieldKind::Bool),
    ("essential_oil_free", FieldKind::Bool),
    ("drying_alcohol_free", FieldKind::Bool),
    ("non_comedogenic", FieldKind::Bool),
    ("pregnancy_caution", FieldKind::Bool),
    ("photosensitizing", FieldKind::Bool),
    ("am", FieldKind::Bool),
    ("pm", FieldKind::Bool),
    ("max_comedogenic", FieldKind::Num),
];

fn flag(v: Option<bool>) -> Value<'static> {
    v.map_or(Value::Missing, Value::Bool)
}

impl Attributes for ProductEntry {
    fn get(&self, field: &str) -> Value<'_> {
        let f = self.facts.as_ref();
        match field {
            "product_id" => Value::Str(&self.id),
            "external_id" => self.external_id.as_deref().map_or(Value::Missing, Value::Str),
            "name" => Value::Str(&self.name),
            "brand" => Value::Str(&self.brand),
            "category" => self.category.as_deref().map_or(Value::Missing, Value::Str),
            "price" => self.price().map_or(Value::Missing, Value::Num),
            "routine_step" => self.routine_step().map_or(Value::Missing, |s| Value::Str(s.as_str())),
            "concerns" => Value::List(&self.concerns),
            "actives" => Value::List(self.actives()),
            "skin_types" => Value::List(&self.skin_types),
            "highlights" => Value::List(&self.highlights),
            "allergens" => f.map_or(Value::Missing, |f| Value::List(&f.allergens)),
            "has_ingredients" => Value::Bool(f.is_some_and(|f| f.has_ingredient_list)),
            "fragrance_free" => flag(f.and_then(|f| f.fragrance_free)),
            "essential_oil_free" => flag(f.and_then(|f| f.essential_oil_free)),
            "drying_alcohol_free" => flag(f.and_then(|f| f.drying_alcohol_free)),
            "non_comedogenic" => flag(f.and_then(|f| f.non_comedogenic)),
            "pregnancy_caution" => flag(f.and_then(|f| f.pregnancy_caution)),
            "photosensitizing" => flag(f.and_then(|f| f.photosensitizing)),
            "am" => flag(f.and_then(|f| f.am)),
            "pm" => flag(f.and_then(|f| f.pm)),
            "max_comedogenic" => f.and_then(|f| f.max_comedogenic).map_or(Value::Missing, |n| Value::Num(n as f64)),
            _ => Value::Missing,
        }
    }
}

/// Compiles a request's `filter` (a 422 naming the position on a bad one).
pub fn compile(src: &str) -> Result<Box<ProductFilter>, Problem> {
    let e =
        expr::parse(src, FIELDS).map_err(|e| Problem::validation(vec![FieldError::new("filter", e.to_string())]))?;
    Ok(Box::new(move |p: &ProductEntry| e.eval(p)))
}

/// Business rules from their JSON file text, checked against [`FIELDS`].
pub fn rules(json: &str) -> Result<BusinessRules, crate::expr::RulesError> {
    BusinessRules::parse(json, FIELDS)
}
