//! Physical geometry of image volumes: where each voxel sits in the patient, in
//! millimetres, and the operations that keep track of it (reorientation, resampling to
//! a voxel spacing, resizing, cropping and padding, slicing along an anatomical axis).
//!
//! Ward uses NIfTI's and nibabel's world convention, **RAS+**: +x points towards the
//! patient's Right, +y Anterior, +z Superior. DICOM's patient coordinates are LPS+ (+x
//! Left, +y Posterior, +z Superior); a DICOM affine becomes RAS+ by negating its first
//! two rows, as nibabel's `nicom` does.
//!
//! A [`SpatialVolume`] keeps its voxels in storage order (`i` fastest, then `j`, then
//! `k`) and an affine mapping voxel indices `(i, j, k, 1)` to RAS+ millimetres. Every
//! operation here returns a new volume whose affine still maps its voxel centres to the
//! right place:
//!
//! | operation | like | grid |
//! |---|---|---|
//! | [`SpatialVolume::orientation`] | nibabel `aff2axcodes` | |
//! | [`SpatialVolume::reoriented`] | nibabel `as_reoriented(ornt_transform(io_orientation(A), axcodes2ornt(codes)))` | permutation and flips only, no interpolation |
//! | [`SpatialVolume::resampled`] | MONAI `Spacing` (`scale_extent = False`, `padding_mode = "border"`) | voxel centres; the first voxel centre is kept; `round((n - 1) * old / new) + 1` voxels |
//! | [`SpatialVolume::resized`] | PyTorch `interpolate(align_corners = False)` | half-voxel centres: output `o` samples input `(o + 0.5) * n / m - 0.5` |
//! | [`SpatialVolume::crop_or_pad`] | MONAI `ResizeWithPadOrCrop` (`method = "symmetric"`) | no interpolation; see [`crop_or_pad_start`] for the odd voxel |
//! | [`SpatialVolume::slices`] | | 2D slices normal to S/I, A/P or R/L |
//!
//! Linear resampling that shrinks an axis smooths it first (anti-aliasing), following
//! scikit-image's `resize(anti_aliasing=True)`: a Gaussian of `sigma = (factor - 1) / 2`
//! input voxels, `factor = old / new` samples per output sample (for spacings `new / old`
//! millimetres), truncated at 4 sigma and mirrored at the borders like
//! `scipy.ndimage.gaussian_filter(..., mode="mirror", truncate=4.0)` (skimage's
//! default `mode="reflect"` is ndimage's `"mirror"`). Nearest-neighbour resampling is
//! never smoothed, so label maps keep their values.

use std::fmt;
use std::str::FromStr;

use crate::readers::Resample;
use crate::readers::resample::{Taps, apply_axes, linear_taps, nearest_taps, resize_taps};

/// A 4 x 4 homogeneous affine, row-major: `world = affine * [i, j, k, 1]ᵀ`.
pub type Affine = [[f64; 4]; 4];

/// The most voxels an operation here makes (512 Mi, 2 GiB of `f32`): a tiny spacing
/// or a huge size is an error, not an out-of-memory abort.
pub const MAX_VOXELS: usize = 1 << 29;

/// Why a geometric operation cannot be done.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    /// The affine is not usable: NaN or infinite entries, a last row other than
    /// `[0, 0, 0, 1]`, a zero voxel size, or axes that are (nearly) parallel.
    #[error("affine {affine}: {reason}")]
    Affine {
        /// The affine, written out.
        affine: String,
        /// What is wrong.
        reason: String,
    },
    /// An orientation code that is not three distinct axis letters.
    #[error("orientation {code:?}: {reason}")]
    Orientation {
        /// The code as given.
        code: String,
        /// What is wrong.
        reason: String,
    },
    /// A size, spacing or voxel array that does not fit.
    #[error("{0}")]
    Size(String),
}

fn affine_error(a: &Affine, reason: impl Into<String>) -> GeometryError {
    GeometryError::Affine {
        affine: format!("{a:?}"),
        reason: reason.into(),
    }
}

