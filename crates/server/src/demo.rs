//! The demo: a bundled subset of a real skincare catalog (see `demo/ATTRIBUTION.md`), loaded
//! through the catalog's own import, so it obeys every rule real data does. Loading twice changes
//! nothing: products are matched by their external id.
//!
//! Four demo customers (skin types, concerns, views, orders) are loaded as the events a web shop
//! would send, so their online features are there from the start (their `identify` creates them
//! as customers). [`load_profiles`] then gives them consents and skin profiles through the
//! customers domain, as a counter's advisor would: Ana is allergic to linalool, Ben has acne,
//! Chloé is pregnant, Dev reacts to fragrance. [`load_stock`] gives the brand a warehouse and
//! two stores with stock of every demo SKU, by lot, through the inventory ledger.

use anyhow::Context;
use dermis_catalog::import::{self, ImportReport};
use dermis_events::ingest::Ingestor;
use dermis_inventory::{Channel, ChannelPolicy, Command, Inventory, Location, LocationDetails, LocationKind, Lot};
use dermis_inventory::{ReceiptLine, Request, Setup, SkuId};
use dermis_store::Db;

const CATALOG_JSON: &str = include_str!("../demo/catalog.json");

/// A demo location: id, code, name, kind, latitude, longitude, channels, units per SKU at most.
type DemoLocation = (&'static str, &'static str, &'static str, LocationKind, f64, f64, &'static [&'static str], u64);

/// The demo's locations.
const LOCATIONS: [DemoLocation; 3] = [
    ("loc_demo_wh_berlin", "WH-BERLIN", "Berlin warehouse", LocationKind::Warehouse, 52.43, 13.53, &["web", "app"], 60),
    (
        "loc_demo_st_mitte",
        "ST-BERLIN-MITTE",
        "Berlin Mitte store",
        LocationKind::Store,
        52.524,
        13.402,
        &["pos", "web"],
        8,
    ),
    ("loc_demo_st_munich", "ST-MUNICH", "Munich store", LocationKind::Store, 48.137, 11.575, &["pos", "web"], 8),
];

/// Gives the demo a warehouse and two stores (click and collect) and stock of every demo SKU:
/// a deterministic number of units per SKU and location (some none, to show what out of stock
/// looks like), in one lot expiring on 2030-06-30. Loading twice changes nothing (the receipts'
/// keys are fixed). Returns the units received now.
pub async fn load_stock(db: &Db, inventory: &Inventory) -> anyhow::Result<i64> {
    let known: Vec<String> = inventory.read(|l| l.setup().locations.iter().map(|x| x.id.to_string()).collect());
    let mut more = Setup::default();
    for (id, code, name, kind, latitude, longitude, channels, _) in LOCATIONS {
        if known.iter().any(|k| k == id) {
            continue;
        }
        let hours = if kind == LocationKind::Store {
            ["mon", "tue", "wed", "thu", "fri", "sat"]
                .iter()
                .map(|d| ((*d).to_owned(), "10:00-20:00".to_owned()))
                .collect()
        } else {
            Default::default()
        };
        more.locations.push(Location {
            id: id.into(),
            kind,
            latitude,
            longitude,
            channels: channels.iter().map(|c| c.parse()).collect::<Result<_, _>>()?,
            details: LocationDetails {
                code: code.into(),
                name: name.into(),
                click_and_collect: kind == LocationKind::Store,
                opening_hours: hours,
            },
        });
    }
    let policies: Vec<Channel> = inventory.read(|l| l.setup().channels.iter().map(|p| p.channel.clone()).collect());
    for channel in [Channel::Web, Channel::App, Channel::Pos] {
        if !policies.contains(&channel) {
            more.channels.push(ChannelPolicy { channel, safety_stock: 0, min_shelf_life_days: 0 });
        }
    }
    if more != Setup::default() {
        inventory.extend_setup(more).await.context("the demo locations")?;
    }
    let rows = import::read_json(CATALOG_JSON).map_err(anyhow::Error::msg)?;
    let codes: Vec<String> = rows.iter().flatten().flat_map(|r| r.skus.iter().map(|s| s.code.clone())).collect();
    let catalog = dermis_catalog::Catalog::new(db.clone());
    let mut skus = Vec::with_capacity(codes.len());
    for code in &codes {
        if let Some(sku) = catalog.sku_by_reference(code).await? {
            skus.push((code.clone(), SkuId::new(sku.id)));
        }
    }
    let new: Vec<SkuId> =
        inventory.read(|l| skus.iter().filter(|(_, id)| !l.knows_sku(id)).map(|(_, id)| id.clone()).collect());
    if !new.is_empty() {
        inventory.extend_setup(Setup { skus: new, ..Setup::default() }).await.context("the demo SKUs")?;
    }
    let expires_on = 22_095; // 2030-06-30
    let mut requests = Vec::new();
    for (id, code, _, _, _, _, _, most) in LOCATIONS {
        let lines: Vec<ReceiptLine> = skus
            .iter()
            .filter_map(|(sku_code, sku)| {
                // A stable pseudo-random count per SKU and location (FNV-1a), a quarter of them zero.
                let hash = format!("{sku_code}@{code}")
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
                let units = (hash % (most + 1)) as i64;
                (hash % 4 != 0 && units > 0).then(|| ReceiptLine {
                    sku: sku.clone(),
                    quantity: units,
                    lot: Lot::new(format!("DEMO-{}", &code[..2]), expires_on),
                })
            })
            .collect();
        if !lines.is_empty() {
            let command = Command::Receive { location: id.into(), purchase_order: None, lines };
            requests.push(Request::new(format!("demo:receipt:{code}"), "demo", command));
        }
    }
    let mut received = 0;
    for answer in inventory.submit_all(requests).await? {
        let outcome = answer.map_err(|r| anyhow::anyhow!("demo stock refused: {r}"))?;
        if !outcome.replayed {
            received += outcome.movements.iter().map(|m| m.quantity).sum::<i64>();
        }
    }
    Ok(received)
}

/// Loads the demo catalog into `db`.
pub async fn load(db: &Db) -> anyhow::Result<ImportReport> {
    let rows = import::read_json(CATALOG_JSON).map_err(anyhow::Error::msg)?;
    Ok(import::import(db, rows, 200).await?)
}

/// Prints where to look and what to try. `dermis` is how to run this binary again, as the user
/// did (`cargo run -q --release --`, `./target/release/dermis`, `dermis`), and `data_dir` what
/// follows a command to name the data dir (` --data-dir DIR`, or nothing for the default), so the
/// printed commands work when pasted.
pub fn print_welcome(base: &str, report: &ImportReport, token: &str, dermis: &str, data_dir: &str) {
    eprintln!(
        "\nDermis demo is running at {base}\n\
         - demo catalog: {} products imported now, {} already there (Sephora subset, CC BY 4.0, Nady Inky / Kaggle)\n\
         - API reference: {base}/docs    health: {base}/healthz    metrics: {base}/metrics\n\
         - a merchandiser token (12 h) is in $TOKEN below; `{dermis} token --role admin{data_dir}` prints others\n\
         - run the commands below in another terminal, in this folder\n\n\
         export TOKEN={token}\n\
         # fragrance-free moisturizers for dry, acne-prone skin, without linalool or limonene:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/products?routine_step=moisturizer&fragrance_free=true&skin_type=dry&non_comedogenic=true&exclude_ingredients=linalool,limonene&limit=5'\n\
         # what is niacinamide, and which products have it:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/ingredients/niacinamide'\n\
         # search with facet counts:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/products?q=vitamin%20c&facets=true&limit=3'\n\
         # a demo customer's online features (also demo-ben, demo-chloe, demo-dev; needs an admin token):\n\
         curl -s -H \"Authorization: Bearer $({dermis} token --role admin{data_dir})\" '{base}/v1/features/customers/demo-ana'\n\
         # her profile: skin facts with their sources, the linalool allergy (health data, consented):\n\
         curl -s -H \"Authorization: Bearer $({dermis} token --role admin{data_dir})\" '{base}/v1/customers/demo-ana'\n\
         # her recommendations, safe for that allergy and explained (add &explain=true for what was left out, and why):\n\
         curl -s -H \"Authorization: Bearer $({dermis} token --role admin{data_dir})\" '{base}/v1/customers/demo-ana/recommendations?k=5'\n\
         # a morning and an evening routine for Ben's acne, no clashing actives, within a budget:\n\
         curl -s -H \"Authorization: Bearer $({dermis} token --role admin{data_dir})\" '{base}/v1/customers/demo-ben/routine?budget=150'\n\
         # a SKU's stock per location and channel, and the nearest store that has it:\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/inventory/SEPH-P122900'\n\
         curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/v1/locations/near?lat=52.52&lon=13.40&sku_id=SEPH-P122900'\n\
         # hold it in a web cart for 15 minutes (a 409 naming the line when stock is short):\n\
         curl -s -H \"Authorization: Bearer $({dermis} token --role service{data_dir})\" -H 'Content-Type: application/json' \
         -d '{{\"channel\":\"web\",\"lines\":[{{\"sku_id\":\"SEPH-P122900\",\"quantity\":1}}]}}' '{base}/v1/reservations'\n\
         # send an event as a web shop would, with a write key of its own:\n\
         export WRITE_KEY=$({dermis} write-key create web-shop{data_dir})\n\
         curl -s -u \"$WRITE_KEY:\" -H 'Content-Type: application/json' \
         -d '{{\"userId\":\"demo-ana\",\"event\":\"Product Viewed\",\"properties\":{{\"product_id\":\"P122900\"}}}}' '{base}/v1/track'\n",
        report.imported,
        report.unchanged + report.updated
    );
}

/// The demo customers: who they are (skin type and concerns from the skin quiz) and what they
/// did (views, a cart, orders of demo catalog products), as the events a web shop would send.
/// Message ids are fixed, so loading twice stores them once.
fn customer_events(now_ms: i64) -> Vec<serde_json::Value> {
    use serde_json::json;
    let hours_ago = |h: i64| dermis_core::clock::rfc3339(now_ms - h * 3600 * 1000);
    let people = [
        (
            "demo-ana",
            "Ana",
            "dry",
            vec!["dryness", "redness"],
            vec!["P122900", "P248407"],
            vec![("P248407", 38.0), ("P126301", 38.0)],
        ),
        (
            "demo-ben",
            "Ben",
            "oily",
            vec!["acne", "pores"],
            vec!["P297517", "P139000"],
            vec![("P139000", 23.5), ("P297517", 20.0)],
        ),
        (
            "demo-chloe",
            "Chloé",
            "combination",
            vec!["hyperpigmentation", "dullness"],
            vec!["P309308"],
            vec![("P232327", 30.0)],
        ),
        ("demo-dev", "Dev", "sensitive", vec!["redness", "sensitivity"], vec!["P12336", "P248407"], vec![]),
    ];
    let mut out = Vec::new();
    for (id, name, skin_type, concerns, viewed, bought) in people {
        out.push(json!({"type": "identify", "userId": id, "messageId": format!("{id}-identify"),
            "timestamp": hours_ago(72), "traits": {"first_name": name, "skin_type": skin_type}}));
        out.push(json!({"type": "track", "userId": id, "event": "Skin Quiz Completed", "messageId": format!("{id}-quiz"),
            "timestamp": hours_ago(72), "properties": {"quiz_id": "demo", "skin_type": skin_type, "concerns": concerns}}));
        for (i, p) in viewed.iter().enumerate() {
            out.push(
                json!({"type": "track", "userId": id, "event": "Product Viewed", "messageId": format!("{id}-view-{i}"),
                "timestamp": hours_ago(2 - i as i64), "properties": {"product_id": p}}),
            );
        }
        if !bought.is_empty() {
            let products: Vec<_> =
                bought.iter().map(|(p, price)| json!({"product_id": p, "price": price, "quantity": 1})).collect();
            out.push(json!({"type": "track", "userId": id, "event": "Order Completed", "messageId": format!("{id}-order"),
                "timestamp": hours_ago(48), "properties": {"order_id": format!("{id}-o1"), "currency": "USD", "products": products}}));
        } else {
            out.push(
                json!({"type": "track", "userId": id, "event": "Product Added", "messageId": format!("{id}-cart"),
                "timestamp": hours_ago(1), "properties": {"product_id": viewed[viewed.len() - 1], "quantity": 1}}),
            );
        }
    }
    out
}

/// Loads the demo customers' events through ingestion (under a write key named `demo`), so they
/// reach the event log, the bus and the online features like any shop's. Returns how many
/// events were stored now (0 when they were loaded before).
pub async fn load_customers(ingestor: &Ingestor) -> anyhow::Result<usize> {
    let keys = ingestor.write_keys();
    let existing = keys.list().await?.into_iter().find(|k| k.name == "demo" && k.revoked_at.is_none());
    let key_id = match existing {
        Some(k) => k.id,
        None => keys.create("demo").await?.0.id,
    };
    let batch = serde_json::json!({ "batch": customer_events(dermis_core::clock::now_ms()) });
    let result = ingestor.ingest_as(key_id, None, batch).await?;
    anyhow::ensure!(result.success, "demo events rejected: {:?}", result.rejected);
    Ok(result.accepted)
}

/// The consents and skin profiles of the demo customers, as an advisor records them: each grants
/// `personalization`, `analytics` and `health_data` (text version `demo-1`) and gets health facts.
/// A consent already granted is not recorded again, and a profile already holding these facts is
/// not changed, so loading twice changes nothing. Returns how many customers changed now.
pub async fn load_profiles(customers: &dermis_customers::Customers) -> anyhow::Result<usize> {
    use dermis_customers::Purpose;
    use dermis_customers::input::{PutConsent, PutSkinProfile};
    use dermis_customers::service::Actor;
    let profiles = [
        ("demo-ana", serde_json::json!({"allergies": ["linalool"], "lifestyle": {"climate": "dry"}})),
        ("demo-ben", serde_json::json!({"conditions": ["acne"], "lifestyle": {"sun_exposure": "high"}})),
        ("demo-chloe", serde_json::json!({"pregnant": true, "skin_tone": "medium"})),
        ("demo-dev", serde_json::json!({"sensitivities": ["fragrance"], "conditions": ["rosacea"]})),
    ];
    let actor = Actor { id: "demo-advisor".into(), role: "service".into() };
    let mut changed = 0;
    for (user_id, facts) in profiles {
        let before = customers.get(user_id).await.with_context(|| format!("demo customer {user_id}"))?;
        let held = customers.consents(user_id).await?;
        for purpose in [Purpose::Personalization, Purpose::Analytics, Purpose::HealthData] {
            if !held.granted(purpose) {
                let consent = PutConsent { granted: true, text_version: "demo-1".into(), channel: Some("pos".into()) }
                    .parse(purpose.as_str())
                    .map_err(|p| anyhow::anyhow!("demo consent: {}", p.detail))?;
                customers.set_consent(user_id, consent, &actor).await?;
            }
        }
        let mut body = facts;
        body["source"] = "advisor".into();
        let changes = serde_json::from_value::<PutSkinProfile>(body)?
            .parse()
            .map_err(|p| anyhow::anyhow!("demo skin profile: {}", p.detail))?;
        let after = customers.put_skin_profile(user_id, changes, None).await?;
        if after.version != before.version || !held.granted(Purpose::HealthData) {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The demo customers' ids, for the welcome text and tests.
pub const CUSTOMERS: [&str; 4] = ["demo-ana", "demo-ben", "demo-chloe", "demo-dev"];
