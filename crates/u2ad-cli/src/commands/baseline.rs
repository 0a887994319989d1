//! `u2ad baseline`: a simple detector run through the same pipeline as U2AD, so that evaluation
//! and the QC report compare like with like.
//!
//! `--method intensity` ([`u2ad_core::baseline`]): the anomaly map is the robust z-score of the
//! cord's T2 signal against the other subjects' cord signal at the same disc level
//! (leave-one-subject-out), instead of |image − mean reconstruction|. Everything after the map is
//! `u2ad detect`'s: the same candidate filter, anomaly curve, segment and patient scores,
//! cohort-calibrated calls, and the same output folder (the layout of
//! [`u2ad_core::detect_outputs`]): NIfTI maps on the input grid, per-level and per-patient tables,
//! figures and `qc_report.html`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use u2ad_core::baseline::{intensity_baseline, CohortSubject, IntensityBaselineConfig};
use u2ad_core::cohort::{discover_bids, DiscoveryOptions};
use u2ad_core::dataset::{PreparedDataset, PreparedSample, SubjectMeta, SAMPLE_SIZE};
use u2ad_core::detect_outputs::{
    native_maps, score_maps, vertebra_lines, MapScoring, ScoredSubject, SubjectMaps, SubjectOutputs, COHORT_LEVELS_CSV,
    COHORT_PATIENTS_CSV, DATASET_DESCRIPTION, QC_REPORT_HTML,
};
use u2ad_core::levels::DiscLevel;
use u2ad_core::prepare::{prepare_subject, PrepareOptions};
use u2ad_core::scoring::{
    call_cohort, level_rows, CallConfig, IndeterminateReason, LevelPooling, PatientCall, SegmentCall, SliceSelection,
    SubjectDecision, Threshold, UncertaintyGate,
};
use u2ad_core::volume::{write_atomically, Volume, VoxelType};
use u2ad_report::figures::{curve_figure, maps_figure, CurveData, LevelSpan, OverlayLimits, RowLine, SliceMaps};
use u2ad_report::html::{render_report, Report, ReportFigure, ReportLevel, ReportSubject};

use super::Context;
use crate::progress;
use crate::sidecar::{command_line, write_sidecar};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineMethod {
    /// Robust z-score of the cord T2 signal against the other subjects' cord at the same disc level.
    Intensity,
}

impl BaselineMethod {
    pub fn name(self) -> &'static str {
        match self {
            BaselineMethod::Intensity => "intensity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingChoice {
    /// Each level's threshold from the same level of the other subjects.
    PerLevel,
    /// Every level's threshold from every level of the other subjects.
    Pooled,
}

#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
u2ad baseline --method intensity synth-cohort/ --out baseline-intensity/ --pooling pooled\n  \
u2ad evaluate --detections u2ad=detect/ --detections intensity=baseline-intensity/ --truth synth-cohort/\n\n\
The output folder has exactly the layout of `u2ad detect` (maps, tables, figures, qc_report.html); \
the anomaly map is the z-score, the reconstruction the signal the rule expects, the uncertainty map 0.")]
pub struct BaselineArgs {
    /// A BIDS dataset (sub-*/anat/*_T2w.nii.gz with labels under derivatives/labels/), or a
    /// prepared dataset (.u2ds) written by `u2ad prepare`.
    pub input: PathBuf,
    /// Which baseline.
    #[arg(long, value_enum, default_value = "intensity")]
    pub method: BaselineMethod,
    /// Output folder (the layout of `u2ad detect`).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Only these subjects (sub-XX); repeat for several. The baseline compares each subject with
    /// the others, so at least two are needed.
    #[arg(long)]
    pub include: Vec<String>,

    /// A fixed score threshold instead of the cohort calibration.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Target false-positive rate of the cohort-calibrated thresholds.
    #[arg(long, default_value_t = 0.05)]
    pub target_fpr: f64,
    /// Reference scores of a level's cohort threshold.
    #[arg(long, value_enum, default_value = "per-level")]
    pub pooling: PoolingChoice,
    /// Fewest reference scores to calibrate a threshold (else the level is indeterminate).
    #[arg(long, default_value_t = 10)]
    pub min_reference: usize,
    /// Only the sagittal sample with the largest cord makes the curve (default: every sample
    /// whose eroded cord has at least 100 pixels).
    #[arg(long)]
    pub mid_slice_only: bool,

