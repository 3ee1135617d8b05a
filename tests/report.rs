//! The timeline report of the shipped scenarios, rendered through the runner as `relapse run
//! --report` does: its structure read back from the markup (phase bands, lanes, the symptom
//! marker after the break's first step, the converge marker after the fix's, none in the
//! counterfactual), and a screenshot in headless Chromium showing the bands and lanes drawn,
//! with no console message. The screenshot trial is ignored, with the reason, where Chromium
//! is not installed.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed setup step in a test aborts it with its message"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};
use quick_xml::events::Event;
use relapse::backend::BackendKind;
use relapse::run::outcome::Verdict;
use relapse::run::snapshot_file::UpdateMode;
use relapse::run::{KubeconfigTarget, Plan, RunOptions, Runner, SnapshotSettings};
use relapse::scenario;

/// The scenario whose report is checked: a stuck rollout with a long break, a fix, a settle
/// window and a counterfactual that never converges.
const SCENARIO: &str = "storage/rwo-rollout-deadlock.yaml";

const CHROMIUM: &str = "chromium";

/// Where headless Chromium is, or why the screenshot trial cannot run.
fn chromium() -> Result<PathBuf, String> {
    relapse::backend::find_on_path(CHROMIUM)
        .ok_or_else(|| format!("{CHROMIUM} is not installed (Debian: apt-get install chromium)"))
}

/// The report directory (kept for the process) and the trial's report.
fn report() -> &'static (tempfile::TempDir, PathBuf) {
    static REPORT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    REPORT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = scenario::load(
            &root.join("scenarios").join(SCENARIO),
            &root.join("scenarios"),
        )
        .unwrap_or_else(|e| panic!("{}", scenario::render(&e)));
        let dir = tempfile::tempdir().unwrap();
        let options = RunOptions {
            snapshots: SnapshotSettings {
                dir: root.join("snapshots"),
                mode: UpdateMode::No,
            },
            target: KubeconfigTarget::None,
            allow_cluster_scoped: false,
            require_k3d: false,
            report_dir: Some(dir.path().to_path_buf()),
        };
        let plan = Plan::new(&[Arc::new(loaded)], &[BackendKind::Sim], &options);
        let trial = plan
            .trials
            .iter()
            .find(|t| t.mutant.is_none())
            .expect("the scenario's trial");
        let outcome = Runner::new(options).run(trial, false).outcome;
        assert_eq!(outcome.verdict, Verdict::Passed, "{outcome:?}");
        let path = outcome.report.expect("the runner names the report");
        (dir, path)
    })
}

/// One element of interest in the report, by its `data-*` attributes.
#[derive(Debug, Default, Clone)]
struct Element {
    attrs: BTreeMap<String, String>,
}

impl Element {
    fn get(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    fn ms(&self, name: &str) -> u64 {
        self.get(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} of {:?}", self.attrs))
    }
}

/// What the report draws for one run (one `<svg data-run>`).
#[derive(Debug, Default)]
struct Run {
    label: String,
    bands: Vec<Element>,
    marks: Vec<Element>,
    lanes: Vec<Element>,
    states: usize,
    events: usize,
}

/// Parses the report as XML (it is well-formed by design) into its runs.
fn parse(html: &str) -> Vec<Run> {
    let mut reader = quick_xml::Reader::from_str(html);
    let mut runs: Vec<Run> = Vec::new();
    loop {
        let event = reader.read_event().expect("the report is well-formed XML");
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => e.clone(),
            Event::Eof => break,
            _ => continue,
        };
        let mut attrs = BTreeMap::new();
        for a in element.attributes() {
            let a = a.expect("a well-formed attribute");
            attrs.insert(
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .expect("escaped text")
                    .into_owned(),
            );
        }
        let el = Element { attrs };
        if element.name().as_ref() == b"svg" {
            runs.push(Run {
                label: el.get("data-run").to_owned(),
                ..Run::default()
            });
            continue;
        }
        let Some(run) = runs.last_mut() else { continue };
        match el.get("data-kind") {
            "band" => run.bands.push(el),
            "mark" => run.marks.push(el),
            "lane" => run.lanes.push(el),
            "state" => run.states += 1,
            "event" => run.events += 1,
            _ => {}
        }
    }
    runs
}

fn band<'a>(run: &'a Run, name: &str) -> &'a Element {
    run.bands
        .iter()
        .find(|b| b.get("data-name") == name)
        .unwrap_or_else(|| panic!("no {name} band in {}: {:?}", run.label, run.bands))
}

