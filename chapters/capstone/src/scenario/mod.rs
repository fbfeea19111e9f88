//! The demo's measurement: the same requests through each configuration of the service, two
//! instances each, every answer checked.

pub mod loss;
pub mod plan;
pub mod table;

use std::sync::Arc;

use anyhow::Context;
use capstone::deployment::{self, Running};
use capstone::{Caching, Deployment, Settings};
use sessions::Accounts;
use shared::Stage;
use shared_http::{Answer, Load, LoadStats, Request};

use plan::{Mix, Tally};

/// What one configuration measured.
pub struct Measured {
    /// The configuration.
    pub caching: Caching,
    /// What the clients saw, both instances together.
    pub load: LoadStats,
    /// What the checks counted.
    pub tally: Arc<Tally>,
    /// Database queries during the run.
    pub queries: u64,
    /// Redis commands during the run, whoever sent them.
    pub commands: u64,
    /// Calls to the third-party service during the run.
    pub upstream_calls: u64,
    /// Reads answered by each layer, products and pages together: L1, L2, L3, the database.
    pub layers: [u64; 4],
    /// Page bytes rendered, and as stored (compressed or not).
    pub page_bytes: (u64, u64),
    /// Pages a prefetch put in L1, the reads they answered, and the pages it rendered.
    pub prefetch: (u64, u64, u64),
    /// In the configuration with every layer: what the reads found once Redis lost the pages.
    pub after_loss: Option<loss::AfterLoss>,
}

/// How the demo runs each configuration.
pub struct Run<'a> {
    /// The stage.
    pub stage: &'a Stage,
    /// The accounts.
    pub accounts: Accounts,
    /// The requests.
    pub mix: Mix,
    /// Requests in flight at once, over both instances.
    pub concurrency: usize,
    /// Each client's limit, requests a second.
    pub rate_limit: u32,
    /// How long the analytics report takes.
    pub report_cost: std::time::Duration,
    /// Pages warmed at start.
    pub warm: u32,
    /// Progress bars.
    pub progress: bool,
}

