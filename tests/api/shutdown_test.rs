//! Graceful shutdown: requests in flight when the stop signal arrives finish, and every write that
//! was acknowledged is stored.

use dermis_auth::Role;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn acknowledged_writes_survive_a_shutdown_during_load() {
    let mut app = spawn_app().await;
    let db = app.test_db.db().clone();
    let client = app.client.clone();
    let url = app.url("/v1/products");
    let token = crate::helpers::token(Role::Merchandiser);
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                let res = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"name": format!("Load {i}"), "brand": "B"}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        Some(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned())
                    }
                    _ => None,
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.stop().await;
    let mut acknowledged = 0;
    for w in writers {
        if let Some(id) = w.await.unwrap() {
            acknowledged += 1;
            let stored = dermis_catalog::store::get_product(db.reader(), &id).await.unwrap();
            assert!(stored.is_some(), "acknowledged product {id} is stored");
        }
    }
    assert!(acknowledged > 0, "some writes were in flight and finished");
}
