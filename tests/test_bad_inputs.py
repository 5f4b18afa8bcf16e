"""The table of bad inputs: every mistake a reader can make at the library's edge, and the error it gets.

Each row is an input, the entry point it goes to, and the expected error type and a fragment of its message
(which names the bad value and what is allowed). The command line's rows run ``zero2gpt.cli.main`` in this
process and expect exit status 2 and one line on stderr; their error type is ``CommandFailed`` below. A row
whose ``error`` is None is documented behaviour that is not an error (a long prompt is cropped), and its
``check`` says what happens instead. No row may end in a traceback from deep inside torch or NumPy: where one
did, the library was fixed at its edge (the allocation checks of chapters 8, 11, 12 and 13, for instance).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from zero2gpt import (attention, autograd, context, data, finetune, generalization, gpt, language, mlp, prediction,
                      recurrent, regression, runs, runtime, search, tokens, training)
from zero2gpt.cli import main
from zero2gpt.data import HashMismatchError
from zero2gpt.runs import CheckpointError
from zero2gpt.runtime import DeviceUnavailableError

from tiny import tiny_char_corpus

HUGE = 10**7  # big enough that a size built from it passes any memory a machine has


def optional_module(name: str):
    """zero2gpt.<name>, or None: Part V's modules join the table once their chapters exist."""
    try:
        return importlib.import_module(f"zero2gpt.{name}")
    except ModuleNotFoundError:
        return None


lateral, alignment, compression = (optional_module(name) for name in ("lateral", "alignment", "compression"))


class CommandFailed(Exception):
    """The command's one line on stderr, after it exited with status 2."""


@dataclass(frozen=True)
class Place:
    """The files the rows point at, made once for the module."""

    root: Path
    run: Path  # a tiny trained GPT's run folder
    afile: Path  # a plain text file
    truncated: Path  # the run's checkpoint, cut in half
    other_shape: Path  # a checkpoint whose weights do not fit its own config
    not_a_checkpoint: Path  # a .pt file of another kind (a bare tensor)
    readonly: Path  # a folder without write permission


def tiny_corpus():
    return tiny_char_corpus("the cat sat on the mat. " * 40, 800)


