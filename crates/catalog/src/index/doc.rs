//! What the index knows of a product, read from the same tables and columns the SQL search reads
//! (`product_search`, `product_concerns`, `product_ingredient_ids`, `product_ingredients`,
//! `products.kb_version`), so both answer every filter alike; and the product as a listing shows
//! it, serialized once.

use std::collections::HashMap;

use dermis_store::sqlx::{self, Any, AnyConnection, Row, any::AnyRow};
use dermis_store::{Db, StoreError};
use futures_util::TryStreamExt;

use crate::search::Listed;

/// The nullable and boolean columns of `product_search` a filter compares with 0 or 1, in the
/// order [`SearchDoc::flags`] holds them.
pub const FLAGS: [&str; 9] = [
    "has_ingredients",
    "fragrance_free",
    "essential_oil_free",
    "drying_alcohol_free",
    "non_comedogenic",
    "pregnancy_caution",
    "photosensitizing",
    "contact_allergen_free",
    "vegan",
];

/// The position of a flag column in [`FLAGS`].
pub fn flag_index(column: &str) -> Option<usize> {
    FLAGS.iter().position(|c| *c == column)
}

/// One product as the index holds it.
#[derive(Debug, Clone)]
pub struct SearchDoc {
    /// Product id.
    pub id: String,
    /// External id.
    pub external_id: Option<String>,
    /// Status as `product_search` holds it.
    pub status: String,
    /// Brand.
    pub brand: String,
    /// Category path.
    pub category: Option<String>,
    /// Routine step.
    pub routine_step: Option<String>,
    /// Skin types the highlights declare; `None`: none declared.
    pub skin_types: Option<Vec<String>>,
    /// Families of what it declares or may contain; `None` when the ingredient list is unknown.
    pub families: Option<Vec<String>>,
    /// The [`FLAGS`] columns (`None`: NULL, unknown).
    pub flags: [Option<bool>; FLAGS.len()],
    /// Lowest active SKU price.
    pub min_price: Option<i64>,
    /// The knowledge-base version its facts were derived under.
    pub kb_version: Option<String>,
    /// Concerns its actives address.
    pub concerns: Vec<String>,
    /// Canonical ingredients it declares (`true`) or may contain (`false`).
    pub ingredient_ids: Vec<(String, bool)>,
    /// Declared-name keys of its entries.
    pub name_keys: Vec<String>,
    /// Name (searched).
    pub name: String,
    /// Highlights (searched).
    pub highlights: Vec<String>,
    /// The product as listings show it.
    pub listing: Listed,
}

/// Most ids per `IN (...)` list.
const CHUNK: usize = 200;

fn list(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

fn bool_column(row: &AnyRow, col: &str) -> Result<Option<bool>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(|v| v == 1))
}

fn bars(v: Option<String>) -> Option<Vec<String>> {
    v.map(|s| s.split('|').filter(|p| !p.is_empty()).map(str::to_owned).collect())
}

fn doc(row: &AnyRow) -> Result<SearchDoc, StoreError> {
    let product = crate::store::product_row(row)?;
    let mut flags = [None; FLAGS.len()];
    for (i, column) in FLAGS.iter().enumerate() {
        flags[i] = bool_column(row, &format!("s_{column}"))?;
    }
    let listing = Listed::new(&product).map_err(|e| StoreError::Other(format!("serializing a product: {e}")))?;
    Ok(SearchDoc {
        id: product.id,
        external_id: product.external_id,
        status: row.try_get("s_status")?,
        brand: row.try_get("s_brand")?,
        category: row.try_get("s_category")?,
        routine_step: row.try_get("s_routine_step")?,
        skin_types: bars(row.try_get("s_skin_types")?),
        families: bars(row.try_get("s_families")?),
        flags,
        min_price: row.try_get("s_min_price_minor")?,
        kb_version: row.try_get("p_kb_version")?,
        concerns: Vec::new(),
        ingredient_ids: Vec::new(),
        name_keys: Vec::new(),
        name: product.name,
        highlights: product.highlights,
        listing,
    })
}

