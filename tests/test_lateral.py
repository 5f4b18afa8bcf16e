"""zero2gpt.lateral (chapter 15): learnable lateral connections (the Dense Synthesizer), the lateral GPT, its
parameter count, and the comparison's configs."""

import dataclasses

import pytest
import torch

from zero2gpt.attention import KeyValueCache
from zero2gpt.gpt import GPT, GPTConfig, GPTTrainingConfig, gpt_parameter_count, train_gpt
from zero2gpt.lateral import (LATERAL_COMPARISON_BUDGETS, LateralGPT, LateralMixing, lateral_comparison_config,
                              lateral_parameter_count, matched_lateral_hidden, pretrained_lateral)

from tiny import tiny_char_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 11


def tiny_config(**changes) -> GPTConfig:
    return GPTConfig(**{"vocab_size": VOCAB, "block_size": 10, "n_layer": 2, "n_head": 2, "n_embd": 16,
                        "dropout": 0.0, **changes})


def tiny_layer(hidden: int | None = None) -> LateralMixing:
    torch.manual_seed(0)
    return LateralMixing(n_embd=8, n_head=2, block_size=6, hidden=hidden).eval()


@pytest.mark.parametrize("hidden", [None, 5])
def test_shapes(hidden):
    layer = tiny_layer(hidden)
    inputs = torch.randn(3, 4, 8)
    assert layer(inputs).shape == (3, 4, 8)
    assert layer.mixing_weights(inputs).shape == (3, 2, 4, 4)
    model = LateralGPT(tiny_config(), hidden=hidden)
    assert model(torch.randint(VOCAB, (2, 7))).shape == (2, 7, VOCAB)


@pytest.mark.parametrize("hidden", [None, 5])
def test_weights_sum_to_one_over_the_past_and_are_zero_in_the_future(hidden):
    weights = tiny_layer(hidden).mixing_weights(torch.randn(2, 6, 8))
    assert torch.allclose(weights.sum(dim=-1), torch.ones(2, 2, 6), atol=1e-6)
    future = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)
    assert (weights[..., future] == 0).all()
    assert (weights[..., ~future] > 0).all()


@pytest.mark.parametrize("hidden", [None, 5])
def test_causal_a_later_token_changes_no_earlier_output_or_weight(hidden):
    torch.manual_seed(1)
    model = LateralGPT(tiny_config(), hidden=hidden).eval()
    ids = torch.randint(VOCAB, (1, 8))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % VOCAB
    with torch.no_grad():
        assert torch.equal(model(ids)[:, :5], model(changed)[:, :5])
        assert not torch.equal(model(ids)[:, 5:], model(changed)[:, 5:])
    layer, inputs = tiny_layer(hidden), torch.randn(1, 6, 8)
    later = inputs.clone()
    later[0, 4] += 1.0
    with torch.no_grad():
        assert torch.equal(layer(inputs)[:, :4], layer(later)[:, :4])
        assert torch.equal(layer.mixing_weights(inputs)[:, :, :4], layer.mixing_weights(later)[:, :, :4])


@pytest.mark.parametrize("hidden", [None, 5])
def test_weights_ignore_the_content_of_other_positions(hidden):
    layer, inputs = tiny_layer(hidden), torch.randn(1, 6, 8)
    changed = inputs.clone()
    changed[0, 1] = torch.randn(8)  # an earlier position's vector
    with torch.no_grad():
        before, after = layer.mixing_weights(inputs), layer.mixing_weights(changed)
    assert torch.equal(before[:, :, 2:], after[:, :, 2:])  # every later row: exactly the same weights
    assert not torch.equal(layer(inputs)[:, 2:], layer(changed)[:, 2:])  # though the values it mixes changed


def test_a_cache_is_refused_clearly():
    layer = tiny_layer()
    with pytest.raises(ValueError, match="no key/value cache"):
        layer(torch.randn(1, 3, 8), KeyValueCache(1))
    model = LateralGPT(tiny_config())
    with pytest.raises(ValueError, match="no key/value cache"):
        model(torch.randint(VOCAB, (1, 3)), KeyValueCache(2))
    with pytest.raises(ValueError, match="use_cache=False"):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 3, use_cache=True)


def test_a_window_longer_than_block_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"7 positions do not fit the 6 slots.*block_size=6"):
        tiny_layer().mixing_weights(torch.randn(1, 7, 8))
    with pytest.raises(ValueError, match=r"inputs must be a \(batch, time, 8\) tensor"):
        tiny_layer()(torch.randn(1, 3, 9))
    with pytest.raises(ValueError, match="block_size=10"):
        LateralGPT(tiny_config())(torch.randint(VOCAB, (1, 11)))


