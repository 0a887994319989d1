//! Bad input gives one clear, one-line error naming the file, never a panic.
//!
//! Expected geometry of the shared fixtures was computed with nibabel 5.4: `bad_quaternion.nii.gz`
//! is 2 x 3 x 4 x 5 (five volumes), int16, sform_code 1 with affine
//! [[0.75, 0, 0, 10], [0, -0.75, 0, 20], [0, 0, -3, 30]] (RPI), and `header.get_qform()` raises
//! "w2 should be positive" (b² + c² + d² = 1.00000095); PAM50_small is 1 x 1 x 2 mm LAS (thick
//! axis S); sub-unf02_T2star is 4.98 x 4.98 x 37.5 mm LAS (thick axis S); sub-unf01 is 1 mm
//! isotropic (column norms 1.0, 1.0, 0.9999999), RAS, 131 x 141 x 16 voxels: an axial slab.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ndarray::{Array2, Array3, Array5};
use nifti::writer::WriterOptions;
use u2ad_data::sample_file;
use u2ad_io::FileError;
use u2ad_io::volume::{
    check_sagittal, header_affine, read_header, Volume, VoxelType, GRID_TOLERANCE_MM, GZIP_MARGIN_BYTES,
};

const ERRSM30: &str = "spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz";
const ERRSM30_CORD: &str = "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz";

fn read(relative: &str) -> Volume {
    Volume::read(sample_file(relative)).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's message: one line, naming the file.
fn message(error: &FileError, path: &Path) -> String {
    let text = error.to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(text.contains(&*name), "message does not name {name}: {text}");
    assert!(!text.contains('\n'), "message is not one line: {text}");
    eprintln!("{text}");
    text
}

fn read_error(path: &Path) -> (FileError, String) {
    let error = Volume::read(path).expect_err("reading should fail");
    let text = message(&error, path);
    (error, text)
}

fn temp_copy_of(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The errsm30 scan as an uncompressed native-endian float32 .nii (header bytes can be patched).
fn plain_errsm30(dir: &Path, name: &str) -> PathBuf {
    let v = read(ERRSM30);
    let path = dir.join(name);
    v.write_like(v.data.view(), VoxelType::Float32, &path).unwrap();
    path
}

fn patch(path: &Path, offset: usize, bytes: &[u8]) {
    let mut all = std::fs::read(path).unwrap();
    all[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, all).unwrap();
}

#[test]
fn missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("sub-01_T2w.nii.gz");
    let (error, text) = read_error(&missing);
    assert!(matches!(error, FileError::Io { .. }), "{error:?}");
    assert!(text.contains("No such file"), "{text}");
    let (error, _) = (read_header(&missing).unwrap_err(), ());
    assert!(matches!(error, FileError::Io { .. }), "{error:?}");

    let folder = dir.path().join("scan.nii");
    std::fs::create_dir(&folder).unwrap();
    let (error, _) = read_error(&folder);
    assert!(matches!(error, FileError::Io { .. }), "{error:?}");
}

#[test]
fn files_that_are_not_nifti() {
    let dir = tempfile::tempdir().unwrap();
    let text = temp_copy_of(dir.path(), "notes.nii.gz", "patient 12, sagittal T2, C3-C6\n".repeat(40).as_bytes());
    let (error, msg) = read_error(&text);
    assert!(matches!(error, FileError::NotNifti { .. }), "{error:?}");
    assert!(msg.contains("no NIfTI-1 magic"), "{msg}");

    let short = temp_copy_of(dir.path(), "short.nii", b"hello");
    let (error, msg) = read_error(&short);
    assert!(matches!(error, FileError::NotNifti { .. }), "{error:?}");
    assert!(msg.contains("5 bytes, shorter than a NIfTI-1 header"), "{msg}");

    let empty = temp_copy_of(dir.path(), "empty.nii.gz", b"");
    assert!(matches!(read_error(&empty).0, FileError::NotNifti { .. }));

    // A real NumPy file from the shared data.
    let npy = sample_file("clinical-slices/slice-1.npy");
    let (error, msg) = read_error(&npy);
    assert!(matches!(error, FileError::NotNifti { .. }), "{error:?}");
    assert!(msg.contains("NumPy"), "{msg}");
    assert!(matches!(read_header(&npy).unwrap_err(), FileError::NotNifti { .. }));

    // A NIfTI-2 header (sizeof_hdr 540, magic "n+2" at byte 4).
    let mut nifti2 = vec![0u8; 560];
    nifti2[0..4].copy_from_slice(&540i32.to_le_bytes());
    nifti2[4..8].copy_from_slice(b"n+2\0");
    let path = temp_copy_of(dir.path(), "scan2.nii", &nifti2);
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::NotNifti { .. }), "{error:?}");
    assert!(msg.contains("NIfTI-2"), "{msg}");

    // The header of a .hdr/.img pair.
    let plain = plain_errsm30(dir.path(), "pair.nii");
    patch(&plain, 344, b"ni1\0");
    let (error, msg) = read_error(&plain);
    assert!(matches!(error, FileError::NotNifti { .. }), "{error:?}");
    assert!(msg.contains(".hdr/.img"), "{msg}");
}

