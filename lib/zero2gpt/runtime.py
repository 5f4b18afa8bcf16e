"""Where and how big the book's computations run: profiles, devices and seeds.

Hand-written, not generated: every chapter imports it, so it holds only what
every chapter needs.

- A *profile* sizes the work. ``smoke`` is for CI on a small CPU, ``laptop``
  for a reader without a GPU, ``full`` for a GPU that reproduces the book's
  published results. ``ZERO2GPT_PROFILE`` chooses; without it the answer is
  ``full`` when CUDA is available and ``laptop`` otherwise.
- A *device* is where tensors live: CUDA, then Apple's MPS, then the CPU.
  ``ZERO2GPT_DEVICE`` (or an argument) asks for one in particular.
- ``set_seed`` makes a run repeatable.
- ``tqdm`` is the progress bar every training loop uses, and ``run_summary``
  says how long a chapter took, where, and in which profile.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from typing import TypeVar

import numpy as np
import torch
from tqdm import TqdmWarning

import zero2gpt
from zero2gpt.checks import check_seed

with warnings.catch_warnings():
    # In a notebook without ipywidgets, tqdm.auto warns and falls back to a text
    # bar. The text bar is what the book's website shows, so the warning is noise.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm  # noqa: F401  (re-exported for the chapters' modules)

PROFILES = ("smoke", "laptop", "full")
DEVICE_TYPES = ("cuda", "mps", "cpu")

T = TypeVar("T")

# When this process first imported zero2gpt.runtime: a chapter's first cell does.
_STARTED = time.perf_counter()


class DeviceUnavailableError(RuntimeError):
    """A device was asked for by name, and this machine does not have it."""


def profile() -> str:
    """The active profile: ``ZERO2GPT_PROFILE``, else ``full`` with CUDA and ``laptop`` without."""
    name = os.environ.get("ZERO2GPT_PROFILE", "").strip()
    if not name:
        return "full" if torch.cuda.is_available() else "laptop"
    if name not in PROFILES:
        raise ValueError(f"ZERO2GPT_PROFILE must be one of {', '.join(PROFILES)}; got {name!r}")
    return name


def by_profile(*, smoke: T, laptop: T, full: T) -> T:
    """The value given for the active profile, e.g. ``steps = by_profile(smoke=200, laptop=3000, full=5000)``."""
    return {"smoke": smoke, "laptop": laptop, "full": full}[profile()]


def available_devices() -> list[str]:
    """The device types this machine offers, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def device(name: str | None = None) -> torch.device:
    """The device to compute on.

    ``name`` (or else ``ZERO2GPT_DEVICE``) asks for one, such as ``"cpu"`` or
    ``"cuda:1"``; a request this machine cannot meet is an error. With neither,
    the best available: CUDA, then MPS, then the CPU.
    """
    requested = name if name is not None else os.environ.get("ZERO2GPT_DEVICE", "").strip()
    if not requested:
        return torch.device(available_devices()[0])
    try:
        chosen = torch.device(requested)
    except RuntimeError:
        chosen = None
    if chosen is None or chosen.type not in DEVICE_TYPES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_TYPES)} (optionally with an index, like 'cuda:1'); got {requested!r}")
    have = available_devices()
    if chosen.type not in have:
        raise DeviceUnavailableError(f"device {requested!r} was requested but this machine has no {chosen.type}; available: {', '.join(have)}")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f"device {requested!r} was requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return chosen


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (all devices) with ``seed``.

    On a CPU that makes a rerun give the same numbers, to the last digit. On CUDA it does not quite: some
    kernels add up floating-point numbers in whatever order their threads finish (the backward pass of
    scaled_dot_product_attention, index_add_ and scatter_add_, the backward pass of an embedding, cuBLAS
    reductions that use a workspace), so two runs differ in the last bits, and a long training run drifts
    apart a little (in the ``full`` profile, the val loss differs in its third decimal). The book does not call
    ``torch.use_deterministic_algorithms(True)``: the deterministic kernels are slower, and some operations have
    none. A reader who needs bit-for-bit reruns on a GPU can call it, and set ``CUBLAS_WORKSPACE_CONFIG=:4096:8``.
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_summary() -> str:
    """One line for the end of a chapter: time since ``zero2gpt.runtime`` was imported, profile, device, versions."""
    seconds = time.perf_counter() - _STARTED
    return (
        f"The code on this page ran in {seconds:.1f} s in the {profile()} profile on {device().type}, "
        f"with zero2gpt {zero2gpt.__version__}, NumPy {np.__version__} and PyTorch {torch.__version__}."
    )