@pytest.mark.parametrize("arguments, message", [
    ({"n_embd": 8, "n_head": 3, "block_size": 4}, "multiple of n_head"),
    ({"n_embd": 8, "n_head": 2, "block_size": 0}, "block_size"),
    ({"n_embd": 8, "n_head": 2, "block_size": 4, "hidden": 0}, "hidden"),
    ({"n_embd": 8, "n_head": 2, "block_size": 4, "dropout": 1.5}, "dropout"),
])
def test_bad_layer_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        LateralMixing(**arguments)


def test_generate_slides_a_window_past_block_size():
    torch.manual_seed(0)
    model = LateralGPT(tiny_config(block_size=5))
    context = torch.randint(VOCAB, (2, 3))
    written = model.generate(context, 9, generator=torch.Generator().manual_seed(0))
    assert written.shape == (2, 12) and torch.equal(written[:, :3], context)
    again = model.generate(context, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(written, again)
    assert model.training, "generate restores training mode"


@pytest.mark.parametrize("hidden", [None, 1, 7])
@pytest.mark.parametrize("changes", [{}, {"tie_weights": False}, {"n_head": 4, "block_size": 3}])
def test_parameter_formula(hidden, changes):
    config = tiny_config(**changes)
    model = LateralGPT(config, hidden=hidden)
    assert sum(p.numel() for p in model.parameters()) == lateral_parameter_count(config, hidden)


@pytest.mark.parametrize("n_embd, n_head, block_size", [(32, 4, 16), (64, 4, 64), (128, 4, 128), (384, 6, 256)])
def test_matched_hidden_matches_attention_within_two_percent(n_embd, n_head, block_size):
    config = GPTConfig(vocab_size=65, block_size=block_size, n_layer=3, n_head=n_head, n_embd=n_embd)
    hidden = matched_lateral_hidden(n_embd, n_head, block_size)
    assert abs(lateral_parameter_count(config, hidden) - gpt_parameter_count(config)) <= 0.02 * gpt_parameter_count(config)


def test_linear_lateral_equals_attention_in_size_when_slots_are_twice_the_width():
    config = GPTConfig(vocab_size=48, block_size=16, n_layer=3, n_head=4, n_embd=32)
    assert lateral_parameter_count(config) == gpt_parameter_count(config)


def test_lateral_gpt_keeps_the_config_and_the_rest_of_the_gpt():
    config = tiny_config()
    torch.manual_seed(0)
    lateral = LateralGPT(config, hidden=3)
    assert lateral.config == config and isinstance(lateral, GPT) and lateral.hidden == 3
    assert all(isinstance(block.attention, LateralMixing) for block in lateral.blocks)
    assert lateral.head.weight is lateral.token_embedding.weight


def tiny_corpus():
    return tiny_char_corpus("abcabdabcabe " * 60, 600)


def test_train_gpt_trains_a_lateral_gpt():
    corpus = tiny_corpus()
    config = GPTTrainingConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, dropout=0.0, batch_size=8, steps=60,
                               learning_rate=1e-2, warmup_steps=5, eval_every=30, eval_tokens=100, seed=0)
    torch.manual_seed(0)
    model = LateralGPT(config.model_config(corpus.vocab_size), hidden=4)
    trained, log = train_gpt(config, corpus, model=model, device="cpu", progress=False)
    assert trained is model and isinstance(trained, LateralGPT)
    assert sum(log.train_loss[-10:]) / 10 < sum(log.train_loss[:10]) / 10
    assert log.best_val < log.val_loss[0] or log.best_step == log.eval_steps[0]


def test_comparison_configs_per_profile():
    for name, budget in LATERAL_COMPARISON_BUDGETS.items():
        config = lateral_comparison_config(2, name)
        assert isinstance(config, GPTTrainingConfig) and config.seed == 2
        assert all(getattr(config, key) == value for key, value in budget.items())
    assert dataclasses.replace(lateral_comparison_config(0, "smoke"), seed=3) == lateral_comparison_config(3, "smoke")
    with pytest.raises(ValueError, match="profile_name"):
        lateral_comparison_config(0, "huge")
    with pytest.raises(ValueError, match="seed"):
        lateral_comparison_config(-1, "smoke")


def test_pretrained_lateral_trains_into_the_runs_folder_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_RUNS", str(tmp_path))
    monkeypatch.setattr("zero2gpt.lateral.char_corpus", lambda name: tiny_corpus())
    config = GPTTrainingConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, dropout=0.0, batch_size=4, steps=10,
                               learning_rate=1e-2, warmup_steps=2, eval_every=5, eval_tokens=50, seed=0)
    model, corpus, log = pretrained_lateral(config, "tiny", device="cpu", progress=False)
    assert isinstance(model, LateralGPT) and not model.training and log.step == 10
    again, _, log_again = pretrained_lateral(config, "tiny", device="cpu", progress=False)
    assert log_again.best_val == log.best_val
    ids = corpus.val_ids[:8][None]
    with torch.no_grad():
        assert torch.equal(model(ids), again(ids))
    with pytest.raises(TypeError, match="GPTTrainingConfig"):
        pretrained_lateral({"steps": 3})
