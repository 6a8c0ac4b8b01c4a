//! What `@octokit/fixtures-server` cannot replay, against a small local
//! server in this test: GitHub App authentication (a JWT signed with the
//! App's key, checked here with its public key, exchanged for an
//! installation token) on a GitHub Enterprise Server base path
//! (`/api/v3`) with pagination under it; a pagination link to another host
//! (not followed, the token not sent there); and a spent rate-limit budget
//! in the middle of a collection (a partial record that says so, without
//! hammering the API). Response bodies follow GitHub's documented examples.

use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::support::{Workspace, all_text_under, code, exhibit_on_store, text};

const INSTALLATION_TOKEN: &str = "ghs_ExhibitInstallationToken0000000001";
const PAT: &str = "ghp_ExhibitLocalServerToken000000000001";
const APP_ID: u64 = 1234;
const INSTALLATION_ID: u64 = 4242;

/// What the server saw: method, path and query, Host, Authorization.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, String, String, String)>>,
}

struct Server {
    port: u16,
    seen: Arc<Seen>,
    /// The App's private key (PEM) and its public half.
    private_pem: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("app.pem");
        let out = Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .expect("openssl runs (tests/run.sh installs it)");
        assert!(out.status.success(), "{}", text(&out));
        let out = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let public_pem = String::from_utf8(out.stdout).unwrap();
        let private_pem = std::fs::read_to_string(&key).unwrap();

        let seen = Arc::new(Seen::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = (seen.clone(), Arc::new(public_pem), port);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        Server {
            port,
            seen,
            private_pem,
        }
    })
}

type AppState = (Arc<Seen>, Arc<String>, u16);

fn json_response(status: StatusCode, body: Value, headers: &[(&str, String)]) -> Response {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-limit", "5000");
    let mut has_remaining = false;
    for (k, v) in headers {
        has_remaining |= *k == "x-ratelimit-remaining";
        r = r.header(*k, v);
    }
    if !has_remaining {
        r = r.header("x-ratelimit-remaining", "4000");
    }
    r.body(Body::from(body.to_string())).unwrap()
}

fn user(login: &str, id: u64) -> Value {
    json!({"login": login, "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": false,
           "url": format!("https://api.github.com/users/{login}")})
}

async fn handle(State((seen, public_pem, port)): State<AppState>, req: Request) -> Response {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers: HeaderMap = req.headers().clone();
    let get = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let auth = get("authorization");
    seen.requests.lock().unwrap().push((
        req.method().to_string(),
        pq.clone(),
        get("host"),
        auth.clone(),
    ));
    let unauthorized = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}),
            &[],
        )
    };
    let base = format!("http://127.0.0.1:{port}/api/v3");

    // The App's token exchange: the JWT must verify with the App's public
    // key and name the App.
    if req.method() == "POST"
        && pq.starts_with("/api/v3/app/installations/")
        && pq.ends_with("/access_tokens")
    {
        let Some(jwt) = auth.strip_prefix("Bearer ") else {
            return unauthorized();
        };
        let key = octocrab::jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
        let mut v =
            octocrab::jsonwebtoken::Validation::new(octocrab::jsonwebtoken::Algorithm::RS256);
        // GitHub takes the App id as a number in `iss`; the JWT spec says string,
        // so `iss` is checked by hand below.
        v.set_required_spec_claims(&["exp", "iat"]);
        match octocrab::jsonwebtoken::decode::<Value>(jwt, &key, &v) {
            Ok(t) if t.claims["iss"] == json!(APP_ID) => {}
            other => {
                eprintln!("the App's JWT was refused: {other:?}");
                return unauthorized();
            }
        }
        return json_response(
            StatusCode::CREATED,
            json!({"token": INSTALLATION_TOKEN, "expires_at": "2099-01-01T00:00:00Z",
                   "permissions": {"members": "read", "metadata": "read"},
                   "repository_selection": "all"}),
            &[],
        );
    }

    if pq.starts_with("/api/v3/orgs/app-org/") || pq.starts_with("/api/v3/organizations/77/") {
        if auth != format!("Bearer {INSTALLATION_TOKEN}") {
            return unauthorized();
        }
        let page2 = format!("{base}/organizations/77/members?role=admin&per_page=100&page=2");
        return match pq.as_str() {
            "/api/v3/orgs/app-org/members?role=admin&per_page=100" => json_response(
                StatusCode::OK,
                json!([user("octocat", 1)]),
                &[(
                    "link",
                    format!("<{page2}>; rel=\"next\", <{page2}>; rel=\"last\""),
                )],
            ),
            "/api/v3/organizations/77/members?role=admin&per_page=100&page=2" => {
                json_response(StatusCode::OK, json!([user("hubot", 2)]), &[])
            }
            "/api/v3/orgs/app-org/members?role=member&per_page=100" => {
                json_response(StatusCode::OK, json!([user("monalisa", 3)]), &[])
            }
            "/api/v3/orgs/app-org/members?filter=2fa_disabled&per_page=100" => {
                json_response(StatusCode::OK, json!([user("hubot", 2)]), &[])
            }
            _ => json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"}), &[]),
        };
    }

    if auth != format!("token {PAT}") {
        return unauthorized();
    }
    match pq.as_str() {
        // A next page on another host.
        "/api/v3/orgs/link-org/members?role=admin&per_page=100" => json_response(
            StatusCode::OK,
            json!([user("octocat", 1)]),
            &[(
                "link",
                format!(
                    "<http://localhost:{port}/api/v3/organizations/78/members?page=2>; rel=\"next\""
                ),
            )],
        ),
        // The primary budget runs out with the listing, resetting in an hour.
        "/api/v3/orgs/budget-org/repos?type=all&per_page=100" => {
            let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
            json_response(
                StatusCode::OK,
                json!([
                    {"id": 1, "name": "alpha", "full_name": "budget-org/alpha", "private": true, "fork": false,
                     "archived": false, "default_branch": "main"},
                    {"id": 2, "name": "beta", "full_name": "budget-org/beta", "private": true, "fork": false,
                     "archived": false, "default_branch": "main"}
                ]),
                &[
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", reset),
                ],
            )
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"}), &[]),
    }
}

