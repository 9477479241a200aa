//! A seeded, deterministic simulation of the orders service over the inventory ledger, on the
//! embedded SQLite store, with a fake clock: random carts (web, app, marketplace; plain SKUs and a
//! kit), line changes, checkouts, payment callbacks in any order (authorized, captured, failed,
//! refunded; repeated, retried, out of order, some for the wrong amount or currency), cancels,
//! fulfilments in parts per location, returns into quarantine, restocks, unpaid checkouts expiring
//! as the clock runs and the sweeper running, POS orders and marketplace orders (and their
//! retries), offline POS receipts synced later that collide with online holds, receipts of stock,
//! transfers, and restarts (the database reopened and the services built again over it).
//!
//! After every step it checks: the ledger's own invariants; no negative availability on any
//! channel; per SKU, stock plus what left through customers equals what was received (counted by
//! the simulation); the `reserved` a read reports equals the held units of orders still in
//! `checkout` (and nothing else holds stock); every placed order's units are committed, shipped
//! or flagged short by a till, its shipments and returns as the orders tables record them agree
//! with the ledger; an order's status and payment status never go backwards; and each operation
//! answered what the state before it implies (a checkout of one line succeeds exactly when the
//! read before promised enough, a live checkout paid in full is placed, a payment for another
//! amount is refused and changes nothing, a refund never exceeds what was captured...). Every 20
//! steps, and at each restart, the balances are rebuilt from the journal and compared with the
//! stored rows and with memory.
//!
//! A failing run prints its seed; `SIM_SEED=<seed> cargo test -p dermis-orders --test simulation`
//! replays it exactly. `SIM_STEPS` changes the number of steps per seed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dermis_catalog::input::{NewProduct, NewSku};
use dermis_catalog::{Catalog, Money, Variant};
use dermis_core::clock::{Clock, ManualClock};
use dermis_inventory::directory::SkuDirectory;
use dermis_inventory::routes::HoldSettings;
use dermis_inventory::*;
use dermis_orders::input::{LineRequest, NewCart, NewExternalOrder, NewPayment};
use dermis_orders::{Order, OrderStatus, Orders, OrdersError, PaymentEvent};
use dermis_store::Db;
use dermis_store::db::PoolSize;
use dermis_store::testing::TestDb;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_SEEDS: u64 = 8;
const DEFAULT_STEPS: usize = 350;
const MINUTE: i64 = 60_000;
const START: i64 = 20_000 * MS_PER_DAY + 9 * 3_600_000;
const ACTOR: &str = "sim";

const ALL: &[&[dermis_store::Migration]] =
    &[dermis_store::MIGRATIONS, dermis_catalog::MIGRATIONS, dermis_inventory::MIGRATIONS, dermis_orders::MIGRATIONS];

const LOCATIONS: [&str; 4] = ["wh1", "wh2", "st1", "st2"];
const STORES: [&str; 2] = ["st1", "st2"];
const ONLINE: [&str; 3] = ["web", "app", "marketplace:m"];
const CHANNELS: [&str; 4] = ["web", "app", "pos", "marketplace:m"];

#[test]
fn seeded_simulation_keeps_every_invariant() {
    let steps = std::env::var("SIM_STEPS").map_or(DEFAULT_STEPS, |s| s.parse().expect("SIM_STEPS must be a number"));
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED must be a number")],
        Err(_) => (1..=DEFAULT_SEEDS).collect(),
    };
    // Seeds are independent, so they run side by side, each on a runtime of its own thread.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(seeds.len());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let (seeds, failed) = (&seeds, &failed);
            scope.spawn(move || {
                for &seed in seeds.iter().skip(worker).step_by(workers) {
                    if std::panic::catch_unwind(|| run(seed, steps)).is_err() {
                        eprintln!(
                            "orders simulation failed with seed {seed}; replay it with \
                             SIM_SEED={seed} cargo test -p dermis-orders --test simulation"
                        );
                        failed.lock().unwrap().push(seed);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "orders simulation failed with seeds {failed:?} (SIM_SEED=<seed> replays one)");
}

#[test]
fn the_same_seed_takes_the_same_path() {
    let trace = |seed| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut sim = Sim::new(seed).await;
            sim.run(120).await;
            sim.trace
        })
    };
    let first = trace(11);
    assert!(first.iter().any(|t| t.starts_with("pay")), "a payment was tried: {first:?}");
    assert_eq!(first, trace(11));
    assert_ne!(first, trace(12));
}

fn run(seed: u64, steps: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut sim = Sim::new(seed).await;
        sim.run(steps).await;
        if std::env::var("SIM_SEED").is_ok() {
            // What a replayed run did, by kind of step.
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for what in &sim.trace {
                let kind: String = what.split([':', '(', '-', '[']).next().unwrap_or(what).trim().to_owned();
                *kinds.entry(kind).or_insert(0) += 1;
            }
            eprintln!("seed {seed}: {kinds:#?}");
        }
    });
}

fn setup() -> Setup {
    let location = |id: &str, kind, latitude, longitude, channels: &[&str]| Location {
        id: id.into(),
        kind,
        latitude,
        longitude,
        channels: channels.iter().map(|c| c.parse().unwrap()).collect(),
        details: LocationDetails { code: id.to_uppercase(), ..Default::default() },
    };
    Setup {
        skus: Vec::new(),
        kits: Vec::new(),
        locations: vec![
            location("wh1", LocationKind::Warehouse, 48.0, 2.0, &["web", "app", "marketplace:m"]),
            location("wh2", LocationKind::ThirdPartyLogistics, 50.0, 3.0, &["web", "marketplace:m"]),
            location("st1", LocationKind::Store, 48.8, 2.3, &["web", "app", "pos"]),
            location("st2", LocationKind::Store, 45.7, 4.8, &["web", "pos"]),
        ],
        channels: vec![
            ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 10 },
            ChannelPolicy { channel: Channel::App, safety_stock: 1, min_shelf_life_days: 0 },
            ChannelPolicy { channel: Channel::Pos, safety_stock: 0, min_shelf_life_days: 0 },
            ChannelPolicy { channel: "marketplace:m".parse().unwrap(), safety_stock: 2, min_shelf_life_days: 30 },
        ],
    }
}

/// The services over one open database: what a restart builds again.
struct World {
    db: Db,
    inventory: Inventory,
    orders: Orders,
}