/// One end of a world axis: the direction in which a voxel axis increases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AxisCode {
    /// Towards the patient's right (+x).
    R,
    /// Towards the patient's left (-x).
    L,
    /// Anterior (+y).
    A,
    /// Posterior (-y).
    P,
    /// Superior (+z).
    S,
    /// Inferior (-z).
    I,
}

impl AxisCode {
    /// The world axis: 0 for R/L, 1 for A/P, 2 for S/I.
    pub fn world_axis(self) -> usize {
        match self {
            Self::R | Self::L => 0,
            Self::A | Self::P => 1,
            Self::S | Self::I => 2,
        }
    }

    /// `+1` for R, A, S (the RAS+ directions), `-1` for L, P, I.
    pub fn sign(self) -> f64 {
        match self {
            Self::R | Self::A | Self::S => 1.0,
            Self::L | Self::P | Self::I => -1.0,
        }
    }

    fn of(world_axis: usize, positive: bool) -> Self {
        match (world_axis, positive) {
            (0, true) => Self::R,
            (0, false) => Self::L,
            (1, true) => Self::A,
            (1, false) => Self::P,
            (2, true) => Self::S,
            _ => Self::I,
        }
    }

    fn letter(self) -> char {
        match self {
            Self::R => 'R',
            Self::L => 'L',
            Self::A => 'A',
            Self::P => 'P',
            Self::S => 'S',
            Self::I => 'I',
        }
    }
}

/// The directions in which the voxel axes `i`, `j`, `k` increase, as nibabel's axis
/// codes: `RAS` means `i` towards the Right, `j` Anterior, `k` Superior; `LPS` is DICOM's
/// patient order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Orientation(pub [AxisCode; 3]);

impl Orientation {
    /// RAS+: NIfTI's and nibabel's canonical orientation (`nib.as_closest_canonical`).
    pub const RAS: Self = Self([AxisCode::R, AxisCode::A, AxisCode::S]);

    /// The orientation of an affine's voxel axes, like nibabel's
    /// `aff2axcodes(affine)` (5.0): each voxel axis is named after the world axis it is
    /// closest to, after removing shears and zooms (the polar decomposition of the
    /// column-normalised 3 x 3 part); ties go to the lower world axis, and a world axis
    /// taken by an earlier voxel axis is not offered again.
    ///
    /// # Errors
    /// [`GeometryError::Affine`] for an unusable affine ([`check_affine`]).
    pub fn of_affine(affine: &Affine) -> Result<Self, GeometryError> {
        check_affine(affine)?;
        let zooms = voxel_sizes(affine);
        let mut rs = [[0.0; 3]; 3];
        for (r, row) in rs.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = affine[r][c] / zooms[c];
            }
        }
        let mut rot = polar_rotation(rs).ok_or_else(|| {
            affine_error(
                affine,
                "its 3 x 3 part has no polar decomposition (singular)",
            )
        })?;
        let mut codes = [AxisCode::R; 3];
        for (in_axis, code) in codes.iter_mut().enumerate() {
            // numpy's argmax: the first of equal maxima.
            let mut out_axis = 0;
            for r in 1..3 {
                if rot[r][in_axis].abs() > rot[out_axis][in_axis].abs() {
                    out_axis = r;
                }
            }
            *code = AxisCode::of(out_axis, rot[out_axis][in_axis] > 0.0);
            rot[out_axis] = [0.0; 3];
        }
        Ok(Self(codes))
    }
}

impl FromStr for Orientation {
    type Err = GeometryError;

    /// Three letters, one of R/L, one of A/P and one of S/I, in any order (upper case, as
    /// nibabel writes them): `RAS`, `LPS`, `LAS`, `PIR`, ...
    fn from_str(code: &str) -> Result<Self, GeometryError> {
        let bad = |reason: &str| GeometryError::Orientation {
            code: code.to_owned(),
            reason: reason.to_owned(),
        };
        let letters: Vec<char> = code.chars().collect();
        if letters.len() != 3 {
            return Err(bad(
                "needs three letters, one of R/L, one of A/P and one of S/I (e.g. RAS, LPS)",
            ));
        }
        let mut codes = [AxisCode::R; 3];
        for (slot, c) in codes.iter_mut().zip(&letters) {
            *slot = match c {
                'R' => AxisCode::R,
                'L' => AxisCode::L,
                'A' => AxisCode::A,
                'P' => AxisCode::P,
                'S' => AxisCode::S,
                'I' => AxisCode::I,
                _ => return Err(bad("letters must be R, L, A, P, S or I (upper case)")),
            };
        }
        let mut seen = [false; 3];
        for c in codes {
            if std::mem::replace(&mut seen[c.world_axis()], true) {
                return Err(bad(
                    "names one world axis twice: use one of R/L, one of A/P, one of S/I",
                ));
            }
        }
        Ok(Self(codes))
    }
}

