//! Writing maps back onto a scan's grid and header, and the grid of a 2-D slice that has no
//! scan behind it.

use std::path::Path;

use ndarray::{Array3, ArrayView3};
use nifti::NiftiHeader;

use super::header::NIFTI1_MIN_VOX_OFFSET;
use super::{Affine, Volume, VoxelType};
use crate::error::{FileError, Result};
use crate::staging::write_atomically;

impl Volume {
    /// An empty grid for maps of a preprocessed 2-D slice that has no scan behind it (the
    /// reference's `.npy` slices): `rows` x `cols` x 1 voxels of `pixel_mm` x `pixel_mm` x 1 mm,
    /// voxel axis i = the slice's rows (superior to inferior), j = its columns (anterior to
    /// posterior), k = left-right, so that NIfTI viewers show it as a sagittal image. The sform
    /// (code 2, aligned anatomical) puts row 0, column 0 at the world origin.
    pub fn sample_grid(path: &Path, rows: usize, cols: usize, pixel_mm: f64) -> Volume {
        let p = pixel_mm as f32;
        let mut header = NiftiHeader {
            dim: [3, rows as u16, cols as u16, 1, 1, 1, 1, 1],
            pixdim: [1.0, p, p, 1.0, 1.0, 1.0, 1.0, 1.0],
            xyzt_units: 2, // mm
            qform_code: 0,
            sform_code: 2,
            srow_x: [0.0, 0.0, 1.0, 0.0],
            srow_y: [0.0, -p, 0.0, 0.0],
            srow_z: [-p, 0.0, 0.0, 0.0],
            ..NiftiHeader::default()
        };
        header.datatype = 16;
        header.bitpix = 32;
        let affine = Affine::from_rows([
            [0.0, 0.0, 1.0, 0.0],
            [0.0, -pixel_mm, 0.0, 0.0],
            [-pixel_mm, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        Volume {
            data: Array3::zeros((rows, cols, 1)),
            affine,
            header,
            voxel_type: VoxelType::Float32,
            path: path.to_path_buf(),
        }
    }

    /// Writes `data` (native voxel order, this volume's shape) onto exactly this volume's grid
    /// and header, as `voxel_type`, atomically (temporary file in the same folder, then rename).
    ///
    /// The written header is the reference header with the sform, qform, their codes and pixdim
    /// unchanged; only the shape (3-D), data type, `scl_slope` = 1, `scl_inter` = 0,
    /// `cal_min`/`cal_max` = 0, the intent (none) and the byte order (native) change. Integer
    /// types round and saturate. `path` must end in `.nii` or `.nii.gz` (gzip).
    pub fn write_like(&self, data: ArrayView3<'_, f32>, voxel_type: VoxelType, path: &Path) -> Result<()> {
        if data.shape() != self.data.shape() {
            return Err(FileError::input(
                path,
                format!("map shape {:?} differs from the reference grid {:?}", data.shape(), self.shape()),
            ));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let compressed = if name.ends_with(".nii.gz") {
            true
        } else if name.ends_with(".nii") {
            false
        } else {
            return Err(FileError::input(path, "output file name must end in .nii or .nii.gz"));
        };
        let mut header = self.header.clone();
        header.scl_slope = 1.0;
        header.scl_inter = 0.0;
        header.dim = [3, self.header.dim[1], self.header.dim[2], self.header.dim[3], 1, 1, 1, 1];
        header.pixdim[4] = 1.0;
        header.cal_min = 0.0;
        header.cal_max = 0.0;
        header.intent_code = 0;
        header.intent_p1 = 0.0;
        header.intent_p2 = 0.0;
        header.intent_p3 = 0.0;
        header.intent_name = [0; 16];
        header.vox_offset = NIFTI1_MIN_VOX_OFFSET as f32;
        header.endianness = nifti::Endianness::native();
        let element_bytes = match voxel_type {
            VoxelType::UInt8 => 1,
            VoxelType::Int16 | VoxelType::UInt16 => 2,
            VoxelType::Int32 | VoxelType::Float32 => 4,
            VoxelType::Float64 => 8,
        };
        write_atomically(path, |tmp| {
            let options = nifti::writer::WriterOptions::new(tmp).reference_header(&header);
            let result = match voxel_type {
                VoxelType::UInt8 => options.write_nifti(&data.mapv(|v| v.round().clamp(0.0, 255.0) as u8)),
                VoxelType::Int16 => options.write_nifti(&data.mapv(|v| v.round().clamp(-32768.0, 32767.0) as i16)),
                VoxelType::UInt16 => options.write_nifti(&data.mapv(|v| v.round().clamp(0.0, 65535.0) as u16)),
                VoxelType::Int32 => options.write_nifti(&data.mapv(|v| v.round() as i32)),
                VoxelType::Float32 => options.write_nifti(&data),
                VoxelType::Float64 => options.write_nifti(&data.mapv(|v| v as f64)),
            };
            result.map_err(|e| match e {
                nifti::NiftiError::Io(io) => FileError::input(path, format!("cannot write file: {io}")),
                other => FileError::input(path, format!("cannot write NIfTI: {other}")),
            })?;
            if !compressed {
                // The writer flushes an uncompressed file when dropping its buffer, where a
                // failure (a full disk) would go unseen: check that everything arrived.
                let expected = (NIFTI1_MIN_VOX_OFFSET + data.len() * element_bytes) as u64;
                let written = std::fs::metadata(tmp)
                    .map_err(|e| FileError::input(path, format!("cannot write file: {e}")))?
                    .len();
                if written != expected {
                    return Err(FileError::input(
                        path,
                        format!("incomplete write: {written} of {expected} bytes (is the disk full?)"),
                    ));
                }
            }
            Ok(())
        })
    }
}
