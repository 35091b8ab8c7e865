//! Token buckets, keyed by a verified identity: an agent's key thumbprint
//! or a user's principal. Only the holder of an identity can spend its
//! bucket, because keys are taken from verified tokens, never from
//! claims. Limits are per broker instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A rate: a burst, refilled at a steady pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// How many calls may come at once.
    pub burst: u32,
    /// How many calls a second refill the bucket.
    pub per_second: f64,
}

/// The most identities tracked before full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets for one kind of call.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// A limiter at `rate`.
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from `key`'s bucket; `false` if it is empty.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let burst = f64::from(self.rate.burst);
        // A poisoned lock still holds consistent buckets: each update is one assignment.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            let rate = self.rate.per_second;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * self.rate.per_second)
            .min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
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
    fn a_burst_then_refusal_per_key() {
        let limiter = Limiter::new(Rate {
            burst: 2,
            per_second: 0.001,
        });
        assert!(limiter.allow("a"));
        assert!(limiter.allow("a"));
        assert!(!limiter.allow("a"));
        assert!(limiter.allow("b"), "keys do not share buckets");
    }
}
