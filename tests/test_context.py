"""zero2gpt.context: the MLP language model, its config and training, and the tools that look inside (chapter 10)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from zero2gpt.context import (
    MLP_NORMS,
    TANH_GAIN,
    MLPConfig,
    MLPLanguageModel,
    TanhActivity,
    UpdateRatioMonitor,
    tanh_activity,
    train_mlp_language_model,
)
from zero2gpt.language import CharCorpus, CharTokenizer, evaluate_nats, generate, language_model_loss

VOCAB = 11


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_for(norm=None, context_length=3, n_layers=2, seed=0) -> MLPLanguageModel:
    torch.manual_seed(seed)
    return MLPLanguageModel(VOCAB, context_length=context_length, n_embd=4, n_hidden=16, n_layers=n_layers, norm=norm)


def random_ids(batch=3, time=12, seed=0) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def second_order_corpus(length: int = 6000, seed: int = 0) -> CharCorpus:
    """A text whose next letter depends on the two before it: context beyond one character pays."""
    rng = np.random.default_rng(seed)
    alphabet = "abcd"
    table = rng.dirichlet(np.full(len(alphabet), 0.3), size=(len(alphabet), len(alphabet)))
    chars = [0, 1]
    for _ in range(length - 2):
        chars.append(int(rng.choice(len(alphabet), p=table[chars[-2], chars[-1]])))
    text = "".join(alphabet[c] for c in chars)
    tokenizer = CharTokenizer(text)
    ids = torch.tensor(tokenizer.encode(text))
    split = int(0.9 * len(ids))
    return CharCorpus(text, tokenizer, ids[:split], ids[split:])


# --- the model -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", MLP_NORMS)
@pytest.mark.parametrize("n_layers", [1, 3])
def test_logits_have_the_language_model_shape(norm, n_layers):
    model = model_for(norm, n_layers=n_layers)
    assert model(random_ids(3, 12)).shape == (3, 12, VOCAB)
    assert model.eval()(random_ids(1, 1)).shape == (1, 1, VOCAB)
    assert model.block_size is None


@pytest.mark.parametrize("norm", MLP_NORMS)
@given(position=st.integers(0, 11), context_length=st.integers(1, 5))
@settings(max_examples=25, deadline=None)
def test_a_change_reaches_exactly_the_windows_that_contain_it(norm, position, context_length):
    model = model_for(norm, context_length=context_length).eval()
    ids = random_ids(2, 12)
    changed = ids.clone()
    changed[:, position] = (changed[:, position] + 1) % VOCAB
    with torch.no_grad():
        moved = (model(changed) - model(ids)).abs().amax(dim=(0, 2))
    assert torch.equal(moved[:position], torch.zeros(position)), "no earlier prediction may change"
    assert torch.equal(moved[position + context_length:], torch.zeros(len(moved[position + context_length:])))
    assert (moved[position:position + context_length] > 0).all()


@pytest.mark.parametrize("norm", [None, "layernorm"])
def test_training_mode_is_causal_without_batchnorm(norm):
    model = model_for(norm).train()
    ids = random_ids(4, 10)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB
    with torch.no_grad():
        assert torch.equal(model(changed)[:, :-1], model(ids)[:, :-1])


def test_batchnorm_in_training_mode_mixes_positions():
    """Documented, not a bug: BatchNorm's batch statistics include later positions (the chapter measures it)."""
    model = model_for("batchnorm").train()
    ids = random_ids(4, 10)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB
    with torch.no_grad():
        assert not torch.equal(model(changed)[:, :-1], model(ids)[:, :-1])


def test_a_prefix_gets_the_same_predictions_as_inside_the_whole_sequence():
    model = model_for("layernorm").eval()
    ids = random_ids(2, 12)
    with torch.no_grad():
        assert torch.allclose(model(ids[:, :5]), model(ids)[:, :5], atol=1e-6)


def test_context_length_one_depends_on_the_current_character_only():
    model = model_for(context_length=1).eval()
    ids = torch.tensor([[3, 7, 3, 1, 3]])
    with torch.no_grad():
        logits = model(ids)[0]
    assert torch.allclose(logits[0], logits[2]) and torch.allclose(logits[0], logits[4])


def test_positions_before_the_start_read_the_pad_embedding():
    model = model_for(context_length=3, n_layers=1).eval()
    with torch.no_grad():
        model.embedding.weight[VOCAB] = 100.0  # a pad that stands out
        first = model(torch.tensor([[2, 5, 6, 1]]))[0]
        model.embedding.weight[VOCAB] = 0.0
        second = model(torch.tensor([[2, 5, 6, 1]]))[0]
    assert not torch.allclose(first[:2], second[:2]), "positions 0 and 1 see the pad"
    assert torch.equal(first[2:], second[2:]), "from position 2 on, the window holds only real characters"


