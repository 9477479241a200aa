//! The catalog's SQL, one text for both backends (portable subset: `$n` parameters, BIGINT
//! millisecond timestamps, TEXT). Functions take an executor, so the service decides what runs in
//! one transaction.

use dermis_core::clock::rfc3339;
use dermis_store::StoreError;
use dermis_store::sqlx::{self, Any, AnyConnection, Executor, Row, any::AnyRow};

use crate::input::{NewProduct, NewSku};
use crate::model::{Money, Product, ProductStatus, Sku, Variant};

const PRODUCT_COLUMNS: &str = "id, external_id, name, brand, category, description, ingredients, highlights, facts, status, version, created_at, updated_at";
/// The product columns, qualified with the alias `p`.
pub(crate) const PRODUCT_COLUMNS_P: &str = "p.id, p.external_id, p.name, p.brand, p.category, p.description, p.ingredients, p.highlights, p.facts, p.status, p.version, p.created_at, p.updated_at";
const SKU_COLUMNS: &str = "id, product_id, code, barcode, shade, size, scent, formula, price_minor, currency, status, version, created_at, updated_at";

fn status(row: &AnyRow, col: &str) -> Result<ProductStatus, StoreError> {
    let s: String = row.try_get(col).map_err(StoreError::from)?;
    ProductStatus::parse(&s).ok_or_else(|| StoreError::Other(format!("unknown status {s:?} in the catalog")))
}

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Other(format!("corrupt {col}: {e}")))).transpose()
}

pub(crate) fn product_row(row: &AnyRow) -> Result<Product, StoreError> {
    product(row)
}

