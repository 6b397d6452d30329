//! Token-bucket rate limits, one bucket per key (a requester's public key, a client address).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Most keys tracked at once; past it, idle (full) buckets are forgotten first.
const MAX_TRACKED: usize = 65_536;

/// Allows each key `per_minute` requests a minute on average, in bursts of up to `per_minute`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_minute: u32,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter of `per_minute` requests per key (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; false if its bucket is empty.
    pub fn allow(&self, key: &K) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < capacity
            });
            if buckets.len() >= MAX_TRACKED {
                // Every tracked key is active: a new one is let through untracked rather than
                // locking everyone new out.
                return true;
            }
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_is_refused_and_others_are_not_affected() {
        let limiter = RateLimiter::new(5);
        assert!((0..5).all(|_| limiter.allow(&"a")));
        assert!(!limiter.allow(&"a"));
        assert!(limiter.allow(&"b"));
        let unlimited = RateLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.allow(&"a")));
    }
}
