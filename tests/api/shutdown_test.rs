//! Graceful shutdown: requests in flight when the stop signal arrives finish, and every write that
//! was acknowledged is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dermis_auth::Role;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// Writers keep creating products until the server goes away; the stop comes once enough writes
/// were acknowledged (not after a fixed sleep, which raced the first connections on a busy
/// machine), so the stop always lands in the middle of the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_shutdown_during_load() {
    const BEFORE_STOP: usize = 20;
    let mut app = spawn_app().await;
    let db = app.test_db.db().clone();
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, url, token) =
                (app.client.clone(), app.url("/v1/products"), crate::helpers::token(Role::Merchandiser));
            let acked = acked.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0.. {
                    let body = json!({"name": format!("Load {w}-{i}"), "brand": "B"});
                    let Ok(res) = client.post(&url).bearer_auth(&token).json(&body).send().await else {
                        break; // the server closed the connection or refused a new one
                    };
                    let status = res.status().as_u16();
                    assert!(status < 500, "a request during shutdown answered {status}");
                    if status != 201 {
                        break;
                    }
                    let Ok(created) = res.json::<Value>().await else { break };
                    ids.push(created["id"].as_str().unwrap().to_owned());
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                ids
            })
        })
        .collect();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while acked.load(Ordering::SeqCst) < BEFORE_STOP {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the writers got {} acknowledgements in 60 s", acked.load(Ordering::SeqCst));
    app.stop().await;
    let mut acknowledged = 0;
    for w in writers {
        for id in w.await.expect("writer finished without a 5xx") {
            acknowledged += 1;
            let stored = dermis_catalog::store::get_product(db.reader(), &id).await.unwrap();
            assert!(stored.is_some(), "acknowledged product {id} is stored");
        }
    }
    assert!(acknowledged >= BEFORE_STOP, "{acknowledged} acknowledged");
}
