//! Throughput of the declarative HTTP engine: Link-header pagination,
//! JSONPath selection and redaction over an Okta-shaped user list served
//! in-process (no network noise, no vendor). The baseline, measured in the
//! same run, fetches the same pages with the same HTTP client and only
//! parses them: the difference is what the engine adds (definition
//! templating, JSONPath, shaping, redaction, the payload).

use std::time::Duration;

use axum::http::Uri;
use axum::http::header::{HeaderMap, HeaderValue, LINK};
use axum::routing::get;
use criterion::{Criterion, criterion_group};
use exhibit::collect::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const PAGES: usize = 10;
const PAGE_SIZE: usize = 200;

fn user(i: usize) -> Value {
    json!({
        "id": format!("00u{i:017}"),
        "status": if i.is_multiple_of(7) { "SUSPENDED" } else { "ACTIVE" },
        "created": "2020-08-27T18:19:47.000Z",
        "activated": "2020-08-27T18:19:47.000Z",
        "statusChanged": null,
        "lastLogin": "2026-11-20T08:00:00.000Z",
        "passwordChanged": "2020-08-27T18:19:47.000Z",
        "type": {"id": "otyc04qb2rUDcq2YA4x6"},
        "profile": {"firstName": "John", "lastName": format!("Doe-{i}"), "login": format!("user{i}@example.com"), "email": format!("user{i}@example.com")},
        "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": format!("https://example.okta.com/api/v1/users/00u{i:017}")}}
    })
}

/// The engine, configured against an in-process server.
struct Setup {
    rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    collector: Box<dyn exhibit::collect::Collector>,
    ctx: Context,
    target: exhibit::collect::Target,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn collect_all(&self) {
        let snap = self
            .rt
            .block_on(self.collector.collect(&self.ctx, &self.target, None))
            .unwrap();
        assert_eq!(snap.payload["users"]["count"], PAGES * PAGE_SIZE);
    }

    /// The baseline: the same requests, following the same `Link`
    /// headers, each body parsed into JSON and counted, nothing kept.
    fn fetch_raw(&self) {
        self.rt.block_on(async {
            let mut next = Some(format!("http://{}/api/v1/users?limit=200", self.addr));
            let mut users = 0;
            while let Some(url) = next.take() {
                let resp = self
                    .ctx
                    .http
                    .get(&url)
                    .header("Authorization", "SSWS bench-token")
                    .send()
                    .await
                    .unwrap();
                next = resp
                    .headers()
                    .get(LINK)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| l.strip_prefix('<'))
                    .and_then(|l| l.split_once('>'))
                    .map(|(u, _)| u.to_string());
                let body = resp.bytes().await.unwrap();
                let page: Value = serde_json::from_slice(&body).unwrap();
                users += page.as_array().unwrap().len();
            }
            assert_eq!(users, PAGES * PAGE_SIZE);
        })
    }
}

fn setup() -> Setup {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let pages: Vec<String> = (0..PAGES)
        .map(|p| Value::Array((p * PAGE_SIZE..(p + 1) * PAGE_SIZE).map(user).collect()).to_string())
        .collect();
    let app = axum::Router::new().route(
        "/api/v1/users",
        get(move |uri: Uri| {
            let pages = pages.clone();
            async move {
                let page: usize = uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("after="))
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
                let mut headers = HeaderMap::new();
                if page + 1 < PAGES {
                    let link = format!(
                        "<http://{addr}/api/v1/users?after={}&limit=200>; rel=\"next\"",
                        page + 1
                    );
                    headers.insert(LINK, HeaderValue::from_str(&link).unwrap());
                }
                (headers, pages[page].clone())
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("defs")).unwrap();
    // The shipped okta-users definition without its per-user follow-ups,
    // so that the measure is paging and shaping.
    let shipped = include_str!("../collectors/okta-users.toml");
    let users_only = shipped
        .split("[[requests.each]]")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(dir.path().join("defs/okta-users.toml"), users_only).unwrap();
    let config = format!(
        "[[collectors]]\nname = \"okta\"\nkind = \"http\"\nschedule = \"@daily\"\ndefinition = \"okta-users\"\ncollectors_dir = \"defs\"\nbase_url = \"http://{addr}\"\ntoken = \"bench-token\"\n"
    );
    let path = dir.path().join("exhibit.toml");
    let loaded = exhibit::config::parse(&path, config).unwrap();
    let collector = exhibit::collect::instance::build(&loaded.collectors[0])
        .unwrap()
        .collector;
    let ctx = Context::new(reqwest::Client::new(), CancellationToken::new());
    let target = rt.block_on(collector.targets(&ctx)).unwrap().remove(0);
    Setup {
        rt,
        addr,
        collector,
        ctx,
        target,
        _dir: dir,
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("http_engine");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    group.bench_function("okta_users_2000_over_10_link_pages", |b| {
        b.iter(|| s.collect_all())
    });
    group.bench_function("baseline_fetch_and_parse_the_same_pages", |b| {
        b.iter(|| s.fetch_raw())
    });
    group.finish();
}

criterion_group!(benches, bench);

/// `cargo bench` measures; `cargo test --all-targets` (which passes test
/// harness flags criterion does not know) runs the scenario once as a
/// smoke check.
fn main() {
    if std::env::args().any(|a| a == "--bench") {
        benches();
        Criterion::default().configure_from_args().final_summary();
    } else {
        let s = setup();
        s.collect_all();
        s.fetch_raw();
    }
}