impl fmt::Display for Orientation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0 {
            write!(f, "{}", c.letter())?;
        }
        Ok(())
    }
}

/// An anatomical slicing direction: the world axis the slices are normal to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SliceAxis {
    /// Normal to S/I (transverse slices).
    #[default]
    Axial,
    /// Normal to A/P.
    Coronal,
    /// Normal to R/L.
    Sagittal,
}

impl SliceAxis {
    /// The world axis the slices are normal to (0 R/L, 1 A/P, 2 S/I).
    pub fn world_axis(self) -> usize {
        match self {
            Self::Sagittal => 0,
            Self::Coronal => 1,
            Self::Axial => 2,
        }
    }

    /// `axial`, `coronal` or `sagittal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Axial => "axial",
            Self::Coronal => "coronal",
            Self::Sagittal => "sagittal",
        }
    }
}

/// How a volume reaches a requested size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fit {
    /// Resampled to the size ([`SpatialVolume::resized`]): the field of view is kept,
    /// the voxel size changes.
    #[default]
    Resize,
    /// Cropped or zero-padded about the centre ([`SpatialVolume::crop_or_pad`]): the
    /// voxel size is kept, the field of view changes.
    CropOrPad,
}

/// Checks that an affine can place voxels: finite entries, last row `[0, 0, 0, 1]`,
/// and a 3 x 3 part with non-zero columns that are not (nearly) parallel
/// (`|det| > 1e-6 * product of the column norms`).
///
/// # Errors
/// [`GeometryError::Affine`] naming the problem.
pub fn check_affine(a: &Affine) -> Result<(), GeometryError> {
    if a.iter().flatten().any(|v| !v.is_finite()) {
        return Err(affine_error(a, "has NaN or infinite entries"));
    }
    if a[3] != [0.0, 0.0, 0.0, 1.0] {
        return Err(affine_error(a, "last row must be [0, 0, 0, 1]"));
    }
    let zooms = voxel_sizes(a);
    if let Some(c) = zooms.iter().position(|&z| z == 0.0) {
        return Err(affine_error(
            a,
            format!("voxel axis {c} has size 0 (a zero pixdim or an all-zero column)"),
        ));
    }
    let det = det3(rzs(a));
    if det.abs() <= 1e-6 * zooms.iter().product::<f64>() {
        return Err(affine_error(
            a,
            format!("is singular (determinant {det:e}): its voxel axes are (nearly) parallel"),
        ));
    }
    Ok(())
}

/// The voxel sizes of an affine: the lengths of its first three columns (nibabel's
/// `affines.voxel_sizes`).
pub fn voxel_sizes(a: &Affine) -> [f64; 3] {
    std::array::from_fn(|c| (0..3).map(|r| a[r][c] * a[r][c]).sum::<f64>().sqrt())
}

type M3 = [[f64; 3]; 3];

fn rzs(a: &Affine) -> M3 {
    std::array::from_fn(|r| std::array::from_fn(|c| a[r][c]))
}

fn det3(m: M3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// The inverse transpose of `m`, `None` when singular.
fn inverse_transpose(m: M3) -> Option<M3> {
    let det = det3(m);
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    // Cofactor matrix / det = (m⁻¹)ᵀ.
    Some(std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
            let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
            (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det
        })
    }))
}

