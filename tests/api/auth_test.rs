//! 401 without valid credentials, 403 with the wrong role, API keys end to end.

use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, assert_problem, token_for};

crate::both_backends!(api_keys_work_until_revoked);

#[tokio::test]
async fn missing_bad_and_expired_credentials_are_401() {
    let app = crate::helpers::spawn_app().await;
    let p = assert_problem(app.client.get(app.url("/v1/products")).send().await.unwrap(), 401).await;
    assert_eq!(p["type"], "/problems/unauthenticated");
    for header in ["Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer", "Bearer dmk_bad_key"] {
        let res = app.client.get(app.url("/v1/products")).header("authorization", header).send().await.unwrap();
        assert_problem(res, 401).await;
    }
    let other_secret = dermis_auth::jwt::issue(
        &secrecy::SecretString::from("x".repeat(40)),
        Role::Admin,
        "x",
        None,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let res = app.client.get(app.url("/v1/products")).bearer_auth(other_secret).send().await.unwrap();
    assert_problem(res, 401).await;
    // An expired token (beyond the 30 s leeway).
    let expired = {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({"sub": "x", "role": "admin", "exp": now - 120});
        jsonwebtoken_encode(&claims)
    };
    let res = app.client.get(app.url("/v1/products")).bearer_auth(expired).send().await.unwrap();
    let p = assert_problem(res, 401).await;
    assert!(p["detail"].as_str().unwrap().contains("Expired"), "{p}");
}

fn jsonwebtoken_encode(claims: &Value) -> String {
    // Build an HS256 JWT by hand so the test does not depend on how `issue` sets `exp`.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mac = hmac_sha256(SECRET.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", b64.encode(mac))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<_>>());
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<_>>());
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[tokio::test]
async fn wrong_roles_are_403_and_readers_can_read() {
    let app = crate::helpers::spawn_app().await;
    let product = json!({"name": "Toner", "brand": "B"});
    for role in [Role::Customer, Role::Analyst, Role::StoreAssociate, Role::Service] {
        let p = assert_problem(app.post_json("/v1/products", role, &product).await, 403).await;
        assert_eq!(p["type"], "/problems/forbidden");
        assert!(p["detail"].as_str().unwrap().contains("admin or merchandiser"));
    }
    let created = app.create_product(product.clone()).await;
    let id = created["id"].as_str().unwrap();
    for role in Role::ALL {
        assert_eq!(app.get(&format!("/v1/products/{id}"), role).await.status(), 200, "{role} reads");
    }
    assert_eq!(app.post_json("/v1/products", Role::Admin, &product).await.status(), 201);
    assert_problem(app.get("/v1/api-keys", Role::Merchandiser).await, 403).await;
    // A store associate's token must name its store.
    let unbound = token_for(Role::StoreAssociate, "anna", None);
    let res = app.client.get(app.url("/v1/products")).bearer_auth(unbound).send().await.unwrap();
    assert_problem(res, 401).await;
}

async fn api_keys_work_until_revoked(app: TestApp) {
    let res = app
        .post_json(
            "/v1/api-keys",
            Role::Admin,
            &json!({"name": "pos-paris", "role": "store_associate", "store_id": "paris-1"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["role"], "store_associate");

    let read = || app.client.get(app.url("/v1/products")).bearer_auth(&secret).send();
    assert_eq!(read().await.unwrap().status(), 200);
    let write = app
        .client
        .post(app.url("/v1/products"))
        .bearer_auth(&secret)
        .json(&json!({"name": "x", "brand": "y"}))
        .send()
        .await
        .unwrap();
    assert_problem(write, 403).await;

    let listed: Value = app.get("/v1/api-keys", Role::Admin).await.json().await.unwrap();
    let listed_text = listed.to_string();
    assert!(listed_text.contains(&id) && !listed_text.contains(&secret), "listing never shows secrets");

    assert_problem(
        app.post_json("/v1/api-keys", Role::Admin, &json!({"name": "x", "role": "store_associate"})).await,
        422,
    )
    .await;
    assert_problem(app.post_json("/v1/api-keys", Role::Admin, &json!({"name": "x", "role": "emperor"})).await, 422)
        .await;

    let revoke = app.request(Method::DELETE, &format!("/v1/api-keys/{id}"), Some(Role::Admin)).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    assert_problem(read().await.unwrap(), 401).await;
    let again = app.request(Method::DELETE, "/v1/api-keys/key_nope", Some(Role::Admin)).send().await.unwrap();
    assert_problem(again, 404).await;
}
