use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn small(input: ImageShape, norm: Norm) -> ConvArch {
    ConvArch {
        family: ConvFamily::SmallCnn {
            channels: vec![4, 4],
            hidden: 8,
        },
        norm,
        input,
        outputs: 3,
        multi_label: false,
        dropout: 0.0,
    }
}

fn batch(arch: &ConvArch, rows: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..rows * arch.input.len())
        .map(|_| rng.random_range(0.0f32..1.0))
        .collect();
    let y = (0..rows)
        .map(|_| rng.random_range(0..arch.outputs as u32))
        .collect();
    (x, y)
}

/// Parameter counts of the PyTorch anchor's models
/// (`../shared/anchors/pytorch_cnn/results/results.json`, field `params`:
/// `cnn 1x28x28` 421513, `cnn 1x64x64` 2117257, `resnet18` 11172297). Ward's layout adds
/// the BatchNorm running mean and variance (2 x 4800 channels) that PyTorch keeps as
/// buffers outside `parameters()`.
#[test]
fn layouts_match_the_pytorch_anchor() {
    let cnn = |hw| ConvArch {
        family: ConvFamily::SmallCnn {
            channels: vec![32, 64],
            hidden: 128,
        },
        norm: Norm::None,
        input: ImageShape::d2(1, hw, hw),
        outputs: 9,
        multi_label: false,
        dropout: 0.0,
    };
    assert_eq!(cnn(28).num_params(), 421_513);
    assert_eq!(cnn(64).num_params(), 2_117_257);
    let resnet = ConvArch {
        family: ConvFamily::Resnet18 { width: 64 },
        norm: Norm::Batch,
        input: ImageShape::d2(1, 28, 28),
        outputs: 9,
        multi_label: false,
        dropout: 0.0,
    };
    let buffers: usize = resnet.buffer_ranges().iter().map(|(a, b)| b - a).sum();
    assert_eq!(buffers, 2 * 4800);
    assert_eq!(resnet.num_params() - buffers, 11_172_297);
}

/// Central finite differences of the loss against autodiff, at a handful of
/// coordinates of every tensor (f32 arithmetic through up to 20 normalisation layers: relative tolerance 5e-2).
fn check_gradients(arch: ConvArch, rows: usize) {
    check_gradients_with(arch, rows, None);
}

/// [`check_gradients`], every loss with the dropout mask of `dropout` (a fixed mask
/// makes the loss a smooth function of the parameters again).
fn check_gradients_with(arch: ConvArch, rows: usize, dropout: Option<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let params = arch.init(&mut rng);
    let (x, y) = batch(&arch, rows, 4);
    let mut engine = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
    let mut loss = |p: &[f32], g: &mut [f32]| {
        if let Some(seed) = dropout {
            engine.arm_dropout(seed);
        }
        engine.loss_and_grad(p, &x, &y, g).unwrap()
    };
    let mut grad = vec![0.0; params.len()];
    loss(params.values(), &mut grad);
    let buffers = arch.buffer_ranges();
    let mut checked = 0;
    let mut off = 0;
    for t in arch.layout().tensors() {
        let n = t.numel();
        for k in [0, n / 2, n - 1] {
            let i = off + k;
            if buffers.iter().any(|&(a, b)| (a..b).contains(&i)) {
                assert_eq!(grad[i], 0.0, "{} is a buffer", t.name);
                continue;
            }
            // ReLU and max-pool kinks bend the loss within a few 1e-3 of a point in deep
            // normalised networks: accept the closest of three step sizes (a wrong
            // gradient matches none).
            let mut best = f32::INFINITY;
            let mut numeric = 0.0;
            for h in [1e-3f32, 3e-4, 1e-4] {
                let mut p = params.values().to_vec();
                let mut g = vec![0.0; p.len()];
                p[i] += h;
                let up = loss(&p, &mut g);
                p[i] -= 2.0 * h;
                let down = loss(&p, &mut g);
                let fd = (up - down) / (2.0 * h);
                if (fd - grad[i]).abs() < best {
                    best = (fd - grad[i]).abs();
                    numeric = fd;
                }
            }
            let tol = 5e-2 * numeric.abs().max(grad[i].abs()) + 2e-3;
            assert!(
                best <= tol,
                "{}[{k}]: autodiff {} vs finite difference {numeric}",
                t.name,
                grad[i]
            );
            checked += 1;
        }
        off += n;
    }
    assert!(checked > 10);
}

