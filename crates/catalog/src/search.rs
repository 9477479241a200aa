//! Product search: text, category, routine step, concern, skin type, price, attributes, and
//! ingredient inclusion/exclusion that understands synonyms and families.
//!
//! [`SearchFilter::parse`] validates a search. Two engines answer it with the same filter
//! semantics: the in-memory index of each node ([`crate::index`], ranked text matching, what the
//! API uses once the index is built), and the SQL here (`words` as substrings of name and brand,
//! id order), which answers for a [`crate::Catalog`] without an index or before its index is
//! built, and is the reference the index is tested against.
//!
//! Safety rule: an exclusion is only satisfied by a product whose ingredient list is known and
//! contains none of the excluded ingredients (by canonical id, or by declared name for names the
//! knowledge base does not know). A product with an unknown list never passes an exclusion. An
//! ingredient a product *may* contain (an entry or a note writes its name as a whole word without
//! resolving to it, see [`dermis_ingredients::resolve`]) counts as contained; so do the families of
//! such ingredients. Exclusions and "free of" filters only pass products whose facts were derived
//! under the running knowledge base and rules: facts derived under older rules (until the
//! background refresh reaches them after an upgrade) are not trusted to say "free of".

use std::collections::BTreeMap;
use std::sync::Arc;

use dermis_core::{FieldError, Problem};
use dermis_ingredients::RoutineStep;
use dermis_ingredients::inci::key;
use dermis_ingredients::kb::{CONCERNS, FAMILIES, KnowledgeBase};
use dermis_store::StoreError;
use dermis_store::sqlx::{self, Any, Executor, Row};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::facts::SKIN_TYPES;
use crate::input::ListProducts;
use crate::model::{Product, ProductStatus};

/// One ingredient term of a search, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// What the client wrote.
    pub raw: String,
    /// Canonical ids it stands for (a family expands to many).
    pub ids: Vec<String>,
    /// The declared-name key, for ingredients the knowledge base does not know.
    pub name_key: String,
    /// The family this term names (`fragrance`), matched through the products' family list.
    pub family: Option<String>,
}

/// A validated search.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Words that must all appear in the name or brand.
    pub words: Vec<String>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Category path or prefix (`Skincare/Moisturizers`).
    pub category: Option<String>,
    /// Status.
    pub status: Option<ProductStatus>,
    /// External id.
    pub external_id: Option<String>,
    /// Routine step.
    pub routine_step: Option<RoutineStep>,
    /// Concerns the actives must address (all of them).
    pub concerns: Vec<String>,
    /// Skin type.
    pub skin_type: Option<String>,
    /// Lowest SKU price at least this.
    pub price_min: Option<i64>,
    /// Lowest SKU price at most this.
    pub price_max: Option<i64>,
    /// Attribute columns that must equal the given value.
    pub flags: Vec<(&'static str, bool)>,
    /// The knowledge-base version facts must have been derived under for a "free of" answer.
    pub kb_version: String,
    /// Ingredients that must not be present.
    pub exclude: Vec<Term>,
    /// Ingredients that must be present.
    pub include: Vec<Term>,
}