TINY_CONFIG = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, warmup_steps=0, dropout=0.0,
                   steps=4, eval_every=4)


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Place:
    root = tmp_path_factory.mktemp("bad_inputs")
    run = root / "run"
    gpt.train_gpt(gpt.gpt_preset("smoke", **TINY_CONFIG), tiny_corpus(), out=run, progress=False)
    (root / "afile").write_text("I am not a folder")
    whole = (run / "checkpoint.pt").read_bytes()
    (root / "truncated.pt").write_bytes(whole[:len(whole) // 2])
    state = runs.load_checkpoint(run)
    state["model_config"] = {**state["model_config"], "n_embd": 32}
    runs.save_checkpoint(root / "other_shape", state)
    torch.save(torch.zeros(3), root / "tensor.pt")
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    yield Place(root, run, root / "afile", root / "truncated.pt", root / "other_shape", root / "tensor.pt", readonly)
    readonly.chmod(0o755)


def cli(*arguments: str) -> Callable[[Place], None]:
    """A row's call: run the command with ``{run}``, ``{root}``... filled in; exit 2 and one line, or a failure."""
    def run_command(place: Place) -> None:
        filled = [argument.format(**vars(place)) for argument in arguments]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(filled)
            except SystemExit as exit:  # argparse's own errors
                status = exit.code
        message = stderr.getvalue()
        assert status == 2, f"exit status {status}, stderr {message!r}"
        assert message.count("\n") == 1 and "Traceback" not in message, message
        raise CommandFailed(message.strip())
    return run_command


@contextlib.contextmanager
def dataset_file(tmp: Path, content: bytes, registered_hash: str | None = None):
    """A dataset named "mine" in $ZERO2GPT_DATA holding ``content``, registered with ``registered_hash``
    (default: the content's own), and an empty cache."""
    (tmp / "data" / "mine").mkdir(parents=True, exist_ok=True)
    (tmp / "data" / "mine" / "mine.txt").write_bytes(content)
    entry = data.Dataset("mine.txt", "https://127.0.0.1/never", registered_hash or hashlib.sha256(content).hexdigest(),
                         len(content), "a test dataset")
    with mock.patch.dict(data.DATASETS, {"mine": entry}), \
            mock.patch.dict(os.environ, {"ZERO2GPT_DATA": str(tmp / "data"), "XDG_CACHE_HOME": str(tmp / "cache")}):
        yield


def load_from(tmp: Path, content: bytes, registered_hash: str | None = None) -> str:
    with dataset_file(tmp, content, registered_hash):
        return data.load_text("mine", progress=False)


def missing_device() -> str:
    return next(name for name in ("cuda", "mps") if name not in runtime.available_devices())


def tiny_gpt() -> gpt.GPT:
    return gpt.GPT(gpt.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0))


def a_long_prompt_is_cropped(place: Place) -> None:
    model = tiny_gpt()
    written = model.generate(torch.zeros(1, 50, dtype=torch.long), 5, temperature=0)  # 50 > block_size=8
    assert written.shape == (1, 55)
    # the last 8 ids are all the model sees: a longer history changes nothing
    assert torch.equal(written[:, -5:], model.generate(torch.zeros(1, 8, dtype=torch.long), 5, temperature=0)[:, -5:])


def a_long_prompt_is_cropped_by_the_command(place: Place) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sample", "--checkpoint", str(place.run), "--prompt", "the cat " * 10, "--tokens", "3"]) == 0
    assert out.getvalue().startswith("the cat " * 10) and len(out.getvalue()) == 80 + 3 + 1


def bpe_stops_early(text: str) -> None:
    """As documented, training stops early, with a smaller vocabulary, when no pair is left to merge."""
    tokenizer = tokens.train_bpe(text, 300, progress=False)
    assert tokenizer.vocab_size == 256 and tokenizer.encode(text) == []


def not_writable(place: Place) -> None:
    gpt.train_gpt(gpt.gpt_preset("smoke", **TINY_CONFIG), tiny_corpus(), out=place.readonly / "run", progress=False)


@dataclass(frozen=True)
class Row:
    id: str
    call: Callable[[Place], object]
    error: type[BaseException] | None
    fragment: str = ""
    marks: tuple = ()


ROOT_SKIP = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                               reason="as root, a folder's permissions do not stop writing")
NAN = math.nan