/// The orthogonal factor of the polar decomposition `m = R H` (what nibabel's
/// `io_orientation` gets from the SVD as `P Qᵀ`), by Newton's iteration
/// `X ← (X + X⁻ᵀ) / 2`, which converges quadratically for a non-singular `m`.
fn polar_rotation(m: M3) -> Option<M3> {
    let mut x = m;
    for _ in 0..100 {
        let it = inverse_transpose(x)?;
        let next: M3 = std::array::from_fn(|r| std::array::from_fn(|c| 0.5 * (x[r][c] + it[r][c])));
        let change = (0..9)
            .map(|e| (next[e / 3][e % 3] - x[e / 3][e % 3]).abs())
            .fold(0.0, f64::max);
        x = next;
        if change < 1e-15 {
            break;
        }
    }
    Some(x)
}

/// `a * b` for affines.
fn compose(a: &Affine, b: &Affine) -> Affine {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|k| a[r][k] * b[k][c]).sum()))
}

/// The voxel-to-voxel affine `new index -> old index` of a per-axis scale and shift:
/// `old[n] = scale[n] * new[n] + shift[n]`.
fn scale_shift(scale: [f64; 3], shift: [f64; 3]) -> Affine {
    let mut m = [[0.0; 4]; 4];
    for n in 0..3 {
        m[n][n] = scale[n];
        m[n][3] = shift[n];
    }
    m[3][3] = 1.0;
    m
}

/// Where a centred crop or pad of `n` voxels to `to` starts, as an index into the input
/// (negative: padding before the first voxel), following MONAI's
/// `ResizeWithPadOrCrop(method="symmetric")`: padding puts `floor((to - n) / 2)` voxels
/// before and the rest (the odd one) after; cropping starts at `n / 2 - to / 2`
/// (MONAI's `CenterSpatialCrop`: the centre voxel `n / 2` stays the centre `to / 2`),
/// which removes the odd voxel at the end except for an even `n` cropped to an odd `to`,
/// where it goes at the start. (TorchIO's `CropOrPad` puts it at the start always.)
pub fn crop_or_pad_start(n: usize, to: usize) -> isize {
    if to >= n {
        -(((to - n) / 2) as isize)
    } else {
        (n / 2 - to / 2) as isize
    }
}

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

impl SpatialVolume {
    /// A volume, checked: `voxels` has `dims[0] * dims[1] * dims[2]` values, every
    /// dimension is at least 1, and the affine is usable ([`check_affine`]).
    ///
    /// # Errors
    /// [`GeometryError::Size`] or [`GeometryError::Affine`].
    pub fn new(dims: [usize; 3], voxels: Vec<f32>, affine: Affine) -> Result<Self, GeometryError> {
        if dims.contains(&0) || dims.iter().product::<usize>() != voxels.len() {
            return Err(GeometryError::Size(format!(
                "{} voxels do not fill dimensions {dims:?}",
                voxels.len()
            )));
        }
        check_affine(&affine)?;
        Ok(Self {
            dims,
            voxels,
            affine,
        })
    }

    /// Slices (`k`).
    pub fn depth(&self) -> usize {
        self.dims[2]
    }

    /// Rows (`j`).
    pub fn height(&self) -> usize {
        self.dims[1]
    }

    /// Columns (`i`).
    pub fn width(&self) -> usize {
        self.dims[0]
    }

    /// Voxel sizes in millimetres along `i`, `j`, `k` ([`voxel_sizes`]).
    pub fn voxel_sizes(&self) -> [f64; 3] {
        voxel_sizes(&self.affine)
    }

    /// The orientation of the voxel axes ([`Orientation::of_affine`]).
    ///
    /// # Errors
    /// [`GeometryError::Affine`] for an unusable affine.
    pub fn orientation(&self) -> Result<Orientation, GeometryError> {
        Orientation::of_affine(&self.affine)
    }

