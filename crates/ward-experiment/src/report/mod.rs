//! `ward report <run dir>`: one self-contained HTML page a clinician can read: what was
//! trained where, per-site performance with intervals, calibration, conformal coverage
//! and deferral, uncertainty, fairness across sites, privacy spent, the poisoning audit
//! and acquisition-shift robustness.
//!
//! The page has no script, no stylesheet or image from elsewhere and no link out: its
//! figures are inline SVG, its only URL scheme is `data:`. Each section says when the
//! run has no data for it, and how to get it.
//!
//! # Extension point
//! A section is a [`Section`]: an id (the HTML anchor), a title, and
//! [`Section::render`], which reads the [`RunArtifacts`] and returns
//! [`Body::Present`] with its markup or [`Body::Absent`] with the reason. The page is
//! [`default_sections`] in order; a later feature adds its own section by pushing onto
//! that list (or passes its own list to [`render_page`]). See `docs/report.md`.

mod charts;
mod sections;

use std::path::{Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use ward_fl::SiteRecord;
use ward_report::{Summary, files};

use crate::evidence::{self, Evidence};
use crate::options::ReportArgs;
use crate::{EngineOptions, Error, FinishedRun, Observer, Result, engine_options, say};

pub use sections::default_sections;

/// What a section may read: the run directory's files, parsed.
#[derive(Debug)]
pub struct RunArtifacts {
    /// The run directory.
    pub dir: PathBuf,
    /// The run, opened (its resolved experiment and the data it trained on).
    pub run: FinishedRun,
    /// `summary.json`.
    pub summary: Summary,
    /// `metrics.jsonl`, every row.
    pub metrics: Vec<SiteRecord>,
    /// `privacy.json`, when the run had a privacy mechanism.
    pub privacy: Option<serde_json::Value>,
    /// `robustness/robustness.json`, when `ward robustness` was run on it.
    pub robustness: Option<serde_json::Value>,
    /// The evidence on the final models' predictions.
    pub evidence: Evidence,
}

/// A section's content.
#[derive(Debug)]
pub enum Body {
    /// The section's markup.
    Present(Markup),
    /// Why the run has nothing for it (shown in place of the content).
    Absent(String),
}

/// One section of the report.
pub trait Section {
    /// The HTML id (anchor) of the section, e.g. `calibration`.
    fn id(&self) -> &'static str;
    /// Its heading.
    fn title(&self) -> &'static str;
    /// Its content for this run.
    ///
    /// # Errors
    /// Failing to draw a figure.
    fn render(&self, run: &RunArtifacts) -> Result<Body>;
}

/// Reads `metrics.jsonl`, naming the line of a bad row.
fn read_metrics(path: &Path) -> Result<Vec<SiteRecord>> {
    let text = fs_err::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::User(format!(
                    "{}:{}: not a metrics row: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn read_optional_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(ward_report::read_json(path)?))
}

impl RunArtifacts {
    /// Opens the run in `dir` and computes its evidence.
    ///
    /// # Errors
    /// A directory that is not a finished run (no config, model or summary), a corrupt
    /// file (named), a model that cannot be scored.
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<Self> {
        let run = FinishedRun::open(dir, "ward report", opts)?;
        let summary_path = dir.join(files::SUMMARY);
        if !summary_path.exists() {
            return Err(Error::User(format!(
                "{}: no {} here: the run has not finished (resume it with ward run --resume)",
                dir.display(),
                files::SUMMARY
            )));
        }
        let summary: Summary = ward_report::read_json(&summary_path)?;
        let metrics = read_metrics(&dir.join(files::METRICS))?;
        let privacy = read_optional_json(&dir.join(files::PRIVACY))?;
        let robustness = read_optional_json(&dir.join("robustness").join("robustness.json"))?;
        let evidence = evidence::compute_for(&run, opts)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            run,
            summary,
            metrics,
            privacy,
            robustness,
            evidence,
        })
    }
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:right}th{background:#f0f0f6}
td:first-child,th:first-child{text-align:left}
.absent{color:#555;font-style:italic;background:#f7f7f7;padding:.6em;border-left:4px solid #bbb}
.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.6em}
.note{color:#444;font-size:.92em}
nav ol{columns:2}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.9em;color:#444}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{flex:1 1 480px}
";

/// The whole page for `run` with `sections` in order.
///
/// # Errors
/// What a section's [`Section::render`] returns.
pub fn render_page(run: &RunArtifacts, sections: &[Box<dyn Section>]) -> Result<String> {
    let mut bodies = Vec::new();
    for s in sections {
        bodies.push((s.id(), s.title(), s.render(run)?));
    }
    let s = &run.summary;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Ward report: " (s.experiment) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Ward report: " (s.experiment) }
                    p.note {
                        (s.strategy) " · " (s.rounds) " rounds · seed " (s.seed) " · "
                        (s.model) " · Ward " (s.ward_version) " · run directory "
                        code { (run.dir.display()) }
                    }
                }
                nav {
                    h2 { "Contents" }
                    ol {
                        @for (id, title, body) in &bodies {
                            li {
                                a href={ "#" (id) } { (title) }
                                @if matches!(body, Body::Absent(_)) { " (not available)" }
                            }
                        }
                    }
                }
                main {
                    @for (id, title, body) in &bodies {
                        section id=(id) {
                            h2 { (title) }
                            @match body {
                                Body::Present(m) => { (m) }
                                Body::Absent(why) => { p.absent { (why) } }
                            }
                        }
                    }
                }
                footer {
                    p.note {
                        "Made by " code { "ward report" } " from the files of the run directory; "
                        "every number is recomputed from config.toml, the model files and "
                        "the data the run names. evidence.json beside this page holds them "
                        "all."
                    }
                }
            }
        }
    };
    Ok(page.into_string())
}

/// `ward report`: writes the page (and `evidence.json` in the run directory).
///
/// # Errors
/// As [`RunArtifacts::open`]; writing the files.
pub fn report(args: ReportArgs, obs: &mut dyn Observer) -> Result<()> {
    let opts = engine_options(&args.engine)?;
    let run = RunArtifacts::open(&args.run, opts)?;
    ward_report::write_json_atomic(&args.run.join(files::EVIDENCE), &run.evidence)?;
    let html = render_page(&run, &default_sections())?;
    let out = args.out.unwrap_or_else(|| args.run.join(files::REPORT));
    ward_core::fsutil::write_atomic(&out, html.as_bytes())?;
    say(obs, format!("written: {}", out.display()));
    say(
        obs,
        format!("written: {}", args.run.join(files::EVIDENCE).display()),
    );
    Ok(())
}

/// Writes `evidence.json` for a finished run (what `ward run` does after training).
///
/// # Errors
/// As [`evidence::compute`].
pub fn write_evidence(dir: &Path, opts: EngineOptions) -> Result<Evidence> {
    let e = evidence::compute(dir, opts)?;
    ward_report::write_json_atomic(&dir.join(files::EVIDENCE), &e)?;
    Ok(e)
}
