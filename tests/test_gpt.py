"""zero2gpt.gpt (chapter 13): the GPT, its parameter count, generation with a cache, presets, training with
checkpoints and exact resume, and loading."""

import dataclasses
import os
import random
import signal
from pathlib import Path

import pytest
import torch

from zero2gpt.gpt import (GPT, GPT_PRESETS, Block, FeedForward, GPTConfig, GPTTrainingConfig, GPTTrainingLog,
                          gpt_optimizer, gpt_parameter_count, gpt_preset, load_gpt, pretrained_gpt, train_gpt)
from zero2gpt.language import CharCorpus, CharTokenizer
from zero2gpt.runs import CheckpointError, load_checkpoint, save_checkpoint

VOCAB = 13
HAVE_SHAKESPEARE = (Path(os.environ.get("ZERO2GPT_DATA", "/nonexistent")) / "tinyshakespeare").is_dir()


def tiny_model(**changes) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{"vocab_size": VOCAB, "block_size": 12, "n_layer": 2, "n_head": 2, "n_embd": 16,
                            "dropout": 0.0, **changes}))


def random_ids(batch: int, time: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module")
def corpus() -> CharCorpus:
    """A small made-up text with some structure to learn: words from a short list, in random order."""
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    text = "\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(400))
    tokenizer = CharTokenizer(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    split = int(0.9 * len(ids))
    return CharCorpus(text, tokenizer, ids[:split], ids[split:])


TINY = GPTTrainingConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, dropout=0.1, batch_size=4, steps=30,
                         learning_rate=3e-3, warmup_steps=5, eval_every=10, eval_tokens=300)


# --- the model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [dict(), dict(tie_weights=False), dict(n_layer=1, n_head=1, n_embd=8),
                                   dict(n_layer=3, n_head=4, n_embd=32, block_size=5, tie_weights=False)])
def test_the_parameter_count_formula_counts_the_model(shape):
    model = tiny_model(**shape)
    assert gpt_parameter_count(model.config) == count(model)


def test_the_full_preset_has_the_published_size_and_tying_saves_vocab_times_width():
    full = GPT_PRESETS["full"].model_config(65)
    assert gpt_parameter_count(full) == count(GPT(full))
    assert 10.6e6 < gpt_parameter_count(full) < 10.9e6
    untied = dataclasses.replace(full, tie_weights=False)
    assert gpt_parameter_count(untied) - gpt_parameter_count(full) == 65 * 384
    gpt2 = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    assert gpt_parameter_count(gpt2) == 124_439_808


def test_tied_weights_are_one_tensor_and_untied_two():
    tied, untied = tiny_model(), tiny_model(tie_weights=False)
    assert tied.head.weight is tied.token_embedding.weight
    assert untied.head.weight is not untied.token_embedding.weight


def test_the_model_maps_ids_to_logits_and_is_causal():
    model = tiny_model().eval()
    ids = random_ids(3, 12)
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(ids), model(changed)
    assert before.shape == (3, 12, VOCAB)
    assert torch.allclose(before[:, :7], after[:, :7], atol=1e-6), "positions before 7 must not see position 7"
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_a_block_and_the_feed_forward_keep_the_shape():
    stream = torch.randn(2, 5, 16)
    assert FeedForward(16)(stream).shape == stream.shape and Block(16, 4)(stream).shape == stream.shape


def test_the_residual_projections_start_smaller():
    model = tiny_model(n_layer=8, n_embd=64, n_head=4)
    projection = model.blocks[0].attention.projection.weight.std().item()
    expand = model.blocks[0].feed_forward.expand.weight.std().item()
    assert abs(expand - 0.02) < 0.002 and abs(projection - 0.02 / 4) < 0.001


def test_forward_refuses_a_window_longer_than_the_context_with_a_clear_error():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"13 positions do not fit the context of block_size=12"):
        model(random_ids(1, 13))
    with pytest.raises(ValueError, match=r"\(batch, time\) torch.long"):
        model(random_ids(1, 5)[0])
    with pytest.raises(ValueError, match="torch.long"):
        model(random_ids(1, 5).float())


@pytest.mark.parametrize("bad, message", [(dict(n_embd=10, n_head=4), "multiple of n_head"),
                                          (dict(dropout=1.5), "dropout"), (dict(n_layer=0), "n_layer"),
                                          (dict(tie_weights=1), "tie_weights")])
def test_configs_refuse_bad_shapes(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{"vocab_size": VOCAB, **bad})


