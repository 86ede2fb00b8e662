//! The scale-down delay: the maximum of the decisions made over a trailing window (Knative's
//! `max.TimeWindow`).

use std::collections::VecDeque;
use std::time::Duration;

/// Remembers recent decisions and answers the largest made within `delay` of now.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayWindow {
    delay: Duration,
    /// (time, value), oldest first, values strictly decreasing: a value hidden behind a
    /// later, larger one can never be the maximum again.
    entries: VecDeque<(Duration, u32)>,
}

impl DelayWindow {
    /// A window of length `delay`.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            entries: VecDeque::new(),
        }
    }

    /// The window's length.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Records `value` decided at `now` and returns the maximum over `(now - delay, now]`.
    pub fn record(&mut self, now: Duration, value: u32) -> u32 {
        while self.entries.back().is_some_and(|&(_, v)| v <= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, value));
        while self
            .entries
            .front()
            .is_some_and(|&(t, _)| t + self.delay <= now && t != now)
        {
            self.entries.pop_front();
        }
        self.entries.front().map_or(value, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn holds_the_largest_recent_decision_for_the_delay() {
        let mut d = DelayWindow::new(s(10));
        assert_eq!(d.record(s(0), 8), 8);
        assert_eq!(d.record(s(2), 3), 8);
        assert_eq!(d.record(s(9), 2), 8);
        assert_eq!(d.record(s(10), 2), 3, "the 8 from t=0 has aged out");
        assert_eq!(d.record(s(12), 1), 2);
    }

    #[test]
    fn increases_pass_at_once() {
        let mut d = DelayWindow::new(s(30));
        assert_eq!(d.record(s(0), 1), 1);
        assert_eq!(d.record(s(2), 5), 5);
    }
}
