//! Values that come from outside the file: `${NAME}` interpolation from the
//! environment, and `*_file` indirection for secrets (`token_file = "…"`
//! stands for `token = <the file's contents>`), as containers receive their
//! secrets as variables and mounted files.
//!
//! Both are where secrets enter, so both remember what they brought in:
//! every expanded value and every secret file's contents become part of a
//! collector's [`Secrets`], which the runner scrubs from everything the
//! collector produces before it is written or logged. Evidence is
//! permanent and signed; a secret that reached it could never be removed.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::source::{ConfigError, Source};

/// What replaces a secret value in evidence, messages and logs.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not looked for: they would match ordinary
/// text (a `1`, a `yes`) and wreck evidence without protecting anything.
const SHORTEST_SCRUBBED: usize = 4;

/// Lines of a multi-line secret (a PEM key) at least this long are also
/// looked for on their own, as programs print such keys line by line.
const SHORTEST_SCRUBBED_LINE: usize = 16;

/// One `${NAME}` expansion: the value the environment gave, a secret of
/// the collector whose settings it was made in.
#[derive(Debug, Clone)]
pub(crate) struct Expansion {
    pub(crate) value: String,
}

/// Replaces `${NAME}` in every string value with the environment variable
/// NAME; `$${` stands for a literal `${`. A missing variable is an error at
/// the value. Returns every expansion made.
pub(crate) fn interpolate_table(
    table: &mut DeTable<'_>,
    source: &Source,
) -> Result<Vec<Expansion>, ConfigError> {
    let mut expansions = Vec::new();
    interpolate_into(table, source, &mut expansions)?;
    Ok(expansions)
}

fn interpolate_into(
    table: &mut DeTable<'_>,
    source: &Source,
    expansions: &mut Vec<Expansion>,
) -> Result<(), ConfigError> {
    for (_, v) in table.iter_mut() {
        interpolate_value(v, source, expansions)?;
    }
    Ok(())
}

fn interpolate_value(
    v: &mut Spanned<DeValue<'_>>,
    source: &Source,
    expansions: &mut Vec<Expansion>,
) -> Result<(), ConfigError> {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains('$') => {
            let mut values = Vec::new();
            let out = expand(s, &mut values).map_err(|m| source.error_at(Some(span.clone()), m))?;
            expansions.extend(values.into_iter().map(|value| Expansion { value }));
            *s = DeString::Owned(out);
        }
        DeValue::Array(a) => {
            for item in a.iter_mut() {
                interpolate_value(item, source, expansions)?;
            }
        }
        DeValue::Table(t) => interpolate_into(t, source, expansions)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` from the environment.
pub fn interpolate_str(s: &str) -> Result<String, String> {
    expand(s, &mut Vec::new())
}

/// [`interpolate_str`], noting each value the environment gave in `values`.
fn expand(s: &str, values: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            values.push(value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// For each secret setting `x` of a kind, `x_file = "path"` stands for
/// `x = <the file's contents>` (trailing newline removed), as container
/// secrets are mounted as files. Every secret setting's value, read from a
/// file or written in place, is added to `found`.
pub(crate) fn resolve_secret_files<'a>(
    source: &Source,
    mut table: DeTable<'a>,
    secrets: &[&str],
    base: &Path,
    found: &mut Secrets,
) -> Result<DeTable<'a>, ConfigError> {
    for name in secrets {
        if let Some(v) = table.get(*name).and_then(|v| v.get_ref().as_str()) {
            found.insert(v);
        }
    }
    for name in secrets {
        let file_key = format!("{name}_file");
        let Some((k, v)) = table.remove_entry(file_key.as_str()) else {
            continue;
        };
        if table.contains_key(*name) {
            return Err(source.error_at(
                Some(k.span()),
                format!("give either `{name}` or `{file_key}`, not both"),
            ));
        }
        let Some(p) = v.get_ref().as_str() else {
            return Err(source.error_at(Some(v.span()), format!("`{file_key}` must be a path")));
        };
        let path = base.join(p);
        let contents = std::fs::read_to_string(&path).map_err(|e| {
            source.error_at(
                Some(v.span()),
                format!("cannot read the secret file {}: {e}", path.display()),
            )
        })?;
        let value = contents.trim_end_matches(['\n', '\r']).to_string();
        found.insert(&value);
        table.insert(
            Spanned::new(k.span(), DeString::Owned(name.to_string())),
            Spanned::new(v.span(), DeValue::String(DeString::Owned(value))),
        );
    }
    Ok(table)
}

/// The secret values of one collector instance: its `${NAME}` expansions,
/// its secret settings (from files or written in place) and whatever its
/// kind marks as secret (a command's `set_env`). Scrubbing replaces each
/// with [`REDACTED`], and URL credentials (`user:pass@`) too.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Longest first, so that a secret containing another is replaced
    /// whole.
    values: Vec<String>,
}

