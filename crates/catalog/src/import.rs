//! Catalog import: the Sephora `product_info` format (CSV or gzipped CSV, Python-list columns) and
//! our own JSON / NDJSON. Products are matched by `external_id`, so importing again updates what
//! changed and duplicates nothing. Rows that cannot be imported are reported with their reason;
//! products without an ingredient list are imported and flagged.
//!
//! This module only reads files into validated rows ([`read_file`], [`read_json`],
//! [`read_sephora_csv`]) and reports; the writes are the catalog's own operations
//! ([`Catalog::upsert_by_external_id`]), the ones the API's creates and updates are made of.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use dermis_core::Problem;
use dermis_store::Db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::input::{CreateProduct, CreateSku, NewProduct, NewSku};
use crate::model::{Money, Variant};
use crate::service::{ProductRecord, UpsertOutcome};
use crate::{Catalog, CatalogError};

/// A row ready to import.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// Line (CSV record or NDJSON line, 1-based; array index + 1 for JSON arrays).
    pub line: usize,
    /// The product.
    pub product: NewProduct,
    /// Its SKUs.
    pub skus: Vec<NewSku>,
}

/// A row that was not imported.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejected {
    /// Where it is in the file.
    pub line: usize,
    /// Its external id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// How often an unknown ingredient name was seen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnknownIngredient {
    /// The declared name.
    pub name: String,
    /// In how many products.
    pub products: usize,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportReport {
    /// Rows read.
    pub rows: usize,
    /// Products created.
    pub imported: usize,
    /// Products that existed and changed.
    pub updated: usize,
    /// Products that existed unchanged.
    pub unchanged: usize,
    /// Rows not imported, with reasons.
    pub rejected: Vec<Rejected>,
    /// SKUs created.
    pub skus_created: usize,
    /// Imported or updated products without an ingredient list.
    pub without_ingredients: usize,
    /// Distinct declared names the knowledge base does not know.
    pub unknown_ingredient_names: usize,
    /// The 50 most frequent of them.
    pub unknown_ingredients: Vec<UnknownIngredient>,
    /// Wall time.
    pub seconds: f64,
}

/// Our own import format (one object per product).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonItem {
    external_id: String,
    name: String,
    brand: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    ingredients: Option<String>,
    #[serde(default)]
    highlights: Vec<String>,
    #[serde(default)]
    skus: Vec<CreateSku>,
}

fn problem_reason(p: &Problem) -> String {
    if p.errors.is_empty() {
        p.detail.clone()
    } else {
        p.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
    }
}

fn validate(line: usize, item: JsonItem) -> Result<ImportRow, Rejected> {
    let external_id = Some(item.external_id.clone());
    let reject = |reason: String| Rejected { line, external_id: external_id.clone(), reason };
    let product = CreateProduct {
        name: item.name,
        brand: item.brand,
        external_id: Some(item.external_id.clone()),
        category: item.category,
        description: item.description,
        ingredients: item.ingredients.filter(|i| !i.trim().is_empty()),
        highlights: item.highlights,
    }
    .parse()
    .map_err(|p| reject(problem_reason(&p)))?;
    let skus = item
        .skus
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.parse().map_err(|p| reject(format!("skus[{i}]: {}", problem_reason(&p)))))
        .collect::<Result<Vec<NewSku>, _>>()?;
    // Each SKU of a row is matched by its code, and a barcode names one SKU.
    let mut codes = HashSet::new();
    let mut barcodes = HashSet::new();
    for s in &skus {
        if !codes.insert(s.code.as_str()) {
            return Err(reject(format!("SKU code {} appears twice", s.code)));
        }
        if let Some(b) = &s.barcode
            && !barcodes.insert(b.as_str())
        {
            return Err(reject(format!("barcode {b} appears twice")));
        }
    }
    Ok(ImportRow { line, product, skus })
}

/// Reads a file: `.csv` / `.csv.gz` in the Sephora format, or `.json` / `.ndjson` / `.jsonl` in ours.
pub fn read_file(path: &Path) -> Result<Vec<Result<ImportRow, Rejected>>, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_lowercase();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut text = String::new();
    let reader: Box<dyn Read> =
        if name.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
    std::io::BufReader::new(reader)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let stem = name.trim_end_matches(".gz");
    if stem.ends_with(".csv") {
        read_sephora_csv(&text)
    } else if stem.ends_with(".json") || stem.ends_with(".ndjson") || stem.ends_with(".jsonl") {
        read_json(&text)
    } else {
        Err("unknown format: expected .csv, .csv.gz, .json, .ndjson or .jsonl".into())
    }
}

