//! The composition root of a collecting agent. From a loaded [`Config`] and
//! a store location it opens, once, everything that `run`, `collect` and
//! `keys rotate` share: the store, the signing key and the writer (with its
//! RFC 3161 timestamper, after fetching the tokens earlier runs lacked), the
//! metrics, the HTTP client, the runner and the collector instances. The
//! daemon asks the [`Agent`] for what it needs and never reaches into the
//! pieces.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::collect::instance::CollectorInstance;
use crate::config::Config;
use crate::evidence::keys::{Signer, StagedKey};
use crate::evidence::layout;
use crate::evidence::record::Trigger;
use crate::metrics::Metrics;
use crate::runner::{Outcome, Runner};
use crate::store::{self, Store, StoreError};
use crate::tsa::Timestamper;
use crate::writer::{Entry, Run, WriteError, Writer, Written};

/// Why an agent (or a store) could not be opened, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The config or the command line asks for what cannot be: a store
    /// location no backend serves, an unprotected bucket, a signing key
    /// that cannot be read.
    #[error(transparent)]
    Usage(anyhow::Error),
    /// Another agent (a running `exhibit run`, another `collect`) holds
    /// the store's lock on this agent's checkpoint chain.
    #[error(transparent)]
    Locked(anyhow::Error),
    /// Something failed on the way: the store cannot be reached, it holds
    /// what cannot be extended.
    #[error(transparent)]
    Runtime(anyhow::Error),
}

/// Opens the store at `location` (else the config's, else `evidence` in
/// the current directory); `write` for the commands that collect (an S3
/// store is then checked and written through the spool).
pub async fn open_store(
    location: Option<&str>,
    config: Option<&Config>,
    write: bool,
) -> Result<Arc<dyn Store>, OpenError> {
    let (location, base) = match (location, config) {
        (Some(s), _) => (s.to_string(), PathBuf::from(".")),
        (None, Some(c)) => (c.store.clone(), c.base_dir()),
        (None, None) => ("evidence".to_string(), PathBuf::from(".")),
    };
    // `--store` replaces the location only; the S3 and spool settings still
    // come from the config when there is one.
    let mut opts = config
        .map(|c| c.store_settings.open_options(write))
        .unwrap_or_else(|| store::config_free_options(write));
    if let (Some(c), Some(spool)) = (config, opts.spool.as_mut())
        && spool.is_relative()
    {
        // Absolute, so that it means the same whatever `base` the store
        // location resolves against.
        let joined = c.base_dir().join(&*spool);
        *spool = std::path::absolute(&joined).unwrap_or(joined);
    }
    store::open(&location, &base, &opts)
        .await
        .map_err(|e| match e {
            StoreError::Config(_) => OpenError::Usage(e.into()),
            e => OpenError::Runtime(
                anyhow::Error::from(e).context(format!("cannot open the store {location}")),
            ),
        })
}

/// The HTTP client every collector, the timestamper and the report webhook
/// share (one connection pool). Redirects are followed only within their
/// origin, so that credential headers never travel to another server.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("exhibit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(crate::collect::http::redirect_policy())
        .build()
        .context("cannot build the HTTP client")
}

/// What a key rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The id of the key retired.
    pub retired_id: String,
    /// Where the retired key is kept.
    pub retired_path: PathBuf,
    /// The id of the new key.
    pub new_id: String,
    /// Where the new key is (the configured key file).
    pub path: PathBuf,
    /// The rotation checkpoint, signed by the retired key.
    pub checkpoint: String,
}

/// An agent ready to collect: cheap to clone, every clone the same agent.
#[derive(Clone, Debug)]
pub struct Agent {
    config: Arc<Config>,
    instances: Arc<[Arc<CollectorInstance>]>,
    store: Arc<dyn Store>,
    writer: Arc<Writer>,
    runner: Runner,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    clock: Clock,
    /// The controls evaluated as their inputs land (the daemon's), if any.
    controls: Option<Arc<crate::control::Library>>,
}

impl Agent {
    /// Opens the agent of `config`, writing to `store` (the `--store`
    /// override) or else the config's store, on the system clock.
    pub async fn open(config: Config, store: Option<&str>) -> Result<Self, OpenError> {
        // The one place collector instances are made from the config.
        let instances =
            crate::collect::instance::build_all(&config).map_err(|e| OpenError::Usage(e.into()))?;
        let store = open_store(store, Some(&config), true).await?;
        Self::assemble(config, instances, store, Clock::system()).await
    }

