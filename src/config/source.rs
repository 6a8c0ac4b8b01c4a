//! Located configuration errors: the source text of a config file, and the
//! means to turn a span of it (or a table and key named after parsing) into
//! `file:line:column` and the dotted key path a user can find.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeTable;

/// A configuration error with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `collectors[1].schedule`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The source text of a config file, for turning spans into locations.
/// Cloning it is cheap: every collector's settings keep one, so that the
/// errors their kind finds when building them are located too.
#[derive(Debug, Clone)]
pub struct Source {
    file: PathBuf,
    text: Arc<str>,
}

impl Source {
    /// A config source.
    pub fn new(file: PathBuf, text: String) -> Self {
        Source {
            file,
            text: text.into(),
        }
    }

    /// The text, shared.
    pub(crate) fn text(&self) -> Arc<str> {
        self.text.clone()
    }

    /// An error about `key` that no text locates (a value the file omits).
    pub(crate) fn unlocated(&self, key: Option<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: None,
            column: None,
            key,
            message: message.into(),
        }
    }

    /// An error at `span`, naming the key found at or before it.
    pub fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let Some(span) = span else {
            return self.unlocated(None, message);
        };
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        ConfigError {
            file: self.file.clone(),
            line: Some(line),
            column: Some(column),
            key: self.key_path_at(line_start),
            message: message.into(),
        }
    }

    /// An error about `key` in the `nth` (0-based) table headed `[header]`
    /// or `[[header]]`, at the key's line when the file sets it there. Values
    /// checked after deserialisation have lost their spans; the text still
    /// knows where they were written.
    pub fn error_for_key(
        &self,
        header: &str,
        nth: usize,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        match self.find_key(header, nth, key) {
            Some(at) => self.error_at(Some(at..at), message),
            None => self.unlocated(Some(format!("{header}.{key}")), message),
        }
    }

    /// The offset of `key = …` in the `nth` table headed `header`.
    fn find_key(&self, header: &str, nth: usize, key: &str) -> Option<usize> {
        let mut offset = 0;
        let mut seen = 0;
        let mut inside = false;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if t.starts_with('[') {
                let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
                inside = name.trim() == header && {
                    seen += 1;
                    seen == nth + 1
                };
            } else if inside
                && t.split_once('=')
                    .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
            {
                return Some(offset + line.len() - line.trim_start().len());
            }
            offset += line.len();
        }
        None
    }

    /// Reconstructs `table.key` for the line starting at `line_start` from
    /// the text: the nearest table header above, and the key on the line.
    fn key_path_at(&self, line_start: usize) -> Option<String> {
        let rest = &self.text[line_start..];
        let line = rest.lines().next().unwrap_or("").trim();
        let header_of = |l: &str| -> Option<(String, bool)> {
            let l = l.trim();
            if let Some(inner) = l.strip_prefix("[[").and_then(|s| s.split("]]").next()) {
                Some((inner.trim().to_string(), true))
            } else {
                l.strip_prefix('[')
                    .and_then(|s| s.split(']').next())
                    .map(|inner| (inner.trim().to_string(), false))
            }
        };
        let key_on_line = |l: &str| -> Option<String> {
            let (k, _) = l.split_once('=')?;
            let k = k.trim().trim_matches('"');
            (!k.is_empty() && !k.starts_with('#')).then(|| k.to_string())
        };
        let before = &self.text[..line_start];
        let mut header: Option<(String, bool)> = None;
        for l in before.lines().rev() {
            if let Some(h) = header_of(l) {
                header = Some(h);
                break;
            }
        }
        let (line_key, header) = match header_of(line) {
            Some(h) => (None, Some(h)),
            None => (key_on_line(line), header),
        };
        let table = header.map(|(name, array)| {
            if array {
                let needle = format!("[[{name}]]");
                let index = before
                    .lines()
                    .filter(|l| l.trim().replace(' ', "") == needle)
                    .count();
                // The header line itself counts when the error is on it.
                let index = if line.replace(' ', "") == needle {
                    index
                } else {
                    index.saturating_sub(1)
                };
                format!("{name}[{index}]")
            } else {
                name
            }
        });
        match (table, line_key) {
            (Some(t), Some(k)) => Some(format!("{t}.{k}")),
            (Some(t), None) => Some(t),
            (None, Some(k)) => Some(k),
            (None, None) => None,
        }
    }

    /// A TOML syntax or type error, located; an unknown key is named with
    /// the nearest valid one and every key valid there.
    pub(crate) fn toml_error(&self, e: toml::de::Error) -> ConfigError {
        self.error_at(e.span(), super::suggest::rewrite_serde(e.message().trim()))
    }

    /// Deserialises a spanned sub-tree; errors point into this source.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        table: Spanned<DeTable<'_>>,
    ) -> Result<T, ConfigError> {
        T::deserialize(toml::de::Deserializer::from(table)).map_err(|e| self.toml_error(e))
    }
}
