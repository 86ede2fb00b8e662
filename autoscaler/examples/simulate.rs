//! Plays load traces against a simulated fleet driven by the real autoscaler.
//!
//! Discrete time in 100 ms steps, deterministic. Each request takes a fixed service time on
//! one of a replica's `containerConcurrency` slots; requests that find no free slot wait in
//! FIFO order (as in the router's activator queue). Replicas become ready a fixed start-up
//! time after the autoscaler asks for them. Every second the fleet reports a
//! [`LoadSample`] (time-weighted concurrency in flight plus waiting, and arrivals); every
//! tick it reports ready replicas and applies the decision; while no replica is ready and
//! requests wait, it pokes.
//!
//! Run: `cargo run --release -p kiln-autoscaler --example simulate`

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::time::Duration;

use kiln_api::load::{LoadSample, RevisionKey};
use kiln_autoscaler::{Autoscaler, AutoscalerConfig, RevisionScaling};

/// Simulation step.
const STEP_MS: u64 = 100;
/// Service time of one request.
const SERVICE_MS: u64 = 200;
/// Time from asking for a replica to it being ready.
const STARTUP_MS: u64 = 10_000;
/// Concurrent requests one replica serves (the revision's containerConcurrency).
const CONTAINER_CONCURRENCY: u32 = 10;
/// Wait histogram resolution and range.
const WAIT_BINS: usize = 6_000;

/// A load trace: requests per second at a time (seconds).
struct Trace {
    seconds: u64,
    rate: Box<dyn Fn(f64) -> f64>,
}

/// A named autoscaler setting.
struct Setting {
    name: &'static str,
    /// `config-autoscaler` keys on top of Knative's defaults.
    config: &'static [(&'static str, &'static str)],
    /// Whether a surging sample decides at once (Kiln) or waits for a tick (Knative).
    decide_on_surge: bool,
}

#[derive(Debug, Default)]
struct Report {
    requests: u64,
    waited: u64,
    wait_sum_ms: u64,
    max_wait_ms: u64,
    wait_histogram: Vec<u64>,
    replica_ms: u64,
    ideal_replica_seconds: u64,
    scaling_actions: u64,
    peak_replicas: u32,
}

impl Report {
    fn wait_quantile_ms(&self, q: f64) -> u64 {
        let total: u64 = self.wait_histogram.iter().sum();
        let rank = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.wait_histogram.iter().enumerate() {
            seen += n;
            if seen >= rank && rank > 0 {
                return i as u64 * STEP_MS;
            }
        }
        0
    }
}

struct Fleet {
    /// When each replica is (or will be) ready, in ms.
    replicas: Vec<u64>,
    /// Waiting requests: (arrival ms, count), oldest first.
    queue: VecDeque<(u64, u64)>,
    queued: u64,
    /// Requests being served: (finish ms, count), earliest first.
    in_flight: VecDeque<(u64, u64)>,
    busy: u64,
}

impl Fleet {
    fn ready(&self, now: u64) -> u32 {
        self.replicas.iter().filter(|&&r| r <= now).count() as u32
    }

    /// Scales to `n` replicas: new ones start now; removals take starting replicas first.
    fn scale_to(&mut self, n: u32, now: u64, report: &mut Report) {
        let n = n as usize;
        if n == self.replicas.len() {
            return;
        }
        report.scaling_actions += 1;
        if n > self.replicas.len() {
            self.replicas.resize(n, now + STARTUP_MS);
        } else {
            self.replicas.sort_unstable();
            self.replicas.truncate(n);
        }
    }
}