#[test]
fn small_cnn_gradients_match_finite_differences() {
    check_gradients(small(ImageShape::d2(1, 8, 8), Norm::None), 3);
    check_gradients(small(ImageShape::d2(2, 8, 8), Norm::Group { groups: 2 }), 3);
    check_gradients(small(ImageShape::d2(1, 8, 8), Norm::Batch), 4);
}

/// Dropout on the hidden dense layer: with one fixed mask, autodiff matches finite
/// differences (with BatchNorm too); the mask changes the gradient; a model armed with
/// a seed but with dropout 0, or one not armed, computes the plain gradient.
#[test]
fn small_cnn_dropout_gradients_match_finite_differences_with_a_fixed_mask() {
    let with = |norm| ConvArch {
        dropout: 0.5,
        ..small(ImageShape::d2(1, 8, 8), norm)
    };
    check_gradients_with(with(Norm::None), 3, Some(11));
    check_gradients_with(with(Norm::Batch), 4, Some(12));

    let arch = with(Norm::None);
    let params = arch.init(&mut ChaCha8Rng::seed_from_u64(3));
    let (x, y) = batch(&arch, 3, 4);
    let grad_of = |arch: &ConvArch, seed: Option<u64>| {
        let mut e = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
        let mut g = vec![0.0; params.len()];
        if let Some(s) = seed {
            e.arm_dropout(s);
        }
        let l = e.loss_and_grad(params.values(), &x, &y, &mut g).unwrap();
        (l, g)
    };
    let plain = grad_of(&arch, None);
    assert_ne!(
        grad_of(&arch, Some(11)),
        plain,
        "the mask must change the gradient"
    );
    assert_eq!(grad_of(&arch, Some(11)), grad_of(&arch, Some(11)));
    let off = ConvArch {
        dropout: 0.0,
        ..arch.clone()
    };
    assert_eq!(grad_of(&off, Some(11)), plain);
    // Armed for one call only: the next one is plain again.
    let mut e = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
    let mut g = vec![0.0; params.len()];
    e.arm_dropout(11);
    e.loss_and_grad(params.values(), &x, &y, &mut g).unwrap();
    let l = e.loss_and_grad(params.values(), &x, &y, &mut g).unwrap();
    assert_eq!((l, g), plain);
}

