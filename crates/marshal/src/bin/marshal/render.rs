//! Renders a compliance [`Report`] as terminal tables, JSON, CSV or a self-contained HTML page.
//! Nothing here computes: every number comes from the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use marshal_core::report::{Filter, Report, Tally};
use marshal_core::usage::UsageReport;
use serde_json::{json, Value};

/// What the report was made from, for headers and the JSON `source` field.
pub struct Context<'a> {
    pub ledgers: &'a [PathBuf],
    pub missing: &'a [PathBuf],
    pub filter: &'a Filter,
    /// Cost and savings from Claude Code's transcripts, when there were any.
    pub usage: Option<&'a UsageReport>,
}

/// The slices every output shows, in order: (JSON key, heading, column title, tallies).
fn slices(report: &Report) -> [(&'static str, &'static str, &'static str, &BTreeMap<String, Tally>); 5] {
    [
        ("by_mode", "By mode", "mode", &report.by_mode),
        ("by_recommended", "By recommended agent", "recommended", &report.by_recommended),
        ("by_actual", "By actual agent", "actual", &report.by_actual),
        ("by_day", "By day (UTC)", "day", &report.by_day),
        ("by_project", "By project", "project", &report.by_project),
    ]
}

const TOP_DEVIATIONS: usize = 10;

pub fn no_ledger_message(missing: &[PathBuf]) -> String {
    let mut out = String::from("No turns recorded yet.\n");
    for path in missing {
        let _ = writeln!(out, "  no ledger at {}", path.display());
    }
    out.push_str(
        "marshal writes its ledger once Claude Code runs with the plugin installed (./install.sh).\n\
         Use --ledger PATH to read a ledger from elsewhere.\n",
    );
    out
}

fn rate_text(tally: &Tally) -> String {
    tally.compliance_rate().map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

// ---------------------------------------------------------------------------------------------
// Terminal tables

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn bold(&self, text: &str) -> String {
        self.paint(text, "1")
    }

    /// Green from 80%, yellow from 50%, red below.
    fn rate(&self, tally: &Tally) -> String {
        let text = rate_text(tally);
        match tally.compliance_rate() {
            Some(r) if r >= 0.8 => self.paint(&text, "32"),
            Some(r) if r >= 0.5 => self.paint(&text, "33"),
            Some(_) => self.paint(&text, "31"),
            None => text,
        }
    }
}

/// Aligns columns; the first column is left-aligned, the rest right-aligned. Widths ignore
/// colour escape codes.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let visible = |s: &str| strip_ansi(s).chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(visible(cell));
            if i == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn tally_rows(map: &BTreeMap<String, Tally>, painter: &Painter) -> Vec<Vec<String>> {
    map.iter()
        .map(|(key, t)| {
            vec![
                key.clone(),
                t.turns().to_string(),
                t.followed.to_string(),
                t.deviated.to_string(),
                t.ignored.to_string(),
                t.interrupted.to_string(),
                painter.rate(t),
            ]
        })
        .collect()
}

pub fn text(report: &Report, context: &Context, color: bool) -> String {
    let painter = Painter { color };
    let o = &report.overall;
    let mut out = String::new();
    let _ =
        writeln!(out, "{}", painter.bold(&format!("marshal compliance report: {} routed turns", o.turns())));
    let _ = writeln!(out, "{}", source_line(context));
    if o.turns() + o.interrupted == 0 {
        out.push_str("\nNo routed turns match.\n");
        if let Some(line) = failures_line(report) {
            let _ = writeln!(out, "{line}");
        }
        push_skipped(&mut out, report);
        return out;
    }
    let _ = writeln!(
        out,
        "\nCompliance: {}  (followed {}, deviated {}, ignored {}; {} interrupted, not counted)",
        painter.rate(o),
        o.followed,
        o.deviated,
        o.ignored,
        o.interrupted
    );
    if let Some(line) = enforcement_line(report) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(line) = failures_line(report) {
        let _ = writeln!(out, "{line}");
    }
    let headers = ["", "turns", "followed", "deviated", "ignored", "interrupted", "rate"];
    for (_, heading, column, map) in slices(report) {
        let _ = writeln!(out, "\n{}", painter.bold(heading));
        let mut h = headers;
        h[0] = column;
        out.push_str(&table(&h, &tally_rows(map, &painter)));
    }
    out.push_str(&format!("\n{}\n", painter.bold("Recommended (rows) by actual agent (columns)")));
    out.push_str(&matrix_table(report));
    out.push_str(&format!("\n{}\n", painter.bold("Tier distribution")));
    let tier_total: u64 = report.tiers.values().sum();
    let tier_rows: Vec<Vec<String>> = report
        .tiers
        .iter()
        .map(|(tier, n)| vec![tier.clone(), n.to_string(), format!("{:.1}%", percent(*n, tier_total))])
        .collect();
    out.push_str(&table(&["tier", "turns", "share"], &tier_rows));
    let deviations = report.top_deviations(TOP_DEVIATIONS);
    out.push_str(&format!("\n{}\n", painter.bold("Most common deviations")));
    if deviations.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = deviations
            .iter()
            .map(|(recommended, actual, n)| vec![format!("{recommended} -> {actual}"), n.to_string()])
            .collect();
        out.push_str(&table(&["recommended -> actual", "turns"], &rows));
    }
    if let Some(usage) = context.usage {
        out.push_str(&format!("\n{}\n", painter.bold("Cost by tier (from Claude Code's transcripts)")));
        let rows: Vec<Vec<String>> = usage
            .by_tier
            .iter()
            .map(|(tier, b)| vec![tier.clone(), b.requests.to_string(), crate::usage::usd(b.cost_usd)])
            .collect();
        out.push_str(&table(&["tier", "requests", "cost"], &rows));
        out.push_str(&crate::usage::savings_text(usage));
    }
    push_skipped(&mut out, report);
    out
}

