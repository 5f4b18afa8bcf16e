"""zero2gpt.search: the hinge loss, and grid search, random search and evolution over any loss."""

import dataclasses
import itertools
import math
import re

import numpy as np
import pytest

from zero2gpt.prediction import all_switch_patterns, count_mistakes, perceptron
from zero2gpt.checks import MAX_ALLOCATION_BYTES
from zero2gpt.search import (MAX_GRID_POINTS, STEP_GROWTH, SearchResult, evolve, grid_search, hinge_loss_for,
                             perceptron_learning_rule, random_search)


def bowl(weights: np.ndarray) -> float:
    """A loss whose only minimum, 0, is at 0.5 in every coordinate."""
    return float(np.sum((np.asarray(weights) - 0.5) ** 2))


class CountingLoss:
    """Wraps a loss and remembers every point it was called at."""

    def __init__(self, loss=bowl):
        self.loss, self.points = loss, []

    def __call__(self, weights):
        self.points.append(np.array(weights, dtype=float))
        return self.loss(weights)


# Each search, set up on two weights with the same number of evaluations (a 6 x 6 grid).
SEARCHES = {
    "grid": lambda loss, **options: grid_search(loss, 2, 6, **options),
    "random": lambda loss, **options: random_search(loss, 2, 36, seed=0, **options),
    "evolve": lambda loss, **options: evolve(loss, np.zeros(2), 36, seed=0, **options),
}


# --- hinge_loss_for -------------------------------------------------------------------------------

@pytest.fixture
def lamp_room():
    patterns = all_switch_patterns(5)
    hidden = np.array([4.0, -2.0, 2.0, 2.0, -4.0, -1.0])  # every weighted sum is odd: margin at least 1
    return patterns, perceptron(patterns, hidden[:-1], hidden[-1]), hidden


def test_hinge_loss_is_one_at_zero_weights_and_zero_with_a_margin(lamp_room):
    patterns, lamp, hidden = lamp_room
    loss = hinge_loss_for(patterns, lamp)
    assert loss(np.zeros(6)) == 1.0
    assert loss(hidden) == 0.0
    assert loss(hidden / 2) > 0.0, "half the hidden weights put some sums inside the margin"


def test_hinge_loss_matches_its_formula_and_bounds_the_mistakes(lamp_room):
    patterns, lamp, _ = lamp_room
    loss = hinge_loss_for(patterns, lamp)
    rng = np.random.default_rng(0)
    for weights in rng.normal(scale=2.0, size=(50, 6)):
        sums = patterns @ weights[:-1] + weights[-1]
        signs = np.where(lamp == 1, 1.0, -1.0)
        by_formula = sum(max(0.0, 1.0 - s * z) for s, z in zip(signs, sums)) / len(patterns)
        assert math.isclose(loss(weights), by_formula, rel_tol=1e-12, abs_tol=1e-12)
        mistakes = count_mistakes(perceptron(patterns, weights[:-1], weights[-1]), lamp)
        assert loss(weights) >= mistakes / len(patterns)


def test_hinge_loss_takes_lists_and_boolean_targets():
    loss = hinge_loss_for([[0.0], [1.0]], np.array([False, True]))
    assert loss([2.0, -1.0]) == 0.0  # sums -1 and 1: both on the right side with margin 1
    assert loss([0.0, 0.0]) == 1.0


