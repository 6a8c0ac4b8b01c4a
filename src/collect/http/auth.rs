//! Authentication of the requests of one instance: which secrets the
//! definition's `auth` needs (checked at load), and the credential each
//! request carries — a bearer token, basic credentials, header templates
//! over the secrets, or an access token obtained per collection with
//! OAuth2 client credentials or a Google service account's signed JWT.
//! Secrets stay here: they are only ever placed in request headers (and
//! handed to the final scrub of the payload).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::HttpSettings;
use super::definition::{Auth, Definition};
use super::error::{Failure, without_url};
use super::template::{self, Vars, render};
use crate::collect::Context;
use crate::config::{ConfigError, Settings};

/// The credentials of one instance, by setting name.
#[derive(Clone, Default)]
pub(super) struct Secrets {
    values: BTreeMap<&'static str, String>,
}

impl Secrets {
    /// Every secret value, in the order of their names.
    pub(super) fn values(&self) -> impl Iterator<Item = &str> {
        self.values.values().map(String::as_str)
    }

    fn get(&self, name: &str) -> String {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

/// How requests authenticate, resolved from the definition's `auth` and
/// the instance's settings.
enum Method {
    None,
    Bearer,
    /// Header name → value template over the secrets.
    Headers(BTreeMap<String, String>),
    Basic {
        username: String,
    },
    OAuth2 {
        token_url: String,
        scopes: Vec<String>,
        client_id: String,
    },
    Google {
        key: Box<GoogleKey>,
        scopes: Vec<String>,
    },
}

/// Authenticates the requests of one instance.
pub(super) struct Authenticator {
    method: Method,
    secrets: Secrets,
    /// The access token of the current collection (OAuth2, Google); the
    /// lock is held while one is obtained, so that concurrent requests ask
    /// for it once.
    access_token: Mutex<Option<String>>,
}

/// What one request carries to say who it is.
pub(super) enum Credential {
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
    /// Header name → value, in name order.
    Headers(Vec<(String, String)>),
}

impl Credential {
    /// Adds the credential to a request.
    pub(super) fn apply(self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credential::None => req,
            Credential::Bearer(token) => req.bearer_auth(token),
            Credential::Basic { username, password } => req.basic_auth(username, Some(password)),
            Credential::Headers(headers) => headers
                .into_iter()
                .fold(req, |req, (name, value)| req.header(name, value)),
        }
    }
}

impl Authenticator {
    /// Checks that the instance sets what the definition's `auth` needs
    /// and keeps the secrets. `vars` fill the OAuth2 token URL.
    pub(super) fn new(
        settings: &Settings,
        s: &HttpSettings,
        d: &Definition,
        vars: &Vars,
    ) -> Result<Self, ConfigError> {
        let mut secrets = Secrets::default();
        for (name, value) in [
            ("token", &s.token),
            ("api_key", &s.api_key),
            ("app_key", &s.app_key),
            ("password", &s.password),
            ("client_secret", &s.client_secret),
        ] {
            if let Some(v) = value {
                secrets.values.insert(name, v.clone());
            }
        }
        let need = |key: &str| -> Result<(), ConfigError> {
            if secrets.values.contains_key(key) {
                Ok(())
            } else {
                Err(settings.error(
                    key,
                    format!(
                        "definition `{}` authenticates with `{key}`: set `{key}` (or `{key}_file`, or `{key} = \"${{ENV_VAR}}\"`)",
                        s.definition
                    ),
                ))
            }
        };
        let method = match &d.auth {
            Auth::Bearer(_) => {
                need("token")?;
                Method::Bearer
            }
            Auth::Headers(h) => {
                for t in h.headers.values() {
                    for var in template::variables(t) {
                        need(var)?;
                    }
                }
                Method::Headers(h.headers.clone())
            }
            Auth::Basic(_) => {
                need("password")?;
                let Some(username) = s.username.clone() else {
                    return Err(settings.error("username", "basic authentication needs `username`"));
                };
                Method::Basic { username }
            }
            Auth::Oauth2ClientCredentials(o) => {
                need("client_secret")?;
                let Some(client_id) = s.client_id.clone() else {
                    return Err(settings.error("client_id", "OAuth2 needs `client_id`"));
                };
                Method::OAuth2 {
                    token_url: render(&o.token_url, vars, None),
                    scopes: o.scopes.clone(),
                    client_id,
                }
            }
            Auth::GoogleServiceAccount(g) => {
                let key = s.private_key.as_deref().ok_or_else(|| {
                    settings.error(
                        "private_key",
                        "a Google service account needs its JSON key: set `private_key_file`",
                    )
                })?;
                let subject = s.subject.clone().ok_or_else(|| {
                    settings.error(
                        "subject",
                        "set `subject` to the admin the service account acts as (domain-wide delegation)",
                    )
                })?;
                let key =
                    GoogleKey::parse(key, subject).map_err(|m| settings.error("private_key", m))?;
                secrets.values.insert("private_key", key.pem.clone());
                Method::Google {
                    key: Box::new(key),
                    scopes: g.scopes.clone(),
                }
            }
            Auth::None(_) => Method::None,
        };
        Ok(Authenticator {
            method,
            secrets,
            access_token: Mutex::new(None),
        })
    }