/// "API failures: 3 turns (2 rate limit); the quota last ran out at ...", when there were any.
fn failures_line(report: &Report) -> Option<String> {
    let total: u64 = report.failures.values().flat_map(|kinds| kinds.values()).sum();
    (total > 0).then(|| {
        let rate_limited = report.failures_of(marshal_core::report::RATE_LIMIT);
        let mut line =
            format!("API failures: {total} turns ended on an API error ({rate_limited} rate limit)");
        if let Some(at) = &report.last_rate_limit {
            let _ = write!(line, "; the quota last ran out at {at}");
        }
        line
    })
}

/// "Enforcement: 3 denied, 1 rewritten, 0 warned, 2 nudged; compliance without it 55.0%", when
/// enforcement did anything.
fn enforcement_line(report: &Report) -> Option<String> {
    let a = &report.enforcement;
    (a.total() > 0).then(|| {
        format!(
            "Enforcement: {} denied, {} rewritten, {} warned, {} nudged; compliance without enforcement {} ({} of {} turns followed)",
            a.denied,
            a.rewritten,
            a.warned,
            a.nudged,
            rate_text(&report.before_enforcement),
            report.before_enforcement.followed,
            report.before_enforcement.turns()
        )
    })
}

fn percent(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

fn source_line(context: &Context) -> String {
    let read: Vec<String> = context
        .ledgers
        .iter()
        .filter(|p| !context.missing.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    let mut line = format!("ledger: {}", read.join(", "));
    for path in context.missing {
        let _ = write!(line, " (not found: {})", path.display());
    }
    let f = context.filter;
    let mut parts = Vec::new();
    if let Some(since) = f.since {
        parts.push(format!("since {}", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    if let Some(until) = f.until {
        parts.push(format!("until {}", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    for (name, value) in [("session", &f.session), ("project", &f.project)] {
        if let Some(value) = value {
            parts.push(format!("{name} {value}"));
        }
    }
    if let Some(mode) = f.mode {
        parts.push(format!("mode {}", mode.as_str()));
    }
    if !parts.is_empty() {
        let _ = write!(line, "\nfilter: {}", parts.join(", "));
    }
    line
}

fn push_skipped(out: &mut String, report: &Report) {
    let s = &report.skipped;
    if s.total() > 0 {
        let _ = writeln!(
            out,
            "\nSkipped {} unreadable line(s): {} corrupt, {} torn (cut short by a crash), {} from a newer marshal.",
            s.total(),
            s.corrupt,
            s.torn,
            s.newer_version
        );
    }
}

/// A dense table is readable up to about this many columns; past it the pairs are listed, which
/// keeps the output linear in the ledger (a dense table of n agents has n x n cells).
const DENSE_MATRIX_COLUMNS: usize = 8;

fn matrix_table(report: &Report) -> String {
    let mut actuals: Vec<&str> = report.matrix.keys().map(|(_, a)| a.as_str()).collect();
    actuals.sort_unstable();
    actuals.dedup();
    if actuals.len() > DENSE_MATRIX_COLUMNS || report.by_recommended.len() > 4 * DENSE_MATRIX_COLUMNS {
        let rows: Vec<Vec<String>> =
            report.matrix.iter().map(|((r, a), n)| vec![r.clone(), a.clone(), n.to_string()]).collect();
        return table(&["recommended", "actual", "turns"], &rows);
    }
    let recommended: Vec<&str> = report.by_recommended.keys().map(String::as_str).collect();
    let mut headers = vec!["recommended \\ actual"];
    headers.extend(actuals.iter().copied());
    let rows: Vec<Vec<String>> = recommended
        .iter()
        .map(|r| {
            let mut row = vec![r.to_string()];
            row.extend(actuals.iter().map(|a| {
                report.matrix.get(&(r.to_string(), a.to_string())).map_or("-".to_string(), u64::to_string)
            }));
            row
        })
        .collect();
    table(&headers, &rows)
}

// ---------------------------------------------------------------------------------------------
// JSON (schema documented in the README; `schema` bumps on any incompatible change)

pub const JSON_SCHEMA_VERSION: u32 = 1;

fn tally_json(t: &Tally) -> Value {
    json!({
        "turns": t.turns(),
        "followed": t.followed,
        "deviated": t.deviated,
        "ignored": t.ignored,
        "interrupted": t.interrupted,
        "compliance_rate": t.compliance_rate(),
    })
}

pub fn json_value(report: &Report, context: &Context) -> Value {
    let mut root = tally_json(&report.overall);
    let object = root.as_object_mut().expect("tally_json is an object");
    object.insert("schema".into(), json!(JSON_SCHEMA_VERSION));
    for (key, _, _, map) in slices(report) {
        let slice: serde_json::Map<String, Value> =
            map.iter().map(|(k, t)| (k.clone(), tally_json(t))).collect();
        object.insert(key.into(), Value::Object(slice));
    }
    object.insert(
        "matrix".into(),
        report.matrix.iter().map(|((r, a), n)| json!({"recommended": r, "actual": a, "turns": n})).collect(),
    );
    object.insert("tiers".into(), json!(report.tiers));
    object.insert(
        "top_deviations".into(),
        report
            .top_deviations(TOP_DEVIATIONS)
            .iter()
            .map(|(r, a, n)| json!({"recommended": r, "actual": a, "turns": n}))
            .collect(),
    );
    object.insert("before_enforcement".into(), tally_json(&report.before_enforcement));
    object.insert("enforcement".into(), json!(report.enforcement));
    object.insert(
        "usage".into(),
        context.usage.map_or(Value::Null, |usage| {
            json!({
                "total": crate::usage::bucket_json(&usage.total),
                "by_tier": crate::usage::buckets_json(&usage.by_tier),
                "savings": crate::usage::savings_json(&usage.savings),
                "cost_by_day_and_tier": usage.cost_by_day_and_tier.iter().map(|(day, tiers)| {
                    (day.clone(), Value::Object(tiers.iter().map(|(t, c)| (t.clone(), json!(crate::usage::round_usd(*c)))).collect()))
                }).collect::<serde_json::Map<_, _>>(),
            })
        }),
    );
    object.insert("failures".into(), json!(report.failures));
    object.insert("last_rate_limit".into(), json!(report.last_rate_limit));
    object.insert("records".into(), json!(report.records));
    object.insert("skipped".into(), json!(report.skipped));
    object.insert(
        "source".into(),
        json!({
            "ledgers": context.ledgers,
            "missing": context.missing,
            "since": context.filter.since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "until": context.filter.until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "session": context.filter.session,
            "project": context.filter.project,
            "mode": context.filter.mode.map(|m| m.as_str()),
        }),
    );
    root
}

pub fn json(report: &Report, context: &Context) -> Result<String> {
    Ok(serde_json::to_string_pretty(&json_value(report, context))? + "\n")
}

// ---------------------------------------------------------------------------------------------
// CSV

/// One CSV cell. A cell a spreadsheet would run as a formula (starting `=`, `+`, `-`, `@`, tab
/// or carriage return: OWASP's CSV-injection list) gets a leading `'` and quotes.
fn csv_field(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("\"'{}\"", text.replace('"', "\"\""))
    } else if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub fn csv(report: &Report) -> String {
    let mut out = String::from("dimension,key,turns,followed,deviated,ignored,interrupted,compliance_rate\n");
    let mut row = |dimension: &str, key: &str, t: &Tally| {
        let rate = t.compliance_rate().map_or(String::new(), |r| format!("{r:.4}"));
        let _ = writeln!(
            out,
            "{dimension},{},{},{},{},{},{},{rate}",
            csv_field(key),
            t.turns(),
            t.followed,
            t.deviated,
            t.ignored,
            t.interrupted
        );
    };
    row("overall", "all", &report.overall);
    row("before_enforcement", "all", &report.before_enforcement);
    for (_, _, column, map) in slices(report) {
        for (k, t) in map {
            row(column, k, t);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTML: one self-contained page, no scripts, no network; the chart is inline SVG.

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape_html(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape_html(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A line chart of the daily compliance rate, with a dot per day.
fn compliance_chart(by_day: &BTreeMap<String, Tally>) -> String {
    let points: Vec<(&str, f64, u64)> = by_day
        .iter()
        .filter_map(|(day, t)| t.compliance_rate().map(|r| (day.as_str(), r, t.turns())))
        .collect();
    let (width, height, left, right, top, bottom) = (720.0, 260.0, 48.0, 16.0, 16.0, 40.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let x = |i: usize| {
        if points.len() <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |rate: f64| top + plot_h * (1.0 - rate);
    let mut svg = format!(
        r#"<svg id="compliance-chart" role="img" aria-label="Compliance rate per day" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for pct in [0, 25, 50, 75, 100] {
        let gy = y(pct as f64 / 100.0);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{gy}" x2="{}" y2="{gy}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{pct}%</text>"##,
            width - right,
            left - 6.0,
            gy + 4.0
        );
    }
    if points.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">no routed turns</text>"##,
            width / 2.0,
            height / 2.0
        );
    }
    let polyline: Vec<String> =
        points.iter().enumerate().map(|(i, (_, r, _))| format!("{:.1},{:.1}", x(i), y(*r))).collect();
    if points.len() > 1 {
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="#2563eb" stroke-width="3" points="{}"/>"##,
            polyline.join(" ")
        );
    }
    let label_every = points.len().div_ceil(8).max(1);
    for (i, (day, rate, turns)) in points.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#2563eb"><title>{}: {:.1}% of {turns} turns</title></circle>"##,
            x(i),
            y(*rate),
            escape_html(day),
            rate * 100.0
        );
        // Every few days, and always the last one; a regular label too close to it gives way.
        let last = points.len() - 1;
        if i == last || (i % label_every == 0 && last - i >= label_every.div_ceil(2)) {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
                x(i),
                height - bottom + 18.0,
                escape_html(day)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Tiers in the order the cost chart stacks them, with their colours.
const TIER_COLOURS: [(&str, &str); 4] =
    [("weak", "#16a34a"), ("base", "#2563eb"), ("strong", "#9333ea"), ("unrouted", "#9ca3af")];

/// Stacked bars: one per day, one segment per tier, height in dollars.
fn cost_chart(by_day: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
    let days: Vec<(&String, &BTreeMap<String, f64>)> = by_day.iter().collect();
    let (width, height, left, right, top, bottom) = (720.0, 260.0, 64.0, 16.0, 16.0, 56.0);
    let plot_w: f64 = width - left - right;
    let plot_h: f64 = height - top - bottom;
    let max = days.iter().map(|(_, tiers)| tiers.values().sum::<f64>()).fold(0.0, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    let mut svg = format!(
        r#"<svg id="cost-chart" role="img" aria-label="Cost per day by tier" viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for step in 0..=4 {
        let value = scale * step as f64 / 4.0;
        let gy = top + plot_h * (1.0 - step as f64 / 4.0);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{gy}" x2="{}" y2="{gy}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
            width - right,
            left - 6.0,
            gy + 4.0,
            escape_html(&crate::usage::usd(value))
        );
    }
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.7).min(48.0);
    let label_every = days.len().div_ceil(8).max(1);
    for (i, (day, tiers)) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (tier, colour) in TIER_COLOURS {
            let Some(cost) = tiers.get(tier).filter(|c| **c > 0.0) else { continue };
            let h = plot_h * cost / scale;
            y -= h;
            let _ = write!(
                svg,
                r##"<rect class="tier-{tier}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{colour}"><title>{}: {tier} {}</title></rect>"##,
                escape_html(day),
                escape_html(&crate::usage::usd(*cost))
            );
        }
        // Every few days and always the last; a regular label too close to the last gives way.
        let last = days.len() - 1;
        if i == last || (i % label_every == 0 && last - i >= label_every.div_ceil(2)) {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
                x + bar / 2.0,
                height - bottom + 18.0,
                escape_html(day)
            );
        }
    }
    for (i, (tier, colour)) in TIER_COLOURS.iter().enumerate() {
        let lx = left + i as f64 * 110.0;
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" font-size="11" fill="#555">{tier}</text>"##,
            height - 18.0,
            lx + 14.0,
            height - 9.0
        );
    }
    svg.push_str("</svg>");
    svg
}

pub fn html(report: &Report, context: &Context, generated: DateTime<Utc>) -> String {
    let painter = Painter { color: false };
    let o = &report.overall;
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>marshal compliance report</h1><p class=\"meta\">{} &middot; generated {}</p>",
        escape_html(&source_line(context)).replace('\n', "<br>"),
        generated.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = write!(
        body,
        "<p class=\"headline\"><span id=\"rate\">{}</span> compliance over {} routed turns \
         (followed {}, deviated {}, ignored {}; {} interrupted, not counted)</p>",
        rate_text(o),
        o.turns(),
        o.followed,
        o.deviated,
        o.ignored,
        o.interrupted
    );
    if let Some(line) = enforcement_line(report) {
        let _ = write!(body, "<p>{}</p>", escape_html(&line));
    }
    if let Some(line) = failures_line(report) {
        let _ = write!(body, "<p>{}</p>", escape_html(&line));
    }
    let _ = write!(body, "<h2>Compliance over time</h2>{}", compliance_chart(&report.by_day));
    if let Some(usage) = context.usage {
        let savings = crate::usage::savings_text(usage);
        let _ = write!(
            body,
            "<h2>Cost per day by tier</h2>{}<pre class=\"savings\">{}</pre>",
            cost_chart(&usage.cost_by_day_and_tier),
            escape_html(savings.trim_start_matches('\n'))
        );
    }
    let headers = ["", "turns", "followed", "deviated", "ignored", "interrupted", "rate"];
    for (_, heading, column, map) in slices(report) {
        let mut h = headers;
        h[0] = column;
        let _ =
            write!(body, "<h2>{}</h2>{}", escape_html(heading), html_table(&h, &tally_rows(map, &painter)));
    }
    let deviations: Vec<Vec<String>> = report
        .top_deviations(TOP_DEVIATIONS)
        .iter()
        .map(|(r, a, n)| vec![r.to_string(), a.to_string(), n.to_string()])
        .collect();
    let _ = write!(
        body,
        "<h2>Most common deviations</h2>{}",
        html_table(&["recommended", "actual", "turns"], &deviations)
    );
    let tiers: Vec<Vec<String>> = report.tiers.iter().map(|(t, n)| vec![t.clone(), n.to_string()]).collect();
    let _ = write!(body, "<h2>Tier distribution</h2>{}", html_table(&["tier", "turns"], &tiers));
    if report.skipped.total() > 0 {
        let s = &report.skipped;
        let _ = write!(
            body,
            "<p class=\"meta\">Skipped {} unreadable line(s): {} corrupt, {} torn, {} from a newer marshal.</p>",
            s.total(),
            s.corrupt,
            s.torn,
            s.newer_version
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>marshal compliance report</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#111;max-width:60rem}}\
         table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}th,td{{padding:.25rem .75rem;border-bottom:1px solid #e5e5e5;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}th{{background:#f5f5f5}}.meta{{color:#555}}\
         .headline{{font-size:1.25rem}}.savings{{white-space:pre-wrap}}#rate{{font-weight:700;color:#2563eb}}</style></head>\
         <body>{body}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_ignore_colour_codes() {
        let rows = vec![vec!["a".into(), "\x1b[32m1\x1b[0m".into()], vec!["long name".into(), "100".into()]];
        let text = strip_ansi(&table(&["key", "n"], &rows));
        assert_eq!(text, "  key          n\n  a            1\n  long name  100\n");
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd|'/c calc'!A1"), "\"'=cmd|'/c calc'!A1\"");
        for formula in ["+1", "-1+2", "@SUM(A1)", "\tx"] {
            assert!(csv_field(formula).starts_with("\"'"), "{formula}");
        }
    }

    #[test]
    fn html_escapes_untrusted_text() {
        assert_eq!(escape_html("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
