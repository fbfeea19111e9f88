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
    /// Browsing requests of signed-in victims that an instance refused.
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
    let mut tally = Tally::default();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ user as u64);
    let at = |rng: &mut StdRng| rng.random_range(0..3usize);
    let call = async |tally: &mut Tally,
                      instance: usize,
                      method: Method,
                      path: &str,
                      id: Option<&str>,
                      form: Option<&Login>|
           -> Option<Answer> {
        tally.requests += 1;
        match send(client, method, &running.url(instance, path), id, form).await {
            Ok(answer) if !answer.status.is_server_error() => Some(answer),
            _ => {
                tally.errors += 1;
                None
            }
        }
    };
    let accepted = |answer: &Option<Answer>| {
        answer.as_ref().is_some_and(|a| {
            a.status == StatusCode::OK
                && serde_json::from_str::<Me>(&a.body).is_ok_and(|me| me.user == user)
        })
    };

    // 1. A planted anonymous session, and a guessed password.
    let cart = format!("/cart/{user}");
    let planted = call(&mut tally, at(&mut rng), Method::POST, &cart, None, None)
        .await
        .and_then(|a| a.new_id().map(str::to_owned))
        .unwrap_or_default();
    let guess = Login {
        name: demo_name(user),
        password: "password123".into(),
    };
    let guessed = call(
        &mut tally,
        at(&mut rng),
        Method::POST,
        "/login",
        None,
        Some(&guess),
    )
    .await;
    if guessed.is_some_and(|a| a.status == StatusCode::OK) {
        tally.wrong_passwords_accepted += 1;
    }

    // 2. The victim's login with the planted cookie, and the attacker's try of it.
    let form = Login {
        name: demo_name(user),
        password: demo_password(user),
    };
    let login = call(
        &mut tally,
        at(&mut rng),
        Method::POST,
        "/login",
        Some(&planted),
        Some(&form),
    )
    .await;
    let logged_in = Instant::now();
    let Some(stolen) = login
        .as_ref()
        .and_then(|a| a.new_id())
        .map(str::to_owned)
        .or_else(|| {
            // The source's login sets the cookie it was brought again; no cookie at all is a failure.
            login
                .as_ref()
                .filter(|a| a.status == StatusCode::OK)
                .map(|_| planted.clone())
        })
    else {
        return tally;
    };
    let mut fixed = false;
    for instance in 0..3 {
        fixed |= accepted(
            &call(
                &mut tally,
                instance,
                Method::GET,
                "/me",
                Some(&planted),
                None,
            )
            .await,
        );
    }
    tally.fixations += u64::from(fixed);

    // 3. Browsing, with the cookie the attacker steals.
    for _ in 0..settings.browse {
        tokio::time::sleep(settings.pace).await;
        let started = Instant::now();
        let answer = call(
            &mut tally,
            at(&mut rng),
            Method::GET,
            "/me",
            Some(&stolen),
            None,
        )
        .await;
        if answer.is_some() {
            tally.browsing.record(started.elapsed());
        }
        if !accepted(&answer) {
            tally.victims_refused += 1;
        }
    }

    // 4. A logout and replays, or a stolen session kept busy past the absolute timeout.
    if user % 2 == 1 {
        call(
            &mut tally,
            at(&mut rng),
            Method::POST,
            "/logout",
            Some(&stolen),
            None,
        )
        .await;
        let logged_out = Instant::now();
        while logged_out.elapsed() < settings.replay {
            tokio::time::sleep(settings.pace).await;
            let sent = logged_out.elapsed();
            if accepted(
                &call(
                    &mut tally,
                    at(&mut rng),
                    Method::GET,
                    "/me",
                    Some(&stolen),
                    None,
                )
                .await,
            ) {
                tally.after_logout += 1;
                tally.after_logout_for = tally.after_logout_for.max(sent);
            }
        }
    } else {
        let until = absolute + settings.replay;
        while logged_in.elapsed() < until {
            tokio::time::sleep(settings.pace).await;
            let past_limit = logged_in.elapsed() >= absolute;
            if accepted(
                &call(
                    &mut tally,
                    at(&mut rng),
                    Method::GET,
                    "/me",
                    Some(&stolen),
                    None,
                )
                .await,
            ) && past_limit
            {
                tally.past_absolute += 1;
            }
        }
    }
    tally
}
