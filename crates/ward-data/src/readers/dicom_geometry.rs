//! Where DICOM slices sit, and how a series (or a multi-frame file) stacks into one
//! volume.
//!
//! Each slice file or frame has a [`Plane`]: Image Position (Patient) (the centre of its
//! first pixel), Image Orientation (Patient) (the row and column direction cosines) and
//! Pixel Spacing, in DICOM's LPS+ patient coordinates (DICOM PS3.3 C.7.6.2.1.1). A stack
//! of planes is checked and ordered by [`stack`]:
//!
//! - every plane shares the first one's orientation and pixel spacing within
//!   `1e-3 + 1e-3 * |value|` (`numpy.allclose(rtol=1e-3, atol=1e-3)`, dicom2nifti's
//!   `validate_orientation`);
//! - planes are sorted by their position projected on the slice normal
//!   `n = row x column` (ascending), and two planes at the same projection are an error;
//! - the slice gaps (differences of the sorted projections) must agree with their median
//!   `m` within `0.1 mm + 0.05 * m`: dicom2nifti's `validate_slice_increment` tolerance
//!   (`numpy.allclose(rtol=0.05, atol=0.1)`), taken against the median rather than the
//!   first gap so that one odd gap is the one reported. A missing slice doubles a gap and
//!   always fails. [`SpacingCheck`] says whether a failure refuses the stack or becomes a
//!   warning.
//!
//! The affine maps voxel `(i, j, k)` (`i` the column, `j` the row, `k` the sorted slice)
//! to RAS+ millimetres: in LPS its columns are `row * PixelSpacing[1]`,
//! `column * PixelSpacing[0]` (Pixel Spacing is `[between rows, between columns]`), the
//! mean slice step `(p_last - p_first) / (n - 1)` (as dicom2nifti; a constant gantry tilt
//! stays in the affine as a shear) and `p_first`; a single slice steps
//! `n * (Spacing Between Slices, else Slice Thickness, else 1)`, as nibabel's
//! `Wrapper.voxel_sizes`. The first two rows are then negated (LPS to RAS), as nibabel
//! does.

use crate::geometry::Affine;

pub use ward_core::config::SpacingCheckKind as SpacingCheck;

/// Absolute and relative tolerance for orientations and pixel spacings across a stack.
const SAME_TOL: f64 = 1e-3;
/// Absolute slice-gap tolerance in mm (dicom2nifti's `atol`).
const GAP_ATOL: f64 = 0.1;
/// Relative slice-gap tolerance (dicom2nifti's `rtol`).
const GAP_RTOL: f64 = 0.05;
/// Two slices closer than this (mm, along the normal) are at the same position.
const SAME_POSITION: f64 = 1e-3;

/// One image plane (a slice file or a frame) in DICOM patient coordinates (LPS+, mm).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plane {
    /// Image Position (Patient): the centre of the first pixel (row 0, column 0).
    pub(crate) position: [f64; 3],
    /// Direction of increasing column index (Image Orientation (Patient) values 1-3).
    pub(crate) row: [f64; 3],
    /// Direction of increasing row index (Image Orientation (Patient) values 4-6).
    pub(crate) column: [f64; 3],
    /// Pixel Spacing: `[between rows, between columns]`.
    pub(crate) spacing: [f64; 2],
    /// Spacing Between Slices, else Slice Thickness (for a stack of one).
    pub(crate) thickness: Option<f64>,
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= SAME_TOL + SAME_TOL * y.abs())
}

fn show(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", parts.join(", "))
}

impl Plane {
    /// A plane from its attributes, checked: finite values, unit and orthogonal
    /// direction cosines (within 1e-3), positive pixel spacing.
    ///
    /// # Errors
    /// A message naming the attribute and the value.
    pub(crate) fn new(
        position: [f64; 3],
        orientation: [f64; 6],
        spacing: [f64; 2],
        thickness: Option<f64>,
    ) -> Result<Self, String> {
        if position.iter().any(|v| !v.is_finite()) {
            return Err(format!(
                "Image Position (Patient) {} is not finite",
                show(&position)
            ));
        }
        let row = [orientation[0], orientation[1], orientation[2]];
        let column = [orientation[3], orientation[4], orientation[5]];
        let unit = |v: [f64; 3]| (dot(v, v).sqrt() - 1.0).abs() <= SAME_TOL;
        if orientation.iter().any(|v| !v.is_finite())
            || !unit(row)
            || !unit(column)
            || dot(row, column).abs() > SAME_TOL
        {
            return Err(format!(
                "Image Orientation (Patient) {} is not two orthogonal unit vectors",
                show(&orientation)
            ));
        }
        if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "Pixel Spacing {} must be two positive numbers (mm)",
                show(&spacing)
            ));
        }
        Ok(Self {
            position,
            row,
            column,
            spacing,
            thickness: thickness.filter(|t| t.is_finite() && *t > 0.0),
        })
    }

    /// The slice normal `row x column`.
    pub(crate) fn normal(&self) -> [f64; 3] {
        cross(self.row, self.column)
    }
}

