//! The checkpoint chain across a sample's period, as the sampler and both
//! bundle verifiers follow it: from a head (a chain's newest checkpoint)
//! back through each signed `prev` link until the last checkpoint that
//! finished before the period (the anchor) or the chain's first
//! checkpoint. The runs whose checkpoints finished within the period are
//! the period's; every record they list is the bundle's population. All of
//! it comes from signed checkpoints: nothing the bundle says of itself.
//!
//! `period.txt` carries what the walk starts from: the period, the seed and
//! the head of each checkpoint chain when the sample was drawn.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::evidence::checkpoint::{Checkpoint, CheckpointPredicate};
use crate::evidence::layout;
use crate::evidence::record::Subject;

/// A checkpoint as the walk sees it.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// Its key.
    pub key: &'a str,
    /// SHA-256 of its stored bytes.
    pub sha256: &'a str,
    /// What it signs.
    pub predicate: &'a CheckpointPredicate,
    /// The records of its run.
    pub records: &'a [Subject],
}

impl<'a> Link<'a> {
    /// The links of opened checkpoints, by key, as the chain walk takes
    /// them.
    pub fn index(opened: &'a [Checkpoint]) -> HashMap<&'a str, Link<'a>> {
        opened
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    Link {
                        key: &c.key,
                        sha256: &c.sha256,
                        predicate: c.predicate(),
                        records: c.records(),
                    },
                )
            })
            .collect()
    }
}

/// Where a walk from one head went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Checkpoints whose runs finished within the period, newest first.
    pub period: Vec<String>,
    /// Checkpoints that finished after the period, up to the head.
    pub after: Vec<String>,
    /// The last checkpoint that finished before the period, where the walk
    /// stopped; `None` when it reached the chain's first checkpoint.
    pub anchor: Option<String>,
    /// Where the chain is broken, and why; the walk stopped there.
    pub broken: Option<(String, String)>,
}

impl Walk {
    /// Every checkpoint the walk passed, anchor included.
    pub fn checkpoints(&self) -> impl Iterator<Item = &str> {
        self.period
            .iter()
            .chain(&self.after)
            .chain(&self.anchor)
            .map(String::as_str)
    }
}

/// Follows the chain from the checkpoint `head` (a key of `links`) back to
/// the period's anchor.
pub fn walk(
    head: &str,
    links: &HashMap<&str, Link<'_>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Walk {
    walk_between(head, links, from, to, false)
}

/// Follows the chain from `head` back as far as `links` holds it: every
/// checkpoint passed is in `period`, newest first. A previous checkpoint
/// that is not among `links` ends the walk (a control bundle carries the
/// chain only as far back as its oldest record); one that is there but
/// hashes otherwise breaks it.
pub fn walk_to_start(head: &str, links: &HashMap<&str, Link<'_>>) -> Walk {
    walk_between(
        head,
        links,
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        true,
    )
}

fn walk_between(
    head: &str,
    links: &HashMap<&str, Link<'_>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    open_ended: bool,
) -> Walk {
    let mut w = Walk::default();
    let mut seen = HashSet::new();
    let mut current = links.get(head).copied();
    while let Some(c) = current {
        if !seen.insert(c.key) {
            w.broken = Some((c.key.to_string(), "the chain loops back to it".into()));
            break;
        }
        let p = c.predicate;
        if p.finished_at < from {
            w.anchor = Some(c.key.to_string());
            break;
        }
        if p.finished_at <= to {
            w.period.push(c.key.to_string());
        } else {
            w.after.push(c.key.to_string());
        }
        let Some(prev) = &p.prev else { break };
        current = match links.get(prev.key.as_str()) {
            None if open_ended => None,
            None => {
                w.broken = Some((
                    c.key.to_string(),
                    format!("its previous checkpoint {} is not here", prev.key),
                ));
                None
            }
            Some(before) if before.sha256 != prev.sha256 => {
                w.broken = Some((
                    c.key.to_string(),
                    format!(
                        "its previous checkpoint {} hashes to {}, not {}",
                        prev.key, before.sha256, prev.sha256
                    ),
                ));
                None
            }
            Some(before) => Some(*before),
        };
    }
    w
}

