"""zero2gpt.regression: linear and logistic regression, trained by gradient descent (chapter 3)."""

import dataclasses
import re
import warnings

import numpy as np
import pytest

from zero2gpt import regression
from zero2gpt.regression import (
    DescentResult,
    DivergenceError,
    gradient_descent,
    linear_predict,
    logistic_loss_and_gradient,
    logistic_predict_proba,
    mean_squared_error,
    mse_loss_and_gradient,
    numerical_gradient,
    sigmoid,
)


def regression_problem(seed: int, n_samples: int = 40, n_features: int = 3, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n_samples, n_features))
    targets = inputs @ rng.normal(size=n_features) + rng.normal() + noise * rng.normal(size=n_samples)
    return inputs, targets


def classification_problem(seed: int, n_samples: int = 60, n_features: int = 2):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n_samples, n_features))
    # labels from a noisy line, so that the classes overlap and the loss has a finite minimum
    targets = (inputs @ rng.normal(size=n_features) + rng.normal(size=n_samples) > 0).astype(float)
    return inputs, targets


def quadratic(parameters):
    """(p - 3)^2 summed: minimum 0 at p = 3 everywhere, gradient 2 (p - 3)."""
    return float(np.sum((parameters - 3.0) ** 2)), 2 * (parameters - 3.0)


# --- the linear model and its loss -------------------------------------------------------------


def test_linear_predict_is_the_weighted_sum_plus_bias():
    inputs = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0]])
    assert linear_predict(inputs, [2.0, 0.5], 1.0).tolist() == [4.0, 6.5, 1.0]