fn product(row: &AnyRow) -> Result<Product, StoreError> {
    Ok(Product {
        id: row.try_get("id")?,
        external_id: row.try_get("external_id")?,
        name: row.try_get("name")?,
        brand: row.try_get("brand")?,
        category: row.try_get("category")?,
        description: row.try_get("description")?,
        ingredients: row.try_get("ingredients")?,
        highlights: json_column::<Vec<String>>(row, "highlights")?.unwrap_or_default(),
        attributes: json_column(row, "facts")?,
        status: status(row, "status")?,
        version: row.try_get("version")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

fn sku(row: &AnyRow) -> Result<Sku, StoreError> {
    Ok(Sku {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        code: row.try_get("code")?,
        barcode: row.try_get("barcode")?,
        variant: Variant {
            shade: row.try_get("shade")?,
            size: row.try_get("size")?,
            scent: row.try_get("scent")?,
            formula: row.try_get("formula")?,
        },
        price: Money { amount_minor: row.try_get("price_minor")?, currency: row.try_get("currency")? },
        status: status(row, "status")?,
        version: row.try_get("version")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// Inserts a new product.
pub async fn insert_product(conn: &mut AnyConnection, id: &str, p: &NewProduct, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO products (id, external_id, name, brand, category, description, ingredients, highlights, status, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $9, 'active', 1, $8, $8)",
    )
    .bind(id)
    .bind(p.external_id.clone())
    .bind(&p.name)
    .bind(&p.brand)
    .bind(p.category.clone())
    .bind(p.description.clone())
    .bind(p.ingredients.clone())
    .bind(now)
    .bind(highlights_json(&p.highlights))
    .execute(conn)
    .await?;
    Ok(())
}

fn highlights_json(h: &[String]) -> Option<String> {
    (!h.is_empty()).then(|| serde_json::to_string(h).unwrap_or_default())
}

/// Reads one product, with its resolved ingredient list in `attributes.ingredients`.
pub async fn get_product<'c, E: Executor<'c, Database = Any>>(ex: E, id: &str) -> Result<Option<Product>, StoreError> {
    let row = sqlx::query(&format!("SELECT {PRODUCT_COLUMNS}, ingredient_entries FROM products WHERE id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut p = product(&row)?;
    if let Some(a) = p.attributes.as_mut() {
        a.ingredients = json_column(&row, "ingredient_entries")?.unwrap_or_default();
    }
    Ok(Some(p))
}

/// Reads products in full (resolved ingredient lists included) in id order after `after`, at
/// most `limit`, each with its lowest active SKU price in minor units: what a projection that
/// keeps the whole catalog in memory (the recommendation engine's) loads.
pub async fn list_full_products<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    after: Option<&str>,
    only: Option<&str>,
    limit: u32,
) -> Result<Vec<(Product, Option<i64>)>, StoreError> {
    let mut sql = format!(
        "SELECT {PRODUCT_COLUMNS}, ingredient_entries, \
         (SELECT min_price_minor FROM product_search s WHERE s.product_id = products.id) AS min_price_minor \
         FROM products WHERE id > $1"
    );
    if only.is_some() {
        sql.push_str(" AND id = $2");
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
    let mut q = sqlx::query(&sql).bind(after.unwrap_or(""));
    if let Some(id) = only {
        q = q.bind(id);
    }
    q.fetch_all(ex)
        .await?
        .iter()
        .map(|row| {
            let mut p = product(row)?;
            if let Some(a) = p.attributes.as_mut() {
                a.ingredients = json_column(row, "ingredient_entries")?.unwrap_or_default();
            }
            Ok((p, row.try_get::<Option<i64>, _>("min_price_minor")?))
        })
        .collect()
}

/// The id of the product with this external id.
pub async fn product_id_by_external_id<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    external_id: &str,
) -> Result<Option<String>, StoreError> {
    let row =
        sqlx::query("SELECT id FROM products WHERE external_id = $1").bind(external_id).fetch_optional(ex).await?;
    row.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
}

/// The id of a product's SKU with this code.
pub async fn sku_id_by_code<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    product_id: &str,
    code: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT id FROM skus WHERE product_id = $1 AND code = $2")
        .bind(product_id)
        .bind(code)
        .fetch_optional(ex)
        .await?;
    row.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
}

/// (product id, SKU id) of the active SKUs of the products whose ids are `from` through
/// `through` (both included), by product then SKU.
pub async fn active_sku_ids<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    from: &str,
    through: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT product_id, id FROM skus WHERE product_id >= $1 AND product_id <= $2 AND status = 'active' \
         ORDER BY product_id, id",
    )
    .bind(from)
    .bind(through)
    .fetch_all(ex)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Filters of a product listing.
#[derive(Debug, Default, Clone)]
pub struct ProductFilter {
    /// Exact brand.
    pub brand: Option<String>,
    /// Exact category.
    pub category: Option<String>,
    /// Status.
    pub status: Option<ProductStatus>,
    /// External id.
    pub external_id: Option<String>,
}

/// Lists products in id order after `after`, at most `limit` rows.
pub async fn list_products<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    filter: &ProductFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Product>, StoreError> {
    let mut sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    let mut cond = |sql: &mut String, column: &str, value: String| {
        args.push(value);
        sql.push_str(&format!(" AND {column} ${}", args.len()));
    };
    if let Some(v) = &filter.brand {
        cond(&mut sql, "brand =", v.clone());
    }
    if let Some(v) = &filter.category {
        cond(&mut sql, "category =", v.clone());
    }
    if let Some(v) = filter.status {
        cond(&mut sql, "status =", v.as_str().to_owned());
    }
    if let Some(v) = &filter.external_id {
        cond(&mut sql, "external_id =", v.clone());
    }
    if let Some(v) = after {
        cond(&mut sql, "id >", v.to_owned());
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
    let mut q = sqlx::query(&sql);
    for a in args {
        q = q.bind(a);
    }
    q.fetch_all(ex).await?.iter().map(product).collect()
}

/// Writes every mutable column of `p` if the stored version is still `p.version - 1`. Returns
/// whether a row was written.
pub async fn update_product(conn: &mut AnyConnection, p: &Product, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE products SET external_id = $1, name = $2, brand = $3, category = $4, description = $5,
                ingredients = $6, status = $7, version = $8, updated_at = $9, highlights = $12
         WHERE id = $10 AND version = $11",
    )
    .bind(p.external_id.clone())
    .bind(&p.name)
    .bind(&p.brand)
    .bind(p.category.clone())
    .bind(p.description.clone())
    .bind(p.ingredients.clone())
    .bind(p.status.as_str())
    .bind(p.version)
    .bind(now)
    .bind(&p.id)
    .bind(p.version - 1)
    .bind(highlights_json(&p.highlights))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Inserts a new SKU.
pub async fn insert_sku(
    conn: &mut AnyConnection,
    id: &str,
    product_id: &str,
    s: &NewSku,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO skus (id, product_id, code, barcode, shade, size, scent, formula, price_minor, currency, status, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', 1, $11, $11)",
    )
    .bind(id)
    .bind(product_id)
    .bind(&s.code)
    .bind(s.barcode.clone())
    .bind(s.variant.shade.clone())
    .bind(s.variant.size.clone())
    .bind(s.variant.scent.clone())
    .bind(s.variant.formula.clone())
    .bind(s.price.amount_minor)
    .bind(&s.price.currency)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads one SKU of a product.
pub async fn get_sku<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    product_id: &str,
    id: &str,
) -> Result<Option<Sku>, StoreError> {
    let row = sqlx::query(&format!("SELECT {SKU_COLUMNS} FROM skus WHERE id = $1 AND product_id = $2"))
        .bind(id)
        .bind(product_id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(sku).transpose()
}

/// A SKU by its id or by its code (the merchant's, unique across the catalog).
pub async fn find_sku<'c, E: Executor<'c, Database = Any>>(ex: E, reference: &str) -> Result<Option<Sku>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {SKU_COLUMNS} FROM skus WHERE id = $1 OR code = $1 ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
    ))
    .bind(reference)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(sku).transpose()
}

/// Lists a product's SKUs in id order after `after`.
pub async fn list_skus<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    product_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Sku>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {SKU_COLUMNS} FROM skus WHERE product_id = $1 AND id > $2 ORDER BY id LIMIT {limit}"
    ))
    .bind(product_id)
    .bind(after.unwrap_or(""))
    .fetch_all(ex)
    .await?;
    rows.iter().map(sku).collect()
}