/// MC dropout's sampled logits: evaluation-mode BatchNorm, the same logits whatever the
/// chunking (one mask for all rows), and their mean over masks the evaluation logits
/// (the output layer is linear in its masked input, whose expectation is the input):
/// within 5 standard errors over 2000 masks at every logit. Without dropout it refuses.
#[test]
fn mc_dropout_logits_average_to_the_evaluation_logits() {
    let arch = ConvArch {
        dropout: 0.3,
        ..small(ImageShape::d2(1, 8, 8), Norm::Batch)
    };
    let params = arch.init(&mut ChaCha8Rng::seed_from_u64(5));
    let rows = EVAL_CHUNK + 3;
    let (x, _) = batch(&arch, rows, 6);
    let mut e = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
    let eval = e.logits(params.values(), &x, rows).unwrap();
    let k = arch.outputs;
    let take = 4;
    let t = 2000;
    let (mut sum, mut sq) = (vec![0f64; take * k], vec![0f64; take * k]);
    for s in 0..t {
        let z = e
            .dropout_logits(params.values(), &x[..take * arch.input.len()], take, s)
            .unwrap();
        for (i, v) in z.iter().enumerate() {
            sum[i] += f64::from(*v);
            sq[i] += f64::from(*v) * f64::from(*v);
        }
    }
    for i in 0..take * k {
        let mean = sum[i] / f64::from(t as u32);
        let var = sq[i] / f64::from(t as u32) - mean * mean;
        let se = (var / f64::from(t as u32)).sqrt();
        assert!(
            (mean - f64::from(eval[i])).abs() < 5.0 * se + 1e-5,
            "logit {i}: MC mean {mean} vs eval {} (se {se})",
            eval[i]
        );
        assert!(var > 0.0, "dropout should vary the logits");
    }
    // Row r's mask is values [r d, (r + 1) d) of the seed's stream whatever the
    // chunking: a pass over two chunks starts with the logits of a pass over its first
    // `take` rows (to rounding: the batch size changes the kernels' summation order);
    // and the pass is deterministic in the seed.
    let all = e.dropout_logits(params.values(), &x, rows, 9).unwrap();
    assert_eq!(all.len(), rows * k);
    let head = e
        .dropout_logits(params.values(), &x[..take * arch.input.len()], take, 9)
        .unwrap();
    assert_close("first rows of a two-chunk pass", &all[..take * k], &head);
    assert_eq!(all, e.dropout_logits(params.values(), &x, rows, 9).unwrap());
    assert_ne!(
        all,
        e.dropout_logits(params.values(), &x, rows, 10).unwrap()
    );
    let none = ConvArch {
        dropout: 0.0,
        ..arch
    };
    let err = BurnConv::new(none, DeviceChoice::Cpu)
        .unwrap()
        .dropout_logits(params.values(), &x, rows, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("MC dropout needs a model trained with dropout"),
        "{err}"
    );
}

#[test]
fn volume_cnn_gradients_match_finite_differences() {
    check_gradients(
        small(ImageShape::d3(1, 4, 8, 8), Norm::Group { groups: 4 }),
        2,
    );
}

#[test]
fn tiny_resnet_gradients_match_finite_differences() {
    let arch = ConvArch {
        family: ConvFamily::Resnet18 { width: 2 },
        norm: Norm::Group { groups: 1 },
        input: ImageShape::d2(1, 16, 16),
        outputs: 2,
        multi_label: false,
        dropout: 0.0,
    };
    check_gradients(arch.clone(), 2);
    check_gradients(
        ConvArch {
            norm: Norm::None,
            ..arch
        },
        2,
    );
    // BatchNorm's backward is checked on the small CNN above: in a width-2 ResNet with a
    // batch of 4, each BN layer of the last stage normalises 16 values and the loss is
    // too kinked for f32 finite differences at any step size (measured: estimates
    // jump by 2x between steps 1e-4 and 3e-5).
}

/// Running statistics follow PyTorch's rule: `r <- 0.9 r + 0.1 s` with the unbiased batch
/// variance. For a model whose first layer sees the raw input through a 3x3 conv whose
/// weights are all zero but the centre tap (1) and bias 0, the first BatchNorm's batch
/// mean and variance are the input's, computed here by hand.
#[test]
fn batch_norm_buffers_follow_pytorch_momentum() {
    let arch = ConvArch {
        family: ConvFamily::SmallCnn {
            channels: vec![1],
            hidden: 2,
        },
        norm: Norm::Batch,
        input: ImageShape::d2(1, 2, 2),
        outputs: 2,
        multi_label: false,
        dropout: 0.0,
    };
    let layout = arch.layout();
    let mut p = arch
        .init(&mut ChaCha8Rng::seed_from_u64(0))
        .values()
        .to_vec();
    // conv1.weight [1,1,3,3]: centre tap 1; conv1.bias 0.
    p[..9].fill(0.0);
    p[4] = 1.0;
    p[9] = 0.0;
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let mut engine = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
    let mut g = vec![0.0; p.len()];
    engine.loss_and_grad(&p, &x, &[0, 1], &mut g).unwrap();
    let before = p.clone();
    engine.write_buffers(&mut p);
    let names: Vec<_> = layout.tensors().iter().map(|t| t.name.clone()).collect();
    let at = |name: &str| {
        let mut off = 0;
        for t in layout.tensors() {
            if t.name == name {
                return off;
            }
            off += t.numel();
        }
        panic!("no {name} in {names:?}")
    };
    // mean of 1..=8 = 4.5; unbiased variance = 6.0.
    assert!((p[at("bn1.running_mean")] - 0.45).abs() < 1e-5);
    assert!((p[at("bn1.running_var")] - (0.9 + 0.1 * 6.0)).abs() < 1e-5);
    // Nothing else moved.
    for (i, (a, b)) in before.iter().zip(&p).enumerate() {
        if i != at("bn1.running_mean") && i != at("bn1.running_var") {
            assert_eq!(a, b, "value {i} changed");
        }
    }
}

