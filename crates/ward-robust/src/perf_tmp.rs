//! Temporary timing harness (removed before handing over).
#![allow(clippy::print_stdout, missing_docs)]
use std::time::Instant;

use crate::coordinate::{Reduce, coordinatewise};
use crate::distance::pairwise_sq_dists;

fn data(n: usize, d: usize) -> Vec<Vec<f32>> {
    let mut s = 12345u64;
    (0..n)
        .map(|_| {
            (0..d)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        })
        .collect()
}

fn t<F: FnMut()>(name: &str, mut f: F) {
    f();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let s = Instant::now();
        f();
        best = best.min(s.elapsed().as_secs_f64());
    }
    println!("{name:40} {:.4} s", best);
}

#[test]
#[ignore]
fn perf() {
    let which = std::env::var("PERF").unwrap_or_default();
    for (n, d) in [(10usize, 1_000_000usize), (50, 1_000_000), (100, 1_000_000)] {
        let x = data(n, d);
        let r: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
        if which.contains('m') {
            t(&format!("median n={n} d={d}"), || {
                std::hint::black_box(coordinatewise(&r, Reduce::Median));
            });
            t(&format!("trimmed n={n} d={d}"), || {
                std::hint::black_box(coordinatewise(&r, Reduce::Trimmed(n / 10)));
            });
        }
        if which.contains('b') {
            let th = n - 2 * ((n - 3) / 4);
            t(&format!("nearmedian theta n={th} d={d}"), || {
                std::hint::black_box(coordinatewise(
                    &r[..th],
                    Reduce::NearMedian(th - 2 * ((n - 3) / 4)),
                ));
            });
        }
        if which.contains('d') {
            t(&format!("dists n={n} d={d}"), || {
                std::hint::black_box(pairwise_sq_dists(&r));
            });
        }
        if which.contains('w') {
            let w = vec![1.0 / n as f64; n];
            t(&format!("wsum n={n} d={d}"), || {
                std::hint::black_box(crate::common::weighted_sum_f64(&r, &w));
            });
        }
    }
}
