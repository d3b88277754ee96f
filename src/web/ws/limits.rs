//! Caps on WebSocket connections: per identity (the token's user), per client address and in
//! total. A socket holds an [`Admission`] for as long as it is open; dropping it (the socket
//! closed, or the upgrade failed) gives its place back. Checked before the handshake, so a
//! refused client costs a plain HTTP answer (429), not a socket.
//!
//! The client address is the peer's, not a forwarded header, so that a client cannot choose
//! its own bucket (behind a reverse proxy every client shares the proxy's address: raise the
//! per-address cap there).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Identity,
    Address,
    Total,
}

impl Cap {
    pub fn as_str(self) -> &'static str {
        match self {
            Cap::Identity => "identity",
            Cap::Address => "address",
            Cap::Total => "total",
        }
    }
}

#[derive(Default)]
struct Counts {
    by_identity: HashMap<String, usize>,
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// The caps and the open connections they count.
pub struct ConnectionLimits {
    per_identity: usize,
    per_address: usize,
    total: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One open connection's place; dropping it frees the place.
pub struct Admission {
    identity: String,
    address: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    // Counts are updated in one step each; a panic elsewhere cannot leave them half-done.
    counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ConnectionLimits {
    pub fn new(per_identity: usize, per_address: usize, total: usize) -> ConnectionLimits {
        ConnectionLimits { per_identity, per_address, total, counts: Arc::default() }
    }

    /// Takes a place for a connection of `identity` from `address`, or says which cap is full.
    pub fn admit(&self, identity: &str, address: IpAddr) -> Result<Admission, Cap> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.total {
            return Err(Cap::Total);
        }
        if counts.by_identity.get(identity).copied().unwrap_or(0) >= self.per_identity {
            return Err(Cap::Identity);
        }
        if counts.by_address.get(&address).copied().unwrap_or(0) >= self.per_address {
            return Err(Cap::Address);
        }
        counts.total += 1;
        *counts.by_identity.entry(identity.to_string()).or_default() += 1;
        *counts.by_address.entry(address).or_default() += 1;
        Ok(Admission { identity: identity.to_string(), address, counts: self.counts.clone() })
    }

    /// Open connections now (for tests and health output).
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        // Entries at zero are removed, so the maps hold only identities and addresses with an
        // open connection.
        if let Some(n) = counts.by_identity.get_mut(&self.identity) {
            *n -= 1;
            if *n == 0 {
                counts.by_identity.remove(&self.identity);
            }
        }
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_counts_and_a_closed_connection_frees_its_place() {
        let limits = ConnectionLimits::new(2, 3, 4);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = limits.admit("ada", a).expect("first");
        let _second = limits.admit("ada", a).expect("second");
        assert_eq!(limits.admit("ada", b).err(), Some(Cap::Identity));
        let _third = limits.admit("bob", a).expect("another person, same address");
        assert_eq!(limits.admit("cy", a).err(), Some(Cap::Address));
        let _fourth = limits.admit("cy", b).expect("another address");
        assert_eq!(limits.admit("dee", b).err(), Some(Cap::Total));
        assert_eq!(limits.open(), 4);
        drop(first);
        assert_eq!(limits.open(), 3);
        limits.admit("ada", b).expect("ada's place is free again");
    }
}