ROWS = [
    # ---- text, vocabulary, data files
    Row("empty-text-vocabulary", lambda p: language.CharTokenizer(""), ValueError, "text must be a non-empty str"),
    Row("text-not-a-string", lambda p: language.CharTokenizer(b"bytes"), ValueError, "non-empty str"),
    Row("character-outside-vocabulary", lambda p: language.CharTokenizer("abc").encode("abz"), ValueError,
        "character 'z' at position 2 is not in the vocabulary"),
    Row("decode-id-outside-vocabulary", lambda p: language.CharTokenizer("abc").decode([0, 7]), ValueError,
        "id 7 at position 1 is not in the vocabulary: ids are integers from 0 to 2"),
    Row("bpe-empty-text-learns-no-merges", lambda p: bpe_stops_early(""), None),
    Row("bpe-text-not-a-string", lambda p: tokens.train_bpe(["a"], 300, progress=False), TypeError, "text must be"),
    Row("bpe-vocab-below-bytes", lambda p: tokens.train_bpe("abc", 100), ValueError, "vocab_size"),
    Row("bpe-decode-bad-id", lambda p: tokens.BPETokenizer().decode([256]), ValueError, "id 256"),
    Row("non-utf8-file", lambda p: load_from(p.root / "latin1", "café".encode("latin-1")), ValueError,
        "is not UTF-8 text: byte 3 is 0xe9"),
    Row("dataset-hash-mismatch", lambda p: load_from(p.root / "hash", b"tampered", "0" * 64), HashMismatchError,
        "expected " + "0" * 64),
    Row("unknown-dataset", lambda p: data.load_text("hamlet"), ValueError,
        "unknown dataset 'hamlet'; known datasets: tinyshakespeare"),
    Row("dataset-name-not-a-string", lambda p: data.load_text(3), TypeError, "dataset name must be a string"),
    Row("corpus-train-fraction-nan", lambda p: language.char_corpus("cat-poems", train_fraction=NAN), ValueError,
        "train_fraction must be a finite number > 0 and <= 1; got nan"),
    Row("block-size-larger-than-data", lambda p: language.get_batch(torch.arange(10), 20, 4), ValueError,
        "block_size=20 needs more than 20 ids"),
    Row("ids-of-wrong-dtype", lambda p: language.get_batch(torch.zeros(100), 8, 4), ValueError,
        "ids must be a 1-D torch.long tensor"),
    Row("batch-size-zero", lambda p: language.get_batch(torch.arange(100), 8, 0), ValueError,
        "batch_size must be an integer >= 1; got 0"),
    Row("batch-too-big-for-memory", lambda p: language.get_batch(torch.arange(100), 8, HUGE * 100), ValueError,
        "would need"),
    Row("poem-character-outside-vocabulary",
        lambda p: finetune.poem_corpus("cat-poems", language.CharTokenizer("abc")), ValueError,
        "not in the vocabulary"),
    # ---- configs: presets, keys, rates, seeds, sizes
    Row("unknown-preset", lambda p: gpt.gpt_preset("huge"), ValueError,
        "preset must be one of 'smoke', 'laptop', 'full'; got 'huge'"),
    Row("unknown-config-key", lambda p: gpt.gpt_preset("smoke", n_layers=4), ValueError,
        "unknown config key 'n_layers'; valid keys: n_layer"),
    Row("unknown-profile", lambda p: mock.patch.dict(os.environ, {"ZERO2GPT_PROFILE": "huge"})(runtime.profile)(),
        ValueError, "ZERO2GPT_PROFILE must be one of smoke, laptop, full; got 'huge'"),
    Row("batch-size-zero-in-config", lambda p: gpt.gpt_preset("smoke", batch_size=0), ValueError,
        "batch_size must be an integer >= 1; got 0"),
    Row("learning-rate-negative", lambda p: gpt.gpt_preset("smoke", learning_rate=-1.0), ValueError,
        "learning_rate must be a finite number > 0; got -1.0"),
    Row("learning-rate-zero", lambda p: gpt.gpt_preset("smoke", learning_rate=0), ValueError,
        "learning_rate must be a finite number > 0; got 0"),
    Row("learning-rate-nan", lambda p: gpt.gpt_preset("smoke", learning_rate=NAN), ValueError,
        "learning_rate must be a finite number > 0; got nan"),
    Row("learning-rate-infinite-in-fit",
        lambda p: training.fit(nn.Linear(1, 1), nn.MSELoss(), (torch.ones(4, 1), torch.ones(4, 1)),
                               learning_rate=math.inf, progress=False), ValueError,
        "learning_rate must be a finite number > 0; got inf"),
    Row("learning-rate-nan-in-descent",
        lambda p: regression.gradient_descent(
            lambda w: regression.mse_loss_and_gradient(w, np.ones((3, 1)), np.ones(3)), np.zeros(2), NAN, 5,
            progress=False),
        ValueError, "learning_rate must be a finite number > 0; got nan"),
    Row("steps-zero", lambda p: gpt.gpt_preset("smoke", steps=0), ValueError, "steps must be an integer >= 1; got 0"),
    Row("dropout-above-one", lambda p: gpt.gpt_preset("smoke", dropout=1.5), ValueError,
        "dropout must be a finite number >= 0 and <= 1; got 1.5"),
    Row("heads-not-dividing-width", lambda p: gpt.gpt_preset("smoke", n_head=3), ValueError,
        "n_embd=64 must be a multiple of n_head=3"),
    Row("seed-not-an-integer", lambda p: runtime.set_seed(1.5), ValueError,
        "seed must be an integer from 0 to 2**32 - 1; got 1.5"),
    Row("seed-a-string-in-config", lambda p: gpt.gpt_preset("smoke", seed="0"), ValueError, "got '0'"),
    Row("seed-negative-in-train",
        lambda p: training.train(nn.Linear(1, 1), nn.MSELoss(), lambda: (torch.ones(1, 1), torch.ones(1, 1)),
                                 steps=1, seed=-1, progress=False), ValueError, "seed must be an integer"),
    # ---- sampling
    Row("temperature-negative", lambda p: language.sample_next_token(torch.zeros(1, 5), temperature=-1.0),
        ValueError, "temperature must be a finite number >= 0; got -1.0"),
    Row("temperature-nan", lambda p: tiny_gpt().generate(torch.zeros(1, 1, dtype=torch.long), 3, temperature=NAN),
        ValueError, "temperature must be a finite number >= 0; got nan"),
    Row("top-k-zero", lambda p: language.sample_next_token(torch.zeros(1, 5), top_k=0), ValueError,
        "top_k must be an integer >= 1; got 0"),
    Row("top-k-above-vocabulary", lambda p: language.sample_next_token(torch.zeros(1, 5), top_k=6), ValueError,
        "top_k must be an integer from 1 to the vocabulary size, 5; got 6"),
    Row("prompt-longer-than-context-is-cropped", a_long_prompt_is_cropped, None),
    Row("context-of-wrong-type", lambda p: tiny_gpt().generate([[1, 2]], 3), ValueError,
        "context must be a (batch, time) torch.long tensor"),
    Row("ids-longer-than-context-in-forward", lambda p: tiny_gpt()(torch.zeros(1, 9, dtype=torch.long)), ValueError,
        "9 positions do not fit the context of block_size=8"),
    # ---- checkpoints and folders
    Row("checkpoint-missing", lambda p: gpt.load_gpt(p.root / "nowhere"), CheckpointError, "no checkpoint at"),
    Row("checkpoint-truncated", lambda p: gpt.load_gpt(p.truncated), CheckpointError,
        "is not a complete zero2gpt checkpoint"),
    Row("checkpoint-of-another-shape", lambda p: gpt.load_gpt(p.other_shape), CheckpointError,
        "do not fit its own config"),
    Row("checkpoint-not-a-checkpoint", lambda p: runs.load_checkpoint(p.not_a_checkpoint), CheckpointError,
        "is not a zero2gpt checkpoint"),
    Row("checkpoint-a-text-file", lambda p: runs.load_checkpoint(p.afile), CheckpointError,
        "is not a complete zero2gpt checkpoint"),
    Row("resume-with-another-config",
        lambda p: gpt.train_gpt(gpt.gpt_preset("smoke", **{**TINY_CONFIG, "steps": 8}), tiny_corpus(), out=p.run,
                                resume=True, progress=False), CheckpointError, "made with another config"),
    Row("output-folder-is-a-file",
        lambda p: gpt.train_gpt(gpt.gpt_preset("smoke", **TINY_CONFIG), tiny_corpus(), out=p.afile, progress=False),
        NotADirectoryError, "is a file: give a folder"),
    Row("output-folder-read-only", not_writable, PermissionError, "cannot write into the output folder",
        marks=(ROOT_SKIP,)),
    Row("resume-without-out",
        lambda p: gpt.train_gpt(gpt.gpt_preset("smoke", **TINY_CONFIG), tiny_corpus(), resume=True), ValueError,
        "resume=True needs out"),
    Row("run-name-escaping", lambda p: runs.run_folder("../elsewhere", {}), ValueError, "run name must be"),
    Row("run-settings-not-json", lambda p: runs.run_folder("run", {"model": nn.Linear(1, 1)}), ValueError,
        "settings must be a mapping of numbers, strings"),
    # ---- devices
    Row("device-missing", lambda p: runtime.device(missing_device()), DeviceUnavailableError,
        "was requested but this machine has no"),
    Row("device-unknown", lambda p: runtime.device("tpu"), ValueError, "device must be one of cuda, mps, cpu"),
    # ---- sizes that would exhaust memory: refused before allocating
    Row("gpt-too-big", lambda p: gpt.GPTConfig(vocab_size=HUGE, n_embd=4096, n_head=8), ValueError,
        "a GPT of about"),
    Row("bigram-too-big", lambda p: language.BigramLanguageModel(HUGE), ValueError, "a bigram table for"),
    Row("bigram-counts-too-big", lambda p: language.count_bigram_probabilities(torch.arange(3), HUGE), ValueError,
        "a table of counts for"),
    Row("causal-mask-too-big", lambda p: attention.causal_mask(HUGE), ValueError, "a causal mask of"),
    Row("attention-too-wide", lambda p: attention.CausalSelfAttention(HUGE, 1), ValueError, "attention of n_embd"),
    Row("attention-model-too-big", lambda p: attention.AttentionLanguageModel(HUGE, 8, 1024, 8), ValueError,
        "embeddings for vocab_size"),
    Row("cache-too-deep", lambda p: attention.KeyValueCache(HUGE * HUGE), ValueError, "a cache of n_layers"),
    Row("lstm-too-big", lambda p: recurrent.ManualLSTMCell(HUGE, HUGE), ValueError, "a ManualLSTMCell of"),
    Row("rnn-too-big", lambda p: recurrent.ManualRNNCell(HUGE, HUGE), ValueError, "a ManualRNNCell of"),
    Row("conv-model-too-big", lambda p: recurrent.CausalConvLanguageModel(HUGE, 512, 16), ValueError,
        "a CausalConvLanguageModel of"),
    Row("mlp-language-model-too-big", lambda p: context.MLPLanguageModel(HUGE, 8, 1024, 1024), ValueError,
        "an MLPLanguageModel of"),
    Row("mlp-too-big", lambda p: mlp.init_mlp([1, HUGE, HUGE]), ValueError, "would need"),
    Row("dataset-too-big", lambda p: mlp.wiggly_dataset(HUGE * HUGE), ValueError, "would need"),
    Row("switch-patterns-too-many", lambda p: prediction.all_switch_patterns(64), ValueError,
        "n_switches must be an integer >= 1 and <= 20; got 64"),
    Row("search-budget-too-big", lambda p: search.random_search(lambda w: 0.0, 2, HUGE * HUGE), ValueError,
        "would need"),
    Row("polynomial-degree-too-big", lambda p: generalization.polynomial_features(np.zeros(10), HUGE * HUGE),
        ValueError, "would need"),
    Row("steps-too-many-to-record",
        lambda p: training.train(nn.Linear(1, 1), nn.MSELoss(), lambda: (torch.ones(1, 1), torch.ones(1, 1)),
                                 steps=HUGE * HUGE, progress=False), ValueError, "would need"),
    # ---- shapes, types, NaN in the earlier chapters
    Row("perceptron-wrong-shape", lambda p: prediction.perceptron(np.ones((4, 3)), np.ones(2), 0.0), ValueError,
        "inputs must have shape (2,) or (m, 2)"),
    Row("perceptron-nan-bias", lambda p: prediction.perceptron(np.ones(2), np.ones(2), NAN), ValueError,
        "bias must be a finite number; got nan"),
    Row("mse-wrong-shape", lambda p: regression.mean_squared_error(np.ones(3), np.ones(4)), ValueError, "shape"),
    Row("autograd-shapes-that-do-not-multiply",
        lambda p: autograd.Tensor(np.ones((2, 3))) @ autograd.Tensor(np.ones((2, 3))), ValueError, "(2, 3)"),
    Row("split-fractions-not-summing-to-one",
        lambda p: generalization.split_data(np.ones(10), np.ones(10), fractions=(0.5, 0.5, 0.5)), ValueError,
        "fractions"),
    Row("confusion-empty", lambda p: generalization.confusion_matrix([], []), ValueError, "empty"),
    Row("fit-mismatched-lengths",
        lambda p: training.fit(nn.Linear(1, 1), nn.MSELoss(), (torch.ones(4, 1), torch.ones(3, 1)), progress=False),
        ValueError, "has 4 inputs but 3 targets"),
    Row("fit-empty-data", lambda p: training.fit(nn.Linear(1, 1), nn.MSELoss(), (torch.ones(0, 1), torch.ones(0, 1)),
                                                 progress=False), ValueError, "train_data is empty"),
    Row("language-loss-wrong-shape", lambda p: language.language_model_loss(torch.zeros(2, 3, 5), torch.zeros(2, 4)),
        ValueError, "logits must be targets' shape plus a vocabulary axis"),
    Row("bits-per-char-nan", lambda p: language.bits_per_char(NAN), ValueError, "nats_per_token must be"),
    Row("freeze-more-layers-than-there-are", lambda p: finetune.freeze_lower_layers(tiny_gpt(), 5), ValueError,
        "n_frozen"),
    # ---- the command line: exit status 2 and one line
    Row("cli-unknown-preset", cli("train", "--out", "{root}/x", "--preset", "huge"), CommandFailed,
        "invalid choice: 'huge' (choose from 'smoke', 'laptop', 'full')"),
    Row("cli-unknown-config-key", cli("train", "--out", "{root}/x", "--n-layers", "4"), CommandFailed,
        "unknown option '--n-layers'; valid config keys:"),
    Row("cli-unknown-dataset", cli("train", "--out", "{root}/x", "--dataset", "hamlet"), CommandFailed,
        "unknown dataset 'hamlet'"),
    Row("cli-unknown-profile", lambda p: mock.patch.dict(os.environ, {"ZERO2GPT_PROFILE": "huge"})(
        cli("train", "--out", "{root}/x"))(p), CommandFailed, "ZERO2GPT_PROFILE must be one of"),
    Row("cli-learning-rate-nan", cli("train", "--out", "{root}/x", "--learning-rate", "nan"), CommandFailed,
        "learning_rate must be a finite number > 0; got nan"),
    Row("cli-batch-size-zero", cli("train", "--out", "{root}/x", "--batch-size", "0"), CommandFailed,
        "batch_size must be an integer >= 1; got 0"),
    Row("cli-seed-not-an-integer", cli("train", "--out", "{root}/x", "--seed", "1.5"), CommandFailed,
        "argument --seed: invalid int value: '1.5'"),
    Row("cli-missing-device", lambda p: cli("train", "--out", f"{p.root}/x", "--device", missing_device())(p),
        CommandFailed, "was requested but this machine has no"),
    Row("cli-out-is-a-file", cli("train", "--out", "{afile}"), CommandFailed, "is a file"),
    Row("cli-checkpoint-missing", cli("sample", "--checkpoint", "{root}/nowhere"), CommandFailed, "no checkpoint at"),
    Row("cli-checkpoint-truncated", cli("sample", "--checkpoint", "{truncated}"), CommandFailed,
        "not a complete zero2gpt checkpoint"),
    Row("cli-checkpoint-other-shape", cli("sample", "--checkpoint", "{other_shape}"), CommandFailed,
        "do not fit its own config"),
    Row("cli-prompt-outside-vocabulary", cli("sample", "--checkpoint", "{run}", "--prompt", "ROMEO"), CommandFailed,
        "character 'R' at position 0 is not in the vocabulary"),
    Row("cli-negative-temperature", cli("sample", "--checkpoint", "{run}", "--prompt", "the", "--temperature", "-1"),
        CommandFailed, "temperature must be a finite number >= 0; got -1.0"),
    Row("cli-top-k-too-big", cli("sample", "--checkpoint", "{run}", "--prompt", "the", "--top-k", "1000"),
        CommandFailed, "top_k must be an integer from 1 to the vocabulary size"),
    Row("cli-negative-tokens", cli("sample", "--checkpoint", "{run}", "--tokens", "-5"), CommandFailed,
        "--tokens must be an integer >= 0; got -5"),
    Row("cli-long-prompt-is-cropped", a_long_prompt_is_cropped_by_the_command, None),
    Row("cli-finetune-from-nothing", cli("finetune", "--from", "{root}/nowhere", "--out", "{root}/y"), CommandFailed,
        "no checkpoint at"),
]

