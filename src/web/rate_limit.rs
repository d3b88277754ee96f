//! A per-client-address limit for endpoints that guess at secrets (invite tokens): a fixed
//! window of one minute, in memory. Counting the peer address, not a forwarded header, so a
//! client cannot pick its own bucket.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked addresses, stale windows are swept on the next check.
const SWEEP_ABOVE: usize = 10_000;

pub struct RateLimiter {
    per_window: u32,
    windows: DashMap<IpAddr, (Instant, u32)>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_window: per_minute.max(1), windows: DashMap::new() }
    }

    /// Counts one attempt; `Err(retry_after)` when the address is over its limit.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        if self.windows.len() > SWEEP_ABOVE {
            self.windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut entry = self.windows.entry(addr).or_insert((now, 0));
        let (start, count) = &mut *entry;
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_window {
            return Err(WINDOW.saturating_sub(now.duration_since(*start)));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_on_its_own() {
        let limiter = RateLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let retry = limiter.check(a).expect_err("fourth attempt refused");
        assert!(retry <= WINDOW);
        assert!(limiter.check(b).is_ok());
    }
}
