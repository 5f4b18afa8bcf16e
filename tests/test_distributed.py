"""Training in several processes with torchrun: two CPU processes (gloo) train one tiny GPT together.

The tests start ``python -m torch.distributed.run --nproc_per_node=2 --standalone`` on this very file, whose
``__main__`` part is the work each process does; each process writes what it saw into a JSON file that the
test then reads. A second test runs the command itself, ``torchrun -m zero2gpt train``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zero2gpt.distributed import (all_processes, any_process, distributed_training, from_main_process,
                                  is_main_process, launched_by_torchrun, rank, world_size)

# Gradients averaged by DDP's all-reduce add the same numbers in another order than one process's backward over
# the whole batch, so they agree to float32 rounding, not bit for bit.
GRADIENT_TOLERANCE = 1e-5
# Adam's first step is about learning_rate * gradient / |gradient|: for a gradient near zero, a rounding-sized
# change moves its update by far more than rounding (we saw 3e-5 of the learning rate), so updates are
# compared to within a thousandth of the learning rate; most agree to 1e-6 of it.
UPDATE_TOLERANCE = 1e-3
LEARNING_RATE = 1e-2
TINY_FLAGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--dropout", "0.1",
              "--learning-rate", str(LEARNING_RATE), "--warmup-steps", "2", "--eval-tokens", "400"]


def _torchrun(arguments: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "ZERO2GPT_DEVICE": "cpu", "ZERO2GPT_RUNS": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           *arguments], capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path)


def _weights_hash(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode() + state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _one_step_matches_one_process() -> dict:
    """One DDP step, each of 2 processes on half a batch, against one process's step on the whole batch."""
    from torch.nn.parallel import DistributedDataParallel

    from zero2gpt.gpt import GPT, GPTConfig, gpt_optimizer
    from zero2gpt.language import language_model_loss

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    inputs, targets = torch.randint(11, (4, 8)), torch.randint(11, (4, 8))
    half = slice(2 * rank(), 2 * rank() + 2)
    alone, together = copy.deepcopy(model), DistributedDataParallel(copy.deepcopy(model))
    for network, (batch, batch_targets) in [(alone, (inputs, targets)), (together, (inputs[half], targets[half]))]:
        optimizer = gpt_optimizer(network, LEARNING_RATE, 0.1, torch.device("cpu"))
        language_model_loss(network(batch), batch_targets).backward()
        optimizer.step()
    gradient_gap = max(float((a.grad - b.grad).abs().max() / b.grad.abs().max().clamp_min(1e-12))
                       for a, b in zip(together.module.parameters(), alone.parameters()))
    update_gap = max(float((a - b).detach().abs().max())
                     for a, b in zip(together.module.parameters(), alone.parameters()))
    return {"gradient_gap": gradient_gap, "update_gap": update_gap / LEARNING_RATE}