enum Arg {
    Text(String),
    Int(i64),
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

fn terms(field: &str, raw: Option<&str>, kb: &KnowledgeBase, errors: &mut Vec<FieldError>) -> Vec<Term> {
    let Some(raw) = raw else { return Vec::new() };
    let parts: Vec<&str> = raw.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if parts.len() > 50 || parts.iter().any(|p| p.chars().count() > 100) {
        errors.push(FieldError::new(field, "at most 50 comma-separated names of up to 100 characters"));
        return Vec::new();
    }
    parts
        .into_iter()
        .map(|p| {
            let family = key(p).replace(' ', "-");
            let family = FAMILIES.iter().any(|(f, _)| *f == family).then_some(family);
            Term {
                raw: p.to_owned(),
                ids: kb.expand(p).map(|s| s.into_iter().collect()).unwrap_or_default(),
                name_key: key(p),
                family,
            }
        })
        .collect()
}

impl SearchFilter {
    /// Validates the query parameters of `GET /v1/products`.
    pub fn parse(q: &ListProducts) -> Result<Self, Problem> {
        let kb = KnowledgeBase::bundled();
        let mut errors = Vec::new();
        let words: Vec<String> =
            q.q.as_deref()
                .map(|t| key(t).split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
        if q.q.as_ref().is_some_and(|t| t.chars().count() > 200) || words.len() > 10 {
            errors.push(FieldError::new("q", "at most 200 characters and 10 words"));
        }
        let routine_step = match q.routine_step.as_deref() {
            Some(s) => RoutineStep::parse(s).or_else(|| {
                let all: Vec<_> = RoutineStep::ALL.iter().map(|r| r.as_str()).collect();
                errors.push(FieldError::new("routine_step", format!("must be one of {}", all.join(", "))));
                None
            }),
            None => None,
        };
        let concerns: Vec<String> = q
            .concern
            .as_deref()
            .map(|c| c.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if let Some(bad) = concerns.iter().find(|c| !CONCERNS.contains(&c.as_str())) {
            errors.push(FieldError::new("concern", format!("unknown concern {bad:?}; one of {}", CONCERNS.join(", "))));
        }
        let skin_type = q.skin_type.as_deref().map(str::to_lowercase);
        if let Some(t) = &skin_type
            && !SKIN_TYPES.contains(&t.as_str())
        {
            errors.push(FieldError::new("skin_type", format!("must be one of {}", SKIN_TYPES.join(", "))));
        }
        for (field, v) in [("price_min", q.price_min), ("price_max", q.price_max)] {
            if v.is_some_and(|v| v < 0) {
                errors.push(FieldError::new(field, "must not be negative"));
            }
        }
        if let (Some(a), Some(b)) = (q.price_min, q.price_max)
            && a > b
        {
            errors.push(FieldError::new("price_max", "must not be below price_min"));
        }
        let mut flags = Vec::new();
        for (column, value) in [
            ("fragrance_free", q.fragrance_free),
            ("essential_oil_free", q.essential_oil_free),
            ("drying_alcohol_free", q.drying_alcohol_free),
            ("non_comedogenic", q.non_comedogenic),
            ("vegan", q.vegan),
            ("has_ingredients", q.has_ingredients),
        ] {
            if let Some(v) = value {
                flags.push((column, v));
            }
        }
        if let Some(v) = q.pregnancy_safe {
            flags.push(("pregnancy_caution", !v));
        }
        let exclude = terms("exclude_ingredients", q.exclude_ingredients.as_deref(), kb, &mut errors);
        let include = terms("include_ingredients", q.include_ingredients.as_deref(), kb, &mut errors);
        if !errors.is_empty() {
            return Err(Problem::validation(errors));
        }
        Ok(Self {
            words,
            brand: q.brand.clone(),
            category: q.category.clone(),
            status: q.status,
            external_id: q.external_id.clone(),
            routine_step,
            concerns,
            skin_type,
            price_min: q.price_min,
            price_max: q.price_max,
            flags,
            kb_version: kb.version().to_owned(),
            exclude,
            include,
        })
    }

    /// Terms the knowledge base does not know (matched by declared name only).
    pub fn unknown_terms(&self) -> Vec<String> {
        self.exclude.iter().chain(&self.include).filter(|t| t.ids.is_empty()).map(|t| t.raw.clone()).collect()
    }

    fn where_clause(&self) -> (String, Vec<Arg>) {
        let mut sql = String::from("1 = 1");
        let mut args: Vec<Arg> = Vec::new();
        let arg = |args: &mut Vec<Arg>, a: Arg| {
            args.push(a);
            format!("${}", args.len())
        };
        for w in &self.words {
            let n = arg(&mut args, Arg::Text(format!("%{}%", like_escape(w))));
            sql.push_str(&format!(" AND s.search_text LIKE {n} ESCAPE '\\'"));
        }
        if let Some(b) = &self.brand {
            let n = arg(&mut args, Arg::Text(b.clone()));
            sql.push_str(&format!(" AND s.brand = {n}"));
        }
        if let Some(c) = &self.category {
            let exact = arg(&mut args, Arg::Text(c.clone()));
            let prefix = arg(&mut args, Arg::Text(format!("{}/%", like_escape(c))));
            sql.push_str(&format!(" AND (s.category = {exact} OR s.category LIKE {prefix} ESCAPE '\\')"));
        }
        if let Some(s) = self.status {
            let n = arg(&mut args, Arg::Text(s.as_str().to_owned()));
            sql.push_str(&format!(" AND s.status = {n}"));
        }
        if let Some(e) = &self.external_id {
            let n = arg(&mut args, Arg::Text(e.clone()));
            sql.push_str(&format!(" AND s.product_id IN (SELECT id FROM products WHERE external_id = {n})"));
        }
        if let Some(r) = self.routine_step {
            let n = arg(&mut args, Arg::Text(r.as_str().to_owned()));
            sql.push_str(&format!(" AND s.routine_step = {n}"));
        }
        for c in &self.concerns {
            let n = arg(&mut args, Arg::Text(c.clone()));
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM product_concerns pc WHERE pc.product_id = s.product_id AND pc.concern = {n})"
            ));
        }
        if let Some(t) = &self.skin_type {
            // Declared for it (or not declared at all), and the ingredients fit it.
            let n = arg(&mut args, Arg::Text(format!("%|{t}|%")));
            sql.push_str(&format!(" AND (s.skin_types IS NULL OR s.skin_types LIKE {n})"));
            sql.push_str(match t.as_str() {
                "oily" | "combination" => " AND s.non_comedogenic = 1",
                "dry" => " AND s.drying_alcohol_free = 1",
                "sensitive" => {
                    " AND s.fragrance_free = 1 AND s.contact_allergen_free = 1 AND s.drying_alcohol_free = 1"
                }
                _ => " AND s.has_ingredients = 1",
            });
        }
        if let Some(v) = self.price_min {
            let n = arg(&mut args, Arg::Int(v));
            sql.push_str(&format!(" AND s.min_price_minor >= {n}"));
        }
        if let Some(v) = self.price_max {
            let n = arg(&mut args, Arg::Int(v));
            sql.push_str(&format!(" AND s.min_price_minor <= {n}"));
        }
        for (column, value) in &self.flags {
            let n = arg(&mut args, Arg::Int(i64::from(*value)));
            sql.push_str(&format!(" AND s.{column} = {n}"));
        }
        let free_of = !self.exclude.is_empty()
            || self.skin_type.is_some()
            || self.flags.iter().any(|(c, _)| !["vegan", "has_ingredients"].contains(c));
        if free_of {
            let n = arg(&mut args, Arg::Text(self.kb_version.clone()));
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM products fv WHERE fv.id = s.product_id AND fv.kb_version = {n})"
            ));
        }
        // An excluded family is matched through the family list stored with each product (one
        // string test on the narrow row; it counts the families of ingredients the product may
        // contain). Single ingredients, and families that must be present, through correlated
        // subqueries by canonical id (everything declared or possibly contained for an exclusion,
        // only what is declared for an inclusion) and by declared name, each served by its index.
        let term_match = |args: &mut Vec<Arg>, t: &Term, negate: bool| {
            if let Some(f) = &t.family
                && negate
            {
                let n = arg(args, Arg::Text(format!("%|{f}|%")));
                return format!(" AND s.families NOT LIKE {n}");
            }
            let ids: Vec<String> = t.ids.iter().map(|id| arg(args, Arg::Text(id.clone()))).collect();
            let key = arg(args, Arg::Text(t.name_key.clone()));
            let mut parts = vec![format!(
                "EXISTS (SELECT 1 FROM product_ingredients pi WHERE pi.product_id = s.product_id AND pi.name_key = {key})"
            )];
            if !ids.is_empty() {
                parts.push(format!(
                    "EXISTS (SELECT 1 FROM product_ingredient_ids pii WHERE pii.product_id = s.product_id AND pii.ingredient_id IN ({}){})",
                    ids.join(", "),
                    if negate { "" } else { " AND pii.certain = 1" }
                ));
            }
            if negate {
                parts.iter().map(|p| format!(" AND NOT {p}")).collect()
            } else {
                format!(" AND ({})", parts.join(" OR "))
            }
        };
        if !self.exclude.is_empty() {
            sql.push_str(" AND s.has_ingredients = 1");
            for t in &self.exclude {
                let clause = term_match(&mut args, t, true);
                sql.push_str(&clause);
            }
        }
        for t in &self.include {
            let clause = term_match(&mut args, t, false);
            sql.push_str(&clause);
        }
        (sql, args)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s),
            Arg::Int(i) => q.bind(i),
        };
    }
    q
}

