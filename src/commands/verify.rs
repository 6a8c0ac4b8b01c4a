//! `exhibit verify`: checks a store, or a sample bundle, and prints the
//! verdict.

use crate::cli::{Cli, Failure, print_stdout};
use crate::evidence::keys::{KeyRing, PublicKey};
use crate::verify::bundle::BundleError;
use std::path::PathBuf;
use std::process::ExitCode;

/// Verifies the store (or `--bundle`) over the period; exits 1 unless the
/// verdict is INTACT (FAILED, INCOMPLETE and NO EVIDENCE all exit 1), 2 on
/// a period that ends before it starts or a malformed `--known-head`.
pub(crate) async fn exec(cli: &Cli, args: &VerifyArgs) -> Result<ExitCode, Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--from {} is later than --to {}: the period ends before it starts",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    if let Some(h) = &args.known_head
        && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--known-head `{h}` is not a SHA-256 (64 hex digits, as `head:` prints it)"
        )));
    }
    let store = super::read_store(cli).await?;
    let timestamps = timestamp_options(
        cli,
        &args.tsa_certs,
        args.require_timestamps,
        args.max_delay,
    )?;
    let keys = if args.keys.is_empty() {
        None
    } else {
        let mut ring = KeyRing::default();
        for k in &args.keys {
            ring.insert(PublicKey::load(k).map_err(|e| Failure::Usage(e.into()))?);
        }
        Some(ring)
    };
    let opts = crate::verify::Options {
        from: args.from,
        to: args.to,
        keys,
        timestamps,
        known_head: args.known_head.clone(),
        ..Default::default()
    };
    if let Some(b) = &args.bundle {
        let mut verdict = crate::verify::bundle::verify_bundle(b, opts)
            .await
            .map_err(|e| match e {
                BundleError::NotABundle(e) => Failure::Usage(e),
                BundleError::Failed(e) => Failure::Runtime(e),
            })?;
        // The bundle verifier adds problems of its own after the verdict.
        verdict.report.settle();
        print_stdout(&if args.json {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&verdict).expect("verdicts serialise")
            )
        } else {
            verdict.render(args.coverage)
        })?;
        return Ok(exit_code(verdict.report.passed()));
    }
    // Given the config, an enabled collector with no record at all is a
    // gap; an auditor's copy of the store alone is judged as it is.
    let opts = crate::verify::Options {
        configured: super::configured(cli)?,
        ..opts
    };
    let report = crate::verify::verify(store, &opts)
        .await
        .map_err(anyhow::Error::from)?;
    print_stdout(&if args.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        )
    } else {
        report.render(args.coverage)
    })?;
    Ok(exit_code(report.passed()))
}

/// 0 when the verdict is INTACT, else 1.
fn exit_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// How `verify` judges RFC 3161 tokens: trust from `--tsa-cert`, else the
/// config's `[timestamping]`, else (left to verify) the store's own `tsa/`.
fn timestamp_options(
    cli: &Cli,
    tsa_certs: &[PathBuf],
    require: bool,
    max_delay: Option<std::time::Duration>,
) -> Result<crate::verify::TimestampOptions, Failure> {
    let configured = super::load_config(cli, false)?.and_then(|c| c.timestamping);
    let mut opts = crate::verify::TimestampOptions {
        require,
        ..Default::default()
    };
    if let Some(t) = &configured {
        opts.tolerance = t.tolerance;
        opts.max_delay = t.max_delay;
    }
    if let Some(d) = max_delay {
        opts.max_delay = d;
    }
    if !tsa_certs.is_empty() {
        let mut trust = crate::evidence::timestamp::TrustAnchors::default();
        for path in tsa_certs {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::Usage(anyhow::anyhow!("cannot read {}: {e}", path.display()))
            })?;
            let certs = crate::evidence::timestamp::TrustAnchors::from_pem(&bytes)
                .map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", path.display())))?;
            trust.extend(certs);
        }
        opts.trust = Some((trust, "given with --tsa-cert".into()));
    } else if let Some(t) = configured {
        opts.trust = Some((t.trust, "the config's [timestamping] tsa_certs".into()));
    }
    Ok(opts)
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Start of the period (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the period (RFC 3339 or YYYY-MM-DD; default: now).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) to: Option<chrono::DateTime<chrono::Utc>>,
    /// A head you noted earlier (the SHA-256 `collect`, `verify` and the
    /// nightly report print): fails unless that checkpoint is still in
    /// the store, as the newest or an ancestor of the newest.
    #[arg(long, value_name = "SHA256")]
    pub(crate) known_head: Option<String>,
    /// Your own copy of the agent's public key (repeatable); without
    /// it, the store's keys/ are trusted and the verdict says so.
    #[arg(long = "key")]
    pub(crate) keys: Vec<std::path::PathBuf>,
    /// Print the coverage detail (missed slots) per stream.
    #[arg(long)]
    pub(crate) coverage: bool,
    /// Verify a sample bundle (.tar.gz from `exhibit sample`) instead
    /// of a store.
    #[arg(long)]
    pub(crate) bundle: Option<std::path::PathBuf>,
    /// Your own copy of a TSA's certificate or its CA's (PEM,
    /// repeatable), to check RFC 3161 tokens against; without it, the
    /// config's `[timestamping] tsa_certs`, else the store's tsa/
    /// (and the verdict says so).
    #[arg(long = "tsa-cert")]
    pub(crate) tsa_certs: Vec<std::path::PathBuf>,
    /// Fail checkpoints that have no RFC 3161 token (default: a
    /// warning).
    #[arg(long)]
    pub(crate) require_timestamps: bool,
    /// How long before its token's time a record may claim to have
    /// finished before it counts as back-dated (default: the config's
    /// `[timestamping] max_delay`, else 24h).
    #[arg(long, value_parser = super::parse_duration)]
    pub(crate) max_delay: Option<std::time::Duration>,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}