/// Writes every mutable column of `s` if the stored version is still `s.version - 1`.
pub async fn update_sku(conn: &mut AnyConnection, s: &Sku, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE skus SET code = $1, barcode = $2, shade = $3, size = $4, scent = $5, formula = $6,
                price_minor = $7, currency = $8, status = $9, version = $10, updated_at = $11
         WHERE id = $12 AND version = $13",
    )
    .bind(&s.code)
    .bind(s.barcode.clone())
    .bind(s.variant.shade.clone())
    .bind(s.variant.size.clone())
    .bind(s.variant.scent.clone())
    .bind(s.variant.formula.clone())
    .bind(s.price.amount_minor)
    .bind(&s.price.currency)
    .bind(s.status.as_str())
    .bind(s.version)
    .bind(now)
    .bind(&s.id)
    .bind(s.version - 1)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ids of products whose facts are missing or were derived under another knowledge base version.
pub async fn stale_fact_ids<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    kb_version: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id FROM products WHERE kb_version IS NULL OR kb_version <> $1 ORDER BY id LIMIT {limit}"
    ))
    .bind(kb_version)
    .fetch_all(ex)
    .await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(StoreError::from)).collect()
}

/// A product named in a listing of another resource.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProductRef {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
}

/// Products whose declaration contains an ingredient (first `limit`, in id order) and their count.
pub async fn products_containing(
    pool: &dermis_store::sqlx::AnyPool,
    ingredient_id: &str,
    limit: u32,
) -> Result<(Vec<ProductRef>, i64), StoreError> {
    let cond = "EXISTS (SELECT 1 FROM product_ingredient_ids pii WHERE pii.product_id = p.id AND pii.ingredient_id = $1 AND pii.certain = 1)";
    let rows =
        sqlx::query(&format!("SELECT p.id, p.name, p.brand FROM products p WHERE {cond} ORDER BY p.id LIMIT {limit}"))
            .bind(ingredient_id)
            .fetch_all(pool)
            .await?;
    let count: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM products p WHERE {cond}"))
        .bind(ingredient_id)
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    let refs = rows
        .iter()
        .map(|r| Ok(ProductRef { id: r.try_get(0)?, name: r.try_get(1)?, brand: r.try_get(2)? }))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((refs, count))
}

/// Appends a domain event to the outbox, in the caller's transaction.
pub async fn append_event(
    conn: &mut AnyConnection,
    event_type: &str,
    aggregate_id: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO catalog_outbox (id, event_type, aggregate_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(dermis_core::ids::new_id("evt"))
    .bind(event_type)
    .bind(aggregate_id)
    .bind(payload.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The outbox, oldest first (for the relay, and for tests).
pub async fn outbox<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    limit: u32,
) -> Result<Vec<(String, String, serde_json::Value)>, StoreError> {
    let rows =
        sqlx::query(&format!("SELECT event_type, aggregate_id, payload FROM catalog_outbox ORDER BY id LIMIT {limit}"))
            .fetch_all(ex)
            .await?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get(2)?;
            let value = serde_json::from_str(&payload).map_err(|e| StoreError::Other(e.to_string()))?;
            Ok((r.try_get(0)?, r.try_get(1)?, value))
        })
        .collect()
}

/// A domain event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Unique id (also the bus message id, so a second relay of it is a no-op).
    pub id: String,
    /// `catalog.product.created` ...
    pub event_type: String,
    /// The product or SKU id.
    pub aggregate_id: String,
    /// JSON.
    pub payload: String,
}

/// Outbox events not yet handed to the bus, oldest first.
pub async fn unpublished(pool: &dermis_store::sqlx::AnyPool, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT id, event_type, aggregate_id, payload FROM catalog_outbox WHERE published_at IS NULL ORDER BY id LIMIT {limit}"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEvent {
                id: r.try_get(0)?,
                event_type: r.try_get(1)?,
                aggregate_id: r.try_get(2)?,
                payload: r.try_get(3)?,
            })
        })
        .collect()
}

/// Marks outbox events as handed to the bus.
pub async fn mark_published(pool: &dermis_store::sqlx::AnyPool, ids: &[String], now: i64) -> Result<(), StoreError> {
    for chunk in ids.chunks(200) {
        let params: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("UPDATE catalog_outbox SET published_at = $1 WHERE id IN ({})", params.join(", "));
        let mut q = sqlx::query(&sql).bind(now);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(pool).await?;
    }
    Ok(())
}
