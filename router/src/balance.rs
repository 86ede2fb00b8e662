//! Picking: a weighted draw of a revision (canary percent) and an endpoint by power of two
//! choices on outstanding requests, within the revision's container concurrency.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::revision::Endpoint;

/// A lock-free, seedable random source (SplitMix64 over an atomic counter).
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A source that yields the same sequence for the same seed.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A source seeded from the clock and the process id.
    pub(crate) fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (`n > 0`).
    pub(crate) fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Index of the weighted choice: `cumulative` holds running sums of the weights.
/// With all weights zero the last entry (the latest revision) is chosen.
pub(crate) fn weighted(cumulative: &[u32], rng: &Rng) -> Option<usize> {
    let total = *cumulative.last()?;
    if total == 0 {
        return Some(cumulative.len() - 1);
    }
    let x = rng.below(u64::from(total)) as u32;
    Some(cumulative.partition_point(|&c| c <= x))
}

/// Chooses an endpoint that can take one more request and takes a slot on it.
///
/// Draining endpoints are never chosen. Endpoints in connect-error back-off are skipped while
/// any healthy one exists. `limit` is the container concurrency (0 = unlimited).
/// `now_ms` gives the current time in milliseconds since the router started, only asked for
/// when some endpoint is in back-off.
pub(crate) fn pick<'a>(
    endpoints: &'a [std::sync::Arc<Endpoint>],
    limit: u32,
    rng: &Rng,
    now_ms: impl Fn() -> u64,
) -> Option<&'a std::sync::Arc<Endpoint>> {
    let n = endpoints.len();
    if n == 0 {
        return None;
    }
    let any_backoff = endpoints.iter().any(|e| e.backoff_until() != 0);
    let now = if any_backoff { now_ms() } else { 0 };
    let any_healthy = !any_backoff
        || endpoints
            .iter()
            .any(|e| !e.is_draining() && e.is_healthy(now));
    let eligible = |e: &Endpoint| !e.is_draining() && (!any_healthy || e.is_healthy(now));
    let has_slot = |e: &Endpoint| limit == 0 || e.outstanding() < limit as usize;

    for _ in 0..4 {
        let chosen = if n == 1 {
            let e = &endpoints[0];
            (eligible(e) && has_slot(e)).then_some(e)
        } else {
            let a = rng.below(n as u64) as usize;
            let b = (a + 1 + rng.below(n as u64 - 1) as usize) % n;
            let (ea, eb) = (&endpoints[a], &endpoints[b]);
            let ok_a = eligible(ea) && has_slot(ea);
            let ok_b = eligible(eb) && has_slot(eb);
            match (ok_a, ok_b) {
                (true, true) if eb.outstanding() < ea.outstanding() => Some(eb),
                (true, _) => Some(ea),
                (false, true) => Some(eb),
                (false, false) => endpoints
                    .iter()
                    .filter(|e| eligible(e) && has_slot(e))
                    .min_by_key(|e| e.outstanding()),
            }
        };
        let e = chosen?;
        if e.try_take(limit) {
            return Some(e);
        }
        // Lost a race for the last slot: choose again.
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn endpoints(n: u16) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|i| Arc::new(Endpoint::new(([127, 0, 0, 1], 9000 + i).into())))
            .collect()
    }

    #[test]
    fn power_of_two_choices_avoids_the_busiest_endpoint_and_balances_the_rest() {
        let all = endpoints(3);
        for _ in 0..100 {
            assert!(all[2].try_take(0));
        }
        let rng = Rng::seeded(7);
        for _ in 0..100 {
            pick(&all, 0, &rng, || 0).expect("an endpoint");
        }
        let (a, b, busy) = (
            all[0].outstanding(),
            all[1].outstanding(),
            all[2].outstanding(),
        );
        assert_eq!(busy, 100, "two samples always include a less busy endpoint");
        assert_eq!(a + b, 100);
        assert!(a.abs_diff(b) <= 2, "{a} / {b}");
    }

    #[test]
    fn container_concurrency_fills_every_endpoint_then_refuses() {
        let all = endpoints(2);
        let rng = Rng::seeded(7);
        for _ in 0..4 {
            pick(&all, 2, &rng, || 0).expect("a free slot");
        }
        assert_eq!((all[0].outstanding(), all[1].outstanding()), (2, 2));
        assert!(pick(&all, 2, &rng, || 0).is_none(), "no slot left");
    }
}