# --- generation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context_length, n", [(1, 5), (3, 40), (20, 30)])  # 40 and 20 pass block_size=12
def test_generate_with_the_cache_writes_what_recomputing_writes(context_length, n):
    model = tiny_model()
    context = random_ids(2, context_length, seed=1)
    greedy = model.generate(context, n, temperature=0)
    assert greedy.shape == (2, context_length + n)
    assert torch.equal(greedy[:, :context_length], context)
    assert torch.equal(greedy, model.generate(context, n, temperature=0, use_cache=False))
    sampled = model.generate(context, n, generator=torch.Generator().manual_seed(5))
    assert torch.equal(sampled, model.generate(context, n, generator=torch.Generator().manual_seed(5), use_cache=False))


def test_generate_keeps_the_training_mode_and_checks_its_arguments():
    model = tiny_model().train()
    context = random_ids(1, 4)
    assert torch.equal(model.generate(context, 0), context)
    assert model.training
    with pytest.raises(ValueError, match="context"):
        model.generate(context[0], 3)
    with pytest.raises(ValueError, match="n"):
        model.generate(context, -1)


# --- presets ------------------------------------------------------------------------------------------------


def test_presets_are_copies_with_overrides():
    smoke = gpt_preset("smoke", steps=7, warmup_steps=2)
    assert smoke.steps == 7 and GPT_PRESETS["smoke"].steps != 7
    assert gpt_preset("full") == GPTTrainingConfig()


def test_an_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        gpt_preset("huge")
    assert all(name in str(error.value) for name in ("smoke", "laptop", "full"))


def test_an_unknown_key_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown config key 'layers'") as error:
        gpt_preset("smoke", layers=3)
    assert all(field.name in str(error.value) for field in dataclasses.fields(GPTTrainingConfig))