    /// The same voxels with the axes permuted and flipped so that they run along
    /// `target` (no interpolation, values unchanged), and the affine that keeps every
    /// voxel at its place in the world. Equals nibabel 5.0's
    /// `img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(target)))`:
    /// voxels and affine alike.
    ///
    /// # Errors
    /// [`GeometryError::Affine`] for an unusable affine.
    pub fn reoriented(&self, target: Orientation) -> Result<Self, GeometryError> {
        let now = self.orientation()?;
        // For each new axis n: the old axis m along the same world axis, and whether it
        // runs the other way.
        let mut source = [(0usize, false); 3];
        for (n, want) in target.0.iter().enumerate() {
            let m = now
                .0
                .iter()
                .position(|c| c.world_axis() == want.world_axis())
                .ok_or_else(|| affine_error(&self.affine, "orientation lost an axis"))?;
            source[n] = (m, now.0[m] != *want);
        }
        let dims: [usize; 3] = std::array::from_fn(|n| self.dims[source[n].0]);
        // new index -> old index: old[m] = flip ? dims_old[m] - 1 - new[n] : new[n].
        let mut to_old = [[0.0; 4]; 4];
        to_old[3][3] = 1.0;
        for (n, &(m, flip)) in source.iter().enumerate() {
            to_old[m][n] = if flip { -1.0 } else { 1.0 };
            to_old[m][3] = if flip { (self.dims[m] - 1) as f64 } else { 0.0 };
        }
        let old_stride = [1, self.dims[0], self.dims[0] * self.dims[1]];
        // Per new axis: the old flat-index step and the start offset.
        let step: [isize; 3] = std::array::from_fn(|n| {
            let (m, flip) = source[n];
            let s = old_stride[m] as isize;
            if flip { -s } else { s }
        });
        let start: isize = source
            .iter()
            .map(|&(m, flip)| {
                if flip {
                    ((self.dims[m] - 1) * old_stride[m]) as isize
                } else {
                    0
                }
            })
            .sum();
        let mut voxels = Vec::with_capacity(self.voxels.len());
        for c in 0..dims[2] {
            for b in 0..dims[1] {
                let row = start + c as isize * step[2] + b as isize * step[1];
                voxels.extend(
                    (0..dims[0]).map(|a| self.voxels[(row + a as isize * step[0]) as usize]),
                );
            }
        }
        Ok(Self {
            dims,
            voxels,
            affine: compose(&self.affine, &to_old),
        })
    }

