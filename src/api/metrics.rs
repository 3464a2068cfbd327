//! Prometheus metrics, hand-written in the text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::access::Outcome;
use crate::gallery::{RemoteState, Stats};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// A stage of a request that is timed.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Decode,
    DetectEmbed,
    Gallery,
}

const DECISION_ACTIONS: [&str; 2] = ["verify", "identify"];

#[derive(Default)]
pub struct Metrics {
    decisions: [[AtomicU64; Outcome::ALL.len()]; DECISION_ACTIONS.len()],
    decode: Histogram,
    detect_embed: Histogram,
    gallery: Histogram,
    /// Errors from the central gallery that reached the API.
    milvus_errors: AtomicU64,
    busy: AtomicU64,
    rate_limited: AtomicU64,
    enrolled: AtomicU64,
}

impl Metrics {
    pub fn decision(&self, identify: bool, outcome: Outcome) {
        let a = usize::from(identify);
        if let Some(i) = Outcome::ALL.iter().position(|o| *o == outcome) {
            self.decisions[a][i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stage(&self, stage: Stage, d: Duration) {
        match stage {
            Stage::Decode => self.decode.observe(d),
            Stage::DetectEmbed => self.detect_embed.observe(d),
            Stage::Gallery => self.gallery.observe(d),
        }
    }

    pub fn milvus_error(&self) {
        self.milvus_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn enrolled(&self, n: usize) {
        self.enrolled.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The exposition text. `stats` is `None` when the gallery could not be asked.
    pub fn render(&self, stats: Option<&Stats>, in_flight: usize, slots: usize) -> String {
        let mut o = String::new();
        o.push_str("# HELP facegate_decisions_total Verify and identify decisions by outcome.\n");
        o.push_str("# TYPE facegate_decisions_total counter\n");
        for (a, action) in DECISION_ACTIONS.iter().enumerate() {
            for (i, outcome) in Outcome::ALL.iter().enumerate() {
                if matches!(
                    outcome,
                    Outcome::Granted | Outcome::Denied | Outcome::Unknown | Outcome::NoFace
                ) {
                    let n = self.decisions[a][i].load(Ordering::Relaxed);
                    let _ = writeln!(
                        o,
                        "facegate_decisions_total{{action=\"{action}\",outcome=\"{}\"}} {n}",
                        outcome.as_str()
                    );
                }
            }
        }
        o.push_str("# HELP facegate_stage_seconds Time spent per request stage.\n");
        o.push_str("# TYPE facegate_stage_seconds histogram\n");
        self.decode
            .render(&mut o, "facegate_stage_seconds", "stage=\"decode\"");
        self.detect_embed
            .render(&mut o, "facegate_stage_seconds", "stage=\"detect_embed\"");
        self.gallery
            .render(&mut o, "facegate_stage_seconds", "stage=\"gallery\"");
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |o: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        counter(
            &mut o,
            "facegate_enrolled_templates_total",
            "Face templates enrolled through the API.",
            self.enrolled.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "facegate_milvus_errors_total",
            "Central gallery (Milvus) errors seen by the API.",
            self.milvus_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "facegate_busy_rejections_total",
            "Requests refused with 503 because the inference queue was full.",
            self.busy.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "facegate_rate_limited_total",
            "Requests refused with 429 by the per-client rate limit.",
            self.rate_limited.load(Ordering::Relaxed),
        );
        gauge(
            &mut o,
            "facegate_inference_in_flight",
            "Image requests running or waiting for an inference slot.",
            in_flight as f64,
        );
        gauge(
            &mut o,
            "facegate_inference_slots",
            "Inference slots (concurrent pipelines).",
            slots as f64,
        );
        gauge(
            &mut o,
            "facegate_gallery_up",
            "1 when the gallery answered this scrape.",
            if stats.is_some() { 1.0 } else { 0.0 },
        );
        if let Some(s) = stats {
            gauge(
                &mut o,
                "facegate_gallery_persons",
                "Persons in the local gallery.",
                s.persons as f64,
            );
            gauge(
                &mut o,
                "facegate_gallery_templates",
                "Face templates in the local gallery.",
                s.templates as f64,
            );
            gauge(
                &mut o,
                "facegate_outbox_depth",
                "Writes queued for the central gallery.",
                s.outbox_depth as f64,
            );
            let online = match s.remote {
                RemoteState::None => None,
                RemoteState::Online => Some(1.0),
                RemoteState::Offline { .. } => Some(0.0),
            };
            if let Some(v) = online {
                gauge(
                    &mut o,
                    "facegate_milvus_online",
                    "1 when the central gallery (Milvus) is reachable.",
                    v,
                );
            }
        }
        o
    }
}