#[test]
fn truncated_and_corrupt_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(sample_file(ERRSM30)).unwrap();
    assert_eq!(bytes.len(), 227_586, "the shared file changed");

    let half = temp_copy_of(dir.path(), "half.nii.gz", &bytes[..bytes.len() / 2]);
    let (error, msg) = read_error(&half);
    assert!(matches!(error, FileError::Truncated { .. }), "{error:?}");
    assert!(msg.contains("the gzip stream ends early"), "{msg}");

    // Only the 8-byte trailer (checksum and size) missing: the data decode, the check fails.
    let no_trailer = temp_copy_of(dir.path(), "no_trailer.nii.gz", &bytes[..bytes.len() - 8]);
    assert!(matches!(read_error(&no_trailer).0, FileError::Truncated { .. }));

    // 64 bytes overwritten in the middle of the deflate stream.
    let mut corrupt = bytes.clone();
    let middle = corrupt.len() / 2;
    for b in &mut corrupt[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let path = temp_copy_of(dir.path(), "corrupt.nii.gz", &corrupt);
    let (error, _) = read_error(&path);
    assert!(matches!(error, FileError::Truncated { .. }), "{error:?}");

    // A single flipped bit in a stored value: only the CRC can tell.
    let mut flipped = bytes.clone();
    flipped[bytes.len() - 8] ^= 0x01;
    let path = temp_copy_of(dir.path(), "bad_crc.nii.gz", &flipped);
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Truncated { .. }), "{error:?}");
    eprintln!("  ({msg})");
}

/// Every prefix length of a real uncompressed file is an error, never a panic.
#[test]
fn truncated_uncompressed_file_at_any_length() {
    let dir = tempfile::tempdir().unwrap();
    let plain = plain_errsm30(dir.path(), "full.nii");
    let bytes = std::fs::read(&plain).unwrap();
    assert_eq!(bytes.len(), 352 + 60 * 55 * 52 * 4);
    for length in [0, 1, 4, 100, 343, 347, 348, 351, 352, 353, 1000, bytes.len() / 2, bytes.len() - 1] {
        let path = temp_copy_of(dir.path(), &format!("cut{length}.nii"), &bytes[..length]);
        let (error, msg) = read_error(&path);
        if length < 348 {
            assert!(matches!(error, FileError::NotNifti { .. }), "{length}: {error:?}");
        } else {
            assert!(matches!(error, FileError::Truncated { .. }), "{length}: {error:?}");
            assert!(
                msg.contains(&format!(
                    "[60, 55, 52] Float32 voxels need 686400 bytes of data from byte 352, the file holds {}",
                    length.saturating_sub(352)
                )),
                "{msg}"
            );
        }
    }
}