/// Products matching `f`, in id order after `after`.
pub async fn search<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    f: &SearchFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let (mut w, mut args) = f.where_clause();
    if let Some(a) = after {
        args.push(Arg::Text(a.to_owned()));
        w.push_str(&format!(" AND s.product_id > ${}", args.len()));
    }
    let sql = format!(
        "SELECT {} FROM product_search s JOIN products p ON p.id = s.product_id WHERE {w} ORDER BY s.product_id LIMIT {limit}",
        crate::store::PRODUCT_COLUMNS_P
    );
    let rows = bind_all(sqlx::query(&sql), args).fetch_all(ex).await?;
    rows.iter().map(crate::store::product_row).collect()
}

/// The ids of every product matching `f`, in id order: the same filter as [`search`] without
/// reading the products (for checks over a whole catalog, and rules that only need to know which
/// products pass).
pub async fn search_ids<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    f: &SearchFilter,
) -> Result<Vec<String>, StoreError> {
    let (w, args) = f.where_clause();
    let sql = format!("SELECT s.product_id FROM product_search s WHERE {w} ORDER BY s.product_id");
    let rows = bind_all(sqlx::query(&sql), args).fetch_all(ex).await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(StoreError::from)).collect()
}

/// Counts of the matching products by value, per facet.
pub type Facets = BTreeMap<String, BTreeMap<String, i64>>;

