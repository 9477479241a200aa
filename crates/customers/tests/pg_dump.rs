//! A `pg_dump` of PostgreSQL holds nothing readable of a customer (the SQLite files are checked
//! in `customers.rs`).

mod common;

mod postgres {
    use super::common::*;
    use dermis_customers::store;
    use serde_json::json;

    /// A `pg_dump` of the database holds none of the customer's personal or health data in clear,
    /// and, after an erasure, not their wrapped key either.
    #[tokio::test]
    async fn a_pg_dump_holds_no_plaintext_of_a_customer() {
        let Some(t) = dermis_store::testing::TestDb::postgres(MIGRATIONS).await else { return };
        let c = customers(t.db()).await;
        let body = json!({
            "name": "Zephyrine Quartermain",
            "email": "zephyrine.quartermain@example.org",
            "phone": "+33 6 98 76 54 32",
            "address": {"line1": "7 Rue Oberkampf", "city": "Paris", "country": "FR"},
            "user_id": "shop-zq",
            "consents": [{"purpose": "health_data", "granted": true, "text_version": "v1"}],
            "skin_profile": {"allergies": ["Methylisothiazolinone", "Quillaiabark Extractum"], "conditions": ["eczema"]},
        });
        let made = c.create(None, create(body).parse(NOW).unwrap(), &admin()).await.unwrap().value;
        let dump = || {
            let out = std::process::Command::new("pg_dump").arg("--data-only").arg(t.url()).output();
            let out = out.expect("pg_dump runs (Debian's postgresql-client)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        };
        let holds = |bytes: &[u8], s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        let before = dump();
        assert!(holds(&before, &made.id), "the dump holds the customer's rows");
        for secret in [
            "Zephyrine",
            "Quartermain",
            "zephyrine.quartermain@example.org",
            "+33698765432",
            "Oberkampf",
            "Methylisothiazolinone",
            "Quillaiabark",
            "eczema",
        ] {
            assert!(!holds(&before, secret), "{secret:?} is in the dump in clear");
        }
        let key = store::get_key(t.db().reader(), &made.id).await.unwrap().unwrap().wrapped;
        assert!(holds(&before, &key));
        c.erase(&made.id).await.unwrap();
        assert!(!holds(&dump(), &key), "the erased customer's key is gone from the dump");
    }
}
