//! Who the client is: the key a limit is counted under.
//!
//! Behind a load balancer every request arrives from the balancer's address, so the client's own
//! address travels in `X-Forwarded-For`, each proxy appending the address it received the request
//! from. Anyone can send that header, though. Taken from any peer (as the source does), it lets a
//! client pick its own key, a fresh one per request, and never be limited. Only the entries added
//! by proxies you run can be believed: read the header from the right, skip your own proxies, and
//! the first address that is not one of them is the client.

use std::net::IpAddr;

/// The address to limit: `peer` (the TCP connection's) unless it is one of `trusted` proxies, in
/// which case the right-most entry of `forwarded_for` that is not a trusted proxy. An entry that
/// does not parse ends the walk at the last trusted hop: whatever is left of it, the client wrote.
// ANCHOR: client_ip
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.unwrap_or("").rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(hop) if trusted.contains(&hop) => client = hop,
            Ok(hop) => return hop,
            Err(_) => break,
        }
    }
    client
}
// ANCHOR_END: client_ip

/// The source's way: the header when there is one, from whoever sent it.
pub fn client_ip_trusting_anyone(peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
    forwarded_for
        .and_then(|header| header.split(',').next()?.trim().parse().ok())
        .unwrap_or(peer)
}