/// The heads of the checkpoint chains among `links`: per agent, its newest
/// checkpoint that no other checkpoint names as its previous one. Newest
/// last.
pub fn heads<'a>(links: &HashMap<&str, Link<'a>>) -> Vec<Link<'a>> {
    let named: HashSet<&str> = links
        .values()
        .filter_map(|l| l.predicate.prev.as_ref().map(|p| p.key.as_str()))
        .collect();
    let mut by_agent: BTreeMap<&str, Link<'a>> = BTreeMap::new();
    for l in links.values().filter(|l| !named.contains(l.key)) {
        let newest = by_agent.entry(l.predicate.agent.as_str()).or_insert(*l);
        if (l.predicate.finished_at, l.key) > (newest.predicate.finished_at, newest.key) {
            *newest = *l;
        }
    }
    let mut heads: Vec<Link<'a>> = by_agent.into_values().collect();
    heads.sort_by_key(|l| (l.predicate.finished_at, l.key));
    heads
}

/// The records the period's checkpoints list: key → the SHA-256 signed for
/// it. Names that are not record keys are left out.
pub fn population<'a>(
    period: impl IntoIterator<Item = &'a str>,
    links: &HashMap<&str, Link<'a>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in period {
        for s in links.get(key).map(|l| l.records).unwrap_or_default() {
            if layout::stream_record(&s.name).is_some() {
                out.insert(s.name.clone(), s.digest.sha256.clone());
            }
        }
    }
    out
}

/// What `period.txt` holds: the period, the seed and the chains' heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Start of the period.
    pub from: DateTime<Utc>,
    /// End of the period.
    pub to: DateTime<Utc>,
    /// The seed of the draw.
    pub seed: String,
    /// SHA-256 of each checkpoint chain's newest checkpoint when the sample
    /// was drawn, the store's head (the newest of them) last.
    pub heads: Vec<String>,
}