#[test]
fn image_and_mask_on_different_grids() {
    let dir = tempfile::tempdir().unwrap();
    let image = read("spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz");
    let wrong_mask = read(ERRSM30_CORD);
    let error = image.check_same_grid(&wrong_mask, GRID_TOLERANCE_MM).unwrap_err();
    let msg = message(&error, &wrong_mask.path);
    assert!(matches!(error, FileError::GridMismatch { .. }), "{error:?}");
    assert!(msg.contains("sub-errsm11_T2w.nii.gz"), "{msg}");
    assert!(msg.contains("shape [60, 55, 52] differs from [384, 216, 52]"), "{msg}");

    // Every real mask lies on its image's grid.
    for subject in ["errsm11", "errsm18", "errsm21", "errsm23", "errsm30"] {
        let image = read(&format!("spine-t2/sub-{subject}/anat/sub-{subject}_T2w.nii.gz"));
        let mask =
            read(&format!("spine-t2/derivatives/labels/sub-{subject}/anat/sub-{subject}_T2w_label-SC_seg.nii.gz"));
        image.check_same_grid(&mask, GRID_TOLERANCE_MM).unwrap();
    }

    // The errsm30 mask with its origin moved 1.5 mm along x, then 0.0001 mm.
    let image = read(ERRSM30);
    let mask = read(ERRSM30_CORD);
    for (shift, accepted) in [(1.5f32, false), (1e-4, true)] {
        let mut header = mask.header.clone();
        header.srow_x[3] += shift;
        header.quatern_x += shift;
        let path = dir.path().join(format!("shifted_{shift}_SC_seg.nii.gz"));
        WriterOptions::new(&path).reference_header(&header).write_nifti(&mask.data.mapv(|v| v as u8)).unwrap();
        let shifted = Volume::read(&path).unwrap();
        let result = image.check_same_grid(&shifted, GRID_TOLERANCE_MM);
        if accepted {
            result.unwrap();
        } else {
            let error = result.unwrap_err();
            let msg = message(&error, &path);
            assert!(matches!(error, FileError::GridMismatch { .. }), "{error:?}");
            assert!(msg.contains("voxels lie up to 1.5 mm apart (tolerance 0.01 mm)"), "{msg}");
        }
    }
}

#[test]
fn nan_or_infinite_intensities() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let mut data = v.data.clone();
    data[[30, 20, 10]] = f32::NAN;
    let path = dir.path().join("nan_T2w.nii.gz");
    v.write_like(data.view(), VoxelType::Float32, &path).unwrap();
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::NonFinite { count: 1, .. }), "{error:?}");
    assert!(msg.contains("1 voxels are NaN or infinite"), "{msg}");

    data[[0, 0, 0]] = f32::INFINITY;
    data[[1, 0, 0]] = f32::NEG_INFINITY;
    v.write_like(data.view(), VoxelType::Float64, &path).unwrap();
    assert!(matches!(read_error(&path).0, FileError::NonFinite { count: 3, .. }));
}

#[test]
fn two_and_five_dimensional_data() {
    let dir = tempfile::tempdir().unwrap();
    let slice = Array2::<f32>::from_shape_fn((60, 55), |(i, j)| (i * j) as f32);
    let path = dir.path().join("slice.nii.gz");
    WriterOptions::new(&path).write_nifti(&slice).unwrap();
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Dimensions { .. }), "{error:?}");
    assert!(msg.contains("unsupported image dimensions [60, 55]"), "{msg}");

    let vectors = Array5::<f32>::zeros((6, 5, 4, 1, 3));
    let path = dir.path().join("vectors.nii.gz");
    WriterOptions::new(&path).write_nifti(&vectors).unwrap();
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Dimensions { .. }), "{error:?}");
    assert!(msg.contains("[6, 5, 4, 1, 3]"), "{msg}");
}

