//! Canonical (RAS+) grids from every storage order and header form, and writing that keeps
//! the data, the type and the reference geometry.

use super::*;

/// Data and affine of `canonical` re-laid so that new axis n is canonical axis `perm[n]`,
/// counted backwards when `flip[n]`; the affine is built by hand from the canonical one.
fn relaid(canonical: &Array3<f32>, affine: &Affine, perm: [usize; 3], flip: [bool; 3]) -> (Array3<f32>, Affine) {
    let mut data = canonical.view().permuted_axes(perm);
    let mut m = nalgebra::Matrix4::<f64>::zeros();
    m[(3, 3)] = 1.0;
    for n in 0..3 {
        let size = canonical.shape()[perm[n]] as f64;
        if flip[n] {
            data.invert_axis(Axis(n));
            m[(perm[n], n)] = -1.0;
            m[(perm[n], 3)] = size - 1.0;
        } else {
            m[(perm[n], n)] = 1.0;
        }
    }
    (data.as_standard_layout().into_owned(), Affine(affine.0 * m))
}

/// The same anatomy stored PSR (the real file), RAS, LAS (sform and qform), IAR (sform only)
/// and PIL (qform only) gives the same canonical array and canonical affine.
#[test]
fn differently_stored_copies_have_identical_canonical_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    assert_eq!(v.orientation().to_string(), "PSR");
    let canonical = v.canonical_data().to_owned();
    let canonical_affine = v.canonical_affine();
    // (orientation code, canonical axis of each new axis, flips, sform, qform)
    type Layout = (&'static str, [usize; 3], [bool; 3], bool, bool);
    let layouts: [Layout; 4] = [
        ("RAS", [0, 1, 2], [false, false, false], true, true),
        ("LAS", [0, 1, 2], [true, false, false], true, true),
        ("IAR", [2, 1, 0], [true, false, false], true, false),
        ("PIL", [1, 2, 0], [true, true, true], false, true),
    ];
    for (code, perm, flip, sform, qform) in layouts {
        let (data, affine) = relaid(&canonical, &canonical_affine, perm, flip);
        let path = dir.path().join(format!("copy_{code}.nii.gz"));
        write_with_affine(&path, &data, &affine, sform, qform);
        let copy = Volume::read(&path).unwrap();
        assert_eq!(copy.orientation().to_string(), code);
        assert_eq!((copy.header.sform_code > 0, copy.header.qform_code > 0), (sform, qform), "{code}");
        assert_eq!(copy.canonical_data(), canonical.view(), "{code}: canonical arrays differ");
        let difference = copy.canonical_affine().max_abs_difference(&canonical_affine);
        assert!(difference < 1e-4, "{code}: canonical affines differ by {difference}");
        // Intensity at one world point, through the copy's native grid.
        let world = canonical_affine.voxel_to_world([17.0, 30.0, 13.0]);
        let ijk = copy.affine.world_to_voxel(world).map(|x| x.round() as usize);
        assert_eq!(copy.data[ijk], 1027.0, "{code}");
    }
}

/// Qform-only and no-form headers give nibabel's `get_qform` and base affine (here the oblique
/// T2* header with its sform switched off, then both forms switched off).
#[test]
fn qform_and_base_affines_match_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(UNF02_T2STAR);
    let mut header = v.header.clone();
    header.sform_code = 0;
    header.qform_code = 1;
    let path = dir.path().join("qform_only.nii");
    WriterOptions::new(&path).reference_header(&header).write_nifti(&v.data).unwrap();
    let q = Volume::read(&path).unwrap();
    let expected = [
        [-4.975335720054283, 5.355620620880892e-07, -1.1745441389672018, 113.01468658447266],
        [-0.010881058182605301, 4.9656387496027055, 2.6159972011974637, -107.31163787841797],
        [-0.15552965518421713, -0.3474197167433029, 37.390210791274775, -15.645646095275879],
    ];
    assert_affine_close(&q.affine, &expected, 1e-6, "qform only");
    assert_eq!(q.orientation().to_string(), "LAS");
    assert_eq!(q.data, v.data);

    header.qform_code = 0;
    let path = dir.path().join("no_form.nii");
    WriterOptions::new(&path).reference_header(&header).write_nifti(&v.data).unwrap();
    let b = Volume::read(&path).unwrap();
    let expected = [
        [-4.97777795791626, 0.0, 0.0, 109.51111507415771],
        [0.0, 4.977777481079102, 0.0, -109.51110458374023],
        [0.0, 0.0, 37.5000114440918, -18.7500057220459],
    ];
    assert_affine_close(&b.affine, &expected, 1e-9, "base affine");
    assert_eq!(b.orientation().to_string(), "LAS");
}

/// Values exactly representable in each type, derived from the errsm30 scan.
fn values_for(voxel_type: VoxelType, base: &Array3<f32>) -> Array3<f32> {
    match voxel_type {
        VoxelType::UInt8 => base.mapv(|v| (v / 5.0).floor()),
        VoxelType::Int16 => base.mapv(|v| v - 600.0),
        VoxelType::UInt16 => base.mapv(|v| v * 50.0),
        VoxelType::Int32 => base.mapv(|v| v * 1000.0 - 600_000.0),
        VoxelType::Float32 | VoxelType::Float64 => base.mapv(|v| v / 7.3),
    }
}