    /// Subjects processed at once (threads; default: all cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
}

/// The prepared subjects of the input.
fn load_subjects(args: &BaselineArgs, context: &Context) -> anyhow::Result<Vec<(SubjectMeta, Vec<PreparedSample>)>> {
    let input = &args.input;
    if input.is_file() && input.extension().is_some_and(|e| e == "u2ds") {
        let dataset = PreparedDataset::read(input)?;
        let subjects: Vec<(SubjectMeta, Vec<PreparedSample>)> = dataset
            .meta
            .subjects
            .iter()
            .enumerate()
            .filter(|(_, meta)| args.include.is_empty() || args.include.contains(&meta.subject))
            .map(|(index, meta)| {
                let samples = dataset
                    .samples_of(index)
                    .into_iter()
                    .map(|i| {
                        let view = dataset.sample(i);
                        PreparedSample {
                            meta: *view.meta,
                            image: view.image.to_vec(),
                            roi: view.roi.to_vec(),
                            cord: view.cord.to_vec(),
                            csf: view.csf.to_vec(),
                            row_segment: view.row_segment.to_vec(),
                        }
                    })
                    .collect();
                (meta.clone(), samples)
            })
            .collect();
        return Ok(subjects);
    }
    let options = DiscoveryOptions { include: args.include.clone(), ..Default::default() };
    let files = discover_bids(input, &options)?;
    let bar = progress::bar(files.len() as u64, "prepare", context.quiet);
    let prepared: Vec<anyhow::Result<(SubjectMeta, Vec<PreparedSample>)>> = files
        .par_iter()
        .map(|f| {
            let result = prepare_subject(f, &PrepareOptions::default()).map(|p| (p.meta, p.samples));
            bar.inc(1);
            Ok(result?)
        })
        .collect();
    bar.finish_and_clear();
    prepared.into_iter().collect()
}

pub fn run(args: BaselineArgs, context: &Context) -> anyhow::Result<()> {
    let started = Instant::now();
    let calls = CallConfig {
        threshold: match args.threshold {
            Some(t) => Threshold::Fixed(t),
            None => Threshold::Cohort { target_false_positive_rate: args.target_fpr },
        },
        pooling: match args.pooling {
            PoolingChoice::PerLevel => LevelPooling::PerLevel,
            PoolingChoice::Pooled => LevelPooling::Pooled,
        },
        min_reference_values: args.min_reference.max(1),
        // The baseline has no epistemic uncertainty.
        uncertainty_gate: UncertaintyGate::Off,
    };
    call_cohort(&[], &calls).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut scoring = MapScoring::default();
    if args.mid_slice_only {
        scoring.scoring.curve.slices = SliceSelection::LargestCord;
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.unwrap_or(0)).build().context("cannot start worker threads")?;
    let subjects = pool.install(|| load_subjects(&args, context))?;
    let config = IntensityBaselineConfig::default();
    let cohort: Vec<CohortSubject<'_>> = subjects.iter().map(|(meta, samples)| CohortSubject { meta, samples }).collect();
    let maps = intensity_baseline(&cohort, &config).map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
    let method = BaselineMethod::name(args.method);
    let folder = DetectionFolder {
        out: args.out.clone(),
        method: format!("{method} baseline"),
        provenance: json!({
            "Method": method,
            "Baseline": config,
            "Input": std::path::absolute(&args.input).unwrap_or_else(|_| args.input.clone()).display().to_string(),
        }),
        map_descriptions: [
            "Intensity baseline anomaly map: max(0, robust z-score) of the cord T2 signal (divided by the subject's cord median) against the other subjects' cord signal at the same disc level (median, 1.4826 x MAD), inside the cord eroded by 3 x 3 pixels; 0 elsewhere",
            "Epistemic uncertainty: 0 (the intensity baseline has none)",
            "The signal the intensity rule expects: the subject's cord median x the reference median of the level, in the input's intensity units, inside the eroded cord; the clipped input elsewhere",
            "Anomaly candidates: the z-score above its 90th percentile in the eroded cord, 8-connected components of at least 2 pixels, the 3 best by mean x sum, per sagittal slice",
        ],
        scoring,
        calls,
    };
    pool.install(|| write_detection_folder(&folder, maps, context))?;
    if !context.quiet {
        eprintln!(
            "u2ad baseline ({method}): {} subjects in {:.1} s; report {}",
            subjects.len(),
            started.elapsed().as_secs_f64(),
            args.out.join(QC_REPORT_HTML).display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The detection folder

/// What a detection folder is written with.
pub struct DetectionFolder {
    pub out: PathBuf,
    /// Shown in the report's title and settings.
    pub method: String,
    /// Added to every sidecar.
    pub provenance: Value,
    /// Descriptions of the anomaly, uncertainty, reconstruction and candidate maps.
    pub map_descriptions: [&'static str; 4],
    pub scoring: MapScoring,
    pub calls: CallConfig,
}

#[derive(Debug, Serialize)]
struct LevelCsvRow {
    subject: String,
    level: String,
    score: Option<f64>,
    threshold: Option<f64>,
    call: String,
    reason: Option<String>,
    peak_position_mm: Option<f64>,
    extent_mm: Option<f64>,
    peak_signal_ratio: Option<f64>,
    mean_eu: Option<f64>,
    eu_limit: Option<f64>,
}

#[derive(Debug, Serialize)]
struct PatientCsvRow {
    subject: String,
    patient_score: Option<f64>,
    max_over_cord_rows: Option<f64>,
    call: String,
    positive_levels: String,
    indeterminate_levels: String,
    out_of_fov_levels: String,
    samples: usize,
    passes: usize,
}

#[derive(Debug, Serialize)]
struct CurveCsvRow {
    row: usize,
    position_mm: f64,
    level: String,
    value: Option<f64>,
}

fn csv_bytes<T: Serialize>(rows: &[T]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| u2ad_core::CoreError::io(tmp, e)))?;
    Ok(())
}

fn merged(mut base: Value, extra: &Value) -> Value {
    if let (Some(target), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    base
}

fn patient_call_label(call: PatientCall) -> &'static str {
    match call {
        PatientCall::Positive => "positive",
        PatientCall::Negative => "negative",
        PatientCall::NotAssessed => "not_assessed",
    }
}

fn levels_with(decision: &SubjectDecision, pick: impl Fn(SegmentCall) -> bool) -> Vec<String> {
    decision.segments.iter().filter(|s| pick(s.call)).map(|s| s.level.name().to_string()).collect()
}

/// The 99th percentile of the nonzero values of the subjects' mid-sagittal maps.
fn cohort_limit(values: impl Iterator<Item = f32>) -> f32 {
    let mut values: Vec<f64> = values.filter(|&v| v > 0.0).map(f64::from).collect();
    values.sort_by(f64::total_cmp);
    u2ad_core::scoring::percentile_of_sorted(&values, 99.0).unwrap_or(0.0) as f32
}

/// Writes a detection folder from the subjects' sample maps: maps on the native grid, per-subject
/// tables and figures, cohort tables, the QC report (the layout of `u2ad detect`).
pub fn write_detection_folder(folder: &DetectionFolder, maps: Vec<SubjectMaps>, context: &Context) -> anyhow::Result<()> {
    std::fs::create_dir_all(&folder.out).with_context(|| format!("{}: cannot create the output folder", folder.out.display()))?;
    let bar = progress::bar(maps.len() as u64, "write", context.quiet);
    let scored: Vec<(SubjectMaps, ScoredSubject, SubjectOutputs)> = maps
        .into_par_iter()
        .map(|subject_maps| {
            let meta = &subject_maps.subject;
            let outputs = SubjectOutputs::new(&folder.out, &meta.subject, &meta.image_path);
            let scored = score_maps(&subject_maps, &folder.scoring);
            let reference = Volume::read(&meta.image_path)?;
            let native = native_maps(&subject_maps, &scored.candidates, &reference);
            let sources: Vec<String> = std::iter::once(&meta.image_path)
                .chain(meta.cord_mask_path.iter())
                .chain(meta.csf_mask_path.iter())
                .chain(meta.levels_path.iter())
                .map(|p| p.display().to_string())
                .collect();
            let provenance = merged(json!({"Sources": sources}), &folder.provenance);
            for ((path, (map, is_mask)), description) in outputs.nifti_maps().iter().zip(native.named()).zip(folder.map_descriptions) {
                let voxel_type = if is_mask { VoxelType::UInt8 } else { VoxelType::Float32 };
                reference.write_like(map.view(), voxel_type, path)?;
                write_sidecar(path, merged(json!({"Description": description, "SpatialReference": "orig"}), &provenance))?;
            }
            subject_maps.write(&outputs.sample_maps())?;
            write_sidecar(
                &outputs.sample_maps(),
                merged(json!({"Description": "256 x 256 sagittal sample maps (image, expected signal, EU, anomaly map, ROI, cord, level rows) for rescoring"}), &provenance),
            )?;
            bar.inc(1);
            Ok((subject_maps, scored, outputs))
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();

    let scores: Vec<_> = scored.iter().map(|(_, s, _)| s.scores.clone()).collect();
    let decisions = call_cohort(&scores, &folder.calls).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mids: Vec<Option<usize>> = scored.iter().map(|(m, _, _)| m.mid_sagittal()).collect();
    let limits = OverlayLimits {
        epistemic: cohort_limit(scored.iter().zip(&mids).filter_map(|((m, _, _), i)| i.map(|i| &m.samples[i])).flat_map(|s| s.epistemic.iter().copied())),
        aleatoric: cohort_limit(scored.iter().zip(&mids).filter_map(|((m, _, _), i)| i.map(|i| &m.samples[i])).flat_map(|s| s.aleatoric.iter().copied())),
    };
    let too_few = decisions
        .iter()
        .flat_map(|d| &d.segments)
        .filter(|s| s.call == SegmentCall::Indeterminate(IndeterminateReason::TooFewReferenceValues))
        .count();
    let mut warnings = Vec::new();
    if too_few > 0 {
        warnings.push(format!(
            "not calibrated for {too_few} level(s): fewer than {} reference scores among the other subjects, so those levels are \
             'indeterminate'; use --pooling pooled, a lower --min-reference, a larger cohort, or --threshold",
            folder.calls.min_reference_values
        ));
    }
    let settings = json!({
        "CallThreshold": folder.calls.threshold,
        "Pooling": folder.calls.pooling,
        "MinReferenceValues": folder.calls.min_reference_values,
        "UncertaintyGate": folder.calls.uncertainty_gate,
        "Scoring": folder.scoring,
    });
    let mut all_levels = Vec::new();
    let mut patients = Vec::new();
    let mut report_subjects = Vec::new();
    for (((subject_maps, scored, outputs), decision), mid) in scored.iter().zip(&decisions).zip(&mids) {
        let meta = &subject_maps.subject;
        let scores = &scored.scores;
        let provenance = merged(json!({"Sources": [meta.image_path.display().to_string()]}), &folder.provenance);
        let rows: Vec<LevelCsvRow> = level_rows(scores, decision)
            .into_iter()
            .zip(&decision.segments)
            .map(|(r, s)| LevelCsvRow {
                subject: r.subject,
                level: r.level,
                score: r.score,
                threshold: r.threshold,
                call: r.call,
                reason: r.reason,
                peak_position_mm: r.peak_position_mm,
                extent_mm: r.extent_mm,
                peak_signal_ratio: r.peak_signal_ratio,
                mean_eu: s.mean_eu,
                eu_limit: s.eu_limit,
            })
            .collect();
        write_file(&outputs.levels_csv(), &csv_bytes(&rows)?)?;
        write_sidecar(
            &outputs.levels_csv(),
            merged(merged(json!({"Description": "Per disc level: anomaly score (peak of the anomaly curve), threshold, call, peak position (mm), extent (mm), peak signal / median cord signal"}), &provenance), &settings),
        )?;
        let positive = levels_with(decision, |c| c == SegmentCall::Positive);
        let indeterminate = levels_with(decision, |c| matches!(c, SegmentCall::Indeterminate(_)));
        let out_of_fov = levels_with(decision, |c| c == SegmentCall::OutOfFieldOfView);
        let patient_call = patient_call_label(decision.patient_call);
        let passes: usize = subject_maps.samples.iter().map(|s| s.passes).sum();
        let patient = merged(
            merged(
                json!({
                    "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line()}],
                    "Subject": meta.subject,
                    "PatientScore": scores.patient_score,
                    "MaxOverCordRows": scores.max_over_cord_rows,
                    "Call": patient_call,
                    "PositiveLevels": positive,
                    "IndeterminateLevels": indeterminate,
                    "OutOfFieldOfViewLevels": out_of_fov,
                    "Levels": rows,
                    "LevelsSource": meta.levels_source,
                    "Samples": subject_maps.samples.len(),
                    "Passes": passes,
                }),
                &provenance,
            ),
            &settings,
        );
        write_file(&outputs.patient_json(), serde_json::to_string_pretty(&patient)?.as_bytes())?;

        let row_segment = subject_maps.row_segment();
        let origin = scores.position_origin.map(|o| o.row_px()).unwrap_or(0) as f64;
        let pixel_mm = folder.scoring.scoring.pixel_mm;
        let position = |row: f64| (row - origin) * pixel_mm;
        let curve_rows: Vec<CurveCsvRow> = scores
            .curve
            .values
            .iter()
            .enumerate()
            .map(|(row, value)| CurveCsvRow {
                row,
                position_mm: position(row as f64),
                level: DiscLevel::from_code(row_segment[row]).map(|l| l.name().to_string()).unwrap_or_default(),
                value: *value,
            })
            .collect();
        write_file(&outputs.curve_csv(), &csv_bytes(&curve_rows)?)?;
        write_sidecar(&outputs.curve_csv(), merged(json!({"Description": "Anomaly curve: per row of the 256 x 256 sagittal grid, the maximum over the sagittal slices of the mean candidate anomaly over the row's eroded cord"}), &provenance))?;

        let lines = vertebra_lines(&row_segment);
        let title = format!(
            "{} ({}): patient score {}, {}{}",
            meta.subject,
            folder.method,
            scores.patient_score.map(u2ad_report::figures::format_value).unwrap_or_else(|| "none".into()),
            patient_call.replace('_', " "),
            if positive.is_empty() { String::new() } else { format!(" ({})", positive.join(", ")) }
        );
        let mut figures = Vec::new();
        if let Some(index) = *mid {
            let sample = &subject_maps.samples[index];
            let candidates = &scored.candidates[index];
            let slice = SliceMaps {
                rows: SAMPLE_SIZE,
                cols: SAMPLE_SIZE,
                image: sample.image.clone(),
                reconstruction: sample.mean.clone(),
                epistemic: sample.epistemic.clone(),
                aleatoric: sample.aleatoric.clone(),
                cord: sample.cord.clone(),
                candidates: candidates.filtered_au.iter().map(|&v| u8::from(v != 0.0)).collect(),
            };
            let row_lines: Vec<RowLine> = lines.iter().map(|(r, n)| RowLine { row: *r as f64, label: n.clone() }).collect();
            let png = maps_figure(&slice, &row_lines, limits, &format!("{title} · slice {}", sample.meta.native_slice))?;
            write_file(&outputs.maps_figure(), &png)?;
            write_sidecar(&outputs.maps_figure(), merged(json!({"Description": "Mid-sagittal sample: image, expected signal, EU (0), anomaly map with the candidates outlined"}), &provenance))?;
            figures.push(ReportFigure {
                caption: format!("Native sagittal slice {}: image, expected signal, EU (0), anomaly map (0 to {}) with the candidates outlined", sample.meta.native_slice, u2ad_report::figures::format_value(f64::from(limits.aleatoric))),
                png,
            });
        }
        let level_spans: Vec<LevelSpan> = decision
            .segments
            .iter()
            .filter_map(|s| {
                let rows: Vec<usize> = (0..SAMPLE_SIZE).filter(|&r| row_segment[r] == s.level.code()).collect();
                let (first, last) = (*rows.first()?, *rows.last()?);
                Some(LevelSpan {
                    name: s.level.name().to_string(),
                    start_mm: position(first as f64),
                    end_mm: position(last as f64 + 1.0),
                    threshold: s.threshold,
                    peak: scores.segment(s.level).and_then(|x| x.peak()).map(|p| (p.peak_position_mm, p.score)),
                    call: s.call.label().to_string(),
                })
            })
            .collect();
        let curve = CurveData {
            positions_mm: (0..SAMPLE_SIZE).map(|r| position(r as f64)).collect(),
            values: scores.curve.values.clone(),
            boundaries: lines.iter().map(|(r, n)| (position(*r as f64), n.clone())).collect(),
            levels: level_spans,
        };
        let png = curve_figure(&curve, &format!("{title} · anomaly curve"))?;
        write_file(&outputs.curve_figure(), &png)?;
        write_sidecar(&outputs.curve_figure(), merged(json!({"Description": "Anomaly curve with vertebral centres, thresholds and peaks"}), &provenance))?;
        figures.push(ReportFigure { caption: "Anomaly curve: vertebral centres (green), thresholds (red dashes), peaks by call".into(), png });

        let mut notes = vec![format!("method: {}", folder.method), format!("levels: {}", meta.levels_source)];
        if !out_of_fov.is_empty() {
            notes.push(format!("out of the field of view: {}", out_of_fov.join(", ")));
        }
        report_subjects.push(ReportSubject {
            subject: meta.subject.clone(),
            image_file: meta.image_path.display().to_string(),
            patient_score: scores.patient_score,
            patient_call: patient_call.to_string(),
            positive_levels: positive.clone(),
            notes,
            levels: rows
                .iter()
                .map(|r| ReportLevel {
                    level: r.level.clone(),
                    score: r.score,
                    threshold: r.threshold,
                    call: r.call.clone(),
                    reason: r.reason.clone(),
                    peak_position_mm: r.peak_position_mm,
                    extent_mm: r.extent_mm,
                    peak_signal_ratio: r.peak_signal_ratio,
                })
                .collect(),
            figures,
        });
        patients.push(PatientCsvRow {
            subject: meta.subject.clone(),
            patient_score: scores.patient_score,
            max_over_cord_rows: scores.max_over_cord_rows,
            call: patient_call.to_string(),
            positive_levels: positive.join(" "),
            indeterminate_levels: indeterminate.join(" "),
            out_of_fov_levels: out_of_fov.join(" "),
            samples: subject_maps.samples.len(),
            passes,
        });
        all_levels.extend(rows);
    }

    let levels_path = folder.out.join(COHORT_LEVELS_CSV);
    write_file(&levels_path, &csv_bytes(&all_levels)?)?;
    write_sidecar(&levels_path, merged(json!({"Description": "Every subject and disc level", "Settings": settings}), &folder.provenance))?;
    let patients_path = folder.out.join(COHORT_PATIENTS_CSV);
    write_file(&patients_path, &csv_bytes(&patients)?)?;
    write_sidecar(&patients_path, merged(json!({"Description": "Every subject: patient score, call and levels by call", "Settings": settings}), &folder.provenance))?;
    let description = json!({
        "Name": format!("u2ad {}: spinal cord T2 hyperintensity maps and calls", folder.method),
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "u2ad", "Version": env!("CARGO_PKG_VERSION"), "Command": command_line(), "Description": folder.method}],
    });
    write_file(&folder.out.join(DATASET_DESCRIPTION), serde_json::to_string_pretty(&description)?.as_bytes())?;
    let report = Report {
        title: format!("u2ad QC report ({}): {} subject(s)", folder.method, report_subjects.len()),
        generated_by: format!("u2ad {} · {}", env!("CARGO_PKG_VERSION"), command_line()),
        settings: vec![
            ("method".into(), folder.method.clone()),
            ("calls".into(), format!("{:?}, pooling {:?}, at least {} reference scores", folder.calls.threshold, folder.calls.pooling, folder.calls.min_reference_values)),
            ("curve".into(), format!("{:?}", folder.scoring.scoring.curve)),
        ],
        warnings: warnings.clone(),
        subjects: report_subjects,
        failed: Vec::new(),
    };
    write_file(&folder.out.join(QC_REPORT_HTML), render_report(&report).as_bytes())?;
    for warning in &warnings {
        eprintln!("u2ad: warning: {warning}");
    }
    if !context.quiet {
        println!("{:<20} {:>10}  {:<13} positive levels", "subject", "score", "call");
        for p in &patients {
            println!(
                "{:<20} {:>10}  {:<13} {}",
                p.subject,
                p.patient_score.map(|s| format!("{s:.3e}")).unwrap_or_else(|| "none".into()),
                p.call,
                if p.positive_levels.is_empty() { "none" } else { &p.positive_levels }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_adds_and_overrides_keys() {
        let v = merged(json!({"a": 1, "b": 2}), &json!({"b": 3, "c": 4}));
        assert_eq!(v, json!({"a": 1, "b": 3, "c": 4}));
    }
}
