//! `cargo run -p http-caching --example serve`: the shop's API behind the response cache, served
//! on loopback until Ctrl-C, for `curl` and a browser.
//!
//! ```sh
//! curl -i http://127.0.0.1:PORT/products/7                       # a miss, then hits with Age
//! curl -i -H 'If-None-Match: "1"' http://127.0.0.1:PORT/products/7  # a 304
//! curl -i -H 'Authorization: Bearer u3' http://127.0.0.1:PORT/me/saved
//! curl -i -X PUT -H 'Content-Type: application/json' -d '{"price_cents": 999}' \
//!     http://127.0.0.1:PORT/products/7/price
//! ```
//!
//! `--caching none` (or `source`, `conditional`) serves another of the demo's configurations:
//! how the course cross-checks its load driver against an established load tool.

use std::process::ExitCode;

use clap::Parser;
use http_caching::{Caching, Catalogue, app};
use shared::cli::Backends;
use shared::{Cleanup, DbOptions};
use shared_http::Served;

/// The shop's API on loopback until Ctrl-C.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// The cache in front: none, source, response or conditional.
    #[arg(long, default_value = "conditional", value_parser = |slug: &str| {
        Caching::from_slug(slug).ok_or("none, source, response or conditional")
    })]
    caching: Caching,

    /// The port to listen on (0: any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let options = DbOptions {
        products: 1,
        users: 1,
        ..DbOptions::default()
    };
    let stage = cli
        .backends
        .stage("http-caching", options, &cleanup)
        .await?;
    let catalogue = Catalogue::create(stage.db().clone(), 500, 20).await?;
    let (router, _caches) = app(
        catalogue,
        cli.caching,
        stage.conn(),
        stage.namespace().clone(),
    );
    let served = Served::start_on("the API", router, cli.port).await?;
    println!(
        "The shop's API ({}) on {}; Ctrl-C to stop.",
        cli.caching,
        served.url("")
    );
    tokio::signal::ctrl_c().await?;
    served.stop().await?;
    Ok(())
}
