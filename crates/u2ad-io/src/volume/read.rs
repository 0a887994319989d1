//! Reading a `.nii` or `.nii.gz` file: the header alone, or the whole volume, with the gzip
//! stream inflated no further than its header declares and the voxels decoded and scaled.

use std::io::Read;
use std::path::Path;

use ndarray::Array3;
use nifti::NiftiHeader;

use super::header::{check_layout, fixed_zooms_warning, parse_header, scaling, Layout, NIFTI1_HEADER_BYTES};
use super::{header_affine, Volume, VoxelType};
use crate::error::{FileError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// How far a gzip stream may inflate beyond the size its header declares (trailing bytes) before
/// it is refused as corrupt or hostile (a gzip bomb).
pub const GZIP_MARGIN_BYTES: usize = 1 << 20;

/// The file's bytes (gunzipped when it starts with the gzip magic, whatever its name), its header
/// and its checked layout. A gzip stream is inflated in two steps: the header, then at most the
/// size that header declares plus [`GZIP_MARGIN_BYTES`], so that a gzip bomb is refused before it
/// is inflated in full; a stream read to its end has its checksum verified.
fn read_checked(path: &Path) -> Result<(Vec<u8>, NiftiHeader, Layout)> {
    let raw = std::fs::read(path).map_err(|e| FileError::io(path, e))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        let header = parse_header(&raw, path)?;
        let layout = check_layout(&header, path)?;
        return Ok((raw, header, layout));
    }
    let mut stream = flate2::read::MultiGzDecoder::new(&raw[..]);
    let mut bytes = Vec::new();
    inflate_up_to(&mut stream, NIFTI1_HEADER_BYTES, &mut bytes, path)?;
    let header = parse_header(&bytes, path)?;
    let layout = check_layout(&header, path)?;
    let declared = layout.offset.saturating_add(layout.nbytes);
    let limit = declared.saturating_add(GZIP_MARGIN_BYTES);
    // Room for the whole stream only where the trailer's size agrees with the header.
    let stated = gzip_trailer_size(&raw);
    if (declared..=limit).contains(&stated) {
        let _ = bytes.try_reserve_exact(stated.saturating_sub(bytes.len()));
    }
    inflate_up_to(&mut stream, limit.saturating_add(1), &mut bytes, path)?;
    if bytes.len() > limit {
        return Err(FileError::input(
            path,
            format!(
                "the gzip stream inflates beyond the {declared} bytes its header declares (a corrupt or hostile file)"
            ),
        ));
    }
    Ok((bytes, header, layout))
}

/// Inflates `stream` into `out` until `out` holds `limit` bytes or the stream ends.
fn inflate_up_to(stream: &mut impl Read, limit: usize, out: &mut Vec<u8>, path: &Path) -> Result<()> {
    let wanted = limit.saturating_sub(out.len()) as u64;
    stream.take(wanted).read_to_end(out).map(drop).map_err(|e| gzip_error(path, e))
}

/// The uncompressed size the gzip trailer states (mod 2³²), bounded by deflate's largest
/// expansion (~1032 times), which bounds a corrupt trailer's claim.
fn gzip_trailer_size(raw: &[u8]) -> usize {
    let Some(trailer) = raw.len().checked_sub(4).and_then(|start| raw.get(start..)) else { return 0 };
    let stated = u32::from_le_bytes(trailer.try_into().unwrap_or([0; 4])) as usize;
    stated.min(raw.len().saturating_mul(1032))
}

/// Reads the first `limit` bytes of a file (gunzipped when it is gzip).
fn read_file_prefix(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|e| FileError::io(path, e))?;
    let mut magic = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut magic).map_err(|e| FileError::io(path, e))?;
    let mut out = Vec::with_capacity(limit);
    if magic == GZIP_MAGIC {
        let reader = std::io::Cursor::new(magic).chain(std::io::BufReader::new(file));
        let mut decoder = flate2::read::MultiGzDecoder::new(reader).take(limit as u64);
        decoder.read_to_end(&mut out).map_err(|e| gzip_error(path, e))?;
    } else {
        out.extend_from_slice(&magic);
        file.take(limit.saturating_sub(2) as u64).read_to_end(&mut out).map_err(|e| FileError::io(path, e))?;
    }
    Ok(out)
}

