//! The human form of the verdict (`exhibit verify` without `--json`).

use super::{Report, Verdict};

fn secs(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Report {
    /// The human form of the verdict.
    pub fn render(&self, show_coverage: bool) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "Store:       {}", self.store);
        let _ = writeln!(
            o,
            "Period:      {} to {}",
            self.period
                .from
                .map_or("the first record".to_string(), secs),
            self.period.to.map_or("the last record".to_string(), secs),
        );
        let _ = writeln!(
            o,
            "Keys:        {} [{}]",
            self.keys_from,
            self.key_ids.join(", ")
        );
        let _ = writeln!(
            o,
            "Checked:     {} records in {} streams, {} payloads ({} bytes), {} checkpoints",
            self.records,
            self.streams.len(),
            self.payloads_checked,
            self.payload_bytes,
            self.checkpoints
        );
        let ts = &self.timestamps;
        if ts.in_use {
            let _ = writeln!(
                o,
                "Timestamps:  {} of {} checkpoints timestamped (RFC 3161), {} without a token; TSA trust: {} [{}]",
                ts.timestamped,
                ts.timestamped + ts.missing,
                ts.missing,
                ts.trust_from.as_deref().unwrap_or("none"),
                ts.trusted.join("; ")
            );
        } else if self.checkpoints > 0 {
            let _ = writeln!(o, "Timestamps:  none (no RFC 3161 token in this store)");
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<40} {:>7}  {:<8} {:<25} COVERAGE ok/partial/failed/missed of expected",
            "STREAM", "RECORDS", "LAST", "LAST AT"
        );
        for s in &self.streams {
            let cov = s.coverage.as_ref().map_or("-".to_string(), |c| {
                let ended = c
                    .continued_in
                    .as_ref()
                    .map(|next| format!(" (ended: continued in {next})"))
                    .unwrap_or_default();
                format!(
                    "{}/{}/{}/{} of {}{ended}",
                    c.ok, c.partial, c.failed, c.missed, c.expected
                )
            });
            let _ = writeln!(
                o,
                "{:<40} {:>7}  {:<8} {:<25} {}",
                s.stream,
                s.records,
                s.last_status.map_or("-", |st| st.as_str()),
                s.last.map_or("-".into(), |t| t
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                cov
            );
        }
        if show_coverage {
            for s in &self.streams {
                if let Some(c) = &s.coverage
                    && c.missed > 0
                {
                    let _ = writeln!(
                        o,
                        "  {}: {} missed slot(s) ({} recorded as missed), first: {}",
                        s.stream,
                        c.missed,
                        c.missed_recorded,
                        c.missed_slots
                            .iter()
                            .take(5)
                            .map(|t| t.to_rfc3339())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(o, "\nWarnings ({}):", self.warnings.len());
            for w in &self.warnings {
                let _ = writeln!(o, "  {}: {}: {}", w.location, w.code, w.message);
            }
        }
        if !self.gaps.is_empty() {
            let _ = writeln!(o, "\nGaps ({}):", self.gaps.len());
            for p in &self.gaps {
                let _ = writeln!(o, "  {}: {}: {}", p.location, p.code, p.message);
            }
        }
        if !self.problems.is_empty() {
            let _ = writeln!(o, "\nProblems ({}):", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(o, "  {}: {}: {}", p.location, p.code, p.message);
            }
        }
        let _ = writeln!(o, "\nVerdict:     {}", self.verdict_line());
        let _ = writeln!(
            o,
            "head: {}",
            self.head
                .as_deref()
                .unwrap_or("none (no checkpoint in the store)")
        );
        o
    }

    /// The verdict and what it rests on, in one line.
    fn verdict_line(&self) -> String {
        let gaps = self.gaps.len();
        match self.verdict {
            Verdict::Intact => {
                "INTACT — every signature, hash, link and checkpoint checks out, and no scheduled slot of the period lacks a record".to_string()
            }
            Verdict::Incomplete => format!(
                "INCOMPLETE — nothing was found altered, but {gaps} gap(s): evidence of the period is missing"
            ),
            Verdict::Failed if gaps > 0 => format!(
                "FAILED — {} problem(s), and {gaps} gap(s)",
                self.problems.len()
            ),
            Verdict::Failed => format!("FAILED — {} problem(s)", self.problems.len()),
            Verdict::NoEvidence if self.records > 0 => format!(
                "NO EVIDENCE — not one of the store's {} record(s) is in the period: nothing to vouch for",
                self.records
            ),
            Verdict::NoEvidence => {
                "NO EVIDENCE — the store holds no record: nothing to vouch for (is the store path right?)".to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::evidence::record::Status;
    use crate::verify::{Coverage, Period, Problem, StreamSummary, TimestampSummary};

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn report() -> Report {
        Report {
            verdict: Verdict::Intact,
            store: "/srv/evidence".into(),
            period: Period {
                from: None,
                to: Some(at("2026-03-05T00:00:00Z")),
            },
            head: Some("ab".repeat(32)),
            head_checkpoint: Some("checkpoints/2026/03/02/r.json".into()),
            heads: vec![],
            records_in_period: 3,
            keys_from: "given with --key".into(),
            key_ids: vec!["0123456789abcdef".into()],
            records: 3,
            payloads_checked: 2,
            payload_bytes: 120,
            checkpoints: 2,
            timestamps: TimestampSummary::default(),
            streams: vec![
                StreamSummary {
                    stream: "iam/111".into(),
                    records: 2,
                    statuses: BTreeMap::from([("ok".into(), 2)]),
                    first: Some(at("2026-03-01T00:00:00Z")),
                    last: Some(at("2026-03-02T00:00:01.5Z")),
                    last_status: Some(Status::Ok),
                    coverage: Some(Coverage {
                        schedule: "@daily".into(),
                        expected: 4,
                        ok: 2,
                        missed: 2,
                        missed_recorded: 1,
                        missed_slots: vec![at("2026-03-03T00:00:00Z"), at("2026-03-04T00:00:00Z")],
                        ..Default::default()
                    }),
                },
                StreamSummary {
                    stream: "once".into(),
                    records: 1,
                    statuses: BTreeMap::new(),
                    first: None,
                    last: None,
                    last_status: None,
                    coverage: None,
                },
            ],
            problems: vec![],
            gaps: vec![],
            warnings: vec![],
            intact: true,
            complete: true,
        }
    }

    #[test]
    fn an_intact_verdict_reads_as_documented() {
        let expected = "\
Store:       /srv/evidence
Period:      the first record to 2026-03-05T00:00:00Z
Keys:        given with --key [0123456789abcdef]
Checked:     3 records in 2 streams, 2 payloads (120 bytes), 2 checkpoints
Timestamps:  none (no RFC 3161 token in this store)

STREAM                                   RECORDS  LAST     LAST AT                   COVERAGE ok/partial/failed/missed of expected
iam/111                                        2  ok       2026-03-02T00:00:01Z      2/0/0/2 of 4
once                                           1  -        -                         -

Verdict:     INTACT — every signature, hash, link and checkpoint checks out, and no scheduled slot of the period lacks a record
head: abababababababababababababababababababababababababababababababab
";
        assert_eq!(report().render(false), expected);
        assert!(report().render(true).contains(
            "  iam/111: 2 missed slot(s) (1 recorded as missed), first: 2026-03-03T00:00:00+00:00, 2026-03-04T00:00:00+00:00\n"
        ));
    }

    #[test]
    fn a_failed_verdict_lists_warnings_then_problems() {
        let mut r = report();
        r.timestamps = TimestampSummary {
            trust_from: Some("given with --tsa-cert".into()),
            trusted: vec!["CN=A".into(), "CN=B".into()],
            timestamped: 1,
            missing: 1,
            in_use: true,
            tokens: vec![],
        };
        let p = |location: &str, code, message: &str| Problem {
            location: location.into(),
            code,
            message: message.into(),
        };
        r.warnings = vec![p("records/x", "not_checkpointed", "interrupted")];
        r.problems = vec![
            p("blobs/a", "payload_missing", "gone"),
            p("records/y", "broken_link", "prev is wrong"),
        ];
        r.settle();
        assert_eq!(r.verdict, Verdict::Failed);
        let text = r.render(false);
        assert!(text.contains(
            "Timestamps:  1 of 2 checkpoints timestamped (RFC 3161), 1 without a token; TSA trust: given with --tsa-cert [CN=A; CN=B]\n"
        ), "{text}");
        assert!(text.ends_with(
            "\nWarnings (1):\n  records/x: not_checkpointed: interrupted\n\nProblems (2):\n  blobs/a: payload_missing: gone\n  records/y: broken_link: prev is wrong\n\nVerdict:     FAILED — 2 problem(s)\nhead: abababababababababababababababababababababababababababababababab\n"
        ), "{text}");
    }

    #[test]
    fn incomplete_and_no_evidence_never_read_as_intact() {
        let mut r = report();
        r.gaps = vec![Problem {
            location: "records/iam/111/".into(),
            code: "slots_unaccounted",
            message: "2 of 4 scheduled slot(s)".into(),
        }];
        r.settle();
        assert_eq!(r.verdict, Verdict::Incomplete);
        assert!(r.intact && !r.complete && !r.passed());
        let text = r.render(false);
        assert!(
            text.contains(
                "\nGaps (1):\n  records/iam/111/: slots_unaccounted: 2 of 4 scheduled slot(s)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Verdict:     INCOMPLETE — nothing was found altered, but 1 gap(s)"),
            "{text}"
        );
        assert!(!text.contains("INTACT"), "{text}");

        let mut r = report();
        r.records = 0;
        r.records_in_period = 0;
        r.head = None;
        r.settle();
        assert_eq!(r.verdict, Verdict::NoEvidence);
        assert!(!r.intact && !r.complete);
        let text = r.render(false);
        assert!(
            text.contains("Verdict:     NO EVIDENCE — the store holds no record"),
            "{text}"
        );
        assert!(
            text.ends_with("head: none (no checkpoint in the store)\n"),
            "{text}"
        );
        assert!(!text.contains("INTACT"), "{text}");

        // Records, but none in the period.
        let mut r = report();
        r.records_in_period = 0;
        r.settle();
        assert_eq!(r.verdict, Verdict::NoEvidence);
        assert!(
            r.render(false)
                .contains("not one of the store's 3 record(s) is in the period")
        );
    }
}