#[test]
fn four_d_file_with_five_volumes_and_an_invalid_quaternion() {
    let path = sample_file("fixtures/bad_quaternion.nii.gz");
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Dimensions { .. }), "{error:?}");
    assert!(msg.contains("[2, 3, 4, 5]"), "{msg}");

    // Its affine (nibabel: the sform, code 1, since the qform is invalid).
    let header = read_header(&path).unwrap();
    let affine = header_affine(&header, &path).unwrap();
    assert_eq!(
        affine.to_rows(),
        [[0.75, 0.0, 0.0, 10.0], [0.0, -0.75, 0.0, 20.0], [0.0, 0.0, -3.0, 30.0], [0.0, 0.0, 0.0, 1.0]]
    );
    assert_eq!(affine.orientation().to_string(), "RPI");

    // Without the sform the invalid quaternion is the only geometry: an error, as in nibabel.
    let dir = tempfile::tempdir().unwrap();
    let mut header = header.clone();
    header.sform_code = 0;
    let copy = dir.path().join("qform_only_bad_quaternion.nii.gz");
    let data = Array3::<i16>::from_shape_fn((2, 3, 4), |(i, j, k)| (i + 2 * j + 6 * k) as i16);
    WriterOptions::new(&copy).reference_header(&header).write_nifti(&data).unwrap();
    let (error, msg) = read_error(&copy);
    assert!(matches!(error, FileError::Header { .. }), "{error:?}");
    assert!(msg.contains("invalid qform quaternion (b² + c² + d² = 1.0000010 > 1) and no sform"), "{msg}");
}

#[test]
fn non_sagittal_scans() {
    // PAM50_small: 1 x 1 x 2 mm, LAS, thick along S (axial slices).
    let pam50 = read("templates/PAM50_small/PAM50_small_t2.nii.gz");
    let error = check_sagittal(&pam50).unwrap_err();
    let msg = message(&error, &pam50.path);
    assert!(matches!(error, FileError::NotSagittal { .. }), "{error:?}");
    assert!(
        msg.contains("axial slices: voxels are 1 x 1 x 2 mm (LAS), thickest along inferior-superior (voxel axis 2)"),
        "{msg}"
    );

    // sub-unf02 T2*: 4.98 x 4.98 x 37.5 mm, oblique LAS, thick along S.
    let t2star = read("fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2star.nii.gz");
    let error = check_sagittal(&t2star).unwrap_err();
    let msg = message(&error, &t2star.path);
    assert!(matches!(error, FileError::NotSagittal { .. }), "{error:?}");
    assert!(msg.contains("voxels are 4.978 x 4.978 x 37.5 mm (LAS)"), "{msg}");

    // sub-unf01: 1 mm isotropic, oblique RAS, 131 x 141 x 16 voxels: an axial slab.
    let slab = read("fixtures/ivadomed/sub-unf01/anat/sub-unf01_T2w.nii.gz");
    let error = check_sagittal(&slab).unwrap_err();
    let msg = message(&error, &slab.path);
    assert!(matches!(error, FileError::NotSagittal { .. }), "{error:?}");
    assert!(msg.contains("axial slab: 131 x 141 x 16 voxels (RAS) of 1 mm, only 16 mm along voxel axis 2"), "{msg}");

    // The errsm30 anatomy with 3 mm coronal slices (its P axis scaled by 3).
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let mut header = v.header.clone();
    for row in [&mut header.srow_x, &mut header.srow_y, &mut header.srow_z] {
        row[0] *= 3.0;
    }
    let path = dir.path().join("coronal.nii.gz");
    WriterOptions::new(&path).reference_header(&header).write_nifti(&v.data).unwrap();
    let coronal = Volume::read(&path).unwrap();
    let error = check_sagittal(&coronal).unwrap_err();
    let msg = message(&error, &path);
    assert!(
        msg.contains("coronal slices: voxels are 3 x 1 x 1 mm (PSR), thickest along anterior-posterior (voxel axis 0)"),
        "{msg}"
    );
}