fn show(ws: &Workspace, stream: &str) -> Value {
    let out = exhibit_on_store(&ws.store(), &["show", stream, "--json"]);
    assert_eq!(code(&out), 0, "show {stream}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn github_app_on_enterprise_server_with_pagination_under_the_base_path() {
    let srv = server();
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"ghes-members\"\n\
         kind = \"github-members\"\nschedule = \"@daily\"\nretries = 0\norg = \"app-org\"\n\
         api_url = \"http://127.0.0.1:{}/api/v3\"\napp_id = {APP_ID}\n\
         installation_id = {INSTALLATION_ID}\nprivate_key_file = \"app.pem\"\n",
        srv.port
    ));
    std::fs::write(ws.path().join("app.pem"), &srv.private_pem).unwrap();
    let out = ws.run(&["-vv", "collect"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rec = show(&ws, "ghes-members/app-org");
    let p = &rec["payload"];
    assert_eq!(
        p["owners"],
        json!(["hubot", "octocat"]),
        "page 2 was followed"
    );
    assert_eq!(p["two_factor_disabled"], json!(["hubot"]));
    assert_eq!(p["counts"]["members"], 1);

    // One token exchange, then every call with the installation token.
    let seen = srv.seen.requests.lock().unwrap();
    let exchanges = seen
        .iter()
        .filter(|r| r.0 == "POST" && r.1.contains(&format!("/{INSTALLATION_ID}/")))
        .count();
    assert_eq!(exchanges, 1, "{seen:?}");

    // Neither the key nor the installation token lands anywhere.
    let store = all_text_under(&ws.store());
    let logs = String::from_utf8_lossy(&out.stderr);
    let key_body = srv.private_pem.lines().nth(1).unwrap();
    for secret in [INSTALLATION_TOKEN, key_body] {
        assert!(!store.contains(secret), "a secret is in the store");
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
}

#[test]
fn a_refused_app_key_is_a_failed_record_naming_the_cause() {
    let srv = server();
    // A valid RSA key, but not the App's: the JWT does not verify.
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"ghes-members\"\n\
         kind = \"github-members\"\nschedule = \"@daily\"\nretries = 2\nretry_backoff = \"10s\"\n\
         org = \"app-org\"\napi_url = \"http://127.0.0.1:{}/api/v3\"\napp_id = {APP_ID}\n\
         installation_id = 4343\nprivate_key_file = \"other.pem\"\n",
        srv.port
    ));
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(ws.path().join("other.pem"))
        .arg("2048")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let pred = show(&ws, "ghes-members/app-org")["statement"]["predicate"].clone();
    assert_eq!(pred["status"], "failed");
    // Refused credentials are not retried.
    assert_eq!(pred["attempts"], 1);
    let err = pred["error"].to_string();
    assert!(err.contains("installation token was refused"), "{err}");
}

#[test]
fn a_next_page_on_another_host_is_not_followed() {
    let srv = server();
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"gh\"\n\
         kind = \"github-members\"\nschedule = \"@daily\"\nretries = 0\norg = \"link-org\"\n\
         api_url = \"http://127.0.0.1:{}/api/v3\"\ntoken = \"{PAT}\"\n",
        srv.port
    ));
    let out = ws.run(&["collect"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let rec = show(&ws, "gh/link-org");
    assert_eq!(rec["statement"]["predicate"]["status"], "failed");
    let err = rec["statement"]["predicate"]["error"].to_string();
    assert!(err.contains("another host"), "{err}");
    let seen = srv.seen.requests.lock().unwrap();
    assert!(
        seen.iter().all(|r| !r.2.starts_with("localhost")),
        "a request went to the other host: {seen:?}"
    );
}

#[test]
fn a_spent_budget_ends_in_a_partial_record_without_further_requests() {
    let srv = server();
    let ws = Workspace::new(&format!(
        "[agent]\nkey = \"exhibit.key\"\n[[collectors]]\nname = \"gh-keys\"\n\
         kind = \"github-deploy-keys\"\nschedule = \"@daily\"\nretries = 0\norg = \"budget-org\"\n\
         api_url = \"http://127.0.0.1:{}/api/v3\"\ntoken = \"{PAT}\"\nmax_rate_limit_wait = \"5s\"\n",
        srv.port
    ));
    let out = ws.run(&["collect"]);
    let rec = show(&ws, "gh-keys/budget-org");
    let pred = &rec["statement"]["predicate"];
    assert_eq!(pred["status"], "partial", "{}", text(&out));
    let err = pred["error"].to_string();
    assert!(
        err.contains("alpha") && err.contains("beta") && err.contains("rate limited"),
        "{err}"
    );
    assert_eq!(rec["payload"]["repositories_checked"], 2);
    let seen = srv.seen.requests.lock().unwrap();
    assert!(
        !seen
            .iter()
            .any(|r| r.1.starts_with("/api/v3/repos/budget-org/")),
        "calls were made with a spent budget: {seen:?}"
    );
}