def test_generate_from_chapter_8_works_with_it():
    model = model_for()
    out = generate(model, torch.tensor([[1, 2]]), 20, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 22) and int(out.max()) < VOCAB
    assert torch.equal(generate(model, torch.tensor([[1, 2]]), 5, temperature=0),
                       generate(model, torch.tensor([[1, 2]]), 5, temperature=0))


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([1, 2, 3]), "(batch, time) torch.long"),
    (torch.zeros(2, 3), "(batch, time) torch.long"),
    (torch.zeros(2, 0, dtype=torch.long), "time >= 1"),
    ([[1, 2]], "(batch, time) torch.long"),
    (torch.tensor([[1, VOCAB]]), f"0..{VOCAB - 1}"),
    (torch.tensor([[-1, 2]]), f"0..{VOCAB - 1}"),
])
def test_bad_inputs_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        model_for()(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "groupnorm"}, "norm must be one of None, 'batchnorm', 'layernorm'; got 'groupnorm'"),
    ({"context_length": 0}, "context_length must be an integer >= 1; got 0"),
    ({"n_embd": 2.5}, "n_embd must be an integer >= 1; got 2.5"),
    ({"n_hidden": True}, "n_hidden must be an integer >= 1; got True"),
    ({"n_layers": 0}, "n_layers must be an integer >= 1; got 0"),
    ({"vocab_size": 0}, "vocab_size must be an integer >= 1; got 0"),
    ({"n_hidden": 10**6, "n_layers": 10}, "GiB of memory"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    settings_ = {"vocab_size": VOCAB, "context_length": 3, "n_embd": 4, "n_hidden": 16} | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        MLPLanguageModel(**settings_)


def test_batchnorm_layers_have_no_bias_before_the_norm():
    assert all(layer.bias is None for layer in model_for("batchnorm").hidden)
    assert all(layer.bias is not None for layer in model_for("layernorm").hidden)
    assert all(isinstance(norm, nn.Identity) for norm in model_for(None).norms)


# --- starting weights ------------------------------------------------------------------------------------------------

def test_starting_weights_have_kaimings_scale():
    assert TANH_GAIN == nn.init.calculate_gain("tanh")
    torch.manual_seed(0)
    model = MLPLanguageModel(VOCAB, 8, 16, 400, n_layers=2)
    for layer in model.hidden:
        expected = TANH_GAIN / math.sqrt(layer.in_features)
        assert abs(float(layer.weight.detach().std()) / expected - 1) < 0.05
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    assert abs(float(model.output.weight.detach().std()) / (0.1 / math.sqrt(400)) - 1) < 0.05
    assert abs(float(model.embedding.weight.detach().std()) - 1) < 0.1


def test_zero_output_scale_predicts_uniformly():
    model = model_for()
    model.reset_parameters(output_scale=0.0)
    ids = random_ids()
    loss = language_model_loss(model(ids), random_ids(seed=1))
    assert math.isclose(loss.item(), math.log(VOCAB), rel_tol=1e-6)


def test_reset_parameters_checks_its_arguments():
    with pytest.raises(ValueError, match="gain must be a finite number > 0"):
        model_for().reset_parameters(gain=0)
    with pytest.raises(ValueError, match="output_scale must be a finite number >= 0"):
        model_for().reset_parameters(output_scale=-1)


def test_reset_parameters_resets_the_norms():
    model = model_for("layernorm")
    with torch.no_grad():
        model.norms[0].weight.fill_(3.0)
    model.reset_parameters()
    assert torch.equal(model.norms[0].weight, torch.ones_like(model.norms[0].weight))


# --- config and training ---------------------------------------------------------------------------------------------

def small_config(**changes) -> MLPConfig:
    settings_ = dict(context_length=2, n_embd=4, n_hidden=32, steps=150, batch_size=16, block_size=16,
                     learning_rate=1e-2, warmup_steps=10, eval_tokens=None, seed=0)
    return MLPConfig(**(settings_ | changes))


def test_training_learns_what_a_second_character_of_context_tells():
    corpus = second_order_corpus()
    model, history = train_mlp_language_model(small_config(), corpus, device="cpu", progress=False)
    one_back, _ = train_mlp_language_model(small_config(context_length=1), corpus, device="cpu", progress=False)
    assert not model.training and len(history.train_loss) == 150
    two = evaluate_nats(model, corpus.val_ids, 64)
    one = evaluate_nats(one_back, corpus.val_ids, 64)
    assert two < one < math.log(corpus.vocab_size)


def test_training_is_repeatable_with_a_seed():
    corpus = second_order_corpus(2000)
    first, _ = train_mlp_language_model(small_config(steps=20), corpus, device="cpu", progress=False)
    second, _ = train_mlp_language_model(small_config(steps=20), corpus, device="cpu", progress=False)
    other, _ = train_mlp_language_model(small_config(steps=20, seed=1), corpus, device="cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.embedding.weight, other.embedding.weight)


def test_config_errors_are_clear():
    corpus = second_order_corpus(2000)
    with pytest.raises(TypeError, match="config must be an MLPConfig; got dict"):
        train_mlp_language_model({"steps": 10}, corpus)
    with pytest.raises(ValueError, match="steps must be an integer >= 1; got 0"):
        train_mlp_language_model(small_config(steps=0), corpus)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0; got -1"):
        train_mlp_language_model(small_config(warmup_steps=-1), corpus)
    with pytest.raises(ValueError, match="norm must be one of"):
        train_mlp_language_model(small_config(norm="rmsnorm"), corpus)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1; got 0"):
        train_mlp_language_model(small_config(block_size=0), corpus, progress=False)


def test_config_is_frozen_and_has_working_defaults():
    config = MLPConfig()
    with pytest.raises(AttributeError):
        config.steps = 1  # type: ignore[misc]
    assert config.norm is None and config.context_length >= 1


# --- looking inside --------------------------------------------------------------------------------------------------

def test_tanh_activity_matches_autograd_and_leaves_grads_alone():
    model = model_for(n_layers=3).train()
    ids, targets = random_ids(4, 10), random_ids(4, 10, seed=1)
    layers = tanh_activity(model, ids, targets)
    assert len(layers) == 3 and all(layer.outputs.shape == (40, 16) for layer in layers)
    assert all(parameter.grad is None for parameter in model.parameters())
    kept = []

    def keep(module, args, output):
        output.retain_grad()
        kept.append(output)

    hooks = [tanh.register_forward_hook(keep) for tanh in model.activations]
    language_model_loss(model(ids), targets).backward()
    for hook in hooks:
        hook.remove()
    for layer, output in zip(layers, kept):
        assert torch.allclose(layer.outputs, output.detach().reshape(-1, 16))
        assert torch.allclose(layer.gradients, output.grad.reshape(-1, 16))


def test_saturation_counts_outputs_beyond_the_threshold():
    activity = TanhActivity(torch.tensor([[0.99, -0.98], [0.5, 0.0]]), torch.zeros(2, 2))
    assert activity.saturated() == 0.5
    assert activity.saturated(0.4) == 0.75
    with pytest.raises(ValueError, match="threshold must be a finite number > 0 and <= 1; got 0"):
        activity.saturated(0)


def test_tanh_activity_needs_a_tanh():
    with pytest.raises(ValueError, match="no nn.Tanh layer"):
        tanh_activity(nn.Sequential(nn.Embedding(VOCAB, VOCAB)), random_ids(), random_ids(seed=1))


def test_update_ratio_monitor_records_sgd_steps_exactly():
    model = model_for()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ids, targets = random_ids(), random_ids(seed=1)
    with UpdateRatioMonitor(model) as monitor:
        assert monitor.ratios() == {name: [] for name in monitor.names}
        expected = []
        for _ in range(3):
            optimizer.zero_grad()
            language_model_loss(model.train()(ids), targets).backward()
            weight = model.hidden[1].weight
            expected.append(float((0.1 * weight.grad).std() / weight.detach().std()))
            optimizer.step()
            with torch.no_grad():
                model.eval()(ids)  # an evaluation: not a step
        model.train()(ids)
    recorded = monitor.ratios()
    assert set(recorded) == {"embedding.weight", "hidden.0.weight", "hidden.1.weight", "output.weight"}
    assert np.allclose(recorded["hidden.1.weight"], expected, rtol=1e-4)
    model.train()(ids)  # after close(): nothing more is recorded
    assert len(monitor.ratios()["hidden.1.weight"]) == 3


def test_update_ratio_monitor_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        UpdateRatioMonitor("model")
    with pytest.raises(ValueError, match="no weight matrix"):
        UpdateRatioMonitor(nn.LayerNorm(4))