def _worker(out: Path) -> None:
    """What each process does under torchrun: check the helpers, one step by hand, then train_gpt."""
    from zero2gpt.gpt import gpt_preset, train_gpt
    from zero2gpt.language import char_corpus

    with distributed_training("cpu"):
        report = {"rank": rank(), "world_size": world_size(), "launched": launched_by_torchrun(),
                  "ranks_seen": all_processes(rank()), "anyone": any_process(rank() == 1),
                  "from_main": from_main_process(lambda: f"read by {rank()}")}
        report.update(_one_step_matches_one_process())
        config = gpt_preset("smoke", n_layer=1, n_head=2, n_embd=16, block_size=16, dropout=0.1, batch_size=8,
                            steps=30, warmup_steps=2, eval_every=15, eval_tokens=400, learning_rate=LEARNING_RATE)
        model, log = train_gpt(config, char_corpus("tinyshakespeare"), out=out / "run", progress=False)
        report.update(weights=_weights_hash(model.state_dict()), train_loss=log.train_loss, val_loss=log.val_loss)
        (out / f"rank{rank()}.json").write_text(json.dumps(report))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The reports of a 2-process run of _worker, and the folder it wrote into."""
    folder = tmp_path_factory.mktemp("ddp")
    result = _torchrun([str(Path(__file__).resolve()), str(folder)], folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((folder / f"rank{number}.json").read_text()) for number in range(2)], folder


def test_torchrun_starts_two_processes_that_know_their_rank(two_processes):
    reports, _ = two_processes
    assert [report["rank"] for report in reports] == [0, 1]
    for report in reports:
        assert report["world_size"] == 2 and report["launched"] and report["ranks_seen"] == [0, 1]
        assert report["anyone"], "any_process is true everywhere when one process says so"
        assert report["from_main"] == "read by 0", "rank 0 runs the function, the others get its result"


def test_two_processes_on_half_batches_take_the_step_of_one_on_the_whole_batch(two_processes):
    reports, _ = two_processes
    for report in reports:
        assert report["gradient_gap"] < GRADIENT_TOLERANCE
        assert report["update_gap"] < UPDATE_TOLERANCE


def test_processes_end_with_identical_weights_and_rank_0_alone_writes(two_processes):
    reports, folder = two_processes
    assert reports[0]["weights"] == reports[1]["weights"]
    assert reports[0]["train_loss"] != reports[1]["train_loss"], "each process trains on batches of its own"
    from zero2gpt.runs import load_checkpoint

    state = load_checkpoint(folder / "run", kind="gpt")
    assert _weights_hash(state["best_model"]) == reports[0]["weights"]
    assert len(state["rng"]["by_rank"]) == 2, "the checkpoint keeps each process's random state, to resume"
    written = sorted(path.name for path in (folder / "run").iterdir() if not path.name.startswith("."))
    assert written == ["checkpoint.pt"]


def test_the_loss_falls(two_processes):
    reports, _ = two_processes
    for report in reports:
        losses = report["train_loss"]
        assert len(losses) == 30
        assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3
        assert report["val_loss"][-1] < report["val_loss"][0]


def test_the_command_trains_under_torchrun_and_only_rank_0_speaks(tmp_path):
    result = _torchrun(["-m", "zero2gpt", "train", "--preset", "smoke", *TINY_FLAGS, "--batch-size", "8",
                        "--steps", "6", "--eval-every", "3", "--out", str(tmp_path / "run"), "--no-progress"],
                       tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("training a GPT on tinyshakespeare in 2 processes") == 1
    assert result.stdout.count("step 6:") == 1 and result.stdout.count("done: 6 steps") == 1
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_a_batch_that_does_not_divide_among_the_processes_is_refused(tmp_path):
    result = _torchrun(["-m", "zero2gpt", "train", "--preset", "smoke", *TINY_FLAGS, "--batch-size", "3",
                        "--steps", "2", "--eval-every", "2", "--out", str(tmp_path / "run"), "--no-progress"],
                       tmp_path)
    assert result.returncode != 0
    assert "batch_size=3 must be a multiple of accumulate=1 times the 2 process(es)" in result.stderr


def test_accumulating_two_half_batches_takes_the_step_of_one_whole_batch(one_torch_thread):
    """One process: the same batch, drawn whole or in two halves, gives the same step (to float32 rounding, and
    only one step: Adam's later steps divide by running averages that magnify such differences)."""
    from zero2gpt.gpt import gpt_preset, train_gpt
    from zero2gpt.language import char_corpus

    corpus = char_corpus("tinyshakespeare", max_chars=20_000)
    runs = []
    for accumulate in (1, 2):
        config = gpt_preset("smoke", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, steps=1,
                            warmup_steps=1, eval_every=1, eval_tokens=100, accumulate=accumulate)
        runs.append(train_gpt(config, corpus, device="cpu", progress=False))
    (whole, whole_log), (halves, halves_log) = runs
    assert whole_log.train_loss == pytest.approx(halves_log.train_loss, rel=GRADIENT_TOLERANCE)
    for mine, theirs in zip(whole.parameters(), halves.parameters()):
        assert torch.allclose(mine, theirs, rtol=0, atol=UPDATE_TOLERANCE * config.learning_rate)


def test_a_batch_that_does_not_divide_into_micro_batches_is_refused():
    from zero2gpt.gpt import gpt_preset, train_gpt
    from zero2gpt.language import char_corpus

    with pytest.raises(ValueError, match=r"batch_size=6 must be a multiple of accumulate=4 times the 1 process"):
        train_gpt(gpt_preset("smoke", batch_size=6, accumulate=4), char_corpus("tinyshakespeare", max_chars=2000))


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