#[test]
fn scoring_in_chunks_equals_one_pass_and_checks_shapes() {
    let arch = small(ImageShape::d2(1, 8, 8), Norm::Batch);
    let params = arch.init(&mut ChaCha8Rng::seed_from_u64(1));
    let (x, _) = batch(&arch, EVAL_CHUNK + 5, 2);
    let mut engine = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
    let all = engine.logits(params.values(), &x, EVAL_CHUNK + 5).unwrap();
    let tail = engine
        .logits(params.values(), &x[EVAL_CHUNK * 64..], 5)
        .unwrap();
    assert_eq!(all.len(), (EVAL_CHUNK + 5) * 3);
    for (a, b) in all[EVAL_CHUNK * 3..].iter().zip(&tail) {
        assert!((a - b).abs() < 1e-5);
    }
    let err = engine.logits(params.values(), &x[..10], 1).unwrap_err();
    assert!(err.to_string().contains("needs 64 values, got 10"), "{err}");
    let mut g = vec![0.0; params.len()];
    let err = engine
        .loss_and_grad(params.values(), &x[..64], &[7], &mut g)
        .unwrap_err();
    assert!(err.to_string().contains("label 7"), "{err}");
}

#[test]
fn invalid_architectures_are_refused() {
    let mut a = small(ImageShape::d2(1, 2, 2), Norm::None);
    assert!(
        a.validate()
            .unwrap_err()
            .to_string()
            .contains("at least 4 pixels")
    );
    a = small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 3 });
    assert!(
        a.validate()
            .unwrap_err()
            .to_string()
            .contains("multiple of the number of groups")
    );
}

/// A tiny CNN learns a task a linear model on pixel sums could not shortcut: a bright
/// 2x2 square in the left half (class 0) or the right half (class 1).
#[test]
fn tiny_cnn_learns_a_spatial_task() {
    let arch = ConvArch {
        family: ConvFamily::SmallCnn {
            channels: vec![4],
            hidden: 8,
        },
        norm: Norm::Batch,
        input: ImageShape::d2(1, 8, 8),
        outputs: 2,
        multi_label: false,
        dropout: 0.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let make = |rng: &mut ChaCha8Rng, n: usize| {
        let mut x = vec![0.0f32; n * 64];
        let mut y = Vec::new();
        for i in 0..n {
            let c = rng.random_range(0..2u32);
            let col = rng.random_range(0..3) + 4 * c as usize;
            let row = rng.random_range(0..7);
            for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                x[i * 64 + (row + dr) * 8 + col + dc] = 1.0;
            }
            y.push(c);
        }
        (x, y)
    };
    let (x, y) = make(&mut rng, 64);
    let (xt, yt) = make(&mut rng, 64);
    let mut params = arch.init(&mut rng).values().to_vec();
    let mut engine = BurnConv::new(arch, DeviceChoice::Cpu).unwrap();
    let mut g = vec![0.0; params.len()];
    for step in 0..60 {
        let lo = (step % 4) * 16;
        engine
            .loss_and_grad(
                &params,
                &x[lo * 64..(lo + 16) * 64],
                &y[lo..lo + 16],
                &mut g,
            )
            .unwrap();
        for (p, gi) in params.iter_mut().zip(&g) {
            *p -= 0.2 * gi;
        }
        engine.write_buffers(&mut params);
    }
    let z = engine.logits(&params, &xt, 64).unwrap();
    let correct = (0..64)
        .filter(|&r| u32::from(z[2 * r + 1] > z[2 * r]) == yt[r])
        .count();
    assert!(correct >= 58, "{correct}/64 correct");
}

