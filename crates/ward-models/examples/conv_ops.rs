//! Per-kernel timings of the Burn ops in one training step of `ward bench cnn`'s small
//! CNN (1x64x64) and ResNet-18 (1x28x28), batch 32, float32: each op's forward and
//! backward alone, so a kernel can be set beside PyTorch's (the twin script is
//! `docs/results/bench-cnn/torch_ops.py`). Issue 14 item 1.
//!
//! `cargo run --release -p ward-models --example conv_ops [-- flex|ndarray [reps]]`
//! (`ndarray` needs `--features ndarray`). Threads: the rayon pool (`RAYON_NUM_THREADS`).
//!
//! Prints one line per op: median ms of the forward, of the backward to the input and of
//! the backward to the weight (convolutions), and how often one step runs it.
#![allow(
    clippy::print_stdout,
    clippy::single_range_in_vec_init,
    clippy::too_many_lines,
    clippy::type_complexity,
    missing_docs
)]

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation;
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

const BATCH: usize = 32;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ms of `f` over `reps` runs after one warm-up; `f` returns the ms it timed.
fn time(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    f();
    median((0..reps).map(|_| f()).collect())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn rand4(shape: [usize; 4], dev: &Device) -> Tensor<4> {
    Tensor::<4>::random(shape, burn::tensor::Distribution::Uniform(-1.0, 1.0), dev)
}

/// A copy of `t` on `dev` (untimed).
fn on<const D: usize>(t: &Tensor<D>, dev: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(t.to_data(), dev)
}

/// Reads one value back so the op has finished on any backend.
fn sync<const D: usize>(t: &Tensor<D>) {
    let _ = t.clone().flatten::<1>(0, D - 1).slice([0..1]).into_data();
}

struct Conv {
    name: &'static str,
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    stride: usize,
    bias: bool,
    /// Whether the step needs the input gradient (not for the first layer).
    x_grad: bool,
    /// Times per step.
    count: usize,
}

fn conv_case(c: &Conv, infer: &Device, ad: &Device, reps: usize) -> [f64; 3] {
    let opts = ConvOptions::new([c.stride; 2], [c.k / 2; 2], [1; 2], 1);
    let x = rand4([BATCH, c.c_in, c.hw, c.hw], infer);
    let w = rand4([c.c_out, c.c_in, c.k, c.k], infer);
    let b = c.bias.then(|| Tensor::<1>::zeros([c.c_out], infer));
    let fwd = time(reps, || {
        let t = Instant::now();
        let y = module::conv2d(x.clone(), w.clone(), b.clone(), opts.clone());
        sync(&y);
        ms(t)
    });
    let bwd = |grad_x: bool| {
        time(reps, || {
            let mut xa = on(&x, ad);
            let mut wa = on(&w, ad);
            let ba = b.as_ref().map(|b| on(b, ad));
            if grad_x {
                xa = xa.require_grad();
            } else {
                wa = wa.require_grad();
            }
            let y = module::conv2d(xa.clone(), wa.clone(), ba, opts.clone());
            sync(&y);
            let t = Instant::now();
            let g = y.backward();
            let gt = if grad_x { xa.grad(&g) } else { wa.grad(&g) };
            sync(&gt.expect("gradient"));
            ms(t)
        })
    };
    let bx = if c.x_grad { bwd(true) } else { 0.0 };
    [fwd, bx, bwd(false)]
}

/// Forward and backward (to the input) of a unary op on `[BATCH, c, hw, hw]`.
fn unary_case(
    c: usize,
    hw: usize,
    infer: &Device,
    ad: &Device,
    reps: usize,
    op: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> [f64; 2] {
    let x = rand4([BATCH, c, hw, hw], infer);
    let fwd = time(reps, || {
        let t = Instant::now();
        let y = op(x.clone());
        sync(&y);
        ms(t)
    });
    let bwd = time(reps, || {
        let xa = on(&x, ad).require_grad();
        let y = op(xa.clone());
        sync(&y);
        let t = Instant::now();
        let g = y.backward();
        sync(&xa.grad(&g).expect("gradient"));
        ms(t)
    });
    [fwd, bwd]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "flex".into());
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(7);
    let infer = match backend.as_str() {
        "flex" => Device::flex(),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Device::ndarray(),
        other => panic!("unknown backend {other} (flex, or ndarray with --features ndarray)"),
    };
    let ad = infer.clone().autodiff();
    println!(
        "backend {backend}, RAYON_NUM_THREADS={}, batch {BATCH}, median of {reps}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset (one per core)".into())
    );
    println!("model op count fwd_ms bwd_x_ms bwd_w_ms step_ms");
    let cnn = [
        Conv {
            name: "conv1 1->32 @64",
            c_in: 1,
            c_out: 32,
            hw: 64,
            k: 3,
            stride: 1,
            bias: true,
            x_grad: false,
            count: 1,
        },
        Conv {
            name: "conv2 32->64 @32",
            c_in: 32,
            c_out: 64,
            hw: 32,
            k: 3,
            stride: 1,
            bias: true,
            x_grad: true,
            count: 1,
        },
    ];
    let r18 = |name, c_in, c_out, hw, k, stride, count| Conv {
        name,
        c_in,
        c_out,
        hw,
        k,
        stride,
        bias: false,
        x_grad: true,
        count,
    };
    let resnet = [
        Conv {
            x_grad: false,
            ..r18("stem 1->64 @28", 1, 64, 28, 3, 1, 1)
        },
        r18("l1 64->64 @28", 64, 64, 28, 3, 1, 4),
        r18("l2 64->128 s2 @28", 64, 128, 28, 3, 2, 1),
        r18("l2 128->128 @14", 128, 128, 14, 3, 1, 3),
        r18("l2 sc 1x1 64->128 s2", 64, 128, 28, 1, 2, 1),
        r18("l3 128->256 s2 @14", 128, 256, 14, 3, 2, 1),
        r18("l3 256->256 @7", 256, 256, 7, 3, 1, 3),
        r18("l3 sc 1x1 128->256 s2", 128, 256, 14, 1, 2, 1),
        r18("l4 256->512 s2 @7", 256, 512, 7, 3, 2, 1),
        r18("l4 512->512 @4", 512, 512, 4, 3, 1, 3),
        r18("l4 sc 1x1 256->512 s2", 256, 512, 7, 1, 2, 1),
    ];
    for (model, convs) in [("cnn64", &cnn[..]), ("resnet18@28", &resnet[..])] {
        let mut total = 0.0;
        for c in convs {
            let [f, bx, bw] = conv_case(c, &infer, &ad, reps);
            let step = (f + bx + bw) * c.count as f64;
            total += step;
            println!(
                "{model} conv {} x{} {f:.2} {bx:.2} {bw:.2} {step:.2}",
                c.name, c.count
            );
        }
        // Pools, ReLUs, batch norms and dense layers of the model.
        let pool = |t: Tensor<4>| module::max_pool2d(t, MaxPoolOptions::new([2, 2]));
        let relu = |t: Tensor<4>| activation::relu(t);
        let bn = |t: Tensor<4>| {
            let c = t.dims()[1];
            let dev = t.device();
            module::batch_norm_train(
                t,
                Tensor::<1>::ones([c], &dev),
                Tensor::<1>::zeros([c], &dev),
                1e-5,
            )
            .output
        };
        let others: Vec<(&str, usize, usize, usize, &dyn Fn(Tensor<4>) -> Tensor<4>)> =
            if model == "cnn64" {
                vec![
                    ("relu 32@64", 32, 64, 1, &relu),
                    ("maxpool 32@64", 32, 64, 1, &pool),
                    ("relu 64@32", 64, 32, 1, &relu),
                    ("maxpool 64@32", 64, 32, 1, &pool),
                ]
            } else {
                vec![
                    ("bn 64@28", 64, 28, 5, &bn),
                    ("bn 128@14", 128, 14, 5, &bn),
                    ("bn 256@7", 256, 7, 5, &bn),
                    ("bn 512@4", 512, 4, 5, &bn),
                    ("relu 64@28", 64, 28, 5, &relu),
                    ("relu 128@14", 128, 14, 4, &relu),
                ]
            };
        for (name, c, hw, count, op) in others {
            let [f, b] = unary_case(c, hw, &infer, &ad, reps, op);
            let step = (f + b) * count as f64;
            total += step;
            println!("{model} {name} x{count} {f:.2} {b:.2} - {step:.2}");
        }
        if model == "cnn64" {
            // fc1: [32, 16384] x [128, 16384]^T (forward, backward to input and weight).
            let x = Tensor::<2>::random(
                [BATCH, 64 * 16 * 16],
                burn::tensor::Distribution::Uniform(-1.0, 1.0),
                &infer,
            );
            let w = Tensor::<2>::random(
                [64 * 16 * 16, 128],
                burn::tensor::Distribution::Uniform(-1.0, 1.0),
                &infer,
            );
            let f = time(reps, || {
                let t = Instant::now();
                sync(&x.clone().matmul(w.clone()));
                ms(t)
            });
            let b = time(reps, || {
                let xa = on(&x, &ad).require_grad();
                let wa = on(&w, &ad).require_grad();
                let y = xa.clone().matmul(wa.clone());
                sync(&y);
                let t = Instant::now();
                let g = y.backward();
                sync(&wa.grad(&g).expect("gradient"));
                sync(&xa.grad(&g).expect("gradient"));
                ms(t)
            });
            total += f + b;
            println!("{model} fc1 16384->128 x1 {f:.2} {b:.2} - {:.2}", f + b);
        }
        println!("{model} total of the ops above: {total:.1} ms");
    }
}
