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
            setup.nodes,
            setup.zones,
            setup.shards,
            escape(&setup.faults),
            setup.fault_window_ns as f64 / 1e6
        );
        self.summary_table(&mut page);
        self.comparison_table(&mut page);
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

    fn comparison_table(&self, page: &mut String) {
        let comparison = match &self.comparison {
            None => return,
            Some(Err(why)) => {
                let _ = writeln!(page, "<h2>Comparison</h2>\n<p class=\"bad\">No comparison: {}</p>", escape(&why.to_string()));
                return;
            }
            Some(Ok(comparison)) => comparison,
        };
        let _ = writeln!(
            page,
            "<h2>Comparison</h2>\n<p>compare &minus; baseline, with its 95 % confidence interval: a paired bootstrap over {} seeds, {} resamples, seeded. An interval that spans zero is no significant difference.</p>",
            comparison.seeds, comparison.resamples
        );
        page.push_str("<table class=\"comparison\"><tr><th>figure</th><th>baseline</th><th>compare</th><th>difference</th><th>95 % CI</th><th>verdict</th></tr>\n");
        for d in &comparison.differences {
            let [figure, baseline, compared, difference, interval, verdict] = d.cells();
            let class = if d.significant() { "significant" } else { "" };
            let _ = writeln!(
                page,
                "<tr><td>{figure}</td><td>{baseline}</td><td>{compared}</td><td>{difference}</td><td>{interval}</td><td class=\"{class}\">{}</td></tr>",
                escape(&verdict)
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

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.bad{color:#b00;font-weight:bold}.good{color:#070}.significant{font-weight:bold}svg{display:block;margin:1em 0}text{font-size:11px}";

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

/// The colours of the phases, in the order they first appear.
const PHASE_COLOURS: [&str; 15] = [
    "#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc", "#2f4554", "#61a0a8", "#d48265",
    "#749f83", "#ca8622", "#bda29a",
];

/// A Gantt chart of the seed's recoveries: one row per attempt (an epoch of
/// a director's recovery), its phases side by side, coloured by phase; a
/// phase that failed is outlined in red.
fn phase_timeline(page: &mut String, timeline: &Timeline) {
    let _ = writeln!(page, "<h2>Per-attempt timeline: {} seed {}</h2>", escape(&timeline.set), timeline.seed);
    // One row per attempt, in the order they ran.
    let mut rows: Vec<(&Recovery, Vec<&PhaseSpan>)> = Vec::new();
    for recovery in &timeline.recoveries {
        for span in &recovery.timeline {
            match rows.last_mut() {
                Some((r, spans)) if std::ptr::eq(*r, recovery) && spans[0].epoch == span.epoch => spans.push(span),
                _ => rows.push((recovery, vec![span])),
            }
        }
    }
    if rows.is_empty() {
        page.push_str("<p>The seed ran no phase.</p>\n");
        return;
    }
    let mut phases: Vec<&str> = Vec::new();
    for (_, spans) in &rows {
        for span in spans {
            if !phases.contains(&span.phase.as_str()) {
                phases.push(&span.phase);
            }
        }
    }
    let colour = |phase: &str| PHASE_COLOURS[phases.iter().position(|p| *p == phase).unwrap_or(0) % PHASE_COLOURS.len()];
    let end = timeline.recoveries.iter().map(|r| r.ended_ms).fold(0.0, f64::max).max(1.0);
    let (label, row_h, top) = (190.0, 16.0, 20.0);
    let scale = (WIDTH - label) / end;
    let legend_rows = phases.len().div_ceil(4);
    let height = top + rows.len() as f64 * row_h + 10.0 + legend_rows as f64 * 14.0;
    let _ =
        writeln!(page, "<svg class=\"chart\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\" aria-label=\"per-attempt timeline\">");
    let _ = writeln!(
        page,
        "<text x=\"{label}\" y=\"12\">0 ms</text><text x=\"{WIDTH}\" y=\"12\" text-anchor=\"end\">{end:.0} ms (virtual)</text>"
    );
    for (i, (recovery, spans)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        // The trigger cut to what fits beside the bars; whole in the tooltip.
        let trigger: String = recovery.trigger.chars().take(22).collect();
        let _ = writeln!(
            page,
            "<text x=\"0\" y=\"{:.1}\">d{} e{} {}<title>{}</title></text>",
            y + row_h - 4.0,
            recovery.director,
            spans[0].epoch,
            escape(&trigger),
            escape(&recovery.trigger)
        );
        for span in spans {
            let failed = !(span.outcome.starts_with("next") || span.outcome == "completed");
            let stroke = if failed { " stroke=\"#c00\" stroke-width=\"1.5\"" } else { "" };
            let _ = writeln!(
                page,
                "<rect class=\"mark\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"{stroke}><title>{} e{}: {:.3} ms, {}</title></rect>",
                label + (recovery.started_ms + span.start_ms) * scale,
                (span.ms * scale).max(1.5),
                row_h - 4.0,
                colour(&span.phase),
                escape(&span.phase),
                span.epoch,
                span.ms,
                escape(&span.outcome)
            );
        }
    }
    let legend_top = top + rows.len() as f64 * row_h + 10.0;
    for (i, phase) in phases.iter().enumerate() {
        let (x, y) = ((i % 4) as f64 * WIDTH / 4.0, legend_top + (i / 4) as f64 * 14.0);
        let _ = writeln!(
            page,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            colour(phase),
            x + 14.0,
            y + 9.0,
            escape(phase)
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
