//! `adfdr drills --html FILE`: the drill history as one standalone page
//! (no scripts, no network): per factory, RTO and RPO against their targets
//! over time as inline SVG charts, then every drill with its verdict.

use adfdr_core::catalog::DrillRecord;
use adfdr_core::plan::drill::human;

use crate::output::esc;

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;

/// One drill on a chart: when it started, its figure (None: not
/// measured), whether it passed, and the target it was held to then.
type Point = (String, Option<f64>, bool, Option<f64>);

/// One chart: each drill's value (a point, green when the drill passed, red
/// when it failed, a title with its figures) joined by a line, and the
/// target each was held to as a dashed line (targets change over time).
fn chart(title: &str, values: &[Point]) -> String {
    let top = values
        .iter()
        .flat_map(|v| [v.1, v.3])
        .flatten()
        .fold(1.0_f64, f64::max)
        * 1.15;
    let n = values.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            PAD + (W - 2.0 * PAD) / 2.0
        } else {
            PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v / top);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">\
<text x=\"{PAD}\" y=\"16\" class=\"title\">{t}</text>\
<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" class=\"axis\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" class=\"axis\"/>\
<text x=\"4\" y=\"{PAD}\" class=\"tick\">{max}</text><text x=\"4\" y=\"{b}\" class=\"tick\">0</text>",
        t = esc(title),
        b = H - PAD,
        r = W - PAD,
        max = esc(&human(top)),
    );
    let targets: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.3?)))
        .collect();
    if let Some(&(_, last)) = targets.last() {
        // A step per drill: each held to the target of its day.
        let mut steps: Vec<String> = Vec::new();
        for (i, t) in &targets {
            let (from, to) = if n == 1 {
                (PAD, W - PAD)
            } else {
                let half = (W - 2.0 * PAD) / (n - 1) as f64 / 2.0;
                ((x(*i) - half).max(PAD), (x(*i) + half).min(W - PAD))
            };
            steps.push(format!("{from:.1},{:.1} {to:.1},{:.1}", y(*t), y(*t)));
        }
        svg.push_str(&format!(
            "<polyline points=\"{}\" class=\"target\"/><text x=\"{tx}\" y=\"{tl}\" class=\"tick\">target {label}</text>",
            steps.join(" "),
            tx = W - PAD - 110.0,
            tl = y(last) - 4.0,
            label = esc(&human(last)),
        ));
    }
    let line: Vec<String> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.1.map(|s| format!("{:.1},{:.1}", x(i), y(s))))
        .collect();
    if line.len() > 1 {
        svg.push_str(&format!(
            "<polyline points=\"{}\" class=\"line\"/>",
            line.join(" ")
        ));
    }
    for (i, (label, value, passed, _)) in values.iter().enumerate() {
        let Some(v) = value else { continue };
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" class=\"{}\"><title>{}: {} ({})</title></circle>",
            x(i),
            y(*v),
            if *passed { "pass" } else { "fail" },
            esc(label),
            esc(&human(*v)),
            if *passed { "passed" } else { "failed" }
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn against(value: Option<f64>, target: Option<f64>) -> (String, &'static str) {
    match (value, target) {
        (Some(v), Some(t)) if v <= t => (format!("{} (target {})", human(v), human(t)), "ok"),
        (Some(v), Some(t)) => (
            format!("{} (target {}, MISSED)", human(v), human(t)),
            "fail",
        ),
        (Some(v), None) => (human(v), ""),
        (None, _) => ("not measured".into(), ""),
    }
}

/// The page for `records` (oldest first), made at `generated`.
pub fn page(records: &[DrillRecord], generated: &str) -> String {
    let mut factories: Vec<&str> = records.iter().map(|r| r.factory.as_str()).collect();
    factories.sort_unstable();
    factories.dedup();
    let mut body = String::new();
    for f in &factories {
        let mine: Vec<&DrillRecord> = records.iter().filter(|r| r.factory == *f).collect();
        let passed = mine.iter().filter(|r| r.verdict == "passed").count();
        let last = mine.last().expect("one at least");
        let points = |rto: bool| -> Vec<Point> {
            mine.iter()
                .map(|r| {
                    let (v, t) = if rto {
                        (r.rto_seconds, r.rto_target_seconds)
                    } else {
                        (Some(r.rpo_seconds), r.rpo_target_seconds)
                    };
                    (r.started.clone(), v, r.verdict == "passed", t)
                })
                .collect()
        };
        body.push_str(&format!(
            "<section class=\"factory\" id=\"f-{id}\"><h2>{name}</h2>\
<p class=\"summary\">{passed} of {total} drills passed; the last, {when}, <span class=\"{cls}\">{verdict}</span>.</p>",
            id = esc(f),
            name = esc(f),
            total = mine.len(),
            when = esc(&last.started),
            cls = if last.verdict == "passed" { "ok" } else { "fail" },
            verdict = if last.verdict == "passed" { "PASSED" } else { "FAILED" },
        ));
        body.push_str(&chart(
            "RTO (drill start to verified restore)",
            &points(true),
        ));
        body.push_str(&chart(
            "RPO (drill start minus last confirmed state)",
            &points(false),
        ));
        body.push_str("<table><tr><th>Started</th><th>Snapshot</th><th>RTO</th><th>RPO</th><th>Result</th></tr>");
        for r in mine.iter().rev() {
            let (rto, rto_cls) = against(r.rto_seconds, r.rto_target_seconds);
            let (rpo, rpo_cls) = against(Some(r.rpo_seconds), r.rpo_target_seconds);
            let ok = r.verdict == "passed";
            body.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"{rto_cls}\">{}</td><td class=\"{rpo_cls}\">{}</td><td class=\"{}\">{}</td></tr>",
                esc(&r.started),
                esc(&r.snapshot),
                esc(&rto),
                esc(&rpo),
                if ok { "ok" } else { "fail" },
                if ok { "passed" } else { "FAILED" },
            ));
        }
        body.push_str("</table></section>");
    }
    if factories.is_empty() {
        body.push_str("<p>No drills yet: run <code>adfdr drill</code>.</p>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>adfdr drill history</title>\
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}td,th{{border:1px solid #ccc;padding:4px 8px}}\
table{{border-collapse:collapse;margin:1em 0}}.ok{{color:#060}}.fail{{color:#a00;font-weight:bold}}\
svg.chart{{display:block;margin:1em 0;background:#fafafa}}.axis{{stroke:#888}}.target{{fill:none;stroke:#c60;stroke-dasharray:6 4}}\
.line{{fill:none;stroke:#369;stroke-width:2}}circle.pass{{fill:#2a2}}circle.fail{{fill:#c22}}.title{{font-size:13px}}.tick{{font-size:11px;fill:#555}}</style>\
</head><body><h1>Recovery drill history</h1><p>Generated {generated} by adfdr {version}: {n} drills of {f} factories. \
Each point is a drill (green passed, red failed); the dashed line is the target.</p>{body}</body></html>\n",
        generated = esc(generated),
        version = env!("CARGO_PKG_VERSION"),
        n = records.len(),
        f = factories.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: &str, verdict: &str, rto: f64) -> DrillRecord {
        DrillRecord {
            factory: "sales".into(),
            id: started.into(),
            started: started.into(),
            snapshot: "s".into(),
            target: "t".into(),
            verdict: verdict.into(),
            rto_seconds: Some(rto),
            rto_target_seconds: Some(600.0),
            rpo_seconds: 120.0,
            rpo_target_seconds: Some(3600.0),
            confirmed: started.into(),
            reasons: 0,
            locations: vec![],
        }
    }

    #[test]
    fn the_page_charts_every_drill_against_its_target() {
        let page = page(
            &[
                record("2026-11-01T03:00:00Z", "passed", 300.0),
                record("2026-11-08T03:00:00Z", "failed", 900.0),
            ],
            "2026-12-01T00:00:00Z",
        );
        assert_eq!(page.matches("<svg").count(), 2, "RTO and RPO");
        assert_eq!(page.matches("<circle").count(), 4);
        assert!(
            page.contains("class=\"fail\"><title>2026-11-08T03:00:00Z: 15m"),
            "{page}"
        );
        assert!(page.contains("target 10m"), "{page}");
        assert!(page.contains("1 of 2 drills passed"), "{page}");
        // Nothing to run and nothing to fetch: the only URL is SVG's namespace.
        assert!(!page.contains("<script"));
        assert_eq!(
            page.matches("http").count(),
            page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
    }
}
