//! Reservations per second through [`Inventory`], the measurement of issue 15.
//!
//! ```text
//! cargo run --release -p dermis-inventory --example reserve_bench -- \
//!     --backend sqlite|postgres --skus 1|10000 --tasks 16 --seconds 10
//! ```
//!
//! Opens a fresh store (a SQLite file in a temporary folder, or a scratch PostgreSQL database
//! created on `--postgres-url`'s server and dropped afterwards), defines `--skus` SKUs sold on the
//! web from one warehouse, receives plenty of stock of each, then runs `--tasks` tasks that each
//! submit one-unit [`Command::Reserve`] requests in a closed loop (a random SKU among them) for
//! `--seconds`. Meanwhile another task reads [`Inventory::available`] once a millisecond and times
//! each read. Then it checks that nothing was oversold: every reservation that succeeded holds
//! exactly one unit, the reserved balances equal the successes, the ledger's invariants hold
//! ([`Ledger::check`]: no balance negative, conservation per SKU), and the store restores to the
//! same balances. It prints one line of `name=value` pairs (what `scripts/bench-inventory.sh`
//! reads) and exits non-zero if a check fails.
//!
//! `--writers N` opens N services on the same store, each with its own connection pool, ledger
//! and writer, as N Dermis processes sharing one database would be, and spreads the tasks over
//! them: what the fenced journal head and the catching up by replay cost when several processes
//! write (`scripts/bench-inventory-writers.sh`). Every writer must end in the store's state.
//! With `--forward`, the first writer holds the writer's lease and serves the forwarded-writes
//! route over HTTP on 127.0.0.1, and the others send their requests to it
//! ([`dermis_inventory::forward`]), as nodes with a cluster secret do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use dermis_core::clock;
use dermis_inventory::forward::Forwarding;
use dermis_inventory::{
    Account, Channel, ChannelPolicy, Command, Inventory, Ledger, Line, Location, LocationKind, Lot, ReceiptLine,
    Request, Setup, SkuId, StockState, WriterOptions, day_of, store,
};
use dermis_store::Db;
use dermis_store::db::PoolSize;
use dermis_store::sqlx::{self, Executor};
use rand::{Rng, SeedableRng};

/// The allocator of the `dermis` binary (src/main.rs), so the figures are those of the product.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

/// How reservation ids (and idempotency keys) are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Keys {
    /// A new ULID each (time-ordered, as Dermis makes ids): new index entries land on the right
    /// edge of each B-tree.
    Ulid,
    /// `t{task}-{n}`: each task's keys are ordered, so every batch inserts at one place per task.
    PerTask,
}

/// Reservations per second and their latency through the inventory writer.
#[derive(Debug, Parser)]
struct Args {
    /// Where the ledger is stored.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// SKUs the reservations are spread over (1: one hot SKU).
    #[arg(long, default_value_t = 1)]
    skus: usize,
    /// Tasks reserving in a closed loop.
    #[arg(long, default_value_t = 16)]
    tasks: usize,
    /// How long to reserve.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Most submissions per batch (one transaction).
    #[arg(long, default_value_t = WriterOptions::default().max_batch)]
    max_batch: usize,
    /// How reservation ids and idempotency keys are made.
    #[arg(long, value_enum, default_value = "ulid")]
    keys: Keys,
    /// Services (each its own pool, ledger and writer) sharing the store, as that many processes.
    #[arg(long, default_value_t = 1)]
    writers: usize,
    /// The other writers forward to the first (the lease holder) over HTTP instead of writing.
    #[arg(long)]
    forward: bool,
    /// A PostgreSQL server (any database on it): the scratch database is created there.
    #[arg(long, env = "DERMIS_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
}

/// Units received of each SKU: more than any run can reserve.
const STOCK: i64 = 1_000_000_000;
const HOUR_MS: i64 = 3_600_000;

/// A store for the run, and how to remove it.
enum Scratch {
    Sqlite(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

async fn open(args: &Args) -> Result<(Db, Scratch), Box<dyn std::error::Error>> {
    let name = format!("bench_inventory_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let (db, scratch) = match args.backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(&name);
            (Db::open_data_dir(&dir, PoolSize::default()).await?, Scratch::Sqlite(dir))
        }
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&args.postgres_url).await?;
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
            admin.close().await;
            let url = dermis_store::testing::with_database(&args.postgres_url, &name);
            let db = Db::connect(&url, PoolSize::default()).await?;
            (db, Scratch::Postgres { admin: args.postgres_url.clone(), name })
        }
    };
    db.migrate(dermis_inventory::MIGRATIONS).await?;
    Ok((db, scratch))
}

