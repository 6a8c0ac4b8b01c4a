//! Prometheus metrics of the agent, served by the admin endpoint, and the
//! one piece of state readiness depends on besides the scheduler: whether
//! the store accepted the agent's last write. Evidence that cannot be kept
//! makes the agent unready (and counted) until a write succeeds again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The agent's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    runs: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    last_success: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_attempt: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    expected_interval: Family<Labels, Gauge>,
    /// Per collector instance: the longest gap of its schedule, in seconds
    /// (set by the scheduler), and the streams seen so far; each stream
    /// exports the gap once both are known.
    intervals: Mutex<HashMap<String, Schedules>>,
    missed: Family<Labels, Counter>,
    records: Counter,
    in_flight: Gauge,
    spool_depth: Gauge,
    spool_age: Gauge,
    tsa_requests: Family<Labels, Counter>,
    untimestamped: Gauge,
    store_write_errors: Counter,
    stream_write_errors: Family<Labels, Counter>,
    store_writable: Gauge,
    /// Whether the last write to the store succeeded; with the cause of the
    /// last failure, for `/readyz` to say.
    writable: AtomicBool,
    last_write_error: Mutex<Option<String>>,
    /// Records refused by the store and not yet written.
    pending: AtomicUsize,
    pending_gauge: Gauge,
    /// The head of each agent's checkpoint chain: one series at a time.
    head: Family<Labels, Gauge>,
    heads: Mutex<HashMap<String, Labels>>,
}

#[derive(Default)]
struct Schedules {
    gap: Option<i64>,
    streams: BTreeSet<String>,
    /// A stream published before the instance wrote any (the one its
    /// records are expected in); dropped once the instance writes another.
    expected: Option<String>,
}

