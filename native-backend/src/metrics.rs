//! Prometheus metrics, rendered in the text exposition format.
//!
//! One [`Metrics`] per process; the HTTP middleware records requests, the engine
//! records inference, queue depth, audio produced and cancellations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        for (c, b) in self.counts.iter_mut().zip(BUCKETS) {
            if v <= b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    request_seconds: Mutex<BTreeMap<String, Histogram>>,
    inference_seconds: Mutex<Histogram>,
    ttfa_seconds: Mutex<Histogram>,
    pub queue_depth: AtomicI64,
    pub in_flight: AtomicI64,
    audio_millis: AtomicU64,
    pub chunks: AtomicU64,
    pub cancelled_jobs: AtomicU64,
    pub client_disconnects: AtomicU64,
    pub rejected: AtomicU64,
    pub nonfinite_samples: AtomicU64,
    pub worker_panics: AtomicU64,
    /// The fastest decode seen (the warm one at start, then every request's) per
    /// 25 ms frame, in thousandths of those 25 ms (0 before), and the slowest
    /// pace the streamed windows keep a player fed at.
    pub decoder_pace_milli: AtomicU64,
    pub windows_safe_pace_milli: AtomicU64,
    /// The connection loop's counters (open, refused, slow clients).
    pub connections: std::sync::Arc<kokoro_serve::Stats>,
    /// Wyoming connections open, and Wyoming requests ended by mode (`synthesize`,
    /// `stream`: synthesize-start .. stop) and outcome (`ok`, `error`).
    pub wyoming_connections: AtomicI64,
    wyoming_requests: [AtomicU64; 4],
}

