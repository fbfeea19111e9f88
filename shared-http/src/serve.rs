//! An axum app served on loopback until stopped.
//!
//! Demos and tests run the application for real, a server on a TCP port driven by a real client,
//! so that what is measured includes what HTTP costs (parsing, headers, compression) and what is
//! checked is what a client would see. The port is the kernel's choice (`127.0.0.1:0`), so runs and
//! tests in parallel never collide.

use std::net::SocketAddr;

use axum::Router;
use shared::worker::{Panicked, Worker};

/// An app listening on a loopback port, served by a background task.
pub struct Served {
    addr: SocketAddr,
    worker: Worker,
}

impl Served {
    /// Binds a free loopback port and serves `app` on it. `name` names the task in a panic.
    pub async fn start(name: &str, app: Router) -> std::io::Result<Served> {
        Self::start_on(name, app, 0).await
    }

    /// Serves `app` on loopback port `port` (0: a free one).
    pub async fn start_on(name: &str, app: Router, port: u16) -> std::io::Result<Served> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let worker = Worker::spawn(name, move |mut stop| async move {
            // Accept errors (out of file descriptors, say) are retried inside `serve`; it returns
            // only once the shutdown signal has fired and the open connections have closed.
            // With the peer's address as `ConnectInfo`, for what keys on the client (a rate limit).
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.requested().await })
                .await;
        });
        Ok(Served { addr, worker })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the requests in flight finish, and waits for the task.
    pub async fn stop(self) -> Result<(), Panicked> {
        self.worker.stop().await
    }
}
