//! Recommendations through the real server, on the demo catalog: safe for the customer's
//! declared profile (checked against the raw label text), explained, changed at once by a
//! purchase, a new allergy and a reaction report; related products, routines, an anonymous
//! visitor's quiz answers; bad input is a problem+json, never a 500.

use std::collections::HashSet;

use dermis_auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::events_test::write_key;
use crate::helpers::{TestApp, assert_problem, json_of, token_for};

crate::both_backends!(
    recommendations_are_safe_explained_and_change_with_the_next_event,
    new_customers_with_the_same_answers_share_a_page_and_nothing_else,
    related_products_routines_visitors_and_bad_input,
    warnings_are_shown_whether_or_not_the_exclusions_are_asked_for
);

async fn batch(app: &TestApp, key: &str, messages: Vec<Value>) {
    let body = json!({"writeKey": key, "batch": messages});
    json_of(app.client.post(app.url("/v1/batch")).json(&body).send().await.unwrap(), 200).await;
}

fn order(id: &str, user: &str, products: &[&str]) -> Value {
    let products: Vec<Value> =
        products.iter().map(|p| json!({"product_id": p, "price": 20.0, "quantity": 1})).collect();
    json!({"type": "track", "event": "Order Completed", "messageId": id, "userId": user,
        "properties": {"order_id": id, "products": products}})
}

/// The demo's skincare products with an ingredient list: (id, external id).
async fn skincare(app: &TestApp) -> Vec<(String, String)> {
    let page =
        json_of(app.get("/v1/products?limit=500&has_ingredients=true&category=Skincare", Role::Customer).await, 200)
            .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["external_id"].as_str().unwrap().to_owned()))
        .collect()
}

/// Orders of 30 synthetic shoppers, three products each, and a retrain.
async fn shoppers(app: &TestApp, key: &str, products: &[(String, String)]) {
    let n = products.len().min(40);
    let orders: Vec<Value> = (0..30)
        .map(|u| {
            let p: Vec<&str> = (0..3).map(|j| products[(u + j * 7) % n].1.as_str()).collect();
            order(&format!("seed-{u}"), &format!("shopper-{u}"), &p)
        })
        .collect();
    batch(app, key, orders).await;
    let state = json_of(
        app.request(Method::POST, "/v1/recommendations/model/retrain", Some(Role::Admin)).send().await.unwrap(),
        200,
    )
    .await;
    assert!(state["model"].is_string() && state["interactions"].as_u64().unwrap() >= 60, "{state}");
}

pub(crate) async fn customer(app: &TestApp, user: &str, personalization: bool, profile: Value) -> String {
    let mut consents = vec![json!({"purpose": "health_data", "granted": true, "text_version": "v1", "channel": "app"})];
    if personalization {
        consents.push(json!({"purpose": "personalization", "granted": true, "text_version": "v1", "channel": "app"}));
    }
    let c = json_of(
        app.post_json("/v1/customers", Role::Admin, &json!({"name": "Test", "user_id": user, "consents": consents}))
            .await,
        201,
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    let res = app
        .request(Method::PUT, &format!("/v1/customers/{id}/skin-profile"), Some(Role::Admin))
        .json(&profile)
        .send()
        .await
        .unwrap();
    json_of(res, 200).await;
    id
}

pub(crate) async fn recs(app: &TestApp, who: &str, query: &str) -> Value {
    json_of(app.get(&format!("/v1/customers/{who}/recommendations?{query}"), Role::Service).await, 200).await
}

pub(crate) fn ids(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|i| i["product_id"].as_str().unwrap().to_owned()).collect()
}