    /// Forgets the previous collection's access token: each collection
    /// obtains its own.
    pub(super) async fn start_collection(&self) {
        *self.access_token.lock().await = None;
    }

    /// The instance's secrets, with the current access token (short-lived,
    /// but a secret too).
    pub(super) async fn secrets(&self) -> Secrets {
        let mut secrets = self.secrets.clone();
        if let Some(t) = self.access_token.lock().await.clone() {
            secrets.values.insert("access_token", t);
        }
        secrets
    }

    /// The credential of the next request, obtaining an access token first
    /// when the collection has none yet.
    pub(super) async fn credential(&self, ctx: &Context) -> Result<Credential, Failure> {
        Ok(match &self.method {
            Method::None => Credential::None,
            Method::Bearer => Credential::Bearer(self.secrets.get("token")),
            Method::Headers(headers) => {
                let vars: Vars = self
                    .secrets
                    .values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                Credential::Headers(
                    headers
                        .iter()
                        .map(|(name, t)| (name.clone(), render(t, &vars, None)))
                        .collect(),
                )
            }
            Method::Basic { username } => Credential::Basic {
                username: username.clone(),
                password: self.secrets.get("password"),
            },
            Method::OAuth2 {
                token_url,
                scopes,
                client_id,
            } => {
                let mut cached = self.access_token.lock().await;
                if cached.is_none() {
                    let secret = self.secrets.get("client_secret");
                    *cached = Some(oauth2_token(ctx, token_url, scopes, client_id, &secret).await?);
                }
                Credential::Bearer(cached.clone().unwrap_or_default())
            }
            Method::Google { key, scopes } => {
                let mut cached = self.access_token.lock().await;
                if cached.is_none() {
                    *cached = Some(google_token(ctx, key, scopes).await?);
                }
                Credential::Bearer(cached.clone().unwrap_or_default())
            }
        })
    }
}

/// A Google service account's JSON key, checked at load.
struct GoogleKey {
    client_email: String,
    token_uri: String,
    subject: String,
    pem: String,
    encoding: jsonwebtoken::EncodingKey,
}

impl GoogleKey {
    fn parse(json_key: &str, subject: String) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct KeyFile {
            client_email: String,
            private_key: String,
            token_uri: Option<String>,
        }
        let k: KeyFile = serde_json::from_str(json_key).map_err(|e| {
            format!("not a service-account JSON key (client_email, private_key): {e}")
        })?;
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(k.private_key.as_bytes())
            .map_err(|e| format!("the key's private_key is not an RSA PEM key: {e}"))?;
        Ok(GoogleKey {
            client_email: k.client_email,
            token_uri: k
                .token_uri
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            subject,
            pem: k.private_key,
            encoding,
        })
    }
}

