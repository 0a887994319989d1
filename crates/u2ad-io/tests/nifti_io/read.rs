//! Reading as nibabel reads: every shared file, headers only, scaling, byte order, extra
//! dimensions and multi-member gzip.

use super::*;

/// Every 3-D NIfTI file in the shared data reads as nibabel reads it: shape, data type, affine
/// (`get_best_affine`), voxel spacing, orientation code, intensity sum and single voxels.
#[test]
fn every_shared_file_reads_as_nibabel() {
    assert_eq!(EXPECTED.len(), 30);
    for e in EXPECTED {
        let v = read(e.file);
        assert_eq!(v.shape(), e.shape, "{}: shape", e.file);
        assert_eq!(v.voxel_type, e.voxel_type, "{}: data type", e.file);
        assert_affine_close(&v.affine, &e.affine, 1e-9, e.file);
        for a in 0..3 {
            assert!((v.spacing_mm()[a] - e.spacing[a]).abs() < 1e-9, "{}: spacing {:?}", e.file, v.spacing_mm());
        }
        assert_eq!(v.orientation().to_string(), e.axcodes, "{}: orientation", e.file);
        let total = sum(&v.data);
        assert!((total - e.sum).abs() <= 1e-9 * e.sum.abs().max(1.0), "{}: sum {total} vs {}", e.file, e.sum);
        assert_eq!(v.data.iter().filter(|&&x| x != 0.0).count(), e.nonzero, "{}: non-zero voxels", e.file);
        let ([i, j, k], value) = e.max_at;
        assert_eq!(v.data[[i, j, k]] as f64, value as f32 as f64, "{}: voxel {:?}", e.file, e.max_at.0);
        let max = v.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(max as f64, value as f32 as f64, "{}: maximum", e.file);
        let ([i, j, k], value) = e.centre;
        assert_eq!(v.data[[i, j, k]] as f64, value as f32 as f64, "{}: voxel {:?}", e.file, e.centre.0);
    }
}

#[test]
fn header_only_read_gives_the_grid() {
    let h = read_header(&sample_file(ERRSM11)).unwrap();
    assert_eq!(&h.dim[..4], &[3, 384, 216, 52]);
    assert_eq!((h.sform_code, h.qform_code, h.datatype), (1, 2, 4));
    let h = read_header(&sample_file("fixtures/bad_quaternion.nii.gz")).unwrap();
    assert_eq!(&h.dim[..5], &[4, 2, 3, 4, 5]);
}

