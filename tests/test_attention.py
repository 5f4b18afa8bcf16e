"""zero2gpt.attention (chapter 12): the causal mask, attention written out, the key/value cache, the layer, a model."""

import math

import pytest
import torch
from torch.nn import functional as F

from zero2gpt.attention import AttentionLanguageModel, CausalSelfAttention, KeyValueCache, attend, causal_mask
from zero2gpt.language import generate, language_model_loss

TOLERANCE = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def layer(n_embd: int = 16, n_head: int = 4, **options) -> CausalSelfAttention:
    torch.manual_seed(0)
    return CausalSelfAttention(n_embd, n_head, **options).eval()


def model(vocab_size: int = 11, block_size: int = 12, n_embd: int = 16, n_head: int = 4) -> AttentionLanguageModel:
    torch.manual_seed(0)
    return AttentionLanguageModel(vocab_size, block_size, n_embd, n_head).eval()


# --- the mask and attend ---------------------------------------------------------------------------


def test_causal_mask_lines_the_queries_up_with_the_last_keys():
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).tril())
    expected = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3, 7), expected)
    assert causal_mask(1, 5).all(), "one new query sees everything"


@pytest.mark.parametrize("arguments, message", [((0,), "time"), ((3, 2), "source"), ((2.5,), "time")])
def test_causal_mask_refuses_impossible_shapes(arguments, message):
    with pytest.raises(ValueError, match=message):
        causal_mask(*arguments)


def test_attend_matches_the_formula_and_keeps_leading_dimensions():
    queries, keys, values = random(2, 3, 5, 8, seed=1), random(2, 3, 5, 8, seed=2), random(2, 3, 5, 6, seed=3)
    output, weights = attend(queries, keys, values)
    assert output.shape == (2, 3, 5, 6) and weights.shape == (2, 3, 5, 5)
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(8)
    scores = scores + torch.full((5, 5), float("-inf")).triu(diagonal=1)
    expected = torch.softmax(scores, dim=-1)
    assert torch.allclose(weights, expected, atol=1e-6) and torch.allclose(output, expected @ values, atol=1e-6)
    assert torch.allclose(weights.sum(dim=-1), torch.ones(2, 3, 5))
    assert torch.all(weights.triu(diagonal=1) == 0), "no weight on the future"
    assert torch.all(weights[..., causal_mask(5)] > 0), "some weight on every allowed key"


def test_attend_without_the_mask_is_cross_attention_over_any_number_of_keys():
    output, weights = attend(random(4, 8, seed=1), random(3, 8, seed=2), random(3, 5, seed=3), causal=False)
    assert output.shape == (4, 5) and weights.shape == (4, 3) and (weights > 0).all()


def test_attend_equals_the_fused_kernel():
    queries, keys, values = (random(2, 4, 9, 8, seed=seed) for seed in range(3))
    fused = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)
    assert torch.allclose(attend(queries, keys, values)[0], fused, atol=TOLERANCE)
    unmasked = F.scaled_dot_product_attention(queries, keys, values)
    assert torch.allclose(attend(queries, keys, values, causal=False)[0], unmasked, atol=TOLERANCE)


def test_the_fused_kernels_is_causal_lines_queries_up_with_the_first_keys():
    """Why CausalSelfAttention passes causal_mask when several new tokens follow cached ones."""
    queries, keys, values = random(1, 1, 3, 4, seed=1), random(1, 1, 7, 4, seed=2), random(1, 1, 7, 4, seed=3)
    top_left = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)
    ours = attend(queries, keys, values)[0]
    assert not torch.allclose(top_left, ours, atol=1e-3)
    explicit = F.scaled_dot_product_attention(queries, keys, values, attn_mask=causal_mask(3, 7))
    assert torch.allclose(explicit, ours, atol=TOLERANCE)


def test_attend_refuses_mismatched_shapes_and_more_queries_than_keys():
    with pytest.raises(ValueError, match="must share d"):
        attend(random(5, 8), random(5, 7), random(5, 8))
    with pytest.raises(ValueError, match="must share S"):
        attend(random(5, 8), random(5, 8), random(4, 8))
    with pytest.raises(ValueError, match="3 queries and 2 keys"):
        attend(random(3, 8), random(2, 8), random(2, 8))


# --- the key/value cache ---------------------------------------------------------------------------


def test_the_cache_grows_along_time_layer_by_layer():
    cache = KeyValueCache(2)
    assert cache.length == 0 and cache.layers == [None, None]
    keys, values = cache.extend(0, random(2, 4, 3, 5, seed=1), random(2, 4, 3, 6, seed=2))
    assert keys.shape == (2, 4, 3, 5) and values.shape == (2, 4, 3, 6) and cache.length == 3
    keys, values = cache.extend(0, random(2, 4, 1, 5, seed=3), random(2, 4, 1, 6, seed=4))
    assert keys.shape == (2, 4, 4, 5) and cache.length == 4
    assert torch.equal(keys[:, :, 3:], random(2, 4, 1, 5, seed=3)), "new keys go at the end"
    assert cache.layers[1] is None, "each layer keeps its own"


