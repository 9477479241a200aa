//! Bytes of memory one in-memory [`Ledger`] copy holds per cart hold (the service keeps two
//! copies: the writer's and the readers').
//!
//! ```text
//! cargo run --release -p dermis-inventory --example ledger_memory -- --holds 100000
//! ```
//!
//! Counts the bytes live on the heap (a counting allocator around the system's) before and after
//! applying `--holds` one-unit [`Command::Reserve`]s of one SKU in batches of 64, as the writer
//! does, with ULID reservation ids and keys as Dermis makes them; then confirms half of them
//! and counts again. Prints one line of `name=value` pairs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use clap::Parser;
use dermis_inventory::{
    Channel, ChannelPolicy, Command, Ledger, Line, Location, LocationKind, Lot, ReceiptLine, Request, Setup, SkuId,
};

/// The system allocator, counting the bytes it has handed out and not had back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to `System` unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Memory per hold of one in-memory ledger copy.
#[derive(Debug, Parser)]
struct Args {
    /// Holds to make.
    #[arg(long, default_value_t = 100_000)]
    holds: usize,
}

const HOUR_MS: i64 = 3_600_000;

fn main() {
    let args = Args::parse();
    let now = 1_780_000_000_000;
    let sku = SkuId::new("sku-00000");
    let setup = Setup {
        skus: vec![sku.clone()],
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
    };
    let mut ledger = Ledger::new(setup).expect("a valid setup");
    let receipt = Command::Receive {
        location: "wh".into(),
        purchase_order: None,
        lines: vec![ReceiptLine {
            sku: sku.clone(),
            quantity: 1_000_000_000,
            lot: Lot::new("L1", dermis_inventory::day_of(now) + 365),
        }],
    };
    let done = ledger.apply(vec![Request::new("receipt", "bench", receipt)], now);
    assert!(done[0].is_ok(), "the receipt applies");

    let before = LIVE.load(Ordering::Relaxed);
    let mut ids = Vec::with_capacity(args.holds);
    for chunk in 0..args.holds.div_ceil(64) {
        let mut batch = Vec::with_capacity(64);
        for _ in 0..64.min(args.holds - chunk * 64) {
            let id = ulid::Ulid::new().to_string();
            ids.push(id.clone());
            let command = Command::Reserve {
                reservation: id.as_str().into(),
                channel: Channel::Web,
                lines: vec![Line::new(sku.clone(), 1)],
                expires_at_ms: now + HOUR_MS,
                preferred_location: None,
                reference: None,
                customer_id: None,
            };
            batch.push(Request::new(id, "bench", command));
        }
        let results = ledger.apply(batch, now);
        assert!(results.iter().all(Result::is_ok), "every hold applies");
    }
    let held = LIVE.load(Ordering::Relaxed);
    let ids_bytes =
        (ids.capacity() * std::mem::size_of::<String>() + ids.iter().map(String::capacity).sum::<usize>()) as isize;
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 2 == 0) {
        let confirm = Command::Confirm { reservation: id.as_str().into(), lines: None };
        let results = ledger.apply(vec![Request::new(format!("confirm-{n}"), "bench", confirm)], now + 1);
        assert!(results[0].is_ok(), "the confirmation applies");
    }
    let confirmed = LIVE.load(Ordering::Relaxed);
    let per_hold = (held - before - ids_bytes) as f64 / args.holds as f64;
    let per_confirm = (confirmed - held) as f64 / args.holds.div_ceil(2) as f64;
    println!(
        "ledger_memory holds={} bytes_per_hold={per_hold:.0} bytes_per_confirmation={per_confirm:.0} journal={}",
        args.holds,
        ledger.journal().len()
    );
}
