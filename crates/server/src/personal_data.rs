//! The parts of a customer's export and erasure that domains other than customers and events
//! hold (features, orders), wired here because the server is where both sides meet (the customers domain knows
//! [`PersonalDataSource`], the features domain knows nothing of customers).

use async_trait::async_trait;
use dermis_customers::privacy::{PersonalDataSource, Subject};
use dermis_features::Features;
use dermis_orders::Orders;
use serde_json::{Map, Value};

/// The features domain's part: a customer's online features (recent views, carts, purchases,
/// spend, affinities), by each id they are known by. Erasure has nothing to do here: the events
/// domain's erasure removes the customer's features on every node.
pub struct FeaturesData(pub Features);

#[async_trait]
impl PersonalDataSource for FeaturesData {
    fn name(&self) -> &'static str {
        "features"
    }

    async fn export(&self, subject: &Subject) -> anyhow::Result<Value> {
        let mut out = Map::new();
        for id in subject.ids() {
            if let Some(f) = self.0.customer(id).await? {
                out.insert(id.to_owned(), serde_json::to_value(f)?);
            }
        }
        Ok(Value::Object(out))
    }

    async fn erase(&self, _subject: &Subject) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The orders domain's part: a customer's orders (with their payments, shipments and returns)
/// and carts. Erasure removes the customer's id from them; the orders stay as sales records
/// (lines, amounts, channel). The service is set once the application has built it (the
/// customers are opened before the inventory it needs); until then an export or an erasure
/// fails, and an erasure is retried.
pub struct OrdersData(pub std::sync::Arc<std::sync::OnceLock<Orders>>);

impl OrdersData {
    fn orders(&self) -> anyhow::Result<&Orders> {
        self.0.get().ok_or_else(|| anyhow::anyhow!("the orders service is not started yet"))
    }
}

#[async_trait]
impl PersonalDataSource for OrdersData {
    fn name(&self) -> &'static str {
        "orders"
    }

    async fn export(&self, subject: &Subject) -> anyhow::Result<Value> {
        let orders = self.orders()?;
        let (found, carts) = orders.of_customer(&subject.ids()).await?;
        let mut views = Vec::with_capacity(found.len());
        for order in &found {
            views.push(serde_json::to_value(dermis_orders::view::order_view(orders, order).await?)?);
        }
        let carts: Vec<Value> =
            carts.iter().map(|c| serde_json::to_value(dermis_orders::view::cart_view(c))).collect::<Result<_, _>>()?;
        Ok(serde_json::json!({"orders": views, "carts": carts}))
    }

    async fn erase(&self, subject: &Subject) -> anyhow::Result<()> {
        self.orders()?.forget_customer(&subject.ids()).await?;
        Ok(())
    }
}