    /// Opens an agent on a store already open, running `instances` by
    /// `clock` (what [`Agent::open`] does after opening the store; tests
    /// give their own store, collectors and clock). The config's own
    /// `collectors` play no part.
    pub async fn assemble(
        config: Config,
        instances: Vec<CollectorInstance>,
        store: Arc<dyn Store>,
        clock: Clock,
    ) -> Result<Self, OpenError> {
        let metrics = Arc::new(Metrics::new());
        let http = http_client().map_err(OpenError::Runtime)?;
        let (signer, created) =
            Signer::load_or_create(&config.agent.key).map_err(|e| OpenError::Usage(e.into()))?;
        if created {
            tracing::info!(key = %config.agent.key.display(), key_id = signer.key_id(), "created a new signing key");
        }
        // The keys earlier rotations retired, kept beside the key file: the
        // chain they signed is this agent's, and is extended.
        let retired = crate::evidence::keys::retired_beside(&config.agent.key)
            .map_err(|e| OpenError::Usage(e.into()))?;
        let writer =
            Writer::open_with_retired(store.clone(), Arc::new(signer), &retired, &config.agent.id)
                .await
                .map_err(|e| {
                    let locked = matches!(e, WriteError::Store(StoreError::Locked { .. }));
                    let e = anyhow::Error::from(e).context(format!(
                        "cannot open the store for writing as agent `{}`",
                        config.agent.id
                    ));
                    if locked {
                        OpenError::Locked(e)
                    } else {
                        OpenError::Runtime(e)
                    }
                })?
                .with_clock(clock);
        // This agent holds its lock now: a staged payload left by an
        // earlier process of it (killed mid-write) is nobody's.
        if let Some(spool) = store.spool() {
            spool.clean_staging();
        }
        let writer = match &config.timestamping {
            Some(t) => {
                let stamper = Arc::new(Timestamper::new(
                    t.clone(),
                    http.clone(),
                    metrics.clone(),
                    &config.agent.id,
                ));
                backfill_timestamps(&stamper, store.as_ref(), clock.now()).await;
                writer.with_timestamper(stamper)
            }
            None => writer,
        };
        let writer = Arc::new(writer);
        let runner = Runner::new(writer.clone(), metrics.clone(), http.clone(), config.shard);
        let agent = Agent {
            config: Arc::new(config),
            instances: instances.into_iter().map(Arc::new).collect(),
            store,
            writer,
            runner,
            metrics,
            http,
            clock,
            controls: None,
        };
        agent.publish_head().await;
        Ok(agent)
    }

    /// The agent, evaluating the controls of `library` whenever a run of
    /// it writes a record one of them reads (see [`Agent::assess_landed`]).
    pub fn with_controls(mut self, library: crate::control::Library) -> Self {
        self.controls = Some(Arc::new(library));
        self
    }

    /// Evaluates, within `run`, the controls that read what `run` wrote,
    /// when the agent has controls: their results are checkpointed with
    /// the records they judged. Never fails; see [`crate::assess::landed`].
    pub async fn assess_landed(&self, run: &Run) {
        if let Some(library) = &self.controls {
            crate::assess::landed(self, library, run).await;
        }
    }

