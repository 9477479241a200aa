//! The orders service on SQLite. Payment callbacks: an authorization or capture for
//! another amount or currency is refused (422 naming the field) and changes nothing; refunds add
//! up to at most what was captured; a repeat must carry the first callback's amount; a payment
//! after a cancellation never revives the order; a paid checkout whose every unit a till took is
//! placed, flagged short, instead of being left to expire paid. Transitions: what is still
//! committed ships after part of an earlier shipment came back.

use std::collections::BTreeMap;

use dermis_catalog::input::{NewProduct, NewSku};
use dermis_catalog::{Catalog, Money, Variant};
use dermis_core::Problem;
use dermis_core::clock::ManualClock;
use dermis_inventory::directory::SkuDirectory;
use dermis_inventory::routes::HoldSettings;
use dermis_inventory::*;
use dermis_orders::input::{LineRequest, NewCart, NewExternalOrder, NewPayment};
use dermis_orders::{Order, OrderStatus, Orders, OrdersError, PaymentEvent};
use dermis_store::testing::TestDb;

const ALL: &[&[dermis_store::Migration]] =
    &[dermis_store::MIGRATIONS, dermis_catalog::MIGRATIONS, dermis_inventory::MIGRATIONS, dermis_orders::MIGRATIONS];
const START: i64 = 20_000 * MS_PER_DAY + 9 * 3_600_000;
const PRICE: i64 = 1_990;

struct Shop {
    _db: TestDb,
    inventory: Inventory,
    orders: Orders,
    sku: String,
}

/// A shop with one SKU at 19.90 EUR: 5 units in a warehouse, 2 on a store's shelf.
async fn shop() -> Shop {
    let db = TestDb::sqlite(ALL).await;
    let clock = ManualClock::at(START);
    let inventory = Inventory::open(db.db().clone(), clock.clone()).await.unwrap();
    let location = |id: &str, kind, channels: &[&str]| Location {
        id: id.into(),
        kind,
        latitude: 48.0,
        longitude: 2.0,
        channels: channels.iter().map(|c| c.parse().unwrap()).collect(),
        details: LocationDetails { code: id.to_uppercase(), ..Default::default() },
    };
    let catalog = Catalog::new(db.db().clone()).with_clock(clock.clone());
    let product = NewProduct {
        name: "Serum".into(),
        brand: "B".into(),
        external_id: None,
        category: None,
        description: None,
        ingredients: None,
        highlights: Vec::new(),
    };
    let product = catalog.create_product(None, product).await.unwrap().value;
    let sku = NewSku {
        code: "PAY-1".into(),
        barcode: None,
        variant: Variant::default(),
        price: Money { amount_minor: PRICE, currency: "EUR".into() },
    };
    let sku = catalog.create_sku(&product.id, None, sku).await.unwrap().value.id;
    inventory
        .extend_setup(Setup {
            skus: vec![SkuId::new(sku.as_str())],
            kits: Vec::new(),
            locations: vec![
                location("wh", LocationKind::Warehouse, &["web"]),
                location("st", LocationKind::Store, &["web", "pos"]),
            ],
            channels: vec![
                ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 0 },
                ChannelPolicy { channel: Channel::Pos, safety_stock: 0, min_shelf_life_days: 0 },
            ],
        })
        .await
        .unwrap();
    for (location, quantity) in [("wh", 5), ("st", 2)] {
        let command = Command::Receive {
            location: location.into(),
            purchase_order: None,
            lines: vec![ReceiptLine {
                sku: SkuId::new(sku.as_str()),
                quantity,
                lot: Lot::new(format!("L-{location}"), day_of(START) + 365),
            }],
        };
        inventory.submit(Request::new(format!("receive-{location}"), "test", command)).await.unwrap().unwrap();
    }
    let holds = HoldSettings { ttl_secs: BTreeMap::from([("default".to_owned(), 900)]), max_ttl_secs: 3_600 };
    let orders =
        Orders::new(db.db().clone(), inventory.clone(), SkuDirectory::new(catalog.clone()), holds, catalog, clock);
    Shop { _db: db, inventory, orders, sku }
}

impl Shop {
    async fn checkout(&self, quantity: i64, location: Option<&str>) -> Order {
        let cart = NewCart {
            channel: Channel::Web,
            customer_id: None,
            location_id: location.map(LocationId::new),
            lines: vec![LineRequest { sku_id: self.sku.clone(), quantity }],
        };
        let cart = self.orders.create_cart(cart, None).await.unwrap().value;
        self.orders.checkout(cart, None, "test").await.unwrap().value
    }

    async fn pay(
        &self,
        order: &Order,
        event: PaymentEvent,
        reference: &str,
        amount: i64,
    ) -> Result<Order, OrdersError> {
        let current = self.orders.order(&order.id).await.unwrap().unwrap();
        let payment =
            NewPayment { event, provider_reference: reference.into(), amount_minor: amount, currency: "EUR".into() };
        self.orders.record_payment(current, payment, "psp").await
    }