impl World {
    async fn open(db: Db, clock: Arc<ManualClock>, holds: HoldSettings) -> Self {
        let inventory = Inventory::open(db.clone(), clock.clone()).await.expect("open the ledger");
        let catalog = Catalog::new(db.clone()).with_clock(clock.clone());
        let orders =
            Orders::new(db.clone(), inventory.clone(), SkuDirectory::new(catalog.clone()), holds, catalog, clock);
        Self { db, inventory, orders }
    }
}

/// What the simulation knows of an order, from its own bookkeeping.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Last status seen.
    status: Option<OrderStatus>,
    /// Last payment status seen.
    payment: String,
    /// Callbacks accepted, by (reference, event): amount.
    callbacks: BTreeMap<(String, PaymentEvent), i64>,
    /// Its hold in the ledger.
    reservation: String,
    /// Units returned per plain SKU (as the simulation counted them).
    returned: BTreeMap<String, i64>,
    /// (Shipped, returned) when its recorded movements were last compared.
    movements_seen: Option<(i64, i64)>,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    clock: Arc<ManualClock>,
    holds: HoldSettings,
    dir: PathBuf,
    _test_db: TestDb,
    world: World,
    /// Plain SKUs (catalog ids) and the kit (one of the first, two of the second).
    plain: Vec<String>,
    kit: String,
    counter: u64,
    /// Units received per plain SKU, counted by the simulation.
    received: BTreeMap<String, i64>,
    carts: Vec<String>,
    checked_out: std::collections::BTreeSet<String>,
    orders: Vec<String>,
    known: BTreeMap<String, Known>,
    /// External orders sent: (channel, external id, location, lines) for retries.
    external: Vec<NewExternalOrder>,
    transfers: Vec<TransferId>,
    /// What happened, without ids: two runs of one seed give the same trace.
    trace: Vec<String>,
}

