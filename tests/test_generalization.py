"""zero2gpt.generalization: data splits, polynomial features, classification metrics, dropout and shift augmentation (chapter 7)."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from zero2gpt.generalization import (
    DataSplits,
    RandomShift,
    build_dropout_mlp,
    confusion_matrix,
    polynomial_features,
    precision_recall,
    split_data,
)
from zero2gpt.training import build_mlp

# --- split_data ---------------------------------------------------------------------------------


def test_split_data_cuts_every_example_into_exactly_one_set_with_its_target():
    inputs = np.arange(50).reshape(25, 2)
    targets = np.arange(25) * 10
    splits = split_data(inputs, targets, seed=0)
    assert isinstance(splits, DataSplits)
    assert [len(part[0]) for part in (splits.train, splits.val, splits.test)] == [15, 5, 5]
    rows = np.concatenate([splits.train[0], splits.val[0], splits.test[0]])
    assert sorted(rows[:, 0].tolist()) == list(range(0, 50, 2)), "each example appears once"
    for part_inputs, part_targets in (splits.train, splits.val, splits.test):
        assert np.array_equal(part_targets, part_inputs[:, 0] // 2 * 10), "targets stay with their inputs"


def test_split_data_shuffles_reproducibly_and_leaves_the_global_random_state_alone():
    data = np.arange(100)
    np.random.seed(5)
    expected_next = np.random.rand()
    np.random.seed(5)
    first = split_data(data, data, seed=1)
    assert np.random.rand() == expected_next
    again = split_data(data, data, seed=1)
    other = split_data(data, data, seed=2)
    assert np.array_equal(first.train[0], again.train[0])
    assert not np.array_equal(first.train[0], other.train[0])
    assert not np.array_equal(first.train[0], np.arange(60)), "the examples are shuffled before cutting"


def test_split_data_keeps_torch_tensors_as_tensors_and_honours_fractions():
    inputs, targets = torch.arange(20.0)[:, None], torch.arange(20)
    splits = split_data(inputs, targets, fractions=(0.5, 0.25, 0.25), seed=0)
    assert all(isinstance(tensor, torch.Tensor) for part in dataclasses.astuple(splits) for tensor in part)
    assert [len(part[1]) for part in (splits.train, splits.val, splits.test)] == [10, 5, 5]
    assert torch.equal(splits.val[0][:, 0].long(), splits.val[1])


def test_data_splits_is_frozen():
    splits = split_data(np.arange(10), np.arange(10), seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        splits.train = splits.test


@settings(max_examples=40, deadline=None)
@given(n_examples=st.integers(3, 200), seed=st.integers(0, 2**32 - 1), shares=st.tuples(*[st.integers(1, 10)] * 3))
def test_split_data_is_a_partition_for_any_size(n_examples, seed, shares):
    fractions = tuple(share / sum(shares) for share in shares)
    try:
        splits = split_data(np.arange(n_examples), np.arange(n_examples), fractions=fractions, seed=seed)
    except ValueError as error:
        assert "every set needs at least one example" in str(error)
        return
    parts = [splits.train[0], splits.val[0], splits.test[0]]
    assert min(len(part) for part in parts) >= 1
    assert sorted(np.concatenate(parts).tolist()) == list(range(n_examples))


@pytest.mark.parametrize(
    ("inputs", "targets", "fractions", "message"),
    [
        (np.zeros((0, 2)), np.zeros(0), (0.6, 0.2, 0.2), "at least one example"),
        (np.float64(3.0), np.zeros(1), (0.6, 0.2, 0.2), "at least one example"),
        (np.zeros((5, 2)), np.zeros(4), (0.6, 0.2, 0.2), "inputs has 5 examples but targets has 4"),
        (np.zeros(10), np.zeros(10), (0.6, 0.2, 0.3), "sum to 1; got (0.6, 0.2, 0.3)"),
        (np.zeros(10), np.zeros(10), (0.8, 0.2), "three positive numbers"),
        (np.zeros(10), np.zeros(10), (1.2, -0.1, -0.1), "three positive numbers"),
        (np.zeros(10), np.zeros(10), (0.5, float("nan"), 0.5), "three positive numbers"),
        (np.zeros(3), np.zeros(3), (0.8, 0.1, 0.1), "gives sets of 2, 0 and 1"),
    ],
)
def test_split_data_rejects_bad_input_with_a_clear_message(inputs, targets, fractions, message):
    with pytest.raises(ValueError) as caught:
        split_data(inputs, targets, fractions=fractions, seed=0)
    assert message in str(caught.value)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_split_data_rejects_a_bad_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*32 - 1 or None; got"):
        split_data(np.arange(10), np.arange(10), seed=seed)


# --- polynomial_features ------------------------------------------------------------------------


def test_polynomial_features_are_the_powers_from_one_to_the_degree():
    x = np.array([2.0, -1.0, 0.5])
    features = polynomial_features(x, 3)
    assert features.shape == (3, 3)
    assert np.array_equal(features, np.array([[2, 4, 8], [-1, 1, -1], [0.5, 0.25, 0.125]]))
    assert polynomial_features(x, 0).shape == (3, 0)
    assert polynomial_features([1, 2], 1).tolist() == [[1.0], [2.0]]


@pytest.mark.parametrize(
    ("x", "degree", "message"),
    [
        (np.zeros((3, 1)), 2, "x must be a 1-D array of numbers; got shape (3, 1)"),
        (np.float64(1.0), 2, "got shape ()"),
        (np.zeros(3), -1, "degree must be an integer >= 0; got -1"),
        (np.zeros(3), 2.0, "got 2.0"),
        (np.zeros(3), True, "got True"),
    ],
)
def test_polynomial_features_rejects_bad_input(x, degree, message):
    with pytest.raises(ValueError) as caught:
        polynomial_features(x, degree)
    assert message in str(caught.value)


def test_polynomial_features_refuses_a_degree_that_would_exhaust_memory():
    with pytest.raises(ValueError, match=r"polynomial_features of 10 values up to degree=1,000,000,000 would need .* GiB"):
        polynomial_features(np.zeros(10), 10**9)
    assert polynomial_features(np.zeros(10), 1000).shape == (10, 1000), "a large but reasonable degree is fine"


# --- confusion_matrix and precision_recall ------------------------------------------------------


def test_confusion_matrix_counts_actual_rows_against_predicted_columns():
    actual = [0, 0, 1, 1, 1, 2]
    predicted = [0, 1, 1, 1, 0, 2]
    confusion = confusion_matrix(predicted, actual)
    assert confusion.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert confusion.sum() == len(actual) and np.trace(confusion) == 4
    assert confusion_matrix(predicted, actual, n_classes=5).shape == (5, 5)


def test_confusion_matrix_accepts_tensors_and_whole_floats():
    confusion = confusion_matrix(torch.tensor([1, 0, 1]), np.array([1.0, 0.0, 0.0]))
    assert confusion.tolist() == [[1, 1], [0, 1]]
    assert confusion.dtype == np.int64


@pytest.mark.parametrize(
    ("predicted", "actual", "n_classes", "message"),
    [
        ([0, 1], [0, 1, 1], None, "same length, one prediction per example; got 2 and 3"),
        ([], [], None, "non-empty 1-D array"),
        ([[0, 1]], [[0, 1]], None, "got shape (1, 2)"),
        ([0, -1], [0, 1], None, "class numbers 0, 1, 2, ...; got values such as [0, -1]"),
        ([0, 1.5], [0, 1], None, "class numbers"),
        (["a", "b"], [0, 1], None, "class numbers"),
        ([True, False], [0, 1], None, "class numbers"),
        ([0, 3], [0, 1], 3, "n_classes must be an integer >= 4; got 3"),
        ([0, 1], [0, 1], 2.0, "got 2.0"),
    ],
)
def test_confusion_matrix_rejects_bad_labels(predicted, actual, n_classes, message):
    with pytest.raises(ValueError) as caught:
        confusion_matrix(predicted, actual, n_classes)
    assert message in str(caught.value)


def test_confusion_matrix_refuses_a_size_that_would_exhaust_memory():
    with pytest.raises(ValueError, match=r"a confusion matrix for n_classes=1,000,000 would need 7,450\.6 GiB"):
        confusion_matrix([0, 1], [0, 1], n_classes=10**6)
    with pytest.raises(ValueError, match="n_classes=1,000,001 would need"):
        confusion_matrix([0, 10**6], [0, 1])  # the size comes from the largest class number seen


@settings(max_examples=40, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
def test_confusion_matrix_and_precision_recall_match_a_plain_count(pairs):
    predicted, actual = (np.array(column) for column in zip(*pairs))
    confusion = confusion_matrix(predicted, actual, n_classes=5)
    expected = np.zeros((5, 5), dtype=int)
    for guess, truth in pairs:
        expected[truth, guess] += 1
    assert np.array_equal(confusion, expected)
    precision, recall = precision_recall(confusion)
    for number in range(5):
        called, present = np.sum(predicted == number), np.sum(actual == number)
        hits = np.sum((predicted == number) & (actual == number))
        assert precision[number] == (hits / called if called else 0.0)
        assert recall[number] == (hits / present if present else 0.0)


def test_precision_and_recall_per_class():
    confusion = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])  # class 2: never present and never predicted
    precision, recall = precision_recall(confusion)
    assert np.allclose(precision, [8 / 9, 3 / 5, 0.0])
    assert np.allclose(recall, [8 / 10, 3 / 4, 0.0])


def test_a_class_that_is_never_predicted_gets_precision_zero():
    always_zero = confusion_matrix(np.zeros(10, dtype=int), np.array([0] * 9 + [1]))
    precision, recall = precision_recall(always_zero)
    assert precision.tolist() == [0.9, 0.0] and recall.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("confusion", [np.zeros((2, 3)), np.zeros(4), np.zeros((0, 0)), np.array([[1, -1], [0, 2]]),
                                       np.array([["a", "b"], ["c", "d"]])])
def test_precision_recall_rejects_what_is_not_a_confusion_matrix(confusion):
    with pytest.raises(ValueError, match="confusion must be a square matrix of counts >= 0"):
        precision_recall(confusion)


# --- build_dropout_mlp --------------------------------------------------------------------------


def test_dropout_mlp_has_dropout_after_every_hidden_activation_and_the_plain_weights():
    torch.manual_seed(0)
    model = build_dropout_mlp((3, 8, 8, 2), "tanh", dropout=0.25)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear"]
    assert all(layer.p == 0.25 for layer in model if isinstance(layer, nn.Dropout))
    torch.manual_seed(0)
    plain = build_mlp((3, 8, 8, 2), "tanh")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), plain.parameters()))
    inputs = torch.randn(5, 3)
    model.eval()
    assert torch.equal(model(inputs), plain(inputs)), "in eval mode dropout changes nothing"


def test_dropout_zeroes_hidden_values_in_train_mode():
    torch.manual_seed(1)
    model = build_dropout_mlp((4, 200, 1), "relu", dropout=0.5)
    hidden = model[:3]  # Linear, ReLU, Dropout
    inputs = torch.randn(10, 4)
    hidden.train()
    dropped = hidden(inputs)
    kept = model[:2](inputs)
    zeroed = (dropped == 0) & (kept != 0)
    assert 0.3 < zeroed.float().sum() / (kept != 0).float().sum() < 0.7
    survivors = dropped != 0
    assert torch.allclose(dropped[survivors], 2 * kept[survivors]), "survivors are scaled by 1 / (1 - p)"


def test_dropout_zero_is_allowed_and_bad_probabilities_are_not():
    assert len(build_dropout_mlp((1, 4, 1), dropout=0)) == 4
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(ValueError, match=r"dropout must be a finite number >= 0 and <= 1; got"):
            build_dropout_mlp((1, 4, 1), dropout=bad)
    with pytest.raises(ValueError, match=r"dropout must be below 1 .*; got 1\.0"):
        build_dropout_mlp((1, 4, 1), dropout=1.0)


def test_dropout_mlp_refuses_layer_sizes_that_would_exhaust_memory():
    with pytest.raises(ValueError, match=r"layer_sizes=\(1, 1000000, 1000000, 1\) \(1,000,004,000,001 parameters\) would need 3,725\.3 GiB"):
        build_dropout_mlp((1, 10**6, 10**6, 1), "tanh")
    with pytest.raises(ValueError, match="layer_sizes must list at least two integers"):
        build_dropout_mlp((1, 0, 1))


def test_dropout_mlp_passes_on_the_activation_check():
    with pytest.raises(ValueError, match="activation must be one of 'relu', 'sigmoid', 'sine', 'tanh'; got 'swish'"):
        build_dropout_mlp((1, 4, 1), "swish")


# --- RandomShift --------------------------------------------------------------------------------


def test_random_shift_rolls_each_row_in_train_mode_and_does_nothing_in_eval_mode():
    torch.manual_seed(0)
    signals = torch.arange(400.0).reshape(40, 10)
    layer = RandomShift(max_shift=3)
    shifted = layer(signals)
    shifts = []
    for original, row in zip(signals, shifted):
        matches = [k for k in range(-3, 4) if torch.equal(torch.roll(original, k), row)]
        assert len(matches) == 1, "every row is its original, shifted round by at most max_shift"
        shifts.append(matches[0])
    assert len(set(shifts)) > 3, "each row draws its own shift"
    layer.eval()
    assert torch.equal(layer(signals), signals)
    assert torch.equal(RandomShift(0)(signals), signals)
    assert "max_shift=3" in repr(layer)


def test_random_shift_is_reproducible_with_the_torch_seed():
    signals = torch.randn(8, 16)
    torch.manual_seed(3)
    first = RandomShift(5)(signals)
    torch.manual_seed(3)
    assert torch.equal(RandomShift(5)(signals), first)


def test_random_shift_rejects_bad_arguments():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="max_shift must be an integer >= 0"):
            RandomShift(bad)
    with pytest.raises(ValueError, match=r"one signal per row; got shape \(2, 3, 4\)"):
        RandomShift(1)(torch.zeros(2, 3, 4))