/// The canonical (RAS+) grid equals nibabel's `as_closest_canonical`: its affine, shape, and the
/// intensity at given canonical voxels; and the canonical voxel of a world point holds the same
/// intensity as the native voxel of that point.
#[test]
fn canonical_grid_matches_nibabel_as_closest_canonical() {
    struct Canonical {
        file: &'static str,
        shape: [usize; 3],
        affine: [[f64; 4]; 3],
        // (canonical voxel, native voxel of the same world point, intensity)
        voxels: &'static [([usize; 3], [usize; 3], f32)],
    }
    let cases = [
        Canonical {
            file: ERRSM11,
            shape: [52, 384, 216],
            affine: [
                [1.0, 0.0, 0.0, -26.155860900878906],
                [0.0, 1.0, 0.0, -173.74893188476562],
                [0.0, 0.0, 1.0, -130.832763671875],
            ],
            voxels: &[
                ([0, 0, 0], [383, 0, 0], 0.0),
                ([17, 192, 54], [191, 54, 17], 43.0),
                ([26, 128, 215], [255, 215, 26], 28.0),
            ],
        },
        Canonical {
            file: ERRSM30,
            shape: [52, 60, 55],
            affine: [
                [1.0, 0.0, 0.0, -32.21928405761719],
                [0.0, 1.0, 0.0, -27.213394165039062],
                [0.0, 0.0, 1.0, -19.321670532226562],
            ],
            voxels: &[
                ([0, 0, 0], [59, 0, 0], 45.0),
                ([51, 0, 0], [59, 0, 51], 25.0),
                ([17, 30, 13], [29, 13, 17], 1027.0),
                ([26, 20, 54], [39, 54, 26], 96.0),
            ],
        },
        Canonical {
            file: PAM50_T2,
            shape: [70, 70, 275],
            affine: [[1.0, 0.0, 0.0, -34.0], [0.0, 1.0, 0.0, -35.0], [0.0, 0.0, 2.0, -274.5]],
            voxels: &[([23, 35, 68], [46, 35, 68], 957.0), ([69, 0, 0], [0, 0, 0], 0.0)],
        },
        Canonical {
            file: UNF02_T2STAR,
            shape: [45, 45, 2],
            affine: [
                [4.975336074829102, 1.5756992155502303e-08, -1.1744322776794434, -105.90010070800781],
                [0.010880538262426853, 4.965639114379883, 2.615997314453125, -107.79038156196475],
                [0.15551479160785675, -0.34741970896720886, 37.39021682739258, -22.488296926021576],
            ],
            voxels: &[([15, 22, 0], [29, 22, 0], 543.0), ([22, 15, 1], [22, 15, 1], 287.0)],
        },
        Canonical {
            file: UNF01,
            shape: [131, 141, 16],
            affine: [
                [1.0, 6.833639076830877e-08, 6.882606248836964e-05, -64.12969970703125],
                [-1.1189840734004974e-05, 0.9868561029434204, 0.16160158812999725, -59.711036682128906],
                [-6.791038322262466e-05, -0.16160160303115845, 0.9868559837341309, -2.3794872760772705],
            ],
            voxels: &[([43, 70, 4], [43, 70, 4], 516.04004), ([65, 47, 15], [65, 47, 15], 495.7711)],
        },
    ];
    for case in &cases {
        let v = read(case.file);
        let reorientation = v.reorientation();
        assert_eq!(reorientation.canonical_shape(), case.shape, "{}", case.file);
        let canonical_affine = v.canonical_affine();
        assert_affine_close(&canonical_affine, &case.affine, 1e-9, case.file);
        assert_eq!(canonical_affine.orientation().to_string(), "RAS", "{}", case.file);
        let canonical = v.canonical_data();
        assert_eq!(canonical.shape(), &case.shape[..]);
        for &(c, n, value) in case.voxels {
            assert_eq!(canonical[c], value, "{}: canonical voxel {c:?}", case.file);
            assert_eq!(v.data[n], value, "{}: native voxel {n:?}", case.file);
            // The same world point, through either grid.
            let world = canonical_affine.voxel_to_world(c.map(|x| x as f64));
            let native = v.affine.world_to_voxel(world);
            for a in 0..3 {
                assert!((native[a] - n[a] as f64).abs() < 1e-4, "{}: world {world:?} -> native {native:?}", case.file);
            }
            let back = reorientation.native_to_canonical(n.map(|x| x as f64));
            assert_eq!(back, c.map(|x| x as f64), "{}", case.file);
        }
        // Back to native order is the identity.
        assert_eq!(reorientation.to_native(canonical), v.data, "{}", case.file);
    }
}