impl Sim {
    async fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let test_db = TestDb::sqlite(ALL).await;
        let dir = test_db.data_dir().unwrap().to_path_buf();
        let clock = ManualClock::at(START);
        // One hold lifetime per run (so holds' deadlines never tie), and a short one for the till.
        let ttl = rng.gen_range(5..=30) * 60;
        let holds = HoldSettings {
            ttl_secs: BTreeMap::from([("default".to_owned(), ttl), ("pos".to_owned(), 120)]),
            max_ttl_secs: 86_400,
        };
        let world = World::open(test_db.db().clone(), clock.clone(), holds.clone()).await;
        world.inventory.extend_setup(setup()).await.unwrap();
        let catalog = Catalog::new(world.db.clone()).with_clock(clock.clone());
        let product = catalog
            .create_product(
                None,
                NewProduct {
                    name: "Serum".into(),
                    brand: "Sim".into(),
                    external_id: None,
                    category: None,
                    description: None,
                    ingredients: None,
                    highlights: Vec::new(),
                },
            )
            .await
            .unwrap()
            .value;
        let mut ids = Vec::new();
        for (i, price) in [1250, 2990, 875, 4100, 1999].into_iter().enumerate() {
            let sku = NewSku {
                code: format!("SIM-{i}"),
                barcode: None,
                variant: Variant { size: Some(format!("{}0 mL", i + 1)), ..Default::default() },
                price: Money { amount_minor: price, currency: "EUR".into() },
            };
            ids.push(catalog.create_sku(&product.id, None, sku).await.unwrap().value.id);
        }
        let kit = ids.pop().unwrap();
        let kit_components = [(ids[0].clone(), 1), (ids[1].clone(), 2)];
        world
            .inventory
            .extend_setup(Setup {
                skus: ids.iter().map(|s| SkuId::new(s.as_str())).collect(),
                kits: vec![Kit {
                    sku: SkuId::new(kit.as_str()),
                    components: kit_components
                        .iter()
                        .map(|(s, q)| KitComponent { sku: SkuId::new(s.as_str()), quantity: *q })
                        .collect(),
                }],
                ..Setup::default()
            })
            .await
            .unwrap();
        let mut sim = Self {
            seed,
            rng,
            clock,
            holds,
            dir,
            _test_db: test_db,
            world,
            plain: ids,
            kit,
            counter: 0,
            received: BTreeMap::new(),
            carts: Vec::new(),
            checked_out: Default::default(),
            orders: Vec::new(),
            known: BTreeMap::new(),
            external: Vec::new(),
            transfers: Vec::new(),
            trace: Vec::new(),
        };
        for _ in 0..8 {
            sim.receive().await;
        }
        sim
    }

    async fn run(&mut self, steps: usize) {
        for step in 0..steps {
            // Time always moves (so two holds never share a deadline), sometimes a lot.
            let mut advance = self.rng.gen_range(1..=2 * MINUTE);
            if self.rng.gen_ratio(1, 30) {
                advance += self.rng.gen_range(10..=40) * MINUTE;
            }
            self.clock.advance(advance);
            let action = self.step().await;
            self.check(step, &action).await;
        }
        self.rebuild_check("the end").await;
    }

    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        items.choose(&mut self.rng).cloned()
    }

    /// An order: mostly one last seen in a status `wanted` accepts, sometimes any.
    fn pick_order(&mut self, wanted: fn(OrderStatus) -> bool) -> Option<String> {
        let fitting: Vec<String> =
            self.orders.iter().filter(|id| self.known[*id].status.is_some_and(wanted)).cloned().collect();
        if !fitting.is_empty() && self.rng.gen_ratio(4, 5) {
            return self.pick(&fitting);
        }
        self.pick(&self.orders.clone())
    }

    fn orders(&self) -> &Orders {
        &self.world.orders
    }

    fn inventory(&self) -> &Inventory {
        &self.world.inventory
    }

    fn note(&mut self, what: String) {
        self.trace.push(what);
    }

    async fn step(&mut self) -> String {
        let action = match self.rng.gen_range(0..100) {
            0..=8 => self.receive().await,
            9..=18 => self.new_cart().await,
            19..=21 => self.change_cart().await,
            22..=33 => self.checkout().await,
            34..=51 => self.pay().await,
            52..=54 => self.retry_callback().await,
            55..=58 => self.cancel().await,
            59..=67 => self.fulfill().await,
            68..=72 => self.take_back().await,
            73..=76 => self.external_order("pos").await,
            77..=78 => self.external_order("marketplace:m").await,
            79..=80 => self.retry_external().await,
            81..=85 => self.offline_pos_sync().await,
            86..=88 => self.transfer().await,
            89..=90 => self.sweep().await,
            91..=92 => self.restock().await,
            93 => self.restart().await,
            _ => self.pay().await,
        };
        self.note(action.clone());
        action
    }

    // ---- stock -------------------------------------------------------------------------------

    async fn submit(&self, key: String, command: Command) -> Result<Outcome, Rejection> {
        self.inventory().submit(Request::new(key, ACTOR, command)).await.expect("the ledger answers")
    }

    async fn receive(&mut self) -> String {
        let sku = self.pick(&self.plain.clone()).unwrap();
        let location = self.pick(&LOCATIONS).unwrap();
        let quantity = self.rng.gen_range(1..=20);
        // Mostly long-lived lots; some expire within days, and then are no longer sold online.
        let days = if self.rng.gen_ratio(1, 5) { self.rng.gen_range(1..=6) } else { self.rng.gen_range(60..=700) };
        let lot = Lot::new(self.next("L"), day_of(self.now()) + days);
        let key = self.next("receive-");
        let command = Command::Receive {
            location: location.into(),
            purchase_order: None,
            lines: vec![ReceiptLine { sku: SkuId::new(sku.as_str()), quantity, lot }],
        };
        self.submit(key, command).await.unwrap_or_else(|r| panic!("a receipt was refused: {r}"));
        *self.received.entry(sku).or_insert(0) += quantity;
        format!("receive {quantity} at {location}")
    }

    async fn transfer(&mut self) -> String {
        if self.rng.gen_ratio(1, 2)
            && let Some(transfer) = self.pick(&self.transfers.clone())
        {
            let key = self.next("transfer-in-");
            let result = self.submit(key, Command::TransferIn { transfer: transfer.clone() }).await;
            if result.is_ok() {
                self.transfers.retain(|t| t != &transfer);
            }
            return format!("transfer in: {}", result.is_ok());
        }
        let (from, to) = (self.pick(&LOCATIONS).unwrap(), self.pick(&LOCATIONS).unwrap());
        let sku = self.pick(&self.plain.clone()).unwrap();
        let quantity = self.rng.gen_range(1..=4);
        let id = TransferId::new(self.next("TR-"));
        let key = self.next("transfer-out-");
        let command = Command::TransferOut {
            transfer: id.clone(),
            sku: SkuId::new(sku.as_str()),
            quantity,
            from: from.into(),
            to: to.into(),
            lot: None,
        };
        let result = self.submit(key, command).await;
        if result.is_ok() {
            self.transfers.push(id);
        }
        format!("transfer {quantity} {from}->{to}: {}", result.is_ok())
    }

    /// The sweeper, as the server runs it: expired holds return their units.
    async fn sweep(&mut self) -> String {
        let key = self.next("sweep-");
        let outcome = self.submit(key, Command::ExpireDue).await.expect("a sweep is never refused");
        match outcome.effect {
            Effect::Expired { reservations } => format!("sweep: {} expired", reservations.len()),
            other => panic!("a sweep answered {other:?}"),
        }
    }

    /// Returned units leave quarantine back to the shelf.
    async fn restock(&mut self) -> String {
        let found = self.inventory().read(|l| {
            l.all_balances()
                .iter()
                .find(|(k, q)| *q > 0 && matches!(k.account, Account::Stock { state: StockState::Quarantine, .. }))
                .map(|(k, q)| (k.clone(), q))
        });
        let Some((key, units)) = found else { return "restock: nothing in quarantine".into() };
        let Account::Stock { location, .. } = key.account else { unreachable!() };
        let quantity = self.rng.gen_range(1..=units);
        let command = Command::Restock { location, sku: key.sku, lot: key.lot.unwrap(), quantity };
        let k = self.next("restock-");
        self.submit(k, command).await.unwrap_or_else(|r| panic!("a restock was refused: {r}"));
        format!("restock {quantity}")
    }

    /// A store's till was offline and syncs its receipts now: each sells off the shelf (free units
    /// or units online carts hold there), all in one batch, like `POST /v1/pos/sync`.
    async fn offline_pos_sync(&mut self) -> String {
        // Mostly aimed at units online checkouts hold on a store's shelf: the till sells what is
        // free there and some of the held units too.
        let now = self.now();
        let mut targets: Vec<(String, &'static str, i64)> = Vec::new();
        for id in &self.orders {
            let reservation = ReservationId::new(self.known[id].reservation.as_str());
            self.inventory().read(|l| {
                let Some(r) = l.reservation(&reservation).filter(|r| r.is_live(now)) else { return };
                for c in r.components() {
                    for a in c.allocations.iter().filter(|a| a.held > 0) {
                        if let Some(store) = STORES.iter().find(|s| **s == a.location.as_str()) {
                            targets.push((c.sku.to_string(), store, a.held));
                        }
                    }
                }
            });
        }
        let target = if self.rng.gen_ratio(3, 4) { self.pick(&targets) } else { None };
        let store = target.as_ref().map_or_else(|| self.pick(&STORES).unwrap(), |t| t.1);
        let location = LocationId::new(store);
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        let mut shelf: BTreeMap<String, i64> = BTreeMap::new();
        for i in 0..self.rng.gen_range(1..=3) {
            let (sku, quantity) = match &target {
                Some((sku, _, held)) if i == 0 => {
                    let free: i64 = self.inventory().read(|l| {
                        l.balances(&SkuId::new(sku.as_str()))
                            .iter()
                            .filter(|(k, _)| k.account == Account::stock(&location, StockState::OnHand))
                            .map(|(_, q)| q)
                            .sum()
                    });
                    (sku.clone(), free + self.rng.gen_range(1..=*held))
                }
                _ => (self.pick(&self.plain.clone()).unwrap(), self.rng.gen_range(1..=5)),
            };
            let on_shelf = *shelf.entry(sku.clone()).or_insert_with(|| {
                self.inventory().read(|l| {
                    l.balances(&SkuId::new(sku.as_str()))
                        .iter()
                        .filter(|(k, _)| {
                            k.account == Account::stock(&location, StockState::OnHand)
                                || k.account == Account::stock(&location, StockState::Reserved)
                        })
                        .map(|(_, q)| q)
                        .sum()
                })
            });
            let sells = quantity <= on_shelf;
            if sells {
                *shelf.get_mut(&sku).unwrap() -= quantity;
            }
            expected.push(sells);
            let receipt = self.next("T-");
            requests.push(Request::new(
                format!("pos:{store}:{receipt}"),
                ACTOR,
                Command::PosSale {
                    location: location.clone(),
                    receipt,
                    lines: vec![LotLine { sku: SkuId::new(sku.as_str()), quantity, lot: None }],
                },
            ));
        }
        let answers = self.inventory().submit_all(requests).await.expect("the ledger answers");
        let (mut conflicts, mut short) = (0, 0);
        for (answer, sells) in answers.iter().zip(&expected) {
            // A till sale always wins while the units are on the shelf, and only then.
            assert_eq!(answer.is_ok(), *sells, "seed {}: a till sale answered {answer:?}", self.seed);
            if let Ok(Outcome { effect: Effect::PosSold { conflicts: c }, .. }) = answer {
                conflicts += c.len();
                short += c.iter().filter(|c| c.short > 0).count();
            }
        }
        format!("pos sync hit {conflicts} holds, {short} left short: {expected:?} at {store}")
    }

    // ---- carts and checkout ------------------------------------------------------------------

    fn random_lines(&mut self) -> Vec<LineRequest> {
        (0..self.rng.gen_range(1..=3))
            .map(|_| {
                let sku =
                    if self.rng.gen_ratio(1, 6) { self.kit.clone() } else { self.pick(&self.plain.clone()).unwrap() };
                LineRequest { sku_id: sku, quantity: self.rng.gen_range(1..=4) }
            })
            .collect()
    }

    async fn new_cart(&mut self) -> String {
        let channel = self.pick(&ONLINE).unwrap();
        let lines = self.random_lines();
        let sells: Vec<String> = setup()
            .locations
            .into_iter()
            .filter(|l| l.channels.iter().any(|c| c.to_string() == channel))
            .map(|l| l.id.to_string())
            .collect();
        let location = if self.rng.gen_ratio(1, 3) { self.pick(&sells).map(LocationId::new) } else { None };
        let customer_id = self.rng.gen_ratio(1, 2).then(|| format!("cus_{}", self.rng.gen_range(0..5)));
        let new = NewCart { channel: channel.parse().unwrap(), customer_id, location_id: location, lines };
        let cart = self.orders().create_cart(new, None).await.expect("a cart of known SKUs is made").value;
        self.carts.push(cart.id);
        format!("cart on {channel}")
    }

    async fn change_cart(&mut self) -> String {
        let Some(id) = self.pick(&self.carts.clone()) else { return "no cart to change".into() };
        let cart = self.orders().cart(&id).await.unwrap().unwrap();
        let lines = self.random_lines();
        match self.orders().replace_lines(cart.clone(), &lines).await {
            Ok(changed) => {
                assert!(cart.order_id.is_none(), "seed {}: a checked-out cart's lines changed", self.seed);
                assert_eq!(changed.version, cart.version + 1);
                "cart lines replaced".into()
            }
            Err(OrdersError::WrongState(_)) => {
                assert!(cart.order_id.is_some(), "seed {}: an open cart's lines were refused", self.seed);
                "checked-out cart not changed".into()
            }
            Err(e) => panic!("seed {}: replacing lines: {e}", self.seed),
        }
    }

    fn available(&self, sku: &str, channel: &Channel) -> i64 {
        self.inventory().available(&SkuId::new(sku), channel).unwrap().available
    }

    async fn checkout(&mut self) -> String {
        let open: Vec<String> = self.carts.iter().filter(|c| !self.checked_out.contains(*c)).cloned().collect();
        let pool = if !open.is_empty() && self.rng.gen_ratio(4, 5) { open } else { self.carts.clone() };
        let Some(id) = self.pick(&pool) else { return "no cart to check out".into() };
        let cart = self.orders().cart(&id).await.unwrap().unwrap();
        let channel: Channel = cart.channel.parse().unwrap();
        let promised = self.available(&cart.lines[0].sku_id, &channel);
        let journal = self.journal_len();
        match self.orders().checkout(cart.clone(), None, ACTOR).await {
            Ok(done) => {
                let order = done.value;
                if let Some(before) = &cart.order_id {
                    assert!(!done.created && &order.id == before, "seed {}: a second checkout", self.seed);
                    assert_eq!(self.journal_len(), journal, "seed {}: a repeated checkout moved stock", self.seed);
                    return "checkout repeated".into();
                }
                assert!(done.created);
                self.checked_out.insert(id.clone());
                if cart.lines.len() == 1 {
                    assert!(cart.lines[0].quantity <= promised, "seed {}: held more than promised", self.seed);
                }
                let total: i64 = cart.lines.iter().map(|l| l.quantity * l.unit_price_minor).sum();
                assert_eq!(order.total_minor, total);
                assert_eq!(self.orders().status(&order), OrderStatus::Checkout);
                self.orders.push(order.id.clone());
                let reservation = order.reservation_id.clone();
                self.known.insert(order.id, Known { payment: "none".into(), reservation, ..Known::default() });
                format!("checkout of {} lines", cart.lines.len())
            }
            Err(OrdersError::Rejected(Rejection::InsufficientStock { .. })) => {
                assert!(cart.order_id.is_none());
                if cart.lines.len() == 1 {
                    assert!(
                        cart.lines[0].quantity > promised,
                        "seed {}: {} units refused with {promised} available",
                        self.seed,
                        cart.lines[0].quantity
                    );
                }
                assert_eq!(self.journal_len(), journal, "seed {}: a refused checkout moved stock", self.seed);
                let still = self.orders().cart(&id).await.unwrap().unwrap();
                assert!(still.order_id.is_none(), "the cart stays open");
                "checkout short".into()
            }
            Err(e) => panic!("seed {}: checkout: {e}", self.seed),
        }
    }

    fn journal_len(&self) -> usize {
        self.inventory().read(|l| l.journal().len())
    }

    // ---- payments ----------------------------------------------------------------------------

    async fn pay(&mut self) -> String {
        let Some(id) = self.pick_order(|s| s == OrderStatus::Checkout) else { return "no order to pay".into() };
        let order = self.orders().order(&id).await.unwrap().unwrap();
        let event = *self
            .pick(&[
                PaymentEvent::Authorized,
                PaymentEvent::Authorized,
                PaymentEvent::Captured,
                PaymentEvent::Captured,
                PaymentEvent::Captured,
                PaymentEvent::Failed,
                PaymentEvent::Refunded,
            ])
            .as_ref()
            .unwrap();
        let reference = format!("psp-{}", self.rng.gen_range(0..3));
        let (mut amount, mut currency) = (order.total_minor, order.currency.clone());
        match self.rng.gen_range(0..10) {
            0 => amount += self.rng.gen_range(-50..=50),
            1 => currency = "SEK".into(),
            2 | 3 if event == PaymentEvent::Refunded => amount = self.rng.gen_range(1..=order.total_minor.max(1)),
            _ => {}
        }
        let payment = NewPayment { event, provider_reference: reference, amount_minor: amount, currency };
        self.callback(order, payment).await
    }

    /// A callback sent before, sent again (the provider retries).
    async fn retry_callback(&mut self) -> String {
        let sent: Vec<(String, String, PaymentEvent, i64)> = self
            .known
            .iter()
            .flat_map(|(id, k)| k.callbacks.iter().map(|((r, e), a)| (id.clone(), r.clone(), *e, *a)))
            .collect();
        let Some((id, reference, event, amount)) = self.pick(&sent) else { return "no callback to retry".into() };
        let order = self.orders().order(&id).await.unwrap().unwrap();
        let currency = order.currency.clone();
        let payment = NewPayment { event, provider_reference: reference, amount_minor: amount, currency };
        let journal = self.journal_len();
        let before = self.orders().payments(&id).await.unwrap().len();
        let action = self.callback(order, payment).await;
        assert_eq!(self.orders().payments(&id).await.unwrap().len(), before, "seed {}: a retry stored", self.seed);
        if event != PaymentEvent::Authorized && event != PaymentEvent::Captured {
            assert_eq!(self.journal_len(), journal, "seed {}: a retried {event:?} moved stock", self.seed);
        }
        format!("retry: {action}")
    }

    /// One callback, and what it must do given the order before it.
    async fn callback(&mut self, order: Order, payment: NewPayment) -> String {
        let id = order.id.clone();
        let status = self.orders().status(&order);
        let reservation = self.orders().reservation(&order);
        let known = self.known.get(&id).cloned().unwrap_or_default();
        let event = payment.event;
        let key = (payment.provider_reference.clone(), event);
        let duplicate = known.callbacks.get(&key).copied();
        let captured: i64 =
            known.callbacks.iter().filter(|((_, e), _)| *e == PaymentEvent::Captured).map(|(_, a)| a).sum();
        let refunded: i64 =
            known.callbacks.iter().filter(|((_, e), _)| *e == PaymentEvent::Refunded).map(|(_, a)| a).sum();
        let wrong_currency = payment.currency != order.currency && event != PaymentEvent::Failed;
        let valid = match duplicate {
            Some(first) => event == PaymentEvent::Failed || (first == payment.amount_minor && !wrong_currency),
            None => {
                !wrong_currency
                    && match event {
                        PaymentEvent::Authorized => payment.amount_minor == order.total_minor,
                        PaymentEvent::Captured => payment.amount_minor == order.total_minor && captured == 0,
                        PaymentEvent::Refunded => refunded + payment.amount_minor <= captured,
                        PaymentEvent::Failed => true,
                    }
            }
        };
        let payments_before = self.orders().payments(&id).await.unwrap();
        let journal = self.journal_len();
        let result = self.orders().record_payment(order.clone(), payment.clone(), ACTOR).await;
        let after = self.orders().order(&id).await.unwrap().unwrap();
        let status_after = self.orders().status(&after);
        let seed = self.seed;
        if !valid {
            // For another amount or currency, or more refunded than captured: refused, nothing
            // stored, nothing moved.
            match &result {
                Err(OrdersError::Invalid { field, .. }) => {
                    assert!(field == "amount_minor" || field == "currency", "seed {seed}: {field}")
                }
                other => {
                    panic!("seed {seed}: {payment:?} on {status:?} (total {}) answered {other:?}", order.total_minor)
                }
            }
            assert_eq!(self.orders().payments(&id).await.unwrap(), payments_before, "seed {seed}: refused but stored");
            assert_eq!(self.journal_len(), journal, "seed {seed}: a refused callback moved stock");
            assert_eq!(status_after, status, "seed {seed}: a refused callback moved the order");
            return format!("pay {event:?} refused on {status:?}");
        }
        if duplicate.is_none() {
            self.known.get_mut(&id).unwrap().callbacks.insert(key, payment.amount_minor);
        }
        let held = reservation.as_ref().map_or(0, |r| r.held());
        match event {
            PaymentEvent::Authorized | PaymentEvent::Captured => match status {
                OrderStatus::Checkout if held > 0 => {
                    let placed = result.unwrap_or_else(|e| panic!("seed {seed}: a live checkout paid: {e}"));
                    assert_eq!(self.orders().status(&placed), OrderStatus::Placed, "seed {seed}");
                }
                OrderStatus::Checkout => {
                    // Every held unit went to a till: the order is placed all short, flagged for
                    // customer service like one a till took part of, not left to expire paid.
                    let placed = result.unwrap_or_else(|e| panic!("seed {seed}: a paid checkout left short: {e}"));
                    assert_eq!(self.orders().status(&placed), OrderStatus::Placed, "seed {seed}");
                    let r = self.orders().reservation(&placed).unwrap();
                    assert!(r.is_flagged(), "seed {seed}: placed short without a flag");
                }
                OrderStatus::Expired | OrderStatus::Cancelled => {
                    assert!(
                        matches!(result, Err(OrdersError::WrongState(_))),
                        "seed {seed}: paid after {status:?}: {result:?}"
                    );
                    assert_eq!(status_after, status, "seed {seed}: a late payment revived an order");
                    assert_eq!(self.journal_len(), journal, "seed {seed}: a late payment moved stock");
                }
                _ => {
                    result.unwrap_or_else(|e| panic!("seed {seed}: paid again when {status:?}: {e}"));
                    assert_eq!(status_after, status, "seed {seed}: paying again changed the order");
                }
            },
            PaymentEvent::Failed => {
                result.unwrap_or_else(|e| panic!("seed {seed}: a failure on {status:?}: {e}"));
                let expected = if status == OrderStatus::Checkout { OrderStatus::Cancelled } else { status };
                assert_eq!(status_after, expected, "seed {seed}: a failed payment on {status:?}");
            }
            PaymentEvent::Refunded => {
                result.unwrap_or_else(|e| panic!("seed {seed}: a refund of {captured} captured: {e}"));
                assert_eq!(self.journal_len(), journal, "seed {seed}: a refund moved stock");
                assert_eq!(status_after, status, "seed {seed}: a refund changed the order");
            }
        }
        format!("pay {event:?} on {status:?} -> {status_after:?}")
    }

    // ---- transitions -------------------------------------------------------------------------

    async fn cancel(&mut self) -> String {
        let Some(id) = self.pick_order(|s| matches!(s, OrderStatus::Checkout | OrderStatus::Placed)) else {
            return "no order to cancel".into();
        };
        let order = self.orders().order(&id).await.unwrap().unwrap();
        let status = self.orders().status(&order);
        let result = self.orders().cancel(order, ACTOR).await;
        let seed = self.seed;
        match status {
            OrderStatus::Checkout | OrderStatus::Placed | OrderStatus::Cancelled => {
                let cancelled = result.unwrap_or_else(|e| panic!("seed {seed}: cancel {status:?}: {e}"));
                assert_eq!(self.orders().status(&cancelled), OrderStatus::Cancelled);
                let r = self.orders().reservation(&cancelled).unwrap();
                assert_eq!(r.held() + r.committed(), 0, "seed {seed}: a cancelled order keeps stock");
            }
            _ => assert!(matches!(result, Err(OrdersError::WrongState(_))), "seed {seed}: {status:?}: {result:?}"),
        }
        format!("cancel {status:?}")
    }

    async fn fulfill(&mut self) -> String {
        let Some(id) = self.pick_order(|s| matches!(s, OrderStatus::Placed | OrderStatus::PartiallyFulfilled)) else {
            return "no order to ship".into();
        };
        let order = self.orders().order(&id).await.unwrap().unwrap();
        let status = self.orders().status(&order);
        let reservation = self.orders().reservation(&order);
        let committed_at: BTreeMap<String, i64> = reservation
            .iter()
            .flat_map(|r| r.components().flat_map(|c| c.allocations.iter()))
            .fold(BTreeMap::new(), |mut m, a| {
                *m.entry(a.location.to_string()).or_insert(0) += a.committed;
                m
            });
        let committed: i64 = committed_at.values().sum();
        let location = if self.rng.gen_ratio(1, 2) { self.pick(&LOCATIONS).map(LocationId::new) } else { None };
        let here = location.as_ref().map_or(committed, |l| committed_at.get(l.as_str()).copied().unwrap_or(0));
        let shipped_before = reservation.as_ref().map_or(0, |r| r.shipped());
        let result = self.orders().fulfill(order, location.clone(), ACTOR).await;
        let seed = self.seed;
        match result {
            Ok(done) => {
                let r = self.orders().reservation(&done.value).unwrap();
                if done.created {
                    assert_eq!(r.shipped(), shipped_before + here, "seed {seed}: shipped other than committed");
                    for component in r.components() {
                        for allocation in &component.allocations {
                            if location.as_ref().is_none_or(|l| l == &allocation.location) {
                                assert_eq!(allocation.committed, 0, "seed {seed}: left committed units behind");
                            }
                        }
                    }
                } else {
                    // The same shipment asked again (by location): nothing moved.
                    assert_eq!(r.shipped(), shipped_before, "seed {seed}: a repeated shipment moved stock");
                }
                format!("ship {here} at {location:?} ({status:?})")
            }
            Err(e) => {
                // Any committed unit there must be shippable, whatever else happened to the order.
                assert_eq!(here, 0, "seed {seed}: {here} committed units at {location:?} of a {status:?} order: {e}");
                format!("ship nothing at {location:?} ({status:?})")
            }
        }
    }

    /// Shipped units per plain SKU of an order's hold, less what the simulation returned.
    fn returnable(&self, id: &str) -> BTreeMap<String, i64> {
        let known = &self.known[id];
        let mut units: BTreeMap<String, i64> = BTreeMap::new();
        self.inventory().read(|l| {
            if let Some(r) = l.reservation(&ReservationId::new(known.reservation.as_str())) {
                for c in r.components() {
                    *units.entry(c.sku.to_string()).or_insert(0) +=
                        c.allocations.iter().map(|a| a.shipped).sum::<i64>();
                }
            }
        });
        for (sku, back) in &known.returned {
            *units.entry(sku.clone()).or_insert(0) -= back;
        }
        units
    }

    async fn take_back(&mut self) -> String {
        let candidates: Vec<String> =
            self.orders.iter().filter(|id| self.returnable(id).values().any(|q| *q > 0)).cloned().collect();
        let Some(id) = self.pick(&candidates) else { return "nothing to return".into() };
        let order = self.orders().order(&id).await.unwrap().unwrap();
        let status = self.orders().status(&order);
        let returnable: Vec<(String, i64)> = self.returnable(&id).into_iter().filter(|(_, q)| *q > 0).collect();
        let (sku, most) = self.pick(&returnable).unwrap();
        // Sometimes one more than can come back: refused.
        let quantity = self.rng.gen_range(1..=most + 1);
        let location = LocationId::new(self.pick(&LOCATIONS).unwrap());
        let digest = self.next("ret-");
        let lines = [LineRequest { sku_id: sku.clone(), quantity }];
        let result = self.orders().take_back(order, location, &lines, &digest, ACTOR).await;
        let seed = self.seed;
        if quantity > most {
            assert!(result.is_err(), "seed {seed}: {quantity} of {most} shipped came back");
            return format!("return too many ({status:?})");
        }
        let back = result.unwrap_or_else(|e| panic!("seed {seed}: returning {quantity} of {most} ({status:?}): {e}"));
        *self.known.get_mut(&id).unwrap().returned.entry(sku).or_insert(0) += quantity;
        let after = self.orders().status(&back.value);
        assert!(
            matches!(after, OrderStatus::PartiallyReturned | OrderStatus::Returned),
            "seed {seed}: after a return: {after:?}"
        );
        format!("return {quantity} ({status:?} -> {after:?})")
    }

    // ---- other channels ----------------------------------------------------------------------

    async fn external_order(&mut self, channel: &str) -> String {
        let lines =
            vec![LineRequest { sku_id: self.pick(&self.plain.clone()).unwrap(), quantity: self.rng.gen_range(1..=3) }];
        let location = if channel == "pos" {
            Some(LocationId::new(self.pick(&STORES).unwrap()))
        } else {
            self.rng.gen_ratio(1, 2).then(|| LocationId::new(self.pick(&["wh1", "wh2"]).unwrap()))
        };
        let new = NewExternalOrder {
            channel: channel.parse().unwrap(),
            external_id: self.next("EXT-"),
            lines,
            location_id: location,
            customer_id: None,
        };
        self.send_external(new, false).await
    }

    async fn retry_external(&mut self) -> String {
        let Some(new) = self.pick(&self.external.clone()) else { return "no external order to retry".into() };
        self.send_external(new, true).await
    }

    async fn send_external(&mut self, new: NewExternalOrder, retry: bool) -> String {
        let promised = self.available(&new.lines[0].sku_id, &new.channel);
        let journal = self.journal_len();
        let result = self.orders().place_external(new.clone(), ACTOR).await;
        let seed = self.seed;
        let channel = new.channel.to_string();
        match result {
            Ok(done) => {
                let order = done.value;
                if retry {
                    assert!(!done.created, "seed {seed}: a retried {channel} order was made again");
                    assert_eq!(self.journal_len(), journal, "seed {seed}: a retried {channel} order moved stock");
                    return format!("{channel} order retried");
                }
                assert!(done.created);
                assert!(new.lines[0].quantity <= promised, "seed {seed}: sold more than promised");
                assert_eq!(self.orders().status(&order), OrderStatus::Placed, "seed {seed}");
                self.orders.push(order.id.clone());
                let reservation = order.reservation_id.clone();
                self.known.insert(order.id.clone(), Known { payment: "none".into(), reservation, ..Known::default() });
                self.external.push(new);
                format!("{channel} order placed")
            }
            Err(OrdersError::Rejected(Rejection::InsufficientStock { .. })) if !retry => {
                assert!(new.lines[0].quantity > promised, "seed {seed}: refused with {promised} available");
                assert_eq!(self.journal_len(), journal, "seed {seed}: a refused {channel} order moved stock");
                format!("{channel} order short")
            }
            Err(e) => panic!("seed {seed}: {channel} order (retry: {retry}): {e}"),
        }
    }

    // ---- restarts ----------------------------------------------------------------------------

    async fn restart(&mut self) -> String {
        let statuses = self.statuses().await;
        let balances = self.inventory().read(|l| l.all_balances().clone());
        let records = self.inventory().read(|l| l.records());
        self.world.db.close().await;
        let db = Db::open_data_dir(&self.dir, PoolSize::default()).await.expect("reopen");
        self.world = World::open(db, self.clock.clone(), self.holds.clone()).await;
        assert_eq!(self.inventory().read(|l| l.all_balances().clone()), balances, "seed {}: restart", self.seed);
        assert_eq!(self.inventory().read(|l| l.records()), records, "seed {}: restart", self.seed);
        assert_eq!(self.statuses().await, statuses, "seed {}: statuses changed over a restart", self.seed);
        self.rebuild_check("a restart").await;
        "restart".into()
    }

    async fn statuses(&self) -> Vec<(String, OrderStatus, String)> {
        let mut all = Vec::new();
        for id in &self.orders {
            let order = self.orders().order(id).await.unwrap().unwrap();
            all.push((id.clone(), self.orders().status(&order), order.payment_status));
        }
        all
    }

    // ---- checks ------------------------------------------------------------------------------

    async fn check(&mut self, step: usize, action: &str) {
        let context = format!("seed {} step {step} ({action})", self.seed);
        if let Err(violation) = self.inventory().read(|l| l.check()) {
            panic!("{context}: {violation}");
        }
        if step.is_multiple_of(20) {
            self.rebuild_check(&context).await;
        }
        let now = self.now();
        // Conservation per SKU: stock (not incoming) plus what left equals what was received.
        let customer = Account::external(External::Customer);
        let shrinkage = Account::external(External::Shrinkage);
        for sku in &self.plain {
            let balances = self.inventory().read(|l| l.balances(&SkuId::new(sku.as_str())));
            let stock: i64 = balances
                .iter()
                .filter(|(k, _)| matches!(&k.account, Account::Stock { state, .. } if *state != StockState::Incoming))
                .map(|(_, q)| q)
                .sum();
            let out: i64 =
                balances.iter().filter(|(k, _)| k.account == customer || k.account == shrinkage).map(|(_, q)| q).sum();
            let received = self.received.get(sku).copied().unwrap_or(0);
            assert_eq!(stock + out, received, "{context}: {sku}: units in stock and gone differ from units received");
        }
        // No negative availability anywhere; what a read reports reserved, per SKU and location.
        let mut reserved_read: BTreeMap<(String, String), i64> = BTreeMap::new();
        for sku in self.plain.iter().chain([&self.kit]) {
            for channel in CHANNELS.iter().map(|c| c.parse::<Channel>().unwrap()) {
                let availability = self.inventory().available(&SkuId::new(sku.as_str()), &channel).unwrap();
                assert!(availability.available >= 0, "{context}: {sku} on {channel}: negative availability");
                for l in &availability.locations {
                    assert!(
                        l.available >= 0 && l.on_hand >= 0 && l.reserved >= 0 && l.committed >= 0,
                        "{context}: {l:?}"
                    );
                    if sku != &self.kit {
                        let seen = reserved_read.insert((sku.clone(), l.location.to_string()), l.reserved);
                        assert!(seen.is_none_or(|r| r == l.reserved), "{context}: channels disagree on reserved");
                    }
                }
            }
        }
        // Every order, as the service reads it, against the ledger and the simulation's books.
        let mut holds: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut stored: BTreeMap<String, Order> = BTreeMap::new();
        loop {
            let page = self.orders().list(None, stored.keys().next_back().map(String::as_str), 500).await.unwrap();
            let last = page.len() < 500;
            stored.extend(page.into_iter().map(|o| (o.id.clone(), o)));
            if last {
                break;
            }
        }
        assert_eq!(stored.len(), self.orders.len(), "{context}: orders stored other than made");
        for id in self.orders.clone() {
            let order = stored.remove(&id).unwrap_or_else(|| panic!("{context}: {id} is not stored"));
            let status = self.orders().status(&order);
            let r = self.orders().reservation(&order).unwrap_or_else(|| panic!("{context}: {id} has no hold"));
            match status {
                OrderStatus::Checkout => {
                    assert!(r.is_live(now), "{context}: {id} in checkout on a dead hold");
                    assert_eq!(r.committed() + r.shipped(), 0, "{context}: {id} in checkout with committed units");
                    for c in r.components() {
                        for a in &c.allocations {
                            *holds.entry((c.sku.to_string(), a.location.to_string())).or_insert(0) += a.held;
                        }
                    }
                }
                OrderStatus::Expired | OrderStatus::Cancelled => {
                    assert!(!r.is_live(now), "{context}: {id} {status:?} still holds stock");
                    assert_eq!(r.committed(), 0, "{context}: {id} {status:?} keeps committed units");
                }
                _ => {
                    // Placed and after: nothing held; every unit committed, shipped, or taken by a
                    // till (flagged short for customer service).
                    assert_eq!(r.held(), 0, "{context}: {id} {status:?} still holds units");
                    let lines: BTreeMap<&str, i64> =
                        order.lines.iter().map(|l| (l.sku_id.as_str(), l.quantity)).collect();
                    for line in &r.lines {
                        assert_eq!(lines.get(line.sku.as_str()), Some(&line.quantity), "{context}: {id} lines");
                        for c in &line.components {
                            let accounted =
                                c.committed() + c.allocations.iter().map(|a| a.shipped).sum::<i64>() + c.short;
                            assert_eq!(accounted, line.quantity * c.per_unit, "{context}: {id} {}: {c:?}", c.sku);
                        }
                    }
                    // The orders tables' shipments and returns agree with the ledger's and the
                    // simulation's books (read when they may have changed, and every 20 steps).
                    let returned_known: i64 = self.known[&id].returned.values().sum();
                    let seen = (r.shipped(), returned_known);
                    if self.known[&id].movements_seen == Some(seen) && !step.is_multiple_of(20) {
                        forward_only(&mut self.known, &id, status, &order.payment_status, &context);
                        continue;
                    }
                    self.known.get_mut(&id).unwrap().movements_seen = Some(seen);
                    let movements = self.orders().movements(&id).await.unwrap();
                    let shipped: i64 = movements
                        .iter()
                        .filter(|m| m.kind == dermis_orders::model::MovementKind::Fulfillment)
                        .flat_map(|m| m.lines.iter().map(|l| l.quantity))
                        .sum();
                    assert_eq!(shipped, r.shipped(), "{context}: {id}: recorded shipments differ from the ledger");
                    let returned: i64 = movements
                        .iter()
                        .filter(|m| m.kind == dermis_orders::model::MovementKind::Return)
                        .flat_map(|m| m.lines.iter().map(|l| l.quantity))
                        .sum();
                    assert!(returned <= shipped, "{context}: {id}: {returned} returned of {shipped} shipped");
                    let expected_returned: i64 = self.known[&id].returned.values().sum();
                    assert_eq!(returned, expected_returned, "{context}: {id}: returns recorded");
                }
            }
            forward_only(&mut self.known, &id, status, &order.payment_status, &context);
        }
        // Reserved as read is exactly the holds of orders awaiting payment: nothing else holds.
        for ((sku, location), reserved) in &reserved_read {
            let expected = holds.get(&(sku.clone(), location.clone())).copied().unwrap_or(0);
            assert_eq!(*reserved, expected, "{context}: {sku} at {location}: reserved is not the checkouts' holds");
        }
    }

    async fn rebuild_check(&self, context: &str) {
        let seed = self.seed;
        let journal = self.inventory().read(|l| l.journal().to_vec());
        let memory = self.inventory().read(|l| l.all_balances().clone());
        assert_eq!(Balances::rebuild(&journal), memory, "seed {seed}, {context}: the journal does not rebuild memory");
        let report = dermis_inventory::rebuild::rebuild(&self.world.db, false).await.unwrap();
        assert!(report.matched(), "seed {seed}, {context}: stored balances differ: {:?}", report.mismatches);
        let stored = dermis_inventory::store::balances(&self.world.db).await.unwrap();
        let mut in_memory: Vec<(BalanceKey, Quantity)> =
            memory.iter().filter(|(_, q)| *q != 0).map(|(k, q)| (k.clone(), q)).collect();
        in_memory.sort();
        assert_eq!(stored, in_memory, "seed {seed}, {context}: stored balances differ from memory");
    }
}

