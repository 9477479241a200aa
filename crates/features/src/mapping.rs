//! The event-to-feature mapping: which stored Segment messages update the online features, and
//! how (views, add-to-carts and purchases of products, for the customer's pseudonym: features
//! never hold a customer id in clear).

use dermis_events::Pseudonyms;
use dermis_events::message::{Kind, Message};
use dermis_events::schemas::normalize_name;
use serde_json::Value;

use crate::{Action, FeatureEvent};

/// Whether messages of this kind (as [`dermis_events::outbox::kind_label`] names it) update
/// features.
pub fn updates_features(kind: &str) -> bool {
    matches!(kind, "track:product_viewed" | "track:product_added" | "track:order_completed")
}

/// The feature updates a stored message implies (none for most messages).
pub fn feature_events(write_key_id: &str, m: &Message, pseudonyms: &Pseudonyms) -> Vec<FeatureEvent> {
    let (Kind::Track, Some(event)) = (m.kind, m.event.as_deref()) else { return Vec::new() };
    let action = match normalize_name(event).as_str() {
        "product_viewed" => Action::View,
        "product_added" => Action::AddToCart,
        "order_completed" => Action::Purchase,
        _ => return Vec::new(),
    };
    let props = m.payload.get("properties").unwrap_or(&Value::Null);
    let products: Vec<&Value> = match action {
        Action::Purchase => {
            props.get("products").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
        }
        _ => vec![props],
    };
    let customer = pseudonyms.customer(m.partition_key());
    let text = |v: &Value, k: &str| {
        v.get(k).and_then(|x| x.as_str().map(str::to_owned).or_else(|| x.as_number().map(|n| n.to_string())))
    };
    products
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let product_id = text(p, "product_id")?;
            let price = p.get("price").and_then(Value::as_f64).unwrap_or(0.0);
            let quantity = p.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
            Some(FeatureEvent {
                id: format!("{write_key_id}:{}:{i}", m.message_id),
                customer_id: customer.clone(),
                product_id,
                action,
                brand: text(p, "brand"),
                category: text(p, "category"),
                routine_step: None,
                actives: Vec::new(),
                amount_minor: if action == Action::Purchase { (price * quantity * 100.0).round() as i64 } else { 0 },
                at_ms: m.timestamp_ms,
                received_at_ms: m.received_at_ms,
            })
        })
        .collect()
}