if lateral is not None:
    ROWS += [
        Row("lateral-no-heads", lambda p: lateral.LateralMixing(16, 0, 8), ValueError, "n_head must be an integer"),
        Row("lateral-gpt-config-of-wrong-type", lambda p: lateral.LateralGPT("config"), TypeError,
            "config must be a GPTConfig"),
        Row("lateral-unknown-profile", lambda p: lateral.lateral_comparison_config(profile_name="huge"), ValueError,
            "'huge'"),
        Row("lateral-too-big", lambda p: lateral.LateralMixing(4096, 8, HUGE), ValueError, "GiB of memory"),
        Row("lateral-matched-width-of-nothing", lambda p: lateral.matched_lateral_hidden(0, 2, 8), ValueError,
            "n_embd must be an integer >= 1; got 0"),
    ]
if alignment is not None:
    ROWS += [
        Row("instructions-none", lambda p: alignment.instruction_dataset(0), ValueError,
            "n_examples must be an integer >= 1; got 0"),
        Row("gold-reward-unknown-topic", lambda p: alignment.gold_reward("zebra", "a zebra\n"), ValueError,
            "got 'zebra'"),
        Row("reward-loss-unpaired", lambda p: alignment.reward_model_loss(torch.zeros(3), torch.zeros(2)),
            ValueError, "chosen (3,), rejected (2,)"),
        Row("dpo-loss-unpaired",
            lambda p: alignment.dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(3), beta=1.0),
            ValueError, "reference_rejected (3,)"),
        Row("dpo-negative-beta",
            lambda p: alignment.dpo_loss(*[torch.zeros(2)] * 4, beta=-1.0), ValueError, "beta must be"),
        Row("reinforce-one-sample", lambda p: alignment.reinforce_loss(torch.zeros(1), torch.zeros(1)), ValueError,
            "at least 2 sequences"),
    ]
