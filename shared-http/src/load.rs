//! The load driver: many users' requests over real HTTP, each answer timed, counted and checked.
//!
//! A cache in front of an HTTP API can be fast because it is right, or fast because it answers
//! everybody with the first response it saw. Throughput alone cannot tell the two apart, so the
//! driver hands every body it receives to a check the demo supplies (is this page for this user,
//! this category, this page number?) and counts the *wrong responses* beside the requests per
//! second.
//!
//! The clients behave like browsers that keep what they were sent: with `keep_etags` on, each
//! user remembers the last `ETag` and body of every URL and sends `If-None-Match` next time; a
//! `304 Not Modified` is then answered from that memory (and checked like any other body). With
//! `gzip` on, they ask for `Accept-Encoding: gzip`; the bytes counted are the bytes on the wire,
//! and the body checked is the one decompressed.
//!
//! Requests go out through [`shared::workload::fire`]: in a closed loop (`concurrency` tasks, each
//! sending its next request when the last one is answered) or at a fixed rate. A transport error or a `5xx` is a
//! failure, counted and not timed; every other status is an answer.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, Method, StatusCode, header};
use bytes::Bytes;
use serde::Serialize;
use shared::metrics::{Counter, Latency, LatencySummary};
use shared::workload::Arrivals;
use shared::workload::fire::fire;

/// One request a client makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Who sends it: `Authorization: Bearer u<user>`.
    pub user: u32,
    /// `GET`, `PUT`, ...
    pub method: Method,
    /// The path and query, e.g. `/products?category=tea&page=2`.
    pub path: String,
    /// A JSON body, for a write.
    pub json: Option<String>,
}

impl Request {
    /// A `GET` of `path` by `user`.
    pub fn get(user: u32, path: impl Into<String>) -> Self {
        Request {
            user,
            method: Method::GET,
            path: path.into(),
            json: None,
        }
    }

    /// The bearer token of `user`, as the course's toy API reads it. (A real token comes from a
    /// login; the sessions lesson does that part.)
    pub fn token(user: u32) -> String {
        format!("Bearer u{user}")
    }
}

/// What the check is shown of one answer.
#[derive(Debug)]
pub struct Answer<'a> {
    /// The status as sent (a `304` too, though the body is the one the client kept).
    pub status: StatusCode,
    /// The response's headers.
    pub headers: &'a HeaderMap,
    /// The body, decompressed; for a `304`, the body the client kept with the ETag.
    pub body: &'a [u8],
    /// When the request was sent: a check can tell what the server could have known then (a
    /// write answered before it), and time the answer by class.
    pub sent: Instant,
}

/// How the driver sends.
#[derive(Clone, Debug)]
pub struct Load {
    /// How many requests are in flight at once (a closed loop), unless `rate` is set.
    pub concurrency: usize,
    /// Send at this many requests per second whatever the answers take (an open loop), as
    /// independent users do: a slow server builds a queue instead of slowing the traffic.
    pub rate: Option<f64>,
    /// Clients keep `ETag`s and send `If-None-Match`.
    pub keep_etags: bool,
    /// Clients send `Accept-Encoding: gzip`.
    pub gzip: bool,
    /// Draw a progress bar.
    pub progress: bool,
}

/// What one run of the driver measured.
#[derive(Clone, Serialize)]
pub struct LoadStats {
    /// Requests sent.
    pub requests: u64,
    /// Requests per second over the whole run.
    pub requests_per_sec: f64,
    /// Latency of the requests answered (failures are not timed).
    pub latency: LatencySummary,
    /// How many answers had each status, e.g. `{200: 9000, 304: 800, 404: 200}`.
    pub statuses: BTreeMap<u16, u64>,
    /// Bytes of response bodies on the wire (compressed when they were).
    pub body_bytes: u64,
    /// Answers the check refused: a body for another user or another query.
    pub wrong: u64,
    /// Why the first of them was wrong.
    pub first_wrong: Option<String>,
    /// Transport errors and `5xx` answers.
    pub failures: u64,
    /// The first failure's text.
    pub first_failure: Option<String>,
    /// The latency histogram, for a chart.
    #[serde(skip)]
    pub histogram: Latency,
}

impl LoadStats {
    /// How many answers had `status`.
    pub fn count(&self, status: StatusCode) -> u64 {
        self.statuses.get(&status.as_u16()).copied().unwrap_or(0)
    }
}

/// What a user's client kept of an URL: its ETag and the body that came with it.
type Kept = HashMap<(u32, String), (String, Bytes)>;

/// One run of the driver: the state its sending tasks share.
struct Run<C> {
    client: reqwest::Client,
    base: String,
    load: Load,
    plan: Vec<Request>,
    check: C,
    kept: Mutex<Kept>,
    statuses: Mutex<BTreeMap<u16, u64>>,
    body_bytes: Counter,
    wrong: Counter,
    first_wrong: Mutex<Option<String>>,
}

