//! The QC report of `u2ad detect` in a real browser: headless Chromium loads it without a
//! script error or a blocked request, shows the first subject, and moves to another subject
//! through the address (`#sub-…`) as the arrow keys do. The screenshot is kept at
//! `target/tmp/detect_report.png` for a person to look at.
//!
//! Skips (printing "SKIPPED: chromium not installed") where there is no `chromium` on the path.

use std::path::{Path, PathBuf};
use std::process::Command;

use u2ad_data::sample_file;

mod common;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

fn headless(browser: &Path, profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    let mut command = Command::new(browser);
    command.args([
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
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.args(extra).arg(url);
    command.output().expect("chromium runs")
}

/// Console errors, failed loads and blocked requests in Chromium's log.
fn page_problems(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("Refused to")
                || l.contains("ERR_")
                || (l.contains(":CONSOLE(") && l.to_lowercase().contains("error"))
        })
        .map(String::from)
        .collect()
}

#[test]
fn the_report_loads_in_chromium_and_shows_the_first_subject() {
    let Some(browser) = chromium() else {
        println!("SKIPPED: chromium not installed");
        eprintln!("SKIPPED: chromium not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path());
    let out = dir.path().join("detect");
    let cohort = sample_file("spine-t2");
    let output = Command::new(env!("CARGO_BIN_EXE_u2ad"))
        .args(["detect", cohort.to_str().unwrap(), "--model", model.to_str().unwrap(), "--out", out.to_str().unwrap()])
        // Two-sided AU: a random model reconstructs the cord too bright, and the default
        // hyperintense-only map would leave the AU panel of the screenshot empty.
        .args(["--include", "sub-errsm30", "--include", "sub-errsm23", "--threshold", "0.002", "--polarity", "both", "--quiet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = out.join("qc_report.html");
    let url = format!("file://{}", report.display());

    // The DOM after the script ran: ready, first subject shown, no error in the log.
    let profile = dir.path().join("profile");
    let dom = headless(&browser, &profile, &["--dump-dom".into()], &url);
    let html = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(html.contains("data-ready=\"1\""), "the script ran to its end; log:\n{log}");
    assert!(
        html.contains("<section class=\"subject shown\" id=\"subject-0\" data-subject=\"sub-errsm23\""),
        "first subject shown"
    );
    assert_eq!(html.matches("class=\"subject shown\"").count(), 1, "one subject at a time");
    assert!(page_problems(&log).is_empty(), "problems: {:?}", page_problems(&log));

    // The address picks the subject (the arrow keys set it the same way).
    let second = headless(&browser, &profile, &["--dump-dom".into()], &format!("{url}#sub-errsm30"));
    let html = String::from_utf8_lossy(&second.stdout);
    assert!(html.contains("<section class=\"subject shown\" id=\"subject-1\" data-subject=\"sub-errsm30\""));
    assert!(html.contains("<tr class=\"row current\" data-index=\"1\">"));

    // A screenshot for people: the first subject's figures.
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("detect_report.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = headless(
        &browser,
        &profile,
        &[format!("--screenshot={}", screenshot.display()), "--window-size=1280,1600".into(), "--hide-scrollbars".into()],
        &url,
    );
    assert!(page_problems(&String::from_utf8_lossy(&shot.stderr)).is_empty());
    let image = image::open(&screenshot).expect("a screenshot").to_rgb8();
    assert_eq!((image.width(), image.height()), (1280, 1600));
    // The figures are there: many distinct grey levels (the MRI), not a blank page.
    let greys: std::collections::HashSet<u8> =
        image.pixels().filter(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]).map(|p| p.0[0]).collect();
    assert!(greys.len() > 100, "{} grey levels", greys.len());
    println!("screenshot: {}", screenshot.display());
}