/// Google's two-legged OAuth for service accounts (RFC 7523 JWT bearer
/// grant), with `sub` for domain-wide delegation.
async fn google_token(
    ctx: &Context,
    key: &GoogleKey,
    scopes: &[String],
) -> Result<String, Failure> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": key.client_email,
        "sub": key.subject,
        "scope": scopes.join(" "),
        "aud": key.token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key.encoding,
    )
    .map_err(|e| Failure::fatal(format!("signing the service-account JWT: {e}")))?;
    let body = format!(
        "grant_type={}&assertion={assertion}",
        urlencode("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let (status, v) = token_request(ctx, &key.token_uri, None, body, "Google").await?;
    match v.get("access_token").and_then(Value::as_str) {
        Some(t) if status.is_success() => Ok(t.to_string()),
        _ => Err(Failure::new(
            format!(
                "Google token request: HTTP {status} ({}); check domain-wide delegation of the scopes to the service account's client id",
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no access_token")
            ),
            status.is_server_error(),
        )),
    }
}

/// The OAuth 2.0 client credentials grant (RFC 6749 §4.4), the client
/// authenticating with HTTP basic.
async fn oauth2_token(
    ctx: &Context,
    token_url: &str,
    scopes: &[String],
    client_id: &str,
    client_secret: &str,
) -> Result<String, Failure> {
    let (status, v) = token_request(
        ctx,
        token_url,
        Some(basic_authorization(client_id, client_secret)),
        client_credentials_form(scopes),
        "OAuth2",
    )
    .await?;
    match v.get("access_token").and_then(Value::as_str) {
        Some(t) if status.is_success() => Ok(t.to_string()),
        _ => Err(Failure::new(
            format!("OAuth2 token request: HTTP {status}, no access_token"),
            status.is_server_error(),
        )),
    }
}

/// The form of a client credentials token request.
fn client_credentials_form(scopes: &[String]) -> String {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    form.iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An `Authorization: Basic` value.
fn basic_authorization(user: &str, password: &str) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {basic}")
}

/// The largest token endpoint answer read, in bytes.
const MAX_TOKEN_BODY: u64 = 1 << 20;

/// POSTs a form to a token endpoint; returns the status and the JSON body
/// (null when the body is not JSON). Only a failure to reach the endpoint is
/// an error here: callers judge the answer.
async fn token_request(
    ctx: &Context,
    url: &str,
    authorization: Option<String>,
    body: String,
    what: &str,
) -> Result<(reqwest::StatusCode, Value), Failure> {
    let mut req = ctx.http.post(url).header(
        reqwest::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
    );
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let resp =
        req.body(body).send().await.map_err(|e| {
            Failure::retryable(format!("{what} token request: {}", without_url(&e)))
        })?;
    let status = resp.status();
    // A token answer is small; anything past the cap is not one.
    let v: Value = match super::client::read_body(resp, MAX_TOKEN_BODY).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Err(e) => return Err(e.failure("POST", &format!("{what} token request"), MAX_TOKEN_BODY)),
    };
    Ok((status, v))
}

/// Form encoding (`application/x-www-form-urlencoded`) of one value.
fn urlencode(s: &str) -> String {
    reqwest::Url::parse_with_params("x:", [("v", s)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_request_forms_are_form_encoded() {
        assert_eq!(
            client_credentials_form(&[]),
            "grant_type=client_credentials"
        );
        assert_eq!(
            client_credentials_form(&["okta.users.read".into(), "a:b/c".into()]),
            "grant_type=client_credentials&scope=okta.users.read+a%3Ab%2Fc"
        );
        assert_eq!(
            urlencode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        // RFC 7617: base64 of `id:secret`.
        assert_eq!(basic_authorization("id", "s3cret"), "Basic aWQ6czNjcmV0");
    }

    fn authenticator(method: Method, secrets: &[(&'static str, &str)]) -> Authenticator {
        Authenticator {
            method,
            secrets: Secrets {
                values: secrets.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            },
            access_token: Mutex::new(None),
        }
    }

    fn ctx() -> Context {
        Context::new(
            reqwest::Client::new(),
            tokio_util::sync::CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn header_templates_are_filled_from_the_secrets_only() {
        let a = authenticator(
            Method::Headers(BTreeMap::from([
                ("DD-API-KEY".into(), "{api_key}".into()),
                ("Authorization".into(), "SSWS {token}{base_url}".into()),
            ])),
            &[("api_key", "ak-1"), ("token", "tk-2")],
        );
        let Credential::Headers(h) = a.credential(&ctx()).await.unwrap() else {
            panic!("not headers");
        };
        assert_eq!(
            h,
            [
                ("Authorization".to_string(), "SSWS tk-2".to_string()),
                ("DD-API-KEY".to_string(), "ak-1".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn the_access_token_of_a_collection_is_a_secret_until_the_next() {
        let a = authenticator(Method::Bearer, &[("token", "tk-2"), ("api_key", "ak-1")]);
        *a.access_token.lock().await = Some("at-3".into());
        assert_eq!(
            a.secrets().await.values().collect::<Vec<_>>(),
            ["at-3", "ak-1", "tk-2"]
        );
        a.start_collection().await;
        assert_eq!(
            a.secrets().await.values().collect::<Vec<_>>(),
            ["ak-1", "tk-2"]
        );
    }

    #[test]
    fn service_account_keys_are_checked_at_load() {
        let e = GoogleKey::parse("{}", "admin@x".into()).err().unwrap();
        assert!(e.starts_with("not a service-account JSON key"), "{e}");
        let e = GoogleKey::parse(
            r#"{"client_email": "a@b", "private_key": "not a pem"}"#,
            "admin@x".into(),
        )
        .err()
        .unwrap();
        assert!(
            e.starts_with("the key's private_key is not an RSA PEM key"),
            "{e}"
        );
    }
}
