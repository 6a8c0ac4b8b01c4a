//! `exhibit run`: the daemon.

use std::process::ExitCode;

use crate::agent::Agent;
use crate::cli::{Cli, Failure, init_logging};

/// Opens the agent and runs the daemon, its admin endpoint on `admin_listen`
/// (default: the config's), until SIGTERM or SIGINT. The controls of `library` are evaluated whenever a record one of them
/// reads lands.
pub(crate) async fn exec(
    cli: &Cli,
    admin_listen: Option<std::net::SocketAddr>,
    library: &super::controls::LibraryArgs,
) -> Result<ExitCode, Failure> {
    let config = super::require_config(cli)?;
    // A broken control is a located error before anything starts.
    let controls = library.load()?;
    init_logging(
        cli.log_format.unwrap_or(config.log.format),
        config.log.level.as_deref(),
        cli.verbose,
        "info",
    );
    let admin = admin_listen.unwrap_or(config.admin.listen);
    let agent = Agent::open(config, cli.store.as_deref())
        .await?
        .with_controls(controls);
    crate::daemon::serve(agent, admin).await?;
    Ok(ExitCode::SUCCESS)
}
