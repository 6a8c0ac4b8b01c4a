//! Values that come from outside the file: `${NAME}` interpolation from the
//! environment, and `*_file` indirection for secrets (`token_file = "…"`
//! stands for `token = <the file's contents>`), as containers receive their
//! secrets as variables and mounted files.

use std::path::Path;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::source::{ConfigError, Source};

/// Replaces `${NAME}` in every string value with the environment variable
/// NAME; `$${` stands for a literal `${`. A missing variable is an error at
/// the value.
pub(crate) fn interpolate_table(
    table: &mut DeTable<'_>,
    source: &Source,
) -> Result<(), ConfigError> {
    for (_, v) in table.iter_mut() {
        interpolate_value(v, source)?;
    }
    Ok(())
}

fn interpolate_value(v: &mut Spanned<DeValue<'_>>, source: &Source) -> Result<(), ConfigError> {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) if s.contains('$') => {
            let out = interpolate_str(s).map_err(|m| source.error_at(Some(span), m))?;
            *s = DeString::Owned(out);
        }
        DeValue::Array(a) => {
            for item in a.iter_mut() {
                interpolate_value(item, source)?;
            }
        }
        DeValue::Table(t) => interpolate_table(t, source)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` from the environment.
pub fn interpolate_str(s: &str) -> Result<String, String> {
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
/// secrets are mounted as files.
pub(crate) fn resolve_secret_files<'a>(
    source: &Source,
    mut table: DeTable<'a>,
    secrets: &[&str],
    base: &Path,
) -> Result<DeTable<'a>, ConfigError> {
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
        table.insert(
            Spanned::new(k.span(), DeString::Owned(name.to_string())),
            Spanned::new(v.span(), DeValue::String(DeString::Owned(value))),
        );
    }
    Ok(table)
}
