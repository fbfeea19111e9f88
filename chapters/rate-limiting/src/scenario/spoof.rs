//! A client that writes a fresh `X-Forwarded-For` on every request, limited by the sliding log
//! with its key taken two ways: the header believed from anyone, as the source does, and only
//! from the service's own proxies ([`rate_limiting::client_ip`]).

use std::net::IpAddr;

use rate_limiting::client::client_ip_trusting_anyone;
use rate_limiting::{Algorithm, Limit, Limiter, RedisLimiter, client_ip};
use shared::Stage;

/// What the spoofing client got: its requests admitted with the header trusted from anyone, with
/// only trusted proxies believed, and how many it sent.
#[derive(serde::Serialize)]
pub struct Spoofed {
    /// Admitted when the header is believed from anyone.
    pub trusting_anyone: u32,
    /// Admitted when only the service's own proxies are believed.
    pub trusted_proxies: u32,
    /// Requests sent, in one burst.
    pub sent: u32,
    /// Whether Redis went away during the first try, so these are the second's.
    pub measured_again: bool,
}

/// Sends `3 × limit` requests from one address, each claiming another in `X-Forwarded-For`.
pub async fn run(stage: &Stage, limit: Limit) -> redis::RedisResult<Spoofed> {
    let peer: IpAddr = "203.0.113.9".parse().expect("an address");
    let proxies: [IpAddr; 1] = ["10.0.0.1".parse().expect("an address")];
    // A namespace of its own for each try, so that a second try after an outage starts empty.
    let namespace = stage
        .namespace()
        .child(&format!("spoof-{}", rand::random::<u32>()));
    let trusting = RedisLimiter::new(
        Algorithm::SlidingLog,
        limit,
        stage.conn(),
        namespace.child("anyone"),
    );
    let proper = RedisLimiter::new(
        Algorithm::SlidingLog,
        limit,
        stage.conn(),
        namespace.child("proxies"),
    );
    let sent = 3 * limit.requests;
    let mut spoofed = Spoofed {
        trusting_anyone: 0,
        trusted_proxies: 0,
        sent,
        measured_again: false,
    };
    for n in 0..sent {
        let header = format!("198.51.{}.{}", n / 250, n % 250 + 1);
        let key = client_ip_trusting_anyone(peer, Some(&header)).to_string();
        spoofed.trusting_anyone += u32::from(trusting.check(&key).await?.allowed);
        let key = client_ip(peer, Some(&header), &proxies).to_string();
        spoofed.trusted_proxies += u32::from(proper.check(&key).await?.allowed);
    }
    Ok(spoofed)
}