    /// Resamples onto voxels of `spacing` millimetres along `i`, `j`, `k` over the same
    /// field of view, like MONAI's `Spacing(pixdim=spacing)` with its defaults: voxel
    /// centres, the first voxel centre kept, `round_half_even((n - 1) * old / new) + 1`
    /// voxels per axis, values beyond the last input voxel taken from it (border). The
    /// new affine keeps the axis directions and the origin: each column is rescaled to
    /// the new size (`col * new / old`), so output index `o` is input coordinate
    /// `o * new / old` along each axis.
    ///
    /// `mode` [`Resample::Linear`] is trilinear (`scipy.ndimage.map_coordinates(order=1,
    /// mode="nearest")` on that grid), anti-aliased when `antialias` and an axis
    /// shrinks (see the [module docs](self)); [`Resample::Nearest`] takes the nearest
    /// input voxel (`floor(x + 0.5)`, `map_coordinates(order=0)`), never smoothed.
    ///
    /// # Errors
    /// [`GeometryError::Size`] for a spacing that is not finite and positive or a
    /// result over [`MAX_VOXELS`]; [`GeometryError::Affine`] for an unusable affine.
    pub fn resampled(
        &self,
        spacing: [f64; 3],
        mode: Resample,
        antialias: bool,
    ) -> Result<Self, GeometryError> {
        check_affine(&self.affine)?;
        if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(GeometryError::Size(format!(
                "spacing {spacing:?} mm: every value must be finite and > 0"
            )));
        }
        let old = self.voxel_sizes();
        let ratio: [f64; 3] = std::array::from_fn(|n| spacing[n] / old[n]);
        let mut dims = [0usize; 3];
        for n in 0..3 {
            let m = ((self.dims[n] - 1) as f64 / ratio[n]).round_ties_even() + 1.0;
            if m > MAX_VOXELS as f64 {
                return Err(too_many(spacing, self.dims));
            }
            dims[n] = m as usize;
        }
        if dims
            .iter()
            .try_fold(1usize, |p, &d| p.checked_mul(d))
            .is_none_or(|p| p > MAX_VOXELS)
        {
            return Err(too_many(spacing, self.dims));
        }
        let taps: [Taps; 3] = std::array::from_fn(|n| {
            let positions: Vec<f64> = (0..dims[n]).map(|o| o as f64 * ratio[n]).collect();
            match mode {
                Resample::Nearest => nearest_taps(
                    self.dims[n],
                    positions
                        .iter()
                        .map(|x| (x + 0.5).floor().max(0.0) as usize),
                ),
                Resample::Linear => {
                    let sigma = if antialias {
                        ((ratio[n] - 1.0) / 2.0).max(0.0)
                    } else {
                        0.0
                    };
                    linear_taps(self.dims[n], &positions, sigma)
                }
            }
        });
        let voxels = apply_axes(&self.voxels, self.dims, &taps);
        let affine = compose(&self.affine, &scale_shift(ratio, [0.0; 3]));
        Ok(Self {
            dims,
            voxels,
            affine,
        })
    }

    /// Resizes to `to` voxels along `i`, `j`, `k` over the same field of view, with
    /// half-voxel centres (PyTorch `interpolate(align_corners=False)`; see
    /// [`Resample`]), anti-aliased when `antialias`, `mode` is linear and an axis
    /// shrinks. The affine follows: output `o` is input `(o + 0.5) * n / m - 0.5`.
    ///
    /// # Errors
    /// [`GeometryError::Size`] for a zero size or one over [`MAX_VOXELS`].
    pub fn resized(
        &self,
        to: [usize; 3],
        mode: Resample,
        antialias: bool,
    ) -> Result<Self, GeometryError> {
        check_size(to)?;
        let taps: [Taps; 3] =
            std::array::from_fn(|n| resize_taps(self.dims[n], to[n], mode, antialias));
        let voxels = apply_axes(&self.voxels, self.dims, &taps);
        let scale: [f64; 3] = std::array::from_fn(|n| self.dims[n] as f64 / to[n] as f64);
        let shift: [f64; 3] = std::array::from_fn(|n| 0.5 * scale[n] - 0.5);
        Ok(Self {
            dims: to,
            voxels,
            affine: compose(&self.affine, &scale_shift(scale, shift)),
        })
    }

    /// Crops or pads (with `fill`) each axis about its centre to `to` voxels, keeping the
    /// voxel size (MONAI `ResizeWithPadOrCrop`; the odd voxel: [`crop_or_pad_start`]).
    /// The affine is shifted so every kept voxel stays where it was.
    ///
    /// # Errors
    /// [`GeometryError::Size`] for a zero size or one over [`MAX_VOXELS`].
    pub fn crop_or_pad(&self, to: [usize; 3], fill: f32) -> Result<Self, GeometryError> {
        check_size(to)?;
        let start: [isize; 3] = std::array::from_fn(|n| crop_or_pad_start(self.dims[n], to[n]));
        let mut voxels = vec![fill; to.iter().product()];
        let [ni, nj, nk] = self.dims.map(|d| d as isize);
        for c in 0..to[2] {
            let k = c as isize + start[2];
            if !(0..nk).contains(&k) {
                continue;
            }
            for b in 0..to[1] {
                let j = b as isize + start[1];
                if !(0..nj).contains(&j) {
                    continue;
                }
                // The run of i inside the input.
                let a0 = (-start[0]).max(0);
                let a1 = (ni - start[0]).min(to[0] as isize);
                if a0 >= a1 {
                    continue;
                }
                let src = ((k * nj + j) * ni + a0 + start[0]) as usize;
                let dst = (c * to[1] + b) * to[0] + a0 as usize;
                let len = (a1 - a0) as usize;
                voxels[dst..dst + len].copy_from_slice(&self.voxels[src..src + len]);
            }
        }
        let shift = start.map(|s| s as f64);
        Ok(Self {
            dims: to,
            voxels,
            affine: compose(&self.affine, &scale_shift([1.0; 3], shift)),
        })
    }

    /// Brings the volume to `to` voxels along `i`, `j`, `k` by [`Self::resized`] or
    /// [`Self::crop_or_pad`] (padding with `fill`).
    ///
    /// # Errors
    /// As those.
    pub fn fit(
        &self,
        to: [usize; 3],
        fit: Fit,
        mode: Resample,
        antialias: bool,
        fill: f32,
    ) -> Result<Self, GeometryError> {
        match fit {
            Fit::Resize => self.resized(to, mode, antialias),
            Fit::CropOrPad => self.crop_or_pad(to, fill),
        }
    }

    /// The 2D slices normal to `axis`, in increasing voxel index along the voxel axis
    /// closest to that world axis ([`Self::orientation`]): for an RAS volume, axial
    /// slices go from inferior to superior. Each slice is a volume of dims
    /// `[width, height, 1]`: of the two remaining voxel axes, the faster one (lower
    /// index) becomes the width and the other the height, so an RAS volume gives axial
    /// slices `A x R` (rows x columns), coronal `S x R` and sagittal `S x A`. Each
    /// slice's affine places its pixels where they were in the volume.
    ///
    /// # Errors
    /// [`GeometryError::Affine`] for an unusable affine.
    pub fn slices(&self, axis: SliceAxis) -> Result<Vec<Self>, GeometryError> {
        let codes = self.orientation()?;
        let normal = codes
            .0
            .iter()
            .position(|c| c.world_axis() == axis.world_axis())
            .ok_or_else(|| affine_error(&self.affine, "orientation lost an axis"))?;
        let [w_axis, h_axis] = match normal {
            0 => [1, 2],
            1 => [0, 2],
            _ => [0, 1],
        };
        let stride = [1, self.dims[0], self.dims[0] * self.dims[1]];
        let (w, h) = (self.dims[w_axis], self.dims[h_axis]);
        let mut out = Vec::with_capacity(self.dims[normal]);
        for s in 0..self.dims[normal] {
            let base = s * stride[normal];
            let mut voxels = Vec::with_capacity(w * h);
            for b in 0..h {
                let row = base + b * stride[h_axis];
                voxels.extend((0..w).map(|a| self.voxels[row + a * stride[w_axis]]));
            }
            // Slice index (a, b, 0) is volume index a along w_axis, b along h_axis, s
            // along the normal.
            let mut to_volume = [[0.0; 4]; 4];
            to_volume[w_axis][0] = 1.0;
            to_volume[h_axis][1] = 1.0;
            to_volume[normal][2] = 1.0;
            to_volume[normal][3] = s as f64;
            to_volume[3][3] = 1.0;
            out.push(Self {
                dims: [w, h, 1],
                voxels,
                affine: compose(&self.affine, &to_volume),
            });
        }
        Ok(out)
    }
}