/// Patches `scl_slope` and `scl_inter` (bytes 112..120 of a native-endian .nii header).
fn patch_scaling(path: &Path, slope: f32, inter: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[112..116].copy_from_slice(&slope.to_ne_bytes());
    bytes[116..120].copy_from_slice(&inter.to_ne_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// `scl_slope`/`scl_inter` as nibabel applies them: value * slope + inter; a slope of 0 or NaN
/// means unscaled.
#[test]
fn scaling_follows_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let raw = v.data.mapv(|x| x as i16);
    let path = dir.path().join("scaled.nii");
    WriterOptions::new(&path).reference_header(&v.header).write_nifti(&raw).unwrap();

    patch_scaling(&path, 0.5, 10.0);
    let s = Volume::read(&path).unwrap();
    assert_eq!(s.voxel_type, VoxelType::Int16);
    // numpy: (raw * 0.5 + 10).sum() over the 171600 voxels, raw.sum() = 22473922
    assert_eq!(sum(&s.data), 12952961.0);
    assert_eq!(s.data[[29, 13, 17]], 523.5);

    for no_scaling in [0.0, f32::NAN, f32::INFINITY] {
        patch_scaling(&path, no_scaling, 10.0);
        let u = Volume::read(&path).unwrap();
        assert_eq!(sum(&u.data), 22473922.0, "slope {no_scaling}");
        assert_eq!(u.data[[29, 13, 17]], 1027.0);
    }

    // Scaling applies to float data too.
    let path = dir.path().join("scaled_float.nii");
    WriterOptions::new(&path).reference_header(&v.header).write_nifti(&v.data).unwrap();
    patch_scaling(&path, 2.0, -1.0);
    let f = Volume::read(&path).unwrap();
    assert_eq!(f.voxel_type, VoxelType::Float32);
    assert_eq!(sum(&f.data), 2.0 * 22473922.0 - 171600.0);
    assert_eq!(f.data[[29, 13, 17]], 2053.0);
}

/// A big-endian file reads as the little-endian original.
#[test]
fn big_endian_files_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let mut header = v.header.clone();
    header.endianness = nifti::Endianness::Big;
    let path = dir.path().join("big.nii.gz");
    WriterOptions::new(&path).reference_header(&header).write_nifti(&v.data.mapv(|x| x as i16)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut head = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&bytes[..]).take(4).read_to_end(&mut head).unwrap();
    assert_eq!(head, 348i32.to_be_bytes(), "the file is big-endian");
    let b = Volume::read(&path).unwrap();
    assert_eq!(b.data, v.data);
    assert_eq!(b.affine, v.affine);
    assert_eq!(b.voxel_type, VoxelType::Int16);
}

/// 4-D files with one volume (and 5-D with singleton extra dimensions) read as 3-D.
#[test]
fn single_volume_4d_and_5d_files_read_as_3d() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let [x, y, z] = v.shape();
    let d4: Array4<f32> = v.data.clone().into_shape_with_order((x, y, z, 1)).unwrap();
    let path = dir.path().join("one_volume.nii.gz");
    WriterOptions::new(&path).reference_header(&v.header).write_nifti(&d4).unwrap();
    let r = Volume::read(&path).unwrap();
    assert_eq!(r.header.dim[..5], [4, 60, 55, 52, 1]);
    assert_eq!(r.data, v.data);
    assert_eq!(r.affine, v.affine);

    let d5: Array5<f32> = v.data.clone().into_shape_with_order((x, y, z, 1, 1)).unwrap();
    let path = dir.path().join("one_volume_5d.nii.gz");
    WriterOptions::new(&path).reference_header(&v.header).write_nifti(&d5).unwrap();
    let r = Volume::read(&path).unwrap();
    assert_eq!(r.data, v.data);
}

/// A .nii.gz written as several gzip members (split inside the header, as concatenated or
/// parallel gzip tools write them), or with trailing bytes up to the margin after its voxels,
/// reads as the original; so does an uncompressed file with trailing bytes.
#[test]
fn multi_member_gzip_and_trailing_bytes_read_as_the_original() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let original = read(ERRSM30);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(sample_file(ERRSM30)).unwrap()[..]).read_to_end(&mut plain).unwrap();
    let gzip = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let mut members = Vec::new();
    for part in [&plain[..200], &plain[200..100_000], &plain[100_000..]] {
        members.extend(gzip(part));
    }
    let with_trailing = [plain.clone(), vec![7u8; u2ad_io::volume::GZIP_MARGIN_BYTES]].concat();
    let files = [
        ("members.nii.gz", members),
        ("trailing.nii.gz", gzip(&with_trailing)),
        ("trailing.nii", with_trailing.clone()),
        ("more_trailing.nii", [with_trailing, vec![0u8; 4096]].concat()),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let v = Volume::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.data, original.data, "{name}");
        assert_eq!(v.affine, original.affine, "{name}");
        assert_eq!(read_header(&path).unwrap(), original.header, "{name}");
    }
}
