//! NIfTI reading, orientation, canonical reorientation and writing, checked against nibabel.
//!
//! Every literal below was computed with nibabel 5.4 / numpy 2.4 on the files of the shared data
//! (`nib.load(f)`: `img.shape`, `img.affine`, `nib.aff2axcodes`, `img.get_fdata()` sums and
//! voxels; `nib.as_closest_canonical(img)` for the canonical grids; `header.get_best_affine()`
//! after editing the form codes for the synthetic headers).

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, Array5, Axis};
use nifti::writer::WriterOptions;
use nifti::NiftiHeader;
use u2ad_data::sample_file;
use u2ad_io::volume::{check_sagittal, read_header, Affine, Volume, VoxelType};

struct Expected {
    file: &'static str,
    shape: [usize; 3],
    voxel_type: VoxelType,
    spacing: [f64; 3],
    axcodes: &'static str,
    affine: [[f64; 4]; 3],
    sum: f64,
    nonzero: usize,
    max_at: ([usize; 3], f64),
    centre: ([usize; 3], f64),
}

/// nibabel's view of every 3-D NIfTI file in the shared data (bad_quaternion.nii.gz, the one
/// 4-D file, is in `tests/bad_input.rs`).
const EXPECTED: &[Expected] = &[
    Expected {
        file: "fixtures/ivadomed/derivatives/labels/sub-unf01/anat/sub-unf01_T2w_labels-disc-manual.nii.gz",
        shape: [131, 141, 16],
        voxel_type: VoxelType::Float32,
        spacing: [1.0000000023685163, 1.0000000230094594, 0.9999999053275072],
        axcodes: "RAS",
        affine: [
            [1.0, 6.833639076830877e-08, 6.882606248836964e-05, -64.12969970703125],
            [-1.1189840734004974e-05, 0.9868561029434204, 0.16160158812999725, -59.711036682128906],
            [-6.791038322262466e-05, -0.16160160303115845, 0.9868559837341309, -2.3794872760772705],
        ],
        sum: 3.0,
        nonzero: 1,
        max_at: ([65, 61, 8], 3.0),
        centre: ([65, 70, 8], 0.0),
    },
    Expected {
        file: "fixtures/ivadomed/derivatives/labels/sub-unf01/anat/sub-unf01_T2w_seg-manual.nii.gz",
        shape: [131, 141, 16],
        voxel_type: VoxelType::Float32,
        spacing: [1.0000000023685163, 1.0000000230094594, 0.9999999053275072],
        axcodes: "RAS",
        affine: [
            [1.0, 6.833638366288142e-08, 6.882606248836964e-05, -64.12969970703125],
            [-1.1189840734004974e-05, 0.9868561029434204, 0.16160158812999725, -59.711036682128906],
            [-6.791038322262466e-05, -0.16160160303115845, 0.9868559837341309, -2.3794872760772705],
        ],
        sum: 1227.0,
        nonzero: 1227,
        max_at: ([62, 53, 0], 1.0),
        centre: ([65, 70, 8], 0.0),
    },
    Expected {
        file: "fixtures/ivadomed/sub-unf01/anat/sub-unf01_T2w.nii.gz",
        shape: [131, 141, 16],
        voxel_type: VoxelType::Float32,
        spacing: [1.0000000023685163, 1.0000000230094594, 0.9999999053275072],
        axcodes: "RAS",
        affine: [
            [1.0, 6.833639076830877e-08, 6.882606248836964e-05, -64.12969970703125],
            [-1.1189840734004974e-05, 0.9868561029434204, 0.16160158812999725, -59.711036682128906],
            [-6.791038322262466e-05, -0.16160160303115845, 0.9868559837341309, -2.3794872760772705],
        ],
        sum: 50434060.52616491,
        nonzero: 115761,
        max_at: ([57, 58, 0], 3021.85498046875),
        centre: ([65, 70, 8], 644.9576416015625),
    },
    Expected {
        file: "fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2star.nii.gz",
        shape: [45, 45, 2],
        voxel_type: VoxelType::Int16,
        spacing: [4.977777846993332, 4.977777844423984, 37.50001396697756],
        axcodes: "LAS",
        affine: [
            [-4.975336074829102, 1.5756992155502303e-08, -1.1744322776794434, 113.01468658447266],
            [-0.010880538262426853, 4.965639114379883, 2.615997314453125, -107.31163787841797],
            [-0.15551479160785675, -0.34741970896720886, 37.39021682739258, -15.645646095275879],
        ],
        sum: 762255.0,
        nonzero: 3872,
        max_at: ([39, 11, 0], 1131.0),
        centre: ([22, 22, 1], 161.0),
    },
    Expected {
        file: "fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2w.nii.gz",
        shape: [6, 32, 32],
        voxel_type: VoxelType::Float64,
        spacing: [8.5333251953125, 8.0, 8.0],
        axcodes: "RAS",
        affine: [
            [8.5333251953125, 0.0, 0.0, -24.38556480407715],
            [0.0, 8.0, 3.917600271963195e-11, -122.89932250976562],
            [0.0, -3.917600271963195e-11, 8.0, -121.1759033203125],
        ],
        sum: 3552580.0,
        nonzero: 5309,
        max_at: ([0, 6, 9], 4095.0),
        centre: ([3, 16, 16], 580.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_label-SC_seg.nii.gz",
        shape: [384, 216, 52],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -26.155860900878906],
            [-1.0, 0.0, 0.0, 209.25106811523438],
            [0.0, 1.0, -0.0, -130.832763671875],
        ],
        sum: 13574.0,
        nonzero: 13574,
        max_at: ([189, 168, 27], 1.0),
        centre: ([192, 108, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm11/anat/sub-errsm11_T2w_label-vertebrae_dlabel.nii.gz",
        shape: [384, 216, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -26.155860900878906],
            [-1.0, 0.0, 0.0, 209.25106811523438],
            [0.0, 1.0, -0.0, -130.832763671875],
        ],
        sum: 11.0,
        nonzero: 2,
        max_at: ([230, 76, 32], 9.0),
        centre: ([192, 108, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm18/anat/sub-errsm18_T2w_label-SC_seg.nii.gz",
        shape: [384, 215, 52],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -26.195186614990234],
            [-1.0, 0.0, 0.0, 200.9432373046875],
            [0.0, 1.0, -0.0, -142.887939453125],
        ],
        sum: 14655.0,
        nonzero: 14655,
        max_at: ([192, 214, 22], 1.0),
        centre: ([192, 107, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm18/anat/sub-errsm18_T2w_label-vertebrae_dlabel.nii.gz",
        shape: [384, 215, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -26.195186614990234],
            [-1.0, 0.0, 0.0, 200.9432373046875],
            [0.0, 1.0, -0.0, -142.887939453125],
        ],
        sum: 11.0,
        nonzero: 2,
        max_at: ([234, 61, 26], 9.0),
        centre: ([192, 107, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm21/anat/sub-errsm21_T2w_label-SC_seg.nii.gz",
        shape: [384, 215, 52],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -29.80964469909668],
            [-1.0, 0.0, 0.0, 215.86708068847656],
            [0.0, 1.0, -0.0, -131.8795623779297],
        ],
        sum: 13904.0,
        nonzero: 13904,
        max_at: ([209, 114, 27], 1.0),
        centre: ([192, 107, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm21/anat/sub-errsm21_T2w_label-vertebrae_dlabel.nii.gz",
        shape: [384, 215, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -29.80964469909668],
            [-1.0, 0.0, 0.0, 215.86708068847656],
            [0.0, 1.0, 0.0, -131.8795623779297],
        ],
        sum: 11.0,
        nonzero: 2,
        max_at: ([232, 69, 30], 9.0),
        centre: ([192, 107, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm23/anat/sub-errsm23_T2w_label-SC_seg.nii.gz",
        shape: [384, 225, 52],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -24.990367889404297],
            [-1.0, 0.0, 0.0, 199.73841857910156],
            [0.0, 1.0, -0.0, -154.93612670898438],
        ],
        sum: 12832.0,
        nonzero: 12832,
        max_at: ([220, 221, 29], 1.0),
        centre: ([192, 112, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm23/anat/sub-errsm23_T2w_label-vertebrae_dlabel.nii.gz",
        shape: [384, 225, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -24.990367889404297],
            [-1.0, 0.0, 0.0, 199.73841857910156],
            [0.0, 1.0, 0.0, -154.93612670898438],
        ],
        sum: 11.0,
        nonzero: 2,
        max_at: ([240, 89, 29], 9.0),
        centre: ([192, 112, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-CSF_probseg.nii.gz",
        shape: [60, 55, 52],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -32.21928405761719],
            [-1.0, 0.0, 0.0, 31.786605834960938],
            [0.0, 1.0, -0.0, -19.321670532226562],
        ],
        sum: 7856.323157310985,
        nonzero: 9345,
        max_at: ([23, 52, 25], 1.0),
        centre: ([30, 27, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-SC_seg.nii.gz",
        shape: [60, 55, 52],
        voxel_type: VoxelType::UInt8,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -32.21928405761719],
            [-1.0, 0.0, 0.0, 31.786605834960938],
            [0.0, 1.0, 0.0, -19.321670532226562],
        ],
        sum: 4275.0,
        nonzero: 4275,
        max_at: ([26, 44, 26], 1.0),
        centre: ([30, 27, 26], 1.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-vertebrae_dlabel.nii.gz",
        shape: [60, 55, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -32.21928405761719],
            [-1.0, 0.0, 0.0, 31.786605834960938],
            [0.0, 1.0, 0.0, -19.321670532226562],
        ],
        sum: 12.0,
        nonzero: 3,
        max_at: ([32, 9, 25], 5.0),
        centre: ([30, 27, 26], 0.0),
    },
    Expected {
        file: "spine-t2/derivatives/labels/sub-errsm30/anat/sub-errsm30_T2w_label-vertebrae_dseg.nii.gz",
        shape: [60, 55, 52],
        voxel_type: VoxelType::Float64,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -32.21928405761719],
            [-1.0, 0.0, 0.0, 31.786605834960938],
            [0.0, 1.0, 0.0, -19.321670532226562],
        ],
        sum: 12208.0,
        nonzero: 4024,
        max_at: ([29, 1, 26], 5.0),
        centre: ([30, 27, 26], 3.0),
    },
    Expected {
        file: "spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz",
        shape: [384, 216, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -26.155860900878906],
            [-1.0, 0.0, 0.0, 209.25106811523438],
            [0.0, 1.0, -0.0, -130.832763671875],
        ],
        sum: 162678084.0,
        nonzero: 3823361,
        max_at: ([211, 109, 34], 1644.0),
        centre: ([192, 108, 26], 195.0),
    },
    Expected {
        file: "spine-t2/sub-errsm18/anat/sub-errsm18_T2w.nii.gz",
        shape: [384, 215, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -26.195186614990234],
            [-1.0, 0.0, 0.0, 200.9432373046875],
            [0.0, 1.0, -0.0, -142.887939453125],
        ],
        sum: 278675618.0,
        nonzero: 3814940,
        max_at: ([218, 139, 30], 2206.0),
        centre: ([192, 107, 26], 126.0),
    },
    Expected {
        file: "spine-t2/sub-errsm21/anat/sub-errsm21_T2w.nii.gz",
        shape: [384, 215, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -29.80964469909668],
            [-1.0, 0.0, 0.0, 215.86708068847656],
            [0.0, 1.0, 0.0, -131.8795623779297],
        ],
        sum: 239430446.0,
        nonzero: 3761720,
        max_at: ([208, 124, 32], 1809.0),
        centre: ([192, 107, 26], 183.0),
    },
    Expected {
        file: "spine-t2/sub-errsm23/anat/sub-errsm23_T2w.nii.gz",
        shape: [384, 225, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -24.990367889404297],
            [-1.0, 0.0, 0.0, 199.73841857910156],
            [0.0, 1.0, 0.0, -154.93612670898438],
        ],
        sum: 184338242.0,
        nonzero: 3681119,
        max_at: ([230, 126, 21], 1567.0),
        centre: ([192, 112, 26], 55.0),
    },
    Expected {
        file: "spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz",
        shape: [60, 55, 52],
        voxel_type: VoxelType::Int16,
        spacing: [1.0, 1.0, 1.0],
        axcodes: "PSR",
        affine: [
            [0.0, 0.0, 1.0, -32.21928405761719],
            [-1.0, 0.0, 0.0, 31.786605834960938],
            [0.0, 1.0, 0.0, -19.321670532226562],
        ],
        sum: 22473922.0,
        nonzero: 168795,
        max_at: ([29, 5, 15], 1257.0),
        centre: ([30, 27, 26], 382.0),
    },
    Expected {
        file: "templates/MNI-Poly-AMU/MNI-Poly-AMU_CSF.nii.gz",
        shape: [120, 120, 600],
        voxel_type: VoxelType::Float32,
        spacing: [0.5, 0.5, 0.5],
        axcodes: "LAS",
        affine: [[-0.5, -0.0, 0.0, 30.0], [-0.0, 0.5, -0.0, -30.0], [0.0, 0.0, 0.5, -200.0]],
        sum: 240887.0,
        nonzero: 240887,
        max_at: ([32, 71, 307], 1.0),
        centre: ([60, 60, 300], 0.0),
    },
    Expected {
        file: "templates/MNI-Poly-AMU/MNI-Poly-AMU_T2.nii.gz",
        shape: [30, 30, 150],
        voxel_type: VoxelType::Float32,
        spacing: [2.0, 2.0, 2.0],
        axcodes: "LAS",
        affine: [[-2.0, -0.0, 0.0, 29.25], [-0.0, 2.0, -0.0, -29.25], [0.0, 0.0, 2.0, -199.25]],
        sum: 73002185.91469291,
        nonzero: 135000,
        max_at: ([16, 18, 123], 6543.35498046875),
        centre: ([15, 15, 75], 1043.230712890625),
    },
    Expected {
        file: "templates/MNI-Poly-AMU/MNI-Poly-AMU_cord.nii.gz",
        shape: [120, 120, 600],
        voxel_type: VoxelType::UInt8,
        spacing: [0.5, 0.5, 0.5],
        axcodes: "LAS",
        affine: [[-0.5, -0.0, 0.0, 30.0], [-0.0, 0.5, -0.0, -30.0], [0.0, 0.0, 0.5, -200.0]],
        sum: 146025.0,
        nonzero: 146025,
        max_at: ([45, 61, 534], 1.0),
        centre: ([60, 60, 300], 1.0),
    },
    Expected {
        file: "templates/MNI-Poly-AMU/MNI-Poly-AMU_level.nii.gz",
        shape: [120, 120, 600],
        voxel_type: VoxelType::Float32,
        spacing: [0.5, 0.5, 0.5],
        axcodes: "LAS",
        affine: [[-0.5, -0.0, 0.0, 30.0], [-0.0, 0.5, -0.0, -30.0], [0.0, 0.0, 0.5, -200.0]],
        sum: 679854.0,
        nonzero: 103475,
        max_at: ([50, 59, 26], 13.0),
        centre: ([60, 60, 300], 7.0),
    },
    Expected {
        file: "templates/PAM50_small/PAM50_small_cord.nii.gz",
        shape: [70, 70, 275],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 2.0],
        axcodes: "LAS",
        affine: [[-1.0, 0.0, 0.0, 35.0], [0.0, 1.0, 0.0, -35.0], [0.0, 0.0, 2.0, -274.5]],
        sum: 9520.0,
        nonzero: 9520,
        max_at: ([29, 35, 194], 1.0),
        centre: ([35, 35, 137], 1.0),
    },
    Expected {
        file: "templates/PAM50_small/PAM50_small_label_disc.nii.gz",
        shape: [70, 70, 275],
        voxel_type: VoxelType::Float32,
        spacing: [1.0, 1.0, 2.0],
        axcodes: "LAS",
        affine: [[-1.0, 0.0, 0.0, 35.0], [0.0, 1.0, 0.0, -35.0], [0.0, 0.0, 2.0, -274.5]],
        sum: 189.0,
        nonzero: 18,
        max_at: ([35, 35, 42], 19.0),
        centre: ([35, 35, 137], 0.0),
    },
    Expected {
        file: "templates/PAM50_small/PAM50_small_levels.nii.gz",
        shape: [70, 70, 275],
        voxel_type: VoxelType::UInt16,
        spacing: [1.0, 1.0, 2.0],
        axcodes: "LAS",
        affine: [[-1.0, 0.0, 0.0, 35.0], [0.0, 1.0, 0.0, -35.0], [0.0, 0.0, 2.0, -274.5]],
        sum: 113817.0,
        nonzero: 10958,
        max_at: ([32, 35, 26], 20.0),
        centre: ([35, 35, 137], 12.0),
    },
    Expected {
        file: "templates/PAM50_small/PAM50_small_t2.nii.gz",
        shape: [70, 70, 275],
        voxel_type: VoxelType::UInt16,
        spacing: [1.0, 1.0, 2.0],
        axcodes: "LAS",
        affine: [[-1.0, 0.0, 0.0, 35.0], [0.0, 1.0, 0.0, -35.0], [0.0, 0.0, 2.0, -274.5]],
        sum: 553930311.0,
        nonzero: 1277430,
        max_at: ([42, 40, 242], 4433.0),
        centre: ([35, 35, 137], 810.0),
    },
];