/// The facets `search` can count.
pub const FACETS: [&str; 6] = ["routine_step", "brand", "category", "concern", "fragrance_free", "vegan"];

/// Counts matching products per value of each facet.
pub async fn facets(db: &dermis_store::Db, f: &SearchFilter) -> Result<Facets, StoreError> {
    let mut out = Facets::new();
    for facet in FACETS {
        let (w, args) = f.where_clause();
        let sql = match facet {
            "concern" => format!(
                "SELECT pc.concern, COUNT(*) FROM product_concerns pc JOIN product_search s ON s.product_id = pc.product_id WHERE {w} GROUP BY pc.concern"
            ),
            "brand" | "category" => format!(
                "SELECT s.{facet}, COUNT(*) FROM product_search s WHERE {w} GROUP BY s.{facet} ORDER BY COUNT(*) DESC, s.{facet} LIMIT 50"
            ),
            column => format!("SELECT s.{column}, COUNT(*) FROM product_search s WHERE {w} GROUP BY s.{column}"),
        };
        let rows = bind_all(sqlx::query(&sql), args).fetch_all(db.reader()).await?;
        let mut counts = BTreeMap::new();
        for r in rows {
            let value = match facet {
                "fragrance_free" | "vegan" => match r.try_get::<Option<i64>, _>(0)? {
                    Some(1) => "true".to_owned(),
                    Some(_) => "false".to_owned(),
                    None => "unknown".to_owned(),
                },
                _ => r.try_get::<Option<String>, _>(0)?.unwrap_or_else(|| "unknown".to_owned()),
            };
            counts.insert(value, r.try_get::<i64, _>(1)?);
        }
        out.insert(facet.to_owned(), counts);
    }
    Ok(out)
}

/// A product in a page of search results: its id, and its JSON as listings show it (serialized
/// once, when the index took the product, so a page costs no serialization of products).
#[derive(Debug, Clone)]
pub struct Listed {
    /// The product id.
    pub id: String,
    json: Arc<RawValue>,
}

impl Listed {
    /// A product as listings show it (without the parsed ingredient list).
    pub fn new(p: &Product) -> Result<Self, serde_json::Error> {
        let json: Arc<RawValue> = Arc::from(serde_json::value::to_raw_value(p)?);
        Ok(Self { id: p.id.clone(), json })
    }

    /// Its JSON.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

impl Serialize for Listed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// A page of search results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchPage {
    /// The products: by relevance when the search has words (`q`), otherwise in creation order.
    #[schema(value_type = Vec<Product>)]
    pub items: Vec<Listed>,
    /// Pass as `cursor` to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Counts per facet value over all matching products (with `facets=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
    /// Ingredient terms the knowledge base does not know; they were matched by declared name only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_terms: Vec<String>,
}
