//! What `kiln up` may run at once: a number of processes, and the CPU and memory that
//! replicas' resource requests count against (jobs' and trials' later too). Each replica
//! takes its share before it starts and gives it back once it has exited; a revision that
//! finds too little free waits, and says why.

use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::watch;

use kiln_api::quantity::{format_bytes, format_cpu};

/// The capacity of the machine as `kiln up` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Replica processes at once.
    pub processes: u32,
    /// CPU, in millicores, that resource requests count against.
    pub cpu_millis: u64,
    /// Memory, in bytes, that resource requests count against.
    pub memory_bytes: u64,
}

/// How many processes per CPU the default capacity allows.
pub const PROCESSES_PER_CPU: u32 = 8;

impl Capacity {
    /// The machine's: [`PROCESSES_PER_CPU`] processes per CPU, all its CPUs, all its memory.
    pub fn of_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        Self {
            processes: cpus.saturating_mul(PROCESSES_PER_CPU),
            cpu_millis: u64::from(cpus) * 1000,
            memory_bytes: machine_memory().unwrap_or(u64::MAX),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The `capacity:` section of `kiln up`'s config: each key overrides the machine's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityConfig {
    /// Replica processes at once.
    pub processes: Option<u32>,
    /// CPU as a Kubernetes quantity (`4`, `3500m`).
    pub cpu: Option<String>,
    /// Memory as a Kubernetes quantity (`16Gi`).
    pub memory: Option<String>,
}

/// A `capacity:` value that does not parse or is zero.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// Not a quantity.
    #[error("capacity.{key}: {source}")]
    Quantity {
        /// `cpu` or `memory`.
        key: &'static str,
        /// Why.
        #[source]
        source: kiln_api::quantity::QuantityError,
    },
    /// Zero, which would run nothing.
    #[error("capacity.{0}: must be more than 0")]
    Zero(&'static str),
}

impl CapacityConfig {
    /// The machine's capacity with this config's overrides.
    pub fn resolve(&self) -> Result<Capacity, CapacityError> {
        let mut capacity = Capacity::of_machine();
        if let Some(processes) = self.processes {
            capacity.processes = processes;
        }
        if let Some(cpu) = &self.cpu {
            capacity.cpu_millis = kiln_api::quantity::cpu_millis(cpu)
                .map_err(|source| CapacityError::Quantity { key: "cpu", source })?;
        }
        if let Some(memory) = &self.memory {
            capacity.memory_bytes =
                kiln_api::quantity::bytes(memory).map_err(|source| CapacityError::Quantity {
                    key: "memory",
                    source,
                })?;
        }
        for (key, zero) in [
            ("processes", capacity.processes == 0),
            ("cpu", capacity.cpu_millis == 0),
            ("memory", capacity.memory_bytes == 0),
        ] {
            if zero {
                return Err(CapacityError::Zero(key));
            }
        }
        Ok(capacity)
    }
}

/// What one replica takes: one process and its requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    /// Requested CPU, millicores.
    pub cpu_millis: u64,
    /// Requested memory, bytes.
    pub memory_bytes: u64,
}

/// Why a replica cannot start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Shortfall {
    /// Every process slot is taken.
    #[error("all {total} processes of kiln up's capacity are running (capacity.processes)")]
    Processes {
        /// The capacity.
        total: u32,
    },
    /// Not enough CPU free for the request.
    #[error(
        "a replica requests {} CPU and {} of {} is free (capacity.cpu)",
        format_cpu(*needed), format_cpu(*free), format_cpu(*total)
    )]
    Cpu {
        /// Requested.
        needed: u64,
        /// Free now.
        free: u64,
        /// The capacity.
        total: u64,
    },
    /// Not enough memory free for the request.
    #[error(
        "a replica requests {} of memory and {} of {} is free (capacity.memory)",
        format_bytes(*needed), format_bytes(*free), format_bytes(*total)
    )]
    Memory {
        /// Requested.
        needed: u64,
        /// Free now.
        free: u64,
        /// The capacity.
        total: u64,
    },
}

/// The capacity in use, shared by every revision.
pub(crate) struct CapacityPool {
    total: Capacity,
    used: Mutex<(u32, Share)>,
    /// Bumped whenever a share is given back, so that revisions waiting for room retry.
    released: watch::Sender<u64>,
}

impl CapacityPool {
    pub(crate) fn new(total: Capacity) -> Self {
        Self {
            total,
            used: Mutex::new((0, Share::default())),
            released: watch::Sender::new(0),
        }
    }