fn select_products(filter: &str) -> String {
    let flags: Vec<String> = FLAGS.iter().map(|c| format!("s.{c} AS s_{c}")).collect();
    format!(
        "SELECT {}, p.kb_version AS p_kb_version, s.status AS s_status, s.brand AS s_brand,
                s.category AS s_category, s.routine_step AS s_routine_step, s.skin_types AS s_skin_types,
                s.families AS s_families, s.min_price_minor AS s_min_price_minor, {}
         FROM products p JOIN product_search s ON s.product_id = p.id {filter} ORDER BY p.id",
        crate::store::PRODUCT_COLUMNS_P,
        flags.join(", ")
    )
}

/// Reads the products with these ids (every product with `None`), in id order. A product
/// without its search row (none is, once created) is left out, as the SQL search leaves it out.
pub async fn load(db: &Db, ids: Option<&[String]>) -> Result<Vec<SearchDoc>, StoreError> {
    // One read transaction: on SQLite (WAL) every statement sees the same snapshot.
    let mut tx = db.reader().begin().await?;
    let mut docs = Vec::new();
    match ids {
        None => {
            docs = load_chunk(&mut tx, None).await?;
        }
        Some(ids) => {
            for chunk in ids.chunks(CHUNK) {
                docs.extend(load_chunk(&mut tx, Some(chunk)).await?);
            }
        }
    }
    tx.commit().await?;
    Ok(docs)
}

async fn load_chunk(conn: &mut AnyConnection, ids: Option<&[String]>) -> Result<Vec<SearchDoc>, StoreError> {
    let (products_filter, rows_filter) = match ids {
        Some(ids) => {
            let l = list(1, ids.len());
            (format!("WHERE p.id IN ({l})"), format!("WHERE product_id IN ({l})"))
        }
        None => (String::new(), String::new()),
    };
    let sql = select_products(&products_filter);
    let mut docs: Vec<SearchDoc> = Vec::new();
    let mut rows = bind_ids(sqlx::query(&sql), ids).fetch(&mut *conn);
    while let Some(r) = rows.try_next().await? {
        docs.push(doc(&r)?);
    }
    drop(rows);
    if docs.is_empty() {
        return Ok(docs);
    }
    let at: HashMap<String, usize> = docs.iter().enumerate().map(|(i, d)| (d.id.clone(), i)).collect();
    // Rows one at a time: a whole catalog has hundreds of thousands of them.
    let sql = format!("SELECT product_id, ingredient_id, certain FROM product_ingredient_ids {rows_filter}");
    let mut rows = bind_ids(sqlx::query(&sql), ids).fetch(&mut *conn);
    while let Some(r) = rows.try_next().await? {
        if let Some(&i) = at.get(r.try_get::<&str, _>(0)?) {
            docs[i].ingredient_ids.push((r.try_get(1)?, r.try_get::<i64, _>(2)? == 1));
        }
    }
    drop(rows);
    let sql = format!("SELECT DISTINCT product_id, name_key FROM product_ingredients {rows_filter}");
    let mut rows = bind_ids(sqlx::query(&sql), ids).fetch(&mut *conn);
    while let Some(r) = rows.try_next().await? {
        if let Some(&i) = at.get(r.try_get::<&str, _>(0)?) {
            docs[i].name_keys.push(r.try_get(1)?);
        }
    }
    drop(rows);
    let sql = format!("SELECT product_id, concern FROM product_concerns {rows_filter}");
    let mut rows = bind_ids(sqlx::query(&sql), ids).fetch(&mut *conn);
    while let Some(r) = rows.try_next().await? {
        if let Some(&i) = at.get(r.try_get::<&str, _>(0)?) {
            docs[i].concerns.push(r.try_get(1)?);
        }
    }
    drop(rows);
    Ok(docs)
}

fn bind_ids<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ids: Option<&'q [String]>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for id in ids.into_iter().flatten() {
        q = q.bind(id.as_str());
    }
    q
}