fn structure() -> Result<(), Failed> {
    let (dir, path) = report();
    let html = std::fs::read_to_string(path)?;
    // Self-contained: nothing is fetched, nothing runs.
    for outside in ["http://", "https://", "<script", "<link", "src=\""] {
        let allowed = ["http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"];
        let mut rest = html.clone();
        for a in allowed {
            rest = rest.replace(a, "");
        }
        assert!(!rest.contains(outside), "the report contains {outside}");
    }
    let runs = parse(&html);
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["fixed run", "counterfactual (no fix)"]);

    let fixed = &runs[0];
    let names: Vec<&str> = fixed.bands.iter().map(|b| b.get("data-name")).collect();
    assert_eq!(names, ["setup", "break", "fix", "converge", "settle"]);
    let lane_names: Vec<&str> = fixed.lanes.iter().map(|l| l.get("data-lane")).collect();
    assert!(
        lane_names.contains(&"Deployment monitoring/grafana"),
        "{lane_names:?}"
    );
    assert!(
        fixed
            .lanes
            .iter()
            .filter(|l| l.get("data-lane-kind") == "pod")
            .count()
            >= 2,
        "the old and the new pod: {lane_names:?}"
    );
    assert!(fixed.states >= 4 && fixed.events >= 3, "{fixed:?}");
    let break_start = band(fixed, "break").ms("data-start-ms");
    let fix_start = band(fixed, "fix").ms("data-start-ms");
    let marks = |run: &Run, kind: &str| -> Vec<u64> {
        run.marks
            .iter()
            .filter(|m| m.get("data-mark") == kind)
            .map(|m| m.ms("data-at-ms"))
            .collect()
    };
    let symptoms = marks(fixed, "symptom");
    assert!(!symptoms.is_empty(), "no symptom marker");
    assert!(
        // Simulated time stands still while steps are applied: a symptom can show at the
        // instant of the break's first step, never before it.
        symptoms.iter().all(|&t| t >= break_start && t <= fix_start),
        "symptoms {symptoms:?} not between the break ({break_start}) and the fix ({fix_start})"
    );
    let converged = marks(fixed, "converged");
    assert_eq!(converged.len(), 1, "{:?}", fixed.marks);
    assert!(converged[0] > fix_start, "{converged:?} before the fix");
    assert_eq!(
        band(fixed, "settle").ms("data-start-ms"),
        converged[0],
        "the settle window starts at convergence"
    );

    let counterfactual = &runs[1];
    let names: Vec<&str> = counterfactual
        .bands
        .iter()
        .map(|b| b.get("data-name"))
        .collect();
    assert_eq!(names, ["setup", "break", "converge"]);
    assert!(!counterfactual.lanes.is_empty());
    assert!(!marks(counterfactual, "symptom").is_empty());
    assert!(
        marks(counterfactual, "converged").is_empty(),
        "the counterfactual converged: {:?}",
        counterfactual.marks
    );
    // Not converging is what the counterfactual must do: its band passed.
    assert_eq!(band(counterfactual, "converge").get("data-passed"), "true");

    // The index links the report and carries the figures.
    let index = std::fs::read_to_string(dir.path().join("index.html"))?;
    let file = path.file_name().unwrap().to_string_lossy();
    assert!(index.contains(&format!("href=\"{file}\"")), "{index}");
    assert!(index.contains("sim::storage/rwo-rollout-deadlock"));
    parse(&index);
    Ok(())
}

/// Pixels of `rgb` (within a small tolerance) in the rows `rows` and columns `cols`.
fn count(
    img: &Image,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    rgb: [u8; 3],
) -> usize {
    let mut n = 0;
    for y in rows.filter(|y| *y < img.height) {
        for x in cols.clone().filter(|x| *x < img.width) {
            let p = img.pixel(x, y);
            if p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 6) {
                n += 1;
            }
        }
    }
    n
}

struct Image {
    width: usize,
    height: usize,
    channels: usize,
    data: Vec<u8>,
}

impl Image {
    fn decode(path: &Path) -> Self {
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(path).expect("the screenshot"),
        ));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut data = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut data).expect("a frame");
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        Self {
            width: info.width as usize,
            height: info.height as usize,
            channels: info.color_type.samples(),
            data,
        }
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * self.channels;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Rows holding at least `min` pixels of `rgb` right of the lane labels.
    fn rows_with(&self, rgb: [u8; 3], min: usize) -> Vec<usize> {
        (0..self.height)
            .filter(|&y| count(self, y..y + 1, 300..self.width, rgb) >= min)
            .collect()
    }
}

/// The break band's and a ready pod's colours (the report's CSS).
const BREAK_BAND: [u8; 3] = [0xf6, 0xd5, 0xd2];
const READY: [u8; 3] = [0x3a, 0xa4, 0x6a];

