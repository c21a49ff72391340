//! `ward report`: a fed-heart-disease run with a calibration split, its evidence.json,
//! and the HTML page checked statically (every section, no URL but `data:` and
//! fragments), by a validator (Debian's `tidy`) and rendered in headless Chromium (a
//! screenshot is kept in `target/test-artefacts/`).
//!
//! `.ci/run` installs chromium and tidy and sets `WARD_REQUIRE_BROWSER=1`, so there a
//! missing tool fails the test; elsewhere the tool's part is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{json, repo, run_ok, ward};

/// The section ids of `ward_experiment::report::default_sections`, in order.
const SECTIONS: [&str; 10] = [
    "overview",
    "performance",
    "calibration",
    "conformal",
    "deferral",
    "uncertainty",
    "fairness",
    "privacy",
    "poisoning",
    "robustness",
];

fn required() -> bool {
    std::env::var_os("WARD_REQUIRE_BROWSER").is_some_and(|v| v == "1")
}

/// The path of `tool` on PATH or at `/usr/bin`, or `None` (a failure when required).
#[allow(clippy::print_stderr)] // a skipped check says so in the test's output
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !required(),
            "{name} is not installed, and WARD_REQUIRE_BROWSER=1"
        );
        // A skipped check says so in the test output.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping the {name} check: {name} is not installed (.ci/run installs it)");
        }
    }
    found
}

/// Every `src="..."` and `href="..."` value of `html`.
fn urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=", "href="] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let quote = rest.chars().next().unwrap_or(' ');
            let value: String = if quote == '"' || quote == '\'' {
                rest[1..].chars().take_while(|&c| c != quote).collect()
            } else {
                rest.chars()
                    .take_while(|c| !c.is_whitespace() && *c != '>')
                    .collect()
            };
            out.push(value);
        }
    }
    out
}

fn run_heart_with_calibration(dir: &Path) {
    let o = run_ok(ward().args(["run", "--quiet", "--out"]).arg(dir).args([
        "--set",
        "evidence.calibration-fraction=0.25",
        "--set",
        "evidence.alpha=0.2",
        "--set",
        "evidence.group-column=sex",
        // An MLP trained with dropout, so the report has MC dropout.
        "--set",
        "model.kind=\"mlp\"",
        "--set",
        "model.hidden=[16]",
        "--set",
        "model.dropout=0.2",
    ]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("report: ward report {}", dir.display())),
        "ward run names the report command: {stdout}"
    );
}

#[test]
fn heart_report_renders_validates_and_requests_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_heart_with_calibration(&dir);

    // evidence.json from ward run: every site, conformal per site, a temperature.
    let e = json(&dir.join("evidence.json"));
    let sites = e["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 4, "{e}");
    for s in sites {
        assert!(s["n_calibration"].as_u64().unwrap() > 0, "{s}");
        let acc = &s["accuracy"];
        assert!(acc["lo"].as_f64().unwrap() <= acc["estimate"].as_f64().unwrap());
        let mc = &s["mc_dropout"];
        assert_eq!(mc["samples"], 30, "{s}");
        let mi = mc["mutual_information"]["mean"].as_f64().unwrap();
        let h = mc["entropy"]["mean"].as_f64().unwrap();
        assert!(mi > 0.0 && mi <= h, "0 < MI <= total entropy: {mc}");
    }
    assert!(
        e["recalibration"]["temperature"]["temperature"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(e["conformal"]["sites"].as_array().unwrap().len(), 4);

    let page = tmp.path().join("report.html");
    let o = run_ok(ward().arg("report").arg(&dir).arg("--out").arg(&page));
    assert!(String::from_utf8_lossy(&o.stdout).contains("report.html"));
    let html = fs_err::read_to_string(&page).unwrap();

    // Every section, in order, present (this run has no privacy mechanism and no
    // robustness run: those two say so).
    let mut at = 0;
    for id in SECTIONS {
        let i = html[at..]
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("section {id} missing or out of order"));
        at += i;
    }
    assert!(html.contains("no privacy mechanism"));
    assert!(
        html.contains("By sex") && html.contains("equalized odds"),
        "group table"
    );
    assert!(html.matches("<svg").count() >= 5, "figures inline");
    assert!(html.contains("<h3>MC dropout</h3>"), "MC dropout table");
    for site in ["Cleveland", "Hungary", "Switzerland", "VA Long Beach"] {
        assert!(html.contains(site), "{site}");
    }
    // No request: every src and href is a fragment or data:, no script, no url().
    let links = urls(&html);
    assert!(
        !links.is_empty(),
        "the table of contents links to the sections"
    );
    for u in &links {
        assert!(
            u.starts_with('#') || u.starts_with("data:"),
            "a src/href that is not a fragment or data: URL: {u}"
        );
    }
    assert!(!html.contains("<script") && !html.contains("url("));

    validate_with_tidy(&page);
    render_in_chromium(&page, tmp.path());
}

/// Debian's tidy: no errors and no warnings.
fn validate_with_tidy(page: &Path) {
    let Some(tidy) = tool("tidy") else { return };
    let o = Command::new(tidy)
        .args(["-q", "-e", "--show-warnings", "yes"])
        .arg(page)
        .output()
        .expect("tidy starts");
    let report = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "tidy found problems in the report:\n{report}"
    );
}

/// Headless Chromium: the rendered DOM has every section and its figures; a screenshot
/// is kept in `target/test-artefacts/report-fed-heart-disease.png`.
fn render_in_chromium(page: &Path, tmp: &Path) {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let url = format!("file://{}", page.display());
    let base = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.join("chromium").display()
        ));
    };
    let mut dump = Command::new(&chromium);
    base(&mut dump);
    let o = dump
        .args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url)
        .output()
        .expect("chromium starts");
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && dom.contains("</html>"),
        "chromium rendered nothing: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for id in SECTIONS {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "rendered DOM lacks {id}"
        );
    }
    assert!(dom.matches("<svg").count() >= 5);

    let artefacts = repo().join("target").join("test-artefacts");
    fs_err::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("report-fed-heart-disease.png");
    let _ = fs_err::remove_file(&shot);
    let mut snap = Command::new(&chromium);
    base(&mut snap);
    let o = snap
        .args(["--hide-scrollbars", "--window-size=1280,2400"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium starts");
    let png = fs_err::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn report_refuses_a_directory_that_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ward().arg("report").arg(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config.toml") && err.contains("ward report"),
        "{err}"
    );
}
