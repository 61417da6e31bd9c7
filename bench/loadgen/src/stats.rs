//! Latency samples per step, error counts by kind, and what the report shows of them.
//! Samples are kept exactly (µs, `u32`): a 20-second run at 50 k requests/s is 4 MB.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Default)]
pub struct Stats {
    /// Step name → latencies in µs.
    pub steps: BTreeMap<&'static str, Vec<u32>>,
    pub errors: BTreeMap<String, u64>,
    pub flows: u64,
}

impl Stats {
    pub fn record(&mut self, step: &'static str, micros: u128) {
        self.steps
            .entry(step)
            .or_default()
            .push(micros.min(u32::MAX as u128) as u32);
    }

    pub fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: Stats) {
        for (k, mut v) in other.steps {
            self.steps.entry(k).or_default().append(&mut v);
        }
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.flows += other.flows;
    }
}

/// Latency summary in milliseconds.
#[derive(Serialize, Clone)]
pub struct Summary {
    pub count: usize,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn summarize(samples: &mut [u32], secs: f64) -> Summary {
    samples.sort_unstable();
    let pct = |p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[i.clamp(1, samples.len()) - 1] as f64 / 1000.0
    };
    Summary {
        count: samples.len(),
        per_sec: samples.len() as f64 / secs,
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        max_ms: samples.last().map_or(0.0, |m| *m as f64 / 1000.0),
    }
}
