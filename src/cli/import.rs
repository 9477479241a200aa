//! `dermis import catalog FILE`: products from a Sephora `product_info` file or Dermis JSON.
//! `dermis import interactions FILE`: reviews through event ingestion ([`interactions`]).

use std::path::Path;

use dermis_catalog::import::{self, ImportReport};
use dermis_server::{Config, app};

/// Imports the file into the configured store and prints the report (as JSON with `json`).
pub(super) async fn catalog(config: &Config, file: &Path, json: bool) -> anyhow::Result<()> {
    let db = app::open_store(config).await?;
    let rows = import::read_file(file).map_err(anyhow::Error::msg)?;
    let report = import::import(&db, rows, 200).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    db.close().await;
    Ok(())
}

/// One summary line, the first rejected rows and the most frequent unknown ingredients.
fn print_report(report: &ImportReport) {
    println!(
        "{} rows: {} imported, {} updated, {} unchanged, {} rejected; {} SKUs created; {} without ingredient list; {} unknown ingredient names; {:.1} s",
        report.rows,
        report.imported,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        report.skus_created,
        report.without_ingredients,
        report.unknown_ingredient_names,
        report.seconds
    );
    for r in report.rejected.iter().take(20) {
        println!("  rejected line {} ({}): {}", r.line, r.external_id.as_deref().unwrap_or("-"), r.reason);
    }
    if !report.unknown_ingredients.is_empty() {
        let top: Vec<_> =
            report.unknown_ingredients.iter().take(10).map(|u| format!("{} ({})", u.name, u.products)).collect();
        println!("  most frequent unknown ingredients: {}", top.join(", "));
    }
}

pub(super) mod interactions {
    //! `dermis import interactions FILE[.csv|.csv.gz]`: each row of an
    //! `author_id,product_id,rating[,submission_time]` file (as in `../shared/data`; `product_id`
    //! is the catalog's `external_id`) becomes a Segment `track` `Product Reviewed` event
    //! (`userId` = `author_id`, `properties.product_id`, `properties.rating`, `timestamp` =
    //! `submission_time`) and goes through [`Ingestor::ingest_as`] like any source's events:
    //! the same validation, personal-data policy, event log and outbox, so servers' projections
    //! pick them up from `events.ingested`.
    //!
    //! Re-importing changes nothing: each event's `messageId` is derived from (author, product,
    //! time), and the log keeps one message per source and `messageId`; the source is the write
    //! key named [`SOURCE`], created on the first import and reused after.
    //!
    //! This module owns reading the file row by row (a malformed row is rejected with its line,
    //! the rest go on) and the report; it does not decide what the log accepts.

    use std::collections::HashSet;
    use std::io::{BufReader, Read};
    use std::path::Path;
    use std::time::Instant;

    use anyhow::Context;
    use dermis_catalog::store::{ProductFilter, list_products};
    use dermis_events::ingest::{Ingestor, MAX_BATCH};
    use dermis_events::message::parse_time;
    use dermis_events::pii::PiiPolicy;
    use dermis_server::{Config, app};
    use dermis_store::Db;
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    /// The name of the write key imported reviews are stored under.
    pub const SOURCE: &str = "dermis-import";
    /// Rows per ingestion call (at most [`MAX_BATCH`]).
    const BATCH: usize = 500;
    const _: () = assert!(BATCH <= MAX_BATCH);
    /// Ingestion calls at once.
    const IN_FLIGHT: usize = 4;
    /// Rows between two progress lines on stderr.
    const PROGRESS_EVERY: usize = 10_000;
    /// Rejected rows listed in the report.
    const LISTED: usize = 20;

