"""zero2gpt.mlp: data a line cannot fit, the multilayer perceptron, and training it with numerical gradients (chapter 4)."""

import re

import numpy as np
import pytest

from zero2gpt.mlp import (
    ACTIVATIONS,
    CountedLoss,
    MLPParameters,
    activation_function,
    checked_layer_sizes,
    checked_network_sizes,
    count_parameters,
    flatten_parameters,
    init_mlp,
    layer_sizes_of,
    least_squares_fit,
    mlp_forward,
    mlp_layer_outputs,
    mlp_loss_for,
    noisy_line_dataset,
    numerical_loss_and_gradient,
    relu,
    unflatten_parameters,
    wiggly_dataset,
    wiggly_function,
    xor_dataset,
)
from zero2gpt.regression import gradient_descent, mse_loss_and_gradient, sigmoid
from zero2gpt.search import evolve

# --- data ---------------------------------------------------------------------------------------


def test_xor_dataset_is_the_four_corners_and_their_xor():
    inputs, targets = xor_dataset()
    assert inputs.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert targets.tolist() == [0, 1, 1, 0]
    assert inputs.dtype == float and targets.dtype == float


def test_wiggly_function_is_sin_3x_plus_0_3x():
    x = np.linspace(-3, 3, 13)
    assert np.allclose(wiggly_function(x), np.sin(3 * x) + 0.3 * x)
    assert wiggly_function(0.0) == 0.0


@pytest.mark.parametrize("make", [wiggly_dataset, noisy_line_dataset])
def test_datasets_are_sorted_seeded_and_shaped_for_regression(make):
    inputs, targets = make(50, seed=3)
    assert inputs.shape == (50, 1) and targets.shape == (50,)
    assert np.all(np.diff(inputs[:, 0]) >= 0), "sorted by x"
    again_inputs, again_targets = make(50, seed=3)
    assert np.array_equal(inputs, again_inputs) and np.array_equal(targets, again_targets)
    assert not np.array_equal(targets, make(50, seed=4)[1])


def test_datasets_leave_the_global_random_state_alone():
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    wiggly_dataset(10, seed=1)
    noisy_line_dataset(10, seed=1)
    assert np.random.random() == expected


def test_datasets_without_noise_lie_on_their_curves():
    x, y = wiggly_dataset(30, noise=0.0, low=-1.0, high=2.0, seed=0)
    assert np.allclose(y, wiggly_function(x[:, 0])) and x.min() >= -1.0 and x.max() <= 2.0
    x, y = noisy_line_dataset(30, slope=-0.5, intercept=4.0, noise=0.0, seed=0)
    assert np.allclose(y, -0.5 * x[:, 0] + 4.0)


def test_dataset_noise_has_the_requested_size():
    x, y = wiggly_dataset(20_000, noise=0.1, seed=0)
    assert np.std(y - wiggly_function(x[:, 0])) == pytest.approx(0.1, rel=0.03)