impl Period {
    /// The file's text: one `name value` line each, times with nine
    /// fraction digits so that `verify.sh` compares them as strings.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "from {}\nto {}\nseed {}\n",
            self.from.to_rfc3339_opts(SecondsFormat::Nanos, true),
            self.to.to_rfc3339_opts(SecondsFormat::Nanos, true),
            self.seed
        );
        for h in &self.heads {
            s.push_str(&format!("head {h}\n"));
        }
        s
    }

    /// Reads the file's text, as strictly as `verify.sh` does: each of
    /// `from`, `to` and `seed` once, times in UTC (`…Z`), nothing else but
    /// `head` lines.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut from = None;
        let mut to = None;
        let mut seed = None;
        let mut heads = Vec::new();
        for line in text.lines() {
            let unexpected = || format!("period.txt: unexpected line `{line}`");
            let (name, value) = line.split_once(' ').ok_or_else(unexpected)?;
            let time = |v: &str| {
                if !is_utc_time(v) {
                    return Err(format!("period.txt: `{line}` is not a UTC time"));
                }
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| format!("period.txt: `{line}`: {e}"))
            };
            let once = |slot: &mut Option<_>, v| match slot.replace(v) {
                None => Ok(()),
                Some(_) => Err(format!("period.txt names `{name}` more than once")),
            };
            match name {
                "from" => once(&mut from, time(value)?)?,
                "to" => once(&mut to, time(value)?)?,
                "seed" => {
                    if seed.replace(value.to_string()).is_some() {
                        return Err("period.txt names `seed` more than once".into());
                    }
                }
                "head" if is_sha256(value) => heads.push(value.to_string()),
                _ => return Err(unexpected()),
            }
        }
        Ok(Period {
            from: from.ok_or("period.txt names no `from`")?,
            to: to.ok_or("period.txt names no `to`")?,
            seed: seed.ok_or("period.txt names no `seed`")?,
            heads,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, with one to nine fraction digits:
/// the times `verify.sh` compares as strings.
fn is_utc_time(v: &str) -> bool {
    let b = v.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[b.len() - 1] == b'Z';
    shape
        && (b.len() == 20
            || (b[19] == b'.' && (21..=30).contains(&b.len()) && digits(20..b.len() - 1)))
}

/// Whether `s` is a lower-case hex SHA-256.
pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::checkpoint::PrevCheckpoint;
    use crate::evidence::record::{Digest, Trigger};

    fn predicate(day: u32, prev: Option<(&str, &str)>) -> CheckpointPredicate {
        let at = |h| format!("2026-01-{day:02}T{h:02}:00:00Z").parse().unwrap();
        CheckpointPredicate {
            agent: "a".into(),
            run_id: format!("run{day}"),
            trigger: Trigger::Manual,
            started_at: at(1),
            finished_at: at(2),
            prev: prev.map(|(k, s)| PrevCheckpoint {
                key: k.into(),
                sha256: s.into(),
            }),
            rotation: None,
            clock_skew: None,
            acknowledged: Vec::new(),
        }
    }

    #[test]
    fn the_walk_stops_at_the_anchor_and_names_a_break() {
        let keys: Vec<String> = (1..=5).map(|d| format!("cp{d}")).collect();
        let shas: Vec<String> = (1..=5).map(|d| format!("sha{d}")).collect();
        let preds: Vec<CheckpointPredicate> = (1..=5)
            .map(|d| {
                let i = d as usize - 1;
                predicate(
                    d,
                    (i > 0).then(|| (keys[i - 1].as_str(), shas[i - 1].as_str())),
                )
            })
            .collect();
        let subjects: Vec<Vec<Subject>> = (1..=5)
            .map(|d| {
                vec![Subject {
                    name: layout::record("s", d),
                    digest: Digest {
                        sha256: format!("r{d}"),
                    },
                }]
            })
            .collect();
        let links: HashMap<&str, Link> = (0..5)
            .map(|i| {
                (
                    keys[i].as_str(),
                    Link {
                        key: &keys[i],
                        sha256: &shas[i],
                        predicate: &preds[i],
                        records: &subjects[i],
                    },
                )
            })
            .collect();
        assert_eq!(
            heads(&links).iter().map(|l| l.key).collect::<Vec<_>>(),
            ["cp5"]
        );
        let day = |d: u32| format!("2026-01-{d:02}T00:00:00Z").parse().unwrap();
        let w = walk("cp5", &links, day(2), day(4));
        assert_eq!(w.period, ["cp3", "cp2"]);
        assert_eq!(w.after, ["cp5", "cp4"]);
        assert_eq!(w.anchor.as_deref(), Some("cp1"));
        assert_eq!(w.broken, None);
        let pop = population(w.period.iter().map(String::as_str), &links);
        assert_eq!(
            pop.keys().cloned().collect::<Vec<_>>(),
            [layout::record("s", 2), layout::record("s", 3)]
        );
        // The first run of the period deleted: the chain breaks.
        let mut cut = links.clone();
        cut.remove("cp2");
        let w = walk("cp5", &cut, day(2), day(4));
        assert_eq!(
            w.broken,
            Some((
                "cp3".into(),
                "its previous checkpoint cp2 is not here".into()
            ))
        );
        // From the very start, the walk ends at the first checkpoint.
        let w = walk("cp5", &links, day(1), day(9));
        assert_eq!(w.period.len(), 5);
        assert_eq!((w.anchor, w.broken), (None, None));
    }

    #[test]
    fn period_txt_round_trips() {
        let p = Period {
            from: "2026-01-01T00:00:00Z".parse().unwrap(),
            to: "2026-12-31T23:59:59.5Z".parse().unwrap(),
            seed: " FY2026: audit ".into(),
            heads: vec!["a".repeat(64)],
        };
        let text = p.to_text();
        assert!(
            text.contains("to 2026-12-31T23:59:59.500000000Z\n"),
            "{text}"
        );
        assert_eq!(Period::parse(&text).unwrap(), p);
        assert!(Period::parse("from x\n").is_err());
        assert!(Period::parse(&format!("{text}from 2026-01-01T00:00:00Z\n")).is_err());
        assert!(Period::parse(&text.replace("Z\n", "+00:00\n")).is_err());
        assert!(Period::parse(&format!("{text}note\n")).is_err());
    }
}
