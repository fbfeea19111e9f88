//! The five strategies behind one type, for everything that runs them side by side.
//!
//! The demo runs each strategy through the same scenarios, the outage tests put each through the
//! same outage, and the benches time each one's hit path. [`Kind`] names a strategy and
//! [`AnyStrategy`] is any one of them, built for one application [`Instance`].

use std::sync::Arc;

use shared::Instance;
use shared::worker::Panicked;

use crate::settings::Settings;
use crate::source::Source;
use crate::strategy::{Error, Stats, Strategy};
use crate::{LockedLoader, SingleFlight, StaleWhileRevalidate, Unprotected, XFetch};

shared::variants! {
    /// Which strategy, in the order of the chapter.
    pub enum Kind {
        /// Plain cache-aside: the baseline that stampedes.
        Unprotected = ("unprotected", "no protection"),
        /// In-process single flight.
        SingleFlight = ("single-flight", "single flight"),
        /// The distributed lock with woken waiters.
        Lock = ("lock", "distributed lock"),
        /// Probabilistic early recomputation.
        XFetch = ("xfetch", "XFetch"),
        /// Stale-while-revalidate.
        Stale = ("stale", "stale-while-revalidate"),
    }
}

/// One application instance running one of the strategies.
pub enum AnyStrategy<S: Source> {
    /// See [`Unprotected`].
    Unprotected(Unprotected<S>),
    /// See [`SingleFlight`].
    SingleFlight(SingleFlight<S>),
    /// See [`LockedLoader`].
    Lock(LockedLoader<S>),
    /// See [`XFetch`].
    XFetch(XFetch<S>),
    /// See [`StaleWhileRevalidate`].
    Stale(StaleWhileRevalidate<S>),
}

impl<S: Source> AnyStrategy<S> {
    /// The strategy `kind` on `instance`'s connections and namespace, loading from `source`.
    pub async fn build(
        kind: Kind,
        instance: &Instance,
        source: Arc<S>,
        settings: Settings,
    ) -> Self {
        let (conn, namespace) = (instance.conn.clone(), instance.namespace.clone());
        match kind {
            Kind::Unprotected => {
                AnyStrategy::Unprotected(Unprotected::new(conn, namespace, source, settings))
            }
            Kind::SingleFlight => {
                AnyStrategy::SingleFlight(SingleFlight::new(conn, namespace, source, settings))
            }
            Kind::Lock => {
                let client = instance.client.clone();
                let lock = LockedLoader::new(conn, client, namespace, source, settings).await;
                AnyStrategy::Lock(lock)
            }
            Kind::XFetch => AnyStrategy::XFetch(XFetch::new(conn, namespace, source, settings)),
            Kind::Stale => {
                AnyStrategy::Stale(StaleWhileRevalidate::new(conn, namespace, source, settings))
            }
        }
    }

    /// Waits for the strategy's background work (stale-while-revalidate's refreshes), so that
    /// it is done and counted.
    pub async fn settle(&self) -> Result<(), Panicked> {
        match self {
            AnyStrategy::Stale(s) => s.finish_refreshes().await,
            _ => Ok(()),
        }
    }
}

impl<S: Source> Strategy for AnyStrategy<S> {
    type Value = S::Value;

    async fn get(&self, key: &str) -> Result<S::Value, Error> {
        match self {
            AnyStrategy::Unprotected(s) => s.get(key).await,
            AnyStrategy::SingleFlight(s) => s.get(key).await,
            AnyStrategy::Lock(s) => s.get(key).await,
            AnyStrategy::XFetch(s) => s.get(key).await,
            AnyStrategy::Stale(s) => s.get(key).await,
        }
    }

    fn stats(&self) -> Stats {
        match self {
            AnyStrategy::Unprotected(s) => s.stats(),
            AnyStrategy::SingleFlight(s) => s.stats(),
            AnyStrategy::Lock(s) => s.stats(),
            AnyStrategy::XFetch(s) => s.stats(),
            AnyStrategy::Stale(s) => s.stats(),
        }
    }
}
