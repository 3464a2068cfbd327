//! Prometheus metrics of the API, kept and rendered by `prometheus-client` in the Prometheus
//! text exposition format (version 0.0.4, [`CONTENT_TYPE`]).
//!
//! The counters and histograms live for the whole server; the gauges (in-flight requests,
//! gallery size, Milvus reachability) are read at each scrape and registered with a registry
//! built for that scrape, so that a gallery that did not answer leaves its gauges out.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::access::Outcome;
use crate::gallery::{RemoteState, Stats};

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A stage of a request that is timed.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Decode,
    DetectEmbed,
    Gallery,
}

impl Stage {
    const ALL: [Stage; 3] = [Stage::Decode, Stage::DetectEmbed, Stage::Gallery];

    fn label(self) -> StageLabels {
        StageLabels {
            stage: match self {
                Stage::Decode => "decode",
                Stage::DetectEmbed => "detect_embed",
                Stage::Gallery => "gallery",
            },
        }
    }
}

const DECISION_ACTIONS: [&str; 2] = ["verify", "identify"];

/// The outcomes a verify or identify decision is counted under.
const DECISION_OUTCOMES: [Outcome; 4] = [
    Outcome::Granted,
    Outcome::Denied,
    Outcome::Unknown,
    Outcome::NoFace,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    action: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

fn stage_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub struct Metrics {
    decisions: Family<DecisionLabels, Counter>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    /// Errors from the central gallery that reached the API.
    milvus_errors: Counter,
    busy: Counter,
    rate_limited: Counter,
    enrolled: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            decisions: Family::default(),
            stages: Family::new_with_constructor(stage_histogram),
            milvus_errors: Counter::default(),
            busy: Counter::default(),
            rate_limited: Counter::default(),
            enrolled: Counter::default(),
        };
        // Every series from the first scrape on, at zero until something happens.
        for action in DECISION_ACTIONS {
            for outcome in DECISION_OUTCOMES {
                drop(m.decisions.get_or_create(&DecisionLabels {
                    action,
                    outcome: outcome.as_str(),
                }));
            }
        }
        for stage in Stage::ALL {
            drop(m.stages.get_or_create(&stage.label()));
        }
        m
    }
}

impl Metrics {
    pub fn decision(&self, identify: bool, outcome: Outcome) {
        if DECISION_OUTCOMES.contains(&outcome) {
            let labels = DecisionLabels {
                action: DECISION_ACTIONS[usize::from(identify)],
                outcome: outcome.as_str(),
            };
            self.decisions.get_or_create(&labels).inc();
        }
    }

    pub fn stage(&self, stage: Stage, d: Duration) {
        self.stages
            .get_or_create(&stage.label())
            .observe(d.as_secs_f64());
    }

    pub fn milvus_error(&self) {
        self.milvus_errors.inc();
    }

