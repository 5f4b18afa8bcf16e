"""The zero2gpt command: a round trip (train, sample, resume, fine-tune) and one-line errors for mistakes."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zero2gpt.cli import main
from zero2gpt.runs import load_checkpoint, save_checkpoint

# A GPT small enough to train in a few seconds.
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "8",
        "--warmup-steps", "2", "--eval-tokens", "2000", "--dropout", "0"]


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    status = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke model trained by the command, 30 steps."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    status = main(["train", "--preset", "smoke", "--out", str(out), "--steps", "30", "--eval-every", "10",
                   "--no-progress", *TINY])
    assert status == 0
    return out


def test_train_writes_a_checkpoint_with_everything_needed_to_resume(trained):
    state = load_checkpoint(trained, kind="gpt")
    assert state["step"] == 30 and state["log"]["eval_steps"] == [10, 20, 30]
    assert state["training_config"]["n_layer"] == 1 and state["model_config"]["vocab_size"] == 65
    assert {"model", "best_model", "optimizer", "rng", "vocabulary"} <= set(state)
    assert state["log"]["best_val"] == min(state["log"]["val_loss"])


def test_sample_prints_the_prompt_and_its_continuation(trained, capsys):
    status, out, _ = run(capsys, "sample", "--checkpoint", trained, "--prompt", "ROMEO:", "--tokens", 40,
                         "--seed", 1)
    assert status == 0
    written = out[:-1]  # print adds a newline
    assert written.startswith("ROMEO:") and len(written) == len("ROMEO:") + 40
    again = run(capsys, "sample", "--checkpoint", trained, "--prompt", "ROMEO:", "--tokens", 40, "--seed", 1)[1]
    assert again == out  # a seed makes it repeatable
    greedy = run(capsys, "sample", "--checkpoint", trained / "checkpoint.pt", "--tokens", 10, "--temperature", 0)[1]
    assert len(greedy) == 10 + 1  # an empty prompt starts from a new line, which is not printed; print adds one


def test_a_long_prompt_is_cropped_to_the_context(trained, capsys):
    prompt = "To be, or not to be, that is the question. " * 3  # longer than block_size=16
    status, out, _ = run(capsys, "sample", "--checkpoint", trained, "--prompt", prompt, "--tokens", 5)
    assert status == 0 and out.startswith(prompt) and len(out) == len(prompt) + 5 + 1


def test_the_same_command_gives_the_same_numbers_on_the_cpu(trained, tmp_path, capsys):
    out = tmp_path / "again"
    assert run(capsys, "train", "--preset", "smoke", "--out", out, "--steps", "30", "--eval-every", "10",
               "--no-progress", *TINY)[0] == 0
    assert load_checkpoint(out)["log"] == load_checkpoint(trained)["log"]
    # Resuming a finished run trains no more.
    assert run(capsys, "train", "--preset", "smoke", "--out", out, "--steps", "30", "--eval-every", "10",
               "--no-progress", "--resume", *TINY)[0] == 0
    assert load_checkpoint(out)["step"] == 30


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path):
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "zero2gpt", "train", "--preset", "smoke", "--out", str(out), "--steps", "100000",
               "--eval-every", "20", "--no-progress", *TINY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert (out / "checkpoint.pt").exists(), process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr and "--resume" in stderr
    stopped = load_checkpoint(out)["step"]
    assert 20 <= stopped < 100000
    # Continue it, now for fewer steps than the checkpoint has: a changed config is refused...
    status = subprocess.run([*command[:command.index("--steps") + 1], "50", *command[command.index("--steps") + 2:],
                             "--resume"], capture_output=True, text=True, timeout=120)
    assert status.returncode == 2 and "another config" in status.stderr and "Traceback" not in status.stderr
    # ...and the same config continues from the saved step: SIGINT again after one more checkpoint.
    process = subprocess.Popen([*command, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while load_checkpoint(out)["step"] == stopped and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    state = load_checkpoint(out)
    assert state["step"] > stopped and len(state["log"]["train_loss"]) == state["step"]
    assert state["log"]["eval_steps"][0] == 20  # the history of the first session is kept


def test_finetune_starts_from_a_run_and_keeps_its_shape(trained, tmp_path, capsys):
    out = tmp_path / "cats"
    status, printed, err = run(capsys, "finetune", "--from", trained, "--dataset", "cat-poems", "--out", out,
                               "--preset", "smoke", "--steps", 20, "--eval-every", 10, "--warmup-steps", 2,
                               "--no-progress")
    assert status == 0, err
    state = load_checkpoint(out, kind="gpt")
    parent = load_checkpoint(trained)
    assert state["model_config"] == parent["model_config"] and state["step"] == 20
    assert state["vocabulary"] == parent["vocabulary"]
    status, _, err = run(capsys, "finetune", "--from", trained, "--out", tmp_path / "x", "--n-layer", 3)
    assert status == 2 and "n_layer" in err


@pytest.mark.parametrize("arguments, message", [
    (["train", "--out", "{tmp}/a", "--n-layers", "4"], "unknown option '--n-layers'; valid config keys: --n-layer"),
    (["train", "--out", "{tmp}/a", "--dataset", "hamlet"], "unknown dataset 'hamlet'; known datasets: tinyshakespeare"),
    (["train", "--out", "{tmp}/a", "--learning-rate", "-1"], "learning_rate must be a finite number > 0"),
    (["train", "--out", "{tmp}/a", "--batch-size", "0"], "batch_size must be an integer >= 1; got 0"),
    (["train", "--out", "{tmp}/a", "--seed", "-3"], "seed"),
    (["train", "--out", "{tmp}/afile"], "is a file"),
    (["train", "--out", "{tmp}/a", "--device", "tpu"], "tpu"),
    (["train", "--out", "{tmp}/empty", "--resume"], "no checkpoint at"),
    (["sample", "--checkpoint", "{tmp}/nothing"], "no checkpoint at"),
    (["sample", "--checkpoint", "{tmp}/afile"], "not a complete zero2gpt checkpoint"),
])
def test_mistakes_end_in_one_line_without_a_traceback(arguments, message, tmp_path, capsys):
    (tmp_path / "afile").write_text("I am not a folder")
    status, _, err = run(capsys, *[argument.format(tmp=tmp_path) for argument in arguments])
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_prompt_character_outside_the_vocabulary_is_named(trained, capsys):
    status, _, err = run(capsys, "sample", "--checkpoint", trained, "--prompt", "ROMEO: 5 €")
    assert status == 2 and "'5'" in err and err.count("\n") == 1


def test_an_unknown_preset_lists_the_presets(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["train", "--out", "x", "--preset", "huge"])
    assert caught.value.code == 2
    assert "smoke" in capsys.readouterr().err


def test_weights_of_another_shape_are_refused(trained, tmp_path, capsys):
    state = load_checkpoint(trained)
    state["model_config"] = {**state["model_config"], "n_embd": 32, "n_head": 2}
    save_checkpoint(tmp_path / "mixed", {key: value for key, value in state.items() if key not in ("format", "version")})
    status, _, err = run(capsys, "sample", "--checkpoint", tmp_path / "mixed")
    assert status == 2 and "do not fit" in err


def test_help_lists_every_command_and_config_key(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(command in text for command in ("train", "sample", "finetune"))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--n-layer" in text and "--learning-rate" in text and "--resume" in text


def test_the_console_script_is_installed():
    found = subprocess.run([Path(sys.executable).parent / "zero2gpt", "--version"], capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.startswith("zero2gpt ")
