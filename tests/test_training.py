"""zero2gpt.training: chapter 4's network in PyTorch, and the reusable training loop `fit` (chapter 6)."""

import math
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zero2gpt.mlp import activation_function, init_mlp, mlp_forward
from zero2gpt.training import (
    TORCH_ACTIVATIONS,
    TRAINING_OPTIMIZERS,
    Sine,
    TrainingDivergedError,
    TrainingHistory,
    build_mlp,
    fit,
    load_mlp_parameters,
)

mse = nn.functional.mse_loss


def square_problem(n_points: int = 32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(n_points, 1, generator=generator) * 2 - 1
    return inputs, inputs**2


def small_model(seed: int = 0, activation: str = "tanh") -> nn.Sequential:
    torch.manual_seed(seed)
    return build_mlp((1, 8, 1), activation)


def numpy_parameters(layer_sizes, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)) for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])]


# --- build_mlp and load_mlp_parameters ------------------------------------------------------------


@pytest.mark.parametrize(("activation", "function"), [
    ("relu", torch.relu), ("sigmoid", torch.sigmoid), ("sine", torch.sin), ("tanh", torch.tanh)])
def test_build_mlp_has_chapter_4s_layout_for_every_activation(activation, function):
    model = build_mlp((3, 5, 4, 2), activation)
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(3, 5), (5, 4), (4, 2)]
    assert len(model) == 5 and isinstance(model[-1], nn.Linear), "the last layer is linear, with no activation after it"
    inputs = torch.randn(7, 3)
    expected = linears[2](function(linears[1](function(linears[0](inputs)))))
    torch.testing.assert_close(model(inputs), expected)
    assert set(TORCH_ACTIVATIONS) == {"relu", "sigmoid", "sine", "tanh"}


def test_build_mlp_without_hidden_layers_is_one_linear_layer():
    model = build_mlp((4, 2), "sine")
    assert len(model) == 1 and isinstance(model[0], nn.Linear)


def test_sine_layer_is_elementwise_sin():
    values = torch.linspace(-4, 4, 9)
    torch.testing.assert_close(Sine()(values), torch.sin(values))


