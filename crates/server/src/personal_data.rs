//! The parts of a customer's export and erasure that domains other than customers and events
//! hold, wired here because the server is where both sides meet (the customers domain knows
//! [`PersonalDataSource`], the features domain knows nothing of customers).

use async_trait::async_trait;
use dermis_customers::privacy::{PersonalDataSource, Subject};
use dermis_features::Features;
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
