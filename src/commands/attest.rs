//! `exhibit attest`: a reviewer signs off one record for a control with
//! their own SSH key (OpenSSH's `SSHSIG` format), stored as a record of
//! `attest/<control>` that an auditor checks with `ssh-keygen -Y verify`.

use crate::commands::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use super::controls::LibraryArgs;
use crate::agent::Agent;
use crate::assess;
use crate::cli::{Cli, Failure, init_logging};
use crate::control::{attest, attest_stream};
use crate::evidence::record::Trigger;
use crate::read::Reader;

/// The collector kind recorded on review records.
const ATTEST_KIND: &str = "attestation";

/// The arguments of `exhibit attest`.
#[derive(Debug, clap::Args)]
pub(crate) struct AttestArgs {
    /// The record reviewed: `STREAM@SEQ`.
    #[arg(long)]
    pub(crate) record: String,
    /// The control the review serves.
    #[arg(long)]
    pub(crate) control: String,
    /// What the reviewer states (default: the control's expected
    /// statement).
    #[arg(long)]
    pub(crate) statement: Option<String>,
    /// The reviewer's OpenSSH private key (Ed25519, RSA or ECDSA); a
    /// protected key is decrypted with `EXHIBIT_SSH_PASSPHRASE`.
    #[arg(long)]
    pub(crate) key: PathBuf,
    #[command(flatten)]
    pub(crate) library: LibraryArgs,
}

/// Signs and records the review.
pub(crate) async fn exec(cli: &Cli, args: &AttestArgs) -> Result<ExitCode, Failure> {
    let lib = args.library.load()?;
    let Some(control) = lib.get(&args.control) else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "no control `{}` in the library",
            args.control
        )));
    };
    let statement = match (&args.statement, control.control.attestation.as_ref()) {
        (Some(s), _) => s.clone(),
        (None, Some(a)) if a.statement.is_some() => a.statement.clone().expect("checked"),
        (None, _) => {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--statement is needed: control `{}` names no statement of its own",
                args.control
            )));
        }
    };
    let Some((stream, seq)) = args
        .record
        .rsplit_once('@')
        .and_then(|(s, n)| Some((s, n.parse::<u64>().ok()?)))
    else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--record must be STREAM@SEQ, e.g. okta-users/acme@12 (`exhibit list` shows streams)"
        )));
    };
    let passphrase = std::env::var("EXHIBIT_SSH_PASSPHRASE").ok();
    let key =
        attest::load_key(&args.key, passphrase.as_deref()).map_err(|e| Failure::Usage(e.into()))?;
    let config = super::require_config(cli)?;
    init_logging(
        cli.log_format.unwrap_or(config.log.format),
        config.log.level.as_deref(),
        cli.verbose,
        "warn",
    );
    let agent = Agent::open(config, cli.store.as_deref()).await?;
    let reader = Reader::new(agent.store().clone());
    let Some(record) = reader
        .record(stream, seq)
        .await
        .map_err(anyhow::Error::from)?
    else {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{} is not in {}",
            args.record,
            reader.describe()
        )));
    };
    if let Some(flaw) = &record.flaw {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "{} cannot be reviewed: {flaw}",
            args.record
        )));
    }
    // The record's times must fall inside its run.
    let run = agent.begin_run(Trigger::Manual);
    let now = agent.now();
    let signed = attest::sign(
        &key,
        &args.control,
        &assess::reference(&record),
        &statement,
        now,
    )
    .map_err(|e| Failure::Usage(e.into()))?;
    let entry = assess::entry_of(
        control,
        attest_stream(&args.control),
        ATTEST_KIND,
        now,
        signed.payload(),
    );
    let written = super::write_alone(&agent, run, entry).await?;
    outln!(
        "review {}@{} of {} for {}, signed by {}",
        written.stream,
        written.seq,
        args.record,
        args.control,
        signed.signer.fingerprint
    );
    outln!(
        "An auditor checks it with `ssh-keygen -Y verify -n {}` (docs/controls.md).",
        attest::NAMESPACE
    );
    Ok(ExitCode::SUCCESS)
}
