//! The machine's GPUs, shared by every revision: each replica takes ids for itself.

use parking_lot::Mutex;
use tokio::sync::watch;

/// Free GPU ids, in the order the configuration lists them.
pub(crate) struct GpuPool {
    total: usize,
    free: Mutex<Vec<String>>,
    /// Bumped whenever ids are given back, so that revisions waiting for GPUs retry.
    released: watch::Sender<u64>,
}

/// Why ids could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("needs {needed} GPUs, the machine has {free} free (of {total})")]
pub(crate) struct NotEnoughGpus {
    pub(crate) needed: u32,
    pub(crate) free: usize,
    pub(crate) total: usize,
}

impl GpuPool {
    pub(crate) fn new(ids: Vec<String>) -> Self {
        Self {
            total: ids.len(),
            free: Mutex::new(ids),
            released: watch::Sender::new(0),
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Takes `n` ids (none when `n` is 0).
    pub(crate) fn take(&self, n: u32) -> Result<Vec<String>, NotEnoughGpus> {
        let mut free = self.free.lock();
        if n as usize > free.len() {
            return Err(NotEnoughGpus {
                needed: n,
                free: free.len(),
                total: self.total,
            });
        }
        Ok(free.drain(..n as usize).collect())
    }

    /// Gives ids back.
    pub(crate) fn give_back(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        self.free.lock().extend(ids);
        self.released.send_modify(|n| *n += 1);
    }

    /// Changes whenever ids are given back.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_once_and_given_back() {
        let pool = GpuPool::new(vec!["0".into(), "1".into(), "2".into()]);
        let a = pool.take(2).unwrap();
        assert_eq!(a, vec!["0", "1"]);
        let err = pool.take(2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "needs 2 GPUs, the machine has 1 free (of 3)"
        );
        assert!(pool.take(0).unwrap().is_empty());
        pool.give_back(a);
        assert_eq!(pool.take(3).unwrap().len(), 3);
    }
}