fn run(trace: &Trace, setting: &Setting) -> Report {
    let config =
        AutoscalerConfig::from_config_map(setting.config.iter().copied()).expect("valid setting");
    let tick_ms = config.tick_interval.as_millis() as u64;
    let mut autoscaler = Autoscaler::new(config).expect("valid config");
    autoscaler.set_decide_on_surge(setting.decide_on_surge);
    let key = RevisionKey::new("default", "sim-predictor-00001");
    let scaling = RevisionScaling {
        container_concurrency: Some(CONTAINER_CONCURRENCY),
        ..Default::default()
    };
    let target = scaling
        .resolve(autoscaler.config())
        .expect("valid revision")
        .target;
    let initial = autoscaler
        .upsert_revision(key.clone(), &scaling, Duration::ZERO)
        .expect("valid revision");

    let mut report = Report {
        wait_histogram: vec![0; WAIT_BINS],
        ..Default::default()
    };
    let mut fleet = Fleet {
        replicas: Vec::new(),
        queue: VecDeque::new(),
        queued: 0,
        in_flight: VecDeque::new(),
        busy: 0,
    };
    fleet.scale_to(initial, 0, &mut report);

    // SIM_TRACE=from,to (seconds) prints each tick in that range to stderr.
    let trace_ticks: Option<(u64, u64)> = std::env::var("SIM_TRACE").ok().and_then(|v| {
        let (from, to) = v.split_once(',')?;
        Some((
            from.parse::<u64>().ok()? * 1000,
            to.parse::<u64>().ok()? * 1000,
        ))
    });
    let mut carry = 0.0;
    let mut concurrency_ms = 0u64; // sum over steps of (busy + queued) x STEP_MS, this second
    let mut arrivals_this_second = 0u64;
    let end_ms = trace.seconds * 1000;
    let mut now = 0;
    while now < end_ms {
        // Arrivals over [now, now + STEP).
        carry += (trace.rate)(now as f64 / 1000.0) * STEP_MS as f64 / 1000.0;
        let arrived = carry.floor() as u64;
        carry -= arrived as f64;
        if arrived > 0 {
            fleet.queue.push_back((now, arrived));
            fleet.queued += arrived;
            report.requests += arrived;
            arrivals_this_second += arrived;
        }
        // Completions.
        while fleet.in_flight.front().is_some_and(|&(t, _)| t <= now) {
            let (_, n) = fleet.in_flight.pop_front().expect("checked");
            fleet.busy -= n;
        }
        // Dispatch to free slots, oldest first.
        let ready = fleet.ready(now);
        let slots = u64::from(ready) * u64::from(CONTAINER_CONCURRENCY);
        let mut free = slots.saturating_sub(fleet.busy);
        while free > 0 {
            let Some((arrival, n)) = fleet.queue.front_mut() else {
                break;
            };
            let take = (*n).min(free);
            let wait = now - *arrival;
            if wait > 0 {
                report.waited += take;
                report.wait_sum_ms += wait * take;
                report.max_wait_ms = report.max_wait_ms.max(wait);
            }
            let bin = ((wait / STEP_MS) as usize).min(WAIT_BINS - 1);
            report.wait_histogram[bin] += take;
            *n -= take;
            free -= take;
            fleet.queued -= take;
            fleet.busy += take;
            fleet.in_flight.push_back((now + SERVICE_MS, take));
            if *n == 0 {
                fleet.queue.pop_front();
            }
        }
        // The router pokes while requests wait for a revision with no ready replica.
        if ready == 0
            && fleet.queued > 0
            && let Some(d) = autoscaler.poke(&key, Duration::from_millis(now))
        {
            if trace_ticks.is_some_and(|(from, to)| (from..to).contains(&now)) {
                eprintln!(
                    "t={:.1} poke -> {}",
                    now as f64 / 1000.0,
                    d.outcome.replicas
                );
            }
            fleet.scale_to(d.outcome.replicas, now, &mut report);
        }

        concurrency_ms += (fleet.busy + fleet.queued) * STEP_MS;
        report.replica_ms += fleet.replicas.len() as u64 * STEP_MS;
        report.peak_replicas = report.peak_replicas.max(fleet.replicas.len() as u32);
        now += STEP_MS;

        // One sample per second, for the second that just ended.
        if now % 1000 == 0 {
            autoscaler.set_ready(&key, fleet.ready(now));
            let sample = LoadSample {
                revision: key.clone(),
                at: Duration::from_millis(now),
                average_concurrency: concurrency_ms as f64 / 1000.0,
                requests_per_second: arrivals_this_second as f64,
            };
            if let Some(d) = autoscaler.record(&sample) {
                if trace_ticks.is_some_and(|(from, to)| (from..to).contains(&now)) {
                    eprintln!(
                        "t={:.1} decide on surge -> {}",
                        now as f64 / 1000.0,
                        d.outcome.replicas
                    );
                }
                fleet.scale_to(d.outcome.replicas, now, &mut report);
            }
            concurrency_ms = 0;
            arrivals_this_second = 0;
        }
        if now % tick_ms == 0 {
            autoscaler.set_ready(&key, fleet.ready(now));
            for d in autoscaler.tick(Duration::from_millis(now)) {
                if trace_ticks.is_some_and(|(from, to)| (from..to).contains(&now)) {
                    eprintln!(
                        "t={:.1} ready={} asked={} queued={} busy={} -> {} (panic {}, stable avg {:.1}, panic avg {:.1})",
                        now as f64 / 1000.0,
                        fleet.ready(now),
                        fleet.replicas.len(),
                        fleet.queued,
                        fleet.busy,
                        d.outcome.replicas,
                        d.outcome.decision.panicking,
                        d.outcome.decision.stable_average,
                        d.outcome.decision.panic_average,
                    );
                }
                fleet.scale_to(d.outcome.replicas, now, &mut report);
            }
        }
    }

    report.ideal_replica_seconds = (0..trace.seconds)
        .map(|s| {
            let concurrency = (trace.rate)(s as f64) * SERVICE_MS as f64 / 1000.0;
            (concurrency / target).ceil() as u64
        })
        .sum();
    report
}

/// A deterministic pseudo-random source (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }
}

