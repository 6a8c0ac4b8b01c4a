//! The integration tests: one binary, one module per suite, driving the
//! real `exhibit` binary (and, where a suite needs it, the library) against
//! real peers. The shared harness and the peers are in [`support`]; a peer
//! that several suites can share starts once per run.
//!
//! `cargo test --test it` runs them all; `cargo test --test it aws::` one
//! suite. `bash tests/run.sh` installs the peers first.

mod support;

mod aws;
mod bundle;
mod collector_faults;
mod control_flow;
mod control_samples;
mod controls;
mod core;
mod deploy;
mod faults;
mod first_hour;
mod github;
mod github_app;
mod github_openapi;
mod kill_campaign;
mod offline;
mod oscal;
mod overclaims;
mod review;
mod review_real;
mod saas_datadog;
mod saas_google;
mod saas_jira;
mod saas_oauth2;
mod saas_okta;
mod saas_pagerduty;
mod shard;
mod store_s3;
mod tamper_props;
mod timestamps;
mod truthful;
mod truthful_streams;
