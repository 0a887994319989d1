//! Tests of the level conventions and placement.

use std::path::Path;

use crate::error::CoreError;

use super::labels::*;
use super::pam50::*;
use super::placement::*;
use super::*;

#[test]
fn disc_level_codes_and_names() {
    assert_eq!(DiscLevel::C5C6.code(), 4);
    assert_eq!(DiscLevel::from_code(4), Some(DiscLevel::C5C6));
    assert_eq!(DiscLevel::from_code(0), None);
    assert_eq!(DiscLevel::C7T1.sct_disc_value(), 8);
    assert_eq!(DiscLevel::C2C3.to_string(), "C2/C3");
    assert_eq!(vertebra_name(8), "T1");
}

#[test]
fn segment_runs_between_vertebral_centres() {
    let map = LevelMap {
        vertebra_centre_k: [(5, 100.0), (6, 80.0), (7, 62.0)].into_iter().collect(),
        given: vec![5, 6, 7],
        source: "test".into(),
    };
    assert_eq!(map.segment_at_k(90.0), Some(DiscLevel::C5C6));
    assert_eq!(map.segment_at_k(100.0), Some(DiscLevel::C5C6));
    assert_eq!(map.segment_at_k(70.0), Some(DiscLevel::C6C7));
    assert_eq!(map.segment_at_k(101.0), None);
    assert_eq!(map.segment_at_k(50.0), None);
}

use crate::anatomy::Centreline;
use ndarray::{s, Array3};

/// A straight cord along k = 0 … 199 (1 mm voxels): arc length = k.
fn straight_centreline() -> Centreline {
    let mut cord = Array3::from_elem((5, 5, 200), false);
    cord.slice_mut(s![0, 0, ..]).fill(true);
    Centreline::from_cord(cord.view(), [1.0, 1.0, 1.0]).unwrap()
}

/// Canonical labels: cord (value `cord`) along [0, 0, k]; each disc a 3 x 3 x 3 block
/// centred on its k; each vertebra a block over a k range.
fn spine_labels(cord: f32, discs: &[(f32, usize)], vertebrae: &[(f32, usize, usize)]) -> Array3<f32> {
    let mut labels = Array3::<f32>::zeros((5, 5, 200));
    labels.slice_mut(s![0, 0, ..]).fill(cord);
    for &(value, k) in discs {
        labels.slice_mut(s![2..5, 2..5, k - 1..=k + 1]).fill(value);
    }
    for &(value, from, to) in vertebrae {
        labels.slice_mut(s![2..5, 2..5, from..=to]).fill(value);
    }
    labels
}

const DISC_K: [usize; 6] = [150, 132, 114, 97, 80, 62]; // C2/C3 … C7/T1

/// Expected centres C2 … T1 for DISC_K on the straight cord (template depths from the
/// PAM50 constants: C2 extrapolated with the C2/C3-C3/C4 scale, T1 with the last pair's).
fn expected_from_discs() -> [f64; 7] {
    [158.0, 141.0, 123.0, 105.5, 97.0 - 8.0 * 17.0 / 16.01, 71.0, 50.99]
}

fn check_centres(map: &LevelMap, expected: &[f64]) {
    for (vertebra, &k) in (2u8..).zip(expected) {
        let got = map.vertebra_centre_k[&vertebra];
        assert!((got - k).abs() < 1e-6, "vertebra {vertebra}: {got} vs {k}");
    }
}

#[test]
fn totalspineseg_current_release_uses_its_discs() {
    let discs: Vec<(f32, usize)> = [63.0, 64.0, 65.0, 66.0, 67.0, 71.0].into_iter().zip(DISC_K).collect();
    // C2 (12) above C2/C3; T2 (22) reaches the first slice: cut, reported.
    let labels = spine_labels(1.0, &discs, &[(12.0, 153, 190), (13.0, 134, 148), (22.0, 0, 40)]);
    let path = Path::new("sub-x_T2w_label-spine_dseg.nii.gz");
    let report = levels_from_labels(labels.view(), path, None, &straight_centreline()).unwrap();
    assert_eq!(report.convention, LevelConvention::TotalSpineSeg);
    assert_eq!(report.landmarks.len(), 6);
    assert_eq!(report.map.given, vec![3, 4, 5, 6, 7]);
    assert_eq!(report.partial, vec![9]);
    assert_eq!(report.ignored_values, vec![1]);
    check_centres(&report.map, &expected_from_discs());
}

#[test]
fn totalspineseg_older_release_is_read_too() {
    let discs: Vec<(f32, usize)> = [224.0, 223.0, 222.0, 221.0, 220.0, 219.0].into_iter().zip(DISC_K).collect();
    let labels = spine_labels(200.0, &discs, &[(40.0, 153, 190), (39.0, 134, 148)]);
    let path = Path::new("sub-x_T2w_label-spine_dseg.nii.gz");
    let report = levels_from_labels(labels.view(), path, None, &straight_centreline()).unwrap();
    assert_eq!(report.convention, LevelConvention::TotalSpineSegLegacy);
    check_centres(&report.map, &expected_from_discs());
    assert!(report.map.source.contains("totalspineseg-legacy"), "{}", report.map.source);
}

