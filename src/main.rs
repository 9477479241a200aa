//! The `dermis` command: serve the API, load the demo, issue tokens, manage keys, import the
//! catalog. This file parses the arguments, starts the log and dispatches; the commands are in
//! [`cli`].

mod cli;

use clap::Parser;

/// mimalloc instead of the system allocator: a request parses, copies and frees many small JSON
/// values on one thread while the event log's writer frees others; with glibc's malloc the
/// allocator's locking and consolidation took about a sixth of the server's time under batched
/// ingestion (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dermis_core::process::no_transparent_huge_pages();
    let cli = cli::Cli::parse();
    let config = cli.load_config()?;
    dermis_server::init_tracing(&config.log);
    cli::run(cli, config).await
}
