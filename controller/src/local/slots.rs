//! Replica slots: each replica of a revision runs in a numbered slot, and crash back-off is
//! counted per slot, as Kubernetes counts CrashLoopBackOff per pod. A replacement inherits
//! its slot's count; a slot whose process stayed up for `restart_backoff_reset` starts over.
//! Two replicas crashing seconds apart so each wait the first delay, not one the first and
//! the other twice as long.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff;

/// The back-off state of one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    /// Consecutive crashes of the processes run in it.
    crashes: u32,
    /// No process starts in it before this.
    not_before: Option<Instant>,
}

/// Every slot of one revision.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    slots: Vec<Slot>,
}

/// The back-off settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// The first delay.
    pub(crate) min: Duration,
    /// The largest delay.
    pub(crate) max: Duration,
    /// A process up this long before it crashed resets its slot.
    pub(crate) reset: Duration,
}

impl Slots {
    /// The lowest slot not in `occupied` that may start a process at `now`; otherwise, when
    /// the earliest free slot may (`Err(Some(at))`), or `Err(None)` if `wanted` slots are all
    /// occupied.
    pub(crate) fn free(
        &mut self,
        occupied: &[usize],
        wanted: usize,
        now: Instant,
    ) -> Result<usize, Option<Instant>> {
        let mut earliest: Option<Instant> = None;
        let mut free_seen = 0;
        for index in 0.. {
            if occupied.contains(&index) {
                continue;
            }
            if occupied.len() + free_seen >= wanted {
                break;
            }
            free_seen += 1;
            if index >= self.slots.len() {
                self.slots.resize(index + 1, Slot::default());
            }
            match self.slots[index].not_before {
                Some(at) if at > now => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                _ => return Ok(index),
            }
        }
        Err(earliest)
    }

    /// Counts a crash of the process in `slot`; `up_for` is how long it had been ready
    /// (`None`: it never was). With `at_max`, the delay is the largest one whatever the
    /// count (the revision keeps failing to start). Returns the delay set.
    pub(crate) fn crashed(
        &mut self,
        slot: usize,
        up_for: Option<Duration>,
        at_max: bool,
        backoff: Backoff,
        now: Instant,
    ) -> Duration {
        if slot >= self.slots.len() {
            self.slots.resize(slot + 1, Slot::default());
        }
        let state = &mut self.slots[slot];
        if up_for.is_some_and(|up| up >= backoff.reset) {
            state.crashes = 0;
        }
        state.crashes = state.crashes.saturating_add(1);
        let delay = if at_max {
            backoff.max
        } else {
            backoff::delay(state.crashes, backoff.min, backoff.max)
        };
        state.not_before = Some(now + delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        min: Duration::from_secs(1),
        max: Duration::from_secs(60),
        reset: Duration::from_secs(60),
    };

    #[test]
    fn replicas_crashing_seconds_apart_each_wait_the_first_delay() {
        let mut slots = Slots::default();
        let t0 = Instant::now();
        assert_eq!(slots.free(&[], 2, t0), Ok(0));
        assert_eq!(slots.free(&[0], 2, t0), Ok(1));
        let up = Some(Duration::from_secs(5));
        assert_eq!(
            slots.crashed(0, up, false, BACKOFF, t0),
            Duration::from_secs(1)
        );
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(
            slots.crashed(1, up, false, BACKOFF, t1),
            Duration::from_secs(1),
            "another slot's crash does not double this one's delay"
        );
        // Slot 0 may start again after its own delay; slot 1 waits for its own.
        assert_eq!(slots.free(&[], 2, t1), Ok(0));
        assert_eq!(
            slots.free(&[0], 2, t1),
            Err(Some(t1 + Duration::from_secs(1)))
        );
    }

    #[test]
    fn a_replacement_inherits_its_slots_count_until_it_stays_up() {
        let mut slots = Slots::default();
        let t = Instant::now();
        let delays: Vec<Duration> = (0..4)
            .map(|_| slots.crashed(0, None, false, BACKOFF, t))
            .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(delays, [secs(1), secs(2), secs(4), secs(8)]);
        // Up for the reset period: the slot starts over.
        assert_eq!(
            slots.crashed(0, Some(BACKOFF.reset), false, BACKOFF, t),
            secs(1)
        );
        assert_eq!(slots.crashed(0, None, true, BACKOFF, t), BACKOFF.max);
    }

    #[test]
    fn only_as_many_slots_as_wanted_are_offered() {
        let mut slots = Slots::default();
        let t = Instant::now();
        assert_eq!(slots.free(&[0, 1], 2, t), Err(None));
        assert_eq!(slots.free(&[1], 2, t), Ok(0));
        assert_eq!(slots.free(&[0, 2], 3, t), Ok(1));
    }
}