fn too_many(spacing: [f64; 3], dims: [usize; 3]) -> GeometryError {
    GeometryError::Size(format!(
        "spacing {spacing:?} mm would turn {dims:?} voxels into more than {MAX_VOXELS}"
    ))
}

fn check_size(to: [usize; 3]) -> Result<(), GeometryError> {
    if to.contains(&0)
        || to
            .iter()
            .try_fold(1usize, |p, &d| p.checked_mul(d))
            .is_none_or(|p| p > MAX_VOXELS)
    {
        return Err(GeometryError::Size(format!(
            "size {to:?}: every dimension must be at least 1, with at most {MAX_VOXELS} voxels"
        )));
    }
    Ok(())
}

/// Where a volume (NIfTI, or a DICOM series or multi-frame file) is put before it is cut
/// to size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VolumeGeometry {
    /// Reorient to these axis codes ([`SpatialVolume::reoriented`]); `None` keeps the
    /// file's storage order.
    pub orientation: Option<Orientation>,
    /// Resample to voxels of this size in millimetres along the (reoriented) axes `i`,
    /// `j`, `k` ([`SpatialVolume::resampled`]); `None` keeps the file's voxels.
    pub spacing: Option<[f64; 3]>,
    /// Gaussian anti-aliasing when linear resampling shrinks an axis (spacing and
    /// resizing alike; see [`crate::geometry`]). Nearest is never smoothed.
    pub antialias: bool,
}

impl VolumeGeometry {
    /// The volume as read: storage order (or, for DICOM, slices stacked along their
    /// normal), its own spacing; anti-aliasing on for any later resize.
    pub const KEEP: Self = Self {
        orientation: None,
        spacing: None,
        antialias: true,
    };
}

impl Default for VolumeGeometry {
    /// RAS, the file's spacing, anti-aliasing on.
    fn default() -> Self {
        Self {
            orientation: Some(Orientation::RAS),
            spacing: None,
            antialias: true,
        }
    }
}

#[cfg(test)]
mod tests;
