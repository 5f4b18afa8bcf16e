"""How fast, and how lean, each way of getting an MLP's gradient is (chapters 4, 5 and 6), and what vectorizing buys (chapter 1).

    make bench                                          # one thread for NumPy and torch
    .venv/bin/python benchmarks/gradients.py --quick   # small sizes: checks that it runs

For MLPs of growing width it times one gradient of the mean squared error three ways:
central differences (chapter 4; timed on up to 200 parameters and scaled to all of them), the `zero2gpt.autograd` engine (chapter 5) and
`torch.autograd` (chapter 6), all in float64 on the CPU, in one run. It also times
`training.fit` against a bare PyTorch loop doing the same steps, measures the peak
memory the engine allocates for one gradient, and times chapter 1's perceptron on all
patterns of 16 switches, one pattern at a time in Python against one matrix product.

Machines differ and are noisy, so the targets are ratios measured in the same run:
  - backpropagation beats central differences by at least a tenth of the parameter count
    (differences cost 2 losses per parameter; backprop about 3 passes in all);
  - torch.autograd is within 3x of the engine (both spend their time in matrix products);
  - fit costs at most 1.5x a bare loop (the progress bar and the checks are cheap);
  - the engine's peak memory is at most 8x the activations a backward pass must keep;
  - the matrix form of the perceptron is at least 10x faster than a Python loop over patterns.
The script prints every figure and a line per target, and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import tracemalloc
from typing import Callable

import numpy as np
import torch

from zero2gpt.autograd import tensor_mlp_forward, tensor_parameters
from zero2gpt.mlp import count_parameters, flatten_parameters, init_mlp, mlp_loss_for
from zero2gpt.prediction import all_switch_patterns, perceptron
from zero2gpt.regression import numerical_gradient
from zero2gpt.training import build_mlp, fit, load_mlp_parameters


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def gradient_timings(width: int, n_samples: int, repeats: int) -> dict[str, float]:
    """Seconds per gradient for each method, and the engine's peak bytes, for a (1, width, width, 1) tanh MLP."""
    sizes = (1, width, width, 1)
    random = np.random.default_rng(0)
    inputs = random.uniform(-1, 1, (n_samples, 1))
    targets = np.sin(3 * inputs)
    parameters = init_mlp(sizes, seed=0)

    loss = mlp_loss_for(sizes, inputs, targets, activation="tanh")
    flat = flatten_parameters(parameters)

    def engine_gradient() -> None:
        tensors = tensor_parameters(parameters)
        errors = tensor_mlp_forward(tensors, inputs, activation="tanh") - targets
        (errors ** 2).mean().backward()

    model = build_mlp(sizes, activation="tanh").double()
    load_mlp_parameters(model, parameters)
    torch_inputs, torch_targets = torch.from_numpy(inputs), torch.from_numpy(targets)

    def torch_gradient() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(torch_inputs), torch_targets).backward()

    tracemalloc.start()
    engine_gradient()
    engine_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # What any reverse pass must keep: each hidden layer's pre- and post-activation values, in float64.
    activations = 2 * 2 * n_samples * width * 8

    # Central differences cost exactly 2 losses per parameter. Timing them all would take minutes at
    # width 128, so time the first few hundred parameters and scale: every parameter costs the same.
    sample = min(flat.size, 200)

    def numeric_gradient_of_sample() -> None:
        numerical_gradient(lambda head: loss(np.concatenate([head, flat[sample:]])), flat[:sample])

    return {
        "parameters": count_parameters(sizes),
        "numeric": best_seconds(numeric_gradient_of_sample, repeats) * flat.size / sample,
        "engine": best_seconds(engine_gradient, repeats),
        "torch": best_seconds(torch_gradient, repeats),
        "engine_peak_ratio": engine_peak / activations,
    }


def fit_overhead(steps: int) -> tuple[float, float]:
    """Seconds for ``steps`` full-batch Adam steps, through ``fit`` and through a bare loop."""
    torch.manual_seed(0)
    inputs = torch.linspace(-1, 1, 256).unsqueeze(1)
    targets = inputs ** 2

    def bare_loop() -> None:
        model = build_mlp((1, 64, 64, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def through_fit() -> None:
        with contextlib.redirect_stderr(io.StringIO()):  # the bar is drawn, and timed, but not shown
            fit(build_mlp((1, 64, 64, 1)), torch.nn.functional.mse_loss, (inputs, targets), epochs=steps,
                learning_rate=1e-3, device="cpu", seed=0, progress=True)

    return best_seconds(through_fit, 3), best_seconds(bare_loop, 3)


def vectorization_speedup(n_switches: int, repeats: int) -> tuple[float, float]:
    """Seconds to run the perceptron on every pattern of ``n_switches``: a Python loop, then one matrix product."""
    patterns = all_switch_patterns(n_switches)
    weights = np.random.default_rng(0).normal(size=n_switches)
    rows = patterns.tolist()

    def loop() -> None:
        for row in rows:
            total = sum(weight * switch for weight, switch in zip(weights, row)) - 0.5
            int(total > 0)

    return best_seconds(loop, repeats), best_seconds(lambda: perceptron(patterns, weights, -0.5), repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that the benchmark runs")
    quick = parser.parse_args(argv).quick
    torch.set_num_threads(1)  # one core, so that the three methods compete on equal terms
    widths = (8, 32) if quick else (8, 32, 128)
    n_samples = 64 if quick else 256
    repeats = 3 if quick else 10

    print(f"One gradient of a (1, width, width, 1) tanh MLP on {n_samples} examples, float64, one CPU thread")
    print(f"{'width':>6} {'params':>8} {'numeric s':>11} {'engine s':>10} {'torch s':>9} "
          f"{'numeric/engine':>15} {'torch/engine':>13} {'engine memory':>14}")
    rows = []
    for width in widths:
        row = gradient_timings(width, n_samples, repeats)
        rows.append(row)
        print(f"{width:>6} {row['parameters']:>8} {row['numeric']:>11.2e} {row['engine']:>10.2e} {row['torch']:>9.2e} "
              f"{row['numeric'] / row['engine']:>15.1f} {row['torch'] / row['engine']:>13.2f} "
              f"{row['engine_peak_ratio']:>13.1f}x")

    fit_seconds, bare_seconds = fit_overhead(steps=50 if quick else 300)
    print(f"fit: {fit_seconds:.3f} s, bare loop: {bare_seconds:.3f} s, ratio {fit_seconds / bare_seconds:.2f}")

    loop_seconds, matrix_seconds = vectorization_speedup(n_switches=12 if quick else 16, repeats=3)
    print(f"perceptron on every pattern: loop {loop_seconds:.4f} s, matrix {matrix_seconds:.4f} s, "
          f"ratio {loop_seconds / matrix_seconds:.0f}")

    largest = rows[-1]
    targets = [
        ("backprop beats differences by >= parameters / 10", largest["numeric"] / largest["engine"] >= largest["parameters"] / 10),
        ("torch.autograd within 3x of the engine", all(row["torch"] <= 3 * row["engine"] for row in rows)),
        ("fit within 1.5x of a bare loop", fit_seconds <= 1.5 * bare_seconds),
        ("engine memory within 8x of the activations", all(row["engine_peak_ratio"] <= 8 for row in rows)),
        ("the matrix perceptron >= 10x a Python loop", loop_seconds >= 10 * matrix_seconds),
    ]
    for name, met in targets:
        print(f"{'met ' if met else 'MISSED'} {name}")
    return 0 if all(met for _, met in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