#[test]
fn multi_label_gradients_and_loss_by_hand() {
    let arch = ConvArch {
        multi_label: true,
        dropout: 0.0,
        ..small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 2 })
    };
    check_gradients(arch.clone(), 3);
    // Every logit 0: each label's BCE is ln 2, whatever the bits (PyTorch's
    // BCEWithLogitsLoss(0, t) = ln 2), so the mean is ln 2.
    let mut p = arch
        .init(&mut ChaCha8Rng::seed_from_u64(0))
        .values()
        .to_vec();
    let n = p.len();
    p[n - 3..].fill(0.0); // fc2.bias
    let fc2_w = 3 * 8;
    p[n - 3 - fc2_w..n - 3].fill(0.0); // fc2.weight
    let (x, _) = batch(&arch, 2, 1);
    let mut engine = BurnConv::new(arch, DeviceChoice::Cpu).unwrap();
    let mut g = vec![0.0; n];
    let loss = engine
        .loss_and_grad(&p, &x, &[0b101, 0b010], &mut g)
        .unwrap();
    assert!((loss - std::f32::consts::LN_2).abs() < 1e-6, "{loss}");
    let err = engine
        .loss_and_grad(&p, &x, &[0b1000, 0], &mut g)
        .unwrap_err();
    assert!(err.to_string().contains("beyond the 3 labels"), "{err}");
}

/// DP-SGD on Burn, both per-sample paths (microbatching: one example per backward pass;
/// vectorised): with GroupNorm no statistic mixes examples, so the per-sample gradients
/// with a non-binding clip must sum to `rows` times the gradient of the whole batch's
/// mean loss; with a binding clip, every per-example contribution has norm at most C
/// and the clipped sum is smaller.
#[test]
fn group_norm_per_sample_gradients_sum_to_the_batch_gradient() {
    let arch = small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 2 });
    let params = arch.init(&mut ChaCha8Rng::seed_from_u64(4));
    for per_sample in [PerSample::Microbatch, PerSample::Auto] {
        let mut e = BurnConv::new(arch.clone(), DeviceChoice::Cpu)
            .unwrap()
            .with_per_sample(per_sample);
        assert_eq!(e.vectorised_per_sample(), per_sample == PerSample::Auto);
        let rows = 3;
        let (x, y) = batch(&arch, rows, 8);
        let mut whole = vec![0.0f32; params.len()];
        let loss = e
            .loss_and_grad(params.values(), &x, &y, &mut whole)
            .unwrap();
        let mut sum = vec![0.0f32; params.len()];
        let mut norms = Vec::new();
        let total = e
            .clipped_grad_sum(params.values(), &x, &y, f32::MAX, &mut sum, &mut norms)
            .unwrap();
        assert!(
            (total - loss * rows as f32).abs() < 1e-4,
            "{per_sample:?}: {total} vs {loss}"
        );
        assert_eq!(norms.len(), rows);
        for (s, w) in sum.iter().zip(&whole) {
            assert!(
                (s - w * rows as f32).abs() < 1e-4 * (1.0 + w.abs()),
                "{per_sample:?}: {s} vs {w}"
            );
        }
        let clip = norms.iter().copied().fold(f32::INFINITY, f32::min) / 2.0;
        let mut clipped = vec![0.0f32; params.len()];
        e.clipped_grad_sum(params.values(), &x, &y, clip, &mut clipped, &mut norms)
            .unwrap();
        let n = clipped.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(
            n <= rows as f32 * clip * (1.0 + 1e-5),
            "{per_sample:?}: {n}"
        );
    }
}

