//! The timeline report: one self-contained HTML file per trial (inline SVG and CSS, no script,
//! nothing fetched) showing the phases as bands, one lane per pod and watched object with its
//! state changes and events (texts on hover, as SVG `<title>`s), when each symptom and each
//! converge expectation first held, and the counterfactual's lanes below the fixed run's on
//! the same time scale; plus an `index.html` of every report in the directory.
//!
//! The markup is well-formed XML as well as HTML, so tests (and tools) can parse it; the
//! elements carry `data-*` attributes with their times in milliseconds.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::json::TrialSummary;
use super::text::human_duration;
use crate::run::outcome::{
    Lane, LaneKind, MarkKind, RunTimeline, ScenarioOutcome, Timeline, Verdict,
};

/// The index file of a report directory.
pub const INDEX: &str = "index.html";

/// Errors of writing a timeline report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be written (or the directory created).
    #[error("failed to write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

const WIDTH: f64 = 1360.0;
const LABEL: f64 = 280.0;
const RIGHT: f64 = 20.0;
const AXIS: f64 = 22.0;
const BAND: f64 = 24.0;
const MARKS: f64 = 14.0;
const LANE: f64 = 20.0;

const STYLE: &str = "
body{font:14px system-ui,sans-serif;margin:16px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:18px 0 4px}
.passed{color:#1f7a45}.failed{color:#b52a2a}.ignored{color:#777}
.figures span{display:inline-block;margin-right:18px}
pre{background:#f5f6f8;padding:8px;white-space:pre-wrap}
svg{display:block;background:#fcfcfd;border:1px solid #e3e6ea}
svg text{font:11px ui-monospace,monospace;fill:#1d2330}
.axis line{stroke:#d5d9df}.axis text{fill:#667}
.band rect{stroke:#fff}.band text{font-weight:600}
.band-setup{fill:#dfe7f1}.band-break{fill:#f6d5d2}.band-fix{fill:#d6ecd9}
.band-converge{fill:#cfe6f5}.band-settle{fill:#e6f3e0}.band-other{fill:#eee}
.band-failed{stroke:#b52a2a!important;stroke-width:2}
.lane:hover .lane-bg{fill:#eef3fb}.lane-bg{fill:transparent}
.st{stroke:#fff;stroke-width:.5}
.st-ok{fill:#3aa46a}.st-run{fill:#5b95d9}.st-wait{fill:#b9c0cb}.st-bad{fill:#d9534f}
.st-term{fill:#e6a23c}.st-none{fill:#f1f2f4}.st-other{fill:#9a8fd3}
.st-label{fill:#fff;font-size:10px;pointer-events:none}
.ev{stroke:#fff;stroke-width:1}.ev-Warning{fill:#c0392b}.ev-Normal{fill:#5d6675}
.mark line{stroke-width:1.5;stroke-dasharray:4 3}
.mark-symptom line{stroke:#c0392b}.mark-symptom path{fill:#c0392b}
.mark-expectation line{stroke:#7fb98f}.mark-expectation path{fill:#7fb98f}
.mark-converged line{stroke:#1f7a45;stroke-dasharray:none}.mark-converged path{fill:#1f7a45}
.mark-failure line{stroke:#b52a2a;stroke-dasharray:none;stroke-width:2}.mark-failure path{fill:#b52a2a}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #e3e6ea;text-align:left}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
";

/// Escapes text for HTML and XML content and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The file name of a trial's report: `sim__area__name.html`.
#[must_use]
pub fn file_stem(trial_name: &str) -> String {
    trial_name
        .replace("::", "__")
        .replace(['/', '\\', ' ', ':'], "__")
}

/// The CSS class of a state: ready, running, waiting, failing, terminating, absent, other.
fn state_class(state: &str) -> &'static str {
    let bad = [
        "CrashLoopBackOff",
        "Error",
        "Err",
        "BackOff",
        "Failed",
        "OOMKilled",
        "=False",
        "Evicted",
        "ContainerCannotRun",
    ];
    if state.contains("=False") || state.contains("Failed=True") {
        return "st-bad";
    }
    if let Some((ready, want)) = state
        .split_whitespace()
        .next()
        .and_then(|s| s.split_once('/'))
        .filter(|_| state.contains(" ready"))
    {
        return if ready == want && want != "0" {
            "st-ok"
        } else {
            "st-wait"
        };
    }
    match state {
        "Ready" | "Completed" | "Succeeded" | "Bound" | "Active" | "conditions True"
        | "present" => "st-ok",
        "Running" => "st-run",
        "absent" | crate::run::outcome::GONE => "st-none",
        "Terminating" => "st-term",
        "Pending" | "ContainerCreating" | "PodInitializing" => "st-wait",
        s if s.starts_with("Init:") => {
            if bad.iter().any(|b| s.contains(b)) {
                "st-bad"
            } else {
                "st-wait"
            }
        }
        s if bad.iter().any(|b| s.contains(b)) => "st-bad",
        _ => "st-other",
    }
}

/// A tick step giving at most about ten ticks over `span`.
fn tick_step(span: Duration) -> Duration {
    const STEPS: [u64; 17] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    ];
    let secs = span.as_secs_f64();
    for s in STEPS {
        #[expect(clippy::cast_precision_loss, reason = "tick steps are small")]
        if secs / s as f64 <= 10.0 {
            return Duration::from_secs(s);
        }
    }
    Duration::from_secs(86_400)
}

/// Shortens `text` to `max` characters, keeping its start and end.
fn shorten(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let head: String = text.chars().take(keep / 2).collect();
    let tail: String = text.chars().skip(n - (keep - keep / 2)).collect();
    format!("{head}…{tail}")
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Draws one run as an SVG on a time scale of `span`.
fn run_svg(out: &mut String, run: &RunTimeline, span: Duration) {
    let plot = WIDTH - LABEL - RIGHT;
    let x = |t: Duration| LABEL + plot * (t.as_secs_f64() / span.as_secs_f64().max(1e-9));
    #[expect(clippy::cast_precision_loss, reason = "lane counts are small")]
    let height = AXIS + BAND + MARKS + LANE * run.lanes.len() as f64 + 8.0;
    let lanes_top = AXIS + BAND + MARKS;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" data-run="{}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">"#,
        esc(&run.label)
    );
    let _ = writeln!(out, "<title>{}</title>", esc(&run.label));
    // Axis.
    out.push_str(r#"<g class="axis">"#);
    let step = tick_step(span);
    let mut t = Duration::ZERO;
    while t <= span {
        let tx = x(t);
        let _ = write!(
            out,
            r#"<line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{height}"/><text x="{:.1}" y="14">{}</text>"#,
            AXIS - 4.0,
            tx + 2.0,
            if t.is_zero() {
                "0".to_owned()
            } else {
                human_duration(t)
            }
        );
        t += step;
    }
    out.push_str("</g>\n");
    // Bands.
    for b in &run.bands {
        let class = match b.name.as_str() {
            "setup" | "break" | "fix" | "converge" | "settle" => b.name.as_str(),
            _ => "other",
        };
        let (bx, bw) = (x(b.start), (x(b.end) - x(b.start)).max(1.0));
        let failed = if b.passed { "" } else { " band-failed" };
        let _ = write!(
            out,
            r#"<g class="band" data-kind="band" data-name="{}" data-start-ms="{}" data-end-ms="{}" data-passed="{}"><title>{} {}–{}{}</title><rect class="band-{class}{failed}" x="{bx:.1}" y="{AXIS}" width="{bw:.1}" height="{BAND}"/>"#,
            esc(&b.name),
            ms(b.start),
            ms(b.end),
            b.passed,
            esc(&b.name),
            human_duration(b.start),
            human_duration(b.end),
            if b.passed { "" } else { " (failed)" },
        );
        if bw > 8.0 * b.name.len() as f64 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}">{}</text>"#,
                bx + 4.0,
                AXIS + 16.0,
                esc(&b.name)
            );
        }
        out.push_str("</g>\n");
    }
    // Lanes.
    for (i, lane) in run.lanes.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "lane counts are small")]
        let y = lanes_top + LANE * i as f64;
        lane_svg(out, lane, y, run.end, &x);
    }
    // Marks, over the lanes.
    for m in &run.marks {
        let (class, what) = match m.kind {
            MarkKind::Symptom => ("symptom", "symptom first held"),
            MarkKind::Expectation => ("expectation", "expectation first held"),
            MarkKind::Converged => ("converged", "converged"),
            MarkKind::Failure => ("failure", "failed"),
        };
        let mx = x(m.at);
        let top = AXIS + BAND;
        let _ = writeln!(
            out,
            r#"<g class="mark mark-{class}" data-kind="mark" data-mark="{class}" data-at-ms="{}"><title>{what} at {}: {}</title><line x1="{mx:.1}" y1="{top}" x2="{mx:.1}" y2="{height}"/><path d="M{:.1} {top} l5 0 l-5 {} l-5 -{} z"/></g>"#,
            ms(m.at),
            human_duration(m.at),
            esc(&m.label),
            mx,
            MARKS - 2.0,
            MARKS - 2.0,
        );
    }
    out.push_str("</svg>\n");
}

fn lane_svg(out: &mut String, lane: &Lane, y: f64, end: Duration, x: &dyn Fn(Duration) -> f64) {
    let kind = match lane.kind {
        LaneKind::Pod => "pod",
        LaneKind::Object => "object",
    };
    let _ = write!(
        out,
        r#"<g class="lane" data-kind="lane" data-lane-kind="{kind}" data-lane="{}"><rect class="lane-bg" x="0" y="{y}" width="{WIDTH}" height="{LANE}"/><text x="6" y="{:.1}">{}<title>{}</title></text>"#,
        esc(&lane.name),
        y + 14.0,
        esc(&shorten(&lane.name, 42)),
        esc(&lane.name)
    );
    for (i, s) in lane.states.iter().enumerate() {
        let until = lane.states.get(i + 1).map_or(end, |n| n.at);
        let (sx, sw) = (x(s.at), (x(until) - x(s.at)).max(1.5));
        let detail = if s.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.detail)
        };
        let _ = write!(
            out,
            r#"<g data-kind="state" data-state="{}" data-at-ms="{}"><title>{}: {} from {} to {}{}</title><rect class="st {}" x="{sx:.1}" y="{:.1}" width="{sw:.1}" height="{:.1}" rx="2"/>"#,
            esc(&s.state),
            ms(s.at),
            esc(&lane.name),
            esc(&s.state),
            human_duration(s.at),
            human_duration(until),
            esc(&detail),
            state_class(&s.state),
            y + 3.0,
            LANE - 6.0,
        );
        #[expect(clippy::cast_precision_loss, reason = "state names are short")]
        if sw > 6.5 * s.state.chars().count() as f64 + 6.0 {
            let _ = write!(
                out,
                r#"<text class="st-label" x="{:.1}" y="{:.1}">{}</text>"#,
                sx + 3.0,
                y + 13.5,
                esc(&s.state)
            );
        }
        out.push_str("</g>");
    }
    for e in &lane.events {
        let ex = x(e.at);
        let ty = if e.type_ == "Warning" {
            "Warning"
        } else {
            "Normal"
        };
        let count = if e.count > 1 {
            format!(" (×{})", e.count)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"<g data-kind="event" data-reason="{}" data-at-ms="{}"><title>{} {}{count} at {}: {}</title><circle class="ev ev-{ty}" cx="{ex:.1}" cy="{:.1}" r="4"/></g>"#,
            esc(&e.reason),
            ms(e.at),
            esc(&e.type_),
            esc(&e.reason),
            human_duration(e.at),
            esc(&e.message),
            y + LANE / 2.0,
        );
    }
    out.push_str("</g>\n");
}

fn figures(o: &ScenarioOutcome) -> String {
    let r = &o.recovery;
    let fig = |d: Option<Duration>| d.map_or_else(|| "–".to_owned(), human_duration);
    format!(
        r#"<p class="figures"><span>time to symptom: <b>{}</b></span><span>time to converge: <b>{}</b></span><span>settle: <b>{}</b></span><span>cluster time: {}</span><span>wall time: {}</span></p>"#,
        fig(r.time_to_symptom),
        fig(r.time_to_converge),
        r.settle
            .map_or_else(|| "–".to_owned(), |s| esc(&s.to_string())),
        human_duration(o.cluster_time()),
        human_duration(o.wall_time()),
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width\"/>\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

const LEGEND: &str = r#"<p class="legend"><span><i style="background:#b9c0cb"></i>waiting</span><span><i style="background:#5b95d9"></i>running</span><span><i style="background:#3aa46a"></i>ready</span><span><i style="background:#d9534f"></i>failing</span><span><i style="background:#e6a23c"></i>terminating</span><span><i style="background:#c0392b;border-radius:6px"></i>Warning event</span><span><i style="background:#5d6675;border-radius:6px"></i>Normal event</span><span><i style="background:#c0392b;width:3px"></i>symptom held</span><span><i style="background:#1f7a45;width:3px"></i>converged</span></p>"#;

/// The report page of one trial.
#[must_use]
pub fn trial_html(o: &ScenarioOutcome) -> String {
    let mut body = String::new();
    let (class, verdict) = match &o.verdict {
        Verdict::Passed => ("passed", "passed".to_owned()),
        Verdict::Failed(f) => ("failed", format!("FAILED in {}", f.phase)),
        Verdict::Ignored(_) => ("ignored", "ignored".to_owned()),
    };
    let _ = writeln!(
        body,
        r#"<h1>{} <span class="{class}">{}</span></h1>"#,
        esc(&o.trial_name()),
        esc(&verdict)
    );
    body.push_str(&figures(o));
    body.push('\n');
    match &o.verdict {
        Verdict::Failed(f) => {
            let mut text = format!("{}: {}\nexpectation: {}", f.phase, f.summary, f.expectation);
            for m in &f.mismatches {
                let _ = write!(text, "\n  {m}");
            }
            let _ = writeln!(body, "<pre class=\"failure\">{}</pre>", esc(&text));
        }
        Verdict::Ignored(why) => {
            let _ = writeln!(body, "<p>{}</p>", esc(why));
        }
        Verdict::Passed => {}
    }
    let _ = writeln!(
        body,
        r#"<p class="timeline-text">phases: {}</p>"#,
        esc(&super::text::timeline(o))
    );
    match &o.timeline {
        Some(t) => timeline_body(&mut body, t),
        None => body.push_str("<p>No timeline was recorded for this trial.</p>\n"),
    }
    page(&format!("relapse: {}", o.trial_name()), &body)
}

fn timeline_body(body: &mut String, t: &Timeline) {
    let span = t
        .runs
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or_default()
        .max(Duration::from_secs(1));
    let _ = writeln!(
        body,
        "<p>Times are {} since each cluster was provisioned. Hover over a band, state, event or marker for its text.</p>",
        t.time_base.as_str()
    );
    body.push_str(LEGEND);
    body.push('\n');
    for (i, run) in t.runs.iter().enumerate() {
        let _ = writeln!(
            body,
            r#"<section class="run" id="run-{i}"><h2>{}</h2>"#,
            esc(&run.label)
        );
        run_svg(body, run, span);
        body.push_str("</section>\n");
    }
}

/// The index page of a report directory.
#[must_use]
pub fn index_html(trials: &[(String, TrialSummary)]) -> String {
    let mut body = String::from(
        "<h1>relapse timeline reports</h1>\n<table>\n<tr><th>trial</th><th>result</th><th>time to symptom</th><th>time to converge</th><th>settle</th><th>cluster time</th></tr>\n",
    );
    let secs = |s: Option<f64>| {
        s.map_or_else(
            || "–".to_owned(),
            |s| human_duration(Duration::from_secs_f64(s.max(0.0))),
        )
    };
    for (file, t) in trials {
        let settle = t.settle.as_ref().map_or_else(
            || "–".to_owned(),
            |s| {
                let d = human_duration(Duration::from_secs_f64(s.seconds.max(0.0)));
                if s.held {
                    format!("held {d}")
                } else {
                    format!("broke after {d}")
                }
            },
        );
        let result = match &t.failed_phase {
            Some(p) => format!("FAILED in {p}"),
            None => t.result.clone(),
        };
        let _ = writeln!(
            body,
            r#"<tr><td><a href="{}">{}</a></td><td class="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(file),
            esc(&t.trial),
            esc(&t.result),
            esc(&result),
            secs(t.time_to_symptom_seconds),
            secs(t.time_to_converge_seconds),
            esc(&settle),
            secs(Some(t.cluster_seconds)),
        );
    }
    body.push_str("</table>\n");
    page("relapse timeline reports", &body)
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // Written beside it and renamed over it: a reader never sees half a file.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    // Secret values are redacted: the report is for anyone who can read the directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Writes `outcome`'s report into `dir` (created if needed) with a summary beside it, and
/// rewrites the directory's `index.html` from every summary there (other processes may write
/// to the same directory: the index is rewritten under a lock). Returns the report's path.
///
/// # Errors
/// When a file cannot be written.
pub fn write_trial_report(dir: &Path, outcome: &ScenarioOutcome) -> Result<PathBuf, ReportError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let dir = std::path::absolute(dir).map_err(err(dir))?;
    let stem = file_stem(&outcome.trial_name());
    let path = dir.join(format!("{stem}.html"));
    write(&path, &trial_html(outcome))?;
    let mut summary = TrialSummary::of(outcome);
    summary.report = Some(path.display().to_string());
    let summary_path = dir.join(format!("{stem}.json"));
    write(
        &summary_path,
        &serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )?;
    let lock_path = dir.join(".index.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(err(&lock_path))?;
    lock.lock().map_err(err(&lock_path))?;
    let mut trials: Vec<(String, TrialSummary)> = std::fs::read_dir(&dir)
        .map_err(err(&dir))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let p = entry.path();
            if p.extension().is_none_or(|e| e != "json") {
                return None;
            }
            let t: TrialSummary = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
            let html = format!("{}.html", p.file_stem()?.to_string_lossy());
            Some((html, t))
        })
        .collect();
    trials.sort_by(|a, b| a.1.trial.cmp(&b.1.trial));
    let written = write(&dir.join(INDEX), &index_html(&trials));
    drop(lock);
    written?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_get_their_colours() {
        assert_eq!(state_class("Ready"), "st-ok");
        assert_eq!(state_class("Running"), "st-run");
        assert_eq!(state_class("CrashLoopBackOff"), "st-bad");
        assert_eq!(state_class("ImagePullBackOff"), "st-bad");
        assert_eq!(state_class("Init:0/1"), "st-wait");
        assert_eq!(state_class("Init:CrashLoopBackOff"), "st-bad");
        assert_eq!(state_class("1/1 ready"), "st-ok");
        assert_eq!(state_class("0/1 ready"), "st-wait");
        assert_eq!(
            state_class("Progressing=False (ProgressDeadlineExceeded)"),
            "st-bad"
        );
        assert_eq!(state_class("gone"), "st-none");
    }

    #[test]
    fn names_are_shortened_in_the_middle_and_escaped() {
        assert_eq!(shorten("abcdefghij", 5), "ab…ij");
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            file_stem("sim::area/name::mutant::m"),
            "sim__area__name__mutant__m"
        );
    }

    #[test]
    fn ticks_stay_few() {
        assert_eq!(tick_step(Duration::from_secs(9)), Duration::from_secs(1));
        assert_eq!(tick_step(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(
            tick_step(Duration::from_secs(3000)),
            Duration::from_secs(300)
        );
    }
}
