//! The benchmark's numbers as markdown: one table of rates and latencies, one of memory,
//! and the goals, each met or missed.

use std::fmt::Write;

use crate::loadgen::LoadResult;
use crate::procfs::Memory;

/// How the requests travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// v2 gRPC with `raw_input_contents`.
    GrpcRaw,
    /// v2 REST, tensors as JSON.
    RestJson,
    /// v2 REST with Triton's binary tensor extension.
    RestBinary,
}

impl Protocol {
    /// Every protocol, in table order.
    pub const ALL: [Protocol; 3] = [Protocol::GrpcRaw, Protocol::RestJson, Protocol::RestBinary];

    /// The name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::GrpcRaw => "gRPC raw",
            Protocol::RestJson => "REST JSON",
            Protocol::RestBinary => "REST binary",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(Protocol::GrpcRaw),
            "rest-json" => Ok(Protocol::RestJson),
            "rest-binary" => Ok(Protocol::RestBinary),
            _ => Err(format!("{s}: expected grpc, rest-json or rest-binary")),
        }
    }
}

/// One measured cell of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    /// The protocol.
    pub protocol: Protocol,
    /// `Some(delay)`: the predictor batched, up to [`Report::batch_size`] rows, waiting up
    /// to `delay` milliseconds; `None`: no batching.
    pub batching: Option<f64>,
    /// Requests in flight.
    pub concurrency: usize,
    /// What the load generator saw.
    pub result: LoadResult,
    /// The predictor's CPU time over the cell's whole run, in cores (1.0: one core busy).
    pub server_cpu: f64,
    /// The load generator's, likewise.
    pub client_cpu: f64,
    /// The predictor's CPU time per successful request over the whole run (warm-up
    /// included), in microseconds: its cost, whatever else ran on its core.
    pub server_us_per_request: f64,
    /// The part of it spent on the predictor's model thread (`kiln-model`: batching and
    /// ONNX Runtime); the rest is the protocol side (tokio, HTTP, gRPC, decoding).
    pub model_thread_us_per_request: f64,
    /// Mean rows per model run, from the predictor's batch-size histogram.
    pub rows_per_run: f64,
    /// CPU used meanwhile by everything else on the machine, in cores: how disturbed the
    /// cell was.
    pub other_cpu: f64,
}

/// One run of the bare in-process caller.
#[derive(Debug, Clone)]
pub struct BareRow {
    /// When it ran ("before", "after").
    pub when: String,
    /// What it measured.
    pub result: LoadResult,
    /// This process's CPU time over the run, in cores.
    pub cpu: f64,
    /// Its CPU time per inference, in microseconds (shown in the server column, in
    /// parentheses, for comparison).
    pub cpu_us_per_request: f64,
    /// CPU used meanwhile by every other process, in cores.
    pub other_cpu: f64,
}

/// A predictor's memory at one moment.
#[derive(Debug, Clone)]
pub struct MemoryRow {
    /// Which predictor, when.
    pub label: String,
    /// Its memory.
    pub memory: Memory,
}

/// Everything one `kiln-bench predictor` run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The bare caller's runs.
    pub bare: Vec<BareRow>,
    /// The matrix.
    pub rows: Vec<Row>,
    /// The bare process holding the model (the RSS baseline).
    pub bare_hold: Memory,
    /// The predictors' memory.
    pub memory: Vec<MemoryRow>,
    /// `--max-batch-size` of the batching predictors.
    pub batch_size: u32,
}

/// How a row's predictor batched, for the table.
fn batching_label(batching: Option<f64>, batch_size: u32) -> String {
    match batching {
        None => "off".into(),
        Some(delay) => format!("{batch_size} rows / {delay} ms"),
    }
}