    pub fn busy(&self) {
        self.busy.inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub fn enrolled(&self, n: usize) {
        self.enrolled.inc_by(n as u64);
    }

    /// The exposition text. `stats` is `None` when the gallery could not be asked.
    pub fn render(&self, stats: Option<&Stats>, in_flight: usize, slots: usize) -> String {
        let mut r = Registry::with_prefix("facegate");
        // Counters are named without `_total`: the encoder adds it.
        r.register(
            "decisions",
            "Verify and identify decisions by outcome.",
            self.decisions.clone(),
        );
        r.register(
            "stage_seconds",
            "Time spent per request stage.",
            self.stages.clone(),
        );
        r.register(
            "enrolled_templates",
            "Face templates enrolled through the API.",
            self.enrolled.clone(),
        );
        r.register(
            "milvus_errors",
            "Central gallery (Milvus) errors seen by the API.",
            self.milvus_errors.clone(),
        );
        r.register(
            "busy_rejections",
            "Requests refused with 503 because the inference queue was full.",
            self.busy.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused with 429 by the per-client rate limit.",
            self.rate_limited.clone(),
        );
        let mut gauge = |name: &str, help: &str, v: usize| {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
            r.register(name, help, g);
        };
        gauge(
            "inference_in_flight",
            "Image requests running or waiting for an inference slot.",
            in_flight,
        );
        gauge(
            "inference_slots",
            "Inference slots (concurrent pipelines).",
            slots,
        );
        gauge(
            "gallery_up",
            "1 when the gallery answered this scrape.",
            usize::from(stats.is_some()),
        );
        if let Some(s) = stats {
            gauge(
                "gallery_persons",
                "Persons in the local gallery.",
                s.persons,
            );
            gauge(
                "gallery_templates",
                "Face templates in the local gallery.",
                s.templates,
            );
            gauge(
                "outbox_depth",
                "Writes queued for the central gallery.",
                s.outbox_depth,
            );
            let online = match s.remote {
                RemoteState::None => None,
                RemoteState::Online => Some(1),
                RemoteState::Offline { .. } => Some(0),
            };
            if let Some(v) = online {
                gauge(
                    "milvus_online",
                    "1 when the central gallery (Milvus) is reachable.",
                    v,
                );
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &r);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::ModelTag;

    fn stats(remote: RemoteState) -> Stats {
        Stats {
            model: ModelTag::new("test", 512),
            persons: 2,
            templates: 5,
            outbox_depth: 1,
            bytes_per_template: 2048,
            remote,
            last_sync_ms: 0,
            remote_templates: None,
        }
    }

    /// Every sample's metric name, the `# HELP` and `# TYPE` lines before it, and the types.
    fn families(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let help = line
                .strip_prefix("# HELP ")
                .unwrap_or_else(|| panic!("expected # HELP, got {line:?}\n{text}"));
            let (name, help) = help.split_once(' ').unwrap();
            assert!(help.ends_with('.'), "{name}: {help:?}");
            let ty = lines.next().unwrap().strip_prefix("# TYPE ").unwrap();
            let (ty_name, ty) = ty.split_once(' ').unwrap();
            assert_eq!(ty_name, name);
            let mut samples = 0;
            while let Some(s) = lines.next_if(|l| !l.starts_with('#')) {
                let sample_name = s.split(['{', ' ']).next().unwrap();
                let ok = match ty {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| sample_name == format!("{name}{suffix}")),
                    _ => sample_name == name,
                };
                assert!(ok, "{s} under {name} ({ty})");
                let value = s.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{s}");
                samples += 1;
            }
            assert!(samples > 0, "{name} has no samples");
            out.push((name.to_owned(), ty.to_owned()));
        }
        out
    }

    #[test]
    fn every_metric_keeps_its_name_type_and_help() {
        let m = Metrics::default();
        let text = m.render(Some(&stats(RemoteState::Online)), 1, 2);
        let got = families(&text);
        let expected = [
            ("facegate_decisions_total", "counter"),
            ("facegate_stage_seconds", "histogram"),
            ("facegate_enrolled_templates_total", "counter"),
            ("facegate_milvus_errors_total", "counter"),
            ("facegate_busy_rejections_total", "counter"),
            ("facegate_rate_limited_total", "counter"),
            ("facegate_inference_in_flight", "gauge"),
            ("facegate_inference_slots", "gauge"),
            ("facegate_gallery_up", "gauge"),
            ("facegate_gallery_persons", "gauge"),
            ("facegate_gallery_templates", "gauge"),
            ("facegate_outbox_depth", "gauge"),
            ("facegate_milvus_online", "gauge"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(got, expected, "{text}");
        for line in [
            "facegate_inference_in_flight 1",
            "facegate_inference_slots 2",
            "facegate_gallery_up 1",
            "facegate_gallery_persons 2",
            "facegate_gallery_templates 5",
            "facegate_outbox_depth 1",
            "facegate_milvus_online 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
        // The gallery's gauges are left out when it did not answer; Milvus's when there is none.
        let down = m.render(None, 0, 2);
        assert!(down.contains("facegate_gallery_up 0\n"), "{down}");
        assert!(!down.contains("facegate_gallery_persons"), "{down}");
        let local = m.render(Some(&stats(RemoteState::None)), 0, 2);
        assert!(!local.contains("facegate_milvus_online"), "{local}");
    }

    #[test]
    fn decisions_are_counted_by_action_and_outcome_from_zero() {
        let m = Metrics::default();
        let text = m.render(None, 0, 1);
        for action in DECISION_ACTIONS {
            for outcome in ["granted", "denied", "unknown", "no_face"] {
                let line = format!(
                    "facegate_decisions_total{{action=\"{action}\",outcome=\"{outcome}\"}} 0"
                );
                assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
            }
        }
        m.decision(true, Outcome::Granted);
        m.decision(true, Outcome::Granted);
        m.decision(false, Outcome::Denied);
        // Not a decision outcome: not counted, no new series.
        m.decision(false, Outcome::Enrolled);
        m.enrolled(3);
        m.busy();
        m.rate_limited();
        m.milvus_error();
        let text = m.render(None, 0, 1);
        for line in [
            "facegate_decisions_total{action=\"identify\",outcome=\"granted\"} 2",
            "facegate_decisions_total{action=\"verify\",outcome=\"denied\"} 1",
            "facegate_decisions_total{action=\"verify\",outcome=\"granted\"} 0",
            "facegate_enrolled_templates_total 3",
            "facegate_busy_rejections_total 1",
            "facegate_rate_limited_total 1",
            "facegate_milvus_errors_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
        assert!(!text.contains("enrolled\""), "{text}");
        assert_eq!(text.matches("facegate_decisions_total{").count(), 8);
    }

    #[test]
    fn stage_histograms_keep_their_buckets() {
        let m = Metrics::default();
        m.stage(Stage::Gallery, Duration::from_millis(3));
        m.stage(Stage::Gallery, Duration::from_millis(700));
        m.stage(Stage::Gallery, Duration::from_secs(9));
        let text = m.render(None, 0, 1);
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("facegate_stage_seconds_bucket{stage=\"gallery\""))
            .collect();
        let les: Vec<&str> = buckets
            .iter()
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(
            les,
            [
                "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                "2.5", "5", "+Inf"
            ],
            "{text}"
        );
        // Cumulative: 3 ms is in the 0.005 bucket, 0.7 s in the 1 s one, 9 s only in +Inf.
        let counts: Vec<u64> = buckets
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts, [0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3], "{text}");
        assert!(
            text.contains("facegate_stage_seconds_count{stage=\"gallery\"} 3\n"),
            "{text}"
        );
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("facegate_stage_seconds_sum{stage=\"gallery\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 9.703).abs() < 1e-9, "{sum}");
        // The other stages are there, empty.
        assert!(
            text.contains("facegate_stage_seconds_count{stage=\"decode\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("facegate_stage_seconds_count{stage=\"detect_embed\"} 0\n"),
            "{text}"
        );
    }
}
