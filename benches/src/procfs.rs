//! Memory and CPU time of a process, from `/proc` (Linux).

use std::time::Duration;

use crate::BenchError;

/// Kernel clock ticks per second in `/proc/*/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// A process's resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident, in KiB.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/{pid}/status` (`"self"` for this process).
pub fn memory(pid: &str) -> Result<Memory, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::context(&path, e))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| BenchError::msg(format!("{path}: no {name}")))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// User plus system CPU time used so far by every thread of `pid` (`"self"` for this process).
pub fn cpu_time(pid: &str) -> Result<Duration, BenchError> {
    stat_cpu_time(&format!("/proc/{pid}/stat"))
}

/// CPU time used so far by the threads of `pid` whose name is `name` (`comm`, e.g. the
/// predictor's `kiln-model`).
pub fn thread_cpu_time(pid: &str, name: &str) -> Result<Duration, BenchError> {
    let dir = format!("/proc/{pid}/task");
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir(&dir).map_err(|e| BenchError::context(&dir, e))? {
        let task = entry.map_err(|e| BenchError::context(&dir, e))?.path();
        // A thread may end between the listing and the reads; it then counts for nothing.
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim_end() == name {
            total += stat_cpu_time(&task.join("stat").display().to_string()).unwrap_or_default();
        }
    }
    Ok(total)
}

/// CPU time every process on the machine has used so far, all CPUs together (the first
/// line of `/proc/stat`, without idle and iowait).
pub fn machine_busy_time() -> Result<Duration, BenchError> {
    let text =
        std::fs::read_to_string("/proc/stat").map_err(|e| BenchError::context("/proc/stat", e))?;
    let ticks: Vec<u64> = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| BenchError::msg("/proc/stat: no cpu line"))?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, counted in user].
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .map(|(_, t)| t)
        .sum();
    Ok(Duration::from_millis(busy * 1000 / USER_HZ))
}

fn stat_cpu_time(path: &str) -> Result<Duration, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::context(path, e))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| BenchError::msg(format!("{path}: unexpected format")))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| BenchError::msg(format!("{path}: no field {}", i + 3)))
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let m = memory("self").unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_time("self").unwrap() > Duration::ZERO);
        assert!(machine_busy_time().unwrap() >= cpu_time("self").unwrap());
        let main = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(thread_cpu_time("self", "no such thread").unwrap() == Duration::ZERO);
        // The test runs on a thread named after the test; the process's main thread may idle.
        let _ = thread_cpu_time("self", main.trim_end()).unwrap();
    }
}