@pytest.mark.parametrize("call, message", [
    (lambda cache: cache.extend(2, random(1, 1, 1, 4), random(1, 1, 1, 4)), "layer"),
    (lambda cache: cache.extend(-1, random(1, 1, 1, 4), random(1, 1, 1, 4)), "layer"),
    (lambda cache: cache.extend(0, random(1, 1, 4), random(1, 1, 4)), "keys and values must be"),
    (lambda cache: cache.extend(0, random(1, 1, 2, 4), random(1, 1, 3, 4)), "keys and values must be"),
])
def test_the_cache_refuses_bad_layers_and_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call(KeyValueCache(2))


def test_the_cache_refuses_keys_that_do_not_fit_what_it_holds():
    cache = KeyValueCache(1)
    cache.extend(0, random(2, 4, 3, 5), random(2, 4, 3, 5))
    with pytest.raises(ValueError, match="must match it in all but time"):
        cache.extend(0, random(1, 4, 1, 5), random(1, 4, 1, 5))


@pytest.mark.parametrize("n_layers", [0, -1, 1.5])
def test_the_cache_needs_at_least_one_layer(n_layers):
    with pytest.raises(ValueError, match="n_layers"):
        KeyValueCache(n_layers)


# --- the layer -------------------------------------------------------------------------------------


@pytest.mark.parametrize("time", [1, 7, 33])
def test_the_layer_keeps_the_shape(time):
    assert layer()(random(3, time, 16)).shape == (3, time, 16)


@pytest.mark.parametrize("changed", [0, 5, 11])
def test_changing_a_later_position_never_changes_an_earlier_output(changed):
    attention, inputs = layer(), random(2, 12, 16, seed=1)
    other = inputs.clone()
    other[:, changed] += 1.0
    with torch.no_grad():
        before, after = attention(inputs), attention(other)
    assert torch.allclose(before[:, :changed], after[:, :changed], atol=1e-6), "the past cannot see the future"
    assert not torch.allclose(before[:, changed], after[:, changed]), "the changed position itself does count"


def test_the_fast_path_equals_attention_written_out_with_the_layers_weights():
    attention, inputs = layer(), random(2, 9, 16, seed=2)
    with torch.no_grad():
        queries, keys, values = attention.heads(inputs)
        mixed, _ = attend(queries, keys, values)
        written_out = attention.projection(mixed.transpose(1, 2).reshape(2, 9, 16))
        assert torch.allclose(attention(inputs), written_out, atol=TOLERANCE)
        by_rows = attention.qkv(inputs)[..., :16].view(2, 9, 4, 4).transpose(1, 2)
    assert torch.equal(queries, by_rows), "the first n_embd outputs of qkv are the queries, head by head"


def test_attention_weights_are_causal_distributions():
    weights = layer().attention_weights(random(2, 6, 16, seed=3))
    assert weights.shape == (2, 4, 6, 6) and not weights.requires_grad
    assert torch.allclose(weights.sum(dim=-1), torch.ones(2, 4, 6)) and torch.all(weights.triu(diagonal=1) == 0)


@pytest.mark.parametrize("chunks", [[1] * 10, [4, 6], [3, 1, 6], [10]])
def test_writing_through_the_cache_gives_the_same_outputs_as_all_at_once(chunks):
    attention, inputs = layer(), random(2, 10, 16, seed=4)
    cache, outputs, start = KeyValueCache(1), [], 0
    with torch.no_grad():
        whole = attention(inputs)
        for size in chunks:
            outputs.append(attention(inputs[:, start:start + size], cache))
            start += size
    assert cache.length == 10
    assert torch.allclose(torch.cat(outputs, dim=1), whole, atol=TOLERANCE)


def test_dropout_acts_in_training_only():
    attention, inputs = layer(dropout=0.5), random(2, 8, 16, seed=5)
    with torch.no_grad():
        assert torch.equal(attention(inputs), attention(inputs)), "eval: deterministic"
        attention.train()
        assert not torch.equal(attention(inputs), attention(inputs)), "training: dropped at random"
    assert attention.dropout == 0.5 and attention.output_dropout.p == 0.5


def test_bias_false_leaves_the_linear_layers_without_biases():
    attention = layer(bias=False)
    assert attention.qkv.bias is None and attention.projection.bias is None
    assert attention.qkv.weight.shape == (48, 16) and attention.projection.weight.shape == (16, 16)


