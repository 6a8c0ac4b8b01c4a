//! One collection's requests: each request's URL, its pages in every
//! pagination style (`Link` header, body cursor, offset, page number, next
//! URL in the body), the items selected from each page, and the follow-up
//! requests made once per kept item. A list is never silently shorter than
//! the source's: a page that cannot be fetched, a page limit reached, a
//! server repeating a page or a next page on another host all mark the
//! section incomplete and say why.

use std::collections::HashSet;

use futures::future::BoxFuture;
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};
use serde_json_path::JsonPath;

use super::client::Client;
use super::definition::{Pagination, Request};
use super::error::{Failure, redact_url};
use super::shape::{Keep, Redaction, shape};
use super::template::{Vars, render, render_json, toml_to_json};
use crate::collect::Context;

/// What one collection fetches with: the instance's client and redaction,
/// and this collection's variables.
pub(super) struct Fetcher<'a> {
    pub(super) ctx: &'a Context,
    pub(super) client: &'a Client,
    pub(super) redaction: &'a Redaction,
    pub(super) base_url: &'a str,
    pub(super) vars: &'a Vars,
}

/// A request's part of the payload, with what went wrong.
pub(super) struct Section {
    /// `{complete, pages, count, error?, items}`; for a follow-up that got
    /// all its pages, just the list of items.
    pub(super) value: Value,
    /// Whether every page was fetched.
    pub(super) complete: bool,
    /// Pages fetched.
    pub(super) pages: u32,
    /// This request's failure and those of its follow-ups.
    pub(super) failures: Vec<String>,
    /// Whether this request's own failure is worth retrying.
    pub(super) retryable: bool,
}

/// The outcome of one request with all its pages.
struct Fetched {
    items: Vec<Value>,
    pages: u32,
    /// Set when some pages are missing: what went wrong.
    error: Option<Failure>,
}

impl Fetcher<'_> {
    /// Fetches a request, shapes its items and runs its follow-ups.
    pub(super) fn section<'s>(
        &'s self,
        r: &'s Request,
        parent: Option<&'s Value>,
    ) -> BoxFuture<'s, Section> {
        Box::pin(async move {
            let fetched = self.fetch(r, parent).await;
            let mut failures = Vec::new();
            let mut retryable = false;
            if let Some(f) = &fetched.error {
                failures.push(f.message.clone());
                retryable = f.retryable;
            }
            let keep = &Keep::new(r);
            let shaped = futures::future::join_all(fetched.items.iter().map(|raw| async move {
                let mut kept = shape(raw, keep, self.redaction);
                let mut fails = Vec::new();
                for e in &r.each {
                    let sub = self.section(e, Some(raw)).await;
                    let who = raw
                        .get("id")
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default();
                    fails.extend(
                        sub.failures
                            .into_iter()
                            .map(|m| format!("{} of {who}: {m}", e.name)),
                    );
                    if let Value::Object(o) = &mut kept {
                        o.insert(e.name.clone(), sub.value);
                    }
                }
                (kept, fails)
            }))
            .await;
            let mut items = Vec::with_capacity(shaped.len());
            for (v, f) in shaped {
                items.push(v);
                failures.extend(f);
            }
            let complete = fetched.error.is_none();
            let value = if parent.is_some() && complete {
                Value::Array(items)
            } else {
                let mut m = Map::new();
                m.insert("complete".into(), Value::Bool(complete));
                m.insert("pages".into(), json!(fetched.pages));
                m.insert("count".into(), json!(items.len()));
                if let Some(f) = &fetched.error {
                    m.insert("error".into(), Value::String(f.message.clone()));
                }
                m.insert("items".into(), Value::Array(items));
                Value::Object(m)
            };
            Section {
                value,
                complete,
                pages: fetched.pages,
                failures,
                retryable,
            }
        })
    }

    /// Runs one request through all its pages.
    async fn fetch(&self, r: &Request, item: Option<&Value>) -> Fetched {
        let mut out = Fetched {
            items: Vec::new(),
            pages: 0,
            error: None,
        };
        let mut url = match first_page(self.base_url, r, self.vars, item) {
            Ok(u) => u,
            Err(f) => {
                out.error = Some(f);
                return out;
            }
        };
        let body = r
            .body
            .as_ref()
            .map(|b| render_json(&toml_to_json(b), self.vars, item));
        let items = Items::new(r);
        let mut pager = Pager::new(&r.pagination);
        let mut seen = HashSet::new();
        loop {
            if out.pages >= r.max_pages {
                out.error = Some(Failure::fatal(format!(
                    "request `{}`: still more pages after {} pages (max_pages); the rest is missing",
                    r.name, r.max_pages
                )));
                return out;
            }
            if !seen.insert(url.to_string()) {
                out.error = Some(Failure::fatal(format!(
                    "request `{}`: the server sent the same next page twice ({}); stopped",
                    r.name,
                    redact_url(url.as_str())
                )));
                return out;
            }
            let (headers, body_value) = match self
                .client
                .send(self.ctx, &r.method, url.as_str(), body.as_ref())
                .await
            {
                Ok(x) => x,
                Err(f) if out.pages == 0 && f.status.is_some_and(|s| r.empty_on.contains(&s)) => {
                    return out;
                }
                Err(mut f) => {
                    if out.pages > 0 {
                        f.message = format!(
                            "request `{}`: page {} failed, later pages are missing: {}",
                            r.name,
                            out.pages + 1,
                            f.message
                        );
                    }
                    out.error = Some(f);
                    return out;
                }
            };
            out.pages += 1;
            let page_items = items.select(&body_value);
            let n = page_items.len() as u64;
            out.items.extend(page_items);
            match pager.next(&url, &headers, &body_value, n) {
                // Credentials go to the configured host only: a next link
                // elsewhere (a misrecorded or hostile response) is not
                // followed, and the list is marked incomplete.
                Some(next) if next.origin() != url.origin() => {
                    out.error = Some(Failure::fatal(format!(
                        "request `{}`: the next page is on another host ({}); not followed, later pages are missing",
                        r.name,
                        next.origin().ascii_serialization()
                    )));
                    return out;
                }
                Some(next) => url = next,
                None => return out,
            }
        }
    }
}