@pytest.mark.parametrize("make", [wiggly_dataset, noisy_line_dataset])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_samples=0), "n_samples must be an integer >= 1; got 0"),
        (dict(n_samples=2.5), "n_samples must be an integer >= 1; got 2.5"),
        (dict(n_samples=True), "n_samples must be an integer >= 1; got True"),
        (dict(n_samples=5, noise=-1.0), "noise must be a finite number >= 0; got -1.0"),
        (dict(n_samples=5, noise=float("nan")), "noise must be a finite number >= 0; got nan"),
        (dict(n_samples=5, low=float("-inf")), "low must be a finite number; got -inf"),
        (dict(n_samples=5, low=1.0, high=1.0), "low must be less than high; got low=1.0 and high=1.0"),
    ],
)
def test_datasets_name_bad_arguments(make, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(**kwargs)


@pytest.mark.parametrize("make", [wiggly_dataset, noisy_line_dataset])
def test_datasets_refuse_a_size_that_would_not_fit_in_memory(make):
    # 10**9 points: about 30 GiB of arrays, refused before anything is allocated
    with pytest.raises(ValueError, match=r"n_samples=1,000,000,000 would need 29\.8 GiB of memory; the limit is 4 GiB"):
        make(10**9)
    assert make(10**5, seed=0)[0].shape == (10**5, 1), "ordinary sizes are fine"


# --- the best line ------------------------------------------------------------------------------


def test_least_squares_fit_recovers_an_exact_plane():
    inputs = np.random.default_rng(0).normal(size=(30, 3))
    weights, bias = least_squares_fit(inputs, inputs @ [1.0, -2.0, 0.5] + 3.0)
    assert np.allclose(weights, [1.0, -2.0, 0.5]) and bias == pytest.approx(3.0)
    assert isinstance(bias, float)


def test_least_squares_fit_is_where_the_gradient_of_chapter_3_vanishes():
    inputs, targets = noisy_line_dataset(40, seed=1)
    weights, bias = least_squares_fit(inputs, targets)
    _, gradient = mse_loss_and_gradient(np.append(weights, bias), inputs, targets)
    assert np.abs(gradient).max() < 1e-12


def test_the_best_line_for_xor_is_flat_at_one_half():
    inputs, targets = xor_dataset()
    weights, bias = least_squares_fit(inputs, targets)
    assert np.allclose(weights, 0.0, atol=1e-12) and bias == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("inputs", "targets", "message"),
    [
        (np.ones(4), np.ones(4), "inputs must have shape (n_samples, n_features) and targets (n_samples,)"),
        (np.ones((4, 2)), np.ones(3), "got (4, 2) and (3,)"),
        (np.array([[1.0], [np.nan]]), np.ones(2), "inputs and targets must be finite numbers"),
    ],
)
def test_least_squares_fit_names_bad_arguments(inputs, targets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        least_squares_fit(inputs, targets)


# --- activations --------------------------------------------------------------------------------


def test_tanh_is_the_formula_and_a_stretched_sigmoid():
    tanh = activation_function("tanh")
    z = np.linspace(-6, 6, 121)
    assert np.allclose(tanh(z), (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z)), rtol=1e-12, atol=1e-15)
    assert np.allclose(tanh(z), 2 * sigmoid(2 * z) - 1, rtol=1e-12, atol=1e-15)
    assert np.array_equal(tanh(-z), -tanh(z)) and np.all(np.abs(tanh(z)) < 1)
    assert tanh(np.array([-1000.0, 0.0, 1000.0])).tolist() == [-1.0, 0.0, 1.0], "no overflow far out"


def test_relu_is_max_of_zero_and_z():
    assert relu([-2.0, -0.0, 0.5, 3.0]).tolist() == [0.0, 0.0, 0.5, 3.0]
    assert relu(-1) == 0.0 and relu(2) == 2.0


def test_the_activations_are_named_and_are_the_functions_they_name():
    assert sorted(ACTIVATIONS) == ["relu", "sigmoid", "sine", "tanh"]
    z = np.linspace(-4, 4, 17)
    assert np.allclose(activation_function("sine")(z), np.sin(z))
    assert np.allclose(activation_function("sigmoid")(z), sigmoid(z))
    assert np.allclose(activation_function("tanh")(z), np.tanh(z))
    assert np.allclose(activation_function("relu")(z), np.maximum(z, 0))


def test_an_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match=re.escape("activation must be one of 'relu', 'sigmoid', 'sine', 'tanh'; got 'cosine'")):
        activation_function("cosine")
    with pytest.raises(ValueError, match="activation must be one of"):
        mlp_forward(init_mlp((1, 2, 1), seed=0), np.zeros((3, 1)), "Relu")


# --- building and running an MLP -----------------------------------------------------------------


def test_init_mlp_gives_one_weights_biases_pair_per_layer():
    parameters = init_mlp((3, 5, 4, 2), seed=0)
    assert isinstance(parameters, list) and len(parameters) == 3
    assert [(w.shape, b.shape) for w, b in parameters] == [((3, 5), (5,)), ((5, 4), (4,)), ((4, 2), (2,))]
    assert layer_sizes_of(parameters) == (3, 5, 4, 2)
    assert np.all(parameters[-1][1] == 0.0), "the output starts unbiased"
    assert np.all(parameters[0][1] != 0.0), "hidden biases are spread out"


