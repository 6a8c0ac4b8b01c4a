//! `exhibit keys`: the agent's signing key, shown and rotated.

use crate::commands::outln;
use std::process::ExitCode;

use crate::agent::Agent;
use crate::cli::{Cli, Failure, init_logging};
use crate::evidence::keys::Signer;

/// `keys show` prints the key id and public key (creating the key on first
/// use); `keys rotate` starts a new key (see [`Agent::rotate_key`]).
pub(crate) async fn exec(cli: &Cli, command: &KeysCommand) -> Result<ExitCode, Failure> {
    let config = super::require_config(cli)?;
    match command {
        KeysCommand::Show => {
            let (signer, created) =
                Signer::load_or_create(&config.agent.key).map_err(|e| Failure::Usage(e.into()))?;
            if created {
                eprintln!(
                    "created a new signing key at {}",
                    config.agent.key.display()
                );
            }
            outln!("key id: {}", signer.key_id());
            print!("{}", signer.public().to_pem());
        }
        KeysCommand::Rotate => {
            init_logging(
                cli.log_format.unwrap_or(config.log.format),
                None,
                cli.verbose,
                "warn",
            );
            // A dangling link is reported as such by loading the key below.
            if !config.agent.key.exists() && std::fs::symlink_metadata(&config.agent.key).is_err() {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "{} does not exist: there is no key to rotate yet",
                    config.agent.key.display()
                )));
            }
            let agent = Agent::open(config, cli.store.as_deref()).await?;
            let r = agent.rotate_key().await?;
            outln!(
                "retired key {} (kept at {})",
                r.retired_id,
                r.retired_path.display()
            );
            outln!("new key {} at {}", r.new_id, r.path.display());
            outln!("rotation checkpoint {}", r.checkpoint);
            outln!("Give auditors the new public key: exhibit keys show");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Print the agent's key id and public key (PEM), to hand to auditors
    /// out of band; creates the key if it does not exist yet.
    Show,
    /// Start a new signing key. The old key signs a checkpoint naming its
    /// successor and stays published; it is kept beside the new one as
    /// `<key>.retired-<id>`. Stop the daemon first.
    Rotate,
}
