//! `u2ad <verb> --help` groups the flags every verb shares under the same headings.

mod common;

use common::{text, u2ad};

/// The help's sections: heading -> the long flags listed under it.
fn sections(verb: &str) -> Vec<(String, Vec<String>)> {
    let out = u2ad(&[verb, "--help"]);
    assert!(out.status.success(), "{verb} --help failed");
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in text(&out.stdout).lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            sections.push((line.trim_end_matches(':').to_string(), Vec::new()));
        } else if let (Some(flag), Some(last)) = (line.split_whitespace().find(|w| w.starts_with("--")), sections.last_mut()) {
            last.1.push(flag.trim_end_matches(',').to_string());
        }
    }
    sections
}

fn heading_of(sections: &[(String, Vec<String>)], flag: &str) -> String {
    sections.iter().find(|(_, flags)| flags.iter().any(|f| f == flag)).map(|(h, _)| h.clone()).unwrap_or_default()
}

#[test]
fn shared_flags_sit_under_the_same_heading_in_every_verb() {
    for (verb, expected) in [
        ("detect", &[("--include", "Input"), ("--cord", "Input"), ("--samples-per-patch", "Monte Carlo"), ("--mc-region", "Monte Carlo"), ("--pooling", "Scores and calls"), ("--reference-scores", "Scores and calls"), ("--device", "Run"), ("--seed", "Run"), ("--jobs", "Run"), ("--force", "Run")][..]),
        ("prepare", &[("--include", "Input"), ("--cord-offset-voxels", "Input"), ("--jobs", "Run"), ("--skip-failed", "Run")][..]),
        ("baseline", &[("--include", "Input"), ("--pooling", "Scores and calls"), ("--jobs", "Run")][..]),
        ("pretrain", &[("--config", "Training"), ("--batch-size", "Training"), ("--seed", "Run"), ("--device", "Run")][..]),
        ("adapt", &[("--config", "Training"), ("--seed", "Run"), ("--device", "Run")][..]),
        ("synth", &[("--include", "Input"), ("--seed", "Run"), ("--jobs", "Run")][..]),
        ("demo", &[("--seed", "Run"), ("--device", "Run")][..]),
    ] {
        let sections = sections(verb);
        for (flag, heading) in expected {
            assert_eq!(heading_of(&sections, flag), *heading, "u2ad {verb} --help: {flag}");
        }
    }
}