async fn remove(scratch: Scratch) -> Result<(), Box<dyn std::error::Error>> {
    match scratch {
        Scratch::Sqlite(dir) => std::fs::remove_dir_all(dir)?,
        Scratch::Postgres { admin, name } => {
            let admin = sqlx::AnyPool::connect(&admin).await?;
            admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
            admin.close().await;
        }
    }
    Ok(())
}

fn sku(i: usize) -> SkuId {
    SkuId::new(format!("sku-{i:05}"))
}

/// The latency at quantile `q` of sorted samples.
fn at(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the `dermis` binary does.
    dermis_core::process::no_transparent_huge_pages();
    let args = Args::parse();
    let skus = args.skus.max(1);
    let (db, scratch) = open(&args).await?;
    let mut pools = vec![db.clone()];
    for _ in 1..args.writers.max(1) {
        pools.push(match &scratch {
            Scratch::Sqlite(dir) => Db::open_data_dir(dir, PoolSize::default()).await?,
            Scratch::Postgres { admin, name } => {
                Db::connect(&dermis_store::testing::with_database(admin, name), PoolSize::default()).await?
            }
        });
    }
    let result = run(&args, skus, &pools).await;
    for pool in pools {
        pool.close().await;
    }
    remove(scratch).await?;
    let line = result?;
    println!("{line}");
    if !line.contains("ok=1") {
        return Err("a check failed".into());
    }
    Ok(())
}

