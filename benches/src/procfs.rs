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
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::context(&path, e))?;
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
    }
}
