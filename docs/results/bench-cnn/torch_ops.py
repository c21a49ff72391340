#!/usr/bin/env python3
"""PyTorch twin of `cargo run --release -p ward-models --example conv_ops`: the same ops
and shapes (batch 32, float32), each op's forward and backward timed alone, median ms.

  /tmp/torch-venv/bin/python docs/results/bench-cnn/torch_ops.py [--threads 2] [--reps 7]

Backward = torch.autograd.grad of the op's output with a ones seed (as Burn's
`Tensor::backward`), to the input or to the weight only; the forward is run before the
timer.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

B = 32


def timed(reps, f):
    f()
    return statistics.median(f() for _ in range(reps))


def conv_case(c_in, c_out, hw, k, stride, bias, x_grad, reps):
    x = torch.rand(B, c_in, hw, hw) * 2 - 1
    w = torch.rand(c_out, c_in, k, k) * 2 - 1
    b = torch.zeros(c_out) if bias else None

    def fwd():
        with torch.no_grad():
            t = time.perf_counter()
            F.conv2d(x, w, b, stride=stride, padding=k // 2)
            return (time.perf_counter() - t) * 1e3

    def bwd(to_x):
        xa = x.clone().requires_grad_(to_x)
        wa = w.clone().requires_grad_(not to_x)
        y = F.conv2d(xa, wa, b, stride=stride, padding=k // 2)
        g = torch.ones_like(y)
        t = time.perf_counter()
        torch.autograd.grad(y, xa if to_x else wa, g)
        return (time.perf_counter() - t) * 1e3

    f = timed(reps, fwd)
    bx = timed(reps, lambda: bwd(True)) if x_grad else 0.0
    bw = timed(reps, lambda: bwd(False))
    return f, bx, bw


def unary_case(c, hw, op, reps):
    x = torch.rand(B, c, hw, hw) * 2 - 1

    def fwd():
        with torch.no_grad():
            t = time.perf_counter()
            op(x)
            return (time.perf_counter() - t) * 1e3

    def bwd():
        xa = x.clone().requires_grad_(True)
        y = op(xa)
        g = torch.ones_like(y)
        t = time.perf_counter()
        torch.autograd.grad(y, xa, g)
        return (time.perf_counter() - t) * 1e3

    return timed(reps, fwd), timed(reps, bwd)


def bn(t):
    c = t.shape[1]
    return F.batch_norm(t, torch.zeros(c), torch.ones(c), torch.ones(c), torch.zeros(c), training=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B}, median of {a.reps}")
    print("model op count fwd_ms bwd_x_ms bwd_w_ms step_ms")
    cnn = [("conv1 1->32 @64", 1, 32, 64, 3, 1, True, False, 1),
           ("conv2 32->64 @32", 32, 64, 32, 3, 1, True, True, 1)]
    resnet = [("stem 1->64 @28", 1, 64, 28, 3, 1, False, False, 1),
              ("l1 64->64 @28", 64, 64, 28, 3, 1, False, True, 4),
              ("l2 64->128 s2 @28", 64, 128, 28, 3, 2, False, True, 1),
              ("l2 128->128 @14", 128, 128, 14, 3, 1, False, True, 3),
              ("l2 sc 1x1 64->128 s2", 64, 128, 28, 1, 2, False, True, 1),
              ("l3 128->256 s2 @14", 128, 256, 14, 3, 2, False, True, 1),
              ("l3 256->256 @7", 256, 256, 7, 3, 1, False, True, 3),
              ("l3 sc 1x1 128->256 s2", 128, 256, 14, 1, 2, False, True, 1),
              ("l4 256->512 s2 @7", 256, 512, 7, 3, 2, False, True, 1),
              ("l4 512->512 @4", 512, 512, 4, 3, 1, False, True, 3),
              ("l4 sc 1x1 256->512 s2", 256, 512, 7, 1, 2, False, True, 1)]
    pool = lambda t: F.max_pool2d(t, 2)
    for model, convs in (("cnn64", cnn), ("resnet18@28", resnet)):
        total = 0.0
        for name, ci, co, hw, k, s, bias, xg, n in convs:
            f, bx, bw = conv_case(ci, co, hw, k, s, bias, xg, a.reps)
            step = (f + bx + bw) * n
            total += step
            print(f"{model} conv {name} x{n} {f:.2f} {bx:.2f} {bw:.2f} {step:.2f}")
        if model == "cnn64":
            others = [("relu 32@64", 32, 64, 1, F.relu), ("maxpool 32@64", 32, 64, 1, pool),
                      ("relu 64@32", 64, 32, 1, F.relu), ("maxpool 64@32", 64, 32, 1, pool)]
        else:
            others = [("bn 64@28", 64, 28, 5, bn), ("bn 128@14", 128, 14, 5, bn),
                      ("bn 256@7", 256, 7, 5, bn), ("bn 512@4", 512, 4, 5, bn),
                      ("relu 64@28", 64, 28, 5, F.relu), ("relu 128@14", 128, 14, 4, F.relu)]
        for name, c, hw, n, op in others:
            f, b = unary_case(c, hw, op, a.reps)
            step = (f + b) * n
            total += step
            print(f"{model} {name} x{n} {f:.2f} {b:.2f} - {step:.2f}")
        if model == "cnn64":
            x = torch.rand(B, 64 * 16 * 16) * 2 - 1
            w = torch.rand(64 * 16 * 16, 128) * 2 - 1

            def fwd():
                with torch.no_grad():
                    t = time.perf_counter()
                    x @ w
                    return (time.perf_counter() - t) * 1e3

            def bwd():
                xa = x.clone().requires_grad_(True)
                wa = w.clone().requires_grad_(True)
                y = xa @ wa
                t = time.perf_counter()
                torch.autograd.grad(y, (xa, wa), torch.ones_like(y))
                return (time.perf_counter() - t) * 1e3

            f, b = timed(a.reps, fwd), timed(a.reps, bwd)
            total += f + b
            print(f"{model} fc1 16384->128 x1 {f:.2f} {b:.2f} - {f + b:.2f}")
        print(f"{model} total of the ops above: {total:.1f} ms")


if __name__ == "__main__":
    main()