impl fmt::Debug for Secrets {
    // Never the values themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret value (and, for a multi-line one, each long line);
    /// values too short to look for are skipped.
    pub fn insert(&mut self, value: &str) {
        let mut add = |v: &str| {
            if v.chars().count() >= SHORTEST_SCRUBBED && !self.values.iter().any(|x| x == v) {
                self.values.push(v.to_string());
            }
        };
        add(value);
        add(value.trim());
        if value.trim().contains('\n') {
            for line in value.lines().map(str::trim) {
                if line.chars().count() >= SHORTEST_SCRUBBED_LINE {
                    add(line);
                }
            }
        }
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// Adds every value of `other`.
    pub fn extend(&mut self, other: &Secrets) {
        for v in &other.values {
            self.insert(v);
        }
    }

    /// How many values are looked for.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there is nothing to look for (URL credentials are still
    /// redacted).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `s` with every secret value and every URL credential replaced.
    pub fn scrub<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = redact_url_credentials(s);
        for secret in &self.values {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// `s` scrubbed, when that changed it.
    pub fn scrubbed(&self, s: &str) -> Option<String> {
        match self.scrub(s) {
            Cow::Owned(o) => Some(o),
            Cow::Borrowed(_) => None,
        }
    }

    /// Scrubs every string of `v`, object keys included; returns how many
    /// strings changed.
    pub fn scrub_json(&self, v: &mut Value) -> usize {
        match v {
            Value::String(s) => match self.scrubbed(s) {
                Some(o) => {
                    *s = o;
                    1
                }
                None => 0,
            },
            Value::Array(a) => a.iter_mut().map(|x| self.scrub_json(x)).sum(),
            Value::Object(m) => {
                let mut n = 0;
                if m.keys().any(|k| self.scrubbed(k).is_some()) {
                    let old = std::mem::take(m);
                    for (k, x) in old {
                        let k = match self.scrubbed(&k) {
                            Some(o) => {
                                n += 1;
                                o
                            }
                            None => k,
                        };
                        m.insert(k, x);
                    }
                }
                n + m.values_mut().map(|x| self.scrub_json(x)).sum::<usize>()
            }
            _ => 0,
        }
    }
}

/// `s` with the credentials of every URL in it (`scheme://user:pass@host`,
/// or any user part of an http(s) URL, where tokens travel as user names)
/// replaced by [`REDACTED`]; the scheme, host and path stay, as they say
/// where a request went.
pub fn redact_url_credentials(s: &str) -> Cow<'_, str> {
    if !s.contains("://") || !s.contains('@') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the path, query, fragment, or the end of
        // the URL in the text.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#')
                    || c.is_whitespace()
                    || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | '`')
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        let web = head.ends_with("http://") || head.ends_with("https://");
        match authority.rfind('@') {
            // `ssh://git@host` names an account, not a credential.
            Some(at) if at > 0 && (web || authority[..at].contains(':')) => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_scrubbed_from_strings_and_keys_longest_first() {
        let mut s = Secrets::new();
        s.insert("hunter22");
        s.insert("hunter22-and-more");
        s.insert("abc");
        assert_eq!(s.len(), 2, "too short a value is not looked for");
        assert_eq!(
            s.scrub("x=hunter22-and-more y=hunter22 z=abc"),
            "x=[redacted] y=[redacted] z=abc"
        );
        let mut v =
            json!({"hunter22": ["a hunter22", 5, {"k": "hunter22-and-more"}], "ok": "fine"});
        assert_eq!(s.scrub_json(&mut v), 3);
        assert_eq!(
            v,
            json!({"[redacted]": ["a [redacted]", 5, {"k": "[redacted]"}], "ok": "fine"})
        );
        assert_eq!(format!("{s:?}"), "Secrets(2 values)");
    }

    #[test]
    fn multi_line_secrets_are_also_looked_for_line_by_line() {
        let mut s = Secrets::new();
        s.insert("-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n");
        assert_eq!(
            s.scrub("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            "line: [redacted]"
        );
    }

    #[test]
    fn url_credentials_are_redacted_wherever_a_url_is() {
        assert_eq!(
            redact_url_credentials("GET https://bob:pa55@api.example/v1?x=1 failed"),
            "GET https://[redacted]@api.example/v1?x=1 failed"
        );
        assert_eq!(
            redact_url_credentials("a (http://tok@h:8080) and ssh://git@x.example/p"),
            "a (http://[redacted]@h:8080) and ssh://git@x.example/p"
        );
        assert_eq!(
            redact_url_credentials("mail bob@example.com via https://h/"),
            "mail bob@example.com via https://h/"
        );
        assert!(matches!(
            redact_url_credentials("no url @ all"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn expansions_are_remembered_with_their_place() {
        // SAFETY: tests in this module alone read this variable.
        unsafe { std::env::set_var("EXHIBIT_ENV_RS_TEST", "v4lue-from-env") };
        let mut values = Vec::new();
        assert_eq!(
            expand("a ${EXHIBIT_ENV_RS_TEST} b $${X}", &mut values).unwrap(),
            "a v4lue-from-env b ${X}"
        );
        assert_eq!(values, ["v4lue-from-env"]);
    }
}