@pytest.mark.parametrize(
    ("inputs", "weights", "message"),
    [
        (np.zeros(3), np.ones(3), "inputs must be a 2-D array of shape (n_samples, n_features), not empty; got shape (3,)"),
        (np.zeros((0, 2)), np.ones(2), "not empty; got shape (0, 2)"),
        (np.zeros((4, 2)), np.ones(3), "weights must have shape (2,), one per column of inputs; got shape (3,)"),
        (np.zeros((4, 2)), np.ones((2, 1)), "weights must have shape (2,), one per column of inputs; got shape (2, 1)"),
    ],
)
def test_linear_predict_names_bad_shapes(inputs, weights, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        linear_predict(inputs, weights, 0.0)


def test_linear_predict_rejects_nan_in_inputs_weights_and_bias():
    inputs = np.ones((3, 2))
    inputs[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"inputs contain NaN or infinity \(first at row 2, column 1\)"):
        linear_predict(inputs, np.ones(2), 0.0)
    with pytest.raises(ValueError, match="weights and bias must be finite numbers"):
        linear_predict(np.ones((3, 2)), [1.0, np.nan], 0.0)
    with pytest.raises(ValueError, match="weights and bias must be finite numbers.*bias nan"):
        linear_predict(np.ones((3, 2)), np.ones(2), float("nan"))


def test_mean_squared_error():
    assert mean_squared_error([1.0, 2.0, 3.0], [1.0, 4.0, 0.0]) == pytest.approx((0 + 4 + 9) / 3)
    assert mean_squared_error(np.ones((2, 2)), np.ones((2, 2))) == 0.0
    with pytest.raises(ValueError, match=re.escape("same, non-empty shape; got (3,) and (2,)")):
        mean_squared_error([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=re.escape("same, non-empty shape; got (0,) and (0,)")):
        mean_squared_error([], [])
    with pytest.raises(ValueError, match="contain NaN"):
        mean_squared_error([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize(("seed", "n_features"), [(0, 1), (1, 3), (2, 8)])
@pytest.mark.parametrize(
    ("loss_and_gradient", "make_problem"),
    [(mse_loss_and_gradient, regression_problem), (logistic_loss_and_gradient, classification_problem)],
    ids=["mse", "logistic"],
)
def test_gradient_matches_finite_differences(loss_and_gradient, make_problem, seed, n_features):
    inputs, targets = make_problem(seed, n_features=n_features)
    parameters = np.random.default_rng(seed + 100).normal(size=n_features + 1)
    _, gradient = loss_and_gradient(parameters, inputs, targets)
    estimate = numerical_gradient(lambda p: loss_and_gradient(p, inputs, targets)[0], parameters)
    assert gradient.shape == parameters.shape
    np.testing.assert_allclose(gradient, estimate, rtol=1e-6, atol=1e-7)


def test_mse_loss_is_the_mean_squared_error_of_the_predictions():
    inputs, targets = regression_problem(4)
    parameters = np.random.default_rng(104).normal(size=inputs.shape[1] + 1)
    loss, _ = mse_loss_and_gradient(parameters, inputs, targets)
    assert loss == pytest.approx(mean_squared_error(linear_predict(inputs, parameters[:-1], parameters[-1]), targets))


def test_mse_gradient_is_zero_at_the_least_squares_solution():
    inputs, targets = regression_problem(3)
    exact, *_ = np.linalg.lstsq(np.column_stack([inputs, np.ones(len(targets))]), targets, rcond=None)
    _, gradient = mse_loss_and_gradient(exact, inputs, targets)
    assert np.abs(gradient).max() < 1e-12


def test_loss_functions_name_bad_shapes_and_nan():
    inputs, targets = regression_problem(4, n_features=2)
    for loss_and_gradient in (mse_loss_and_gradient, logistic_loss_and_gradient):
        binary = (targets > 0).astype(float)
        with pytest.raises(ValueError, match=re.escape("parameters must have shape (3,): 2 weight(s), one per feature, "
                                                       "then the bias; got shape (2,)")):
            loss_and_gradient(np.zeros(2), inputs, binary)
        with pytest.raises(ValueError, match=re.escape(f"targets must have shape ({len(targets)},), one per row of inputs; "
                                                       f"got shape ({len(targets) - 1},)")):
            loss_and_gradient(np.zeros(3), inputs, binary[:-1])
        with pytest.raises(ValueError, match="inputs must be a 2-D array"):
            loss_and_gradient(np.zeros(3), inputs[:, 0], binary)
        with_nan = inputs.copy()
        with_nan[5, 0] = np.nan
        with pytest.raises(ValueError, match=r"inputs contain NaN or infinity \(first at row 5, column 0\)"):
            loss_and_gradient(np.zeros(3), with_nan, binary)
        target_nan = binary.copy()
        target_nan[7] = np.nan
        with pytest.raises(ValueError, match=r"targets contain NaN or infinity \(first at index 7\)"):
            loss_and_gradient(np.zeros(3), inputs, target_nan)


# --- numerical_gradient ------------------------------------------------------------------------


def test_numerical_gradient_of_a_known_function():
    def loss(p):
        return float(p[0] ** 2 + 3 * p[0] * p[1] + np.sin(p[2]))

    point = np.array([1.5, -2.0, 0.3])
    expected = [2 * 1.5 + 3 * -2.0, 3 * 1.5, np.cos(0.3)]
    np.testing.assert_allclose(numerical_gradient(loss, point), expected, rtol=1e-8)


def test_numerical_gradient_rejects_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("step_size must be a finite number > 0; got -0.1")):
        numerical_gradient(lambda p: 0.0, np.zeros(2), step_size=-0.1)
    with pytest.raises(ValueError, match=re.escape("step_size must be a finite number > 0; got nan")):
        numerical_gradient(lambda p: 0.0, np.zeros(2), step_size=float("nan"))
    with pytest.raises(ValueError, match=re.escape("parameters must be a non-empty 1-D array; got shape (2, 2)")):
        numerical_gradient(lambda p: 0.0, np.zeros((2, 2)))


# --- the sigmoid and the logistic model --------------------------------------------------------


def test_sigmoid_values_and_symmetry():
    z = np.linspace(-20, 20, 81)
    assert sigmoid(0.0) == 0.5 and sigmoid(0.0).shape == ()
    np.testing.assert_allclose(sigmoid(z), 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(sigmoid(-z), 1 - sigmoid(z), atol=1e-15)
    assert np.all(np.diff(sigmoid(z)) > 0)
    assert sigmoid(np.zeros((2, 3))).shape == (2, 3)


def test_sigmoid_is_quiet_and_exact_at_extremes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would fail the test
        values = sigmoid(np.array([-1e308, -1000.0, -745.0, 1000.0, 1e308]))
    assert values.tolist()[:2] == [0.0, 0.0] and values[2] > 0 and values.tolist()[3:] == [1.0, 1.0]
    assert sigmoid(-50.0) == pytest.approx(np.exp(-50.0), rel=1e-12), "the small side keeps its precision"
    assert np.isnan(sigmoid(np.nan)), "NaN passes through, for gradient_descent to report"


def test_logistic_predict_proba_is_the_sigmoid_of_the_line():
    inputs, _ = classification_problem(0)
    weights, bias = np.array([1.5, -0.5]), 0.25
    probabilities = logistic_predict_proba(inputs, weights, bias)
    np.testing.assert_array_equal(probabilities, sigmoid(inputs @ weights + bias))
    assert np.all((probabilities > 0) & (probabilities < 1))


def test_logistic_loss_is_the_log_loss_and_stays_finite():
    inputs, targets = classification_problem(5)
    parameters = np.array([0.7, -1.2, 0.1])
    p = sigmoid(inputs @ parameters[:2] + parameters[2])
    naive = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    assert logistic_loss_and_gradient(parameters, inputs, targets)[0] == pytest.approx(naive, rel=1e-12)
    assert logistic_loss_and_gradient(np.zeros(3), inputs, targets)[0] == pytest.approx(np.log(2))

    # confidently wrong by z = 800: the loss is 800, not infinity, and the gradient is the full -1 or +1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, gradient = logistic_loss_and_gradient(np.array([1.0, 0.0]), np.array([[800.0], [-800.0]]), np.array([0.0, 1.0]))
    assert loss == pytest.approx(800.0) and gradient.tolist() == pytest.approx([800.0, 0.0])


def test_logistic_loss_rejects_targets_that_are_not_classes():
    inputs, targets = classification_problem(6)
    targets[3] = 0.5
    with pytest.raises(ValueError, match=r"targets must be 0 or 1 \(the two classes\); got \[0\.\s+0\.5\s+1\.\s*\]"):
        logistic_loss_and_gradient(np.zeros(3), inputs, targets)


# --- gradient descent --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_descent_reaches_the_least_squares_solution(seed):
    inputs, targets = regression_problem(seed, n_samples=200, n_features=10)
    exact, *_ = np.linalg.lstsq(np.column_stack([inputs, np.ones(len(targets))]), targets, rcond=None)
    result = gradient_descent(lambda p: mse_loss_and_gradient(p, inputs, targets), np.zeros(11),
                              learning_rate=0.2, steps=500, progress=False)
    np.testing.assert_allclose(result.parameters, exact, atol=1e-8)


def test_gradient_descent_trains_logistic_regression_to_a_flat_bottom():
    inputs, targets = classification_problem(7, n_samples=300)
    result = gradient_descent(lambda p: logistic_loss_and_gradient(p, inputs, targets), np.zeros(3),
                              learning_rate=1.0, steps=2000, progress=False)
    _, gradient = logistic_loss_and_gradient(result.parameters, inputs, targets)
    assert np.abs(gradient).max() < 1e-6
    assert result.losses[-1] < result.losses[0] == pytest.approx(np.log(2))


def test_one_step_is_the_update_rule_and_the_history_lines_up():
    start = np.array([1.0, -2.0])
    result = gradient_descent(quadratic, start, learning_rate=0.1, steps=3, progress=False)
    assert start.tolist() == [1.0, -2.0], "the caller's array is left alone"
    assert result.losses.shape == (4,) and result.parameter_history.shape == (4, 2)
    np.testing.assert_allclose(result.parameter_history[1], start - 0.1 * quadratic(start)[1])
    np.testing.assert_array_equal(result.parameter_history[0], start)
    np.testing.assert_array_equal(result.parameter_history[-1], result.parameters)
    for parameters, loss in zip(result.parameter_history, result.losses):
        assert loss == quadratic(parameters)[0]
    assert np.all(np.diff(result.losses) < 0)


def test_parameters_need_not_be_recorded():
    result = gradient_descent(quadratic, np.zeros(3), learning_rate=0.1, steps=5, progress=False, record_parameters=False)
    assert result.parameter_history is None and len(result.losses) == 6


def test_descent_result_is_frozen():
    result = gradient_descent(quadratic, np.zeros(1), learning_rate=0.1, steps=1, progress=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.losses = None


def test_too_large_a_learning_rate_raises_divergence_with_the_run_so_far():
    # on (p - 3)^2 each step multiplies the distance to 3 by |1 - 2 * learning_rate| = 3
    with pytest.raises(DivergenceError) as caught:
        gradient_descent(quadratic, np.zeros(1), learning_rate=2.0, steps=10_000, progress=False)
    error = caught.value
    assert isinstance(error, ValueError), "a DivergenceError is a ValueError"
    assert re.search(rf"diverged at step {error.step}: .*try a smaller learning_rate than 2\.0", str(error))
    assert 300 < error.step < 800
    run = error.result
    assert len(run.losses) == error.step == len(run.parameter_history)
    assert np.all(np.isfinite(run.losses)) and run.losses[-1] > 1e250
    np.testing.assert_array_equal(run.parameters, run.parameter_history[-1])


def test_divergence_is_noticed_in_the_gradient_and_in_the_parameters():
    def nan_gradient_after_a_while(parameters):
        return 1.0, np.array([np.nan]) if parameters[0] < -2.5 else np.array([1.0])

    with pytest.raises(DivergenceError, match="diverged at step 3: the gradient is not finite") as caught:
        gradient_descent(nan_gradient_after_a_while, np.zeros(1), learning_rate=1.0, steps=10, progress=False)
    assert caught.value.result.losses.tolist() == [1.0, 1.0, 1.0]

    def huge_gradient(parameters):
        return 0.0, np.array([1e308])

    with pytest.raises(DivergenceError, match="diverged at step 1: the parameters overflowed") as caught:
        gradient_descent(huge_gradient, np.zeros(1), learning_rate=10.0, steps=5, progress=False)
    assert caught.value.result.parameters.tolist() == [0.0]


def test_a_non_finite_start_is_not_called_divergence():
    with pytest.raises(ValueError, match="not finite at initial_parameters") as caught:
        gradient_descent(lambda p: (float("nan"), np.zeros(1)), np.zeros(1), learning_rate=0.1, steps=5, progress=False)
    assert not isinstance(caught.value, DivergenceError)


@pytest.mark.parametrize("learning_rate", [0, -1.0, float("nan"), float("inf"), True, "0.1", None])
def test_gradient_descent_rejects_bad_learning_rates(learning_rate):
    with pytest.raises(ValueError, match=re.escape(f"learning_rate must be a finite number > 0; got {learning_rate!r}")):
        gradient_descent(quadratic, np.zeros(2), learning_rate=learning_rate, steps=5, progress=False)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "10"])
def test_gradient_descent_rejects_bad_step_counts(steps):
    with pytest.raises(ValueError, match=re.escape(f"steps must be an integer >= 1; got {steps!r}")):
        gradient_descent(quadratic, np.zeros(2), learning_rate=0.1, steps=steps, progress=False)


def test_gradient_descent_refuses_a_history_too_large_for_memory_before_it_starts():
    calls = []

    def counted(parameters):
        calls.append(1)
        return quadratic(parameters)

    # 10**9 steps of 1,000 recorded parameters would need about 7,500 GiB
    with pytest.raises(ValueError, match=r"the history of steps=1,000,000,000 would need 7,4\d\d\.\d GiB of memory"):
        gradient_descent(counted, np.zeros(1000), learning_rate=0.1, steps=10**9, progress=False)
    # without the parameter history, only the losses are kept: 10**9 of them still pass the limit
    with pytest.raises(ValueError, match="would need 7.5 GiB of memory; the limit is 4 GiB"):
        gradient_descent(counted, np.zeros(1000), learning_rate=0.1, steps=10**9, progress=False, record_parameters=False)
    assert calls == [], "refused up front, before the first evaluation"


def test_gradient_descent_rejects_bad_starts_and_mismatched_gradients():
    with pytest.raises(ValueError, match=re.escape("initial_parameters must be a non-empty 1-D array; got shape (2, 2)")):
        gradient_descent(quadratic, np.zeros((2, 2)), learning_rate=0.1, steps=5, progress=False)
    with pytest.raises(ValueError, match=re.escape("initial_parameters must be a non-empty 1-D array; got shape (0,)")):
        gradient_descent(quadratic, [], learning_rate=0.1, steps=5, progress=False)
    with pytest.raises(ValueError, match="initial_parameters must be finite numbers"):
        gradient_descent(quadratic, [0.0, np.nan], learning_rate=0.1, steps=5, progress=False)
    with pytest.raises(ValueError, match=re.escape("gradient of shape (3,) for parameters of shape (2,)")):
        gradient_descent(lambda p: (0.0, np.zeros(3)), np.zeros(2), learning_rate=0.1, steps=5, progress=False)


def test_progress_bar_shows_the_loss_and_nothing_else_is_printed(capsys):
    gradient_descent(quadratic, np.zeros(2), learning_rate=0.1, steps=50, progress=True)
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "gradient descent" in printed.err and "loss=" in printed.err

    gradient_descent(quadratic, np.zeros(2), learning_rate=0.1, steps=50, progress=False)
    assert capsys.readouterr() == ("", "")


def test_progress_postfix_is_refreshed_about_a_hundred_times(monkeypatch):
    postfixes = []

    class CountingBar:
        def __init__(self, total, desc, disable):
            self.total, self.updates = total, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def set_postfix(self, **values):
            postfixes.append(values["loss"])

        def update(self, n):
            self.updates += n

    monkeypatch.setattr(regression, "tqdm", CountingBar)
    result = gradient_descent(quadratic, np.zeros(2), learning_rate=0.001, steps=5000, progress=True)
    assert 100 <= len(postfixes) <= 102
    assert postfixes[-1] == f"{result.losses[-1]:.4g}", "the bar ends on the final loss"


def test_descent_result_type():
    assert isinstance(gradient_descent(quadratic, np.zeros(1), 0.1, 1, progress=False), DescentResult)


def test_ctrl_c_returns_the_run_so_far_marked_interrupted():
    calls = []

    def bowl_until_interrupted(parameters):
        calls.append(1)
        if len(calls) == 6:  # the reader presses Ctrl-C during the sixth evaluation
            raise KeyboardInterrupt
        return float(parameters @ parameters), 2 * parameters

    run = gradient_descent(bowl_until_interrupted, np.array([1.0, -2.0]), 0.1, 100, progress=False)
    assert run.interrupted
    assert len(run.losses) == 5 and run.parameter_history.shape == (5, 2)
    assert np.array_equal(run.parameters, run.parameter_history[-1])
    assert not gradient_descent(lambda p: (float(p @ p), 2 * p), np.ones(2), 0.1, 3, progress=False).interrupted
