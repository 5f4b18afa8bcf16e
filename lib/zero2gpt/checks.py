"""Argument checks at the library's edge.

Hand-written, not generated: argument checking is plumbing the book does not
teach. Every check raises one ``ValueError`` (or ``TypeError``) whose message
names the argument, the bad value and what is allowed, e.g.
``ValueError: steps must be an integer >= 1; got 0``.

Each check returns the value it accepted, so a caller can check and convert in
one line: ``steps = check_integer("steps", steps, minimum=1)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

# The most memory one call may ask for by an argument (a budget, a size, a count).
# Far above what the book needs, far below what would exhaust a laptop.
MAX_ALLOCATION_BYTES = 4 * 2**30


def _allowed(kind: str, minimum: float | None, maximum: float | None, exclusive_minimum: bool) -> str:
    """Words for the allowed range: 'an integer >= 1', 'a finite number > 0 and <= 1'."""
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    return " ".join([kind] + [" and ".join(bounds)] if bounds else [kind])


def check_integer(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None,
                  allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (not a bool) in [minimum, maximum]; else a ValueError.

    ``None`` passes through when ``allow_none`` is true.
    """
    if value is None and allow_none:
        return None
    is_integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_integer or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        allowed = _allowed("an integer", minimum, maximum, exclusive_minimum=False)
        raise ValueError(f"{name} must be {allowed}{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def check_number(name: str, value: object, *, minimum: float | None = None, maximum: float | None = None,
                 exclusive_minimum: bool = False, allow_none: bool = False) -> float | None:
    """``value`` as a ``float`` if it is a finite real number in range; else a ValueError.

    ``exclusive_minimum=True`` makes the lower bound strict (``> minimum``), as a
    learning rate needs. NaN and infinity are refused. ``None`` passes through
    when ``allow_none`` is true.
    """
    if value is None and allow_none:
        return None
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if is_number and math.isfinite(value):
        too_small = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
        too_big = maximum is not None and value > maximum
        if not (too_small or too_big):
            return float(value)
    allowed = _allowed("a finite number", minimum, maximum, exclusive_minimum)
    raise ValueError(f"{name} must be {allowed}{' or None' if allow_none else ''}; got {value!r}")


def check_seed(value: object, name: str = "seed", *, allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is a valid seed, an integer from 0 to 2**32 - 1; else a ValueError."""
    if value is None and allow_none:
        return None
    is_integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_integer or not 0 <= value < 2**32:
        raise ValueError(f"{name} must be an integer from 0 to 2**32 - 1{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def check_choice(name: str, value: object, choices: Iterable[object]) -> object:
    """``value`` if it is one of ``choices``; else a ValueError that lists them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(choice) for choice in choices)}; got {value!r}")
    return value


def check_allocation(what: str, n_elements: int, bytes_per_element: int = 8) -> None:
    """A ValueError if ``n_elements`` of ``bytes_per_element`` bytes would pass ``MAX_ALLOCATION_BYTES``.

    ``what`` names what would be allocated and by which argument, e.g. ``"budget=10**11 draws"``.
    """
    needed = n_elements * bytes_per_element
    if needed > MAX_ALLOCATION_BYTES:
        raise ValueError(f"{what} would need {needed / 2**30:,.1f} GiB of memory; "
                         f"the limit is {MAX_ALLOCATION_BYTES / 2**30:.0f} GiB: ask for less")