const ERRSM30: &str = "spine-t2/sub-errsm30/anat/sub-errsm30_T2w.nii.gz";
const ERRSM11: &str = "spine-t2/sub-errsm11/anat/sub-errsm11_T2w.nii.gz";
const PAM50_T2: &str = "templates/PAM50_small/PAM50_small_t2.nii.gz";
const UNF01: &str = "fixtures/ivadomed/sub-unf01/anat/sub-unf01_T2w.nii.gz";
const UNF02_T2STAR: &str = "fixtures/ivadomed/sub-unf02/anat/sub-unf02_T2star.nii.gz";

fn read(relative: &str) -> Volume {
    Volume::read(sample_file(relative)).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_affine_close(actual: &Affine, expected: &[[f64; 4]; 3], tolerance: f64, what: &str) {
    let rows = actual.to_rows();
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (rows[r][c] - expected[r][c]).abs() <= tolerance,
                "{what}: affine[{r}][{c}] = {} but nibabel says {}",
                rows[r][c],
                expected[r][c]
            );
        }
    }
    assert_eq!(rows[3], [0.0, 0.0, 0.0, 1.0], "{what}: last affine row");
}

fn sum(data: &Array3<f32>) -> f64 {
    data.iter().map(|&v| v as f64).sum()
}

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

