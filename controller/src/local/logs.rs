//! A revision's recent replica stderr lines, bounded.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// The last `capacity` lines, oldest first.
pub(crate) struct LogRing {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl LogRing {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            lines: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn push(&self, line: String) {
        let mut lines = self.lines.lock();
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.lines.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines() {
        let ring = LogRing::new(2);
        for line in ["a", "b", "c"] {
            ring.push(line.to_owned());
        }
        assert_eq!(ring.snapshot(), vec!["b", "c"]);
    }
}