/// `a` and `b` agree to f32 rounding: each coordinate within `1e-4 |b| + 1e-5 max|b|`.
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        assert!(
            (p - q).abs() <= 1e-4 * q.abs() + 1e-5 * scale,
            "{what}[{i}]: vectorised {p} vs microbatched {q} (max |value| {scale})"
        );
    }
}

/// The vectorised per-sample path (with the convolution norms forced to `conv_norms`)
/// gives microbatching's per-example norms, clipped sum and summed loss, at three clips:
/// none binding, one between the second and third smallest norm (some examples
/// clipped, some not), and half the smallest norm (every example clipped).
fn vectorised_matches_microbatching(arch: &ConvArch, rows: usize, conv_norms: ConvNorms) {
    let params = arch.init(&mut ChaCha8Rng::seed_from_u64(5));
    let mut e = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
    e.conv_norms = conv_norms;
    assert!(e.vectorised_per_sample(), "{}", arch.describe());
    let (x, y) = batch(arch, rows, 11);
    let n = params.len();
    let micro = |e: &mut BurnConv, clip: f32| {
        let (mut sum, mut norms) = (vec![0.0f32; n], Vec::new());
        let loss = crate::dp::microbatch_clipped_sum(
            e,
            params.values(),
            &x,
            &y,
            clip,
            &mut sum,
            &mut norms,
        )
        .unwrap();
        (loss, sum, norms)
    };
    let (_, _, base) = micro(&mut e, f32::MAX);
    let mut sorted = base.clone();
    sorted.sort_by(f32::total_cmp);
    assert!(sorted[0] > 0.0 && sorted[1] < sorted[2], "{sorted:?}");
    for clip in [f32::MAX, (sorted[1] + sorted[2]) / 2.0, sorted[0] / 2.0] {
        let (loss_m, sum_m, norms_m) = micro(&mut e, clip);
        let (mut sum_v, mut norms_v) = (vec![f32::NAN; n], Vec::new());
        let loss_v = e
            .clipped_grad_sum(params.values(), &x, &y, clip, &mut sum_v, &mut norms_v)
            .unwrap();
        let what = format!("{} ({conv_norms:?}, clip {clip})", arch.describe());
        assert!(
            (loss_v - loss_m).abs() <= 1e-5 * loss_m.abs().max(1.0),
            "{what}: loss {loss_v} vs {loss_m}"
        );
        assert_close(&format!("{what} norms"), &norms_v, &norms_m);
        assert_close(&format!("{what} clipped sum"), &sum_v, &sum_m);
        let clipped = norms_m.iter().filter(|&&v| v > clip).count();
        if clip < f32::MAX && clip > sorted[0] {
            assert!(clipped > 0 && clipped < rows, "{what}: {clipped} clipped");
        }
    }
}

/// Two 2D input sizes (square single-channel, non-square two-channel with odd pooled
/// sizes), both convolution-norm forms, with GroupNorm.
#[test]
fn vectorised_per_sample_matches_microbatching_with_group_norm() {
    let a = small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 2 });
    for mode in [ConvNorms::Auto, ConvNorms::Materialise, ConvNorms::Ghost] {
        vectorised_matches_microbatching(&a, 5, mode);
    }
    let b = small(ImageShape::d2(2, 12, 10), Norm::Group { groups: 4 });
    for mode in [ConvNorms::Auto, ConvNorms::Ghost] {
        vectorised_matches_microbatching(&b, 4, mode);
    }
}

/// Without normalisation, and on a volume (3D convolutions, 27-tap unfold).
#[test]
fn vectorised_per_sample_matches_microbatching_without_norm_and_in_3d() {
    let a = small(ImageShape::d2(1, 8, 8), Norm::None);
    for mode in [ConvNorms::Auto, ConvNorms::Ghost] {
        vectorised_matches_microbatching(&a, 5, mode);
    }
    let v = small(ImageShape::d3(1, 4, 4, 4), Norm::Group { groups: 2 });
    for mode in [ConvNorms::Materialise, ConvNorms::Ghost] {
        vectorised_matches_microbatching(&v, 3, mode);
    }
}

