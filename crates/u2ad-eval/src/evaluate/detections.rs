//! The cohort tables of a detection folder: the level calls and scores of `levels.csv` and the
//! patient calls and scores of `patients.csv` ([`read_detection_tables`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use u2ad_core::detect_outputs::{COHORT_LEVELS_CSV, COHORT_PATIENTS_CSV};
use u2ad_core::error::{CoreError, Result};
use u2ad_core::levels::DiscLevel;

/// A level call as written in `levels.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelCall {
    Positive,
    Negative,
    Indeterminate,
    OutOfFieldOfView,
}

impl LevelCall {
    fn parse(text: &str) -> Option<LevelCall> {
        match text {
            "positive" => Some(LevelCall::Positive),
            "negative" => Some(LevelCall::Negative),
            "indeterminate" => Some(LevelCall::Indeterminate),
            "out_of_fov" => Some(LevelCall::OutOfFieldOfView),
            _ => None,
        }
    }
}

/// The cohort tables of a detection folder.
#[derive(Debug, Clone, Default)]
pub struct DetectionTables {
    /// (subject, level) → (score, call).
    pub levels: BTreeMap<(String, DiscLevel), (Option<f64>, LevelCall)>,
    /// subject → (patient score, call is positive).
    pub patients: BTreeMap<String, (Option<f64>, bool)>,
}

fn read_table(path: &Path, required: &[&str]) -> Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| CoreError::input(path, format!("cannot read ({e})")))?;
    let headers: Vec<String> = reader.headers().map_err(|e| CoreError::input(path, e.to_string()))?.iter().map(str::to_string).collect();
    for column in required {
        if !headers.iter().any(|h| h == column) {
            return Err(CoreError::input(path, format!("no '{column}' column: not a u2ad detection table")));
        }
    }
    let rows = reader.records().collect::<std::result::Result<Vec<_>, _>>().map_err(|e| CoreError::input(path, e.to_string()))?;
    Ok((headers, rows))
}

fn optional_number(path: &Path, text: &str) -> Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| CoreError::input(path, format!("'{text}' is not a number")))
}

/// The column `name` when it exists and holds at least one value.
fn calibrated_column(headers: &[String], rows: &[csv::StringRecord], name: &str) -> Option<usize> {
    let index = headers.iter().position(|h| h == name)?;
    rows.iter().any(|r| r.get(index).is_some_and(|v| !v.is_empty())).then_some(index)
}

/// Reads `levels.csv` and `patients.csv` of a detection folder.
pub fn read_detection_tables(dir: &Path) -> Result<DetectionTables> {
    let mut tables = DetectionTables::default();
    let path = dir.join(COHORT_LEVELS_CSV);
    let (headers, rows) = read_table(&path, &["subject", "level", "score", "call"])?;
    let column = |name: &str| headers.iter().position(|h| h == name).expect("checked");
    // The calibrated z (one scale for every level, what the calls threshold) when the folder has
    // it (a fixed --threshold leaves it empty: then the score).
    let sc = calibrated_column(&headers, &rows, "z").unwrap_or_else(|| column("score"));
    let (s, l, c) = (column("subject"), column("level"), column("call"));
    for row in &rows {
        let level = DiscLevel::ALL
            .into_iter()
            .find(|d| d.name() == &row[l])
            .ok_or_else(|| CoreError::input(&path, format!("unknown level '{}'", &row[l])))?;
        let call = LevelCall::parse(&row[c]).ok_or_else(|| CoreError::input(&path, format!("unknown call '{}'", &row[c])))?;
        tables.levels.insert((row[s].to_string(), level), (optional_number(&path, &row[sc])?, call));
    }
    let path = dir.join(COHORT_PATIENTS_CSV);
    let (headers, rows) = read_table(&path, &["subject", "patient_score", "call"])?;
    let column = |name: &str| headers.iter().position(|h| h == name).expect("checked");
    let sc = calibrated_column(&headers, &rows, "patient_z").unwrap_or_else(|| column("patient_score"));
    let (s, c) = (column("subject"), column("call"));
    for row in &rows {
        tables.patients.insert(row[s].to_string(), (optional_number(&path, &row[sc])?, &row[c] == "positive"));
    }
    Ok(tables)
}