fn excluded_by(v: &Value, rule: &str) -> HashSet<String> {
    v["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["exclusions"].as_array().unwrap().iter().any(|x| x["rule_id"] == rule))
        .map(|e| e["product_id"].as_str().unwrap().to_owned())
        .collect()
}

/// An ingredient of the product (not water or glycerin), as the knowledge base names it.
async fn an_ingredient_of(app: &TestApp, id: &str) -> String {
    let detail = json_of(app.get(&format!("/v1/products/{id}"), Role::Customer).await, 200).await;
    detail["attributes"]["ingredients"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ingredient_id"].as_str())
        .find(|i| !["water", "aqua", "glycerin"].contains(i))
        .unwrap()
        .to_owned()
}

/// The product's label as declared, lower case.
pub(crate) async fn label(app: &TestApp, id: &str) -> String {
    let p = json_of(app.get(&format!("/v1/products/{id}"), Role::Customer).await, 200).await;
    p["ingredients"].as_str().unwrap_or("").to_lowercase()
}

async fn recommendations_are_safe_explained_and_change_with_the_next_event(app: TestApp) {
    app.load_demo().await;
    let key = write_key(&app).await;
    let products = skincare(&app).await;
    assert!(products.len() >= 40, "the demo has skincare products with ingredients");
    shoppers(&app, &key, &products).await;

    let ana = customer(
        &app,
        "shop-ana",
        true,
        json!({"source": "quiz", "skin_type": "oily", "concerns": ["acne"], "allergies": ["Linalool"]}),
    )
    .await;
    batch(&app, &key, vec![order("ana-1", "shop-ana", &[&products[0].1])]).await;

    // Safe, explained, without what she owns; by user id and by customer id alike.
    let first = recs(&app, "shop-ana", "k=10&explain=true").await;
    assert!(first["recommendation_id"].as_str().unwrap().starts_with("rec_"), "{first}");
    assert_eq!(first["personalized"], true);
    assert_eq!(ids(&first).len(), 10, "{first}");
    assert_eq!(ids(&recs(&app, &ana, "k=10").await).len(), 10);
    assert!(!ids(&first).contains(&products[0].0), "a product she bought is not recommended again");
    for item in first["items"].as_array().unwrap() {
        assert!(!item["reasons"].as_array().unwrap().is_empty(), "every item is explained: {item}");
        assert!(item["reasons"][0]["text"].as_str().unwrap().len() > 5);
        assert!(item["name"].is_string() && item["score"].is_number());
    }
    for id in ids(&first) {
        assert!(!label(&app, &id).await.contains("linalool"), "{id} declares linalool on its label");
    }
    assert!(!excluded_by(&first, "allergen").is_empty(), "linalool products were excluded, with the rule: {first}");

    // A purchase changes the next response.
    let bought = ids(&first)[0].clone();
    let ext = products.iter().find(|p| p.0 == bought).map_or(bought.clone(), |p| p.1.clone());
    batch(&app, &key, vec![order("ana-2", "shop-ana", &[&ext])]).await;
    let after_purchase = recs(&app, "shop-ana", "k=10&explain=true").await;
    assert!(!ids(&after_purchase).contains(&bought), "bought just now, gone from the next response");

    // A new allergy changes the next response: an ingredient of the current top product.
    let top = ids(&after_purchase)[0].clone();
    let allergen = an_ingredient_of(&app, &top).await;
    let res = app
        .request(Method::PUT, &format!("/v1/customers/{ana}/skin-profile"), Some(Role::Admin))
        .json(
            &json!({"source": "quiz", "skin_type": "oily", "concerns": ["acne"], "allergies": ["Linalool", allergen]}),
        )
        .send()
        .await
        .unwrap();
    json_of(res, 200).await;
    let after_allergy = recs(&app, "shop-ana", "k=10&explain=true").await;
    assert!(!ids(&after_allergy).contains(&top), "{top} holds the new allergen {allergen}");
    assert!(excluded_by(&after_allergy, "allergen").contains(&top), "{after_allergy}");

    // A reaction report changes the next response.
    let reacted = ids(&after_allergy)[0].clone();
    batch(
        &app,
        &key,
        vec![json!({"type": "track", "event": "Reaction Reported", "messageId": "ana-r1", "userId": "shop-ana",
        "properties": {"product_id": reacted, "severity": "mild"}})],
    )
    .await;
    let after_reaction = recs(&app, "shop-ana", "k=10&explain=true").await;
    assert!(!ids(&after_reaction).contains(&reacted));
    assert!(excluded_by(&after_reaction, "reaction").contains(&reacted), "{after_reaction}");
    // ... and every related list made for her: a neighbour's similar products list it for anyone
    // else, not for her.
    let related = |anchor: String, who: Option<&str>| {
        let query = who.map_or(String::new(), |w| format!("&customer={w}&explain=true"));
        let app = &app;
        async move {
            json_of(app.get(&format!("/v1/products/{anchor}/similar?k=50{query}"), Role::Service).await, 200).await
        }
    };
    let neighbour = ids(&related(reacted.clone(), None).await)[0].clone();
    assert!(ids(&related(neighbour.clone(), None).await).contains(&reacted), "the neighbour's list holds it");
    let hers = related(neighbour, Some("shop-ana")).await;
    assert!(!ids(&hers).contains(&reacted), "{hers}");
    assert!(excluded_by(&hers, "reaction").contains(&reacted), "{hers}");

    // An endless feed: the second page repeats nothing of the first.
    let page1 = recs(&app, "shop-ana", "k=5").await;
    let cursor = page1["cursor"].as_str().unwrap();
    let page2 = recs(&app, "shop-ana", &format!("k=5&cursor={cursor}")).await;
    let one: HashSet<String> = ids(&page1).into_iter().collect();
    assert!(ids(&page2).iter().all(|id| !one.contains(id)), "{page1} {page2}");
    assert_eq!(ids(&page2).len(), 5);

    // A filter expression, and ids to leave out.
    let cheap = recs(&app, "shop-ana", "k=10&filter=price%20%3C%3D%2030").await;
    assert!(cheap["items"].as_array().unwrap().iter().all(|i| i["price"].as_f64().unwrap() <= 30.0), "{cheap}");
    // A narrow filter still fills the page from the whole catalog (not only the sources' top
    // candidates): one brand's products.
    let brand = json_of(app.get(&format!("/v1/products/{}", products.last().unwrap().0), Role::Customer).await, 200)
        .await["brand"]
        .as_str()
        .unwrap()
        .to_owned();
    let same_brand = json_of(
        app.get(&format!("/v1/products?limit=500&brand={}", brand.replace(' ', "%20")), Role::Customer).await,
        200,
    )
    .await;
    let of_brand = same_brand["items"].as_array().unwrap().len();
    let narrow = recs(&app, "shop-ana", &format!("k=3&filter=brand%20%3D%20%22{}%22", brand.replace(' ', "%20"))).await;
    assert!(narrow["items"].as_array().unwrap().iter().all(|i| i["brand"] == brand.as_str()), "{narrow}");
    assert!(of_brand > 0 && !ids(&narrow).is_empty(), "{brand} has {of_brand} products, some safe for her: {narrow}");
    let without = recs(&app, "shop-ana", &format!("k=10&exclude={}", ids(&page1).join(","))).await;
    assert!(ids(&without).iter().all(|id| !one.contains(id)));

    // Without the personalization consent: a non-personal list, saying so, still safe.
    customer(&app, "shop-bo", false, json!({"source": "quiz", "allergies": ["Linalool"]})).await;
    let bo = recs(&app, "shop-bo", "k=10").await;
    assert_eq!(bo["personalized"], false);
    assert!(bo["notices"][0].as_str().unwrap().contains("personalization"), "{bo}");
    for id in ids(&bo) {
        assert!(!label(&app, &id).await.contains("linalool"));
    }
}

async fn related_products_routines_visitors_and_bad_input(app: TestApp) {
    app.load_demo().await;
    // No interactions yet: ranked from the profile and the catalog's facts, saying so.
    let visitor = json!({"profile": {"skin_type": "dry", "concerns": ["dryness"], "allergies": ["Zorblax Root Extract", "linalool"]}, "k": 5});
    let v = json_of(app.post_json("/v1/recommendations", Role::Customer, &visitor).await, 200).await;
    assert_eq!(ids(&v).len(), 5, "{v}");
    assert_eq!(v["unknown_allergies"], json!(["Zorblax Root Extract"]), "unknown allergy names are reported back");
    assert!(v["notices"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("no interactions")), "{v}");
    for id in ids(&v) {
        let l = label(&app, &id).await;
        assert!(!l.contains("linalool") && !l.contains("zorblax"), "{id}");
        assert!(!l.is_empty(), "an allergic visitor is never offered a product whose ingredients are unknown");
    }

    let key = write_key(&app).await;
    let products = skincare(&app).await;
    shoppers(&app, &key, &products).await;

    let (p, ext) = products[0].clone();
    let similar = json_of(app.get(&format!("/v1/products/{ext}/similar?k=5"), Role::Customer).await, 200).await;
    assert_eq!(similar["product_id"], p.as_str());
    assert!(!ids(&similar).is_empty() && !ids(&similar).contains(&p), "{similar}");
    assert!(similar["items"][0]["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    let together = json_of(app.get(&format!("/v1/products/{p}/bought-together?k=5"), Role::Customer).await, 200).await;
    let n = products.len().min(40);
    let bought_with: Vec<String> = (0..30)
        .filter(|u| (0..3).any(|j| (u + j * 7) % n == 0))
        .flat_map(|u| (0..3).map(move |j| (u + j * 7) % n))
        .filter(|&i| i != 0)
        .map(|i| products[i].0.clone())
        .collect();
    assert!(!ids(&together).is_empty() && ids(&together).iter().all(|id| bought_with.contains(id)), "{together}");
    // Dupes are cheaper than the product (its lowest SKU price), and each says why.
    let skus = json_of(app.get(&format!("/v1/products/{p}/skus"), Role::Customer).await, 200).await;
    let price =
        skus["items"].as_array().unwrap().iter().filter_map(|s| s["price"]["amount_minor"].as_i64()).min().unwrap()
            as f64
            / 100.0;
    let dupes = json_of(app.get(&format!("/v1/products/{p}/dupes?k=5"), Role::Customer).await, 200).await;
    for d in dupes["items"].as_array().unwrap() {
        assert!(d["price"].as_f64().unwrap() < price, "{d} is not cheaper than {price}");
        assert_eq!(d["reasons"][0]["kind"], "dupe", "{d}");
    }

    let cleo = customer(
        &app,
        "shop-cleo",
        true,
        json!({"source": "quiz", "skin_type": "dry", "concerns": ["aging"], "pregnant": true}),
    )
    .await;
    let routine = json_of(app.get(&format!("/v1/customers/{cleo}/routine?budget=400"), Role::Service).await, 200).await;
    let am: Vec<&str> = routine["am"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    let pm: Vec<&str> = routine["pm"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(!am.is_empty() && !pm.is_empty(), "{routine}");
    assert!(!pm.contains(&"sunscreen"), "no sunscreen in the evening: {routine}");
    assert!(routine["total_price"].as_f64().unwrap() <= 400.0);
    for s in routine["am"].as_array().unwrap().iter().chain(routine["pm"].as_array().unwrap()) {
        assert!(!s["product"]["reasons"].as_array().unwrap().is_empty(), "each step explained: {s}");
    }

    // Bad input: problem+json, never a 500.
    assert_problem(app.get(&format!("/v1/customers/{cleo}/recommendations?k=0"), Role::Service).await, 422).await;
    assert_problem(app.get(&format!("/v1/customers/{cleo}/recommendations?k=101"), Role::Service).await, 422).await;
    assert_problem(app.get(&format!("/v1/customers/{cleo}/recommendations?k=ten"), Role::Service).await, 400).await;
    assert_problem(app.get("/v1/customers/cus_nobody/recommendations", Role::Service).await, 404).await;
    assert_problem(app.get("/v1/products/prd_nothing/similar", Role::Customer).await, 404).await;
    let bad = assert_problem(
        app.get(&format!("/v1/customers/{cleo}/recommendations?filter=price%20has%20%22x%22"), Role::Service).await,
        422,
    )
    .await;
    assert_eq!(bad["errors"][0]["field"], "filter", "{bad}");
    assert_problem(app.get(&format!("/v1/customers/{cleo}/recommendations?cursor=!!"), Role::Service).await, 400).await;
    assert_problem(
        app.get(&format!("/v1/customers/{cleo}/recommendations?time_of_day=noon"), Role::Service).await,
        422,
    )
    .await;
    assert_problem(app.get(&format!("/v1/customers/{cleo}/routine?goals=wrinkles"), Role::Service).await, 422).await;
    let scaly = json!({"profile": {"skin_type": "scaly"}});
    assert_problem(app.post_json("/v1/recommendations", Role::Customer, &scaly).await, 422).await;
    let other = app
        .client
        .get(app.url(&format!("/v1/customers/{cleo}/recommendations")))
        .bearer_auth(token_for(Role::Customer, "someone-else", None))
        .send()
        .await
        .unwrap();
    assert_problem(other, 403).await;
    assert_problem(app.get("/v1/recommendations/model", Role::Service).await, 403).await;
    // A store associate sees recommendations, not the allergies behind the exclusions.
    let associate = app.get(&format!("/v1/customers/{cleo}/recommendations?k=3"), Role::StoreAssociate).await;
    assert_eq!(associate.status(), 200);
    assert_problem(
        app.get(&format!("/v1/customers/{cleo}/recommendations?k=3&explain=true"), Role::StoreAssociate).await,
        403,
    )
    .await;
}

/// A page computed for a customer with no activity of their own is served to another with the
/// same answers (a new id each time), never to one whose answers differ, and never once either
/// has an event of their own or changes their profile.
/// A photosensitizing product is allowed for a customer whose routine is unknown, with a warning
/// (rule `photosensitizer`): shown on every item it applies to, the same with `explain=true` (every
/// product judged in full) as without (only the products shown are judged for warnings).
async fn warnings_are_shown_whether_or_not_the_exclusions_are_asked_for(app: TestApp) {
    app.load_demo().await;
    let who = customer(&app, "sun-seeker", true, json!({"source": "quiz", "skin_type": "normal"})).await;
    let warned = |v: &Value| -> Vec<(String, Vec<String>)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let rules = i["warnings"].as_array().unwrap().iter().map(|w| w["rule_id"].as_str().unwrap().to_owned());
                (i["product_id"].as_str().unwrap().to_owned(), rules.collect())
            })
            .collect()
    };
    // Two quiet lists alike around the loud one: the catalog did not move in between.
    let started = std::time::Instant::now();
    let (quiet, loud) = loop {
        let quiet = recs(&app, &who, "k=20&filter=photosensitizing").await;
        let loud = recs(&app, &who, "k=20&filter=photosensitizing&explain=true").await;
        let again = recs(&app, &who, "k=20&filter=photosensitizing").await;
        if warned(&quiet) == warned(&again) {
            break (quiet, loud);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the recommendations never settled");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let shown = warned(&quiet);
    assert!(!shown.is_empty(), "the demo catalog has photosensitizing products: {quiet}");
    for (id, rules) in &shown {
        assert!(rules.iter().any(|r| r == "photosensitizer"), "{id} is shown without its sun warning: {quiet}");
    }
    assert_eq!(shown, warned(&loud), "the same items and warnings with and without explain");
    for item in quiet["items"].as_array().unwrap() {
        let warnings = item["warnings"].as_array().unwrap();
        let sun = warnings.iter().find(|w| w["rule_id"] == "photosensitizer").unwrap();
        assert!(sun["reason"].as_str().unwrap().contains("sunscreen"), "{sun}");
    }
}

async fn new_customers_with_the_same_answers_share_a_page_and_nothing_else(app: TestApp) {
    app.load_demo().await;
    let key = write_key(&app).await;
    let products = skincare(&app).await;
    shoppers(&app, &key, &products).await;
    let answers = json!({"source": "quiz", "skin_type": "dry", "concerns": ["dryness"]});
    let one = customer(&app, "shop-one", true, answers.clone()).await;
    let two = customer(&app, "shop-two", true, answers.clone()).await;
    // Two pages of the first customer alike around the second's: the recommendation catalog
    // (another consumer of the demo's products than the search index `load_demo` waits for)
    // did not move in between.
    let started = std::time::Instant::now();
    let (first, second) = loop {
        let first = recs(&app, &one, "k=10").await;
        let second = recs(&app, &two, "k=10").await;
        if ids(&first) == ids(&recs(&app, &one, "k=10").await) {
            break (first, second);
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the recommendations never settled");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(ids(&first), ids(&second), "the same answers, the same page");
    assert_ne!(first["recommendation_id"], second["recommendation_id"], "each response has its own id");
    let top = ids(&first)[0].clone();

    // Another answer: an allergy to an ingredient of that top product.
    let allergen = an_ingredient_of(&app, &top).await;
    let mut allergic = answers.clone();
    allergic["allergies"] = json!([allergen]);
    let three = customer(&app, "shop-three", true, allergic.clone()).await;
    let third = recs(&app, &three, "k=10&explain=true").await;
    assert!(!ids(&third).contains(&top), "{top} holds {allergen}: {third}");
    assert!(excluded_by(&third, "allergen").contains(&top), "{third}");

    // An event of one's own: their next page is theirs.
    let ext = products.iter().find(|p| p.0 == top).map_or(top.clone(), |p| p.1.clone());
    batch(&app, &key, vec![order("one-1", "shop-one", &[&ext])]).await;
    assert!(!ids(&recs(&app, &one, "k=10").await).contains(&top), "bought just now, gone from the next page");
    assert!(ids(&recs(&app, &two, "k=10").await).contains(&top), "the other customer's page is unchanged");

    // A profile change: the next page follows the new answers.
    let res = app
        .request(Method::PUT, &format!("/v1/customers/{two}/skin-profile"), Some(Role::Admin))
        .json(&allergic)
        .send()
        .await
        .unwrap();
    json_of(res, 200).await;
    assert!(!ids(&recs(&app, &two, "k=10").await).contains(&top), "the new allergy applies to the next page");
}
