//! Populations and the sample an auditor can redraw with `sha256sum` and
//! `sort` (DESIGN.md, "Samples anyone can redraw"):
//!
//! 1. the population is the RFC 8785 canonical JSON array of the
//!    occurrences in time order (ties by id), each an object with a stable
//!    string `id` and its time `at`;
//! 2. the population hash is the SHA-256 (hex) of those bytes;
//! 3. the seed is the SHA-256 (hex) of `<engagement>\n<control id>\n<population
//!    hash>` (UTF-8, no trailing newline), unless a seed is given;
//! 4. an occurrence's rank is the SHA-256 (hex) of `<seed>\n<occurrence id>`;
//! 5. the sample is the `n` occurrences with the lowest ranks, ties (which
//!    would need a SHA-256 collision) broken by id.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::evidence::{canonical, sha256_hex};

/// Whether `id` can identify an occurrence: non-empty, without quotes,
/// backslashes or control characters, so that it reads the same in JSON
/// and in a shell pipeline.
pub fn is_occurrence_id(id: &str) -> bool {
    !id.is_empty() && !id.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// One occurrence of a control: an evaluation (state controls) or an event
/// such as a merged pull request (event controls).
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// Its stable id.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What else the population lists for it (state, author, approvers…).
    pub attributes: Map<String, Value>,
}

impl Occurrence {
    /// The occurrence as a JSON object: its attributes plus `id` and `at`.
    pub fn to_json(&self) -> Value {
        let mut m = self.attributes.clone();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert(
            "at".into(),
            Value::String(self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
        Value::Object(m)
    }
}

/// A population, fixed: its occurrences in order, its canonical bytes and
/// their hash.
#[derive(Debug, Clone)]
pub struct Population {
    /// The occurrences, in time order (ties by id).
    pub occurrences: Vec<Occurrence>,
    /// The canonical JSON array (what `population.json` holds, byte for
    /// byte, without a trailing newline).
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of `bytes`.
    pub sha256: String,
}

/// Why a population cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PopulationError {
    /// An id that cannot be used.
    #[error("occurrence id {0:?} is empty or has quotes, backslashes or control characters")]
    BadId(String),
    /// Two occurrences with one id.
    #[error("two occurrences have the id `{0}`")]
    Duplicate(String),
}

impl Population {
    /// Orders `occurrences` and fixes their bytes and hash.
    pub fn new(mut occurrences: Vec<Occurrence>) -> Result<Population, PopulationError> {
        if let Some(o) = occurrences.iter().find(|o| !is_occurrence_id(&o.id)) {
            return Err(PopulationError::BadId(o.id.clone()));
        }
        occurrences.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let mut ids: Vec<&str> = occurrences.iter().map(|o| o.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PopulationError::Duplicate(w[0].to_string()));
        }
        let mut bytes = Vec::with_capacity(occurrences.len() * 128);
        bytes.push(b'[');
        for (i, o) in occurrences.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            canonical::write(&o.to_json(), &mut bytes).expect("occurrences canonicalise");
        }
        bytes.push(b']');
        let sha256 = sha256_hex(&bytes);
        Ok(Population {
            occurrences,
            bytes,
            sha256,
        })
    }

    /// The population as CSV: `id,at` and then the attributes named in
    /// `columns` (arrays joined with `;`).
    pub fn to_csv(&self, columns: &[&str]) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["id", "at"];
        header.extend_from_slice(columns);
        w.write_record(&header).expect("CSV to memory");
        for o in &self.occurrences {
            let mut row = vec![
                o.id.clone(),
                o.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ];
            for c in columns {
                row.push(match o.attributes.get(*c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(";"),
                    Some(v) => v.to_string(),
                });
            }
            w.write_record(&row).expect("CSV to memory");
        }
        String::from_utf8(w.into_inner().expect("CSV to memory")).expect("UTF-8")
    }
}

/// The seed of an engagement's sample of a control's population.
pub fn seed(engagement: &str, control: &str, population_sha256: &str) -> String {
    sha256_hex(format!("{engagement}\n{control}\n{population_sha256}").as_bytes())
}

/// An occurrence's rank under `seed`.
pub fn rank(seed: &str, id: &str) -> String {
    sha256_hex(format!("{seed}\n{id}").as_bytes())
}

/// One drawn occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    /// Its index in the population.
    pub index: usize,
    /// Its id.
    pub id: String,
    /// Its rank.
    pub rank: String,
}

/// The `n` occurrences of `population` with the lowest ranks under `seed`,
/// lowest first.
pub fn draw(population: &Population, seed: &str, n: usize) -> Vec<Drawn> {
    let mut ranked: Vec<Drawn> = population
        .occurrences
        .iter()
        .enumerate()
        .map(|(index, o)| Drawn {
            index,
            id: o.id.clone(),
            rank: rank(seed, &o.id),
        })
        .collect();
    ranked.sort_by(|a, b| (&a.rank, &a.id).cmp(&(&b.rank, &b.id)));
    ranked.truncate(n);
    ranked
}

#[cfg(test)]
#[path = "population_tests.rs"]
mod tests;