/// Whether a goal was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalCheck {
    /// What was measured against what.
    pub what: String,
    /// The number measured, in words.
    pub measured: String,
    /// The goal, in words.
    pub goal: String,
    /// Met or not; `None` when a row it needs was not run.
    pub met: Option<bool>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// The bare rate the ratios divide by: the best of the bare runs (whatever else runs on
    /// the machine can only slow a run down, so the best is the least disturbed), or NaN.
    pub fn bare_rate(&self) -> f64 {
        self.bare
            .iter()
            .map(|b| b.result.rate())
            .fold(f64::NAN, f64::max)
    }

    /// The row for a cell, if it was run.
    pub fn row(
        &self,
        protocol: Protocol,
        batching: Option<f64>,
        concurrency: usize,
    ) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.protocol == protocol && r.batching == batching && r.concurrency == concurrency
        })
    }

    /// The batch delays measured, in the order they ran.
    pub fn batch_delays(&self) -> Vec<f64> {
        let mut delays: Vec<f64> = Vec::new();
        for d in self.rows.iter().filter_map(|r| r.batching) {
            if !delays.contains(&d) {
                delays.push(d);
            }
        }
        delays
    }

    /// The largest predictor RSS measured, minus the bare process's.
    pub fn rss_above_bare_kib(&self) -> Option<i64> {
        self.memory
            .iter()
            .map(|m| m.memory.rss_kib)
            .max()
            .map(|rss| rss as i64 - self.bare_hold.rss_kib as i64)
    }

    /// The goals, checked.
    pub fn goals(&self) -> Vec<GoalCheck> {
        let bare = self.bare_rate();
        let mut checks = Vec::new();
        for (protocol, want) in [(Protocol::GrpcRaw, 0.8), (Protocol::RestJson, 0.6)] {
            let batchings = std::iter::once(None).chain(self.batch_delays().into_iter().map(Some));
            for batching in batchings {
                let ratio = self
                    .row(protocol, batching, 8)
                    .map(|r| r.result.rate() / bare);
                checks.push(GoalCheck {
                    what: format!(
                        "{} at concurrency 8, {}",
                        protocol.label(),
                        match batching {
                            None => "no batching".to_string(),
                            Some(_) =>
                                format!("batching {}", batching_label(batching, self.batch_size)),
                        }
                    ),
                    measured: ratio.map_or("not run".into(), |r| format!("{r:.2}x bare")),
                    goal: format!(">= {want}x bare"),
                    met: ratio.map(|r| r >= want),
                });
            }
        }
        for delay in self.batch_delays() {
            for protocol in Protocol::ALL {
                let ratio = self
                    .row(protocol, Some(delay), 64)
                    .zip(self.row(protocol, None, 64))
                    .map(|(on, off)| on.result.rate() / off.result.rate());
                checks.push(GoalCheck {
                    what: format!(
                        "{} at concurrency 64, batching {} vs none",
                        protocol.label(),
                        batching_label(Some(delay), self.batch_size)
                    ),
                    measured: ratio.map_or("not run".into(), |r| format!("{r:.2}x")),
                    goal: ">= 2x".into(),
                    met: ratio.map(|r| r >= 2.0),
                });
            }
        }
        let above = self.rss_above_bare_kib();
        checks.push(GoalCheck {
            what: "predictor RSS above the bare process (largest measured)".into(),
            measured: above.map_or("not run".into(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            }),
            goal: "< 40 MiB".into(),
            met: above.map(|k| k < 40 * 1024),
        });
        checks
    }

    /// The whole report, markdown.
    pub fn markdown(&self) -> String {
        let bare = self.bare_rate();
        let mut out = String::new();
        out.push_str(
            "| path | batching | concurrency | infer/s | x bare | p50 ms | p99 ms | max ms | server CPU | server CPU us/infer (model thread) | rows/run | client CPU | other CPU | errors |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for b in &self.bare {
            let r = &b.result;
            let _ = writeln!(
                out,
                "| bare ONNX Runtime, in process ({}) | - | 1 | {} | {:.2} | {:.3} | {:.3} | {:.2} | - | {:.0} (bare caller) | 1 | {:.0}% | {:.0}% | {} |",
                b.when,
                thousands(r.rate()),
                r.rate() / bare,
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                ms(r.quantile(1.0)),
                b.cpu_us_per_request,
                b.cpu * 100.0,
                b.other_cpu * 100.0,
                r.errors,
            );
        }
        for row in &self.rows {
            let r = &row.result;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {:.3} | {:.3} | {:.2} | {:.0}% | {:.0} ({:.0}) | {:.1} | {:.0}% | {:.0}% | {} |",
                row.protocol.label(),
                batching_label(row.batching, self.batch_size),
                row.concurrency,
                thousands(r.rate()),
                r.rate() / bare,
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                ms(r.quantile(1.0)),
                row.server_cpu * 100.0,
                row.server_us_per_request,
                row.model_thread_us_per_request,
                row.rows_per_run,
                row.client_cpu * 100.0,
                row.other_cpu * 100.0,
                r.errors,
            );
        }
        out.push_str(
            "\n| process | VmRSS MiB | VmHWM MiB | RSS above bare MiB |\n|---|--:|--:|--:|\n",
        );
        let _ = writeln!(
            out,
            "| bare ONNX Runtime process holding the MLP (`kiln-bench bare-hold`) | {:.1} | {:.1} | 0 |",
            mib(self.bare_hold.rss_kib),
            mib(self.bare_hold.hwm_kib),
        );
        for m in &self.memory {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} |",
                m.label,
                mib(m.memory.rss_kib),
                mib(m.memory.hwm_kib),
                mib(m.memory.rss_kib) - mib(self.bare_hold.rss_kib),
            );
        }
        out.push_str("\n| goal | measured | target | |\n|---|--:|--:|---|\n");
        for g in self.goals() {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not run",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                g.what, g.measured, g.goal, verdict
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(completed: u64) -> LoadResult {
        LoadResult {
            completed,
            total_ok: completed,
            errors: 0,
            first_error: None,
            window: Duration::from_secs(1),
            latencies_ns: vec![100_000; 10],
        }
    }

    fn row(protocol: Protocol, batching: Option<f64>, concurrency: usize, rate: u64) -> Row {
        Row {
            protocol,
            batching,
            concurrency,
            result: result(rate),
            server_cpu: 1.0,
            client_cpu: 0.5,
            server_us_per_request: 100.0,
            model_thread_us_per_request: 50.0,
            rows_per_run: 1.0,
            other_cpu: 0.0,
        }
    }

    fn bare_row(when: &str, rate: u64) -> BareRow {
        BareRow {
            when: when.into(),
            result: result(rate),
            cpu: 1.0,
            cpu_us_per_request: 1e6 / rate as f64,
            other_cpu: 0.0,
        }
    }

    fn memory(rss_mib: u64) -> Memory {
        Memory {
            rss_kib: rss_mib * 1024,
            hwm_kib: rss_mib * 1024,
        }
    }

    #[test]
    fn goals_are_checked_against_the_best_bare_rate() {
        let report = Report {
            bare: vec![bare_row("before", 10_000), bare_row("after", 7_000)],
            rows: vec![
                row(Protocol::GrpcRaw, None, 8, 8_000),
                row(Protocol::GrpcRaw, Some(1.0), 8, 7_000),
                row(Protocol::RestJson, None, 8, 5_000),
                row(Protocol::GrpcRaw, None, 64, 5_000),
                row(Protocol::GrpcRaw, Some(1.0), 64, 10_000),
            ],
            bare_hold: memory(30),
            memory: vec![MemoryRow {
                label: "after load".into(),
                memory: memory(75),
            }],
            batch_size: 32,
        };
        let goals = report.goals();
        let met = |what: &str| goals.iter().find(|g| g.what.starts_with(what)).unwrap().met;
        assert_eq!(met("gRPC raw at concurrency 8, no batching"), Some(true));
        assert_eq!(
            met("gRPC raw at concurrency 8, batching 32 rows / 1 ms"),
            Some(false)
        );
        assert_eq!(met("REST JSON at concurrency 8, no batching"), Some(false));
        assert_eq!(met("REST JSON at concurrency 8, batching"), None);
        assert_eq!(met("gRPC raw at concurrency 64"), Some(true));
        assert_eq!(met("REST binary at concurrency 64"), None);
        assert_eq!(met("predictor RSS"), Some(false));
        let md = report.markdown();
        assert!(md.contains("| gRPC raw | off | 8 | 8,000 | 0.80 |"), "{md}");
        assert!(
            md.contains("| gRPC raw | 32 rows / 1 ms | 8 | 7,000 |"),
            "{md}"
        );
        assert!(md.contains("| 45.0 |"), "{md}");
    }
}
