//! The HTML form of the review: one self-contained page (inline CSS and
//! SVG, no scripts, no external assets) that reads on a laptop and a phone.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{Report, StreamReport};
use crate::evidence::record::Status;

pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn t(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn colour(s: Status) -> &'static str {
    match s {
        Status::Ok => "#2e7d32",
        Status::Partial => "#ef8f00",
        Status::Failed => "#c62828",
        Status::Missed => "#8d8d8d",
    }
}

/// A strip of squares, one per recent collection, coloured by outcome.
fn timeline(s: &StreamReport) -> String {
    let w = 10;
    let mut o = format!(
        "<svg class=\"tl\" role=\"img\" aria-label=\"recent collections of {}\" viewBox=\"0 0 {} 12\" width=\"{}\" height=\"12\">",
        esc(&s.stream),
        s.timeline.len().max(1) * w,
        s.timeline.len().max(1) * w
    );
    for (i, tick) in s.timeline.iter().enumerate() {
        let _ = write!(
            o,
            "<rect x=\"{}\" y=\"1\" width=\"8\" height=\"10\" rx=\"2\" fill=\"{}\"><title>#{} {} {}</title></rect>",
            i * w,
            colour(tick.status),
            tick.seq,
            tick.status.as_str(),
            t(&tick.at)
        );
    }
    o.push_str("</svg>");
    o
}

const CSS: &str = r#"
:root { color-scheme: light; --fg:#1d1d1f; --muted:#5f6368; --line:#e3e3e3; --bg:#fafafa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: .2rem 0; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .6rem; } h3 { font-size: 1rem; margin: 0; word-break: break-all; }
.meta { color: var(--muted); }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:999px; color:#fff; font-size:.8rem; font-weight:600; }
.ok { background:#2e7d32; } .partial { background:#ef8f00; } .failed { background:#c62828; } .missed { background:#8d8d8d; }
.high { border-left: 4px solid #c62828; } .medium { border-left: 4px solid #ef8f00; }
ul.hl { list-style:none; padding:0; margin:0; } ul.hl li { background:#fff; margin:.35rem 0; padding:.5rem .7rem; border-radius:6px; box-shadow:0 1px 2px rgba(0,0,0,.06); }
.card { background:#fff; border-radius:8px; padding:12px 14px; margin:10px 0; box-shadow:0 1px 3px rgba(0,0,0,.08); }
.row { display:flex; flex-wrap:wrap; gap:.5rem 1rem; align-items:center; justify-content:space-between; }
table { border-collapse: collapse; width: 100%; font-size:.9rem; } th, td { text-align:left; padding:.35rem .5rem; border-bottom:1px solid var(--line); }
.scroll { overflow-x:auto; }
pre { background:#f4f4f4; padding:.6rem; border-radius:6px; overflow-x:auto; font-size:.82rem; margin:.5rem 0 0; }
.add { color:#2e7d32; } .del { color:#c62828; } .chg { color:#9a6700; }
svg.tl { display:block; margin-top:.4rem; max-width:100%; height:auto; }
@media (max-width: 600px) { body { font-size:14px; } .hide-sm { display:none; } }
"#;

/// Renders the page.
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>Evidence review {}</title><style>{CSS}</style></head><body><main>",
        esc(&t(&r.generated_at))
    );
    let _ = write!(
        o,
        "<h1>Evidence review</h1><p class=\"meta\">{} · window since {} · store <code>{}</code> · integrity <span class=\"badge {}\">{}</span></p>",
        esc(&t(&r.generated_at)),
        esc(&t(&r.since)),
        esc(&r.store),
        if r.intact { "ok" } else { "failed" },
        if r.intact { "intact" } else { "FAILED" }
    );
    let _ = write!(
        o,
        "<p class=\"meta\" id=\"head\">head: <code>{}</code> — keep it: <code>exhibit verify --known-head</code> proves later that nothing up to it was removed</p>",
        esc(r.head.as_deref().unwrap_or("none"))
    );
    if !r.problems.is_empty() {
        o.push_str("<div class=\"card high\"><strong>Integrity problems</strong><ul>");
        for p in &r.problems {
            let _ = write!(o, "<li>{}</li>", esc(p));
        }
        o.push_str("</ul></div>");
    }

    o.push_str(&r.controls.html(&r.since));
    o.push_str("<h2>Highlights</h2><ul class=\"hl\" id=\"highlights\">");
    let mut any = false;
    for (stream, h) in r.all_highlights() {
        any = true;
        let _ = write!(
            o,
            "<li class=\"{}\" data-rule=\"{}\"><strong>{}</strong> <code>{}</code><br>{}</li>",
            h.severity.as_str(),
            h.rule,
            h.severity.as_str(),
            esc(stream),
            esc(&h.message)
        );
    }
    if !any {
        o.push_str("<li>Nothing that needs attention.</li>");
    }
    o.push_str("</ul>");

    o.push_str("<h2>Coverage</h2><div class=\"card scroll\"><table><thead><tr><th>stream</th><th>last</th><th class=\"hide-sm\">at</th><th>ok</th><th>partial</th><th>failed</th><th>missed</th><th>expected</th></tr></thead><tbody>");
    for s in &r.streams {
        let c = s.coverage.clone().unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td><span class=\"badge {}\">{}</span></td><td class=\"hide-sm\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.stream),
            s.last_status.as_str(),
            s.last_status.as_str(),
            esc(&t(&s.last_at)),
            c.ok,
            c.partial,
            c.failed,
            c.missed,
            c.expected
        );
    }
    o.push_str("</tbody></table></div>");

    o.push_str("<h2>Streams</h2>");
    for s in &r.streams {
        let _ = write!(
            o,
            "<section class=\"card\"><div class=\"row\"><h3>{}</h3><span class=\"badge {}\">{}</span></div><div class=\"meta\">{}{} · {} record(s) in the window · {} change(s)</div>{}",
            esc(&s.stream),
            s.last_status.as_str(),
            s.last_status.as_str(),
            esc(&s.kind),
            if s.criteria.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc(&s.criteria.join(", ")))
            },
            s.records_in_window,
            s.change_count,
            timeline(s)
        );
        for g in super::failure_groups(&s.failures) {
            let _ = write!(
                o,
                "<p class=\"del\">{}: {}</p>",
                esc(&g.summary()),
                esc(g.error.unwrap_or(""))
            );
        }
        if !s.changes.is_empty() {
            o.push_str("<pre>");
            for line in super::change_lines(&s.changes).lines() {
                let class = match line.chars().next() {
                    Some('+') => "add",
                    Some('-') => "del",
                    _ => "chg",
                };
                let _ = writeln!(o, "<span class=\"{class}\">{}</span>", esc(line));
            }
            o.push_str("</pre>");
        }
        o.push_str("</section>");
    }
    o.push_str("</main></body></html>\n");
    o
}