/// Reads our JSON: an array of products, or one product per line.
pub fn read_json(text: &str) -> Result<Vec<Result<ImportRow, Rejected>>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        return Ok(values.into_iter().enumerate().map(|(i, v)| json_row(i + 1, v)).collect());
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => json_row(i + 1, v),
            Err(e) => Err(Rejected { line: i + 1, external_id: None, reason: format!("invalid JSON: {e}") }),
        })
        .collect())
}

fn json_row(line: usize, v: serde_json::Value) -> Result<ImportRow, Rejected> {
    let external_id = v.get("external_id").and_then(|e| e.as_str()).map(str::to_owned);
    let item: JsonItem =
        serde_json::from_value(v).map_err(|e| Rejected { line, external_id, reason: e.to_string() })?;
    validate(line, item)
}

/// A decoded character as products may store it: control characters other than a new line or a
/// tab become a space.
fn printable(c: char) -> char {
    if c.is_control() && c != '\n' && c != '\t' { ' ' } else { c }
}

/// Parses a Python list literal of strings (`['a', "b's"]`), as the Sephora CSV stores lists.
pub fn parse_py_list(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).ok_or("not a list literal")?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else { break };
        if quote != '\'' && quote != '"' {
            return Err(format!("expected a quoted string, found {quote:?}"));
        }
        let mut item = String::new();
        loop {
            match chars.next() {
                None => return Err("unterminated string".into()),
                Some('\\') => match chars.next() {
                    Some('n') => item.push('\n'),
                    Some('t') => item.push('\t'),
                    // A carriage return (read as the letter `r`, it glued "rLimonene" together)
                    // breaks the line; products keep no other control characters.
                    Some('r' | 'f' | 'v') => item.push('\n'),
                    Some('a' | 'b') => item.push(' '),
                    Some('\n') => {}
                    Some(c @ ('\\' | '\'' | '"')) => item.push(c),
                    Some(c @ ('x' | 'u' | 'U')) => {
                        let len = match c {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars.by_ref().take(len).collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == len)
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape \\{c}{hex}"))?;
                        item.push(printable(code));
                    }
                    Some(c @ '0'..='7') => {
                        let mut code = c.to_digit(8).unwrap_or_default();
                        for _ in 0..2 {
                            match chars.peek().and_then(|d| d.to_digit(8)) {
                                Some(d) => {
                                    code = code * 8 + d;
                                    chars.next();
                                }
                                None => break,
                            }
                        }
                        item.push(char::from_u32(code).map_or(' ', printable));
                    }
                    // Python keeps the backslash of an escape it does not know ("Water\Aqua\Eau").
                    Some(c) => {
                        item.push('\\');
                        item.push(c);
                    }
                    None => return Err("unterminated escape".into()),
                },
                Some(c) if c == quote => break,
                Some(c) => item.push(c),
            }
        }
        out.push(item);
    }
    Ok(out)
}

/// Reads the Sephora `product_info` CSV.
pub fn read_sephora_csv(text: &str) -> Result<Vec<Result<ImportRow, Rejected>>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| format!("invalid CSV header: {e}"))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = ["product_id", "product_name", "brand_name", "ingredients", "price_usd"];
    if let Some(missing) = need.iter().find(|c| col(c).is_none()) {
        return Err(format!("not a Sephora product_info file: no column {missing}"));
    }
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                rows.push(Err(Rejected { line, external_id: None, reason: format!("unreadable CSV record: {e}") }));
                continue;
            }
        };
        let get = |name: &str| col(name).and_then(|i| rec.get(i)).unwrap_or("").trim().to_owned();
        let pid = get("product_id");
        let reject =
            |reason: String| Rejected { line, external_id: Some(pid.clone()).filter(|p| !p.is_empty()), reason };
        if pid.is_empty() {
            rows.push(Err(reject("no product_id".into())));
            continue;
        }
        let ingredients = match parse_py_list(&get("ingredients")) {
            Ok(items) => Some(items.join("\n")).filter(|s| !s.trim().is_empty()),
            Err(e) => {
                rows.push(Err(reject(format!("ingredients: {e}"))));
                continue;
            }
        };
        let highlights = parse_py_list(&get("highlights")).unwrap_or_default();
        let category: Vec<String> = ["primary_category", "secondary_category", "tertiary_category"]
            .iter()
            .map(|c| get(c))
            .filter(|c| !c.is_empty())
            .collect();
        let price = match get("price_usd").parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => (p * 100.0).round() as i64,
            _ => {
                rows.push(Err(reject(format!("price_usd {:?} is not a price", get("price_usd")))));
                continue;
            }
        };
        let kind = get("variation_type").to_lowercase();
        let value = get("variation_value");
        let mut variant = Variant::default();
        let size = get("size");
        if !value.is_empty() {
            if kind.contains("color") || kind.contains("shade") {
                variant.shade = Some(value);
            } else if kind.contains("scent") {
                variant.scent = Some(value);
            } else if kind.contains("formul") || kind.contains("type") {
                variant.formula = Some(value);
            } else {
                variant.size = Some(value);
            }
        }
        if variant.size.is_none() && !size.is_empty() {
            variant.size = Some(size);
        }
        let item = JsonItem {
            external_id: pid.clone(),
            name: get("product_name"),
            brand: get("brand_name"),
            category: (!category.is_empty()).then(|| category.join("/")),
            description: None,
            ingredients,
            highlights,
            skus: vec![CreateSku {
                code: format!("SEPH-{pid}"),
                barcode: None,
                variant,
                price: Money { amount_minor: price, currency: "USD".into() },
            }],
        };
        rows.push(validate(line, item));
    }
    Ok(rows)
}