/// The URL of a request's first page: the base URL and the rendered path
/// and query, with the page parameter of page-number paging.
fn first_page(
    base_url: &str,
    r: &Request,
    vars: &Vars,
    item: Option<&Value>,
) -> Result<Url, Failure> {
    let mut url = Url::parse(&format!("{base_url}{}", render(&r.path, vars, item)))
        .map_err(|e| Failure::fatal(format!("request `{}`: bad URL: {e}", r.name)))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &r.query {
            q.append_pair(k, &render(v, vars, item));
        }
    }
    if let Pagination::Page { param, start, .. } = &r.pagination {
        // Name the first page too: some APIs default to another one.
        set_query(&mut url, param, &start.to_string());
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url)
}

/// A request's `items` selection, compiled once per request.
struct Items {
    /// The path, and whether a selected array is a list of items (`$.users`
    /// selects the array itself; `$.users[*]` its elements).
    path: Option<(JsonPath, bool)>,
}

impl Items {
    fn new(r: &Request) -> Self {
        Items {
            path: r.items.as_ref().and_then(|p| {
                let spread = !p.get_ref().ends_with("[*]");
                JsonPath::parse(p.get_ref()).ok().map(|jp| (jp, spread))
            }),
        }
    }

    /// The items of one page; without a path, the whole body is one.
    fn select(&self, body: &Value) -> Vec<Value> {
        match &self.path {
            Some((p, spread)) => p
                .query(body)
                .all()
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(a) if *spread => a.clone(),
                    other => vec![other.clone()],
                })
                .collect(),
            None => vec![body.clone()],
        }
    }
}

/// Finds the page after each one, by the request's pagination style.
struct Pager<'a> {
    style: &'a Pagination,
    /// Items received so far (offset paging).
    offset: u64,
    /// The current page's number (page-number paging).
    page_no: u64,
}

impl<'a> Pager<'a> {
    fn new(style: &'a Pagination) -> Self {
        Pager {
            style,
            offset: 0,
            page_no: match style {
                Pagination::Page { start, .. } => *start,
                _ => 0,
            },
        }
    }