/// Dark (text) pixels in the rows `rows` and columns `cols`.
fn dark(img: &Image, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> usize {
    rows.filter(|y| *y < img.height)
        .flat_map(|y| cols.clone().map(move |x| (x, y)))
        .filter(|&(x, _)| x < img.width)
        .filter(|&(x, y)| img.pixel(x, y).iter().all(|c| *c < 140))
        .count()
}

fn screenshot(chromium: &Path) -> Result<(), Failed> {
    let (_, path) = report();
    let tmp = tempfile::tempdir()?;
    let png = tmp.path().join("timeline.png");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", path.display()))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {stderr}");
    // Console messages (script errors, failed loads) are logged as `CONSOLE` lines.
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let img = Image::decode(&png);
    assert_eq!((img.width, img.height), (1400, 900));
    // Two runs: the fixed run's band row, then the counterfactual's, each a run of rows.
    let band_rows = img.rows_with(BREAK_BAND, 200);
    assert!(!band_rows.is_empty(), "no break band drawn");
    let first = band_rows[0];
    let second = band_rows
        .iter()
        .copied()
        .find(|&y| y > first + 60)
        .unwrap_or_else(|| panic!("one band row only: {band_rows:?}"));
    assert!((100..450).contains(&first), "band row at {first}");
    // Lanes under each band row: ready pods drawn across the plot, names in the label column.
    for top in [first, second] {
        let lanes = top + 30..top + 150;
        let ready = count(&img, lanes.clone(), 300..1400, READY);
        assert!(ready > 2_000, "ready lanes below row {top}: {ready} pixels");
        let ink = dark(&img, lanes, 16..290);
        assert!(ink > 200, "lane names below row {top}: {ink} pixels");
    }
    Ok(())
}

/// Every shipped scenario's report on the simulated cluster: each symptom marker at or after
/// the break's first step and before the fix, one converge marker after the fix's first step,
/// and no converge marker in the counterfactual (when the scenario has one).
fn markers(loaded: scenario::LoadedScenario) -> Result<(), Failed> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir()?;
    let options = RunOptions {
        snapshots: SnapshotSettings {
            dir: root.join("snapshots"),
            mode: UpdateMode::No,
        },
        target: KubeconfigTarget::None,
        allow_cluster_scoped: false,
        require_k3d: false,
        report_dir: Some(dir.path().to_path_buf()),
    };
    let plan = Plan::new(&[Arc::new(loaded)], &[BackendKind::Sim], &options);
    let trial = plan
        .trials
        .iter()
        .find(|t| t.mutant.is_none())
        .ok_or("no trial")?;
    if trial.decision != relapse::run::Decision::Run {
        return Ok(());
    }
    let outcome = Runner::new(options).run(trial, false).outcome;
    if outcome.verdict != Verdict::Passed {
        return Err(format!("{:?}", outcome.verdict).into());
    }
    let path = outcome.report.ok_or("the runner names no report")?;
    let runs = parse(&std::fs::read_to_string(path)?);
    let fixed = runs.first().ok_or("no run drawn")?;
    let break_start = band(fixed, "break").ms("data-start-ms");
    let fix_start = band(fixed, "fix").ms("data-start-ms");
    let marks = |run: &Run, kind: &str| -> Vec<u64> {
        run.marks
            .iter()
            .filter(|m| m.get("data-mark") == kind)
            .map(|m| m.ms("data-at-ms"))
            .collect()
    };
    let symptoms = marks(fixed, "symptom");
    if symptoms.is_empty() || symptoms.iter().any(|&t| t < break_start || t > fix_start) {
        return Err(format!(
            "symptoms {symptoms:?} not between the break ({break_start}) and the fix ({fix_start})"
        )
        .into());
    }
    let converged = marks(fixed, "converged");
    if converged.len() != 1 || converged[0] < fix_start {
        return Err(format!("converged at {converged:?}, the fix at {fix_start}").into());
    }
    if let Some(counterfactual) = runs.iter().find(|r| r.label.starts_with("counterfactual")) {
        let c = marks(counterfactual, "converged");
        if !c.is_empty() {
            return Err(format!("the counterfactual converged at {c:?}").into());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = vec![Trial::test("report::structure", structure)];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let (all, errors) = scenario::load_suite(&[root]).expect("the suite loads");
    assert!(errors.is_empty(), "the shipped scenarios load");
    for loaded in all {
        let name = format!("report::markers::{}", loaded.id);
        trials.push(Trial::test(name, move || markers(loaded)));
    }
    let shot = match chromium() {
        Ok(path) => Trial::test("report::screenshot", move || screenshot(&path)),
        Err(reason) => {
            if !args.list && !args.ignored && !args.include_ignored {
                println!("ignored report::screenshot: {reason}");
            }
            // Run although ignored (`--include-ignored`): it cannot, and must not pass.
            Trial::test("report::screenshot", move || {
                Err(Failed::from(format!("cannot run here: {reason}")))
            })
            .with_ignored_flag(true)
        }
    };
    trials.push(shot);
    libtest_mimic::run(&args, trials).exit_code()
}