async fn run(args: &Args, skus: usize, pools: &[Db]) -> Result<String, Box<dyn std::error::Error>> {
    let clock = clock::system();
    let options = WriterOptions { max_batch: args.max_batch, ..WriterOptions::default() };
    let db = &pools[0];
    let inventory = Inventory::open_with(db.clone(), clock.clone(), options).await?;
    inventory
        .extend_setup(Setup {
            skus: (0..skus).map(sku).collect(),
            kits: Vec::new(),
            locations: vec![Location {
                id: "wh".into(),
                kind: LocationKind::Warehouse,
                latitude: 48.0,
                longitude: 2.0,
                channels: vec![Channel::Web],
                details: Default::default(),
            }],
            channels: vec![ChannelPolicy { channel: Channel::Web, safety_stock: 0, min_shelf_life_days: 0 }],
        })
        .await?;
    let lot = Lot::new("L1", day_of(clock.now_ms()) + 365);
    let receipt = Command::Receive {
        location: "wh".into(),
        purchase_order: None,
        lines: (0..skus).map(|i| ReceiptLine { sku: sku(i), quantity: STOCK, lot: lot.clone() }).collect(),
    };
    if let Err(rejection) = inventory.submit(Request::new("receipt", "bench", receipt)).await? {
        return Err(format!("the receipt was refused: {rejection}").into());
    }

    // The other writers open once the setup and the stock are there, as processes started later.
    let mut writers = vec![inventory.clone()];
    for pool in &pools[1..] {
        writers.push(Inventory::open_with(pool.clone(), clock.clone(), options).await?);
    }
    let server =
        if args.forward && writers.len() > 1 { Some(forward_to_first(&writers, pools, &clock).await?) } else { None };

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (inventory, stop) = (inventory.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(u64::MAX);
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sku = sku(rng.gen_range(0..skus));
                let started = Instant::now();
                let availability = inventory.available(&sku, &Channel::Web);
                latencies.push(started.elapsed());
                assert!(availability.is_ok_and(|a| a.available > 0), "a read failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        })
    };
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for task in 0..args.tasks {
        let inventory = writers[task % writers.len()].clone();
        let clock = clock.clone();
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(task as u64);
            let (mut latencies, mut refused, mut failed) = (Vec::new(), 0u64, 0u64);
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let id = match keys {
                    Keys::Ulid => ulid::Ulid::new().to_string(),
                    Keys::PerTask => format!("t{task}-{i}"),
                };
                let command = Command::Reserve {
                    reservation: id.as_str().into(),
                    channel: Channel::Web,
                    lines: vec![Line::new(sku(rng.gen_range(0..skus)), 1)],
                    expires_at_ms: clock.now_ms() + HOUR_MS,
                    preferred_location: None,
                    reference: None,
                    customer_id: None,
                };
                let sent = Instant::now();
                let answer = inventory.submit(Request::new(id, "bench", command)).await;
                latencies.push(sent.elapsed());
                match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => refused += 1,
                    Err(e) => {
                        if failed < 3 {
                            eprintln!("task {task}: {e}");
                        }
                        failed += 1
                    }
                }
            }
            (latencies, refused, failed)
        }));
    }
    let (mut latencies, mut refused, mut failed) = (Vec::new(), 0, 0);
    for task in tasks {
        let (l, r, f) = task.await?;
        latencies.extend(l);
        refused += r;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut reads = reader.await?;
    latencies.sort();
    reads.sort();
    let held = latencies.len() as i64 - refused as i64 - failed as i64;
    // How the writers kept up with each other, then every one of them brought up to the store.
    let (mut replayed, mut reloads) = (0, 0);
    for writer in &writers {
        let stats = writer.sync_stats();
        (replayed, reloads) = (replayed + stats.replayed_batches, reloads + stats.reloads);
    }
    for writer in &writers {
        writer.refresh().await?;
    }
    let (forwarded, fallbacks) =
        writers.iter().map(Inventory::forwarding_stats).fold((0, 0), |(f, b), s| (f + s.forwarded, b + s.fallbacks));
    if let Some(server) = server {
        server.abort();
    }

    // Zero oversell: every success holds one unit, the reserved balances say the same, on hand
    // never went negative (check), units are conserved per SKU (check).
    let (checked, reserved_units, held_units, on_hand) = inventory.read(|ledger: &Ledger| {
        let reserved = |state: StockState| {
            ledger
                .all_balances()
                .iter()
                .filter(|(k, _)| matches!(&k.account, Account::Stock { state: s, .. } if *s == state))
                .map(|(_, q)| q)
                .sum::<i64>()
        };
        let held_units: i64 = ledger.records().reservations.iter().map(|r| r.held()).sum();
        (ledger.check(), reserved(StockState::Reserved), held_units, reserved(StockState::OnHand))
    });
    let received = STOCK * skus as i64;
    let (stored_ok, writers_agree) = {
        let restored = store::load(db).await?.restore()?;
        let rows = store::balances(db).await?;
        let memory = inventory.read(|l| l.all_balances().clone());
        let stored_ok = restored.all_balances() == &memory
            && rows == memory.iter().map(|(k, q)| (k.clone(), q)).collect::<Vec<_>>();
        // Every writer's ledger, caught up, holds the store's balances, records and journal.
        let (records, journal) = (restored.records(), restored.journal());
        let agree = writers.iter().all(|w| {
            w.read(|l| l.all_balances() == restored.all_balances() && l.records() == records && l.journal() == journal)
        });
        (stored_ok, agree)
    };
    let ok = checked.is_ok()
        && reserved_units == held
        && held_units == held
        && on_hand + reserved_units == received
        && stored_ok
        && writers_agree
        && failed == 0;
    if let Err(violation) = &checked {
        eprintln!("{violation}");
    }
    Ok(format!(
        "dermis backend={} skus={skus} tasks={} seconds={elapsed:.1} reservations={held} refused={refused} \
         failed={failed} rps={:.0} p50_ms={} p99_ms={} max_ms={} reads={} read_p50_us={} read_p99_us={} \
         read_max_us={} keys={:?} held_units={held_units} reserved_balance={reserved_units} stored_matches={} \
         writers={} forward={} forwarded={forwarded} fallbacks={fallbacks} replayed_batches={replayed} \
         reloads={reloads} ok={}",
        match args.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        args.tasks,
        held as f64 / elapsed,
        ms(at(&latencies, 0.50)),
        ms(at(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        reads.len(),
        us(at(&reads, 0.50)),
        us(at(&reads, 0.99)),
        us(reads.last().copied().unwrap_or_default()),
        args.keys,
        u8::from(stored_ok),
        writers.len(),
        u8::from(args.forward),
        u8::from(ok),
    ))
}

/// The first writer takes the lease and serves forwarded writes on a free local port; the others
/// forward to it. Returns the server task.
async fn forward_to_first(
    writers: &[Inventory],
    pools: &[Db],
    clock: &clock::SharedClock,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error>> {
    const SECRET: &str = "a-cluster-secret-for-the-bench";
    let ttl = Duration::from_secs(60);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = dermis_inventory::routes::internal::router(writers[0].clone(), clock.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    for (i, (writer, pool)) in writers.iter().zip(pools).enumerate() {
        let forwarding =
            Arc::new(Forwarding::new(pool.clone(), clock.clone(), &format!("node-{i}"), &url, SECRET, ttl));
        forwarding.renew().await?;
        writer.forward_through(forwarding);
    }
    Ok(server)
}