/// Imports rows in batches of `batch` products per transaction, through a catalog without a
/// search index (a command-line import; a server imports with [`import_into`] so its own index
/// follows).
pub async fn import(
    db: &Db,
    rows: Vec<Result<ImportRow, Rejected>>,
    batch: usize,
) -> Result<ImportReport, CatalogError> {
    import_into(&Catalog::new(db.clone()), rows, batch).await
}

/// Imports rows in batches of `batch` products per transaction with
/// [`Catalog::upsert_by_external_id`], the operations the API's creates and updates use.
pub async fn import_into(
    catalog: &Catalog,
    rows: Vec<Result<ImportRow, Rejected>>,
    batch: usize,
) -> Result<ImportReport, CatalogError> {
    let started = Instant::now();
    let mut report = ImportReport { rows: rows.len(), ..ImportReport::default() };
    let mut valid = Vec::new();
    for r in rows {
        match r {
            Ok(row) => valid.push(row),
            Err(rej) => report.rejected.push(rej),
        }
    }
    // A file may name one product twice: the last row wins, as a second import would.
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, r) in valid.iter().enumerate() {
        last.insert(r.product.external_id.clone().unwrap_or_default(), i);
    }
    let valid: Vec<ImportRow> = valid
        .into_iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.product.external_id.as_deref().unwrap_or_default()) == Some(i))
        .map(|(_, r)| r)
        .collect();

    let mut unknown: HashMap<String, usize> = HashMap::new();
    for chunk in valid.chunks(batch.max(1)) {
        let records: Vec<ProductRecord<'_>> =
            chunk.iter().map(|r| ProductRecord { product: &r.product, skus: &r.skus }).collect();
        let results = catalog.upsert_by_external_id(&records).await?;
        for (row, result) in chunk.iter().zip(results) {
            match result {
                Ok(done) => {
                    report.skus_created += done.skus_created;
                    match done.outcome {
                        UpsertOutcome::Created => report.imported += 1,
                        UpsertOutcome::Updated => report.updated += 1,
                        UpsertOutcome::Unchanged => {
                            report.unchanged += 1;
                            continue;
                        }
                    }
                    if let Some(facts) = &done.product.attributes {
                        tally(&mut report, &mut unknown, facts);
                    }
                }
                Err(e) => report.rejected.push(Rejected {
                    line: row.line,
                    external_id: row.product.external_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
    }
    report.rejected.sort_by_key(|r| r.line);
    report.unknown_ingredient_names = unknown.len();
    let mut top: Vec<_> = unknown.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    report.unknown_ingredients =
        top.into_iter().take(50).map(|(name, products)| UnknownIngredient { name, products }).collect();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn tally(report: &mut ImportReport, unknown: &mut HashMap<String, usize>, facts: &dermis_ingredients::ProductFacts) {
    if !facts.has_ingredient_list {
        report.without_ingredients += 1;
    }
    for name in &facts.unknown_ingredients {
        *unknown.entry(name.clone()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_list_literals() {
        assert_eq!(parse_py_list("['Water, Glycerin', \"L'Oreal\"]").unwrap(), ["Water, Glycerin", "L'Oreal"]);
        assert_eq!(parse_py_list("['It\\'s', 'a\\\\b']").unwrap(), ["It's", "a\\b"]);
        // Python escapes (P450176: "\\r" before each item; P441831: "\\u2028"; P448553: "\\xad").
        assert_eq!(parse_py_list("['a,\\rLimonene', '\\x07b']").unwrap(), ["a,\nLimonene", " b"]);
        assert_eq!(
            parse_py_list("['a\\u2028b', 'C12\\xad-15', '\\101']").unwrap(),
            ["a\u{2028}b", "C12\u{ad}-15", "A"]
        );
        assert_eq!(parse_py_list("['Water\\Aqua\\Eau']").unwrap(), ["Water\\Aqua\\Eau"]);
        assert!(parse_py_list("['\\x4']").is_err());
        assert!(parse_py_list("").unwrap().is_empty());
        assert!(parse_py_list("['open").is_err());
        assert!(parse_py_list("not a list").is_err());
    }
}
