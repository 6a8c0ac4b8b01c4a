//! `exhibit controls`: each control's state now and over a period, read
//! from its results, with what is open; `exhibit controls test`: the
//! library's fixtures, as `opa test` runs a policy's tests. Also the
//! `--controls-dir` option every control command shares.

use crate::commands::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};

use crate::assess::{self, ControlStatus};
use crate::cli::{Cli, Failure};
use crate::control::{Library, State, fixtures};
use crate::read::Reader;

/// Where the control library comes from.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LibraryArgs {
    /// A directory of your own controls (`<id>.toml` and their policies),
    /// added to the built-in library; a control with a built-in id
    /// replaces it.
    #[arg(
        long = "controls-dir",
        env = "EXHIBIT_CONTROLS_DIR",
        value_name = "DIR"
    )]
    pub(crate) dir: Option<PathBuf>,
}

impl LibraryArgs {
    /// The library: the built-in controls and those of `--controls-dir`.
    pub(crate) fn load(&self) -> Result<Library, Failure> {
        Ok(Library::load(self.dir.as_deref())?)
    }
}

/// The arguments of `exhibit controls`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ControlsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<ControlsAction>,
    #[command(flatten)]
    pub(crate) library: LibraryArgs,
    /// Start of the period (default: a year before `--to`).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) from: Option<DateTime<Utc>>,
    /// End of the period (default: now).
    #[arg(long, value_parser = super::parse_time)]
    pub(crate) to: Option<DateTime<Utc>>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What else `exhibit controls` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ControlsAction {
    /// Runs every control's fixtures (its passing and failing cases); exits
    /// 1 if any case does not reach the state it expects.
    Test {
        #[command(flatten)]
        library: LibraryArgs,
        /// Only this control (repeatable).
        #[arg(long = "control")]
        controls: Vec<String>,
    },
}

/// Shows each control over the period; exits 1 when a control with results
/// is failing, in error or not evaluated, or when no control has results.
pub(crate) async fn exec(cli: &Cli, args: &ControlsArgs) -> Result<ExitCode, Failure> {
    if let Some(ControlsAction::Test { library, controls }) = &args.action {
        return test(&library.load()?, controls);
    }
    let lib = args.library.load()?;
    let to = args.to.unwrap_or_else(Utc::now);
    let from = args.from.unwrap_or(to - Duration::days(365));
    if from > to {
        return Err(Failure::Usage(anyhow::anyhow!(
            "--from ({from}) is later than --to ({to})"
        )));
    }
    let reader = Reader::new(super::read_store(cli).await?);
    let mut rows = Vec::new();
    for c in lib.iter() {
        rows.push(assess::status(&reader, c, from, to).await?);
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "from": from, "to": to, "controls": rows,
            }))
            .expect("serialises")
        );
    } else {
        print!("{}", render(&rows, from, to));
    }
    let assessed: Vec<&ControlStatus> = rows.iter().filter(|r| r.results > 0).collect();
    if assessed.is_empty() {
        eprintln!(
            "No control has results between {from} and {to} in {}: run `exhibit assess`.",
            reader.describe()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if assessed.iter().all(|r| settled(r.summary.current)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether a state needs no one's attention.
pub(crate) fn settled(state: Option<State>) -> bool {
    matches!(
        state,
        Some(State::Pass | State::Excepted | State::NotApplicable)
    )
}

/// The text of a state, with "no results" for a control never assessed.
pub(crate) fn state_text(state: Option<State>) -> &'static str {
    state.map_or("no results", State::as_str)
}

fn render(rows: &[ControlStatus], from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "Controls from {} to {}\n\n",
        from.format("%Y-%m-%d %H:%M"),
        to.format("%Y-%m-%d %H:%M")
    );
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(7).max(7);
    let _ = writeln!(
        out,
        "{:width$}  {:13}  {:16}  {:>5} {:>5} {:>8} {:>8} {:>5}  OPEN",
        "CONTROL", "STATE", "SINCE", "PASS", "FAIL", "EXCEPTED", "NOT EVAL", "ERROR"
    );
    for r in rows {
        let s = &r.summary;
        let since = s.since.map_or_else(
            || "-".to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        );
        let _ = writeln!(
            out,
            "{:width$}  {:13}  {:16}  {:>5} {:>5} {:>8} {:>8} {:>5}  {}",
            r.id,
            state_text(s.current),
            since,
            s.pass,
            s.fail,
            s.excepted,
            s.not_evaluated,
            s.error,
            s.open_findings.len()
        );
    }
    for r in rows.iter().filter(|r| !r.summary.open_findings.is_empty()) {
        let _ = writeln!(out, "\n{} — {}: open findings", r.id, r.title);
        for f in r.summary.open_findings.iter().take(20) {
            let _ = writeln!(out, "  {}: {}", f.entity, f.reason);
        }
        if r.summary.open_findings.len() > 20 {
            let _ = writeln!(out, "  … and {} more", r.summary.open_findings.len() - 20);
        }
    }
    out
}

fn test(lib: &Library, only: &[String]) -> Result<ExitCode, Failure> {
    for id in only {
        if lib.get(id).is_none() {
            return Err(Failure::Usage(anyhow::anyhow!(
                "no control `{id}` in the library"
            )));
        }
    }
    let mut outcomes = Vec::new();
    for c in lib.iter() {
        if only.is_empty() || only.contains(&c.control.id) {
            if c.fixtures.is_none() {
                outln!("SKIP {}: no fixtures file", c.control.id);
                continue;
            }
            outcomes.extend(fixtures::run_control(c));
        }
    }
    for o in &outcomes {
        match (&o.passed, &o.detail) {
            (true, _) => outln!("PASS {}/{}", o.control, o.case),
            (false, Some(d)) => outln!("FAIL {}/{}: {d}", o.control, o.case),
            (false, None) => outln!("FAIL {}/{}", o.control, o.case),
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    outln!(
        "\n{} of {} fixture cases passed",
        outcomes.len() - failed,
        outcomes.len()
    );
    if outcomes.is_empty() {
        outln!("no fixture cases ran");
        return Ok(ExitCode::from(1));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
