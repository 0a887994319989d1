//! False positives per host, the participant the synthetic subjects were made from
//! ([`host_false_positives`]), and their table ([`host_markdown`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::detections::LevelCall;
use super::subject::SubjectResult;

/// False positives of one host (the participant the synthetic subjects were made from).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFalsePositives {
    pub host: String,
    pub subjects: usize,
    pub lesion_free_subjects: usize,
    /// Lesion-free subjects called positive.
    pub false_positive_patients: usize,
    /// In-view segments without a lesion, and those called positive.
    pub negative_segments: usize,
    pub false_positive_segments: usize,
    pub indeterminate_segments: usize,
}

/// Per-host false-positive counts, hosts in name order.
pub fn host_false_positives(results: &[SubjectResult]) -> Vec<HostFalsePositives> {
    let mut hosts: BTreeMap<&str, HostFalsePositives> = BTreeMap::new();
    for r in results {
        let entry = hosts.entry(&r.host).or_insert_with(|| HostFalsePositives {
            host: r.host.clone(),
            subjects: 0,
            lesion_free_subjects: 0,
            false_positive_patients: 0,
            negative_segments: 0,
            false_positive_segments: 0,
            indeterminate_segments: 0,
        });
        entry.subjects += 1;
        if !r.has_lesion() {
            entry.lesion_free_subjects += 1;
            entry.false_positive_patients += usize::from(r.patient_positive_call);
        }
        for s in r.segments.iter().filter(|s| s.call != LevelCall::OutOfFieldOfView) {
            entry.indeterminate_segments += usize::from(s.call == LevelCall::Indeterminate);
            if !s.lesion {
                entry.negative_segments += 1;
                entry.false_positive_segments += usize::from(s.call == LevelCall::Positive);
            }
        }
    }
    hosts.into_values().collect()
}

/// The per-host table of every method.
pub fn host_markdown(methods: &[(String, Vec<HostFalsePositives>)]) -> String {
    let mut out = String::from(
        "| method | host | subjects | false-positive patients / lesion-free | false-positive segments / lesion-free segments | indeterminate segments |\n\
         |---|---|---|---|---|---|\n",
    );
    for (method, hosts) in methods {
        for h in hosts {
            out.push_str(&format!(
                "| {method} | {} | {} | {}/{} | {}/{} | {} |\n",
                h.host,
                h.subjects,
                h.false_positive_patients,
                h.lesion_free_subjects,
                h.false_positive_segments,
                h.negative_segments,
                h.indeterminate_segments
            ));
        }
    }
    out
}