/// Baseline 50 rps with spikes of 300-800 rps lasting 5-30 s, every 2-8 minutes.
fn spiky() -> Trace {
    let mut rng = Rng(4);
    let mut spikes = Vec::new();
    let mut t = 60.0;
    while t < 7200.0 {
        t += 120.0 + 360.0 * rng.next();
        let length = 5.0 + 25.0 * rng.next();
        let height = 300.0 + 500.0 * rng.next();
        spikes.push((t, t + length, height));
    }
    Trace {
        seconds: 7200,
        rate: Box::new(move |t| {
            spikes
                .iter()
                .find(|(from, to, _)| (*from..*to).contains(&t))
                .map_or(50.0, |s| s.2)
        }),
    }
}

fn step(at: f64) -> Trace {
    Trace {
        seconds: 900,
        rate: Box::new(move |t| if t >= at { 500.0 } else { 0.0 }),
    }
}

/// 0 to 500 rps and back over `period` seconds, starting at the trough.
fn sine(period: u64) -> Trace {
    let p = period as f64;
    Trace {
        seconds: period,
        rate: Box::new(move |t| 250.0 * (1.0 - (2.0 * PI * t / p).cos())),
    }
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "knative-exact (defaults, decisions at ticks only)",
        config: &[],
        decide_on_surge: false,
    },
    Setting {
        name: "kiln-defaults (Knative defaults + decide on surge)",
        config: &[],
        decide_on_surge: true,
    },
    Setting {
        name: "tick-1s",
        config: &[("tick-interval", "1s")],
        decide_on_surge: true,
    },
    Setting {
        name: "capped (max-scale 40)",
        config: &[("max-scale", "40")],
        decide_on_surge: true,
    },
    Setting {
        name: "capped + scale-down-delay 60s",
        config: &[("max-scale", "40"), ("scale-down-delay", "60s")],
        decide_on_surge: true,
    },
];

fn print_row(trace: &str, setting: &str, r: &Report) {
    let ratio = r.replica_ms as f64 / 1000.0 / r.ideal_replica_seconds as f64;
    println!(
        "| {trace} | {setting} | {} | {} ({:.2}%) | {:.1} | {:.2} | {:.1} | {:.0} | {} | {:.3} | {} | {} |",
        r.requests,
        r.waited,
        100.0 * r.waited as f64 / r.requests.max(1) as f64,
        r.max_wait_ms as f64 / 1000.0,
        if r.waited > 0 {
            r.wait_sum_ms as f64 / r.waited as f64 / 1000.0
        } else {
            0.0
        },
        r.wait_quantile_ms(0.99) as f64 / 1000.0,
        r.replica_ms as f64 / 1000.0,
        r.ideal_replica_seconds,
        ratio,
        r.scaling_actions,
        r.peak_replicas,
    );
}

fn main() {
    println!(
        "kiln-autoscaler simulation: {STEP_MS} ms steps, service time {SERVICE_MS} ms, \
         start-up {STARTUP_MS} ms, containerConcurrency {CONTAINER_CONCURRENCY} \
         (target {} per replica)\n",
        f64::from(CONTAINER_CONCURRENCY) * 0.7
    );
    println!(
        "| trace | setting | requests | waited | max wait s | mean wait s (of those waiting) \
         | p99 wait s | replica-s | ideal replica-s | ratio | scaling actions | peak replicas |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");

    let mut goals = Vec::new();
    for setting in SETTINGS {
        let tick = AutoscalerConfig::from_config_map(setting.config.iter().copied())
            .expect("valid")
            .tick_interval;
        // The step from 0 to 500 rps at t = 300 s (the revision is at zero by then), at
        // twenty phases against the tick: report the worst.
        let (worst_phase, worst) = (0..20)
            .map(|i| {
                let at = 300.0 + f64::from(i) * 0.1;
                (at, run(&step(at), setting))
            })
            .max_by_key(|(_, r)| r.max_wait_ms)
            .expect("twenty runs");
        print_row(
            &format!("step @{worst_phase:.1}s (worst of 20 phases)"),
            setting.name,
            &worst,
        );
        let limit = STARTUP_MS + tick.as_millis() as u64;
        goals.push(format!(
            "step, {}: max wait {:.1} s vs start-up + one tick {:.1} s: {}",
            setting.name,
            worst.max_wait_ms as f64 / 1000.0,
            limit as f64 / 1000.0,
            if worst.max_wait_ms <= limit {
                "MET"
            } else {
                "MISSED"
            }
        ));

        let r = run(&sine(86_400), setting);
        print_row("sine (24 h)", setting.name, &r);
        let ratio = r.replica_ms as f64 / 1000.0 / r.ideal_replica_seconds as f64;
        goals.push(format!(
            "sine, {}: replica-seconds {:.3} x ideal (goal within 20%): {}",
            setting.name,
            ratio,
            if (0.8..=1.2).contains(&ratio) {
                "MET"
            } else {
                "MISSED"
            }
        ));

        print_row(
            "sine (1 h period, stress)",
            setting.name,
            &run(&sine(3_600), setting),
        );
        print_row("spiky (2 h)", setting.name, &run(&spiky(), setting));
    }
    println!("\nGoals:");
    for g in goals {
        println!("- {g}");
    }
}
