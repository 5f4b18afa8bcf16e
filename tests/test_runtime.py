"""zero2gpt.runtime: profiles, devices and seeds."""

import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from zero2gpt import runtime
from zero2gpt.runtime import by_profile, device, profile, set_seed


@pytest.fixture
def machine(monkeypatch):
    """A stand-in machine: say which accelerators it has."""
    monkeypatch.delenv("ZERO2GPT_PROFILE", raising=False)
    monkeypatch.delenv("ZERO2GPT_DEVICE", raising=False)

    def configure(cuda=False, mps=False, cuda_count=1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_count if cuda else 0)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return configure


@pytest.mark.parametrize("cuda, expected", [(False, "laptop"), (True, "full")])
def test_default_profile_follows_cuda(machine, cuda, expected):
    machine(cuda=cuda)
    assert profile() == expected


@pytest.mark.parametrize("name", runtime.PROFILES)
def test_profile_from_environment(machine, monkeypatch, name):
    machine(cuda=True)
    monkeypatch.setenv("ZERO2GPT_PROFILE", name)
    assert profile() == name


def test_unknown_profile_names_the_value_and_the_choices(machine, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_PROFILE", "huge")
    with pytest.raises(ValueError, match=r"smoke, laptop, full; got 'huge'") as error:
        profile()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, value", [("smoke", 1), ("laptop", 2), ("full", 3)])
def test_by_profile_picks_the_active_value(machine, monkeypatch, name, value):
    monkeypatch.setenv("ZERO2GPT_PROFILE", name)
    assert by_profile(smoke=1, laptop=2, full=3) == value


def test_by_profile_needs_every_profile_by_name(machine):
    with pytest.raises(TypeError):
        by_profile(smoke=1, laptop=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        by_profile(1, 2, 3)  # type: ignore[misc]


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_device_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert device() == torch.device(expected)


def test_requested_device_that_exists(machine):
    machine(cuda=True, cuda_count=2)
    assert device("cpu") == torch.device("cpu")
    assert device("cuda:1") == torch.device("cuda:1")


@pytest.mark.parametrize("request_via_env", [False, True])
def test_missing_device_is_a_one_line_error_listing_what_exists(machine, monkeypatch, request_via_env):
    machine(cuda=False, mps=True)
    if request_via_env:
        monkeypatch.setenv("ZERO2GPT_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match=r"'cuda' was requested but this machine has no cuda; available: mps, cpu") as error:
        device(None if request_via_env else "cuda")
    assert "\n" not in str(error.value)


def test_missing_cuda_index_is_an_error(machine):
    machine(cuda=True, cuda_count=1)
    with pytest.raises(RuntimeError, match=r"'cuda:3' was requested but this machine has 1 CUDA device"):
        device("cuda:3")


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "meta"])
def test_unknown_device_names_the_choices(machine, name):
    with pytest.raises(ValueError, match=rf"device must be one of cuda, mps, cpu .*got '{name}'"):
        device(name)


def test_set_seed_repeats_python_numpy_and_torch():
    def draw():
        return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()

    set_seed(123)
    first = draw()
    set_seed(123)
    assert draw() == first
    set_seed(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True, None])
def test_set_seed_rejects_what_the_generators_cannot_take(bad):
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*32 - 1; got"):
        set_seed(bad)


def test_run_summary_names_time_profile_device_and_versions(monkeypatch):
    monkeypatch.setenv("ZERO2GPT_PROFILE", "smoke")
    monkeypatch.setenv("ZERO2GPT_DEVICE", "cpu")
    summary = runtime.run_summary()
    assert re.fullmatch(
        r"The code on this page ran in \d+\.\d s in the smoke profile on cpu, "
        r"with zero2gpt \S+, NumPy \S+ and PyTorch \S+\.",
        summary,
    ), summary


@pytest.mark.parametrize(
    ("import_line", "silent"), [("from zero2gpt.runtime import tqdm", True), ("from tqdm.auto import tqdm", False)]
)
def test_progress_bar_import_is_silent_in_a_notebook_without_ipywidgets(import_line, silent):
    # tqdm.auto takes a process that has loaded ipykernel's shell for a notebook
    # kernel; a fresh interpreter that pretends to be one shows what leaks.
    code = (
        "import sys, types, warnings\n"
        "warnings.simplefilter('always')\n"
        "import IPython\n"
        "sys.modules['ipykernel.zmqshell'] = types.ModuleType('ipykernel.zmqshell')\n"
        "sys.modules['ipywidgets'] = None\n"
        f"{import_line}\n"
        "print(tqdm.__mro__[1].__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tqdm.std", "expected the text bar"
    if silent:
        assert done.stderr == ""
    else:  # the control: the same set-up does make plain tqdm.auto warn
        assert "IProgress not found" in done.stderr
