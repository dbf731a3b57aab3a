//! The report of an experiment: as JSON (every run's figures), and as one
//! self-contained HTML page, readable offline, whose charts are inline SVG:
//! the distribution of recovery times per plugin set, and the per-phase
//! timeline of one seed.
//!
//! The page carries a few lines of script that measure the drawn charts once
//! the page is laid out and record the result on `<body data-charts=...>`, so
//! a headless browser can tell that the charts really render.

use std::fmt::Write as _;

use super::report::{Report, SetOutcome, Timeline};
use crate::sim::{PhaseSpan, Recovery};

impl Report {
    /// The page.
    pub fn to_html(&self) -> String {
        let mut page = String::new();
        let setup = &self.setup;
        let title = format!("ratchet experiment: seeds {}, faults {}", setup.seed_ranges(), setup.faults);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
            escape(&title)
        );
        let _ = writeln!(page, "<h1>{}</h1>", escape(&title));
        let _ = writeln!(
            page,
            "<p>{} nodes in {} zones, {} shards; faults <code>{}</code> for {} ms of virtual time per run. Times are virtual.</p>",
            setup.nodes, setup.zones, setup.shards, escape(&setup.faults), setup.fault_window_ns as f64 / 1e6
        );
        self.summary_table(&mut page);
        let _ = writeln!(page, "<h2>Recovery time</h2>");
        for set in &self.sets {
            histogram(&mut page, set);
        }
        match &self.timeline {
            Some(timeline) => phase_timeline(&mut page, timeline),
            None => page.push_str("<p>No seed to chart.</p>\n"),
        }
        self.failures(&mut page);
        let _ = write!(page, "<script>{SCRIPT}</script>\n</body></html>\n");
        page
    }

    fn summary_table(&self, page: &mut String) {
        page.push_str("<h2>Summary</h2>\n<table><tr><th>plugins</th><th>overrides</th><th>runs</th><th>recoveries</th><th>completed</th><th>stalled</th><th>superseded</th><th>violations</th><th>p50 ms</th><th>p99 ms</th><th>attempts</th><th>spread</th><th>one-zone layouts</th></tr>\n");
        for set in &self.sets {
            let s = set.summary();
            let overrides = if set.head.plugins.is_empty() { "defaults".to_string() } else { set.head.plugins.join(" ") };
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.3}</td><td>{}</td></tr>",
                escape(&s.name),
                escape(&overrides),
                s.runs,
                s.recoveries,
                s.completed,
                s.stalled,
                s.superseded,
                if s.violations > 0 { "bad" } else { "good" },
                s.violations,
                s.recovery_p50_ms,
                s.recovery_p99_ms,
                s.attempts_per_recovery,
                s.placement_spread,
                s.one_zone_layouts
            );
        }
        page.push_str("</table>\n");
    }

    fn failures(&self, page: &mut String) {
        let failing: Vec<_> = self.sets.iter().flat_map(|s| s.failing.iter().map(move |r| (s, r))).collect();
        let _ = writeln!(page, "<h2>Violations</h2>");
        if failing.is_empty() {
            page.push_str("<p class=\"good\">None: every run kept every invariant.</p>\n");
            return;
        }
        page.push_str("<ul>\n");
        for (set, run) in failing.iter().take(100) {
            for violation in &run.violations {
                let _ = writeln!(page, "<li>{} seed {}: {}</li>", escape(&set.head.name), run.seed, escape(&violation.to_string()));
            }
        }
        page.push_str("</ul>\n");
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.bad{color:#b00;font-weight:bold}.good{color:#070}svg{display:block;margin:1em 0}text{font-size:11px}";

/// Measures the charts once laid out: every chart must have drawn marks of
/// non-zero size. The result goes on the body for a headless browser.
const SCRIPT: &str = "window.addEventListener('load',function(){var charts=document.querySelectorAll('svg.chart');var ok=charts.length>0;var marks=0;charts.forEach(function(c){var drawn=0;c.querySelectorAll('rect.mark').forEach(function(r){var b=r.getBoundingClientRect();if(b.width>0&&b.height>0){drawn++;}});if(drawn===0){ok=false;}marks+=drawn;});document.body.setAttribute('data-charts',(ok?'ok':'broken')+' charts='+charts.length+' marks='+marks);});";

const WIDTH: f64 = 760.0;
const BUCKETS: usize = 20;

/// A histogram of the set's completed recovery times.
fn histogram(page: &mut String, set: &SetOutcome) {
    let completed: usize = set.tally.recovery_times().map(|(_, n)| n).sum();
    let _ = writeln!(page, "<h3>{}: {completed} completed recoveries</h3>", escape(&set.head.name));
    if completed == 0 {
        page.push_str("<p>No completed recovery to chart.</p>\n");
        return;
    }
    let max = set.tally.recovery_times().map(|(t, _)| t).fold(0.0, f64::max).max(1.0);
    let mut counts = [0usize; BUCKETS];
    for (t, n) in set.tally.recovery_times() {
        counts[((t / max) * BUCKETS as f64).floor().min((BUCKETS - 1) as f64) as usize] += n;
    }
    let peak = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (height, left, bottom) = (180.0, 40.0, 30.0);
    let bar = (WIDTH - left) / BUCKETS as f64;
    let _ = writeln!(
        page,
        "<svg class=\"chart\" width=\"{WIDTH}\" height=\"{}\" role=\"img\" aria-label=\"distribution of recovery times\">",
        height + bottom
    );
    for (i, count) in counts.iter().enumerate() {
        let h = (*count as f64 / peak) * height;
        let lo = max * i as f64 / BUCKETS as f64;
        let hi = max * (i + 1) as f64 / BUCKETS as f64;
        let _ = writeln!(
            page,
            "<rect class=\"mark\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a7fc1\"><title>{lo:.0}-{hi:.0} ms: {count}</title></rect>",
            left + i as f64 * bar + 1.0,
            height - h,
            bar - 2.0,
            h.max(if *count > 0 { 1.0 } else { 0.0 })
        );
    }
    let _ = writeln!(page, "<line x1=\"{left}\" y1=\"{height}\" x2=\"{WIDTH}\" y2=\"{height}\" stroke=\"#333\"/>");
    for i in 0..=4 {
        let x = left + (WIDTH - left) * i as f64 / 4.0;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = writeln!(page, "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{:.0} ms</text>", height + 15.0, max * i as f64 / 4.0);
    }
    let _ = writeln!(page, "<text x=\"2\" y=\"12\">{}</text>", peak as usize);
    page.push_str("</svg>\n");
}

/// A Gantt chart of the seed's phases: one row per recovery attempt's phase.
fn phase_timeline(page: &mut String, timeline: &Timeline) {
    let _ = writeln!(page, "<h2>Per-phase timeline: {} seed {}</h2>", escape(&timeline.set), timeline.seed);
    let rows: Vec<(&Recovery, &PhaseSpan)> =
        timeline.recoveries.iter().flat_map(|r| r.timeline.iter().map(move |p| (r, p))).collect();
    if rows.is_empty() {
        page.push_str("<p>The seed ran no phase.</p>\n");
        return;
    }
    let end = timeline.recoveries.iter().map(|r| r.ended_ms).fold(0.0, f64::max).max(1.0);
    let (label, row_h, top) = (260.0, 14.0, 20.0);
    let scale = (WIDTH - label) / end;
    let height = top + rows.len() as f64 * row_h + 10.0;
    let _ = writeln!(
        page,
        "<svg class=\"chart\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\" aria-label=\"per-phase timeline\">"
    );
    let _ = writeln!(page, "<text x=\"{label}\" y=\"12\">0 ms</text><text x=\"{WIDTH}\" y=\"12\" text-anchor=\"end\">{end:.0} ms (virtual)</text>");
    for (i, (recovery, phase)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let x = label + (recovery.started_ms + phase.start_ms) * scale;
        let colour = if phase.outcome.starts_with("next") || phase.outcome == "completed" {
            "#3c9d5d"
        } else if phase.outcome.starts_with("superseded") {
            "#999"
        } else {
            "#c9452e"
        };
        let _ = writeln!(
            page,
            "<text x=\"0\" y=\"{:.1}\">d{} e{} {}</text><rect class=\"mark\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} e{}: {:.3} ms, {}</title></rect>",
            y + row_h - 3.0,
            recovery.director,
            phase.epoch,
            escape(&phase.phase),
            (phase.ms * scale).max(1.5),
            row_h - 3.0,
            escape(&phase.phase),
            phase.epoch,
            phase.ms,
            escape(&phase.outcome)
        );
    }
    page.push_str("</svg>\n");
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