    /// One row of the file, checked.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Review {
        /// The line it starts on (the header is line 1).
        pub line: u64,
        pub author_id: String,
        pub product_id: String,
        pub rating: f64,
        /// `submission_time` as RFC 3339 (UTC when the file gives no zone).
        pub time: Option<String>,
    }

    /// A row that was not sent, or that ingestion refused.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Rejected {
        pub line: u64,
        pub reason: String,
    }

    /// What an import did.
    #[derive(Debug, Clone, Default)]
    pub struct Report {
        /// Data rows in the file.
        pub rows: usize,
        /// Rows handed to ingestion.
        pub sent: usize,
        /// Rows stored in the event log now.
        pub stored: usize,
        /// Rows whose event the log held already (an earlier import, or a repeated row).
        pub duplicates: usize,
        /// How many rows were rejected, by this reader or by ingestion.
        pub rejected: usize,
        /// The first rejected rows.
        pub rejected_rows: Vec<Rejected>,
        /// Rows whose `product_id` is no product's `external_id` (they are stored all the same).
        pub unknown_product_rows: usize,
        /// How many distinct such product ids.
        pub unknown_products: usize,
        /// Distinct `external_id`s in the catalog when the import started.
        pub catalog_products: usize,
        /// The write key id the events are stored under.
        pub source: String,
        pub seconds: f64,
    }

    impl Report {
        /// Rows per second over the whole import.
        pub fn rows_per_second(&self) -> f64 {
            if self.seconds > 0.0 { self.rows as f64 / self.seconds } else { 0.0 }
        }

        fn reject(&mut self, line: u64, reason: String) {
            self.rejected += 1;
            if self.rejected_rows.len() < LISTED {
                self.rejected_rows.push(Rejected { line, reason });
            }
        }

        /// The report as JSON.
        pub fn to_json(&self) -> Value {
            json!({
                "rows": self.rows,
                "sent": self.sent,
                "stored": self.stored,
                "duplicates": self.duplicates,
                "rejected": self.rejected,
                "rejected_rows": self.rejected_rows.iter().map(|r| json!({"line": r.line, "reason": r.reason})).collect::<Vec<_>>(),
                "unknown_product_rows": self.unknown_product_rows,
                "unknown_products": self.unknown_products,
                "catalog_products": self.catalog_products,
                "source": self.source,
                "seconds": self.seconds,
                "rows_per_second": self.rows_per_second(),
            })
        }
    }

    /// Imports `file` into the configured store and prints the report (as JSON with `json`).
    pub(in crate::cli) async fn run(config: &Config, file: &Path, json: bool) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut report = Report::default();
        let reviews = read(file, &mut report)?;
        let db = app::open_store(config).await?;
        let outcome = import(&db, config, reviews, &mut report, started).await;
        db.close().await;
        outcome?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
        } else {
            print_report(&report);
        }
        Ok(())
    }

    /// Sends the reviews through ingestion in batches; `report` counts what happened.
    async fn import(
        db: &Db,
        config: &Config,
        reviews: Vec<Review>,
        report: &mut Report,
        started: Instant,
    ) -> anyhow::Result<()> {
        let known = catalog_external_ids(db).await?;
        report.catalog_products = known.len();
        let mut unknown = HashSet::new();
        for r in &reviews {
            if !known.contains(&r.product_id) {
                report.unknown_product_rows += 1;
                unknown.insert(r.product_id.as_str());
            }
        }
        report.unknown_products = unknown.len();
        drop(unknown);

        // As the server builds it, without this node's hooks: the reviews reach every
        // projection from `events.ingested`, which the outbox row written with them carries to
        // the bus once a server relays it (no node name: no server takes them as already seen).
        let pseudonyms = dermis_events::Pseudonyms::load(db).await.context("loading the pseudonym key")?;
        let ingestor = Ingestor::new(db.clone(), config.events.ingest_concurrency, pseudonyms).with_pii_policy(
            PiiPolicy::default().with_extra(&config.events.personal_traits, &config.events.personal_properties),
        );
        let source = source(&ingestor).await?;
        report.source = source.clone();

        // A few batches in flight: validation runs on every core while the log's writer
        // commits the batches before them in one transaction.
        let in_flight = IN_FLIGHT.min(config.events.ingest_concurrency.max(1));
        let total = reviews.len();
        let reviews = std::sync::Arc::new(reviews);
        let mut running = tokio::task::JoinSet::new();
        let mut starts = (0..total).step_by(BATCH);
        let mut done = 0usize;
        let mut next_progress = PROGRESS_EVERY;
        loop {
            while running.len() < in_flight {
                let Some(from) = starts.next() else { break };
                let (ingestor, source, reviews) = (ingestor.clone(), source.clone(), reviews.clone());
                running.spawn(async move {
                    let chunk = &reviews[from..(from + BATCH).min(reviews.len())];
                    let batch: Vec<Value> = chunk.iter().map(event).collect();
                    let result = ingestor.ingest_as(source, None, json!({ "batch": batch })).await;
                    (from, result)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let (from, result) = joined.context("an ingestion task failed")?;
            let chunk = &reviews[from..(from + BATCH).min(total)];
            let result = result.with_context(|| format!("ingesting the rows from line {}", chunk[0].line))?;
            report.sent += chunk.len();
            report.stored += result.accepted;
            report.duplicates += result.duplicates;
            for f in result.rejected {
                let line = chunk.get(f.index).map_or(0, |r| r.line);
                let details = if f.errors.is_empty() { String::new() } else { format!(": {}", f.errors.join("; ")) };
                report.reject(line, format!("refused by ingestion: {}{details}", f.reason));
            }
            done += chunk.len();
            if done >= next_progress {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("{done} of {total} rows sent ({:.0} rows/s)", done as f64 / secs.max(1e-9));
                next_progress += PROGRESS_EVERY;
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(())
    }

    /// The write key imports are stored under: the oldest one named [`SOURCE`], revoked or not
    /// (deduplication is per source, so it must stay the same), else a new one.
    async fn source(ingestor: &Ingestor) -> anyhow::Result<String> {
        let keys = ingestor.write_keys();
        // Listed newest first.
        let existing = keys.list().await.context("listing write keys")?.into_iter().rfind(|k| k.name == SOURCE);
        Ok(match existing {
            Some(k) => k.id,
            None => keys.create(SOURCE).await.context("creating the import's write key")?.0.id,
        })
    }

    /// Every product's `external_id`, a page at a time.
    async fn catalog_external_ids(db: &Db) -> anyhow::Result<HashSet<String>> {
        const PAGE: u32 = 1000;
        let mut ids = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = list_products(db.reader(), &ProductFilter::default(), after.as_deref(), PAGE)
                .await
                .context("listing the catalog's products")?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            let full = page.len() == PAGE as usize;
            ids.extend(page.into_iter().filter_map(|p| p.external_id));
            if !full {
                break;
            }
        }
        Ok(ids)
    }

    /// The `Product Reviewed` event of one row.
    pub fn event(r: &Review) -> Value {
        let mut e = json!({
            "type": "track",
            "event": "Product Reviewed",
            "userId": r.author_id,
            "messageId": message_id(r),
            "properties": {"product_id": r.product_id, "rating": r.rating},
            "context": {"library": {"name": "dermis-import"}},
        });
        if let Some(t) = &r.time {
            e["timestamp"] = t.clone().into();
        }
        e
    }

    /// `import-review-` and the SHA-256 of author, product and time: the same review gets the
    /// same id on every import.
    pub fn message_id(r: &Review) -> String {
        let mut h = Sha256::new();
        for part in [r.author_id.as_str(), r.product_id.as_str(), r.time.as_deref().unwrap_or("")] {
            h.update(part.as_bytes());
            h.update([0x1f]);
        }
        format!("import-review-{:x}", h.finalize())
    }

    /// `submission_time` as RFC 3339: `2023-03-21` (midnight), `2023-03-21 10:00:00` or
    /// `2023-03-21T10:00:00` (UTC), or RFC 3339 with its zone. `None` when it is none of these.
    pub fn review_time(raw: &str) -> Option<String> {
        let t = raw.trim();
        let text = if t.len() == 10 {
            format!("{t}T00:00:00Z")
        } else {
            let mut s = t.replacen(' ', "T", 1);
            let clock = s.split_once('T').map_or("", |(_, c)| c);
            let zoned = clock.ends_with(['Z', 'z']) || clock.contains(['+', '-']);
            if !zoned {
                s.push('Z');
            }
            s
        };
        parse_time(&text).map(|_| text)
    }

    /// Opens a file, decompressing it when its name ends in `.gz`.
    fn open(path: &Path) -> anyhow::Result<Box<dyn Read>> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let reader = BufReader::with_capacity(1 << 16, file);
        Ok(if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        })
    }

    /// Reads the file's rows: the good ones are returned, the others counted in `report` with
    /// their line. A missing column or an unreadable file is an error.
    pub fn read(path: &Path, report: &mut Report) -> anyhow::Result<Vec<Review>> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(open(path)?);
        let headers = reader.headers().with_context(|| format!("reading {}", path.display()))?.clone();
        let column = |name: &str| {
            headers.iter().position(|h| h.trim().trim_start_matches('\u{feff}') == name).with_context(|| {
                format!(
                    "{}: no `{name}` column (expected author_id,product_id,rating[,submission_time])",
                    path.display()
                )
            })
        };
        let (cu, ci, cr) = (column("author_id")?, column("product_id")?, column("rating")?);
        let ct = column("submission_time").ok();
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                // A broken quote or bad UTF-8 spoils one record; the reader goes on after it.
                Err(e) if !matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                    report.rows += 1;
                    let line = e.position().map_or(0, |p| p.line());
                    report.reject(line, format!("unreadable row: {e}"));
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
            report.rows += 1;
            let line = record.position().map_or(0, |p| p.line());
            match check(&record, line, (cu, ci, cr, ct)) {
                Ok(r) => rows.push(r),
                Err(reason) => report.reject(line, reason),
            }
        }
        Ok(rows)
    }

    /// One record as a review, or why not.
    fn check(
        record: &csv::StringRecord,
        line: u64,
        (cu, ci, cr, ct): (usize, usize, usize, Option<usize>),
    ) -> Result<Review, String> {
        let field = |c: usize| record.get(c).unwrap_or("").trim();
        let (author, product, rating) = (field(cu), field(ci), field(cr));
        if author.is_empty() || product.is_empty() {
            return Err("empty author_id or product_id".into());
        }
        if author.len() > 256 {
            return Err("author_id is longer than 256 characters".into());
        }
        // The `Product Reviewed` schema's range.
        let rating = rating
            .parse::<f64>()
            .ok()
            .filter(|r| (1.0..=5.0).contains(r))
            .ok_or_else(|| format!("rating {rating:?} is not a number from 1 to 5"))?;
        let time = match ct.map(field).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(review_time(t).ok_or_else(|| {
                format!("submission_time {t:?} is not a date (2023-03-21), a date and time (2023-03-21 10:00:00) or RFC 3339")
            })?),
        };
        Ok(Review { line, author_id: author.to_owned(), product_id: product.to_owned(), rating, time })
    }

    /// One summary line, then the first rejected rows.
    fn print_report(r: &Report) {
        println!(
            "{} rows: {} sent, {} stored, {} duplicates (already stored), {} rejected; {} rows about {} products not in the catalog (of {} products); {:.1} s, {:.0} rows/s",
            r.rows,
            r.sent,
            r.stored,
            r.duplicates,
            r.rejected,
            r.unknown_product_rows,
            r.unknown_products,
            r.catalog_products,
            r.seconds,
            r.rows_per_second()
        );
        for x in &r.rejected_rows {
            println!("  rejected line {}: {}", x.line, x.reason);
        }
        if r.rejected > r.rejected_rows.len() {
            println!("  ... and {} more rejected rows", r.rejected - r.rejected_rows.len());
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn submission_times_become_rfc3339() {
            assert_eq!(review_time("2023-03-21").as_deref(), Some("2023-03-21T00:00:00Z"));
            assert_eq!(review_time("2023-03-21 10:00:00").as_deref(), Some("2023-03-21T10:00:00Z"));
            assert_eq!(review_time("2019-01-02T03:04:05+02:00").as_deref(), Some("2019-01-02T03:04:05+02:00"));
            for bad in ["2023-13-01", "yesterday", "2023-03-21 25:00:00", "21/03/2023"] {
                assert_eq!(review_time(bad), None, "{bad}");
            }
        }

        #[test]
        fn the_message_id_depends_on_author_product_and_time_only() {
            let r = Review { line: 2, author_id: "a".into(), product_id: "P1".into(), rating: 5.0, time: None };
            let same = Review { line: 9, rating: 1.0, ..r.clone() };
            let later = Review { time: Some("2023-03-21T00:00:00Z".into()), ..r.clone() };
            assert_eq!(message_id(&r), message_id(&same));
            assert_ne!(message_id(&r), message_id(&later));
            assert!(message_id(&r).starts_with("import-review-") && message_id(&r).len() == 14 + 64);
        }
    }
}
