"""Forward + backward time of the normcore normalization layers against PyTorch on the CPU.

Run with ``make bench`` (or ``.venv/bin/python bench/bench_layers.py``). For each layer it
times normcore's NumPy forward and backward and PyTorch's functional forward plus autograd
backward on the same float32 batch, in the same process, and prints the median over
several repeats. NumPy's elementwise operations run on one core, so the main comparison
uses ``torch.set_num_threads(1)``; a second table shows torch with its default threads.
A last row compares the two batch-norm backwards (staged graph and closed form).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from normcore import normalization as nn_norm

SHAPE = (128, 64, 16, 16)
NUM_GROUPS = 8


def median_ms(*fns, repeats: int) -> list[float]:
    """Median wall time in milliseconds of each of ``fns``, called in turn.

    The functions are interleaved (``a, b, a, b, ...``) so that a change in machine load
    affects all of them alike; each is called once untimed first.
    """
    times = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [1e3 * float(np.median(record)) for record in times]


def layer_cases(x, dout, gamma, beta):
    """``name -> (normcore fwd+bwd, torch fwd+bwd)`` for one batch."""
    ln_gamma = np.ones(x.shape[1:], x.dtype)
    ln_beta = np.zeros(x.shape[1:], x.dtype)
    xt, dt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)
    gt, bt = torch.from_numpy(gamma).requires_grad_(), torch.from_numpy(beta).requires_grad_()
    lgt = torch.from_numpy(ln_gamma).requires_grad_()
    lbt = torch.from_numpy(ln_beta).requires_grad_()
    running = [np.zeros(x.shape[1], x.dtype), np.ones(x.shape[1], x.dtype)]
    running_t = [torch.from_numpy(r.copy()) for r in running]

    def torch_step(fn):
        def step():
            for t in (xt, gt, bt, lgt, lbt):
                t.grad = None
            fn().backward(dt)

        return step

    def normcore_step(forward, backward):
        return lambda: backward(dout, forward()[1])

    return {
        "batch norm": (
            normcore_step(
                lambda: nn_norm.batch_norm_forward(x, gamma, beta, *running),
                nn_norm.batch_norm_backward,
            ),
            torch_step(lambda: F.batch_norm(xt, *running_t, gt, bt, training=True)),
        ),
        "layer norm": (
            normcore_step(
                lambda: nn_norm.layer_norm_forward(x, ln_gamma, ln_beta),
                nn_norm.layer_norm_backward,
            ),
            torch_step(lambda: F.layer_norm(xt, xt.shape[1:], lgt, lbt)),
        ),
        "instance norm": (
            normcore_step(
                lambda: nn_norm.instance_norm_forward(x, gamma, beta),
                nn_norm.instance_norm_backward,
            ),
            torch_step(lambda: F.instance_norm(xt, weight=gt, bias=bt)),
        ),
        f"group norm (G={NUM_GROUPS})": (
            normcore_step(
                lambda: nn_norm.group_norm_forward(x, NUM_GROUPS, gamma, beta),
                nn_norm.group_norm_backward,
            ),
            torch_step(lambda: F.group_norm(xt, NUM_GROUPS, gt, bt)),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per entry")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    dout = rng.standard_normal(SHAPE).astype(np.float32)
    gamma = (1.0 + 0.1 * rng.standard_normal(SHAPE[1])).astype(np.float32)
    beta = (0.1 * rng.standard_normal(SHAPE[1])).astype(np.float32)
    cases = layer_cases(x, dout, gamma, beta)

    default_threads = torch.get_num_threads()
    print(f"forward + backward, x float32 {SHAPE}, median of {args.repeats} runs")
    print(f"numpy {np.__version__}, torch {torch.__version__} "
          f"(default threads: {default_threads}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    thread_counts = [1] if default_threads == 1 else [1, default_threads]
    for threads in thread_counts:
        torch.set_num_threads(threads)
        print(f"\ntorch threads: {threads} (numpy: 1)")
        print(f"{'layer':<20}{'normcore ms':>13}{'torch ms':>11}{'normcore/torch':>16}")
        for name, (normcore_fn, torch_fn) in cases.items():
            ours, theirs = median_ms(normcore_fn, torch_fn, repeats=args.repeats)
            print(f"{name:<20}{ours:>13.2f}{theirs:>11.2f}{ours / theirs:>16.2f}")
    torch.set_num_threads(default_threads)

    _, cache = nn_norm.batch_norm_forward(x, gamma, beta)
    staged, closed = median_ms(
        lambda: nn_norm.batch_norm_backward(dout, cache),
        lambda: nn_norm.batch_norm_backward_alt(dout, cache),
        repeats=args.repeats,
    )
    print("\nbatch norm backward only")
    print(f"{'staged graph ms':>16}{'closed form ms':>16}{'staged/closed':>15}")
    print(f"{staged:>16.2f}{closed:>16.2f}{staged / closed:>15.2f}")


if __name__ == "__main__":
    main()