    async fn status(&self, order: &Order) -> OrderStatus {
        self.orders.status(&self.orders.order(&order.id).await.unwrap().unwrap())
    }

    fn journal(&self) -> usize {
        self.inventory.read(|l| l.journal().len())
    }
}

/// The problem an error answers: its status and the field it names.
fn answered(e: OrdersError) -> (u16, String) {
    let problem: Problem = e.into();
    let field = problem.errors.first().map(|f| f.field.clone()).unwrap_or_default();
    (problem.kind.status().as_u16(), field)
}

#[tokio::test]
async fn an_authorization_or_capture_for_another_amount_or_currency_places_nothing() {
    let shop = shop().await;
    let order = shop.checkout(2, None).await;
    assert_eq!(order.total_minor, 2 * PRICE);
    let journal = shop.journal();
    for (event, amount) in [(PaymentEvent::Authorized, 2 * PRICE - 1), (PaymentEvent::Captured, PRICE)] {
        let refused = shop.pay(&order, event, "psp-1", amount).await.unwrap_err();
        assert_eq!(answered(refused), (422, "amount_minor".into()));
    }
    let current = shop.orders.order(&order.id).await.unwrap().unwrap();
    let payment = NewPayment {
        event: PaymentEvent::Captured,
        provider_reference: "psp-1".into(),
        amount_minor: 2 * PRICE,
        currency: "USD".into(),
    };
    let refused = shop.orders.record_payment(current, payment, "psp").await.unwrap_err();
    assert_eq!(answered(refused), (422, "currency".into()));
    // Nothing stored, nothing moved, still waiting for payment with its units held.
    assert!(shop.orders.payments(&order.id).await.unwrap().is_empty());
    assert_eq!(shop.journal(), journal);
    assert_eq!(shop.status(&order).await, OrderStatus::Checkout);
    assert_eq!(shop.orders.order(&order.id).await.unwrap().unwrap().payment_status, "none");

    // The right amount places it; a repeat must say the same amount.
    let placed = shop.pay(&order, PaymentEvent::Captured, "psp-1", 2 * PRICE).await.unwrap();
    assert_eq!(shop.orders.status(&placed), OrderStatus::Placed);
    let differs = shop.pay(&order, PaymentEvent::Captured, "psp-1", 2 * PRICE + 5).await.unwrap_err();
    assert_eq!(answered(differs), (422, "amount_minor".into()));
    shop.pay(&order, PaymentEvent::Captured, "psp-1", 2 * PRICE).await.unwrap();
    // A second capture under another reference would take the money twice.
    let twice = shop.pay(&order, PaymentEvent::Captured, "psp-2", 2 * PRICE).await.unwrap_err();
    assert_eq!(answered(twice), (422, "amount_minor".into()));
    assert_eq!(shop.orders.payments(&order.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn refunds_never_add_up_to_more_than_was_captured() {
    let shop = shop().await;
    let order = shop.checkout(3, None).await;
    // Authorized only: nothing was taken, so nothing can be refunded.
    shop.pay(&order, PaymentEvent::Authorized, "psp-1", 3 * PRICE).await.unwrap();
    let early = shop.pay(&order, PaymentEvent::Refunded, "re-0", 1).await.unwrap_err();
    assert_eq!(answered(early), (422, "amount_minor".into()));
    shop.pay(&order, PaymentEvent::Captured, "psp-1", 3 * PRICE).await.unwrap();
    let journal = shop.journal();
    let part = shop.pay(&order, PaymentEvent::Refunded, "re-1", PRICE).await.unwrap();
    assert_eq!((shop.orders.status(&part), part.payment_status.as_str()), (OrderStatus::Placed, "refunded"));
    let over = shop.pay(&order, PaymentEvent::Refunded, "re-2", 2 * PRICE + 1).await.unwrap_err();
    assert_eq!(answered(over), (422, "amount_minor".into()));
    shop.pay(&order, PaymentEvent::Refunded, "re-2", 2 * PRICE).await.unwrap();
    // The same refund again is a repeat, not a third one.
    shop.pay(&order, PaymentEvent::Refunded, "re-2", 2 * PRICE).await.unwrap();
    let beyond = shop.pay(&order, PaymentEvent::Refunded, "re-3", 1).await.unwrap_err();
    assert_eq!(answered(beyond), (422, "amount_minor".into()));
    assert_eq!(shop.orders.payments(&order.id).await.unwrap().len(), 4);
    assert_eq!(shop.journal(), journal, "refunds move no stock (returns do)");
}

#[tokio::test]
async fn a_payment_after_a_cancellation_never_revives_the_order() {
    let shop = shop().await;
    // A checkout placed, cancelled, then captured again under another reference.
    let order = shop.checkout(1, None).await;
    shop.pay(&order, PaymentEvent::Authorized, "psp-1", PRICE).await.unwrap();
    let placed = shop.orders.order(&order.id).await.unwrap().unwrap();
    shop.orders.cancel(placed, "staff").await.unwrap();
    let journal = shop.journal();
    let late = shop.pay(&order, PaymentEvent::Captured, "psp-1", PRICE).await.unwrap_err();
    assert_eq!(answered(late).0, 409);
    assert_eq!(shop.status(&order).await, OrderStatus::Cancelled);
    assert_eq!(shop.journal(), journal);
    // The capture is on record (money moved at the provider): the order shows it, to refund.
    assert_eq!(shop.orders.order(&order.id).await.unwrap().unwrap().payment_status, "captured");

    // The same for a till's order (placed at once, under the same confirmation key).
    let new = NewExternalOrder {
        channel: Channel::Pos,
        external_id: "R-1".into(),
        lines: vec![LineRequest { sku_id: shop.sku.clone(), quantity: 1 }],
        location_id: Some(LocationId::new("st")),
        customer_id: None,
    };
    let till = shop.orders.place_external(new, "till").await.unwrap().value;
    shop.orders.cancel(till.clone(), "staff").await.unwrap();
    let late = shop.pay(&till, PaymentEvent::Authorized, "psp-9", PRICE).await.unwrap_err();
    assert_eq!(answered(late).0, 409);
    assert_eq!(shop.status(&till).await, OrderStatus::Cancelled);
}

#[tokio::test]
async fn a_paid_checkout_a_till_took_every_unit_of_is_placed_flagged_short() {
    let shop = shop().await;
    // Both units on the store's shelf held online (the warehouse's 5 are spoken for first).
    let other = shop.checkout(5, Some("wh")).await;
    let order = shop.checkout(2, Some("st")).await;
    let r = shop.orders.reservation(&order).unwrap();
    assert_eq!(r.held(), 2);
    // The till sold both offline and syncs: it wins, and nothing else can be re-allocated.
    let sale = Command::PosSale {
        location: LocationId::new("st"),
        receipt: "T-1".into(),
        lines: vec![LotLine { sku: SkuId::new(shop.sku.as_str()), quantity: 2, lot: None }],
    };
    shop.inventory.submit(Request::new("pos:st:T-1", "till", sale)).await.unwrap().unwrap();
    let r = shop.orders.reservation(&order).unwrap();
    assert_eq!((r.held(), r.is_flagged()), (0, true));
    // Paid: placed, with nothing committed and its units flagged short for customer service,
    // rather than refused and left to expire with the money taken.
    let placed = shop.pay(&order, PaymentEvent::Captured, "psp-1", 2 * PRICE).await.unwrap();
    assert_eq!(shop.orders.status(&placed), OrderStatus::Placed);
    let r = shop.orders.reservation(&placed).unwrap();
    assert_eq!((r.held(), r.committed(), r.is_flagged()), (0, 0, true));
    assert!(shop.orders.fulfill(placed.clone(), None, "staff").await.is_err(), "nothing to ship");
    // Customer service cancels it (and refunds at the provider).
    let cancelled = shop.orders.cancel(placed, "staff").await.unwrap();
    assert_eq!(shop.orders.status(&cancelled), OrderStatus::Cancelled);
    assert_eq!(shop.status(&other).await, OrderStatus::Checkout);
}

#[tokio::test]
async fn the_rest_of_an_order_ships_after_part_of_it_came_back() {
    let shop = shop().await;
    // 6 units: the warehouse's 5 and one of the store's.
    let order = shop.checkout(6, None).await;
    shop.pay(&order, PaymentEvent::Captured, "psp-1", 6 * PRICE).await.unwrap();
    let placed = shop.orders.order(&order.id).await.unwrap().unwrap();
    let part = shop.orders.fulfill(placed, Some(LocationId::new("wh")), "staff").await.unwrap().value;
    assert_eq!(shop.orders.status(&part), OrderStatus::PartiallyFulfilled);
    let back = [LineRequest { sku_id: shop.sku.clone(), quantity: 5 }];
    let back = shop.orders.take_back(part, LocationId::new("wh"), &back, "rma-1", "staff").await.unwrap().value;
    assert_eq!(shop.orders.status(&back), OrderStatus::PartiallyReturned);
    assert_eq!(shop.orders.reservation(&back).unwrap().committed(), 1);
    // The unit still committed at the store ships; it would otherwise be stuck there.
    let rest = shop.orders.fulfill(back, None, "staff").await.unwrap();
    assert!(rest.created);
    let r = shop.orders.reservation(&rest.value).unwrap();
    assert_eq!((r.committed(), r.shipped()), (0, 6));
    assert_eq!(shop.orders.status(&rest.value), OrderStatus::PartiallyReturned);
    let again = shop.orders.fulfill(rest.value, None, "staff").await.unwrap();
    assert!(!again.created, "the same shipment again answers the same");
}
