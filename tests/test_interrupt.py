"""Interrupted work loses nothing: a run killed at any moment resumes from its newest checkpoint and takes the
same steps as a run that was never stopped; two runs cannot write into one folder; a NaN stops training and
keeps the last good checkpoint."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from zero2gpt.cli import main
from zero2gpt.gpt import GPT, gpt_preset, load_gpt, train_gpt
from zero2gpt.runs import RunLockedError, load_checkpoint, run_lock
from zero2gpt.training import TrainingDivergedError

from tiny import tiny_char_corpus

# A GPT small enough that 1,500 steps take a few seconds on one thread.
TINY = ["--preset", "smoke", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
        "--batch-size", "8", "--warmup-steps", "2", "--eval-tokens", "2000", "--dropout", "0", "--no-progress"]
STEPS, EVAL_EVERY = 1500, 50


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "zero2gpt", "train", "--out", str(out), "--steps", str(STEPS),
            "--eval-every", str(EVAL_EVERY), *TINY, *extra]


def environment() -> dict[str, str]:
    """This process's environment ($ZERO2GPT_DATA, $ZERO2GPT_PROFILE) with one thread: the children are tiny."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "ZERO2GPT_DEVICE": "cpu"}


def wait_for(condition, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert condition(), f"gave up waiting; the process said: {process.communicate()}"


def tiny_corpus():
    return tiny_char_corpus("the cat sat on the mat. " * 40, 800)


def tiny_config(**changes):
    return gpt_preset("smoke", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, warmup_steps=0,
                      dropout=0.0, **{"steps": 20, "eval_every": 10, **changes})


def test_a_run_killed_mid_way_resumes_and_takes_the_same_steps_as_one_never_stopped(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    reference = subprocess.Popen(command(whole), env=environment(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    process = subprocess.Popen(command(killed), env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    wait_for((killed / "checkpoint.pt").exists, process)
    process.send_signal(signal.SIGKILL)  # no handler runs, no last checkpoint is written
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    stopped = load_checkpoint(killed, kind="gpt")["step"]
    assert stopped < STEPS and stopped % EVAL_EVERY == 0, "killed before the end, at an evaluation's checkpoint"
    assert not [path.name for path in killed.iterdir() if path.name.endswith(".part")], "no half-written file"

    resumed = subprocess.run(command(killed, "--resume"), env=environment(), capture_output=True, text=True,
                             timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=60) == 0, reference.stderr.read()
    after, never_stopped = load_checkpoint(killed)["log"], load_checkpoint(whole)["log"]
    assert len(after["train_loss"]) == STEPS and after["eval_steps"][0] == EVAL_EVERY  # the steps continued
    # On a CPU with fixed seeds, the same numbers: before the kill, and from the checkpoint's step on.
    assert after["train_loss"] == never_stopped["train_loss"]
    assert after["val_loss"] == never_stopped["val_loss"] and after["eval_steps"] == never_stopped["eval_steps"]


HOLDER = """
import sys, time
from zero2gpt.runs import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_in_another_process(out: Path) -> subprocess.Popen:
    """A process that holds the lock of ``out`` (for two minutes, or until killed), once it says it does."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=environment(), stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_folder_held_by_a_running_process_is_refused_and_freed_when_it_dies(tmp_path, capsys):
    out = tmp_path / "busy"
    holder = hold_in_another_process(out)
    try:
        status = main(["train", "--out", str(out), "--steps", "5", "--eval-every", "5", *TINY])
        err = capsys.readouterr().err
        assert status == 2 and "another process is training into" in err and str(out) in err
        assert err.count("\n") == 1 and not (out / "checkpoint.pt").exists()
        with pytest.raises(RunLockedError, match="give another --out folder"):
            train_gpt(tiny_config(), tiny_corpus(), out=out, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)  # the harshest end: the operating system still drops the lock
        holder.wait(timeout=30)
    with run_lock(out):
        pass


def test_waiting_for_a_held_folder_takes_it_once_the_holder_lets_go(tmp_path, capsys):
    out = tmp_path / "shared-run"
    holder = hold_in_another_process(out)
    try:
        let_go = threading.Event()

        def kill_the_holder():
            let_go.set()
            holder.send_signal(signal.SIGKILL)

        threading.Timer(1.0, kill_the_holder).start()
        with run_lock(out, wait=True):  # as pretrained_gpt takes the shared runs folder
            assert let_go.is_set()  # it waited for the holder, not took the folder beside it
        assert "waiting for another process" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_the_lock_is_re_entrant_within_one_process(tmp_path):
    out = tmp_path / "notebook"
    with run_lock(out) as folder:
        assert folder == out and (out / ".lock").exists()
        _, log = train_gpt(tiny_config(), tiny_corpus(), out=out, progress=False)  # takes the held lock again
        _, again = train_gpt(tiny_config(), tiny_corpus(), out=out, resume=True, progress=False)
    assert log.step == again.step == 20
    with run_lock(out):  # and it was released
        pass


class TurnsNaN:
    """A forward hook on the GPT's head: once ``armed``, every logit is NaN (with ``in_eval_only``, only while
    the model is evaluated)."""

    def __init__(self, in_eval_only: bool = False):
        self.armed, self.in_eval_only = False, in_eval_only

    def __call__(self, module, inputs, output):
        poisoned = self.armed and not (self.in_eval_only and module.training)
        return output * math.nan if poisoned else output


def test_a_nan_loss_names_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config, corpus, out = tiny_config(steps=40), tiny_corpus(), tmp_path / "nan"
    model = GPT(config.model_config(corpus.vocab_size))
    hook = TurnsNaN()
    model.head.register_forward_hook(hook)

    def arm_after_step_10(step, model, log):
        hook.armed = step == 10

    with pytest.raises(TrainingDivergedError) as error:
        train_gpt(config, corpus, model=model, out=out, progress=False, on_eval=arm_after_step_10)
    message = str(error.value)
    assert error.value.step == 11 and "diverged at step 11 of 40" in message
    assert "smaller learning_rate" in message and "grad_clip" in message and "check the data" in message
    assert f"of step 10, is '{out / 'checkpoint.pt'}'" in message
    state = load_checkpoint(out, kind="gpt")
    assert state["step"] == 10 and all(math.isfinite(loss) for loss in state["log"]["train_loss"])
    assert all(bool(torch.isfinite(tensor).all()) for tensor in state["model"].values() if tensor.is_floating_point())
    load_gpt(out)  # and it loads


def test_a_nan_val_loss_stops_training_before_its_checkpoint(tmp_path):
    config, corpus, out = tiny_config(), tiny_corpus(), tmp_path / "val"
    model = GPT(config.model_config(corpus.vocab_size))
    hook = TurnsNaN(in_eval_only=True)
    model.head.register_forward_hook(hook)

    def arm_after_step_10(step, model, log):  # the train loss stays finite; only the evaluation sees NaN
        hook.armed = True

    with pytest.raises(TrainingDivergedError, match="diverged at step 20 of 20.*of step 10, is") as error:
        train_gpt(config, corpus, model=model, out=out, progress=False, on_eval=arm_after_step_10)
    assert error.value.step == 20 and len(error.value.history.train_loss) == 20
    assert load_checkpoint(out)["step"] == 10


def test_the_log_reads_out_gradient_norms_and_the_command_shows_them(tmp_path, capsys):
    _, log = train_gpt(tiny_config(), tiny_corpus(), progress=False)
    assert log.grad_norm_steps == [10, 20] and len(log.grad_norms) == 2
    assert all(norm > 0 and math.isfinite(norm) for norm in log.grad_norms)
    assert main(["train", "--out", str(tmp_path / "norms"), "--steps", "10", "--eval-every", "5", *TINY]) == 0
    evaluations = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(evaluations) == 2 and all("; grad norm " in line for line in evaluations)