/// Multi-label loss (mean over labels per example): the per-example loss scale matches.
#[test]
fn vectorised_per_sample_matches_microbatching_multi_label() {
    let a = ConvArch {
        multi_label: true,
        dropout: 0.0,
        ..small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 2 })
    };
    vectorised_matches_microbatching(&a, 4, ConvNorms::Auto);
}

/// Models the vectorised path does not cover (ResNet-18, BatchNorm, or microbatching
/// asked for) fall back to one backward pass per example: the same numbers as
/// [`crate::dp::microbatch_clipped_sum`]. An empty batch gives zeros either way.
#[test]
fn unsupported_models_fall_back_to_microbatching() {
    let resnet = ConvArch {
        family: ConvFamily::Resnet18 { width: 2 },
        norm: Norm::Group { groups: 1 },
        input: ImageShape::d2(1, 8, 8),
        outputs: 2,
        multi_label: false,
        dropout: 0.0,
    };
    let cases = [
        (resnet, PerSample::Auto),
        (small(ImageShape::d2(1, 8, 8), Norm::Batch), PerSample::Auto),
        (
            small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 2 }),
            PerSample::Microbatch,
        ),
    ];
    for (arch, per_sample) in cases {
        let params = arch.init(&mut ChaCha8Rng::seed_from_u64(6));
        let mut e = BurnConv::new(arch.clone(), DeviceChoice::Cpu)
            .unwrap()
            .with_per_sample(per_sample);
        assert!(!e.vectorised_per_sample(), "{}", arch.describe());
        let (x, y) = batch(&arch, 3, 12);
        let n = params.len();
        let (mut s1, mut n1) = (vec![0.0f32; n], Vec::new());
        let (mut s2, mut n2) = (vec![0.0f32; n], Vec::new());
        let clip = 0.05;
        let l1 = e
            .clipped_grad_sum(params.values(), &x, &y, clip, &mut s1, &mut n1)
            .unwrap();
        let l2 = crate::dp::microbatch_clipped_sum(
            &mut e,
            params.values(),
            &x,
            &y,
            clip,
            &mut s2,
            &mut n2,
        )
        .unwrap();
        assert_eq!((l1, &s1, &n1), (l2, &s2, &n2), "{}", arch.describe());
    }
    let arch = small(ImageShape::d2(1, 8, 8), Norm::Group { groups: 2 });
    let params = arch.init(&mut ChaCha8Rng::seed_from_u64(6));
    let mut e = BurnConv::new(arch, DeviceChoice::Cpu).unwrap();
    let (mut s, mut norms) = (vec![1.0f32; params.len()], vec![1.0]);
    let l = e
        .clipped_grad_sum(params.values(), &[], &[], 1.0, &mut s, &mut norms)
        .unwrap();
    assert_eq!(l, 0.0);
    assert!(norms.is_empty() && s.iter().all(|&v| v == 0.0));
}

/// The output layer applied to `features` gives the logits (small CNN, tiny ResNet).
#[test]
fn features_feed_the_output_layer() {
    let cnn = small(ImageShape::d2(1, 8, 8), Norm::Batch);
    let resnet = ConvArch {
        family: ConvFamily::Resnet18 { width: 2 },
        norm: Norm::Batch,
        input: ImageShape::d2(1, 8, 8),
        outputs: 3,
        multi_label: false,
        dropout: 0.0,
    };
    for arch in [cnn, resnet] {
        let params = arch.init(&mut ChaCha8Rng::seed_from_u64(3));
        let (x, _) = batch(&arch, 5, 4);
        let mut engine = BurnConv::new(arch.clone(), DeviceChoice::Cpu).unwrap();
        crate::model::assert_features_give_logits(
            &arch.into(),
            &mut engine,
            params.values(),
            &x,
            5,
        );
    }
}