fn gzip_error(path: &Path, err: std::io::Error) -> FileError {
    let reason = match err.kind() {
        std::io::ErrorKind::UnexpectedEof => "the gzip stream ends early".to_string(),
        _ => err.to_string(),
    };
    FileError::Truncated { path: path.to_path_buf(), reason }
}

/// Reads the header only (cheap: grids can be compared before any data is decoded).
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    let bytes = read_file_prefix(path, NIFTI1_HEADER_BYTES)?;
    parse_header(&bytes, path)
}

/// Voxel values in file order as f32, after `value * slope + inter` (computed in f64).
fn decode_voxels(raw: &[u8], voxel_type: VoxelType, big_endian: bool, scale: Option<(f64, f64)>) -> Vec<f32> {
    fn decode<const N: usize>(raw: &[u8], scale: Option<(f64, f64)>, convert: impl Fn([u8; N]) -> f64) -> Vec<f32> {
        let element = |chunk: &[u8]| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(chunk);
            convert(bytes)
        };
        let chunks = raw.chunks_exact(N);
        match scale {
            Some((slope, inter)) => chunks.map(|c| (element(c) * slope + inter) as f32).collect(),
            None => chunks.map(|c| element(c) as f32).collect(),
        }
    }
    macro_rules! decode_as {
        ($t:ty, $n:literal) => {
            if big_endian {
                decode::<$n>(raw, scale, |b| <$t>::from_be_bytes(b) as f64)
            } else {
                decode::<$n>(raw, scale, |b| <$t>::from_le_bytes(b) as f64)
            }
        };
    }
    match voxel_type {
        VoxelType::UInt8 => decode_as!(u8, 1),
        VoxelType::Int16 => decode_as!(i16, 2),
        VoxelType::UInt16 => decode_as!(u16, 2),
        VoxelType::Int32 => decode_as!(i32, 4),
        VoxelType::Float32 => decode_as!(f32, 4),
        VoxelType::Float64 => decode_as!(f64, 8),
    }
}

impl Volume {
    /// Reads a `.nii` or `.nii.gz` 3-D image (or 4-D with one volume) as nibabel reads it: the
    /// voxel values after `scl_slope`/`scl_inter`, the affine of `get_best_affine`. Gzip is
    /// recognised by its magic bytes, not the file name. Every problem with the file is a
    /// one-line [`FileError`] naming it; voxels that are NaN or infinite are an error.
    pub fn read(path: impl AsRef<Path>) -> Result<Volume> {
        let path = path.as_ref();
        let (bytes, header, layout) = read_checked(path)?;
        let scale = scaling(&header, path)?;
        let affine = header_affine(&header, path)?;
        if let Some(warning) = fixed_zooms_warning(&header, path) {
            tracing::warn!("{warning}");
        }

        let available = bytes.len().saturating_sub(layout.offset);
        if available < layout.nbytes {
            return Err(FileError::Truncated {
                path: path.to_path_buf(),
                reason: format!(
                    "{:?} {:?} voxels need {} bytes of data from byte {}, the file holds {}",
                    layout.shape, layout.datatype, layout.nbytes, layout.offset, available
                ),
            });
        }
        let raw = &bytes[layout.offset..layout.offset + layout.nbytes];
        let big_endian = header.endianness == nifti::Endianness::Big;
        let values = decode_voxels(raw, layout.voxel_type, big_endian, scale);
        drop(bytes);
        // NIfTI stores voxels with i fastest (Fortran order); `data` is in standard layout.
        let [nx, ny, nz] = layout.shape;
        let mut standard = vec![0f32; values.len()];
        for (row, file_row) in values.chunks_exact(nx).enumerate() {
            let (j, k) = (row % ny, row / ny);
            for (i, &v) in file_row.iter().enumerate() {
                standard[(i * ny + j) * nz + k] = v;
            }
        }
        drop(values);
        let data = Array3::from_shape_vec(layout.shape, standard)
            .map_err(|e| FileError::NotNifti { path: path.to_path_buf(), reason: e.to_string() })?;
        let non_finite = data.iter().filter(|v| !v.is_finite()).count();
        if non_finite > 0 {
            return Err(FileError::NonFinite { path: path.to_path_buf(), count: non_finite });
        }
        Ok(Volume { data, affine, header, voxel_type: layout.voxel_type, path: path.to_path_buf() })
    }
}