if compression is not None:
    ROWS += [
        Row("compressor-unknown", lambda p: compression.compressor_bits_per_char("abc", "abc", "zip"), ValueError,
            "'zip'"),
        Row("frequencies-with-nan", lambda p: compression.quantised_frequencies([0.5, NAN]), ValueError,
            "finite numbers"),
        Row("decode-negative-length", lambda p: compression.arithmetic_decode(b"", -1, lambda prefix: [1, 1]),
            ValueError, "n must be an integer >= 0; got -1"),
        Row("description-length-nan", lambda p: compression.description_length(NAN, 10), ValueError,
            "data_bits must be a finite number"),
        Row("probabilities-from-a-non-language-model",
            lambda p: compression.next_token_probabilities(nn.Linear(3, 3), [1, 2], 4, 3), ValueError,
            "model must map ids (batch, time) to logits"),
    ]


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id, marks=row.marks) for row in ROWS])
def test_a_bad_input_gets_a_clear_error(row: Row, place: Place):
    if row.error is None:
        row.call(place)  # the row's own asserts say what happens instead of an error
        return
    with pytest.raises(row.error) as caught:
        row.call(place)
    message = str(caught.value)
    assert row.fragment in message, f"{type(caught.value).__name__}: {message}"
    assert "\n" not in message.strip(), f"the message is not one line: {message!r}"


def test_the_table_is_long_and_its_ids_are_unique():
    assert len(ROWS) >= 40
    assert len({row.id for row in ROWS}) == len(ROWS)
