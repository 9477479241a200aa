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

/// The demo customers, as `dermis demo` loads them: created by their `identify`, then given
/// consents and skin profiles, so the README's requests show a profile with health facts. A
/// second load changes nothing.
#[tokio::test]
async fn demo_customers_get_consented_skin_profiles_once() {
    let test_db = dermis_store::testing::TestDb::sqlite(dermis_server::app::MIGRATIONS).await;
    let mut config = crate::helpers::test_config();
    config.data_dir = test_db.data_dir().unwrap().to_path_buf();
    let app = dermis_server::Application::build(config).await.unwrap();
    demo::load(app.db()).await.unwrap();
    demo::load_customers(app.ingestor()).await.unwrap();
    assert_eq!(demo::load_profiles(app.customers()).await.unwrap(), demo::CUSTOMERS.len());
    let ana = app.customers().get("demo-ana").await.unwrap();
    let allergies = ana.skin_profile.health.allergies.as_ref().expect("Ana's allergy is stored");
    assert_eq!(allergies.value[0].id.as_deref(), Some("linalool"), "resolved by the knowledge base");
    assert_eq!(allergies.source.as_str(), "advisor");
    let consents = app.customers().consents("demo-ana").await.unwrap();
    assert!(consents.granted(dermis_customers::Purpose::HealthData));
    assert!(consents.granted(dermis_customers::Purpose::Personalization));
    let chloe = app.customers().get("demo-chloe").await.unwrap();
    assert!(chloe.skin_profile.health.pregnant.as_ref().is_some_and(|f| f.value));
    assert_eq!(demo::load_profiles(app.customers()).await.unwrap(), 0, "a second load changes nothing");
    let again = app.customers().consents("demo-ana").await.unwrap();
    assert_eq!(again.history.len(), consents.history.len(), "no consent recorded twice");
}