/// A checked stack: the volume order of the planes and the affine.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stack {
    /// Input indices in volume (`k`) order.
    pub(crate) order: Vec<usize>,
    /// Voxel `(i, j, k)` to RAS+ mm.
    pub(crate) affine: Affine,
    /// Slice-gap findings kept as warnings under [`SpacingCheck::Warn`].
    pub(crate) warnings: Vec<String>,
}

/// Checks the planes of one series or multi-frame file, orders them along the slice
/// normal and computes the affine (see the module documentation). `names[i]` names plane
/// `i` in messages (a file name, or `frame 3`).
///
/// # Errors
/// A message naming the planes at fault: differing orientation or pixel spacing, two
/// planes at one position, or (under [`SpacingCheck::Refuse`]) non-uniform slice gaps.
pub(crate) fn stack(
    planes: &[Plane],
    names: &[String],
    check: SpacingCheck,
) -> Result<Stack, String> {
    let Some(first) = planes.first() else {
        return Err("holds no slice".into());
    };
    for (p, name) in planes.iter().zip(names).skip(1) {
        let (a, b) = (
            [p.row, p.column].concat(),
            [first.row, first.column].concat(),
        );
        if !close(&a, &b) {
            return Err(format!(
                "{name} has Image Orientation (Patient) {}, but {} has {}: the slices of one \
                 volume must share one orientation (tolerance 1e-3)",
                show(&a),
                names[0],
                show(&b)
            ));
        }
        if !close(&p.spacing, &first.spacing) {
            return Err(format!(
                "{name} has Pixel Spacing {}, but {} has {}: the slices of one volume must \
                 share one pixel spacing (tolerance 1e-3)",
                show(&p.spacing),
                names[0],
                show(&first.spacing)
            ));
        }
    }
    let normal = first.normal();
    let keys: Vec<f64> = planes.iter().map(|p| dot(p.position, normal)).collect();
    let mut order: Vec<usize> = (0..planes.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let gaps: Vec<f64> = order.windows(2).map(|w| keys[w[1]] - keys[w[0]]).collect();
    if let Some(g) = gaps.iter().position(|&g| g < SAME_POSITION) {
        return Err(format!(
            "{} and {} lie at the same position along the slice normal ({:.3} mm): one folder \
             or file must hold one volume (not two series, echoes or time points)",
            names[order[g]],
            names[order[g + 1]],
            keys[order[g]]
        ));
    }
    let mut warnings = Vec::new();
    if let Some(message) = gap_check(&gaps, &order, names) {
        match check {
            SpacingCheck::Refuse => {
                return Err(format!(
                    "{message}; set data.reader.spacing-check = \"warn\" to read it anyway"
                ));
            }
            SpacingCheck::Warn => warnings.push(message),
        }
    }
    let first = &planes[order[0]];
    let last = &planes[order[order.len() - 1]];
    let step = if planes.len() > 1 {
        let n = (planes.len() - 1) as f64;
        [0, 1, 2].map(|a| (last.position[a] - first.position[a]) / n)
    } else {
        let t = first.thickness.unwrap_or(1.0);
        normal.map(|v| v * t)
    };
    let mut affine = [[0.0; 4]; 4];
    for a in 0..3 {
        // LPS to RAS: negate x and y.
        let sign = if a < 2 { -1.0 } else { 1.0 };
        affine[a] = [
            sign * first.row[a] * first.spacing[1],
            sign * first.column[a] * first.spacing[0],
            sign * step[a],
            sign * first.position[a],
        ];
    }
    affine[3] = [0.0, 0.0, 0.0, 1.0];
    Ok(Stack {
        order,
        affine,
        warnings,
    })
}

/// A message when some slice gaps deviate from their median by more than
/// `GAP_ATOL + GAP_RTOL * median`, naming the largest deviation.
fn gap_check(gaps: &[f64], order: &[usize], names: &[String]) -> Option<String> {
    if gaps.len() < 2 {
        return None;
    }
    let mut sorted = gaps.to_vec();
    sorted.sort_by(f64::total_cmp);
    let h = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[h]
    } else {
        (sorted[h - 1] + sorted[h]) / 2.0
    };
    let tol = GAP_ATOL + GAP_RTOL * median;
    let bad: Vec<usize> = (0..gaps.len())
        .filter(|&g| (gaps[g] - median).abs() > tol)
        .collect();
    let worst = *bad.iter().max_by(|&&a, &&b| {
        (gaps[a] - median)
            .abs()
            .total_cmp(&(gaps[b] - median).abs())
    })?;
    Some(format!(
        "slice spacing is not uniform: {} of {} gaps differ from the median gap {median:.3} mm \
         by more than {tol:.3} mm (0.1 mm + 5 %), the largest being {:.3} mm between {} and {} \
         (a missing slice, or variable spacing)",
        bad.len(),
        gaps.len(),
        gaps[worst],
        names[order[worst]],
        names[order[worst + 1]]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axial(z: f64) -> Plane {
        Plane::new(
            [1.0, 2.0, z],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            [0.5, 0.25],
            None,
        )
        .unwrap()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i}")).collect()
    }

    #[test]
    fn axial_stack_sorted_with_its_affine() {
        let planes = [axial(4.0), axial(0.0), axial(2.0)];
        let s = stack(&planes, &names(3), SpacingCheck::Refuse).unwrap();
        assert_eq!(s.order, vec![1, 2, 0]);
        // LPS columns: x * 0.25 (between columns), y * 0.5 (between rows), z * 2; RAS
        // negates the first two rows.
        assert_eq!(
            s.affine,
            [
                [-0.25, 0.0, 0.0, -1.0],
                [0.0, -0.5, 0.0, -2.0],
                [0.0, 0.0, 2.0, 0.0],
                [0.0, 0.0, 0.0, 1.0]
            ]
        );
        assert!(s.warnings.is_empty());
        // One slice: Spacing Between Slices / Slice Thickness, else 1 mm, along the normal.
        let mut one = axial(3.0);
        one.thickness = Some(1.5);
        let s = stack(&[one], &names(1), SpacingCheck::Refuse).unwrap();
        assert_eq!(s.affine[2], [0.0, 0.0, 1.5, 3.0]);
    }

    #[test]
    fn gaps_duplicates_and_orientations() {
        // 0, 2, 4, 8: the 4 mm gap differs from the median 2 by 2 > 0.1 + 0.1.
        let planes: Vec<Plane> = [0.0, 2.0, 4.0, 8.0].map(axial).to_vec();
        let e = stack(&planes, &names(4), SpacingCheck::Refuse).unwrap_err();
        assert!(
            e.contains("1 of 3 gaps")
                && e.contains("4.000 mm between s2 and s3")
                && e.contains("median gap 2.000 mm")
                && e.contains("spacing-check"),
            "{e}"
        );
        let s = stack(&planes, &names(4), SpacingCheck::Warn).unwrap();
        assert_eq!(s.warnings.len(), 1);
        // The affine steps by the mean gap, (8 - 0) / 3.
        assert!((s.affine[2][2] - 8.0 / 3.0).abs() < 1e-12);
        // Within tolerance: 2.0 vs 2.18 (0.1 + 0.05 * 2 = 0.2).
        let ok: Vec<Plane> = [0.0, 2.0, 4.18, 6.18].map(axial).to_vec();
        assert!(stack(&ok, &names(4), SpacingCheck::Refuse).is_ok());
        let dup = [axial(0.0), axial(0.0)];
        let e = stack(&dup, &names(2), SpacingCheck::Refuse).unwrap_err();
        assert!(e.contains("s0 and s1 lie at the same position"), "{e}");
        let mut tilted = axial(2.0);
        tilted.row = [0.0, 1.0, 0.0];
        tilted.column = [1.0, 0.0, 0.0];
        let e = stack(&[axial(0.0), tilted], &names(2), SpacingCheck::Refuse).unwrap_err();
        assert!(e.contains("s1 has Image Orientation (Patient)"), "{e}");
        let mut wide = axial(2.0);
        wide.spacing = [0.5, 0.3];
        let e = stack(&[axial(0.0), wide], &names(2), SpacingCheck::Refuse).unwrap_err();
        assert!(e.contains("s1 has Pixel Spacing [0.5, 0.3]"), "{e}");
    }

    #[test]
    fn bad_planes_are_refused() {
        let iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let e = Plane::new([0.0, f64::NAN, 0.0], iop, [1.0, 1.0], None).unwrap_err();
        assert!(e.contains("not finite"), "{e}");
        let e = Plane::new([0.0; 3], [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 1.0], None).unwrap_err();
        assert!(e.contains("not two orthogonal unit vectors"), "{e}");
        let e = Plane::new([0.0; 3], iop, [0.0, 1.0], None).unwrap_err();
        assert!(e.contains("Pixel Spacing [0, 1]"), "{e}");
    }
}
