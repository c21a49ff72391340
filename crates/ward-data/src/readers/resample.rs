//! Resampling volumes and images along their axes, one axis at a time (separable):
//! resizing to a caller-given size, and the kernels behind
//! [`SpatialVolume`](crate::geometry::SpatialVolume)'s resampling.
//!
//! Each output sample along an axis is a weighted sum of input samples ([`Taps`]):
//! one input for nearest, two for linear, and for anti-aliased linear resampling the
//! Gaussian-smoothed values at those two (the smoothing and the interpolation fused,
//! so only the smoothed values that are sampled are computed).

/// How a volume or DICOM image is resized to the requested size.
///
/// Both use half-pixel centres (PyTorch's `F.interpolate(..., align_corners=False)`):
/// output index `o` samples input coordinate `(o + 0.5) * in / out - 0.5`.
///
/// Linear resizing that shrinks an axis (`out < in`) first smooths it with a Gaussian of
/// `sigma = (in / out - 1) / 2` input pixels (scikit-image's
/// `resize(anti_aliasing=True)` rule, `scipy.ndimage.gaussian_filter(mode="mirror",
/// truncate=4.0)`), so a 512-pixel row shrunk to 28 averages its pixels instead of
/// picking 2 of every 18. Nearest is never smoothed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Resample {
    /// Nearest neighbour (PyTorch `mode="nearest"`: input index `floor(o * in / out)`);
    /// keeps label maps and integer values intact.
    Nearest,
    /// Linear along each axis: bilinear for images, trilinear for volumes.
    #[default]
    Linear,
}

/// Per output sample along one axis: the `(input index, weight)` pairs it sums.
pub(crate) type Taps = Vec<Vec<(usize, f32)>>;

/// Index `i` of an axis of `n` samples, mirrored at the borders like
/// `scipy.ndimage`'s `mode="mirror"` (`d c b | a b c d | c b a`).
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// The Gaussian weights of `scipy.ndimage.gaussian_filter1d(sigma, truncate=4.0)`:
/// `exp(-x² / 2σ²)` for `x` in `-r..=r`, `r = int(4σ + 0.5)`, normalised to sum 1.
fn gaussian(sigma: f64) -> Vec<f64> {
    let r = (4.0 * sigma + 0.5) as isize;
    let w: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|v| v / sum).collect()
}

/// Nearest-neighbour taps: output `o` takes input `indices[o]` (clamped to `n - 1`).
pub(crate) fn nearest_taps(n: usize, indices: impl Iterator<Item = usize>) -> Taps {
    indices.map(|i| vec![(i.min(n - 1), 1.0)]).collect()
}