fn labels(collector: &str, stream: &str) -> Labels {
    vec![
        ("collector".to_string(), collector.to_string()),
        ("stream".to_string(), stream.to_string()),
    ]
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("exhibit");
        let runs = Family::<Labels, Counter>::default();
        // Buckets from 50 ms to ~14 min: collections span that whole range.
        let duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.05, 0.2, 1.0, 5.0, 15.0, 60.0, 180.0, 420.0, 840.0])
        });
        let last_success = Family::default();
        let last_attempt = Family::default();
        let expected_interval = Family::default();
        let missed = Family::default();
        let records = Counter::default();
        let in_flight = Gauge::default();
        registry.register(
            "collections",
            "Collection attempts by collector, stream and status",
            runs.clone(),
        );
        registry.register(
            "collection_duration_seconds",
            "Duration of collection attempts, retries included",
            duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful collection per stream",
            last_success.clone(),
        );
        registry.register(
            "last_attempt_timestamp_seconds",
            "Unix time of the last collection attempt per stream",
            last_attempt.clone(),
        );
        registry.register(
            "stream_expected_interval_seconds",
            "Longest wait between two consecutive slots of the stream's schedule: its last success may be this old on schedule",
            expected_interval.clone(),
        );
        registry.register(
            "missed_slots",
            "Scheduled slots that did not run, per stream",
            missed.clone(),
        );
        registry.register(
            "records_written",
            "Records written to the store",
            records.clone(),
        );
        registry.register(
            "collections_in_flight",
            "Collections running now",
            in_flight.clone(),
        );
        let spool_depth = Gauge::default();
        let spool_age = Gauge::default();
        registry.register(
            "spool_depth",
            "Objects written to the local spool and not yet shipped to the store",
            spool_depth.clone(),
        );
        registry.register(
            "spool_oldest_age_seconds",
            "Age of the oldest unshipped object in the spool (0 when empty)",
            spool_age.clone(),
        );
        let tsa_requests = Family::<Labels, Counter>::default();
        let untimestamped = Gauge::default();
        registry.register(
            "tsa_requests",
            "RFC 3161 timestamp requests by TSA (host) and result: ok, unreachable, http_error, rejected, invalid",
            tsa_requests.clone(),
        );
        registry.register(
            "checkpoints_untimestamped",
            "Checkpoints of this agent still waiting for an RFC 3161 token",
            untimestamped.clone(),
        );
        let store_write_errors = Counter::default();
        let stream_write_errors = Family::<Labels, Counter>::default();
        let store_writable = Gauge::default();
        let start_time = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "store_write_errors",
            "Writes to the evidence store that failed (records, payloads, checkpoints)",
            store_write_errors.clone(),
        );
        registry.register(
            "stream_write_errors",
            "Records of a stream that could not be written to the store when due (they are written once the store accepts writes again)",
            stream_write_errors.clone(),
        );
        registry.register(
            "store_writable",
            "1 while the store accepts the agent's writes, 0 from a failed write until a write succeeds",
            store_writable.clone(),
        );
        registry.register(
            "agent_start_time_seconds",
            "Unix time the agent started: a stream with no success yet is stale once its schedule's interval has passed since then",
            start_time.clone(),
        );
        let pending_gauge = Gauge::default();
        registry.register(
            "records_pending",
            "Records the store refused when they were due, waiting to be written",
            pending_gauge.clone(),
        );
        store_writable.set(1);
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        let head = Family::<Labels, Gauge>::default();
        registry.register(
            "evidence_head_info",
            "The head of the agent's checkpoint chain: the SHA-256 of its newest checkpoint, as `collect` and `verify` print it (note it; `verify --known-head` checks it later)",
            head.clone(),
        );
        Metrics {
            store_write_errors,
            stream_write_errors,
            store_writable,
            writable: AtomicBool::new(true),
            last_write_error: Mutex::new(None),
            pending: AtomicUsize::new(0),
            pending_gauge,
            head,
            heads: Mutex::new(HashMap::new()),
            tsa_requests,
            untimestamped,
            spool_depth,
            spool_age,
            registry: Mutex::new(registry),
            runs,
            duration,
            last_success,
            last_attempt,
            expected_interval,
            intervals: Mutex::new(HashMap::new()),
            missed,
            records,
            in_flight,
        }
    }

    /// Sets how long `collector`'s schedule may leave between two slots
    /// (see [`crate::schedule::Schedule::longest_gap_after`]); each of its
    /// streams exports it, from its first attempt on or from now if it was
    /// seen before, with the same labels as its last-success gauge, so that
    /// an alert can compare the two.
    pub fn expected_interval(&self, collector: &str, seconds: u64) {
        let secs = i64::try_from(seconds).unwrap_or(i64::MAX);
        let mut all = self.intervals.lock().expect("metrics lock");
        let entry = all.entry(collector.to_string()).or_default();
        entry.gap = Some(secs);
        for stream in &entry.streams {
            self.expected_interval
                .get_or_create(&labels(collector, stream))
                .set(secs);
        }
    }

    fn stream_seen(&self, l: &Labels, collector: &str, stream: &str) {
        let mut all = self.intervals.lock().expect("metrics lock");
        let entry = all.entry(collector.to_string()).or_default();
        if !entry.streams.contains(stream) {
            entry.streams.insert(stream.to_string());
        }
        // The instance wrote a stream of its own: the one published in its
        // stead at start-up goes, unless it is this one.
        if let Some(expected) = entry.expected.take()
            && expected != stream
        {
            entry.streams.remove(&expected);
            let gone = labels(collector, &expected);
            self.expected_interval.remove(&gone);
            self.last_success.remove(&gone);
            self.last_attempt.remove(&gone);
        }
        if let Some(secs) = entry.gap {
            self.expected_interval.get_or_create(l).set(secs);
        }
    }

    /// Publishes the streams `collector` is known to write, before it has
    /// run: their last success and attempt at 0 (never), and their expected
    /// interval once measured, so that a staleness alert fires for a stream
    /// that never succeeds. `known` are the streams the store holds; with
    /// none, `expected` stands in (the stream the instance's first record
    /// is expected in) until the instance writes a stream.
    pub fn expect_streams(&self, collector: &str, known: &[String], expected: &str) {
        let mut all = self.intervals.lock().expect("metrics lock");
        let entry = all.entry(collector.to_string()).or_default();
        let streams: Vec<String> = if known.is_empty() {
            if entry.streams.is_empty() {
                entry.expected = Some(expected.to_string());
                vec![expected.to_string()]
            } else {
                Vec::new()
            }
        } else {
            known.to_vec()
        };
        for stream in streams {
            let l = labels(collector, &stream);
            entry.streams.insert(stream);
            // get_or_create leaves a value already set alone.
            let _ = self.last_success.get_or_create(&l);
            let _ = self.last_attempt.get_or_create(&l);
            if let Some(secs) = entry.gap {
                self.expected_interval.get_or_create(&l).set(secs);
            }
        }
    }

    /// Counts a write to the store that failed, for `stream` when it was a
    /// record (`None` for a checkpoint), and makes the agent unready until
    /// a write succeeds. The attempt still counts as one (its record is
    /// written later), so `last_attempt` moves.
    pub fn write_failed(&self, stream: Option<(&str, &str)>, at: f64, cause: &str) {
        self.store_write_errors.inc();
        if let Some((collector, stream)) = stream {
            let l = labels(collector, stream);
            self.stream_seen(&l, collector, stream);
            self.stream_write_errors.get_or_create(&l).inc();
            self.last_attempt.get_or_create(&l).set(at);
        }
        *self.last_write_error.lock().expect("metrics lock") = Some(cause.to_string());
        self.writable.store(false, Ordering::SeqCst);
        self.store_writable.set(0);
    }

    /// A write to the store succeeded: the store keeps evidence again.
    pub fn write_succeeded(&self) {
        if !self.writable.swap(true, Ordering::SeqCst) {
            self.store_writable.set(1);
            tracing::info!("the store accepts writes again");
        }
    }

    /// Publishes how many refused records wait to be written.
    pub fn pending_records(&self, n: usize) {
        self.pending.store(n, Ordering::SeqCst);
        self.pending_gauge.set(n as i64);
    }

    /// `None` while the store accepts writes and no record it refused is
    /// still waiting; else why the last write failed.
    pub fn store_unwritable(&self) -> Option<String> {
        if self.writable.load(Ordering::SeqCst) && self.pending.load(Ordering::SeqCst) == 0 {
            return None;
        }
        Some(
            self.last_write_error
                .lock()
                .expect("metrics lock")
                .clone()
                .unwrap_or_default(),
        )
    }

    /// Counts one finished attempt of `stream`.
    pub fn observe(&self, collector: &str, stream: &str, status: &str, seconds: f64, at: f64) {
        let l = vec![
            ("collector".to_string(), collector.to_string()),
            ("stream".to_string(), stream.to_string()),
        ];
        self.stream_seen(&l, collector, stream);
        let mut with_status = l.clone();
        with_status.push(("status".into(), status.into()));
        self.runs.get_or_create(&with_status).inc();
        self.duration.get_or_create(&l).observe(seconds);
        self.last_attempt.get_or_create(&l).set(at);
        if status == "ok" {
            self.last_success.get_or_create(&l).set(at);
        }
        self.records.inc();
        self.write_succeeded();
    }

    /// Counts a record written late: the store refused it when due, and
    /// took it once it accepted writes again.
    pub fn written_late(&self) {
        self.records.inc();
        self.write_succeeded();
    }

    /// Counts missed slots of `stream`.
    pub fn missed(&self, collector: &str, stream: &str, n: u64) {
        let l = vec![
            ("collector".to_string(), collector.to_string()),
            ("stream".to_string(), stream.to_string()),
        ];
        self.stream_seen(&l, collector, stream);
        self.missed.get_or_create(&l).inc_by(n);
        self.records.inc();
        self.write_succeeded();
    }

    /// Tracks collections in flight.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// Publishes a spool's backlog.
    pub fn spool(&self, backlog: &crate::store::Backlog) {
        self.spool_depth.set(backlog.depth as i64);
        let age = backlog
            .oldest
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| d.as_secs() as i64);
        self.spool_age.set(age);
    }

    /// Counts one request to a TSA.
    pub fn tsa_request(&self, tsa: &str, result: &str) {
        let l = vec![
            ("tsa".to_string(), tsa.to_string()),
            ("result".to_string(), result.to_string()),
        ];
        self.tsa_requests.get_or_create(&l).inc();
    }

    /// Publishes how many checkpoints wait for a token.
    pub fn untimestamped(&self, n: usize) {
        self.untimestamped.set(n as i64);
    }

    /// Publishes the head of `agent`'s checkpoint chain (the SHA-256 of its
    /// newest checkpoint), replacing the one before.
    pub fn head(&self, agent: &str, sha256: &str) {
        let l = vec![
            ("agent".to_string(), agent.to_string()),
            ("sha256".to_string(), sha256.to_string()),
        ];
        let mut heads = self.heads.lock().expect("metrics lock");
        if let Some(old) = heads.insert(agent.to_string(), l.clone())
            && old != l
        {
            self.head.remove(&old);
        }
        self.head.get_or_create(&l).set(1);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics lock");
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_one_info_series_per_agent() {
        let m = Metrics::new();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        m.head("agent", &a);
        let text = m.render();
        assert!(
            text.contains(&format!(
                "exhibit_evidence_head_info{{agent=\"agent\",sha256=\"{a}\"}} 1\n"
            )),
            "{text}"
        );
        m.head("agent", &b);
        let text = m.render();
        assert!(text.contains(&format!("sha256=\"{b}\"}} 1")), "{text}");
        assert!(!text.contains(&a), "the old head is gone: {text}");
    }

    #[test]
    fn timestamp_gaps_are_exported() {
        let m = Metrics::new();
        m.tsa_request("tsa.example:318", "unreachable");
        m.tsa_request("tsa.example:318", "unreachable");
        m.untimestamped(3);
        let text = m.render();
        assert!(
            text.contains("exhibit_checkpoints_untimestamped 3"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"exhibit_tsa_requests_total{tsa="tsa.example:318",result="unreachable"} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn each_stream_exports_its_schedules_longest_gap() {
        let m = Metrics::new();
        // Seen before the scheduler has measured its schedule, and after.
        m.observe("weekdays", "weekdays/acme", "ok", 0.1, 1.0e9);
        m.expected_interval("weekdays", 3 * 86_400);
        m.observe("weekdays", "weekdays/globex", "ok", 0.1, 1.0e9);
        m.observe("unscheduled", "unscheduled/x", "ok", 0.1, 1.0e9);
        let text = m.render();
        for stream in ["weekdays/acme", "weekdays/globex"] {
            let line = format!(
                r#"exhibit_stream_expected_interval_seconds{{collector="weekdays",stream="{stream}"}} 259200"#
            );
            assert!(text.contains(&line), "{text}");
        }
        // `collect` runs without a schedule: no interval is invented.
        assert!(
            !text.contains(r#"exhibit_stream_expected_interval_seconds{collector="unscheduled""#),
            "{text}"
        );
    }

    #[test]
    fn streams_are_published_before_they_run_and_stand_ins_go_once_real_ones_come() {
        let m = Metrics::new();
        m.expected_interval("org", 86_400);
        // Nothing in the store yet: the stream its first record is expected in.
        m.expect_streams("org", &[], "org/org");
        m.expect_streams("cmd", &["cmd/local".to_string()], "cmd/local");
        let text = m.render();
        assert!(
            text.contains(
                r#"exhibit_last_success_timestamp_seconds{collector="org",stream="org/org"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"exhibit_stream_expected_interval_seconds{collector="org",stream="org/org"} 86400"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"exhibit_last_attempt_timestamp_seconds{collector="cmd",stream="cmd/local"} 0"#
            ),
            "{text}"
        );
        // The first record names the account: the stand-in goes.
        m.observe("org", "org/123456789012", "ok", 0.1, 1.0e9);
        let text = m.render();
        assert!(!text.contains(r#"stream="org/org""#), "{text}");
        assert!(
            text.contains(r#"exhibit_stream_expected_interval_seconds{collector="org",stream="org/123456789012"} 86400"#),
            "{text}"
        );
    }

    #[test]
    fn a_refused_write_makes_the_store_unwritable_until_a_write_succeeds() {
        let m = Metrics::new();
        assert_eq!(m.store_unwritable(), None);
        m.write_failed(
            Some(("c", "c/x")),
            1.0e9,
            "records/c/x: Read-only file system",
        );
        m.pending_records(1);
        assert!(m.store_unwritable().unwrap().contains("Read-only"));
        let text = m.render();
        assert!(
            text.contains("exhibit_store_write_errors_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"exhibit_stream_write_errors_total{collector="c",stream="c/x"} 1"#),
            "{text}"
        );
        assert!(text.contains("exhibit_store_writable 0"), "{text}");
        // A checkpoint gets through, but a refused record still waits.
        m.write_succeeded();
        assert!(m.store_unwritable().is_some());
        m.pending_records(0);
        assert_eq!(m.store_unwritable(), None);
        assert!(m.render().contains("exhibit_store_writable 1"));
    }

    #[test]
    fn spool_backlog_is_exported() {
        let m = Metrics::new();
        m.spool(&crate::store::Backlog {
            spool: "spool".into(),
            depth: 42,
            oldest: Some(std::time::SystemTime::now() - std::time::Duration::from_secs(90)),
        });
        let text = m.render();
        assert!(text.contains("exhibit_spool_depth 42"), "{text}");
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("exhibit_spool_oldest_age_seconds "))
            .expect("age gauge")
            .parse::<i64>()
            .unwrap();
        assert!((90..100).contains(&age), "{age}");
    }
}