impl Run<'_> {
    /// Every configuration in turn, each from the same rows and empty caches; and the
    /// configurations measured a second time because Redis went away during the first.
    pub async fn all(&self) -> anyhow::Result<(Vec<Measured>, Vec<&'static str>)> {
        let requests = plan::requests(&self.mix);
        let mut measured = Vec::new();
        let mut again = Vec::new();
        let (conn, url) = (self.stage.conn(), self.stage.redis_url());
        for caching in Caching::ALL {
            let requests = &requests;
            let (one, repeated) =
                shared::comeback::again_after_outage(&conn, &url, caching.label(), || async move {
                    shared::db::items::reset(self.stage.db()).await?;
                    capstone::tasks::delete_all(self.stage.db()).await?;
                    capstone::news::reset(self.stage.db(), self.mix.articles).await?;
                    self.one(caching, requests.clone()).await
                })
                .await?;
            if repeated {
                again.push(caching.label());
            }
            measured.push(one);
        }
        Ok((measured, again))
    }

    async fn one(
        &self,
        caching: Caching,
        requests: Vec<shared_http::Request>,
    ) -> anyhow::Result<Measured> {
        let mut settings = Settings::new(caching);
        settings.rate_limit = self.rate_limit;
        settings.report_cost = self.report_cost;
        // The users' keys, and the greedy client's (u0).
        settings.api_keys = self.mix.users + 1;
        let shared = deployment::shared_parts(self.stage, self.accounts.clone(), caching.slug(), 2);
        let deployment = Deployment { settings, shared };
        let running = deployment.start(self.stage).await?;
        if caching.redis() {
            // The dashboard's report starts at once, in the background.
            running.services[0].analytics.warm().await;
            // Warmed once, through the first instance: Redis and its disk have them.
            let keys = capstone::pages::first_pages(self.warm);
            running.services[0]
                .pages
                .warm(&keys)
                .await
                .context("warming failed")?;
        }
        let tally = Arc::new(Tally::new(self.mix.items, self.mix.articles));
        let db = self.stage.db();
        let mut conn = self.stage.conn();
        // The requests' queries and the relays' polls: both are load on the database.
        let all_queries = || db.queries() + running.relay_queries();
        let (queries, commands) = (all_queries(), conn.commands_processed().await?);
        let upstream_calls = running.third_party.calls.get();
        let load = self.drive(&running, caching, requests, &tally).await;
        let queries = all_queries() - queries;
        let upstream_calls = running.third_party.calls.get() - upstream_calls;
        let after = conn.commands_processed().await?;
        // A server that restarted during the run counts from zero again: the run is measured
        // again once it is back, as when a command failed.
        let commands = after.checked_sub(commands).ok_or_else(|| {
            let reset = std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "Redis restarted during the run (its command count went back)",
            );
            redis::RedisError::from(reset)
        })?;
        // Once measured: what the disk layer does when Redis loses the pages.
        let after_loss = match caching {
            Caching::Layered => Some(loss::measure(&deployment, &running).await?),
            _ => None,
        };
        let measured = Measured {
            caching,
            load,
            tally,
            queries,
            commands,
            upstream_calls,
            layers: layers(&running),
            page_bytes: sum(&running, |s| {
                (
                    s.pages.stats.rendered_bytes.get(),
                    s.pages.stats.stored_bytes.get(),
                )
            }),
            prefetch: running.services.iter().fold((0, 0, 0), |(a, b, c), s| {
                let stats = &s.pages.stats;
                (
                    a + stats.prefetches.get(),
                    b + stats.prefetch_hits.get(),
                    c + stats.prefetch_renders.get(),
                )
            }),
            after_loss,
        };
        running.stop().await?;
        Ok(measured)
    }

    /// Half the requests to each instance, at the same time, as a round-robin balancer would.
    async fn drive(
        &self,
        running: &Running,
        caching: Caching,
        requests: Vec<shared_http::Request>,
        tally: &Arc<Tally>,
    ) -> LoadStats {
        let halves: [Vec<_>; 2] = [
            requests.iter().step_by(2).cloned().collect(),
            requests.iter().skip(1).step_by(2).cloned().collect(),
        ];
        let [first, second] = halves;
        let load = |progress| Load {
            concurrency: (self.concurrency / 2).max(1),
            rate: None,
            keep_etags: caching == Caching::Conditional,
            gzip: false,
            progress,
        };
        let (first_load, second_load) = (load(self.progress), load(false));
        let (first_url, second_url) = (running.url(0, ""), running.url(1, ""));
        let (one, two) = (tally.clone(), tally.clone());
        let (a, b) = tokio::join!(
            first_load.drive(
                &first_url,
                first,
                caching.label(),
                move |r: &Request, a: &Answer| one.check(r, a)
            ),
            second_load.drive(
                &second_url,
                second,
                caching.label(),
                move |r: &Request, a: &Answer| two.check(r, a)
            ),
        );
        table::combined(a, b)
    }
}

/// Reads answered by each layer over both instances, products and pages together.
fn layers(running: &Running) -> [u64; 4] {
    let mut layers = [0; 4];
    for service in &running.services {
        let products = service.products.stats();
        let pages = &service.pages.stats;
        layers[0] += products.l1_hits + pages.l1_hits.get();
        layers[1] += products.l2_hits + pages.l2_hits.get();
        layers[2] += pages.l3_hits.get();
        layers[3] += products.loads + pages.renders.get();
    }
    layers
}

fn sum(running: &Running, of: impl Fn(&capstone::Service) -> (u64, u64)) -> (u64, u64) {
    running.services.iter().fold((0, 0), |(a, b), service| {
        let (x, y) = of(service);
        (a + x, b + y)
    })
}
