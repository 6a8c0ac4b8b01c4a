//! The files of a bundle beside the evidence: `period.txt`, `streams.txt`,
//! `sampled.txt`, `sample.json`, the README, `verify.sh` and
//! `MANIFEST.sha256`; and the .tar.gz they are packed into, with fixed
//! metadata so that the same sample gives the same bytes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::chain::Period;
use super::{Manifest, VERIFY_SH};
use crate::evidence::sha256_hex;

/// The top directory every file of a bundle sits under.
pub const ROOT: &str = "exhibit-sample";

/// Adds the bundle's own files to `files` (the evidence) and writes the
/// bundle to `out`.
pub(super) fn write(
    out: &Path,
    mut files: BTreeMap<String, Vec<u8>>,
    manifest: &Manifest,
    period: &Period,
) -> anyhow::Result<()> {
    files.insert("period.txt".into(), period.to_text().into_bytes());
    files.insert("sample.json".into(), serde_json::to_vec_pretty(manifest)?);
    let lines = |v: Vec<&str>| format!("{}\n", v.join("\n")).into_bytes();
    files.insert(
        "sampled.txt".into(),
        lines(
            manifest
                .streams
                .iter()
                .flat_map(|s| s.sampled.iter().map(String::as_str))
                .collect(),
        ),
    );
    files.insert(
        "streams.txt".into(),
        lines(manifest.streams.iter().map(|s| s.stream.as_str()).collect()),
    );
    files.insert("README.md".into(), readme(manifest).into_bytes());
    finish(out, files)
}

/// Adds `verify.sh` and `MANIFEST.sha256` to the bundle's `files` and
/// writes it to `out`.
pub(super) fn finish(out: &Path, mut files: BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    files.insert("verify.sh".into(), VERIFY_SH.as_bytes().to_vec());
    let listing: String = files
        .iter()
        .map(|(k, v)| format!("{}  {k}\n", sha256_hex(v)))
        .collect();
    files.insert("MANIFEST.sha256".into(), listing.into_bytes());
    write_tar(out, &files)
}

/// Writes the files under one top directory, with fixed metadata so that
/// the same sample gives the same bytes.
fn write_tar(out: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(if name == "verify.sh" { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, format!("{ROOT}/{name}"), bytes.as_slice())?;
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(())
}

fn readme(m: &Manifest) -> String {
    let mut s = format!(
        "# Exhibit evidence sample\n\nPeriod: {} to {}\nSeed: `{}` (the same seed over the same store draws the same sample)\nStore: `{}`\nHead: `{}` (the SHA-256 of the store's newest checkpoint when the sample was drawn: compare it with the head you noted)\nRecords in the period: {}\n\n| stream | schedule | frequency | records in period | sampled |\n| --- | --- | --- | --- | --- |\n",
        m.from.to_rfc3339(),
        m.to.to_rfc3339(),
        m.seed,
        m.store,
        m.head,
        m.population,
    );
    for st in &m.streams {
        s.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            st.stream,
            st.schedule.as_deref().unwrap_or("-"),
            st.frequency.as_deref().unwrap_or("-"),
            st.population,
            st.size
        ));
    }
    s.push_str(README_BODY);
    s
}

const README_BODY: &str = "
## What is here

- `checkpoints/`: the signed checkpoint chain across the period, from the
  head (the newest checkpoint when the sample was drawn) back to the last
  checkpoint before the period. Each lists the records of one run and the
  hash of the checkpoint before it.
- `records/`: every record the period's checkpoints list, in every stream
  (DSSE envelopes of in-toto statements, Ed25519-signed): the population.
- `blobs/`: the payloads (canonical JSON) of the sampled records;
  `sampled.txt` lists those records, `streams.txt` the streams sampled.
- `period.txt`: the period, the seed and the head of each checkpoint chain.
  A record's rank is the SHA-256 of `<seed>\\n<record key>`; a stream's
  sample is its lowest ranks, so anyone can redraw it.
- `keys/`: the agent's public keys. Compare them with the copy the company
  gave you out of band, or pass yours: `KEY=your-copy.pub sh verify.sh`.
- `checkpoints/…/<run id>.tsr` (when the agent timestamps): the RFC 3161
  token of each checkpoint, and `tsa/`: the TSA certificates the agent
  trusted. Better, pass the TSA's CA certificate obtained from the TSA
  itself: `TSA_CA=tsa-ca.pem sh verify.sh`.
- `sample.json`, this README: summaries for reading; the verifiers check
  them only against `MANIFEST.sha256`.
- `MANIFEST.sha256`: the sha256 of every file.

## Verify

With standard tools only (sha256sum, openssl 3, sed, awk, sort):

    sh verify.sh

or with Exhibit: `exhibit verify --bundle <this file>.tar.gz`. Both reach
the same verdict: they check every file against the manifest (and that no
file is unlisted or not a regular file), every signature, the checkpoint
chain from each head back past the period's start, that the records are
exactly those the period's checkpoints list, the chain links between
records, every sampled payload's hash, the draw (redrawn from the seed),
and each checkpoint's RFC 3161 token; `exhibit verify` also checks the
records' times against the tokens' (back-dating). Both print the head:
a bundle cut short after its last run can only be told from a genuine one
by comparing the head with the one you noted when the sample was drawn.

To read a sampled payload: `cat blobs/sha256/<2>/<hash>`; the record that
signs it names the hash in its statement's `subject`.
";
