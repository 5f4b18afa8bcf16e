"""zero2gpt.prediction, the perceptron of chapter 1."""

import re

import numpy as np
import pytest

from zero2gpt.prediction import MAX_SWITCHES, all_switch_patterns, count_mistakes, perceptron, step


@pytest.mark.parametrize("n", [1, 3, 8])
def test_switch_patterns_count_in_binary(n):
    patterns = all_switch_patterns(n)
    assert patterns.shape == (2**n, n)
    as_numbers = patterns @ (2 ** np.arange(n - 1, -1, -1))
    assert as_numbers.tolist() == list(range(2**n))


@pytest.mark.parametrize("bad", [0, -2, MAX_SWITCHES + 1, 2.0, "3", True, None])
def test_switch_patterns_reject_bad_counts(bad):
    with pytest.raises(ValueError, match=re.escape(f"n_switches must be an integer >= 1 and <= {MAX_SWITCHES}; got {bad!r}")):
        all_switch_patterns(bad)


def test_step_is_one_only_above_zero_and_keeps_the_shape():
    z = np.array([[-2.0, 0.0], [1e-9, 3.0]])
    assert step(z).tolist() == [[0, 0], [1, 1]]
    assert step(0.5) == 1 and step(0.5).shape == ()


def test_step_rejects_nan():
    with pytest.raises(ValueError, match="step got NaN"):
        step([1.0, float("nan")])


def test_perceptron_computes_the_majority_vote():
    patterns = all_switch_patterns(3)
    majority = (patterns.sum(axis=1) >= 2).astype(int)
    assert perceptron(patterns, [1, 1, 1], -1.5).tolist() == majority.tolist()


def test_batch_agrees_with_one_example_at_a_time_and_with_the_formula():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(50, 6))
    weights, bias = rng.normal(size=6), float(rng.normal())
    batch = perceptron(inputs, weights, bias)
    assert batch.shape == (50,)
    assert batch.tolist() == [int(perceptron(row, weights, bias)) for row in inputs]
    assert batch.tolist() == [int(sum(x * w for x, w in zip(row, weights)) + bias > 0) for row in inputs]


@pytest.mark.parametrize("inputs", [np.zeros(4), np.zeros((2, 4)), np.zeros((2, 2, 3))])
def test_perceptron_names_mismatched_shapes(inputs):
    expected = f"inputs must have shape (3,) or (m, 3) to match 3 weights; got shape {inputs.shape}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        perceptron(inputs, np.ones(3), 0.0)


def test_perceptron_rejects_matrix_weights_and_bad_bias():
    with pytest.raises(ValueError, match=r"weights must be a 1-D array"):
        perceptron(np.zeros((2, 3)), np.ones((3, 1)), 0.0)
    with pytest.raises(ValueError, match=r"bias must be a finite number; got nan"):
        perceptron(np.zeros(3), np.ones(3), float("nan"))


def test_count_mistakes():
    assert count_mistakes([0, 1, 1, 0], [0, 1, 0, 1]) == 2
    assert count_mistakes(np.ones((2, 3)), np.ones((2, 3))) == 0
    with pytest.raises(ValueError, match=r"same shape; got \(3,\) and \(4,\)"):
        count_mistakes([0, 1, 1], [0, 1, 1, 0])
