//! How the review puts things for a reader: repeated failures folded into
//! one line with a count, change lines that lead with what names an entity
//! (a commit's subject, a title) before the rest is cut, and the page
//! written to a file or, for a directory, to a new dated file each time.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Failure;
use crate::diff::{Change, ChangeKind};
use crate::evidence::record::Status;

/// Failed collections of one stream that went wrong the same way.
#[derive(Debug, Clone)]
pub struct FailureGroup<'a> {
    /// Their outcome.
    pub status: Status,
    /// What went wrong, as recorded.
    pub error: Option<&'a str>,
    /// Their sequence numbers, oldest first.
    pub seqs: Vec<u64>,
    /// The first and the last of them.
    pub first: DateTime<Utc>,
    /// The last of them.
    pub last: DateTime<Utc>,
}

impl FailureGroup<'_> {
    /// "failed #4 at …" or "failed 3 times (#4, #5, #6) from … to …".
    pub fn summary(&self) -> String {
        let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if self.seqs.len() == 1 {
            format!(
                "{} #{} at {}",
                self.status.as_str(),
                self.seqs[0],
                t(&self.first)
            )
        } else {
            let seqs: Vec<String> = self.seqs.iter().map(|s| format!("#{s}")).collect();
            format!(
                "{} {} times ({}) from {} to {}",
                self.status.as_str(),
                self.seqs.len(),
                seqs.join(", "),
                t(&self.first),
                t(&self.last)
            )
        }
    }
}

/// `failures` folded by outcome and error text, in order of first
/// occurrence (oldest first): a 500-character error repeated by every
/// retry is shown once, with its count.
pub fn failure_groups(failures: &[Failure]) -> Vec<FailureGroup<'_>> {
    let mut sorted: Vec<&Failure> = failures.iter().collect();
    sorted.sort_by_key(|f| f.seq);
    let mut groups: Vec<FailureGroup<'_>> = Vec::new();
    for f in sorted {
        let error = f.error.as_deref();
        match groups
            .iter_mut()
            .find(|g| g.status == f.status && g.error == error)
        {
            Some(g) => {
                g.seqs.push(f.seq);
                g.first = g.first.min(f.at);
                g.last = g.last.max(f.at);
            }
            None => groups.push(FailureGroup {
                status: f.status,
                error,
                seqs: vec![f.seq],
                first: f.at,
                last: f.at,
            }),
        }
    }
    groups
}

/// Fields that name an entity for a reader, shown first so that cutting a
/// long value never cuts them.
const HEADLINES: &[&str] = &["subject", "title", "summary", "name", "login", "user"];

/// How long a value may be on a change line.
const VALUE_CHARS: usize = 160;

/// A value for a change line: an object leads with its headline fields,
/// and the whole is cut at [`VALUE_CHARS`].
fn value(v: &Option<Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    let s = match v {
        Value::Object(m) if HEADLINES.iter().any(|k| m.contains_key(*k)) => {
            let mut lead = Map::new();
            for k in HEADLINES {
                if let Some(x) = m.get(*k) {
                    lead.insert(k.to_string(), x.clone());
                }
            }
            for (k, x) in m {
                if !lead.contains_key(k) {
                    lead.insert(k.clone(), x.clone());
                }
            }
            Value::Object(lead).to_string()
        }
        v => v.to_string(),
    };
    if s.chars().count() > VALUE_CHARS {
        format!("{}…", s.chars().take(VALUE_CHARS).collect::<String>())
    } else {
        s
    }
}

/// The changes as `+`/`-`/`~` lines, like `exhibit diff`'s, with values
/// that lead with what names them.
pub fn change_lines(changes: &[Change]) -> String {
    let mut o = String::new();
    for c in changes {
        let line = match c.kind {
            ChangeKind::Added => format!("+ {}  {}", c.path, value(&c.after)),
            ChangeKind::Removed => format!("- {}  {}", c.path, value(&c.before)),
            ChangeKind::Changed => {
                format!("~ {}: {} → {}", c.path, value(&c.before), value(&c.after))
            }
        };
        o.push_str(&line);
        o.push('\n');
    }
    if changes.is_empty() {
        o.push_str("no changes\n");
    }
    o
}

/// Writes `body` to `out`: a file is replaced (the latest review); a
/// directory (existing, or named with a trailing `/`) receives a new file
/// `exhibit-review-<date>.<ext>` each time (`-2`, `-3`… on the same day),
/// never overwriting one. Returns the file written.
pub fn write_out(out: &Path, at: DateTime<Utc>, ext: &str, body: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let is_dir = out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/');
    if !is_dir {
        std::fs::write(out, body)?;
        return Ok(out.to_path_buf());
    }
    std::fs::create_dir_all(out)?;
    let date = at.format("%Y-%m-%d");
    for n in 1.. {
        let name = if n == 1 {
            format!("exhibit-review-{date}.{ext}")
        } else {
            format!("exhibit-review-{date}-{n}.{ext}")
        };
        let path = out.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(body.as_bytes())?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failure(seq: u64, error: &str) -> Failure {
        Failure {
            seq,
            at: DateTime::from_timestamp(1_700_000_000 + seq as i64 * 60, 0).unwrap(),
            status: Status::Failed,
            error: Some(error.into()),
        }
    }

    #[test]
    fn repeated_errors_fold_into_one_line_with_a_count() {
        let long = "x".repeat(500);
        let f = vec![failure(6, &long), failure(5, "other"), failure(4, &long)];
        let g = failure_groups(&f);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].seqs, [4, 6]);
        assert!(
            g[0].summary().starts_with("failed 2 times (#4, #6) from "),
            "{}",
            g[0].summary()
        );
        assert_eq!(
            g[1].summary(),
            format!("failed #5 at {}", "2023-11-14T22:18:20Z")
        );
    }

    #[test]
    fn a_commit_s_subject_survives_the_cut() {
        let commit = json!({
            "sha": "a".repeat(40),
            "parents": ["b".repeat(40)],
            "author": {"name": "Alice Example", "email": "alice@example.com", "date": "2026-01-01T00:00:00Z"},
            "committer": {"name": "Bob Merger", "email": "bob@example.com", "date": "2026-01-01T00:00:00Z"},
            "signature": {"status": "none", "key": null},
            "subject": "Remove the audit log retention",
        });
        let c = Change {
            path: "commits[sha=aaaa]".into(),
            kind: ChangeKind::Added,
            before: None,
            after: Some(commit),
        };
        let line = change_lines(&[c]);
        assert!(
            line.starts_with(
                "+ commits[sha=aaaa]  {\"subject\":\"Remove the audit log retention\""
            ),
            "{line}"
        );
    }

    #[test]
    fn a_directory_gets_dated_files_and_none_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let at: DateTime<Utc> = "2026-03-04T07:00:00Z".parse().unwrap();
        let a = write_out(dir.path(), at, "html", "one").unwrap();
        let b = write_out(dir.path(), at, "html", "two").unwrap();
        assert_eq!(a.file_name().unwrap(), "exhibit-review-2026-03-04.html");
        assert_eq!(b.file_name().unwrap(), "exhibit-review-2026-03-04-2.html");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one");
        let file = dir.path().join("latest.html");
        write_out(&file, at, "html", "three").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "three");
    }
}