@pytest.mark.parametrize("arguments, message", [
    ((64, 5), "n_embd=64 must be a multiple of n_head=5"),
    ((16, 4, -0.1), "dropout must be a finite number >= 0 and <= 1; got -0.1"),
    ((16, 4, 1.5), "dropout must be a finite number >= 0 and <= 1; got 1.5"),
    ((0, 1), "n_embd must be an integer >= 1; got 0"),
    ((16, 0), "n_head must be an integer >= 1; got 0"),
    ((16.0, 4), "n_embd must be an integer"),
])
def test_the_layer_refuses_bad_arguments_by_name(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        CausalSelfAttention(*arguments)


@pytest.mark.parametrize("inputs", [random(2, 5, 15), random(5, 16), "not a tensor"])
def test_the_layer_refuses_inputs_of_the_wrong_shape(inputs):
    with pytest.raises(ValueError, match=r"inputs must be a \(batch, time, 16\) tensor"):
        layer()(inputs)


# --- the model -------------------------------------------------------------------------------------


def ids(batch: int, time: int, seed: int = 0, vocab_size: int = 11) -> torch.Tensor:
    return torch.randint(vocab_size, (batch, time), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("time", [1, 5, 12])
def test_the_model_maps_ids_to_logits(time):
    language_model = model()
    assert language_model(ids(3, time)).shape == (3, time, 11) and language_model.block_size == 12


@pytest.mark.parametrize("changed", [0, 6, 11])
def test_the_model_is_causal(changed):
    language_model, tokens = model(), ids(4, 12, seed=1)
    other = tokens.clone()
    other[:, changed] = (other[:, changed] + 1) % 11
    with torch.no_grad():
        before, after = language_model(tokens), language_model(other)
    assert torch.allclose(before[:, :changed], after[:, :changed], atol=1e-6)
    assert not torch.allclose(before[:, changed], after[:, changed])


@pytest.mark.parametrize("bad, message", [
    (ids(2, 13), "1 <= time <= block_size=12"),
    (torch.zeros(2, 0, dtype=torch.long), "1 <= time <= block_size=12"),
    (ids(2, 5).float(), "torch.long"),
    (ids(1, 5)[0], "torch.long"),
    (torch.full((1, 3), 11), r"ids must lie in 0..10"),
    (torch.full((1, 3), -1), r"ids must lie in 0..10"),
])
def test_the_model_refuses_bad_ids(bad, message):
    with pytest.raises(ValueError, match=message):
        model()(bad)


def test_attention_maps_show_where_each_position_looks():
    maps = model().attention_maps(ids(2, 9))
    assert maps.shape == (2, 4, 9, 9) and torch.all(maps.triu(diagonal=1) == 0)
    assert torch.allclose(maps.sum(dim=-1), torch.ones(2, 4, 9))


def test_the_model_learns_to_look_back():
    """On a text that repeats every 5 characters, the next one depends on the last few: attention must learn it."""
    torch.manual_seed(0)
    language_model = AttentionLanguageModel(5, 10, 16, 2)
    text = torch.tensor([0, 1, 0, 2, 3] * 40)  # after 0 comes 1 or 2: which, the character before the 0 says
    inputs, targets = text[:-1].unfold(0, 10, 1), text[1:].unfold(0, 10, 1)
    optimizer = torch.optim.AdamW(language_model.parameters(), lr=1e-2)
    first = language_model_loss(language_model(inputs), targets).item()
    for _ in range(150):
        loss = language_model_loss(language_model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 1.0 and loss.item() < 0.3, f"loss {first:.3f} -> {loss.item():.3f}"


def test_generate_keeps_to_the_models_block_size():
    written = generate(model(), ids(1, 3), 20, generator=torch.Generator().manual_seed(0))
    assert written.shape == (1, 23) and written.max() < 11


@pytest.mark.parametrize("arguments, message", [((0, 8, 16, 4), "vocab_size"), ((11, 0, 16, 4), "block_size"),
                                                ((11, 8, 18, 4), "multiple of n_head"), ((11, 8, 16.0, 4), "n_embd"),
                                                ((11, 8, 16, 0), "n_head")])
def test_the_model_refuses_bad_arguments_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        AttentionLanguageModel(*arguments)


def test_the_model_knows_where_each_character_stands():
    """Without position embeddings, swapping two earlier characters could not change the last prediction."""
    language_model, tokens = model(), torch.tensor([[1, 2, 3, 4, 5, 6]])
    swapped = torch.tensor([[2, 1, 3, 4, 5, 6]])
    with torch.no_grad():
        assert not torch.allclose(language_model(tokens)[:, -1], language_model(swapped)[:, -1], atol=1e-4)
        language_model.position_embedding.weight.zero_()
        assert torch.allclose(language_model(tokens)[:, -1], language_model(swapped)[:, -1], atol=1e-5)


def test_the_residual_connection_passes_each_character_straight_to_the_head():
    """With the attention's output silenced, the model is a bigram: each position's own character, nothing else."""
    language_model, tokens = model(), ids(2, 8, seed=3)
    with torch.no_grad():
        language_model.attention.projection.weight.zero_()
        language_model.attention.projection.bias.zero_()
        other = tokens.clone()
        other[:, 3] = (other[:, 3] + 1) % 11
        before, after = language_model(tokens), language_model(other)
    assert not torch.allclose(before[:, 3], after[:, 3]), "its own character reaches the head"
    assert torch.allclose(before[:, 4:], after[:, 4:]), "and no other position's"