impl Load {
    /// Sends every request of `plan` to the server at `base` (`http://127.0.0.1:PORT`), in order
    /// over `concurrency` tasks, and checks every answer with `check`, which returns why a body is
    /// wrong for its request.
    pub async fn drive<C>(&self, base: &str, plan: Vec<Request>, label: &str, check: C) -> LoadStats
    where
        C: Fn(&Request, &Answer) -> Result<(), String> + Send + Sync + 'static,
    {
        let client = reqwest::Client::builder()
            // Enough idle connections for every task, so none is opened twice.
            .pool_max_idle_per_host(self.concurrency)
            .build()
            .expect("a client without TLS always builds");
        let run = Arc::new(Run {
            client,
            base: base.trim_end_matches('/').to_string(),
            load: self.clone(),
            plan,
            check,
            kept: Mutex::default(),
            statuses: Mutex::default(),
            body_bytes: Counter::default(),
            wrong: Counter::default(),
            first_wrong: Mutex::default(),
        });
        let requests = run.plan.len() as u64;
        let arrivals = match self.rate {
            Some(per_sec) => Arrivals::Rate { per_sec },
            None => Arrivals::Closed {
                concurrency: self.concurrency,
            },
        };
        let sender = run.clone();
        let fired = fire(arrivals, requests, label, self.progress, move |i| {
            let run = sender.clone();
            async move { run.send(i as usize).await }
        })
        .await;
        let statuses = run.statuses.lock().unwrap().clone();
        let first_wrong = run.first_wrong.lock().unwrap().clone();
        LoadStats {
            requests,
            requests_per_sec: fired.requests_per_sec,
            latency: fired.latency,
            statuses,
            body_bytes: run.body_bytes.get(),
            wrong: run.wrong.get(),
            first_wrong,
            failures: fired.failures,
            first_failure: fired.first_failure,
            histogram: fired.histogram,
        }
    }
}

impl<C> Run<C>
where
    C: Fn(&Request, &Answer) -> Result<(), String>,
{
    /// Sends request `i` of the plan, and counts and checks its answer.
    async fn send(&self, i: usize) -> Result<(), String> {
        let request = &self.plan[i];
        let memo = (request.user, request.path.clone());
        let mut sent = self
            .client
            .request(
                request.method.clone(),
                format!("{}{}", self.base, request.path),
            )
            .header(header::AUTHORIZATION, Request::token(request.user));
        if let Some(json) = &request.json {
            sent = sent
                .header(header::CONTENT_TYPE, "application/json")
                .body(json.clone());
        }
        if self.load.gzip {
            sent = sent.header(header::ACCEPT_ENCODING, "gzip");
        }
        let kept = if self.load.keep_etags && request.method == Method::GET {
            self.kept.lock().unwrap().get(&memo).cloned()
        } else {
            None
        };
        if let Some((etag, _)) = &kept {
            sent = sent.header(header::IF_NONE_MATCH, etag);
        }
        let sent_at = Instant::now();
        let response = sent.send().await.map_err(|e| format!("{request:?}: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let wire = response
            .bytes()
            .await
            .map_err(|e| format!("{request:?}: reading the body: {e}"))?;
        if status.is_server_error() {
            return Err(format!("{} {}: {status}", request.method, request.path));
        }
        *self
            .statuses
            .lock()
            .unwrap()
            .entry(status.as_u16())
            .or_default() += 1;
        self.body_bytes.add(wire.len() as u64);
        let body = match (status, kept) {
            (StatusCode::NOT_MODIFIED, Some((_, body))) => body,
            (StatusCode::NOT_MODIFIED, None) => {
                self.wrong(format!(
                    "{} {}: a 304 to a request without If-None-Match",
                    request.method, request.path
                ));
                return Ok(());
            }
            _ => decoded(&headers, wire).map_err(|e| format!("{request:?}: {e}"))?,
        };
        let etag = headers.get(header::ETAG).and_then(|v| v.to_str().ok());
        if let (true, StatusCode::OK, Some(etag)) = (self.load.keep_etags, status, etag) {
            self.kept
                .lock()
                .unwrap()
                .insert(memo, (etag.to_string(), body.clone()));
        }
        let answer = Answer {
            status,
            headers: &headers,
            body: &body,
            sent: sent_at,
        };
        if let Err(why) = (self.check)(request, &answer) {
            self.wrong(format!(
                "{} {} as user {}: {why}",
                request.method, request.path, request.user
            ));
        }
        Ok(())
    }

    fn wrong(&self, why: String) {
        self.wrong.inc();
        self.first_wrong.lock().unwrap().get_or_insert(why);
    }
}

/// The body as sent before compression.
fn decoded(headers: &HeaderMap, wire: Bytes) -> std::io::Result<Bytes> {
    match headers.get(header::CONTENT_ENCODING) {
        Some(coding) if coding == "gzip" => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut plain)?;
            Ok(plain.into())
        }
        _ => Ok(wire),
    }
}