def test_training_configs_check_their_values():
    with pytest.raises(ValueError, match="warmup_steps"):
        GPTTrainingConfig(steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTTrainingConfig(n_embd=10, n_head=4)
    assert TINY.model_config(VOCAB) == GPTConfig(VOCAB, 16, 1, 2, 16, 0.1, True)


def test_the_optimizer_decays_matrices_only():
    model = tiny_model()
    decayed, kept = gpt_optimizer(model, 1e-3, 0.1, torch.device("cpu")).param_groups
    assert decayed["weight_decay"] == 0.1 and all(parameter.ndim == 2 for parameter in decayed["params"])
    assert kept["weight_decay"] == 0.0 and all(parameter.ndim == 1 for parameter in kept["params"])
    assert sum(p.numel() for p in decayed["params"] + kept["params"]) == count(model)


# --- training, checkpoints, resume --------------------------------------------------------------------------


class Stop(Exception):
    pass


def stop_at(step_to_stop: int):
    def on_eval(step, model, log):
        assert log.eval_steps[-1] == step and len(log.train_loss) == step
        if step == step_to_stop:
            raise Stop

    return on_eval


def test_train_gpt_resumes_exactly_where_it_stopped(corpus, tmp_path):
    whole_model, whole = train_gpt(TINY, corpus, out=tmp_path / "whole", device="cpu", progress=False)
    assert whole.step == TINY.steps and whole.eval_steps == [10, 20, 30]
    assert len(whole.train_eval_loss) == len(whole.val_loss) == 3 and whole.best_val == min(whole.val_loss)
    with pytest.raises(Stop):
        train_gpt(TINY, corpus, out=tmp_path / "split", device="cpu", progress=False, on_eval=stop_at(20))
    assert load_checkpoint(tmp_path / "split", kind="gpt")["step"] == 20
    resumed_model, resumed = train_gpt(TINY, corpus, out=tmp_path / "split", resume=True, device="cpu",
                                       progress=False)
    assert resumed.train_loss == whole.train_loss, "the same batches and dropout, step for step"
    assert resumed.val_loss == whole.val_loss and resumed.train_eval_loss == whole.train_eval_loss
    assert (resumed.best_val, resumed.best_step) == (whole.best_val, whole.best_step)
    for name, tensor in whole_model.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name


def test_ctrl_c_between_evaluations_saves_and_resume_keeps_the_evaluation_schedule(corpus, tmp_path, monkeypatch):
    _, whole = train_gpt(TINY, corpus, device="cpu", progress=False)
    import zero2gpt.gpt as gpt_module

    real_get_batch, calls = gpt_module.get_batch, []

    def get_batch_then_ctrl_c(*arguments, **options):
        calls.append(1)
        if len(calls) == 15:  # as if Ctrl-C came during step 15: it finishes, and training stops after it
            signal.raise_signal(signal.SIGINT)
        return real_get_batch(*arguments, **options)

    monkeypatch.setattr(gpt_module, "get_batch", get_batch_then_ctrl_c)
    _, stopped = train_gpt(TINY, corpus, out=tmp_path, device="cpu", progress=False)
    assert stopped.interrupted and stopped.step == 15 and stopped.eval_steps == [10]
    assert load_checkpoint(tmp_path)["step"] == 15
    monkeypatch.setattr(gpt_module, "get_batch", real_get_batch)
    _, resumed = train_gpt(TINY, corpus, out=tmp_path, resume=True, device="cpu", progress=False)
    assert not resumed.interrupted and resumed.eval_steps == whole.eval_steps == [10, 20, 30]
    assert resumed.train_loss == whole.train_loss and resumed.val_loss == whole.val_loss


def test_resume_refuses_another_config_and_needs_a_folder(corpus, tmp_path):
    train_gpt(dataclasses.replace(TINY, steps=10), corpus, out=tmp_path, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="another config"):
        train_gpt(dataclasses.replace(TINY, steps=20), corpus, out=tmp_path, resume=True, device="cpu", progress=False)
    with pytest.raises(ValueError, match="needs out"):
        train_gpt(TINY, corpus, resume=True, device="cpu", progress=False)
    with pytest.raises(TypeError, match="GPTTrainingConfig"):
        train_gpt(TINY.model_config(VOCAB), corpus, progress=False)


def test_load_gpt_gives_back_the_best_weights_and_the_tokenizer(corpus, tmp_path):
    model, log = train_gpt(dataclasses.replace(TINY, dropout=0.0), corpus, out=tmp_path, device="cpu", progress=False)
    loaded, tokenizer, state = load_gpt(tmp_path, device="cpu")
    assert tokenizer.chars == corpus.tokenizer.chars and not loaded.training
    assert state["step"] == TINY.steps and GPTTrainingLog(**state["log"]) == log
    ids = corpus.val_ids[:16][None]
    with torch.no_grad():
        assert torch.equal(loaded(ids), model.eval()(ids))


def test_load_gpt_refuses_weights_that_do_not_fit_their_config(corpus, tmp_path):
    train_gpt(dataclasses.replace(TINY, steps=10), corpus, out=tmp_path, device="cpu", progress=False)
    state = load_checkpoint(tmp_path)
    state["model_config"]["n_embd"] = 32
    save_checkpoint(tmp_path, {key: value for key, value in state.items() if key not in ("format", "version")})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_gpt(tmp_path)


class _RunsCode:
    """Unpickling this object would create the file ``marker``: the test checks that it never does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
    good = save_checkpoint(tmp_path / "good", {"kind": "gpt", "weights": torch.ones(1000)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(5000)))
    marker = tmp_path / "the-code-ran"
    malicious = tmp_path / "malicious.pt"
    torch.save({"format": "zero2gpt-checkpoint", "version": 1, "kind": "gpt", "payload": _RunsCode(marker)}, malicious)
    for path in (truncated, noise, malicious):
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            load_gpt(path)
    assert not marker.exists(), "loading a checkpoint must never run code from it"
    with pytest.raises(CheckpointError, match="not a 'gpt'"):
        load_checkpoint(save_checkpoint(tmp_path / "other", {"kind": "bigram"}), kind="gpt")


def test_save_checkpoint_leaves_no_temporary_file(tmp_path):
    save_checkpoint(tmp_path, {"kind": "gpt", "step": 1})
    save_checkpoint(tmp_path, {"kind": "gpt", "step": 2})
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert load_checkpoint(tmp_path)["step"] == 2


@pytest.mark.skipif(not HAVE_SHAKESPEARE, reason="needs ZERO2GPT_DATA with tinyshakespeare")
def test_pretrained_gpt_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_RUNS", str(tmp_path))
    config = dataclasses.replace(TINY, steps=10, dropout=0.0)
    model, corpus, log = pretrained_gpt(config, device="cpu", progress=False)
    assert log.step == 10 and corpus.vocab_size == 65 and len(list(tmp_path.rglob("checkpoint.pt"))) == 1

    def no_training(*arguments, **options):
        raise AssertionError("a finished run must be loaded, not trained again")

    monkeypatch.setattr("zero2gpt.gpt.train_gpt", no_training)
    again, _, log_again = pretrained_gpt(config, device="cpu", progress=False)
    assert log_again == log
    ids = corpus.val_ids[:16][None]
    with torch.no_grad():
        assert torch.equal(again(ids), model.eval()(ids))