    /// The config the agent was opened with (its collectors are
    /// [`Agent::instances`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The collector instances, in config order: the enabled collectors
    /// (a disabled one is never built).
    pub fn instances(&self) -> &[Arc<CollectorInstance>] {
        &self.instances
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The agent's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The agent's clock: records, collection windows and schedules all
    /// read it.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The current time by the agent's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The timestamper, when timestamps are configured.
    pub fn timestamper(&self) -> Option<&Arc<Timestamper>> {
        self.writer.timestamper()
    }

    /// Checkpoints that claimed to extend this agent's chain and failed the
    /// writer's checks (planted, unreadable): not extended, and to be
    /// reported. Streams whose head fails are reported by their collection.
    pub fn refused(&self) -> &[crate::writer::Refusal] {
        self.writer.refused()
    }

    /// Cancels the collections in flight (they are recorded as failed, and
    /// their runs still checkpointed).
    pub fn hard_stop(&self) -> &CancellationToken {
        self.runner.hard_stop()
    }

    /// Starts a run.
    pub fn begin_run(&self, trigger: Trigger) -> Run {
        self.writer.begin_run(trigger)
    }

    /// Closes `run` with its signed checkpoint; returns its key. A refusal
    /// of the store counts against readiness like a record's.
    pub async fn checkpoint(&self, run: Run) -> Result<String, WriteError> {
        match self.writer.checkpoint(run).await {
            Ok(key) => {
                self.metrics.write_succeeded();
                self.publish_head().await;
                Ok(key)
            }
            Err(e) => {
                self.metrics
                    .write_failed(None, self.now().timestamp() as f64, &e.to_string());
                Err(e)
            }
        }
    }

    /// How many records the store refused and that wait to be written.
    pub async fn pending(&self) -> usize {
        self.runner.pending().await
    }

    /// Writes the records the store refused earlier, in runs of their own
    /// that are checkpointed; returns how many are left.
    pub async fn write_pending(&self) -> usize {
        self.runner.write_pending().await
    }

    /// Runs the instances `selected` once, now, in one manual run that is
    /// checkpointed: what `exhibit collect` does, here or (asked through
    /// the control socket) in the running daemon. `progress` is called as
    /// each instance starts; what it returns is dropped when it ends.
    pub async fn collect_now<G>(
        &self,
        selected: &[Arc<CollectorInstance>],
        progress: impl Fn(&CollectorInstance) -> G,
    ) -> Result<CollectReport, WriteError> {
        use futures::StreamExt;
        let run = self.begin_run(Trigger::Manual);
        let (run_ref, progress) = (&run, &progress);
        // The futures are made first, so that the stream holds no closure
        // over borrowed items (its future then stays `Send`).
        let runs: Vec<_> = selected
            .iter()
            .map(|inst| async move {
                let guard = progress(inst);
                let o = self.collect(inst, run_ref, None).await;
                drop(guard);
                o
            })
            .collect();
        let outcomes: Vec<Vec<Outcome>> = futures::stream::iter(runs)
            .buffer_unordered(self.config.agent.concurrency.max(1))
            .collect()
            .await;
        self.assess_landed(&run).await;
        let checkpoint = self.checkpoint(run).await?;
        let token = layout::token(&checkpoint);
        let timestamp = match self.timestamper() {
            Some(_) if self.store.exists(&token).await.unwrap_or(false) => Timestamp::Token(token),
            Some(t) => Timestamp::Missing {
                waiting: t.pending(),
            },
            None => Timestamp::Off,
        };
        Ok(CollectReport {
            outcomes: outcomes
                .into_iter()
                .flatten()
                .map(|o| StreamOutcome {
                    seq: o.written.as_ref().map(|w| w.seq),
                    stream: o.stream,
                    status: o.status,
                    error: o.error,
                })
                .collect(),
            checkpoint,
            store: self.store.describe(),
            timestamp,
            refused: self.refused().iter().map(|r| r.to_string()).collect(),
            head: self.writer.head().await.map(|h| h.sha256),
        })
    }

    /// The agent after a reload of its config file: the collectors (and
    /// `[report]`) are the new file's; the store, key, agent id, shards,
    /// concurrency and admin address stay as they are (a changed value is
    /// logged as needing a restart). An invalid file is an error and changes
    /// nothing.
    pub fn reloaded(&self) -> anyhow::Result<Agent> {
        let config = crate::config::load(&self.config.path)?;
        let instances = crate::collect::instance::build_all(&config)?;
        let old = &self.config;
        let mut fixed = Vec::new();
        if config.agent.id != old.agent.id {
            fixed.push("agent.id");
        }
        if config.agent.key != old.agent.key {
            fixed.push("agent.key");
        }
        if config.agent.concurrency != old.agent.concurrency {
            fixed.push("agent.concurrency");
        }
        if config.agent.shutdown_grace != old.agent.shutdown_grace {
            fixed.push("agent.shutdown_grace");
        }
        if config.shard != old.shard {
            fixed.push("agent.shards");
        }
        if config.store != old.store
            || format!("{:?}", config.store_settings) != format!("{:?}", old.store_settings)
        {
            fixed.push("store");
        }
        if config.admin.listen != old.admin.listen {
            fixed.push("admin.listen");
        }
        if config.timestamping.is_some() != old.timestamping.is_some() {
            fixed.push("timestamping");
        }
        if !fixed.is_empty() {
            tracing::warn!(
                settings = fixed.join(", "),
                "these settings changed but apply only after a restart; the running values are kept"
            );
        }
        Ok(Agent {
            config: Arc::new(config),
            instances: instances.into_iter().map(Arc::new).collect(),
            ..self.clone()
        })
    }

    /// Writes `entry` within `run`: what is recorded without a collector
    /// (control results, exceptions, signed reviews).
    pub async fn append(&self, run: &Run, entry: Entry) -> Result<Written, WriteError> {
        self.writer.append(run, entry).await
    }

    /// Publishes the head of the agent's checkpoint chain as a metric.
    async fn publish_head(&self) {
        if let Some(h) = self.writer.head().await {
            self.metrics.head(&self.config.agent.id, &h.sha256);
        }
    }

    /// Collects every target of `inst` within `run`, serving `slot` when
    /// scheduled.
    pub async fn collect(
        &self,
        inst: &CollectorInstance,
        run: &Run,
        slot: Option<DateTime<Utc>>,
    ) -> Vec<Outcome> {
        self.runner.run_instance(inst, run, slot).await
    }

    /// Records `total` slots of `stream` that did not run (`slots` lists
    /// the first of them) and why.
    pub async fn record_missed(
        &self,
        inst: &CollectorInstance,
        run: &Run,
        stream: &str,
        slots: &[DateTime<Utc>],
        total: usize,
        reason: &str,
    ) -> Result<Written, WriteError> {
        self.runner
            .record_missed(inst, run, stream, slots, total, reason)
            .await
    }

    /// The last slot `stream` served or, failing that, when it last wrote;
    /// claims the stream for this agent.
    pub async fn last_slot(&self, stream: &str) -> Result<Option<DateTime<Utc>>, WriteError> {
        self.writer.last_slot(stream).await
    }

    /// Whether this replica owns `stream` (always, unsharded).
    pub fn owns(&self, stream: &str) -> bool {
        self.runner.owns(stream)
    }

    /// The streams of `inst` that the store holds and this replica owns,
    /// less the one an earlier version wrote once its successor exists:
    /// that stream has ended (its successor's first record says so), and
    /// owes no slot, no missed record and no freshness.
    pub async fn streams(&self, inst: &CollectorInstance) -> Result<BTreeSet<String>, StoreError> {
        let mut streams: BTreeSet<String> = self
            .store
            .list(&layout::collector_prefix(&inst.name))
            .await?
            .iter()
            .filter_map(|k| layout::stream_record(k).map(|(s, _)| s))
            .collect();
        let current = inst
            .collector
            .known_key()
            .map(|k| format!("{}/{k}", inst.name));
        if let (Some(former), Some(current)) = (crate::runner::former_stream(inst), current)
            && streams.contains(&current)
        {
            streams.remove(&former);
        }
        streams.retain(|s| self.runner.owns(s));
        Ok(streams)
    }

    /// Waits, at most the config's `flush_timeout`, for a spool to ship
    /// what was written; returns how many objects are left in it.
    pub async fn flush(&self) -> u64 {
        match self.store.spool() {
            Some(spool) => spool.flush(self.config.store_settings.flush_timeout).await,
            None => 0,
        }
    }

    /// Starts a new signing key: stages it beside the key file, has the
    /// store record the rotation (a checkpoint signed by the current key
    /// naming its successor), then keeps the current key file as
    /// `<key>.retired-<id>` and moves the new one into its place. The agent
    /// must not write afterwards.
    pub async fn rotate_key(&self) -> anyhow::Result<Rotation> {
        let path = self.config.agent.key.clone();
        let retired_id = self.writer.key_id().to_string();
        let staged = StagedKey::beside(&path)?;
        let new_id = staged.signer().key_id().to_string();
        let checkpoint = self.writer.rotate_key(staged.signer()).await?;
        let retired_path = staged
            .install(&retired_id)
            .with_context(|| format!("moving the new key into place at {}", path.display()))?;
        Ok(Rotation {
            retired_id,
            retired_path,
            new_id,
            path,
            checkpoint,
        })
    }
}

/// What a manual collection did, as `exhibit collect` prints it; the same
/// whether it ran in the command or in the running daemon (it crosses the
/// control socket as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CollectReport {
    /// One per stream collected.
    pub outcomes: Vec<StreamOutcome>,
    /// The run's checkpoint key.
    pub checkpoint: String,
    /// The store written to.
    pub store: String,
    /// Whether the checkpoint got its RFC 3161 token.
    pub timestamp: Timestamp,
    /// Planted or unreadable heads the writer refused to extend.
    #[serde(default)]
    pub refused: Vec<String>,
    /// The head after the run: the SHA-256 of the newest checkpoint.
    #[serde(default)]
    pub head: Option<String>,
}

