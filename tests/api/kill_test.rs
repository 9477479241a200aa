//! Crash safety of the real binary: `kill -9` during ingestion loses nothing that was acknowledged.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::SECRET;

fn start(data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dermis"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("DERMIS_AUTH__JWT_SECRET", SECRET)
        .env("DERMIS_LOG__FILTER", "warn")
        .env_remove("DERMIS_DATABASE_URL")
        .env_remove("DERMIS_BUS_URL")
        .env_remove("DERMIS_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dermis")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dermis did not become ready at {base}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn kill_dash_nine_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(dir.path(), port);
    wait_ready(&client, &base).await;
    let admin = crate::helpers::token(dermis_auth::Role::Admin);
    let key: Value = client
        .post(format!("{base}/v1/write-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["write_key"].as_str().unwrap().to_owned();

    // Four senders post batches until the process dies under them. The kill comes once a few
    // batches were acknowledged (a fixed sleep raced the first answers on a loaded machine).
    let acked_batches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (client, base, key) = (client.clone(), base.clone(), key.clone());
            let acked_batches = acked_batches.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for b in 0.. {
                    let ids: Vec<String> = (0..50).map(|i| format!("s{s}-b{b}-m{i}")).collect();
                    let batch: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"type": "track", "userId": "crash-user", "event": "Product Viewed", "messageId": id, "properties": {"product_id": "P1"}}))
                        .collect();
                    match client.post(format!("{base}/v1/batch")).json(&json!({"writeKey": key, "batch": batch})).send().await {
                        Ok(r) if r.status() == 200 => {
                            acknowledged.extend(ids);
                            acked_batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        _ => return acknowledged,
                    }
                }
                acknowledged
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_batches.load(std::sync::atomic::Ordering::SeqCst) < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Keep the load on for a moment more, so the kill lands mid-request.
    tokio::time::sleep(Duration::from_millis(50)).await;
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for s in senders {
        acknowledged.extend(s.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "some batches were acknowledged before the kill");
    eprintln!("{} events acknowledged before the kill", acknowledged.len());

    // Restart on the same data and find every acknowledged message in the log.
    let mut child = start(dir.path(), port);
    wait_ready(&client, &base).await;
    let mut stored = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/events?user_id=crash-user&limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client.get(url).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
        for e in page["items"].as_array().unwrap() {
            stored.insert(e["message"]["messageId"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lost: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.first()
    );
}