/// Statuses never go backwards: the order's, and its payment's.
fn forward_only(known: &mut BTreeMap<String, Known>, id: &str, status: OrderStatus, payment: &str, context: &str) {
    let known = known.get_mut(id).unwrap();
    if let Some(before) = known.status {
        assert!(allowed(before, status), "{context}: {id} went from {before:?} to {status:?}");
    }
    known.status = Some(status);
    assert!(
        payment_rank(payment) >= payment_rank(&known.payment),
        "{context}: {id} payment went from {} to {payment}",
        known.payment
    );
    known.payment = payment.to_owned();
}

/// Whether an order may go from `before` to `after`: forward only.
fn allowed(before: OrderStatus, after: OrderStatus) -> bool {
    use OrderStatus::*;
    before == after
        || match before {
            Checkout => true,
            Placed => matches!(after, PartiallyFulfilled | Fulfilled | PartiallyReturned | Returned | Cancelled),
            PartiallyFulfilled => matches!(after, Fulfilled | PartiallyReturned | Returned),
            Fulfilled => matches!(after, PartiallyReturned | Returned),
            PartiallyReturned => matches!(after, Returned),
            Expired | Cancelled | Returned => false,
        }
}

/// A payment status's precedence (a status never goes to a lower one).
fn payment_rank(status: &str) -> u8 {
    match status {
        "failed" => 1,
        "authorized" => 2,
        "captured" => 3,
        "refunded" => 4,
        _ => 0,
    }
}