def test_init_mlp_is_seeded_and_leaves_the_global_random_state_alone():
    np.random.seed(1)
    expected = np.random.random()
    np.random.seed(1)
    first, second = init_mlp((2, 4, 1), seed=7), init_mlp((2, 4, 1), seed=7)
    assert np.random.random() == expected
    assert all(np.array_equal(a, b) for (wa, ba), (wb, bb) in zip(first, second) for a, b in ((wa, wb), (ba, bb)))
    other = init_mlp((2, 4, 1), seed=8)
    assert not np.array_equal(first[0][0], other[0][0])


def test_init_mlp_scales_weights_by_layer():
    wide = init_mlp((400, 300, 1), seed=0)
    assert np.std(wide[0][0]) == pytest.approx(1 / np.sqrt(400), rel=0.02), "default: 1 / sqrt(n_in)"
    scaled = init_mlp((1, 2000, 1), weight_scale=[3.0, 0.0], bias_scale=0.5, seed=0)
    assert np.std(scaled[0][0]) == pytest.approx(3.0, rel=0.05) and np.all(scaled[1][0] == 0.0)
    assert np.std(scaled[0][1]) == pytest.approx(0.5, rel=0.05)
    assert np.std(init_mlp((1, 2000, 1), weight_scale=2.0, seed=0)[1][0]) == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: init_mlp((3,)), "layer_sizes must list at least two integers >= 1"),
        (lambda: init_mlp((3, 0, 1)), "got (3, 0, 1)"),
        (lambda: init_mlp((3, 2.0, 1)), "layer_sizes must list at least two integers >= 1"),
        (lambda: init_mlp((2, 3, 1), weight_scale=[1.0]), "weight_scale must be one number >= 0 or 2 of them"),
        (lambda: init_mlp((2, 3, 1), weight_scale=-1.0), "weight_scale must be a finite number >= 0; got -1.0"),
        (lambda: init_mlp((2, 3, 1), weight_scale=[1.0, float("inf")]), "weight_scale must be a finite number >= 0; got inf"),
        (lambda: init_mlp((2, 3, 1), bias_scale=float("nan")), "bias_scale must be a finite number >= 0; got nan"),
        (lambda: init_mlp((2, True, 1)), "layer_sizes must list at least two integers >= 1"),
        (lambda: init_mlp(np.array([2, 3, 1]) * 1.0), "layer_sizes must list at least two integers >= 1"),
        (lambda: count_parameters([1]), "layer_sizes must list at least two integers >= 1"),
    ],
)
def test_bad_sizes_and_scales_are_named(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_checked_layer_sizes_gives_plain_ints_and_names_bad_sizes():
    assert checked_layer_sizes([2, np.int64(3), 1]) == (2, 3, 1)
    assert all(type(size) is int for size in checked_layer_sizes(np.array([4, 5])))
    with pytest.raises(ValueError, match=re.escape("layer_sizes must list at least two integers >= 1 "
                                                   "(inputs, any hidden layers, outputs); got (3, -1)")):
        checked_layer_sizes((3, -1))


def test_init_mlp_refuses_a_network_too_large_for_memory():
    # (100_000, 100_000, 1) has 10,000,200,001 parameters: about 75 GiB in float64
    with pytest.raises(ValueError, match=r"layer_sizes=\(100000, 100000, 1\) \(10,000,200,001 parameters\) "
                                         r"would need 74\.5 GiB of memory; the limit is 4 GiB"):
        init_mlp((100_000, 100_000, 1))
    assert count_parameters((100_000, 100_000, 1)) == 10_000_200_001, "counting is still fine"


def test_count_parameters_counts_weights_and_biases():
    assert count_parameters((2, 3, 1)) == 2 * 3 + 3 + 3 * 1 + 1 == 13
    assert count_parameters((1, 64, 1)) == 193
    assert count_parameters((5, 1)) == 6
    assert count_parameters((2, 4, 3, 2)) == flatten_parameters(init_mlp((2, 4, 3, 2), seed=0)).size


def test_mlp_forward_is_the_layers_written_out():
    parameters = init_mlp((2, 3, 4, 2), seed=1)
    inputs = np.random.default_rng(2).normal(size=(6, 2))
    (w1, b1), (w2, b2), (w3, b3) = parameters
    expected = np.tanh(np.tanh(inputs @ w1 + b1) @ w2 + b2) @ w3 + b3  # the last layer stays linear
    assert np.allclose(mlp_forward(parameters, inputs, "tanh"), expected, rtol=1e-13, atol=1e-13)
    assert mlp_forward(parameters, inputs).shape == (6, 2)
    assert np.allclose(mlp_forward(parameters, inputs), relu(relu(inputs @ w1 + b1) @ w2 + b2) @ w3 + b3)


def test_a_network_without_hidden_layers_is_a_line():
    weights, bias = np.array([[2.0], [-1.0]]), np.array([0.5])
    inputs = np.array([[1.0, 1.0], [0.0, 3.0]])
    for name in ACTIVATIONS:
        assert mlp_forward([(weights, bias)], inputs, name)[:, 0].tolist() == [1.5, -2.5]


def test_one_sine_unit_computes_xor():
    corners, targets = xor_dataset()
    by_hand = [(np.array([[np.pi / 2], [np.pi / 2]]), np.zeros(1)), (np.ones((1, 1)), np.zeros(1))]
    assert np.allclose(mlp_forward(by_hand, corners, "sine")[:, 0], targets)


def test_mlp_layer_outputs_keeps_every_stage():
    parameters = init_mlp((2, 5, 3, 1), seed=3)
    inputs = np.random.default_rng(4).normal(size=(7, 2))
    stages = mlp_layer_outputs(parameters, inputs, "sigmoid")
    assert [stage.shape for stage in stages] == [(7, 2), (7, 5), (7, 3), (7, 1)]
    assert np.array_equal(stages[0], inputs)
    assert np.all((stages[1] > 0) & (stages[1] < 1)), "hidden layers are squashed by the sigmoid"
    assert np.allclose(stages[-1], mlp_forward(parameters, inputs, "sigmoid"))


def test_mlp_forward_accepts_lists_and_tuples():
    parameters = [([[1.0, -1.0]], [0.0, 0.0]), ([[1.0], [1.0]], [0.0])]
    assert mlp_forward(parameters, [[-2.0], [3.0]]).tolist() == [[2.0], [3.0]]  # relu(x) + relu(-x) = |x|
    assert mlp_forward(tuple(parameters), np.array([[-2.0]]))[0, 0] == 2.0


@pytest.mark.parametrize(
    ("parameters", "inputs", "message"),
    [
        ([], np.zeros((1, 1)), "an MLP needs at least one layer"),
        ([np.zeros((1, 1))], np.zeros((1, 1)), "layer 0 must be a pair (weights, biases)"),
        ([(np.zeros((2, 3)), np.zeros(2))], np.zeros((1, 2)), "layer 0 must hold weights of shape (n_in, n_out) and biases of shape (n_out,); got (2, 3) and (2,)"),
        ([(np.zeros((2, 3)), np.zeros(3)), (np.zeros((4, 1)), np.zeros(1))], np.zeros((1, 2)), "layer 1 takes 4 inputs but layer 0 gives 3 outputs"),
        ([(np.zeros((2, 3)), np.zeros(3))], np.zeros((5, 3)), "inputs must have shape (n_samples, 2), one column per input of the first layer; got shape (5, 3)"),
        ([(np.zeros((2, 3)), np.zeros(3))], np.zeros(2), "got shape (2,)"),
    ],
)
def test_mlp_forward_names_bad_shapes(parameters, inputs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mlp_forward(parameters, inputs)


# --- flat parameters ----------------------------------------------------------------------------


def test_flatten_then_unflatten_gives_the_parameters_back():
    parameters = init_mlp((3, 4, 2), seed=5)
    flat = flatten_parameters(parameters)
    (w1, b1), (w2, b2) = parameters
    assert flat.tolist() == [*w1.ravel(), *b1, *w2.ravel(), *b2], "layer by layer, weights row by row, then biases"
    again = unflatten_parameters(flat, (3, 4, 2))
    assert all(np.array_equal(a, b) for pair, other in zip(parameters, again) for a, b in zip(pair, other))


def test_unflatten_gives_views_into_the_flat_vector():
    flat = np.arange(13, dtype=float)
    (w1, b1), (w2, b2) = unflatten_parameters(flat, (2, 3, 1))
    assert w1.tolist() == [[0, 1, 2], [3, 4, 5]] and b1.tolist() == [6, 7, 8]
    assert w2.tolist() == [[9], [10], [11]] and b2.tolist() == [12]
    flat[0] = 100.0
    assert w1[0, 0] == 100.0, "no copy"


def test_unflatten_names_a_wrong_length():
    with pytest.raises(ValueError, match=re.escape("flat must have shape (13,) for layer sizes (2, 3, 1); got shape (12,)")):
        unflatten_parameters(np.zeros(12), (2, 3, 1))


def test_a_chapter_3_parameter_vector_is_a_flat_network_without_hidden_layers():
    inputs, targets = noisy_line_dataset(25, seed=6)
    inputs = np.column_stack([inputs, inputs[:, 0] ** 2])
    flat = np.array([0.3, -0.7, 1.1])  # two weights, then the bias: chapter 3's layout
    loss = mlp_loss_for((2, 1), inputs, targets, "relu")
    expected_loss, expected_gradient = mse_loss_and_gradient(flat, inputs, targets)
    assert loss(flat) == pytest.approx(expected_loss, rel=1e-13)
    value, gradient = numerical_loss_and_gradient(loss)(flat)
    assert value == pytest.approx(expected_loss, rel=1e-13)
    assert np.allclose(gradient, expected_gradient, atol=1e-6)


# --- the loss as a function of flat parameters ---------------------------------------------------


def test_mlp_loss_for_is_the_mean_squared_error_of_the_forward_pass():
    inputs, targets = wiggly_dataset(40, seed=2)
    parameters = init_mlp((1, 6, 1), seed=3)
    loss = mlp_loss_for((1, 6, 1), inputs, targets, "sine")
    expected = np.mean((mlp_forward(parameters, inputs, "sine")[:, 0] - targets) ** 2)
    assert loss(flatten_parameters(parameters)) == pytest.approx(expected, rel=1e-13)
    assert isinstance(loss(flatten_parameters(parameters)), float)


def test_mlp_loss_for_takes_targets_with_several_outputs():
    inputs = np.random.default_rng(0).normal(size=(9, 2))
    targets = np.random.default_rng(1).normal(size=(9, 3))
    parameters = init_mlp((2, 4, 3), seed=2)
    loss = mlp_loss_for((2, 4, 3), inputs, targets, "tanh")
    assert loss(flatten_parameters(parameters)) == pytest.approx(np.mean((mlp_forward(parameters, inputs, "tanh") - targets) ** 2))


@pytest.mark.parametrize(
    ("inputs", "targets", "message"),
    [
        (np.zeros((4, 3)), np.zeros(4), "inputs must have shape (n_samples, 2) with n_samples >= 1; got shape (4, 3)"),
        (np.zeros((0, 2)), np.zeros(0), "with n_samples >= 1; got shape (0, 2)"),
        (np.zeros((4, 2)), np.zeros(5), "targets must have shape (4,) or (4, 1): one row per example, one column per output; got shape (5, 1)"),
        (np.full((4, 2), np.nan), np.zeros(4), "inputs and targets must be finite numbers"),
    ],
)
def test_mlp_loss_for_names_bad_data(inputs, targets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mlp_loss_for((2, 3, 1), inputs, targets)


def test_the_loss_names_a_wrong_number_of_parameters():
    inputs, targets = xor_dataset()
    loss = mlp_loss_for((2, 3, 1), inputs, targets)
    with pytest.raises(ValueError, match=re.escape("flat parameters must have shape (13,) for layer sizes (2, 3, 1); got shape (9,)")):
        loss(np.zeros(9))


def test_the_loss_leaves_the_callers_data_alone():
    inputs, targets = wiggly_dataset(10, seed=0)
    inputs_copy, targets_copy = inputs.copy(), targets.copy()
    loss = mlp_loss_for((1, 3, 1), inputs, targets, "relu")
    flat = flatten_parameters(init_mlp((1, 3, 1), seed=0))
    flat_copy = flat.copy()
    loss(flat)
    assert np.array_equal(inputs, inputs_copy) and np.array_equal(targets, targets_copy) and np.array_equal(flat, flat_copy)


# --- counting and numerical gradients -------------------------------------------------------------


def test_counted_loss_counts_and_passes_the_value_through():
    counted = CountedLoss(lambda p: float(np.sum(p**2)))
    assert counted.calls == 0
    assert counted(np.array([1.0, 2.0])) == 5.0 and counted(np.zeros(2)) == 0.0
    assert counted.calls == 2
    with pytest.raises(ValueError, match="loss must be a function of the parameters"):
        CountedLoss(3.0)


@pytest.mark.parametrize("sizes", [(1, 1, 1), (2, 3, 1), (1, 8, 2)])
def test_a_numerical_step_costs_one_plus_two_evaluations_per_parameter(sizes):
    inputs = np.random.default_rng(0).normal(size=(5, sizes[0]))
    targets = np.random.default_rng(1).normal(size=(5, sizes[-1]))
    counted = CountedLoss(mlp_loss_for(sizes, inputs, targets, "sigmoid"))
    loss_and_gradient = numerical_loss_and_gradient(counted)
    value, gradient = loss_and_gradient(flatten_parameters(init_mlp(sizes, seed=0)))
    assert counted.calls == 1 + 2 * count_parameters(sizes)
    assert gradient.shape == (count_parameters(sizes),)


def test_the_numerical_gradient_of_a_hidden_layer_matches_the_chain_rule():
    # One sigmoid unit: y_hat = v * sigmoid(w x + b) + c, loss = mean (y_hat - y)^2.
    x = np.array([[-1.0], [0.5], [2.0]])
    y = np.array([0.2, -0.4, 1.0])
    w, b, v, c = 0.8, -0.3, 1.5, 0.1
    s = sigmoid(w * x[:, 0] + b)
    r = v * s + c - y
    slope = s * (1 - s)
    expected = 2 * np.mean(r[:, None] * np.column_stack([v * slope * x[:, 0], v * slope, s, np.ones(3)]), axis=0)
    loss = mlp_loss_for((1, 1, 1), x, y, "sigmoid")
    _, gradient = numerical_loss_and_gradient(loss)(np.array([w, b, v, c]))
    assert np.allclose(gradient, expected, atol=1e-8)


def test_numerical_loss_and_gradient_checks_its_loss():
    with pytest.raises(ValueError, match="loss must be a function of the parameters"):
        numerical_loss_and_gradient(None)


# --- training with the tools of chapters 2 and 3 -------------------------------------------------


def solves_xor(flat, sizes, activation):
    corners, targets = xor_dataset()
    outputs = mlp_forward(unflatten_parameters(flat, sizes), corners, activation)[:, 0]
    return np.array_equal(outputs > 0.5, targets == 1)


def test_gradient_descent_with_numerical_gradients_solves_xor():
    corners, targets = xor_dataset()
    sizes = (2, 3, 1)
    loss = mlp_loss_for(sizes, corners, targets, "sigmoid")
    run = gradient_descent(numerical_loss_and_gradient(loss), flatten_parameters(init_mlp(sizes, seed=3)),
                           learning_rate=0.5, steps=400, progress=False, record_parameters=False)
    assert run.losses[-1] < 1e-6 and solves_xor(run.parameters, sizes, "sigmoid")


def test_evolution_solves_xor():
    corners, targets = xor_dataset()
    sizes = (2, 3, 1)
    loss = mlp_loss_for(sizes, corners, targets, "sigmoid")
    result = evolve(loss, flatten_parameters(init_mlp(sizes, seed=3)), 2000, seed=3, progress=False)
    assert solves_xor(result.best_weights, sizes, "sigmoid")


def test_mlp_parameters_is_a_list_of_pairs():
    parameters: MLPParameters = init_mlp((1, 2, 1), seed=0)
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in parameters)


def test_checked_network_sizes_refuses_by_the_bytes_per_parameter():
    assert checked_network_sizes((2, 3, 1)) == (2, 3, 1)
    # 600M parameters: 4.5 GiB as float64 (refused), 2.2 GiB as float32 (allowed)
    with pytest.raises(ValueError, match=r"layer_sizes=\(1, 200000, 2999, 1\) \(600,\d{3},\d{3} parameters\) would need 4\.5 GiB"):
        checked_network_sizes((1, 200_000, 2999, 1))
    assert checked_network_sizes((1, 200_000, 2999, 1), bytes_per_parameter=4) == (1, 200_000, 2999, 1)
    with pytest.raises(ValueError, match="layer_sizes must list at least two integers"):
        checked_network_sizes((3,))