@pytest.mark.parametrize("inputs, targets, message", [
    (np.zeros(4), np.zeros(4), "inputs must be a 2-D array with one row per example, got shape (4,)"),
    (np.zeros((0, 3)), np.zeros(0), "inputs must be a 2-D array with one row per example, got shape (0, 3)"),
    (np.zeros((4, 3)), np.zeros(5), "targets must have shape (4,), one per row of inputs; got shape (5,)"),
    (np.zeros((4, 3)), np.zeros((4, 1)), "targets must have shape (4,), one per row of inputs; got shape (4, 1)"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), np.zeros(2), "inputs contain NaN or infinity"),
    (np.array([[0.0, np.inf], [1.0, 1.0]]), np.zeros(2), "inputs contain NaN or infinity"),
    (np.zeros((2, 3)), np.array([0, 2]), "targets must be 0s and 1s, got the values [0 2]"),
    (np.zeros((2, 3)), np.array([0.0, np.nan]), "targets must be 0s and 1s, got the values [ 0. nan]"),
])
def test_hinge_loss_rejects_bad_data(inputs, targets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        hinge_loss_for(inputs, targets)


@pytest.mark.parametrize("weights", [np.zeros(3), np.zeros(5), np.zeros((4, 1)), np.array([0.0, np.nan, 0.0, 0.0]),
                                     np.array([np.inf, 0.0, 0.0, 0.0])])
def test_hinge_loss_rejects_weights_of_the_wrong_shape_or_not_finite(weights):
    loss = hinge_loss_for(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=re.escape("weights must be 4 finite numbers (3 weights, then the bias)")):
        loss(weights)


# --- SearchResult ---------------------------------------------------------------------------------

def test_search_result_counts_evaluations_to_a_target():
    result = random_search(bowl, 2, 200, seed=1, progress=False)
    assert result.evaluations == 200
    assert result.evaluations_to_reach(math.inf) == 1
    assert result.evaluations_to_reach(-1.0) is None
    middle = float(result.history[99])
    reached = result.evaluations_to_reach(middle)
    assert result.history[reached - 1] <= middle and (reached == 1 or result.history[reached - 2] > middle)


def test_search_result_is_frozen_and_its_arrays_are_read_only():
    result = evolve(bowl, np.zeros(2), 20, seed=0, progress=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.best_loss = 0.0
    for array in (result.best_weights, result.history, result.path, result.path_evaluations):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


# --- what every search promises -------------------------------------------------------------------

@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_spends_its_budget_and_keeps_an_honest_record(name):
    loss = CountingLoss()
    result = SEARCHES[name](loss, bounds=(-1.0, 1.0), progress=False)
    assert isinstance(result, SearchResult)
    assert len(loss.points) == result.evaluations == len(result.history) == 36
    values = np.array([bowl(point) for point in loss.points])
    assert np.array_equal(result.history, np.minimum.accumulate(values)), "history is the best loss so far"
    assert result.best_loss == values.min() == bowl(result.best_weights)
    assert result.path_evaluations[0] == 1 and np.all(np.diff(result.path_evaluations) > 0)
    assert result.path.shape == (len(result.path_evaluations), 2)
    for point, evaluation in zip(result.path, result.path_evaluations):
        assert np.array_equal(point, loss.points[evaluation - 1])
        assert result.history[evaluation - 1] == bowl(point)
    assert np.array_equal(result.path[-1], result.best_weights)


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_names_the_evaluation_where_the_loss_was_nan(name):
    calls = []

    def nan_on_third_call(weights):
        calls.append(1)
        return math.nan if len(calls) == 3 else bowl(weights)

    with pytest.raises(ValueError, match=r"the loss returned NaN at evaluation 3, for weights \["):
        SEARCHES[name](nan_on_third_call, progress=False)


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("returned", [np.array([1.0, 2.0]), [0.5], "0.5", None])
def test_every_search_wants_one_number_from_the_loss(name, returned):
    with pytest.raises(ValueError, match="the loss must return one number, got"):
        SEARCHES[name](lambda weights: returned, progress=False)


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_accepts_numpy_numbers_and_infinity_from_the_loss(name):
    result = SEARCHES[name](lambda weights: np.float32(bowl(weights)), progress=False)
    assert isinstance(result.best_loss, float)
    result = SEARCHES[name](lambda weights: math.inf, progress=False)
    assert result.best_loss == math.inf and result.best_weights is not None


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_wants_a_function(name):
    with pytest.raises(ValueError, match="loss must be a function of the weights, got 3"):
        SEARCHES[name](3, progress=False)


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("bounds", [(1.0, 1.0), (2.0, 1.0), (math.nan, 1.0), (-math.inf, 1.0)])
def test_every_search_wants_finite_increasing_bounds(name, bounds):
    with pytest.raises(ValueError, match=re.escape(f"bounds must be finite numbers with low < high, got {bounds!r}")):
        SEARCHES[name](bowl, bounds=bounds, progress=False)


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("bounds", [(0.0, 1.0, 2.0), "ab", 5, (0.0, "x")])
def test_every_search_wants_bounds_to_be_a_pair_of_numbers(name, bounds):
    with pytest.raises(ValueError, match=re.escape(f"bounds must be a pair (low, high) of numbers, got {bounds!r}")):
        SEARCHES[name](bowl, bounds=bounds, progress=False)


@pytest.mark.parametrize("name, description", [("grid", "grid search"), ("random", "random search"), ("evolve", "evolution")])
def test_the_progress_bar_shows_the_best_loss_and_nothing_else_prints(name, description, capsys):
    SEARCHES[name](bowl, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert description in captured.err and "36/36" in captured.err and "best=" in captured.err
    SEARCHES[name](bowl, progress=False)
    assert capsys.readouterr() == ("", "")


# --- grid_search ----------------------------------------------------------------------------------

def test_grid_search_visits_every_point_in_lexicographic_order():
    loss = CountingLoss()
    grid_search(loss, 3, 4, bounds=(-3.0, 3.0), progress=False)
    axis = np.linspace(-3.0, 3.0, 4)
    assert np.array_equal(np.array(loss.points), np.array(list(itertools.product(axis, repeat=3))))


def test_grid_search_finds_a_minimum_that_lies_on_the_grid():
    result = grid_search(bowl, 4, 5, bounds=(-0.5, 1.5), progress=False)  # the grid -0.5, 0, 0.5, 1, 1.5 holds 0.5
    assert result.best_loss == 0.0 and np.array_equal(result.best_weights, np.full(4, 0.5))
    assert result.evaluations == 5**4


@pytest.mark.parametrize("n_weights, points_per_axis, message", [
    (0, 3, "n_weights must be an integer >= 1; got 0"),
    (2.0, 3, "n_weights must be an integer >= 1; got 2.0"),
    (2, 1, "points_per_axis must be an integer >= 2; got 1"),
    (2, True, "points_per_axis must be an integer >= 2; got True"),
    (8, 10, f"a grid of 10 points per axis in 8 weights has 100,000,000 points; at most {MAX_GRID_POINTS:,} are allowed"),
])
def test_grid_search_rejects_bad_sizes(n_weights, points_per_axis, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        grid_search(bowl, n_weights, points_per_axis, progress=False)


# --- random_search --------------------------------------------------------------------------------

def test_random_search_draws_uniformly_inside_the_bounds():
    loss = CountingLoss()
    random_search(loss, 3, 3000, bounds=(2.0, 5.0), seed=0, progress=False)
    points = np.array(loss.points)
    assert points.min() >= 2.0 and points.max() <= 5.0
    assert np.allclose(points.mean(axis=0), 3.5, atol=0.1), "uniform draws centre on the middle of the box"


def test_random_search_repeats_itself_with_a_seed_and_leaves_the_global_state_alone():
    before = np.random.get_state()[1].copy()
    first = random_search(bowl, 3, 500, seed=42, progress=False)
    second = random_search(bowl, 3, 500, seed=42, progress=False)
    other = random_search(bowl, 3, 500, seed=43, progress=False)
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(first.history, second.history) and np.array_equal(first.path, second.path)
    assert not np.array_equal(first.best_weights, other.best_weights)


def test_a_longer_random_search_begins_with_the_shorter_one():
    short = random_search(bowl, 3, 1500, seed=7, progress=False)  # crosses a block of 1024 draws
    long = random_search(bowl, 3, 3000, seed=7, progress=False)
    assert np.array_equal(long.history[:1500], short.history)


def test_random_search_gets_close_to_the_bottom_of_a_bowl():
    result = random_search(bowl, 2, 5000, seed=0, progress=False)
    assert result.best_loss < 1e-3


@pytest.mark.parametrize("budget", [0, -5, 2.5, True, None])
def test_random_search_rejects_a_budget_that_is_not_a_positive_integer(budget):
    with pytest.raises(ValueError, match=re.escape(f"budget must be an integer >= 1; got {budget!r}")):
        random_search(bowl, 2, budget, progress=False)


def test_random_search_rejects_a_bad_number_of_weights():
    with pytest.raises(ValueError, match=re.escape("n_weights must be an integer >= 1; got 0")):
        random_search(bowl, 0, 10, progress=False)


# --- evolve ---------------------------------------------------------------------------------------

def test_evolve_finds_the_bottom_of_a_bowl_within_its_budget():
    for seed in range(3):
        result = evolve(bowl, np.zeros(5), 2000, seed=seed, progress=False)
        assert result.best_loss < 1e-10
        assert np.allclose(result.best_weights, 0.5, atol=1e-5)


@pytest.mark.parametrize("population", [1, 3, 5])
@pytest.mark.parametrize("budget", [1, 2, 4, 7, 100])
def test_evolve_spends_exactly_its_budget_and_starts_at_start(population, budget):
    loss = CountingLoss()
    start = np.array([0.3, -0.2])
    result = evolve(loss, start, budget, population=population, seed=0, progress=False)
    assert len(loss.points) == result.evaluations == budget
    assert np.array_equal(loss.points[0], start)
    assert np.array_equal(start, [0.3, -0.2]), "the caller's start is not changed"


def test_evolve_repeats_itself_with_a_seed_and_leaves_the_global_state_alone():
    before = np.random.get_state()[1].copy()
    first = evolve(bowl, np.zeros(3), 300, seed=5, progress=False)
    second = evolve(bowl, np.zeros(3), 300, seed=5, progress=False)
    other = evolve(bowl, np.zeros(3), 300, seed=6, progress=False)
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(first.history, second.history) and np.array_equal(first.best_weights, second.best_weights)
    assert not np.array_equal(first.history, other.history)


def test_evolve_keeps_children_inside_the_bounds():
    loss = CountingLoss(lambda weights: float(np.sum((weights - 10.0) ** 2)))  # the bottom lies outside the box
    result = evolve(loss, np.zeros(3), 500, step_size=3.0, bounds=(-1.0, 1.0), seed=0, progress=False)
    points = np.array(loss.points)
    assert points.min() >= -1.0 and points.max() <= 1.0
    assert np.allclose(result.best_weights, 1.0), "the best point in the box is its corner nearest the bottom"


def test_the_one_fifth_rule_rescues_a_step_size_that_is_far_too_small():
    def far_bowl(weights):
        return float(np.sum((weights - 3.0) ** 2))

    fixed = evolve(far_bowl, np.zeros(5), 2000, step_size=1e-3, adaptive=False, seed=0, progress=False)
    adaptive = evolve(far_bowl, np.zeros(5), 2000, step_size=1e-3, adaptive=True, seed=0, progress=False)
    assert fixed.best_loss > 30, "with steps of 0.001 the parent cannot travel far"
    assert adaptive.best_loss < 1e-8


def test_the_one_fifth_rule_balances_one_success_against_four_failures():
    assert math.isclose(STEP_GROWTH * STEP_GROWTH ** (-1 / 4 * 4), 1.0)


def test_a_population_of_one_with_a_fixed_step_keeps_a_child_only_if_it_is_no_worse():
    loss = CountingLoss()
    evolve(loss, np.zeros(2), 50, population=1, adaptive=False, step_size=0.5, seed=3, progress=False)
    values = [bowl(point) for point in loss.points]
    parent = values[0]
    for value in values[1:]:
        parent = min(parent, value)
    assert parent == min(values)


def test_evolve_drifts_across_flat_ground():
    # A loss that is flat everywhere: every child ties with its parent, so each child replaces its parent.
    loss = CountingLoss(lambda weights: 1.0)
    evolve(loss, np.zeros(2), 30, population=1, adaptive=False, step_size=1.0, seed=0, progress=False)
    points = np.array(loss.points)
    assert np.linalg.norm(points[-1]) > 1.0, "the parent wandered away from the start"


@pytest.mark.parametrize("start, message", [
    (np.zeros((2, 2)), "start must be a 1-D array with one entry per weight, got shape (2, 2)"),
    (np.zeros(0), "start must be a 1-D array with one entry per weight, got shape (0,)"),
    (np.array([0.0, np.nan]), "start must hold finite numbers, got [ 0. nan]"),
])
def test_evolve_rejects_a_bad_start(start, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        evolve(bowl, start, 10, progress=False)


def test_evolve_rejects_a_start_outside_the_bounds():
    with pytest.raises(ValueError, match=re.escape("start must lie inside bounds (-1.0, 1.0), got [0. 2.]")):
        evolve(bowl, np.array([0.0, 2.0]), 10, bounds=(-1.0, 1.0), progress=False)


@pytest.mark.parametrize("options, message", [
    (dict(budget=0), "budget must be an integer >= 1; got 0"),
    (dict(budget=10.0), "budget must be an integer >= 1; got 10.0"),
    (dict(population=0), "population must be an integer >= 1; got 0"),
    (dict(step_size=0.0), "step_size must be a finite number > 0; got 0.0"),
    (dict(step_size=-1.0), "step_size must be a finite number > 0; got -1.0"),
    (dict(step_size=math.nan), "step_size must be a finite number > 0; got nan"),
    (dict(step_size=math.inf), "step_size must be a finite number > 0; got inf"),
    (dict(step_size=True), "step_size must be a finite number > 0; got True"),
])
def test_evolve_rejects_bad_settings(options, message):
    arguments = dict(budget=10) | options
    with pytest.raises(ValueError, match=re.escape(message)):
        evolve(bowl, np.zeros(2), arguments.pop("budget"), progress=False, **arguments)


def test_evolve_recovers_a_perceptron_rule_from_its_hinge_loss(lamp_room):
    patterns, lamp, _ = lamp_room
    result = evolve(hinge_loss_for(patterns, lamp), np.zeros(6), 1500, bounds=(-5.0, 5.0), seed=0, progress=False)
    assert result.best_loss < 1 / len(patterns)
    assert count_mistakes(perceptron(patterns, result.best_weights[:-1], result.best_weights[-1]), lamp) == 0


def _interrupted_after(calls: int):
    """A bowl-shaped loss that raises KeyboardInterrupt (as Ctrl-C does) on its call number ``calls + 1``."""
    count = [0]

    def loss(weights):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return float(np.sum(np.asarray(weights) ** 2))

    return loss


@pytest.mark.parametrize(
    "run",
    [
        lambda loss: grid_search(loss, 2, 10, progress=False),
        lambda loss: random_search(loss, 3, 100, seed=0, progress=False),
        lambda loss: evolve(loss, np.ones(3), 100, seed=0, progress=False),
    ],
    ids=["grid", "random", "evolve"],
)
def test_ctrl_c_keeps_the_search_so_far(run):
    result = run(_interrupted_after(37))
    assert result.interrupted and result.evaluations == 37
    assert result.best_loss == result.history[-1] == result.history.min()
    with pytest.raises(KeyboardInterrupt):  # nothing evaluated yet: nothing to return, so the Ctrl-C stands
        run(_interrupted_after(0))
    assert not run(_interrupted_after(10_000)).interrupted


# --- memory caps ----------------------------------------------------------------------------------

class NeverCalled:
    """A loss that fails the test if a search calls it."""

    def __call__(self, weights):
        raise AssertionError("the search evaluated the loss before refusing its size")


@pytest.mark.parametrize("run, what", [
    (lambda loss: random_search(loss, 2, 10**11, progress=False), "budget=100,000,000,000 evaluations of 2 weights"),
    (lambda loss: evolve(loss, np.zeros(3), 10**11, progress=False), "budget=100,000,000,000 evaluations of 3 weights"),
    (lambda loss: random_search(loss, 10**6, 10**5, progress=False), "budget=100,000 evaluations of 1000000 weights"),
], ids=["random", "evolve", "random-many-weights"])
def test_a_search_refuses_a_budget_that_would_exhaust_memory_before_it_starts(run, what):
    with pytest.raises(ValueError, match=re.escape(what) + r" would need [\d,.]+ GiB of memory; the limit is 4 GiB"):
        run(NeverCalled())


def test_the_memory_cap_leaves_the_budgets_the_book_uses_alone():
    assert 10**6 * (6 + 2) * 8 < MAX_ALLOCATION_BYTES  # a million evaluations of six weights fit with room to spare
    result = random_search(bowl, 2, 3000, seed=0, progress=False)
    assert result.evaluations == 3000


# --- perceptron_learning_rule ---------------------------------------------------------------------

def rule_by_hand(inputs, targets, epochs):
    """The rule written out with plain Python numbers, one example at a time."""
    weights, bias, mistakes = [0.0] * len(inputs[0]), 0.0, []
    for _ in range(epochs):
        mistakes.append(0)
        for x, y in zip(inputs, targets):
            predicted = 1 if sum(w * xi for w, xi in zip(weights, x)) + bias > 0 else 0
            error = y - predicted
            weights = [w + error * xi for w, xi in zip(weights, x)]
            bias += error
            mistakes[-1] += error != 0
        if mistakes[-1] == 0:
            break
    return weights, bias, mistakes


def test_the_rule_learns_the_majority_vote_and_stops_after_a_clean_epoch():
    patterns = all_switch_patterns(3)
    majority = (patterns.sum(axis=1) >= 2).astype(int)
    weights, bias, mistakes = perceptron_learning_rule(patterns, majority, 100)
    assert mistakes[-1] == 0 and np.all(mistakes[:-1] > 0), "it stops at the first epoch without a mistake"
    assert len(mistakes) < 100
    assert perceptron(patterns, weights, bias).tolist() == majority.tolist()
    assert isinstance(bias, float) and weights.shape == (3,)


def test_the_rule_matches_the_same_rule_written_by_hand():
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 2, size=(12, 4)).astype(float)
    targets = rng.integers(0, 2, size=12)
    weights, bias, mistakes = perceptron_learning_rule(inputs, targets, 30)
    by_hand = rule_by_hand(inputs.tolist(), targets.tolist(), 30)
    assert weights.tolist() == by_hand[0] and bias == by_hand[1] and mistakes.tolist() == by_hand[2]


def test_the_rule_never_has_a_clean_epoch_on_xor():
    _, _, mistakes = perceptron_learning_rule(all_switch_patterns(2), [0, 1, 1, 0], 200)
    assert len(mistakes) == 200 and mistakes.min() >= 1


@pytest.mark.parametrize("seed", range(5))
def test_the_rule_keeps_within_novikoffs_mistake_bound_on_separable_data(seed):
    rng = np.random.default_rng(seed)
    separator = rng.normal(size=5)  # four weights, then the bias
    inputs = rng.normal(size=(60, 4))
    sums = inputs @ separator[:-1] + separator[-1]
    keep = np.abs(sums) > 0.3  # a margin: drop the examples too close to the separating plane
    inputs, targets = inputs[keep], (sums[keep] > 0).astype(int)
    with_one = np.hstack([inputs, np.ones((len(inputs), 1))])
    margin = np.min(np.abs(with_one @ separator)) / np.linalg.norm(separator)
    bound = np.max(np.sum(with_one**2, axis=1)) / margin**2
    _, _, mistakes = perceptron_learning_rule(inputs, targets, int(bound) + 1)
    assert mistakes[-1] == 0 and mistakes.sum() <= bound


def test_the_rule_leaves_the_callers_arrays_alone_and_takes_lists_and_booleans():
    inputs = all_switch_patterns(2).astype(float)
    before = inputs.copy()
    weights, bias, mistakes = perceptron_learning_rule(inputs, np.array([False, True, True, True]), 20)
    assert np.array_equal(inputs, before)
    assert perceptron(inputs, weights, bias).tolist() == [0, 1, 1, 1]
    assert perceptron_learning_rule(inputs.tolist(), [0, 0, 0, 1], 20)[2][-1] == 0


@pytest.mark.parametrize("inputs, targets, message", [
    (np.zeros(4), np.zeros(4), "inputs must be a 2-D array with one row per example, got shape (4,)"),
    (np.zeros((4, 3)), np.zeros(5), "targets must have shape (4,), one per row of inputs; got shape (5,)"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), np.zeros(2), "inputs contain NaN or infinity"),
    (np.zeros((2, 3)), np.array([0, 2]), "targets must be 0s and 1s, got the values [0 2]"),
])
def test_the_rule_rejects_bad_data(inputs, targets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        perceptron_learning_rule(inputs, targets, 10)


@pytest.mark.parametrize("epochs, message", [
    (0, "epochs must be an integer >= 1; got 0"),
    (2.5, "epochs must be an integer >= 1; got 2.5"),
    (True, "epochs must be an integer >= 1; got True"),
    (10**12, "epochs=1,000,000,000,000 would need 7,450.6 GiB of memory; the limit is 4 GiB"),
])
def test_the_rule_rejects_bad_or_huge_epoch_counts(epochs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        perceptron_learning_rule(all_switch_patterns(2), [0, 0, 0, 1], epochs)