def test_build_mlp_names_a_bad_activation_and_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=re.escape("'relu', 'sigmoid', 'sine', 'tanh'")) as error:
        build_mlp((1, 4, 1), "swish")
    assert "'swish'" in str(error.value)
    with pytest.raises(ValueError) as chapter_4s:
        activation_function("swish")
    assert str(error.value) == str(chapter_4s.value), "the same error as chapter 4"


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "sine", "tanh"])
def test_build_mlp_with_chapter_4s_parameters_computes_mlp_forward(activation):
    layer_sizes = (2, 5, 3, 1)
    parameters = init_mlp(layer_sizes, seed=4)
    model = build_mlp(layer_sizes, activation).double()
    load_mlp_parameters(model, parameters)
    inputs = np.random.default_rng(5).normal(size=(6, 2))
    np.testing.assert_allclose(model(torch.from_numpy(inputs)).detach().numpy(),
                               mlp_forward(parameters, inputs, activation), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layer_sizes", [(3,), (), (2, 0, 1), (2, -1, 1), (2, 1.5, 1), (True, 2)])
def test_build_mlp_rejects_bad_layer_sizes(layer_sizes):
    with pytest.raises(ValueError, match="layer_sizes must list at least two integers >= 1"):
        build_mlp(layer_sizes)


def test_load_mlp_parameters_round_trip():
    layer_sizes = (3, 6, 2)
    parameters = numpy_parameters(layer_sizes)
    model = build_mlp(layer_sizes, "tanh").double()
    load_mlp_parameters(model, parameters)
    linears = [model[0], model[2]]
    for linear, (weights, bias) in zip(linears, parameters):
        np.testing.assert_array_equal(linear.weight.detach().numpy().T, weights)
        np.testing.assert_array_equal(linear.bias.detach().numpy(), bias)
    # and the model computes chapter 4's forward pass: tanh(x W1 + b1) W2 + b2
    inputs = np.random.default_rng(1).normal(size=(5, 3))
    (w1, b1), (w2, b2) = parameters
    expected = np.tanh(inputs @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(model(torch.from_numpy(inputs)).detach().numpy(), expected, rtol=1e-12)


def test_load_mlp_parameters_keeps_the_models_dtype():
    model = build_mlp((2, 3, 1))
    load_mlp_parameters(model, numpy_parameters((2, 3, 1)))
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())


def test_load_mlp_parameters_names_shape_mismatches():
    model = build_mlp((3, 6, 2))
    with pytest.raises(ValueError, match=re.escape("layer 1 needs weights of shape (6, 2) and a bias of shape (2,); got (6, 3) and (3,)")):
        load_mlp_parameters(model, numpy_parameters((3, 6, 3)))
    with pytest.raises(ValueError, match=re.escape("layer 0 needs weights of shape (3, 6)")):
        load_mlp_parameters(model, [(np.zeros((6, 3)), np.zeros(6)), (np.zeros((6, 2)), np.zeros(2))])
    with pytest.raises(ValueError, match="the model has 2 Linear layer"):
        load_mlp_parameters(model, numpy_parameters((3, 6)))


# --- fit: training ----------------------------------------------------------------------------------


def test_fit_full_batch_lowers_the_loss_and_records_one_loss_per_step():
    model = small_model()
    history = fit(model, mse, square_problem(), epochs=60, learning_rate=0.02, device="cpu", progress=False)
    assert isinstance(history, TrainingHistory)
    assert len(history.train_loss) == 60 and history.epochs_run == 60
    assert history.val_loss == [] and history.best_epoch is None
    assert history.train_loss[-1] < history.train_loss[0] / 5
    assert not (history.stopped_early or history.interrupted) and history.seconds > 0
    assert not model.training, "fit leaves the model in eval mode"


def test_fit_mini_batches_and_val_history_lengths():
    inputs, targets = square_problem(30)
    history = fit(small_model(), mse, (inputs, targets), val_data=square_problem(10, seed=1), epochs=4, batch_size=8,
                  learning_rate=0.01, device="cpu", progress=False)
    assert len(history.train_loss) == 4 * 4, "30 examples in batches of 8 make 4 steps per epoch"
    assert len(history.val_loss) == 4 and history.epochs_run == 4
    assert history.val_loss[history.best_epoch - 1] == min(history.val_loss)


def test_fit_takes_a_dataloader_and_numpy_pairs():
    inputs, targets = square_problem(24)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=10, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    history = fit(small_model(), mse, loader, val_data=DataLoader(TensorDataset(inputs, targets), batch_size=7),
                  epochs=3, device="cpu", progress=False)
    assert len(history.train_loss) == 3 * 3 and len(history.val_loss) == 3
    history = fit(small_model(), mse, (inputs.numpy().astype(np.float64), targets.numpy().astype(np.float64)),
                  epochs=2, device=torch.device("cpu"), progress=False)
    assert len(history.train_loss) == 2


def test_val_loss_averages_over_examples_whatever_the_batch_size():
    model = small_model()
    val = square_problem(10, seed=2)
    expected = mse(model(val[0]), val[1]).item()
    history = fit(model, mse, square_problem(), val_data=val, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=1e-12),
                  batch_size=3, device="cpu", progress=False)
    assert history.val_loss[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("optimizer", sorted(TRAINING_OPTIMIZERS))
def test_fit_every_named_optimizer_trains(optimizer):
    history = fit(small_model(), mse, square_problem(), epochs=40, optimizer=optimizer, learning_rate=0.05,
                  weight_decay=1e-4, device="cpu", progress=False)
    assert history.train_loss[-1] < history.train_loss[0]


def test_fit_uses_a_ready_optimizer():
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(model, mse, square_problem(), epochs=30, optimizer=optimizer, device="cpu", progress=False)
    assert optimizer.state, "the optimizer we handed in took the steps"
    assert history.train_loss[-1] < history.train_loss[0]


def test_same_seed_gives_identical_histories_and_weights():
    runs = []
    for _ in range(2):
        model = small_model(seed=3)
        history = fit(model, mse, square_problem(40), val_data=square_problem(10, seed=1), epochs=5, batch_size=8,
                      learning_rate=0.01, seed=11, device="cpu", progress=False)
        runs.append((history, model))
    (first, first_model), (second, second_model) = runs
    assert first.train_loss == second.train_loss and first.val_loss == second.val_loss
    for a, b in zip(first_model.parameters(), second_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = fit(small_model(seed=3), mse, square_problem(40), epochs=5, batch_size=8, learning_rate=0.01, seed=12,
                device="cpu", progress=False)
    assert other.train_loss != first.train_loss, "another seed shuffles the batches differently"


def test_fit_shows_a_progress_bar_with_the_losses(capsys):
    fit(small_model(), mse, square_problem(), val_data=square_problem(8, seed=1), epochs=2, device="cpu", progress=True)
    shown = capsys.readouterr().err
    assert "train_loss=" in shown and "val_loss=" in shown and "2/2" in shown


# --- fit: early stopping, Ctrl-C, divergence --------------------------------------------------------


class ValLossSchedule(nn.Module):
    """A model whose val loss follows a fixed list, one value per epoch, so that early stopping is predictable."""

    def __init__(self, val_losses):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.val_losses = list(val_losses)
        self.evaluations = 0

    def forward(self, inputs):
        if self.training:
            return inputs * 0 + self.weight
        value = self.val_losses[self.evaluations]
        self.evaluations += 1
        with torch.no_grad():
            self.weight.fill_(float(self.evaluations))  # the weight records which epoch it belongs to
        return inputs * 0 + math.sqrt(value)  # mse against zero targets is then `value`


def test_early_stopping_stops_and_restores_the_best_weights():
    model = ValLossSchedule([5.0, 3.0, 1.0, 2.0, 4.0, 6.0, 0.5, 0.1, 0.1, 0.1])
    data = (torch.zeros(4, 1), torch.zeros(4, 1))
    history = fit(model, mse, data, val_data=data, epochs=10, optimizer="sgd", learning_rate=1e-9, patience=3,
                  device="cpu", progress=False)
    assert history.val_loss == pytest.approx([5.0, 3.0, 1.0, 2.0, 4.0, 6.0])
    assert history.best_epoch == 3 and history.epochs_run == 6 and history.stopped_early
    assert model.weight.item() == 3.0, "the weights of epoch 3, the best, are back"


def test_patience_that_never_runs_out_is_not_early_stopping():
    model = ValLossSchedule([3.0, 2.0, 1.0])
    data = (torch.zeros(4, 1), torch.zeros(4, 1))
    history = fit(model, mse, data, val_data=data, epochs=3, patience=2, device="cpu", progress=False)
    assert history.epochs_run == 3 and not history.stopped_early and history.best_epoch == 3


def test_real_training_with_early_stopping_ends_at_the_best_val_loss():
    model = small_model()
    train, val = square_problem(16), square_problem(16, seed=5)
    history = fit(model, mse, train, val_data=val, epochs=300, learning_rate=0.3, patience=2, device="cpu", progress=False)
    assert history.stopped_early and history.epochs_run < 300
    assert mse(model(val[0]), val[1]).item() == pytest.approx(min(history.val_loss), rel=1e-6)


class InterruptAt:
    """A loss that presses Ctrl-C on its call number ``at`` (counting from 0)."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def __call__(self, predictions, targets):
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.calls += 1
        return mse(predictions, targets)


def test_ctrl_c_returns_the_history_so_far():
    history = fit(small_model(), InterruptAt(7), square_problem(32), epochs=10, batch_size=16, device="cpu", progress=False)
    assert history.interrupted and len(history.train_loss) == 7
    assert history.epochs_run == 3 and not history.stopped_early


def test_divergence_names_the_step_and_keeps_the_history():
    model = small_model(activation="relu")
    inputs = torch.linspace(-3, 3, 32)[:, None]
    with pytest.raises(TrainingDivergedError, match=r"step \d+ .*smaller learning rate than 100") as error:
        fit(model, mse, (inputs, 100 * inputs**2), epochs=200, optimizer="sgd", learning_rate=100.0, device="cpu",
            progress=False)
    assert isinstance(error.value, FloatingPointError)
    assert error.value.step == len(error.value.history.train_loss) + 1
    assert f"step {error.value.step} " in str(error.value)
    assert all(math.isfinite(loss) for loss in error.value.history.train_loss)


def test_a_nan_loss_at_the_first_step_is_divergence_at_step_1():
    data = (torch.full((4, 1), float("nan")), torch.zeros(4, 1))
    with pytest.raises(TrainingDivergedError, match="at step 1 ") as error:
        fit(small_model(), mse, data, epochs=2, device="cpu", progress=False)
    assert error.value.step == 1 and error.value.history.train_loss == []


# --- fit: bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "message"), [
    ({"epochs": 0}, "epochs must be an integer >= 1; got 0"),
    ({"epochs": 2.5}, "epochs must be an integer >= 1; got 2.5"),
    ({"learning_rate": 0.0}, "learning_rate must be a finite number > 0; got 0.0"),
    ({"learning_rate": -0.1}, "learning_rate must be a finite number > 0; got -0.1"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0; got nan"),
    ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0; got -1.0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1 or None; got 0"),
    ({"patience": 0, "val_data": square_problem()}, "patience must be an integer >= 1 or None; got 0"),
    ({"patience": 3}, "patience=3 needs val_data"),
    ({"optimizer": "adagrad"}, "optimizer must be one of 'adam', 'adamw', 'sgd' or a torch.optim.Optimizer; got 'adagrad'"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_fit_names_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fit(small_model(), mse, square_problem(), progress=False, **{"device": "cpu", **arguments})


@pytest.mark.parametrize(("train_data", "message"), [
    ((torch.zeros(0, 1), torch.zeros(0, 1)), "train_data is empty"),
    ((torch.zeros(5, 1), torch.zeros(4, 1)), "train_data has 5 inputs but 4 targets"),
    ((torch.zeros(5, 1),), "train_data must be an (inputs, targets) pair or a DataLoader; got tuple"),
    (DataLoader(TensorDataset(torch.zeros(0, 1), torch.zeros(0, 1))), "train_data is empty"),
])
def test_fit_names_bad_data(train_data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fit(small_model(), mse, train_data, device="cpu", progress=False)


def test_fit_names_bad_val_data_batch_size_with_a_loader_and_a_non_scalar_loss():
    with pytest.raises(ValueError, match=re.escape("val_data has 3 inputs but 2 targets")):
        fit(small_model(), mse, square_problem(), val_data=(torch.zeros(3, 1), torch.zeros(2, 1)), device="cpu", progress=False)
    loader = DataLoader(TensorDataset(*square_problem()), batch_size=4)
    with pytest.raises(ValueError, match="a DataLoader sets its own batch size"):
        fit(small_model(), mse, loader, batch_size=4, device="cpu", progress=False)
    with pytest.raises(ValueError, match=re.escape("loss_fn must return one number (a 0-d tensor); got shape (32, 1)")):
        fit(small_model(), lambda p, t: (p - t) ** 2, square_problem(), device="cpu", progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got function"):
        fit(lambda x: x, mse, square_problem(), device="cpu", progress=False)