/// The method label: the methods a route can have, and "other" for anything else
/// (a raw method would let a client grow `/metrics` without bound).
pub fn method_label(m: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"];
    KNOWN.into_iter().find(|k| *k == m).unwrap_or("other")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// `route` must come from a bounded set (the matched route pattern).
    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        *lock(&self.requests)
            .entry((method_label(method).to_string(), route.to_string(), status))
            .or_default() += 1;
        lock(&self.request_seconds)
            .entry(route.to_string())
            .or_default()
            .observe(seconds);
    }

    /// A decode of `micros` microseconds per frame: the pace gauge keeps the fastest.
    pub fn record_decoder_pace(&self, micros: u64) {
        if micros == 0 {
            return;
        }
        let milli = (micros * 1000).div_ceil(25_000).max(1);
        let _ = self
            .decoder_pace_milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                (old == 0 || milli < old).then_some(milli)
            });
    }

    /// A Wyoming request ended: streamed (synthesize-start .. stop) or not, and
    /// whether its audio was all sent.
    pub fn record_wyoming(&self, streamed: bool, ok: bool) {
        self.wyoming_requests[usize::from(streamed) * 2 + usize::from(!ok)]
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_inference(&self, seconds: f64) {
        lock(&self.inference_seconds).observe(seconds);
    }

    pub fn record_ttfa(&self, seconds: f64) {
        lock(&self.ttfa_seconds).observe(seconds);
    }

    pub fn add_audio_samples(&self, samples: usize) {
        let ms = samples as u64 * 1000 / u64::from(kokoro_core::SAMPLE_RATE);
        self.audio_millis.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP kokoro_http_requests_total HTTP requests by method, route and status.\n# TYPE kokoro_http_requests_total counter\n");
        for ((m, r, s), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "kokoro_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
            );
        }
        out.push_str("# HELP kokoro_http_request_duration_seconds Time to the response head.\n# TYPE kokoro_http_request_duration_seconds histogram\n");
        for (r, h) in lock(&self.request_seconds).iter() {
            h.render(
                &mut out,
                "kokoro_http_request_duration_seconds",
                &format!("route=\"{r}\""),
            );
        }
        out.push_str("# HELP kokoro_inference_seconds Model time per inference call.\n# TYPE kokoro_inference_seconds histogram\n");
        lock(&self.inference_seconds).render(&mut out, "kokoro_inference_seconds", "");
        out.push_str("# HELP kokoro_time_to_first_audio_seconds Request start to first audio chunk.\n# TYPE kokoro_time_to_first_audio_seconds histogram\n");
        lock(&self.ttfa_seconds).render(&mut out, "kokoro_time_to_first_audio_seconds", "");
        out.push_str("# HELP kokoro_wyoming_requests_total Wyoming requests by mode and outcome.\n# TYPE kokoro_wyoming_requests_total counter\n");
        for (i, n) in self.wyoming_requests.iter().enumerate() {
            let mode = if i / 2 == 1 { "stream" } else { "synthesize" };
            let outcome = if i % 2 == 1 { "error" } else { "ok" };
            let _ = writeln!(
                out,
                "kokoro_wyoming_requests_total{{mode=\"{mode}\",outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "kokoro_queue_depth",
                "Inference jobs waiting for a worker.",
                self.queue_depth.load(Ordering::Relaxed) as f64,
                "gauge",
            ),
            (
                "kokoro_requests_in_flight",
                "Speech requests admitted and not finished.",
                self.in_flight.load(Ordering::Relaxed) as f64,
                "gauge",
            ),
            (
                "kokoro_audio_seconds_total",
                "Audio produced.",
                self.audio_millis.load(Ordering::Relaxed) as f64 / 1000.0,
                "counter",
            ),
            (
                "kokoro_chunks_total",
                "Chunks synthesized.",
                self.chunks.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_cancelled_jobs_total",
                "Queued inference jobs skipped because their client left.",
                self.cancelled_jobs.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_client_disconnects_total",
                "Streams stopped because the client disconnected.",
                self.client_disconnects.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_worker_panics_total",
                "Inference jobs that panicked (their worker's model was rebuilt).",
                self.worker_panics.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_decoder_pace_ratio",
                "The fastest decode's time per 25 ms frame over those 25 ms (warm-up at start, then requests; 0 before).",
                self.decoder_pace_milli.load(Ordering::Relaxed) as f64 / 1000.0,
                "gauge",
            ),
            (
                "kokoro_stream_windows_safe_pace_ratio",
                "The slowest decoder pace at which streamed windows keep a real-time player fed.",
                self.windows_safe_pace_milli.load(Ordering::Relaxed) as f64 / 1000.0,
                "gauge",
            ),
            (
                "kokoro_open_connections",
                "HTTP connections open.",
                self.connections.open.load(Ordering::Relaxed) as f64,
                "gauge",
            ),
            (
                "kokoro_wyoming_connections",
                "Wyoming connections open.",
                self.wyoming_connections.load(Ordering::Relaxed) as f64,
                "gauge",
            ),
            (
                "kokoro_refused_connections_total",
                "Connections closed at accept because the connection cap was reached.",
                self.connections.refused.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_slow_clients_total",
                "Connections closed because a response write made no progress in time.",
                self.connections.slow_clients.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_accept_errors_total",
                "Failed accept calls (the server went on).",
                self.connections.accept_errors.load(Ordering::Relaxed) as f64,
                "counter",
            ),
            (
                "kokoro_rejected_total",
                "Requests answered 429 (queue full).",
                self.rejected.load(Ordering::Relaxed) as f64,
                "counter",
            ),
        ];
        for (name, help, v, kind) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_gauge_keeps_the_fastest_decode() {
        let m = Metrics::default();
        m.record_decoder_pace(0);
        assert!(m.render().contains("\nkokoro_decoder_pace_ratio 0\n"));
        m.record_decoder_pace(14_500);
        assert!(m.render().contains("\nkokoro_decoder_pace_ratio 0.58\n"));
        m.record_decoder_pace(6_000);
        m.record_decoder_pace(9_000);
        m.record_decoder_pace(0);
        assert!(m.render().contains("\nkokoro_decoder_pace_ratio 0.24\n"));
    }

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record_request("POST", "/v1/audio/speech", 200, 0.3);
        m.record_request("POST", "/v1/audio/speech", 200, 0.7);
        m.record_inference(0.2);
        m.add_audio_samples(48_000);
        let text = m.render();
        assert!(text.contains("kokoro_http_requests_total{method=\"POST\",route=\"/v1/audio/speech\",status=\"200\"} 2"));
        assert!(text.contains(
            "kokoro_http_request_duration_seconds_bucket{route=\"/v1/audio/speech\",le=\"0.5\"} 1"
        ));
        assert!(text.contains("kokoro_inference_seconds_count 1"));
        assert!(text.contains("kokoro_audio_seconds_total 2"));
        let before = m.render().len();
        for i in 0..5 {
            m.record_request(&format!("{}{i}", "X".repeat(8192)), "unmatched", 405, 0.0);
        }
        let text = m.render();
        // One counter line and one histogram for the route, not 40 KB of methods.
        assert!(text.len() < before + 1500, "{} -> {}", before, text.len());
        assert!(!text.contains("XXXX"));
        assert!(text.contains("method=\"other\",route=\"unmatched\",status=\"405\"} 5"));
    }

    #[test]
    fn wyoming_requests_are_counted_by_mode_and_outcome() {
        let m = Metrics::default();
        m.record_wyoming(false, true);
        m.record_wyoming(false, true);
        m.record_wyoming(true, false);
        let text = m.render();
        assert!(
            text.contains("kokoro_wyoming_requests_total{mode=\"synthesize\",outcome=\"ok\"} 2\n")
        );
        assert!(
            text.contains(
                "kokoro_wyoming_requests_total{mode=\"synthesize\",outcome=\"error\"} 0\n"
            )
        );
        assert!(
            text.contains("kokoro_wyoming_requests_total{mode=\"stream\",outcome=\"error\"} 1\n")
        );
        assert!(text.contains("kokoro_wyoming_requests_total{mode=\"stream\",outcome=\"ok\"} 0\n"));
    }
}