#[test]
fn totalspineseg_without_discs_uses_whole_vertebrae() {
    // C3 (13) k 120-140 and C5 (15) k 80-100: centroids 130 and 90.
    let labels = spine_labels(1.0, &[], &[(13.0, 120, 140), (15.0, 80, 100)]);
    let report =
        levels_from_labels(labels.view(), Path::new("spine.nii.gz"), None, &straight_centreline()).unwrap();
    assert_eq!(report.convention, LevelConvention::TotalSpineSeg);
    assert_eq!(report.map.given, vec![3, 5]);
    // C4 (depth 43) between C3 (25, k 130) and C5 (60, k 90): 130 - 18 x 40 / 35.
    let c4 = report.map.vertebra_centre_k[&4];
    assert!((c4 - (130.0 - 18.0 * 40.0 / 35.0)).abs() < 1e-6, "{c4}");
}

#[test]
fn sct_discs_as_points_and_labelled_cord_as_regions() {
    let mut labels = Array3::<f32>::zeros((5, 5, 200));
    for (value, k) in (3..=8).zip(DISC_K) {
        labels[[0, 0, k]] = value as f32;
    }
    let line = straight_centreline();
    let report = levels_from_labels(labels.view(), Path::new("a_label-discs_dlabel.nii.gz"), None, &line).unwrap();
    assert_eq!(report.convention, LevelConvention::SctDiscPoints);
    check_centres(&report.map, &expected_from_discs());

    // The cord labelled 2 … 4 between k = 60 and 199: level 2 reaches the cord's last slice.
    let mut labels = Array3::<f32>::zeros((5, 5, 200));
    labels.slice_mut(s![0, 0, 150..200]).fill(2.0);
    labels.slice_mut(s![0, 0, 110..150]).fill(3.0);
    labels.slice_mut(s![0, 0, 60..110]).fill(4.0);
    let report = levels_from_labels(labels.view(), Path::new("cord_labeled.nii.gz"), None, &line).unwrap();
    assert_eq!(report.convention, LevelConvention::SctVertebraCord);
    assert_eq!(report.partial, vec![2]);
    assert_eq!(report.map.given, vec![3, 4]);
    assert!((report.map.vertebra_centre_k[&3] - 129.5).abs() < 1e-9);
}

#[test]
fn detection_rejects_unknown_and_non_integer_values() {
    let line = straight_centreline();
    let mut labels = Array3::<f32>::zeros((5, 5, 200));
    labels.slice_mut(s![0, 0, 10..60]).fill(100.0);
    labels.slice_mut(s![0, 0, 60..90]).fill(150.0);
    let err = levels_from_labels(labels.view(), Path::new("x.nii.gz"), None, &line).unwrap_err();
    assert!(matches!(err, CoreError::UnknownLabels { .. }));
    assert!(err.to_string().starts_with("x.nii.gz: ") && err.to_string().contains("values 100, 150"), "{err}");

    labels[[1, 1, 1]] = 0.37;
    let err = levels_from_labels(labels.view(), Path::new("p.nii.gz"), None, &line).unwrap_err();
    assert!(err.to_string().contains("0.37"), "{err}");

    let empty = Array3::<f32>::zeros((5, 5, 200));
    let err = levels_from_labels(empty.view(), Path::new("e.nii.gz"), None, &line).unwrap_err();
    assert!(err.to_string().contains("no labels"), "{err}");
}

#[test]
fn levels_out_of_order_are_an_error() {
    let mut labels = Array3::<f32>::zeros((5, 5, 200));
    labels[[0, 0, 10]] = 3.0; // C3 below C5
    labels[[0, 0, 50]] = 5.0;
    let err = levels_from_labels(
        labels.view(),
        Path::new("s_label-vertebrae_dlabel.nii.gz"),
        None,
        &straight_centreline(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
}

#[test]
fn a_single_landmark_uses_the_template_scale() {
    let line = straight_centreline();
    let map = place_vertebrae(&[Landmark::VertebraCentre { vertebra: 5, k: 100.0 }], &line, Path::new("p")).unwrap();
    assert_eq!(map.given, vec![5]);
    assert!((map.vertebra_centre_k[&2] - 152.0).abs() < 1e-9);
    assert!((map.vertebra_centre_k[&8] - (100.0 - 53.02)).abs() < 1e-9);
    assert!(place_vertebrae(&[], &line, Path::new("p")).is_err());
}

#[test]
fn convention_names_round_trip() {
    for convention in LevelConvention::ALL {
        assert_eq!(convention.name().parse::<LevelConvention>(), Ok(convention));
    }
    assert!("sct".parse::<LevelConvention>().is_err());
    assert_eq!(disc_name(3), "C2/C3");
    assert_eq!(disc_name(8), "C7/T1");
    assert_eq!(pam50_disc_depth_mm(2), Some(0.0));
    assert_eq!(pam50_vertebra_depth_mm(19), None);
}
