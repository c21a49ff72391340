//! Physical geometry of image volumes: where each voxel sits in the patient, in
//! millimetres.
//!
//! Ward uses NIfTI's and nibabel's world convention, **RAS+**: +x points towards the
//! patient's Right, +y Anterior, +z Superior. DICOM's patient coordinates are LPS+ (+x
//! Left, +y Posterior, +z Superior); a DICOM affine becomes RAS+ by negating its first
//! two rows, as nibabel's `nicom` does.
//!
//! A [`SpatialVolume`] keeps its voxels in storage order (`i` fastest, then `j`, then
//! `k`) and an affine mapping voxel indices `(i, j, k, 1)` to RAS+ millimetres.

/// A 4 x 4 homogeneous affine, row-major: `world = affine * [i, j, k, 1]ᵀ`.
pub type Affine = [[f64; 4]; 4];

/// A scalar volume placed in the world.
#[derive(Clone, Debug, PartialEq)]
pub struct SpatialVolume {
    /// Sizes along the voxel axes `i`, `j`, `k`.
    pub dims: [usize; 3],
    /// `dims[2] * dims[1] * dims[0]` values, `i` fastest (NIfTI storage order).
    pub voxels: Vec<f32>,
    /// Voxel `(i, j, k)` to RAS+ millimetres.
    pub affine: Affine,
}
