//! `exhibit assess`: evaluates controls over the evidence in the store and
//! writes each result as a signed record of `control/<id>`, in one run
//! closed by a checkpoint.

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::controls::{LibraryArgs, settled};
use crate::agent::Agent;
use crate::assess;
use crate::cli::{Cli, Failure, init_logging};
use crate::control::{Evaluation, LoadedControl, State};
use crate::evidence::record::Trigger;
use crate::read::Reader;

/// The arguments of `exhibit assess`.
#[derive(Debug, clap::Args)]
pub(crate) struct AssessArgs {
    /// Only this control (repeatable); by default every control whose
    /// inputs the store holds.
    #[arg(long = "control")]
    pub(crate) controls: Vec<String>,
    /// Re-evaluate at every time an input landed from this time on (with
    /// `--to`), as the control would have been evaluated then; each
    /// evaluation becomes a new result record. Without a period, the
    /// controls are evaluated once, now.
    #[arg(long, value_parser = super::parse_time, requires = "to")]
    pub(crate) from: Option<DateTime<Utc>>,
    /// End of the period to re-evaluate.
    #[arg(long, value_parser = super::parse_time, requires = "from")]
    pub(crate) to: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub(crate) library: LibraryArgs,
}

/// Evaluates and records; exits 1 when a control assessed is failing, in
/// error or not evaluated, or when no control could be assessed.
pub(crate) async fn exec(cli: &Cli, args: &AssessArgs) -> Result<ExitCode, Failure> {
    let lib = args.library.load()?;
    for id in &args.controls {
        if lib.get(id).is_none() {
            let known: Vec<&str> = lib.iter().map(|c| c.control.id.as_str()).collect();
            return Err(Failure::Usage(anyhow::anyhow!(
                "no control `{id}` in the library; known: {}",
                known.join(", ")
            )));
        }
    }
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--from ({from}) is later than --to ({to})"
        )));
    }
    let config = super::require_config(cli)?;
    init_logging(
        cli.log_format.unwrap_or(config.log.format),
        config.log.level.as_deref(),
        cli.verbose,
        "warn",
    );
    let agent = Agent::open(config, cli.store.as_deref()).await?;
    let reader = Reader::new(agent.store().clone());
    let sources = assess::sources(&reader).await?;
    let standing = assess::standing(&reader).await?;
    for p in &standing.problems {
        eprintln!("warning: not used: {p}");
    }
    let (selected, skipped): (Vec<&LoadedControl>, Vec<&LoadedControl>) =
        if args.controls.is_empty() {
            lib.iter().partition(|c| assess::has_inputs(c, &sources))
        } else {
            (
                lib.iter()
                    .filter(|c| args.controls.contains(&c.control.id))
                    .collect(),
                Vec::new(),
            )
        };
    if !skipped.is_empty() {
        let ids: Vec<&str> = skipped.iter().map(|c| c.control.id.as_str()).collect();
        eprintln!(
            "Not assessed, the store holds no evidence of their inputs: {}",
            ids.join(", ")
        );
    }
    if selected.is_empty() {
        eprintln!(
            "No control could be assessed: {} holds no evidence any control reads.",
            reader.describe()
        );
        return Ok(ExitCode::from(1));
    }

    let run = agent.begin_run(Trigger::Manual);
    let period = args.from.zip(args.to);
    let mut newest: Vec<(&LoadedControl, Option<Evaluation>, usize)> = Vec::new();
    let mut failure = None;
    for c in selected {
        let a = assess::assess_into(&agent, &run, &reader, c, &sources, &standing, period).await;
        newest.push((c, a.newest, a.written));
        if a.failure.is_some() {
            failure = a.failure;
            break;
        }
    }
    let checkpoint = agent.checkpoint(run).await;
    print!("{}", render(&newest));
    if let Some(e) = failure {
        return Err(Failure::Runtime(e));
    }
    checkpoint.map_err(|e| Failure::Runtime(e.into()))?;
    let all_settled = newest
        .iter()
        .all(|(_, e, _)| settled(e.as_ref().map(|e| e.state)));
    Ok(if all_settled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn render(rows: &[(&LoadedControl, Option<Evaluation>, usize)]) -> String {
    use std::fmt::Write as _;
    let width = rows
        .iter()
        .map(|(c, ..)| c.control.id.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!("{:width$}  {:13}  RESULTS  OPEN\n", "CONTROL", "STATE");
    for (c, e, written) in rows {
        let state = e
            .as_ref()
            .map_or("no inputs in the period", |e| e.state.as_str());
        let open = e.as_ref().map_or(0, |e| e.open_findings().count());
        let _ = writeln!(
            out,
            "{:width$}  {state:13}  {written:>7}  {open}",
            c.control.id
        );
    }
    for (c, e, _) in rows {
        let Some(e) = e else { continue };
        if let Some(reason) = &e.reason
            && matches!(
                e.state,
                State::NotEvaluated | State::Error | State::NotApplicable
            )
        {
            let _ = writeln!(out, "\n{}: {reason}", c.control.id);
        }
        let open: Vec<_> = e.open_findings().collect();
        if !open.is_empty() {
            let _ = writeln!(out, "\n{}: open findings", c.control.id);
            for f in open.iter().take(20) {
                let _ = writeln!(out, "  {}: {}", f.entity, f.reason);
            }
            if open.len() > 20 {
                let _ = writeln!(out, "  … and {} more", open.len() - 20);
            }
        }
    }
    out
}