    /// Takes one process and `share`, or says what is short.
    pub(crate) fn take(&self, share: Share) -> Result<(), Shortfall> {
        let mut used = self.used.lock();
        let (processes, taken) = &mut *used;
        let total = self.total;
        if *processes >= total.processes {
            return Err(Shortfall::Processes {
                total: total.processes,
            });
        }
        let cpu_free = total.cpu_millis.saturating_sub(taken.cpu_millis);
        if share.cpu_millis > cpu_free {
            return Err(Shortfall::Cpu {
                needed: share.cpu_millis,
                free: cpu_free,
                total: total.cpu_millis,
            });
        }
        let memory_free = total.memory_bytes.saturating_sub(taken.memory_bytes);
        if share.memory_bytes > memory_free {
            return Err(Shortfall::Memory {
                needed: share.memory_bytes,
                free: memory_free,
                total: total.memory_bytes,
            });
        }
        *processes += 1;
        taken.cpu_millis += share.cpu_millis;
        taken.memory_bytes += share.memory_bytes;
        Ok(())
    }

    /// Gives back what [`CapacityPool::take`] took for `share`.
    pub(crate) fn give_back(&self, share: Share) {
        {
            let mut used = self.used.lock();
            let (processes, taken) = &mut *used;
            *processes = processes.saturating_sub(1);
            taken.cpu_millis = taken.cpu_millis.saturating_sub(share.cpu_millis);
            taken.memory_bytes = taken.memory_bytes.saturating_sub(share.memory_bytes);
        }
        self.released.send_modify(|n| *n += 1);
    }

    /// Changes whenever a share is given back.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }
}

/// Why `replicas` replicas of `share` can never run within `capacity`, naming the field at
/// fault and the limit; `None` when they fit an empty machine.
pub fn never_fits(capacity: &Capacity, replicas: u32, share: Share) -> Option<String> {
    if replicas > capacity.processes {
        return Some(format!(
            "spec.predictor.minReplicas: {replicas} replicas can never run: kiln up runs at most \
             {} processes (capacity.processes)",
            capacity.processes
        ));
    }
    let cpu = share.cpu_millis.saturating_mul(u64::from(replicas.max(1)));
    if cpu > capacity.cpu_millis {
        return Some(format!(
            "spec.predictor.resources.requests.cpu: {} replica(s) of {} CPU can never run: kiln \
             up's capacity is {} CPU (capacity.cpu)",
            replicas.max(1),
            format_cpu(share.cpu_millis),
            format_cpu(capacity.cpu_millis)
        ));
    }
    let memory = share
        .memory_bytes
        .saturating_mul(u64::from(replicas.max(1)));
    if memory > capacity.memory_bytes {
        return Some(format!(
            "spec.predictor.resources.requests.memory: {} replica(s) of {} can never run: kiln \
             up's capacity is {} (capacity.memory)",
            replicas.max(1),
            format_bytes(share.memory_bytes),
            format_bytes(capacity.memory_bytes)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Capacity = Capacity {
        processes: 2,
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
    };

    #[test]
    fn shares_are_taken_until_something_is_short_and_given_back() {
        let pool = CapacityPool::new(SMALL);
        let half = Share {
            cpu_millis: 500,
            memory_bytes: 256 << 20,
        };
        pool.take(half).unwrap();
        let big = Share {
            cpu_millis: 600,
            memory_bytes: 0,
        };
        assert_eq!(
            pool.take(big).unwrap_err().to_string(),
            "a replica requests 600m CPU and 500m of 1 is free (capacity.cpu)"
        );
        pool.take(half).unwrap();
        assert_eq!(
            pool.take(Share::default()),
            Err(Shortfall::Processes { total: 2 })
        );
        pool.give_back(half);
        pool.take(Share::default()).unwrap();
    }

    #[test]
    fn what_can_never_fit_names_the_field_and_the_limit() {
        let none = Share::default();
        let refused = never_fits(&SMALL, 1_000_000, none).unwrap();
        assert!(
            refused.starts_with("spec.predictor.minReplicas: 1000000"),
            "{refused}"
        );
        assert!(refused.contains("at most 2 processes"), "{refused}");
        let cpu = Share {
            cpu_millis: 2000,
            memory_bytes: 0,
        };
        assert!(never_fits(&SMALL, 0, cpu).unwrap().contains("requests.cpu"));
        assert_eq!(never_fits(&SMALL, 2, none), None);
    }

    #[test]
    fn the_config_overrides_the_machine() {
        let config = CapacityConfig {
            processes: Some(3),
            cpu: Some("1500m".into()),
            memory: Some("2Gi".into()),
        };
        let capacity = config.resolve().unwrap();
        assert_eq!(
            capacity,
            Capacity {
                processes: 3,
                cpu_millis: 1500,
                memory_bytes: 2 << 30
            }
        );
        assert!(Capacity::of_machine().processes >= PROCESSES_PER_CPU);
        let zero = CapacityConfig {
            processes: Some(0),
            ..Default::default()
        };
        assert_eq!(
            zero.resolve().unwrap_err().to_string(),
            "capacity.processes: must be more than 0"
        );
    }
}