    /// The URL of the page after `url`, which answered with `headers` and
    /// `body` and held `n` items; `None` when it was the last one.
    fn next(&mut self, url: &Url, headers: &HeaderMap, body: &Value, n: u64) -> Option<Url> {
        match self.style {
            Pagination::None {} => None,
            Pagination::LinkHeader {} => next_link(headers).and_then(|l| url.join(&l).ok()),
            Pagination::Cursor { cursor, param } => first_string(body, cursor).map(|c| {
                let mut u = url.clone();
                set_query(&mut u, param, &c);
                u
            }),
            Pagination::NextUrl { next } => {
                first_string(body, next).and_then(|n| url.join(&n).ok())
            }
            Pagination::Offset { param, more } => {
                self.offset += n;
                let more = match more {
                    Some(m) => JsonPath::parse(m)
                        .ok()
                        .and_then(|p| p.query(body).first().and_then(Value::as_bool))
                        .unwrap_or(false),
                    None => n > 0,
                };
                more.then(|| {
                    let mut u = url.clone();
                    set_query(&mut u, param, &self.offset.to_string());
                    u
                })
            }
            Pagination::Page {
                param, size_param, ..
            } => {
                let size = size_param.as_ref().and_then(|sp| {
                    url.query_pairs()
                        .find(|(k, _)| k == sp.as_str())
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                });
                (n > 0 && size.is_none_or(|size| n >= size)).then(|| {
                    self.page_no += 1;
                    let mut u = url.clone();
                    set_query(&mut u, param, &self.page_no.to_string());
                    u
                })
            }
        }
    }
}

/// The `rel="next"` target of RFC 8288 `Link` headers (there may be several
/// headers, each with several links).
fn next_link(headers: &HeaderMap) -> Option<String> {
    for h in headers.get_all(reqwest::header::LINK) {
        let Ok(h) = h.to_str() else { continue };
        for link in h.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(
                    target
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string(),
                );
            }
        }
    }
    None
}

