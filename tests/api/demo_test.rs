//! The demo: its customers arrive through ingestion, are understood through the demo catalog,
//! and loading twice stores nothing new.

use std::sync::Arc;

use dermis_events::ingest::Ingestor;
use dermis_features::Features;
use dermis_features::directory::CatalogDirectory;
use dermis_features::memory::MemoryFeatures;
use dermis_server::demo;

use crate::helpers::spawn_app;

#[tokio::test]
async fn demo_customers_load_once_with_catalog_features() {
    let app = spawn_app().await;
    let db = app.test_db.db().clone();
    demo::load(&db).await.unwrap();
    let directory = Arc::new(CatalogDirectory::new(dermis_catalog::Catalog::new(db.clone())));
    let pseudonyms = dermis_events::Pseudonyms::load(&db).await.unwrap();
    let features = Features::new(Arc::new(MemoryFeatures::new()), pseudonyms.clone(), dermis_core::clock::system())
        .with_directory(directory);
    let ingestor = Ingestor::new(db.clone(), 4, pseudonyms).with_hook(Arc::new(features.clone()));
    let first = demo::load_customers(&ingestor).await.unwrap();
    assert!(first >= demo::CUSTOMERS.len() * 3, "identify, quiz and activity per customer: {first}");
    assert_eq!(demo::load_customers(&ingestor).await.unwrap(), 0, "a second load stores nothing");
    let ana = features.customer("demo-ana").await.unwrap().unwrap();
    assert_eq!(ana.recent_purchases.len(), 2);
    assert!(ana.purchases_by_step.values().sum::<i64>() >= 1, "the demo catalog knows her products: {ana:?}");
    assert!(!ana.brand_affinity.is_empty());
    let dev = features.customer("demo-dev").await.unwrap().unwrap();
    assert_eq!(dev.recent_add_to_carts.len(), 1);
}