/// Linear-interpolation taps at input coordinates `positions` (clamped to
/// `[0, n - 1]`: the border value beyond the ends), after a Gaussian of `sigma` input
/// samples (none when `sigma` is 0).
pub(crate) fn linear_taps(n: usize, positions: &[f64], sigma: f64) -> Taps {
    let kernel = (sigma > 0.0).then(|| gaussian(sigma));
    positions
        .iter()
        .map(|&x| {
            let x = x.clamp(0.0, (n - 1) as f64);
            let i0 = (x.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            let t = x - i0 as f64;
            let mut taps: Vec<(usize, f64)> = Vec::new();
            for (i, w) in [(i0, 1.0 - t), (i1, t)] {
                if w == 0.0 {
                    continue;
                }
                match &kernel {
                    None => taps.push((i, w)),
                    Some(g) => {
                        let r = (g.len() / 2) as isize;
                        for (k, gk) in g.iter().enumerate() {
                            taps.push((mirror(i as isize + k as isize - r, n), w * gk));
                        }
                    }
                }
            }
            merge(taps)
        })
        .collect()
}

/// Sums the weights of equal indices; drops zero weights.
fn merge(mut taps: Vec<(usize, f64)>) -> Vec<(usize, f32)> {
    taps.sort_by_key(|t| t.0);
    let mut out: Vec<(usize, f64)> = Vec::with_capacity(taps.len());
    for (i, w) in taps {
        match out.last_mut() {
            Some(last) if last.0 == i => last.1 += w,
            _ => out.push((i, w)),
        }
    }
    out.into_iter()
        .filter(|t| t.1 != 0.0)
        .map(|(i, w)| (i, w as f32))
        .collect()
}

/// The taps that resize an axis of `n` samples to `m` with half-pixel centres, smoothed
/// first when linear, `antialias` and `m < n`.
pub(crate) fn resize_taps(n: usize, m: usize, mode: Resample, antialias: bool) -> Taps {
    let scale = n as f64 / m as f64;
    match mode {
        Resample::Nearest => nearest_taps(n, (0..m).map(|o| (o as f64 * scale).floor() as usize)),
        Resample::Linear => {
            let positions: Vec<f64> = (0..m).map(|o| (o as f64 + 0.5) * scale - 0.5).collect();
            let sigma = if antialias && m < n {
                (scale - 1.0) / 2.0
            } else {
                0.0
            };
            linear_taps(n, &positions, sigma)
        }
    }
}

/// Resamples one axis of a `outer x n x inner` array to `outer x taps.len() x inner`.
fn axis(src: &[f32], outer: usize, n: usize, inner: usize, taps: &Taps) -> Vec<f32> {
    let m = taps.len();
    let identity = m == n
        && taps
            .iter()
            .enumerate()
            .all(|(o, t)| t.len() == 1 && t[0] == (o, 1.0));
    if identity {
        return src.to_vec();
    }
    let mut out = vec![0.0f32; outer * m * inner];
    for a in 0..outer {
        for (o, weights) in taps.iter().enumerate() {
            let d = &mut out[(a * m + o) * inner..(a * m + o + 1) * inner];
            for &(i, w) in weights {
                let s = &src[(a * n + i) * inner..(a * n + i + 1) * inner];
                for (d, &v) in d.iter_mut().zip(s) {
                    *d += w * v;
                }
            }
        }
    }
    out
}

/// Resamples a volume of `dims = [ni, nj, nk]` (`i` fastest) along each axis with its
/// taps (`i` first, then `j`, then `k`); the result has `taps[n].len()` samples along
/// axis `n`.
pub(crate) fn apply_axes(src: &[f32], dims: [usize; 3], taps: &[Taps; 3]) -> Vec<f32> {
    debug_assert_eq!(src.len(), dims.iter().product::<usize>());
    let [ni, nj, nk] = dims;
    let [mi, mj] = [taps[0].len(), taps[1].len()];
    let x = axis(src, nj * nk, ni, 1, &taps[0]);
    let y = axis(&x, nk, nj, mi, &taps[1]);
    axis(&y, 1, nk, mi * mj, &taps[2])
}

/// Resizes a `D x H x W` array (row-major, `W` fastest) to `to = [D', H', W']`, one axis
/// at a time (separable), anti-aliasing linear downsampling (see [`Resample`]).
///
/// # Shapes
/// `src`: `from[0] * from[1] * from[2]` values; the result: `to[0] * to[1] * to[2]`.
pub(crate) fn resize(src: &[f32], from: [usize; 3], to: [usize; 3], mode: Resample) -> Vec<f32> {
    resize_with(src, from, to, mode, true)
}

/// [`resize`] with anti-aliasing chosen by the caller.
pub(crate) fn resize_with(
    src: &[f32],
    from: [usize; 3],
    to: [usize; 3],
    mode: Resample,
    antialias: bool,
) -> Vec<f32> {
    let dims = [from[2], from[1], from[0]];
    let taps: [Taps; 3] =
        std::array::from_fn(|n| resize_taps(dims[n], [to[2], to[1], to[0]][n], mode, antialias));
    apply_axes(src, dims, &taps)
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
        // Downsampling [0, 1, 2, 3] to 2 samples at 0.5 and 2.5 -> [0.5, 2.5] (PyTorch,
        // no anti-aliasing).
        let down = resize_with(
            &[0.0, 1.0, 2.0, 3.0],
            [1, 1, 4],
            [1, 1, 2],
            Resample::Linear,
            false,
        );
        assert_eq!(down, vec![0.5, 2.5]);
        // Anti-aliased (the default): smoothed with sigma (4/2 - 1)/2 = 0.5 first.
        // scipy 1.10: map_coordinates(gaussian_filter1d([0, 1, 2, 3], 0.5,
        // mode="mirror"), [[0.5, 2.5]], order=1) -> [0.60724237, 2.39275763].
        let down = resize(
            &[0.0, 1.0, 2.0, 3.0],
            [1, 1, 4],
            [1, 1, 2],
            Resample::Linear,
        );
        assert!((down[0] - 0.607_242_4).abs() < 1e-6, "{down:?}");
        assert!((down[1] - 2.392_757_7).abs() < 1e-6, "{down:?}");
        // mode="nearest": [0, 1] -> [0, 0, 1, 1].
        let near = resize(&[0.0, 1.0], [1, 1, 2], [1, 1, 4], Resample::Nearest);
        assert_eq!(near, vec![0.0, 0.0, 1.0, 1.0]);
    }

    /// A 512 x 512 checkerboard of one-pixel squares shrunk to 28 x 28 averages to a
    /// flat 0.5 with anti-aliasing; without it, linear resizing samples 2 of every ~18
    /// pixels and keeps the stripes (aliasing).
    #[test]
    fn antialiased_downsampling_averages_stripes() {
        let n = 512;
        let board: Vec<f32> = (0..n * n).map(|p| ((p / n + p % n) % 2) as f32).collect();
        let smooth = resize(&board, [1, n, n], [1, 28, 28], Resample::Linear);
        let spread = |v: &[f32]| v.iter().map(|x| (x - 0.5).abs()).fold(0.0f32, f32::max);
        assert!(spread(&smooth) < 1e-3, "{}", spread(&smooth));
        let aliased = resize_with(&board, [1, n, n], [1, 28, 28], Resample::Linear, false);
        assert!(spread(&aliased) > 0.2, "{}", spread(&aliased));
        // Nearest is never smoothed: it picks pixels, 0 or 1.
        let near = resize(&board, [1, n, n], [1, 28, 28], Resample::Nearest);
        assert!(near.iter().all(|&v| v == 0.0 || v == 1.0));
        // Upsampling is not smoothed either.
        let up = resize(&[0.0, 1.0], [1, 1, 2], [1, 1, 3], Resample::Linear);
        assert_eq!(
            up,
            resize_with(&[0.0, 1.0], [1, 1, 2], [1, 1, 3], Resample::Linear, false)
        );
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