/// The first node a JSONPath selects, as a non-empty string (numbers
/// written out).
fn first_string(body: &Value, path: &str) -> Option<String> {
    let p = JsonPath::parse(path).ok()?;
    match p.query(body).first()? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Sets a query parameter, replacing any earlier value, at the end.
fn set_query(url: &mut Url, name: &str, value: &str) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(toml: &str) -> Request {
        toml::from_str(&format!("name = 'x'\npath = '/api/v1/users'\n{toml}")).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// The URLs a request's pager asks for after its first page, given the
    /// pages' bodies, headers and item counts.
    fn follow(r: &Request, first: &str, pages: &[(HeaderMap, Value, u64)]) -> Vec<Option<String>> {
        let mut pager = Pager::new(&r.pagination);
        let mut at = url(first);
        let mut out = Vec::new();
        for (headers, body, n) in pages {
            let next = pager.next(&at, headers, body, *n);
            out.push(next.as_ref().map(Url::to_string));
            if let Some(u) = next {
                at = u;
            }
        }
        out
    }

    fn page(body: Value, n: u64) -> (HeaderMap, Value, u64) {
        (HeaderMap::new(), body, n)
    }

    #[test]
    fn link_header_next_is_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            "link",
            "<https://x/api?after=1>; rel=\"self\", <https://x/api?after=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/api?after=2"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn link_header_paging_resolves_relative_links_and_stops_without_one() {
        let r = request("pagination = { type = 'link_header' }");
        let mut h = HeaderMap::new();
        h.append(
            "link",
            "</api/v1/users?after=u2>; rel=next".parse().unwrap(),
        );
        assert_eq!(
            follow(
                &r,
                "https://x.example/api/v1/users?limit=2",
                &[(h, json!([1, 2]), 2), page(json!([3]), 1)]
            ),
            [Some("https://x.example/api/v1/users?after=u2".into()), None]
        );
    }

    #[test]
    fn cursor_paging_replaces_the_parameter_until_the_cursor_is_empty() {
        let r = request(
            "pagination = { type = 'cursor', cursor = '$.nextPageToken', param = 'pageToken' }",
        );
        assert_eq!(
            follow(
                &r,
                "https://x.example/u?maxResults=2",
                &[
                    page(json!({"nextPageToken": "a b"}), 2),
                    page(json!({"nextPageToken": 42}), 2),
                    page(json!({"nextPageToken": ""}), 2),
                ]
            ),
            [
                Some("https://x.example/u?maxResults=2&pageToken=a+b".into()),
                Some("https://x.example/u?maxResults=2&pageToken=42".into()),
                None
            ]
        );
    }

    #[test]
    fn offset_paging_counts_items_and_obeys_more() {
        let r = request("pagination = { type = 'offset', param = 'offset', more = '$.more' }");
        assert_eq!(
            follow(
                &r,
                "https://x.example/u?limit=2",
                &[
                    page(json!({"more": true}), 2),
                    page(json!({"more": true}), 1),
                    page(json!({"more": false}), 2)
                ]
            ),
            [
                Some("https://x.example/u?limit=2&offset=2".into()),
                Some("https://x.example/u?limit=2&offset=3".into()),
                None
            ]
        );
        // Without `more`, an empty page is the end.
        let r = request("pagination = { type = 'offset', param = 'startAt' }");
        assert_eq!(
            follow(
                &r,
                "https://x.example/u",
                &[page(json!([]), 3), page(json!([]), 0)]
            ),
            [Some("https://x.example/u?startAt=3".into()), None]
        );
    }

    #[test]
    fn page_paging_counts_from_start_and_stops_at_a_short_page() {
        let r = request(
            "query = { 'page[size]' = '2' }\npagination = { type = 'page', param = 'page[number]', start = 1, size_param = 'page[size]' }",
        );
        let first = first_page("https://x.example", &r, &Vars::new(), None).unwrap();
        assert_eq!(
            first.as_str(),
            "https://x.example/api/v1/users?page%5Bsize%5D=2&page%5Bnumber%5D=1"
        );
        assert_eq!(
            follow(
                &r,
                first.as_str(),
                &[page(json!([]), 2), page(json!([]), 2), page(json!([]), 1)]
            ),
            [
                Some("https://x.example/api/v1/users?page%5Bsize%5D=2&page%5Bnumber%5D=2".into()),
                Some("https://x.example/api/v1/users?page%5Bsize%5D=2&page%5Bnumber%5D=3".into()),
                None
            ]
        );
        // Without a size, only an empty page ends it.
        let r = request("pagination = { type = 'page', param = 'page' }");
        assert_eq!(
            follow(
                &r,
                "https://x.example/u?page=0",
                &[page(json!([]), 1), page(json!([]), 0)]
            ),
            [Some("https://x.example/u?page=1".into()), None]
        );
    }

    #[test]
    fn next_url_paging_follows_the_body_and_no_paging_stops() {
        let r = request("pagination = { type = 'next_url', next = '$.links.next' }");
        assert_eq!(
            follow(
                &r,
                "https://x.example/api/v2/users",
                &[
                    page(
                        json!({"links": {"next": "/api/v2/users?page[offset]=2"}}),
                        2
                    ),
                    page(json!({"links": {}}), 1)
                ]
            ),
            [
                Some("https://x.example/api/v2/users?page[offset]=2".into()),
                None
            ]
        );
        let r = request("");
        assert_eq!(
            follow(
                &r,
                "https://x.example/u",
                &[page(json!({"next": "/u?2"}), 5)]
            ),
            [None]
        );
    }

    #[test]
    fn first_pages_render_path_and_query_without_an_empty_query() {
        let r: Request = toml::from_str(
            "name = 'x'\npath = '/users/{item.id}/factors'\nquery = { limit = '{n}' }",
        )
        .unwrap();
        let vars = Vars::from([("n".into(), "200".into())]);
        let item = json!({"id": "u 1"});
        assert_eq!(
            first_page("https://x.example", &r, &vars, Some(&item))
                .unwrap()
                .as_str(),
            "https://x.example/users/u%201/factors?limit=200"
        );
        let r = request("");
        assert_eq!(
            first_page("https://x.example", &r, &vars, None)
                .unwrap()
                .as_str(),
            "https://x.example/api/v1/users"
        );
        let e = first_page("not a url", &r, &vars, None).unwrap_err();
        assert!(
            e.message.starts_with("request `x`: bad URL: "),
            "{}",
            e.message
        );
        assert!(!e.retryable);
    }

    #[test]
    fn items_are_the_selected_nodes_with_arrays_spread() {
        let body = json!({"users": [{"id": 1}, {"id": 2}], "one": {"id": 3}});
        let select =
            |items: &str| Items::new(&request(&format!("items = '{items}'"))).select(&body);
        assert_eq!(select("$.users"), [json!({"id": 1}), json!({"id": 2})]);
        assert_eq!(select("$.users[*]"), [json!({"id": 1}), json!({"id": 2})]);
        assert_eq!(select("$.one"), [json!({"id": 3})]);
        assert_eq!(select("$.none"), Vec::<Value>::new());
        // An array of arrays selected with `[*]` keeps the inner arrays.
        let nested = json!([[1, 2], [3]]);
        let r = request("items = '$[*]'");
        assert_eq!(Items::new(&r).select(&nested), [json!([1, 2]), json!([3])]);
        // Without `items`, the body is the one item.
        assert_eq!(Items::new(&request("")).select(&body), [body]);
    }
}