#[test]
fn unsupported_data_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int8.nii.gz");
    WriterOptions::new(&path).write_nifti(&Array3::<i8>::zeros((4, 5, 6))).unwrap();
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::DataType { .. }), "{error:?}");
    assert!(msg.contains("unsupported NIfTI data type Int8"), "{msg}");

    let plain = plain_errsm30(dir.path(), "unknown_type.nii");
    patch(&plain, 70, &9999i16.to_ne_bytes());
    let (error, msg) = read_error(&plain);
    assert!(matches!(error, FileError::DataType { .. }), "{error:?}");
    assert!(msg.contains("code 9999 (unknown)"), "{msg}");
}

#[test]
fn invalid_headers() {
    let dir = tempfile::tempdir().unwrap();

    // A valid slope with a NaN intercept (nibabel: "Valid slope but invalid intercept nan").
    let path = plain_errsm30(dir.path(), "nan_intercept.nii");
    patch(&path, 112, &2.0f32.to_ne_bytes());
    patch(&path, 116, &f32::NAN.to_ne_bytes());
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Header { .. }), "{error:?}");
    assert!(msg.contains("scl_slope = 2 but scl_inter = NaN"), "{msg}");

    // vox_offset inside the header.
    let path = plain_errsm30(dir.path(), "low_offset.nii");
    patch(&path, 108, &0.0f32.to_ne_bytes());
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Header { .. }), "{error:?}");
    assert!(msg.contains("vox_offset = 0 lies inside the header"), "{msg}");
    patch(&path, 108, &f32::NAN.to_ne_bytes());
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Header { .. }), "{error:?}");
    assert!(msg.contains("vox_offset = NaN is not a byte offset"), "{msg}");

    // A negative dimension (dim[2] = -55).
    let path = plain_errsm30(dir.path(), "negative_dim.nii");
    patch(&path, 44, &(-55i16).to_ne_bytes());
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Header { .. }), "{error:?}");
    assert!(msg.contains("dimension 2 has -55 voxels"), "{msg}");

    // dim[0] out of range.
    let path = plain_errsm30(dir.path(), "rank0.nii");
    patch(&path, 40, &0i16.to_ne_bytes());
    assert!(matches!(read_error(&path).0, FileError::Header { .. }));

    // A singular sform (its first column zero).
    let v = read(ERRSM30);
    let mut header = v.header.clone();
    for row in [&mut header.srow_x, &mut header.srow_y, &mut header.srow_z] {
        row[0] = 0.0;
    }
    let path = dir.path().join("singular.nii.gz");
    WriterOptions::new(&path).reference_header(&header).write_nifti(&v.data).unwrap();
    let (error, msg) = read_error(&path);
    assert!(matches!(error, FileError::Header { .. }), "{error:?}");
    assert!(msg.contains("singular"), "{msg}");
}

#[test]
fn writing_to_a_bad_path_or_with_a_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let v = read(ERRSM30);
    let path = dir.path().join("map.png");
    let error = v.write_like(v.data.view(), VoxelType::Float32, &path).unwrap_err();
    let msg = message(&error, &path);
    assert!(matches!(error, FileError::Input { .. }), "{error:?}");
    assert!(msg.contains("must end in .nii or .nii.gz"), "{msg}");

    let path = dir.path().join("map.nii.gz");
    let small = Array3::<f32>::zeros((10, 10, 10));
    let error = v.write_like(small.view(), VoxelType::Float32, &path).unwrap_err();
    let msg = message(&error, &path);
    assert!(msg.contains("map shape [10, 10, 10] differs from the reference grid [60, 55, 52]"), "{msg}");
    assert!(!path.exists());

    // A folder that cannot be created (a file is in the way).
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("map.nii.gz");
    let error = v.write_like(v.data.view(), VoxelType::Float32, &path).unwrap_err();
    assert!(matches!(error, FileError::Input { .. }), "{error:?}");
    let msg = message(&error, &blocker);
    assert!(msg.contains("cannot create the output folder"), "{msg}");
}

/// `bytes` gzip-compressed (best: 64 MiB of zeros stay about 64 KB, whichever deflate backend the
/// build unifies flate2 to), as a `.nii.gz` in `dir`.
fn gzip_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    temp_copy_of(dir, name, &encoder.finish().unwrap())
}

