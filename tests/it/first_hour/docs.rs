//! Every relative link in the documentation leads somewhere: the file it
//! names exists, and a `#fragment` into a Markdown file names one of its
//! headings (GitHub's anchors).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::support::root;

/// The Markdown files a reader follows: the README, docs/, and the notes
/// beside the deployment files and the collector definitions.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    for d in ["docs", "deploy", "collectors"] {
        walk(&root().join(d), &mut out);
    }
    out.sort();
    out
}

/// The link targets of a Markdown text, outside code blocks and spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans hold examples, not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped but `-`
/// and `_`, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> HashSet<String> {
    let mut fenced = false;
    let mut out = HashSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for link in links(&text) {
            if link.is_empty() || link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            checked += 1;
            let name = doc.strip_prefix(root()).unwrap().display().to_string();
            if !target.exists() {
                broken.push(format!("{name}: {link}: no such file"));
                continue;
            }
            if let Some(f) = fragment
                && target.extension().is_some_and(|x| x == "md")
                && !anchors(&std::fs::read_to_string(&target).unwrap()).contains(f)
            {
                broken.push(format!("{name}: {link}: no heading with that anchor"));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Markdown files a text names in prose (`see DESIGN.md`), outside code
/// blocks: a reader looks for them as much as for a link.
fn mentions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c))) {
            let word = word.trim_end_matches('.');
            let stem = word.strip_suffix(".md").unwrap_or("");
            if stem.chars().any(|c| c.is_ascii_alphanumeric())
                && !word.starts_with("//")
                && !line.contains(&format!("://{}", word.trim_start_matches('/')))
            {
                out.push(word.to_string());
            }
        }
    }
    out
}

#[test]
fn every_markdown_file_named_in_the_docs_exists() {
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for m in mentions(&text) {
            let here = doc.parent().unwrap().join(&m);
            if !here.exists() && !root().join(&m).exists() {
                let name = doc.strip_prefix(root()).unwrap().display().to_string();
                missing.push(format!("{name}: {m}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_link_checker_finds_what_is_broken() {
    let text = "See [the store](store-s3.md#the-spool), [gone](nowhere.md), `[code](x.md)`\n```\n[fenced](y.md)\n```\n## The `[report]` section\n";
    assert_eq!(links(text), ["store-s3.md#the-spool", "nowhere.md"]);
    assert!(anchors(text).contains("the-report-section"));
    assert_eq!(anchor("Kubernetes (Helm)"), "kubernetes-helm");
    assert_eq!(
        mentions("the layout in DESIGN.md, under `docs/x.md`; https://example.com/spec.md\n"),
        ["DESIGN.md", "docs/x.md"]
    );
}
