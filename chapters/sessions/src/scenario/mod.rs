//! The demo's measurement: users log in, browse and log out across three instances while an
//! attacker replays the cookies it stole or planted, once per configuration.
//!
//! Each user, on its own task, against instances chosen at random as a round-robin balancer
//! would spread them:
//!
//! 1. the attacker opens an anonymous session (a cart) and plants its ID in the victim's browser,
//!    and tries the victim's name with a wrong password;
//! 2. the victim logs in, bringing the planted cookie, and the attacker tries the planted ID on
//!    every instance (a success is a fixation);
//! 3. the victim browses, one request every `pace`, and the attacker steals the cookie;
//! 4. odd users log out, and the attacker replays the stolen cookie for `replay` afterwards; even
//!    users never come back, and the attacker keeps their stolen session busy until past the
//!    absolute timeout.
//!
//! A request counts against a rule only if it was *sent* after the event that should have ended
//! the session (the logout's answer, the login's answer plus the absolute timeout): whatever the
//! server's clock says, it must refuse it.

pub mod table;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Method, StatusCode};
use serde::Serialize;
use sessions::accounts::{demo_name, demo_password};
use sessions::api::{Login, Me};
use sessions::app::Running;
use sessions::client::{Answer, send};
use sessions::{Deployment, Sessions};
use shared::metrics::Latency;

/// What every configuration runs.
#[derive(Clone, Copy)]
pub struct Settings {
    /// Users, each with an attacker.
    pub users: i64,
    /// Requests each victim sends while browsing.
    pub browse: u32,
    /// The time between two of a victim's requests.
    pub pace: Duration,
    /// How long the attacker replays a cookie after its logout.
    pub replay: Duration,
    /// Seed of the instances chosen.
    pub seed: u64,
}

/// What one configuration measured.
pub struct Measured {
    /// The configuration.
    pub sessions: Sessions,
    /// What the users and attackers saw.
    pub tally: Tally,
    /// Redis reads and writes the instances' stores sent.
    pub redis: (u64, u64),
}

/// Counts of one user's run, added up over all of them.
#[derive(Default, Serialize)]
pub struct Tally {
    /// Requests sent.
    pub requests: u64,
    /// Logins with a wrong password that got in.
    pub wrong_passwords_accepted: u64,
    /// Users whose planted ID was signed in by their login.
    pub fixations: u64,
    /// Replays of a logged-out cookie that an instance accepted.
    pub after_logout: u64,
    /// The longest time between a logout's answer and a replay accepted after it.
    pub after_logout_for: Duration,
    /// Requests accepted after the login's answer plus the absolute timeout.
    pub past_absolute: u64,
    /// Browsing requests of signed-in victims that an instance refused before their session's
    /// absolute timeout.
    pub victims_refused: u64,
    /// Transport errors and 5xx answers.
    pub errors: u64,
    /// The victims' `GET /me` while browsing.
    #[serde(skip)]
    pub browsing: Latency,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.wrong_passwords_accepted += other.wrong_passwords_accepted;
        self.fixations += other.fixations;
        self.after_logout += other.after_logout;
        self.after_logout_for = self.after_logout_for.max(other.after_logout_for);
        self.past_absolute += other.past_absolute;
        self.victims_refused += other.victims_refused;
        self.errors += other.errors;
        self.browsing.merge(&other.browsing);
    }
}

