//! What a session costs a request, measured in the same run over loopback HTTP: `GET /health`,
//! which never touches the session (the floor: the HTTP round trip and the middleware), against
//! `GET /me` with a signed-in cookie (the session loaded from Redis, one `GET`, and checked
//! against its timeouts), within the refresh threshold (a minute, longer than the bench: no
//! write) and with the deadline pushed out on every request (a `SET` more each time).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use reqwest::Method;
use sessions::accounts::{demo_name, demo_password};
use sessions::api::Login;
use sessions::client::send;
use sessions::{Accounts, Clock, Deployment, Sessions, Timeouts};

fn session_check(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("sessions-bench");
    let accounts = rt
        .block_on(Accounts::create(stage.db().clone(), 1))
        .expect("the accounts table");
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("one request");
    for sessions in [Sessions::Lesson, Sessions::EveryRequest] {
        let deployment = Deployment {
            sessions,
            conn: stage.conn(),
            namespace: stage.namespace().child(sessions.slug()),
            accounts: accounts.clone(),
            // Longer than the bench: no session ends under it.
            timeouts: Timeouts {
                idle: Duration::from_secs(3_600),
                absolute: Duration::from_secs(7_200),
                refresh_after: Duration::from_secs(60),
            },
            local_copy: Duration::ZERO,
            secure: false,
            clock: Clock::default(),
        };
        let running = rt.block_on(deployment.start(1)).expect("an instance");
        let form = Login {
            name: demo_name(1),
            password: demo_password(1),
        };
        let login = rt
            .block_on(send(
                &client,
                Method::POST,
                &running.url(0, "/login"),
                None,
                Some(&form),
            ))
            .expect("a login");
        let id = login.new_id().expect("a session cookie").to_owned();
        if sessions == Sessions::Lesson {
            group.bench_function("GET /health: no session (the floor)", |b| {
                b.to_async(&rt).iter(|| async {
                    black_box(
                        send(
                            &client,
                            Method::GET,
                            &running.url(0, "/health"),
                            None,
                            None::<&()>,
                        )
                        .await
                        .unwrap(),
                    )
                })
            });
        }
        let label = match sessions {
            Sessions::Lesson => "GET /me: session checked, within the threshold (a GET)",
            _ => "GET /me: session checked, refreshed every request (a GET and a SET)",
        };
        group.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    send(
                        &client,
                        Method::GET,
                        &running.url(0, "/me"),
                        Some(&id),
                        None::<&()>,
                    )
                    .await
                    .unwrap(),
                )
            })
        });
        rt.block_on(running.stop()).expect("the instance stops");
    }
    group.finish();
}

criterion_group!(benches, session_check);
criterion_main!(benches);