fn assert_same_geometry(written: &NiftiHeader, reference: &NiftiHeader, what: &str) {
    assert_eq!(written.dim[..4], [3, reference.dim[1], reference.dim[2], reference.dim[3]], "{what}: dim");
    assert_eq!(written.sform_code, reference.sform_code, "{what}: sform_code");
    assert_eq!(written.qform_code, reference.qform_code, "{what}: qform_code");
    assert_eq!(written.srow_x, reference.srow_x, "{what}: srow_x");
    assert_eq!(written.srow_y, reference.srow_y, "{what}: srow_y");
    assert_eq!(written.srow_z, reference.srow_z, "{what}: srow_z");
    assert_eq!(
        [
            written.quatern_b,
            written.quatern_c,
            written.quatern_d,
            written.quatern_x,
            written.quatern_y,
            written.quatern_z
        ],
        [
            reference.quatern_b,
            reference.quatern_c,
            reference.quatern_d,
            reference.quatern_x,
            reference.quatern_y,
            reference.quatern_z
        ],
        "{what}: qform"
    );
    assert_eq!(written.pixdim[..4], reference.pixdim[..4], "{what}: pixdim");
    assert_eq!(written.xyzt_units, reference.xyzt_units, "{what}: units");
    assert_eq!((written.scl_slope, written.scl_inter), (1.0, 0.0), "{what}: scaling");
}

/// Write-then-read keeps the data, the affine, the data type and the header geometry, for every
/// supported data type and for both `.nii` and `.nii.gz`.
#[test]
fn write_then_read_keeps_data_affine_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let types = [
        VoxelType::UInt8,
        VoxelType::Int16,
        VoxelType::UInt16,
        VoxelType::Int32,
        VoxelType::Float32,
        VoxelType::Float64,
    ];
    for (n, voxel_type) in types.into_iter().enumerate() {
        let data = values_for(voxel_type, &v.data);
        let extension = if n % 2 == 0 { "nii.gz" } else { "nii" };
        let path = dir.path().join(format!("map_{voxel_type:?}.{extension}"));
        v.write_like(data.view(), voxel_type, &path).unwrap();
        let back = Volume::read(&path).unwrap();
        assert_eq!(back.voxel_type, voxel_type);
        assert_eq!(back.header.datatype, voxel_type.nifti_code());
        assert_eq!(back.data, data, "{voxel_type:?}: data");
        assert_eq!(back.affine, v.affine, "{voxel_type:?}: affine");
        assert_same_geometry(&back.header, &v.header, &format!("{voxel_type:?}"));
    }
    // numpy: floor(T2w / 5).sum() for the uint8 map
    let back = Volume::read(dir.path().join("map_UInt8.nii.gz")).unwrap();
    assert_eq!(sum(&back.data), 4427217.0);
    // No temporary file is left behind.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("map_")), "{names:?}");
    // Integer types round and saturate.
    let path = dir.path().join("saturated.nii");
    let extremes = v.data.mapv(|x| if x > 600.0 { 1e6 } else { -3.6 });
    v.write_like(extremes.view(), VoxelType::UInt8, &path).unwrap();
    let back = Volume::read(&path).unwrap();
    assert_eq!(back.data.iter().copied().fold(f32::NEG_INFINITY, f32::max), 255.0);
    assert_eq!(back.data.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
}

/// Maps written onto real files of every header kind keep the reference's sform, qform, their
/// codes and pixdim exactly, so they overlay the input voxel for voxel.
#[test]
fn write_like_keeps_the_reference_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let references = [
        ERRSM11,                                                                            // sform 1, qform 2, PSR
        "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz", // uint8, sform 2, qform 2
        UNF01,                                                                              // sform 2 only, oblique
        UNF02_T2STAR,                                      // sform 2 only, qfac -1, LAS
        "templates/PAM50_small/PAM50_small_levels.nii.gz", // uint16, LAS
    ];
    for (n, reference) in references.into_iter().enumerate() {
        let v = read(reference);
        let map = v.data.mapv(|x| x * 0.25 + 1.0);
        let path: PathBuf = dir.path().join(format!("map{n}.nii.gz"));
        v.write_like(map.view(), VoxelType::Float32, &path).unwrap();
        let written = read_header(&path).unwrap();
        assert_same_geometry(&written, &v.header, reference);
        let back = Volume::read(&path).unwrap();
        assert_eq!(back.affine, v.affine, "{reference}");
        assert_eq!(back.orientation(), v.orientation(), "{reference}");
        back.check_same_grid(&v, 0.0).unwrap();
        assert_eq!(back.data, map, "{reference}");
    }
}

/// Isotropic scans pass unless they are a slab that is not thin left-right; anisotropic ones
/// only when the thick axis points left-right (the rejections are in `tests/bad_input.rs`).
#[test]
fn sagittal_check_accepts_isotropic_and_left_right_thick_scans() {
    // 1 mm isotropic PSR, 384 x 216 x 52 mm (a slab, thin left-right); 1 mm isotropic PSR,
    // 60 x 55 x 52 mm (no slab); 2 mm isotropic LAS, 60 x 60 x 300 mm; 8.53 x 8 x 8 mm RAS
    // (6.7 % anisotropy, under the 25 % tolerance; 51 x 256 x 256 mm, thin left-right).
    for file in [
        ERRSM11,
        ERRSM30,
        "templates/MNI-Poly-AMU/MNI-Poly-AMU_T2.nii.gz",
        "fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2w.nii.gz",
    ] {
        check_sagittal(&read(file)).unwrap_or_else(|e| panic!("{e}"));
    }
    // The errsm30 anatomy with 3 mm sagittal slices (the R column of the affine scaled by 3).
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let mut thick = v.affine;
    for r in 0..3 {
        thick.0[(r, 2)] *= 3.0;
    }
    let path = dir.path().join("thick_sagittal.nii.gz");
    write_with_affine(&path, &v.data, &thick, true, false);
    let t = Volume::read(&path).unwrap();
    assert_eq!(t.spacing_mm(), [1.0, 1.0, 3.0]);
    assert_eq!(t.orientation().to_string(), "PSR");
    check_sagittal(&t).unwrap();
}