/// Runs the users against each configuration in turn (each on three fresh instances, under a
/// namespace of its own).
pub async fn run(
    deployment: &Deployment,
    settings: Settings,
    progress: bool,
) -> anyhow::Result<Vec<Measured>> {
    let mut measured = Vec::new();
    for sessions in Sessions::ALL {
        let deployment = Deployment {
            sessions,
            namespace: deployment.namespace.child(sessions.slug()),
            ..deployment.clone()
        };
        let running = std::sync::Arc::new(deployment.start(3).await?);
        let client = Client::new();
        let mut users = tokio::task::JoinSet::new();
        for user in 1..=settings.users {
            let (running, client) = (running.clone(), client.clone());
            let absolute = deployment.timeouts.absolute;
            users.spawn(async move { one_user(user, &running, &client, settings, absolute).await });
        }
        let bar = shared::workload::progress_bar(sessions.label(), settings.users as u64, progress);
        let mut tally = Tally::default();
        while let Some(done) = users.join_next().await {
            tally.add(done?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let running = std::sync::Arc::into_inner(running).expect("every user is done");
        let redis = running.commands();
        running.stop().await?;
        measured.push(Measured {
            sessions,
            tally,
            redis,
        });
    }
    Ok(measured)
}

/// One user and their attacker (see the module's docs).
async fn one_user(
    user: i64,
    running: &Running,
    client: &Client,
    settings: Settings,
    absolute: Duration,
) -> Tally {
    let mut visit = Visit {
        user,
        running,
        client,
        rng: StdRng::seed_from_u64(settings.seed ^ user as u64),
        tally: Tally::default(),
    };

    // 1. A planted anonymous session, and a guessed password.
    let at = visit.any();
    let planted = visit
        .send(at, Method::POST, &format!("/cart/{user}"), None, None)
        .await
        .and_then(|a| a.new_id().map(str::to_owned))
        .unwrap_or_default();
    let guess = Login {
        name: demo_name(user),
        password: "password123".into(),
    };
    let at = visit.any();
    let guessed = visit
        .send(at, Method::POST, "/login", None, Some(&guess))
        .await;
    if guessed.is_some_and(|a| a.status == StatusCode::OK) {
        visit.tally.wrong_passwords_accepted += 1;
    }

    // 2. The victim's login with the planted cookie, and the attacker's try of it.
    let form = Login {
        name: demo_name(user),
        password: demo_password(user),
    };
    let at = visit.any();
    let login_sent = Instant::now();
    let login = visit
        .send(at, Method::POST, "/login", Some(&planted), Some(&form))
        .await
        .filter(|a| a.status == StatusCode::OK);
    let logged_in = Instant::now();
    // The source's login may set the cookie it was brought again, or set none.
    let Some(stolen) = login.map(|a| a.new_id().unwrap_or(&planted).to_owned()) else {
        return visit.tally;
    };
    let mut fixed = false;
    for instance in 0..running.instances.len() {
        fixed |= visit.me(instance, &planted).await == Some(true);
    }
    visit.tally.fixations += u64::from(fixed);

    // 3. Browsing, with the cookie the attacker steals.
    for _ in 0..settings.browse {
        tokio::time::sleep(settings.pace).await;
        let started = Instant::now();
        let at = visit.any();
        let accepted = visit.me(at, &stolen).await;
        if accepted.is_some() {
            visit.tally.browsing.record(started.elapsed());
        }
        // Refused as it should be once the absolute timeout has passed (a slow machine can
        // browse that long): only an answer that came back before then counts against the rules.
        if accepted == Some(false) && login_sent.elapsed() < absolute {
            visit.tally.victims_refused += 1;
        }
    }

    // 4. A logout and replays, or a stolen session kept busy past the absolute timeout.
    if user % 2 == 1 {
        let at = visit.any();
        visit
            .send(at, Method::POST, "/logout", Some(&stolen), None)
            .await;
        let logged_out = Instant::now();
        while logged_out.elapsed() < settings.replay {
            tokio::time::sleep(settings.pace).await;
            let sent = logged_out.elapsed();
            let at = visit.any();
            if visit.me(at, &stolen).await == Some(true) {
                visit.tally.after_logout += 1;
                visit.tally.after_logout_for = visit.tally.after_logout_for.max(sent);
            }
        }
    } else {
        while logged_in.elapsed() < absolute + settings.replay {
            tokio::time::sleep(settings.pace).await;
            let past_limit = logged_in.elapsed() >= absolute;
            let at = visit.any();
            if visit.me(at, &stolen).await == Some(true) && past_limit {
                visit.tally.past_absolute += 1;
            }
        }
    }
    visit.tally
}

/// One user's requests (the victim's and the attacker's), and what they counted.
struct Visit<'a> {
    user: i64,
    running: &'a Running,
    client: &'a Client,
    rng: StdRng,
    tally: Tally,
}

impl Visit<'_> {
    /// An instance, as the balancer picks it.
    fn any(&mut self) -> usize {
        self.rng.random_range(0..self.running.instances.len())
    }

    /// Sends a request to `instance`; its answer, or `None` (counted) for a 5xx or a transport
    /// error.
    async fn send(
        &mut self,
        instance: usize,
        method: Method,
        path: &str,
        id: Option<&str>,
        form: Option<&Login>,
    ) -> Option<Answer> {
        self.tally.requests += 1;
        let url = self.running.url(instance, path);
        match send(self.client, method, &url, id, form).await {
            Ok(answer) if !answer.status.is_server_error() => Some(answer),
            _ => {
                self.tally.errors += 1;
                None
            }
        }
    }

    /// `GET /me` with the session `id` on `instance`: whether it was let in as this user, or
    /// `None` if it failed.
    async fn me(&mut self, instance: usize, id: &str) -> Option<bool> {
        let answer = self
            .send(instance, Method::GET, "/me", Some(id), None)
            .await?;
        Some(
            answer.status == StatusCode::OK
                && serde_json::from_str::<Me>(&answer.body).is_ok_and(|me| me.user == self.user),
        )
    }
}
