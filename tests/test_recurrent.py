"""zero2gpt.recurrent (chapter 11): the causal convolution, the RNN and LSTM cells, their language models, configs."""

import math

import pytest
import torch
from torch import nn

from zero2gpt.language import BigramLanguageModel
from zero2gpt.recurrent import (
    RECURRENT_CELLS,
    CausalConvLanguageModel,
    ManualLSTMCell,
    ManualRNNCell,
    RecurrentConfig,
    RecurrentLanguageModel,
    best_part3_config,
    build_recurrent_language_model,
    gradient_by_distance,
    train_recurrent_language_model,
    unroll_cell,
)

from tiny import tiny_char_corpus

VOCAB = 11


def random_ids(batch: int, time: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def conv_model(**options) -> CausalConvLanguageModel:
    torch.manual_seed(0)
    return CausalConvLanguageModel(VOCAB, n_embd=6, n_channels=8, **options)


def recurrent_model(kind: str) -> RecurrentLanguageModel:
    torch.manual_seed(0)
    return RecurrentLanguageModel(VOCAB, 6, RECURRENT_CELLS[kind](6, 9))


LANGUAGE_MODELS = {"conv": conv_model, "rnn": lambda: recurrent_model("rnn"), "lstm": lambda: recurrent_model("lstm")}


# --- shapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
@pytest.mark.parametrize("time", [1, 5, 40])
def test_language_models_map_batch_time_ids_to_logits(name, time):
    model = LANGUAGE_MODELS[name]()
    logits = model(random_ids(3, time))
    assert logits.shape == (3, time, VOCAB) and logits.dtype == torch.float32
    assert model.block_size is None, "no window: any length of context will do"


@pytest.mark.parametrize("cell_class, state_shape", [(ManualRNNCell, "h"), (ManualLSTMCell, "hc")])
def test_cells_step_and_unroll_with_the_right_shapes(cell_class, state_shape):
    cell = cell_class(4, 7)
    state = cell.initial_state(5, torch.device("cpu"))
    states = [state] if state_shape == "h" else list(state)
    assert all(part.shape == (5, 7) and not part.any() for part in states), "the initial state is zeros"
    output, new_state = cell.step(cell.input_weights(torch.randn(5, 4)), state)
    assert output.shape == (5, 7)
    outputs, last = unroll_cell(cell, torch.randn(5, 12, 4))
    assert outputs.shape == (5, 12, 7)
    last_hidden = last if state_shape == "h" else last[0]
    assert torch.equal(last_hidden, outputs[:, -1]), "the last state's h is the last output"


def test_receptive_field_follows_the_kernel_size_and_dilations():
    assert conv_model().receptive_field == 8  # 1 + (2 - 1) * (1 + 2 + 4)
    assert conv_model(dilations=(1, 2, 4, 8, 16), kernel_size=3).receptive_field == 63
    assert conv_model(dilations=(1,), kernel_size=1).receptive_field == 1


# --- causality -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
@pytest.mark.parametrize("changed", [0, 7, 19])
def test_changing_a_later_token_never_changes_earlier_logits(name, changed):
    model = LANGUAGE_MODELS[name]()
    ids = random_ids(4, 20, seed=1)
    other = ids.clone()
    other[:, changed] = (other[:, changed] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(ids), model(other)
    assert torch.allclose(before[:, :changed], after[:, :changed], atol=1e-6), "the past cannot see the future"
    assert not torch.allclose(before[:, changed], after[:, changed]), "the changed token itself does count"


def test_the_convolution_sees_exactly_its_receptive_field():
    model = conv_model()
    inputs, targets = random_ids(6, 30, seed=2), random_ids(6, 30, seed=3)
    reach = gradient_by_distance(model, inputs, targets)
    assert reach.shape == (30,)
    assert (reach[:8] > 0).all() and (reach[8:] == 0).all()


def test_the_same_pair_gives_the_same_first_layer_output_anywhere():
    model = conv_model()
    ids = torch.tensor([[3, 4, 0, 3, 4, 9, 9, 3, 4]])
    with torch.no_grad():
        embedded = model.embedding(ids).transpose(1, 2)
        first = model.layers[0](nn.functional.pad(embedded, (1, 0)))[0].T
    assert torch.equal(first[1], first[4]) and torch.equal(first[1], first[8])


def test_recurrent_gradient_reaches_the_first_character_and_the_bigram_only_its_own():
    inputs, targets = random_ids(4, 16, seed=4), random_ids(4, 16, seed=5)
    assert (gradient_by_distance(recurrent_model("lstm"), inputs, targets) > 0).all()
    torch.manual_seed(0)
    bigram = BigramLanguageModel(VOCAB)
    nn.init.normal_(bigram.table.weight)
    reach = gradient_by_distance(bigram, inputs, targets)
    assert reach[0] > 0 and (reach[1:] == 0).all()


def test_gradient_by_distance_leaves_the_model_as_it_was():
    model = recurrent_model("rnn")
    model.train()
    gradient_by_distance(model, random_ids(2, 5), random_ids(2, 5))
    assert model.training and all(parameter.grad is None for parameter in model.parameters())


# --- the cells against PyTorch's own -------------------------------------------------------------


def copy_weights(ours: nn.Module, theirs: nn.Module) -> None:
    with torch.no_grad():
        for linear, suffix in [(ours.input_weights, "ih_l0"), (ours.hidden_weights, "hh_l0")]:
            linear.weight.copy_(getattr(theirs, "weight_" + suffix))
            linear.bias.copy_(getattr(theirs, "bias_" + suffix))


@pytest.mark.parametrize("input_size, hidden_size, time", [(1, 1, 3), (5, 7, 40), (16, 32, 25)])
def test_the_lstm_cell_equals_torch_lstm_with_copied_weights(input_size, hidden_size, time):
    torch.manual_seed(input_size)
    theirs = nn.LSTM(input_size, hidden_size, batch_first=True)
    ours = ManualLSTMCell(input_size, hidden_size)
    copy_weights(ours, theirs)
    inputs = torch.randn(3, time, input_size)
    start = (torch.randn(3, hidden_size), torch.randn(3, hidden_size))
    with torch.no_grad():
        our_outputs, (our_h, our_c) = unroll_cell(ours, inputs, start)
        their_outputs, (their_h, their_c) = theirs(inputs, (start[0][None], start[1][None]))
    assert torch.allclose(our_outputs, their_outputs, atol=1e-5)
    assert torch.allclose(our_h, their_h[0], atol=1e-5) and torch.allclose(our_c, their_c[0], atol=1e-5)


def test_the_lstm_cell_has_torch_lstm_gradients_too():
    torch.manual_seed(0)
    theirs = nn.LSTM(4, 6, batch_first=True)
    ours = ManualLSTMCell(4, 6)
    copy_weights(ours, theirs)
    inputs = torch.randn(2, 10, 4)
    unroll_cell(ours, inputs)[0].square().sum().backward()
    theirs(inputs)[0].square().sum().backward()
    assert torch.allclose(ours.hidden_weights.weight.grad, theirs.weight_hh_l0.grad, atol=1e-5)
    assert torch.allclose(ours.input_weights.bias.grad, theirs.bias_ih_l0.grad, atol=1e-5)


def test_the_rnn_cell_equals_torch_rnn_with_copied_weights():
    torch.manual_seed(0)
    theirs = nn.RNN(5, 7, batch_first=True)
    ours = ManualRNNCell(5, 7)
    copy_weights(ours, theirs)
    inputs = torch.randn(3, 30, 5)
    with torch.no_grad():
        assert torch.allclose(unroll_cell(ours, inputs)[0], theirs(inputs)[0], atol=1e-5)


def test_the_forget_gate_starts_open():
    cell = ManualLSTMCell(3, 5)
    assert torch.equal(cell.input_weights.bias[5:10], torch.ones(5))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_unrolling_in_two_halves_equals_unrolling_at_once(kind):
    torch.manual_seed(0)
    cell = RECURRENT_CELLS[kind](4, 6)
    inputs = torch.randn(2, 14, 4)
    with torch.no_grad():
        whole, _ = unroll_cell(cell, inputs)
        first, state = unroll_cell(cell, inputs[:, :9])
        second, _ = unroll_cell(cell, inputs[:, 9:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)


# --- configs and training ------------------------------------------------------------------------


def tiny_corpus():
    return tiny_char_corpus("abcd efgh " * 300, 2700)


def test_build_makes_the_model_the_config_describes():
    model = build_recurrent_language_model(RecurrentConfig(cell="rnn", n_embd=5, n_hidden=7), vocab_size=13)
    assert isinstance(model.cell, ManualRNNCell) and model.cell.hidden_size == 7
    assert model.embedding.num_embeddings == 13
    assert isinstance(build_recurrent_language_model(RecurrentConfig(), 13).cell, ManualLSTMCell)


def test_training_from_a_config_learns_and_repeats_itself():
    config = RecurrentConfig(cell="lstm", n_embd=8, n_hidden=16, block_size=16, batch_size=8, steps=40,
                             learning_rate=1e-2)
    corpus = tiny_corpus()
    model, history = train_recurrent_language_model(config, corpus, device="cpu", progress=False)
    again, history_again = train_recurrent_language_model(config, corpus, device="cpu", progress=False)
    assert len(history.train_loss) == 40 and len(history.val_loss) == 1
    assert history.val_loss[-1] < 0.5 * math.log(corpus.vocab_size), "it learned the repeating text"
    assert history.val_loss == history_again.val_loss, "the same config and seed give the same run"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_best_part3_config_is_an_lstm_config_for_the_profile(monkeypatch):
    for name in ("smoke", "laptop", "full"):
        monkeypatch.setenv("ZERO2GPT_PROFILE", name)
        config = best_part3_config()
        assert isinstance(config, RecurrentConfig) and config.cell == "lstm" and config.steps >= 1
    monkeypatch.setenv("ZERO2GPT_PROFILE", "full")
    assert best_part3_config().n_hidden > RecurrentConfig().n_hidden, "full is bigger"


# --- argument errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (dict(vocab_size=0, n_embd=4, n_channels=4), "vocab_size must be an integer >= 1; got 0"),
    (dict(vocab_size=5, n_embd=4, n_channels=2.5), "n_channels must be an integer >= 1; got 2.5"),
    (dict(vocab_size=5, n_embd=4, n_channels=4, kernel_size=0), "kernel_size must be an integer >= 1; got 0"),
    (dict(vocab_size=5, n_embd=4, n_channels=4, dilations=()), "dilations must be a non-empty tuple"),
    (dict(vocab_size=5, n_embd=4, n_channels=4, dilations=4), "dilations must be a non-empty tuple"),
    (dict(vocab_size=5, n_embd=4, n_channels=4, dilations=(1, 0)), "each dilation must be an integer >= 1; got 0"),
])
def test_convolution_arguments_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CausalConvLanguageModel(**arguments)


@pytest.mark.parametrize("cell_class", [ManualRNNCell, ManualLSTMCell])
def test_cell_sizes_are_checked(cell_class):
    with pytest.raises(ValueError, match="input_size must be an integer >= 1; got 0"):
        cell_class(0, 4)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1; got -2"):
        cell_class(3, -2)


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
@pytest.mark.parametrize("ids", [torch.zeros(2, 5), torch.zeros(5, dtype=torch.long),
                                 torch.zeros(2, 0, dtype=torch.long), [[1, 2]]])
def test_models_refuse_ids_that_are_not_batch_time_long(name, ids):
    with pytest.raises(ValueError, match=r"ids must be a \(batch, time\) torch.long tensor with time >= 1"):
        LANGUAGE_MODELS[name]()(ids)


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_models_refuse_ids_outside_the_vocabulary(name):
    ids = random_ids(2, 5)
    ids[0, 0], ids[1, 3] = 0, VOCAB
    with pytest.raises(ValueError, match=f"ids must lie in 0..{VOCAB - 1}; got ids from 0 to {VOCAB}"):
        LANGUAGE_MODELS[name]()(ids)


def test_recurrent_model_arguments_are_checked():
    with pytest.raises(ValueError, match="the cell takes inputs of size 4, but n_embd=6"):
        RecurrentLanguageModel(VOCAB, 6, ManualLSTMCell(4, 8))
    with pytest.raises(TypeError, match="cell must be a recurrent cell such as ManualRNNCell or ManualLSTMCell; "
                                        "got Linear"):
        RecurrentLanguageModel(VOCAB, 6, nn.Linear(6, 8))
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1; got 0"):
        RecurrentLanguageModel(0, 6, ManualRNNCell(6, 8))


def test_unroll_cell_checks_its_inputs():
    with pytest.raises(ValueError, match=r"inputs must be a \(batch, time, 4\) tensor for this cell; got \(2, 3, 5\)"):
        unroll_cell(ManualRNNCell(4, 3), torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"got \(3, 4\)"):
        unroll_cell(ManualRNNCell(4, 3), torch.zeros(3, 4))


def test_gradient_by_distance_checks_its_arguments():
    model = recurrent_model("rnn")
    with pytest.raises(ValueError, match=r"inputs and targets must have the same shape; got \(2, 5\) and \(2, 4\)"):
        gradient_by_distance(model, random_ids(2, 5), random_ids(2, 4))
    with pytest.raises(ValueError, match="ids must be a"):
        gradient_by_distance(model, random_ids(2, 5).float(), random_ids(2, 5))

    class NoEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(VOCAB))

        def forward(self, ids):
            return self.weight.expand(*ids.shape, VOCAB)

    with pytest.raises(ValueError, match="needs a model that embeds its inputs with an nn.Embedding"):
        gradient_by_distance(NoEmbedding(), random_ids(2, 5), random_ids(2, 5))


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="cell must be one of 'rnn', 'lstm'; got 'gru'"):
        build_recurrent_language_model(RecurrentConfig(cell="gru"), 10)
    with pytest.raises(ValueError, match="n_hidden must be an integer >= 1; got 0"):
        build_recurrent_language_model(RecurrentConfig(n_hidden=0), 10)
    with pytest.raises(TypeError, match="config must be a RecurrentConfig; got dict"):
        build_recurrent_language_model({"cell": "lstm"}, 10)
    with pytest.raises(TypeError, match="config must be a RecurrentConfig; got dict"):
        train_recurrent_language_model({"cell": "lstm"}, tiny_corpus(), progress=False)
    with pytest.raises(ValueError, match="steps must be an integer >= 1; got 0"):
        train_recurrent_language_model(RecurrentConfig(steps=0), tiny_corpus(), progress=False)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        train_recurrent_language_model(RecurrentConfig(learning_rate=-1.0), tiny_corpus(), progress=False)