/// Stores `affine` in the header's sform (code 2) and/or qform (code 1, quaternion + qfac +
/// pixdim, as the NIfTI-1 standard defines them; the affine's axes must be orthogonal).
fn set_forms(header: &mut NiftiHeader, affine: &Affine, sform: bool, qform: bool) {
    let m = affine.0;
    for c in 0..4 {
        header.srow_x[c] = m[(0, c)] as f32;
        header.srow_y[c] = m[(1, c)] as f32;
        header.srow_z[c] = m[(2, c)] as f32;
    }
    header.sform_code = if sform { 2 } else { 0 };
    let zooms = affine.spacing_mm();
    let mut r = nalgebra::Matrix3::<f64>::from_fn(|row, col| m[(row, col)] / zooms[col]);
    let qfac = if r.determinant() < 0.0 {
        for row in 0..3 {
            r[(row, 2)] = -r[(row, 2)];
        }
        -1.0
    } else {
        1.0
    };
    let trace = r[(0, 0)] + r[(1, 1)] + r[(2, 2)];
    let (w, x, y, z) = if trace > 0.0 {
        let s = 0.5 / (trace + 1.0).sqrt();
        (0.25 / s, (r[(2, 1)] - r[(1, 2)]) * s, (r[(0, 2)] - r[(2, 0)]) * s, (r[(1, 0)] - r[(0, 1)]) * s)
    } else if r[(0, 0)] > r[(1, 1)] && r[(0, 0)] > r[(2, 2)] {
        let s = 2.0 * (1.0 + r[(0, 0)] - r[(1, 1)] - r[(2, 2)]).sqrt();
        ((r[(2, 1)] - r[(1, 2)]) / s, 0.25 * s, (r[(0, 1)] + r[(1, 0)]) / s, (r[(0, 2)] + r[(2, 0)]) / s)
    } else if r[(1, 1)] > r[(2, 2)] {
        let s = 2.0 * (1.0 + r[(1, 1)] - r[(0, 0)] - r[(2, 2)]).sqrt();
        ((r[(0, 2)] - r[(2, 0)]) / s, (r[(0, 1)] + r[(1, 0)]) / s, 0.25 * s, (r[(1, 2)] + r[(2, 1)]) / s)
    } else {
        let s = 2.0 * (1.0 + r[(2, 2)] - r[(0, 0)] - r[(1, 1)]).sqrt();
        ((r[(1, 0)] - r[(0, 1)]) / s, (r[(0, 2)] + r[(2, 0)]) / s, (r[(1, 2)] + r[(2, 1)]) / s, 0.25 * s)
    };
    let sign = if w < 0.0 { -1.0 } else { 1.0 };
    header.quatern_b = (sign * x) as f32;
    header.quatern_c = (sign * y) as f32;
    header.quatern_d = (sign * z) as f32;
    header.quatern_x = m[(0, 3)] as f32;
    header.quatern_y = m[(1, 3)] as f32;
    header.quatern_z = m[(2, 3)] as f32;
    header.pixdim[0] = qfac as f32;
    for (pixdim, zoom) in header.pixdim[1..4].iter_mut().zip(zooms) {
        *pixdim = zoom as f32;
    }
    header.qform_code = if qform { 1 } else { 0 };
}

/// Writes `data` with a default header carrying `affine` in the sform and/or qform.
fn write_with_affine(path: &Path, data: &Array3<f32>, affine: &Affine, sform: bool, qform: bool) {
    let mut header = NiftiHeader::default();
    set_forms(&mut header, affine, sform, qform);
    WriterOptions::new(path).reference_header(&header).write_nifti(data).unwrap();
}

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
