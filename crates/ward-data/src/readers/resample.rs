//! Resizing volumes and images to a caller-given size.

/// How a volume or DICOM image is resized to the requested size.
///
/// Both use half-pixel centres (PyTorch's `F.interpolate(..., align_corners=False)`):
/// output index `o` samples input coordinate `(o + 0.5) * in / out - 0.5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Resample {
    /// Nearest neighbour (PyTorch `mode="nearest"`: input index `floor(o * in / out)`);
    /// keeps label maps and integer values intact.
    Nearest,
    /// Linear along each axis: bilinear for images, trilinear for volumes.
    #[default]
    Linear,
}

/// Resamples one axis of a `outer x n x inner` array to `outer x m x inner`.
fn axis(src: &[f32], outer: usize, n: usize, inner: usize, m: usize, mode: Resample) -> Vec<f32> {
    if n == m {
        return src.to_vec();
    }
    let scale = n as f64 / m as f64;
    // For each output index: two input indices and the weight of the second.
    let taps: Vec<(usize, usize, f32)> = (0..m)
        .map(|o| match mode {
            Resample::Nearest => {
                let i = ((o as f64 * scale).floor() as usize).min(n - 1);
                (i, i, 0.0)
            }
            Resample::Linear => {
                let x = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (x.floor() as usize).min(n - 1);
                let i1 = (i0 + 1).min(n - 1);
                (i0, i1, (x - i0 as f64) as f32)
            }
        })
        .collect();
    let mut out = vec![0.0f32; outer * m * inner];
    for a in 0..outer {
        for (o, &(i0, i1, t)) in taps.iter().enumerate() {
            let s0 = &src[(a * n + i0) * inner..(a * n + i0 + 1) * inner];
            let s1 = &src[(a * n + i1) * inner..(a * n + i1 + 1) * inner];
            let d = &mut out[(a * m + o) * inner..(a * m + o + 1) * inner];
            for ((d, &v0), &v1) in d.iter_mut().zip(s0).zip(s1) {
                *d = v0 + (v1 - v0) * t;
            }
        }
    }
    out
}

/// Resizes a `D x H x W` array (row-major, `W` fastest) to `to = [D', H', W']`, one axis
/// at a time (separable).
///
/// # Shapes
/// `src`: `from[0] * from[1] * from[2]` values; the result: `to[0] * to[1] * to[2]`.
pub(crate) fn resize(src: &[f32], from: [usize; 3], to: [usize; 3], mode: Resample) -> Vec<f32> {
    debug_assert_eq!(src.len(), from.iter().product::<usize>());
    let [d, h, w] = from;
    let [od, oh, ow] = to;
    let x = axis(src, d * h, w, 1, ow, mode);
    let y = axis(&x, d, h, ow, oh, mode);
    axis(&y, 1, d, oh * ow, od, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_pytorch_half_pixel() {
        // torch.nn.functional.interpolate(torch.tensor([[[0., 1.]]]), size=4,
        // mode="linear", align_corners=False) -> [0.0, 0.25, 0.75, 1.0]
        let up = resize(&[0.0, 1.0], [1, 1, 2], [1, 1, 4], Resample::Linear);
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.0]);
        // Downsampling [0, 1, 2, 3] to 2 samples at 0.5 and 2.5 -> [0.5, 2.5].
        let down = resize(
            &[0.0, 1.0, 2.0, 3.0],
            [1, 1, 4],
            [1, 1, 2],
            Resample::Linear,
        );
        assert_eq!(down, vec![0.5, 2.5]);
        // mode="nearest": [0, 1] -> [0, 0, 1, 1].
        let near = resize(&[0.0, 1.0], [1, 1, 2], [1, 1, 4], Resample::Nearest);
        assert_eq!(near, vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn trilinear_of_a_linear_ramp_is_the_ramp() {
        // f(z, y, x) = z + 2y + 3x is reproduced exactly by trilinear resampling at the
        // sample coordinates (away from the clamped borders).
        let (d, h, w) = (2usize, 3usize, 4usize);
        let src: Vec<f32> = (0..d * h * w)
            .map(|i| {
                let (z, y, x) = (i / (h * w), (i / w) % h, i % w);
                z as f32 + 2.0 * y as f32 + 3.0 * x as f32
            })
            .collect();
        let same = resize(&src, [d, h, w], [d, h, w], Resample::Linear);
        assert_eq!(same, src);
        let out = resize(&src, [d, h, w], [4, 6, 8], Resample::Linear);
        assert_eq!(out.len(), 4 * 6 * 8);
        // Output (1, 2, 3) samples input (0.25, 0.75, 1.25): 0.25 + 1.5 + 3.75 = 5.5.
        assert!((out[(6 + 2) * 8 + 3] - 5.5).abs() < 1e-5);
    }
}