/// A 4 x 4 x 4 uint8 image (352 + 64 bytes) followed by `trailing` zero bytes, gzipped.
fn small_image_with_trailing_bytes(dir: &Path, name: &str, trailing: usize) -> PathBuf {
    let plain = dir.join("small.nii");
    let data = Array3::<u8>::from_shape_fn((4, 4, 4), |(i, j, k)| (i + 4 * j + 16 * k) as u8);
    WriterOptions::new(&plain).write_nifti(&data).unwrap();
    let mut bytes = std::fs::read(&plain).unwrap();
    assert_eq!(bytes.len(), 352 + 64);
    bytes.resize(bytes.len() + trailing, 0);
    gzip_file(dir, name, &bytes)
}

/// A gzip stream that inflates far beyond what its header declares is refused after inflating
/// at most the declared size plus the margin; up to the margin, trailing bytes are accepted.
#[test]
fn gzip_bomb_is_refused_before_it_is_inflated() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB of zeros behind a 416-byte image: a 64 KB file.
    let bomb = small_image_with_trailing_bytes(dir.path(), "bomb.nii.gz", 64 << 20);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 400_000);
    let (error, msg) = read_error(&bomb);
    assert!(matches!(error, FileError::Input { .. }), "{error:?}");
    assert!(
        msg.ends_with(
            "bomb.nii.gz: the gzip stream inflates beyond the 416 bytes its header declares (a corrupt or hostile file)"
        ),
        "{msg}"
    );

    let at_margin = small_image_with_trailing_bytes(dir.path(), "at_margin.nii.gz", GZIP_MARGIN_BYTES);
    let v = Volume::read(&at_margin).unwrap();
    assert_eq!(v.data[[3, 2, 1]], (3 + 8 + 16) as f32);
    let over = small_image_with_trailing_bytes(dir.path(), "over.nii.gz", GZIP_MARGIN_BYTES + 1);
    let (_, msg) = read_error(&over);
    assert!(msg.contains("inflates beyond the 416 bytes"), "{msg}");
}

/// Records the message of every tracing event (a subscriber for one test thread).
struct EventRecorder(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for EventRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = String::new();
        event.record(&mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            if field.name() == "message" {
                text = format!("{value:?}");
            }
        });
        self.0.lock().unwrap().push(text);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Reads `path`, returning the volume and the warnings logged meanwhile.
fn read_with_warnings(path: &Path) -> (Volume, Vec<String>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let volume = tracing::subscriber::with_default(EventRecorder(events.clone()), || Volume::read(path).unwrap());
    let warnings = events.lock().unwrap().clone();
    (volume, warnings)
}

/// Zero and negative pixdim are fixed as nibabel does, with one warning naming the file.
#[test]
fn zero_or_negative_pixdim_is_fixed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = plain_errsm30(dir.path(), "bad_pixdim.nii");
    let (_, warnings) = read_with_warnings(&path);
    assert!(warnings.is_empty(), "{warnings:?}");

    patch(&path, 80, &(-0.5f32).to_ne_bytes()); // pixdim[1]
    patch(&path, 88, &0.0f32.to_ne_bytes()); // pixdim[3]
    patch(&path, 254, &0i16.to_ne_bytes()); // sform_code: the qform (and pixdim) give the affine
    let (v, warnings) = read_with_warnings(&path);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert!(!warning.contains('\n'), "{warning}");
    assert!(
        warning.ends_with(
            "bad_pixdim.nii: voxel sizes that are not positive, fixed as nibabel does: \
             pixdim[1] = -0.5 read as 0.5, pixdim[3] = 0 read as 1"
        ),
        "{warning}"
    );
    let spacing = v.spacing_mm();
    assert!((spacing[0] - 0.5).abs() < 1e-6 && (spacing[1] - 1.0).abs() < 1e-6, "{spacing:?}");
    assert!((spacing[2] - 1.0).abs() < 1e-6, "{spacing:?}");
}
