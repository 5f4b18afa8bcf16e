"""zero2gpt.checks: one-line errors that name the argument, the bad value and what is allowed."""

import math

import numpy as np
import pytest

from zero2gpt.checks import (MAX_ALLOCATION_BYTES, check_allocation, check_choice, check_integer, check_number,
                             check_seed)


@pytest.mark.parametrize("value", [0, 1, 7, np.int64(3), np.int8(5)])
def test_integers_in_range_pass_and_come_back_as_int(value):
    accepted = check_integer("steps", value, minimum=0, maximum=10)
    assert accepted == int(value) and type(accepted) is int


@pytest.mark.parametrize("value, message", [
    (True, "steps must be an integer >= 1; got True"),
    (np.True_, "steps must be an integer >= 1; got "),
    (1.0, "steps must be an integer >= 1; got 1.0"),
    ("3", "steps must be an integer >= 1; got '3'"),
    (0, "steps must be an integer >= 1; got 0"),
    (None, "steps must be an integer >= 1; got None"),
])
def test_what_is_not_an_integer_in_range_is_named(value, message):
    with pytest.raises(ValueError) as error:
        check_integer("steps", value, minimum=1)
    assert str(error.value).startswith(message)


def test_integer_bounds_and_none_are_said():
    with pytest.raises(ValueError, match=r"^k must be an integer >= 1 and <= 5; got 6$"):
        check_integer("k", 6, minimum=1, maximum=5)
    with pytest.raises(ValueError, match=r"^k must be an integer <= 5 or None; got 6$"):
        check_integer("k", 6, maximum=5, allow_none=True)
    assert check_integer("k", None, allow_none=True) is None


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), np.int32(1)])
def test_finite_numbers_in_range_pass_as_float(value):
    accepted = check_number("rate", value, minimum=0, exclusive_minimum=True, maximum=1)
    assert accepted == float(value) and type(accepted) is float


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, -math.inf, 1.5, True, "0.1", None])
def test_a_learning_rate_must_be_finite_and_positive(value):
    with pytest.raises(ValueError, match=r"^rate must be a finite number > 0 and <= 1; got "):
        check_number("rate", value, minimum=0, exclusive_minimum=True, maximum=1)


def test_inclusive_minimum_admits_the_bound():
    assert check_number("weight_decay", 0, minimum=0) == 0.0
    with pytest.raises(ValueError, match=r"^weight_decay must be a finite number >= 0; got -0.1$"):
        check_number("weight_decay", -0.1, minimum=0)
    assert check_number("clip", None, allow_none=True) is None


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "7", None])
def test_seeds_are_integers_a_generator_takes(bad):
    with pytest.raises(ValueError, match=r"^seed must be an integer from 0 to 2\*\*32 - 1; got "):
        check_seed(bad)
    assert check_seed(2**32 - 1) == 2**32 - 1
    assert check_seed(None, allow_none=True) is None


def test_choices_are_listed():
    assert check_choice("optimizer", "adam", ["adam", "sgd"]) == "adam"
    with pytest.raises(ValueError, match=r"^optimizer must be one of 'adam', 'sgd'; got 'adamm'$"):
        check_choice("optimizer", "adamm", ["adam", "sgd"])


def test_an_allocation_past_the_limit_is_refused_with_its_size():
    check_allocation("budget=1000 draws", 1000)
    limit_elements = MAX_ALLOCATION_BYTES // 8
    check_allocation("at the limit", limit_elements)
    with pytest.raises(ValueError, match=r"^budget=10\*\*11 draws would need 745\.1 GiB of memory; the limit is 4 GiB"):
        check_allocation("budget=10**11 draws", 10**11)
    with pytest.raises(ValueError, match=r"just past the limit would need 4\.0 GiB"):
        check_allocation("just past the limit", limit_elements + 1)
