//! Per-second buckets and their average over a sliding window (Knative's
//! `TimedFloat64Buckets`).

/// One value per second over the last `len` seconds, averaged the way Knative does:
///
/// - a second without a sample counts as zero;
/// - until the window has filled, the average is over the seconds since the first sample;
/// - when the last sample is a full window old or older, the average is zero, and the next
///   sample starts afresh (its second becomes the first).
///
/// Two values recorded for the same second keep the larger: the router sends one sample per
/// second, and a poke must not lower what a sample said.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    buckets: Vec<f64>,
    /// The first second of the current run of samples.
    first: u64,
    /// The latest second written, `None` before the first sample.
    last: Option<u64>,
}

impl Window {
    /// An empty window of `seconds` seconds (at least 1).
    pub fn new(seconds: u64) -> Self {
        let len = usize::try_from(seconds.max(1)).unwrap_or(usize::MAX);
        Self {
            buckets: vec![0.0; len],
            first: 0,
            last: None,
        }
    }

    /// The window's length in seconds.
    pub fn seconds(&self) -> u64 {
        self.buckets.len() as u64
    }

    /// Records `value` for `second`. Negative or non-finite values count as zero; a second
    /// that already fell out of the window is ignored.
    pub fn record(&mut self, second: u64, value: f64) {
        let value = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        let len = self.seconds();
        match self.last {
            Some(last) if second < last + len => {
                if second + len <= last {
                    return;
                }
                for s in last + 1..=second {
                    *self.bucket_mut(s) = 0.0;
                }
                self.last = Some(last.max(second));
                self.first = self.first.min(second);
            }
            _ => {
                self.buckets.fill(0.0);
                self.first = second;
                self.last = Some(second);
            }
        }
        let bucket = self.bucket_mut(second);
        *bucket = bucket.max(value);
    }

    /// The average over the window that ends with second `now` (inclusive).
    pub fn average(&self, now: u64) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        let len = self.seconds();
        if now >= last + len || now < self.first {
            return 0.0;
        }
        let from = self.first.max((now + 1).saturating_sub(len));
        let to = last.min(now);
        let sum: f64 = (from..=to).map(|s| self.bucket(s)).sum();
        let span = (now - self.first + 1).min(len);
        sum / span as f64
    }

    /// A window of another length holding the same samples, as far as they fit.
    pub fn resized(&self, seconds: u64) -> Self {
        let mut out = Self::new(seconds);
        if let Some(last) = self.last {
            let from = self.first.max((last + 1).saturating_sub(self.seconds()));
            for s in from..=last {
                out.record(s, self.bucket(s));
            }
            out.first = out.first.min(self.first);
        }
        out
    }

    fn index(&self, second: u64) -> usize {
        (second % self.seconds()) as usize
    }

    fn bucket(&self, second: u64) -> f64 {
        self.buckets[self.index(second)]
    }

    fn bucket_mut(&mut self, second: u64) -> &mut f64 {
        let index = self.index(second);
        &mut self.buckets[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_a_full_window() {
        let mut w = Window::new(4);
        for (s, v) in [(10, 1.0), (11, 2.0), (12, 3.0), (13, 4.0), (14, 5.0)] {
            w.record(s, v);
        }
        assert_eq!(w.average(14), (2.0 + 3.0 + 4.0 + 5.0) / 4.0);
    }

    #[test]
    fn at_the_start_averages_over_the_seconds_since_the_first_sample() {
        let mut w = Window::new(60);
        w.record(100, 6.0);
        w.record(101, 2.0);
        assert_eq!(w.average(101), 4.0);
    }

    #[test]
    fn seconds_without_a_sample_count_as_zero() {
        let mut w = Window::new(10);
        w.record(0, 0.0);
        w.record(5, 10.0);
        assert_eq!(w.average(5), 10.0 / 6.0);
        // Three silent seconds after the last sample are zeros, not gaps.
        assert_eq!(w.average(8), 10.0 / 9.0);
        assert_eq!(w.average(14), 10.0 / 10.0);
        assert_eq!(w.average(15), 0.0, "second 5 left the window");
    }

    #[test]
    fn no_sample_for_a_full_window_is_zero_and_the_next_sample_starts_afresh() {
        let mut w = Window::new(6);
        w.record(0, 9.0);
        assert_eq!(w.average(5), 9.0 / 6.0);
        assert_eq!(w.average(6), 0.0);
        w.record(20, 3.0);
        assert_eq!(w.average(20), 3.0, "averaged over one second, not six");
    }

    #[test]
    fn the_larger_of_two_values_for_one_second_counts() {
        let mut w = Window::new(6);
        w.record(3, 5.0);
        w.record(3, 1.0);
        assert_eq!(w.average(3), 5.0);
    }

    #[test]
    fn a_late_sample_within_the_window_counts_and_an_older_one_is_dropped() {
        let mut w = Window::new(4);
        w.record(10, 1.0);
        w.record(9, 3.0);
        assert_eq!(w.average(10), 2.0);
        w.record(20, 0.0);
        w.record(15, 100.0);
        assert_eq!(w.average(20), 0.0);
    }

    #[test]
    fn resizing_keeps_the_samples_that_fit() {
        let mut w = Window::new(10);
        for s in 0..10 {
            w.record(s, s as f64);
        }
        let small = w.resized(2);
        assert_eq!(small.average(9), (8.0 + 9.0) / 2.0);
        let large = w.resized(20);
        assert_eq!(large.average(9), 45.0 / 10.0);
    }
}