/// The outcome of one stream in a [`CollectReport`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StreamOutcome {
    /// The stream.
    pub stream: String,
    /// The status recorded (or, when nothing could be written, failed).
    pub status: crate::evidence::record::Status,
    /// The record's sequence number; `None` when the store refused it.
    pub seq: Option<u64>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// The RFC 3161 token of a manual run's checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timestamp {
    /// Timestamping is not configured.
    Off,
    /// The token's key in the store.
    Token(String),
    /// No TSA gave a token; so many checkpoints wait for one.
    Missing {
        /// Checkpoints waiting for a token.
        waiting: usize,
    },
}

/// Publishes the trusted TSA certificates and fetches the tokens earlier
/// runs could not get. Failures are logged: timestamps never stop a run.
async fn backfill_timestamps(stamper: &Timestamper, store: &dyn Store, now: DateTime<Utc>) {
    if let Err(e) = stamper.publish_trust(store).await {
        tracing::warn!(error = %e, "cannot publish the trusted TSA certificates into the store");
    }
    if let Err(e) = stamper.scan(store, now).await {
        tracing::warn!(error = %e, "cannot look for checkpoints lacking a timestamp");
        return;
    }
    if stamper.pending() > 0 {
        let before = stamper.pending();
        let left = stamper.retry_pending(store, now).await;
        tracing::info!(
            fetched = before - left.min(before),
            left,
            "RFC 3161 tokens fetched for earlier checkpoints"
        );
    }
}
