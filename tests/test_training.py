"""zero2gpt.training: chapter 4's network in PyTorch, the book's training loop `train`, and `fit` on top (chapter 6)."""

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
    train,
    warmup_cosine,
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


# --- fit: the silent paths, now closed ---------------------------------------------------------------


def test_a_nan_val_loss_with_patience_is_an_error_naming_the_epoch():
    inputs, targets = square_problem(8)
    bad_val = (inputs, torch.full_like(targets, float("nan")))
    with pytest.raises(ValueError, match=re.escape("the val loss after epoch 1 is nan: early stopping cannot compare it")):
        fit(small_model(), mse, (inputs, targets), val_data=bad_val, epochs=5, patience=2, device="cpu", progress=False)


def test_a_nan_val_loss_without_patience_is_recorded_and_never_best():
    inputs, targets = square_problem(8)
    history = fit(small_model(), mse, (inputs, targets), val_data=(inputs, torch.full_like(targets, float("nan"))),
                  epochs=3, device="cpu", progress=False)
    assert len(history.val_loss) == 3 and all(math.isnan(loss) for loss in history.val_loss)
    assert history.best_epoch is None and history.best_step is None


def test_fit_refuses_a_seed_with_a_dataloader():
    loader = DataLoader(TensorDataset(*square_problem()), batch_size=4, shuffle=True)
    with pytest.raises(ValueError, match=re.escape("seed=3 shuffles (inputs, targets) data; a DataLoader shuffles itself")):
        fit(small_model(), mse, loader, seed=3, device="cpu", progress=False)


@pytest.mark.parametrize("setting", [{"learning_rate": 0.01}, {"weight_decay": 0.1}])
def test_fit_and_train_refuse_settings_a_ready_optimizer_would_ignore(setting):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    (name, value), = setting.items()
    message = f"{name}={value!r} would be ignored: a ready optimizer keeps its own settings"
    with pytest.raises(ValueError, match=re.escape(message)):
        fit(model, mse, square_problem(), optimizer=optimizer, device="cpu", progress=False, **setting)
    with pytest.raises(ValueError, match=re.escape(message)):
        train(model, mse, lambda: square_problem(), steps=2, optimizer=optimizer, device="cpu", progress=False, **setting)
    assert not optimizer.state, "nothing ran"


def test_fit_casts_float64_tensors_to_the_models_dtype():
    inputs, targets = square_problem()
    history = fit(small_model(), mse, (inputs.double(), targets.double()), val_data=(inputs.double(), targets.double()),
                  epochs=3, learning_rate=0.02, device="cpu", progress=False)
    reference = fit(small_model(), mse, (inputs, targets), val_data=(inputs, targets), epochs=3, learning_rate=0.02,
                    device="cpu", progress=False)
    assert history.train_loss == reference.train_loss and history.val_loss == reference.val_loss
    model64 = small_model().double()  # a float64 model gets float64 data, even from float32 tensors
    history64 = fit(model64, mse, (inputs, targets), epochs=2, device="cpu", progress=False)
    assert len(history64.train_loss) == 2 and next(model64.parameters()).dtype == torch.float64


def test_fit_names_an_empty_val_loader():
    empty = DataLoader(TensorDataset(torch.zeros(0, 1), torch.zeros(0, 1)), batch_size=4)
    with pytest.raises(ValueError, match=re.escape("val_data is empty: the DataLoader gives no batches")):
        fit(small_model(), mse, square_problem(), val_data=empty, device="cpu", progress=False)


def test_fit_refuses_a_missing_loss_fn_before_any_step():
    model = small_model()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    with pytest.raises(TypeError, match=re.escape("loss_fn must be a function (a callable); got None")):
        fit(model, None, square_problem(), device="cpu", progress=False)
    with pytest.raises(TypeError, match=re.escape("loss_fn must be a function (a callable); got None")):
        train(model, None, lambda: square_problem(), steps=3, device="cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fit_records_train_s_history_in_steps_and_epochs():
    inputs, targets = square_problem(30)
    history = fit(small_model(), mse, (inputs, targets), val_data=square_problem(10, seed=1), epochs=4, batch_size=8,
                  learning_rate=0.01, device="cpu", progress=False)
    assert history.eval_steps == [4, 8, 12, 16], "an evaluation after every epoch of 4 steps"
    assert history.learning_rates == [0.01] * 16 and history.log_steps == list(range(1, 17))
    assert len(history.grad_norms) == 16 and all(norm > 0 for norm in history.grad_norms)
    assert history.best_step == 4 * history.best_epoch


# --- train: steps of batches ---------------------------------------------------------------------------


def random_batches(inputs, targets, batch_size, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def next_batch():
        chosen = torch.randint(len(inputs), (batch_size,), generator=generator)
        return inputs[chosen], targets[chosen]

    return next_batch


def test_train_takes_a_fixed_number_of_steps_from_a_batch_function():
    model = small_model()
    history = train(model, mse, random_batches(*square_problem(64), 16), steps=120, learning_rate=0.02, log_every=7,
                    device="cpu", progress=False)
    assert isinstance(history, TrainingHistory)
    assert len(history.train_loss) == 120 and history.learning_rates == [0.02] * 120
    assert np.mean(history.train_loss[-10:]) < np.mean(history.train_loss[:10]) / 3
    assert history.log_steps == [7 * k for k in range(1, 18)] + [120], "read back every 7 steps and at the end"
    assert history.val_loss == [] and history.eval_steps == [] and history.best_step is None
    assert history.epochs_run == 0 and history.best_epoch is None
    assert not (history.stopped_early or history.interrupted) and history.seconds > 0
    assert not model.training, "train leaves the model in eval mode"


def test_train_matches_a_plain_loop_step_for_step():
    inputs, targets = square_problem(40)
    plain = small_model(seed=2)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=0.01, weight_decay=0.0)
    next_batch, losses = random_batches(inputs, targets, 8, seed=4), []
    for _ in range(30):
        batch_inputs, batch_targets = next_batch()
        loss = mse(plain(batch_inputs), batch_targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model = small_model(seed=2)
    history = train(model, mse, random_batches(inputs, targets, 8, seed=4), steps=30, learning_rate=0.01, log_every=4,
                    device="cpu", progress=False)
    assert history.train_loss == losses
    for a, b in zip(plain.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_periodic_evaluation_happens_at_exact_steps_and_averages_eval_batches():
    val_batches = [square_problem(5, seed=seed) for seed in (1, 2, 3)]
    calls = []

    def val_batch():
        calls.append(len(calls))
        return val_batches[len(calls) % 3 - 1]

    model = small_model()
    history = train(model, mse, random_batches(*square_problem(), 8), steps=10, val_batch=val_batch, eval_every=3,
                    eval_batches=3, log_every=100, device="cpu", progress=False)
    assert history.eval_steps == [3, 6, 9, 10], "every 3 steps, and after the last"
    assert len(history.val_loss) == 4 and len(calls) == 4 * 3
    with torch.no_grad():  # the last evaluation saw the final weights
        expected = np.mean([mse(model(inputs), targets).item() for inputs, targets in val_batches])
    assert history.val_loss[-1] == pytest.approx(expected, rel=1e-6)
    assert 10 in history.log_steps and {3, 6, 9} <= set(history.log_steps), "evaluations read the losses back too"
    assert history.val_loss[history.eval_steps.index(history.best_step)] == min(history.val_loss)


def test_without_eval_every_train_evaluates_only_after_the_last_step():
    history = train(small_model(), mse, lambda: square_problem(), steps=7, val_batch=lambda: square_problem(6, seed=1),
                    device="cpu", progress=False)
    assert history.eval_steps == [7] and len(history.val_loss) == 1 and history.best_step == 7


def test_evaluate_runs_in_eval_mode_without_gradients():
    seen = []

    def evaluate(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return 0.5

    history = train(small_model(), mse, lambda: square_problem(), steps=4, evaluate=evaluate, eval_every=2,
                    device="cpu", progress=False)
    assert seen == [(False, False), (False, False)] and history.val_loss == [0.5, 0.5] and history.eval_steps == [2, 4]


def test_the_learning_rates_follow_warmup_cosine_and_are_applied():
    schedule = warmup_cosine(warmup_steps=4, total_steps=20, min_ratio=0.1)
    model = nn.Linear(1, 1)
    applied = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            applied.append(self.param_groups[0]["lr"])
            return super().step(closure)

    history = train(model, mse, lambda: square_problem(), steps=20, optimizer=RecordingSGD(model.parameters(), lr=0.5),
                    lr_schedule=schedule, device="cpu", progress=False)
    expected = [0.5 * schedule(step) for step in range(20)]
    assert history.learning_rates == expected and applied == expected
    named = train(nn.Linear(1, 1), mse, lambda: square_problem(), steps=20, learning_rate=0.5, lr_schedule=schedule,
                  device="cpu", progress=False)
    assert named.learning_rates == expected


def test_warmup_cosine_warms_up_then_decays_to_min_ratio():
    schedule = warmup_cosine(warmup_steps=10, total_steps=110, min_ratio=0.2)
    assert [schedule(step) for step in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.6), "halfway through the decay: halfway between 1 and min_ratio"
    assert schedule(110) == pytest.approx(0.2) and schedule(10_000) == pytest.approx(0.2)
    decay = [schedule(step) for step in range(10, 111)]
    assert all(later <= earlier for earlier, later in zip(decay, decay[1:]))
    no_warmup = warmup_cosine(0, 5, min_ratio=0.0)
    assert no_warmup(0) == 1.0 and no_warmup(5) == 0.0
    assert warmup_cosine(5, 5)(4) == 1.0 and warmup_cosine(5, 5)(5) == 0.1


@pytest.mark.parametrize(("arguments", "message"), [
    ((-1, 10), "warmup_steps must be an integer >= 0 and <= 10; got -1"),
    ((11, 10), "warmup_steps must be an integer >= 0 and <= 10; got 11"),
    ((0, 0), "total_steps must be an integer >= 1; got 0"),
    ((1, 10, 1.5), "min_ratio must be a finite number >= 0 and <= 1; got 1.5"),
    ((1, 10, float("nan")), "min_ratio must be a finite number >= 0 and <= 1; got nan"),
])
def test_warmup_cosine_names_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        warmup_cosine(*arguments)


def test_a_schedule_refuses_a_negative_step_and_train_a_bad_multiplier():
    with pytest.raises(ValueError, match=re.escape("step must be an integer >= 0; got -1")):
        warmup_cosine(2, 10)(-1)
    with pytest.raises(ValueError, match=re.escape("lr_schedule(3) must be a finite number >= 0; got nan")):
        train(small_model(), mse, lambda: square_problem(), steps=5, lr_schedule=lambda step: float("nan") if step == 3 else 1.0,
              device="cpu", progress=False)


class RecordingNormSGD(torch.optim.SGD):
    """SGD that records the gradients' global norm as the step sees it (after any clipping)."""

    def __init__(self, parameters, **settings):
        super().__init__(parameters, **settings)
        self.norms = []

    def step(self, closure=None):
        gradients = [parameter.grad for group in self.param_groups for parameter in group["params"]]
        self.norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients])).item())
        return super().step(closure)


def test_grad_clip_caps_the_norm_and_the_history_records_it_before_clipping():
    inputs, targets = square_problem()
    model = small_model()
    unclipped = nn.utils.parameters_to_vector(torch.autograd.grad(mse(model(inputs), targets), list(model.parameters())))
    optimizer = RecordingNormSGD(model.parameters(), lr=0.01)
    history = train(model, mse, lambda: (inputs, 10 * targets), steps=6, optimizer=optimizer, grad_clip=0.05, log_every=1,
                    device="cpu", progress=False)
    assert all(norm <= 0.05 * (1 + 1e-5) for norm in optimizer.norms), "every step saw a clipped gradient"
    assert all(norm > 0.05 for norm in history.grad_norms), "and the history shows the norms before clipping"
    assert history.log_steps == [1, 2, 3, 4, 5, 6] and len(history.grad_norms) == 6
    assert unclipped.norm().item() > 0  # the model had a gradient to clip

    model = small_model()
    optimizer = RecordingNormSGD(model.parameters(), lr=0.01)
    history = train(model, mse, lambda: (inputs, targets), steps=6, optimizer=optimizer, log_every=1, device="cpu",
                    progress=False)
    assert history.grad_norms == pytest.approx(optimizer.norms, rel=1e-5), "without clipping, the norms the steps used"


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_two_accumulated_half_batches_make_the_same_step_as_one_full_batch(optimizer):
    inputs, targets = square_problem(16)
    halves = [(inputs[:8], targets[:8]), (inputs[8:], targets[8:])]
    calls = []

    def half_batch():
        calls.append(None)
        return halves[(len(calls) - 1) % 2]

    full, accumulated = small_model(seed=5), small_model(seed=5)
    full_history = train(full, mse, lambda: (inputs, targets), steps=5, optimizer=optimizer, learning_rate=0.05,
                         device="cpu", progress=False)
    accumulated_history = train(accumulated, mse, half_batch, steps=5, accumulate=2, optimizer=optimizer, learning_rate=0.05,
                                device="cpu", progress=False)
    assert len(calls) == 10 and len(accumulated_history.train_loss) == 5
    assert accumulated_history.train_loss == pytest.approx(full_history.train_loss, rel=1e-5)
    for a, b in zip(full.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_autocast_runs_on_the_cpu():
    history = train(small_model(), mse, random_batches(*square_problem(64), 16), steps=40, learning_rate=0.02,
                    autocast_dtype=torch.bfloat16, val_batch=lambda: square_problem(16, seed=1), device="cpu", progress=False)
    assert len(history.train_loss) == 40 and all(math.isfinite(loss) for loss in history.train_loss + history.val_loss)
    assert np.mean(history.train_loss[-5:]) < np.mean(history.train_loss[:5])


def test_keep_best_restores_the_weights_of_the_best_evaluation():
    model = ValLossSchedule([5.0, 3.0, 1.0, 2.0, 4.0])
    zeros = (torch.zeros(4, 1), torch.zeros(4, 1))
    history = train(model, mse, lambda: zeros, steps=10, val_batch=lambda: zeros, eval_every=2, keep_best=True,
                    optimizer="sgd", learning_rate=1e-9, device="cpu", progress=False)
    assert history.val_loss == pytest.approx([5.0, 3.0, 1.0, 2.0, 4.0]) and history.eval_steps == [2, 4, 6, 8, 10]
    assert history.best_step == 6 and model.weight.item() == 3.0, "the weights of the third evaluation are back"


def test_keep_best_refuses_a_nan_val_loss_naming_the_step():
    zeros = (torch.zeros(4, 1), torch.zeros(4, 1))
    with pytest.raises(ValueError, match=re.escape("the val loss at step 2 is nan: keep_best cannot compare it")):
        train(small_model(), mse, lambda: zeros, steps=6, val_batch=lambda: (zeros[0], zeros[1] * float("nan")),
              eval_every=2, keep_best=True, device="cpu", progress=False)


def test_on_eval_sees_each_evaluation_and_can_stop_training():
    seen = []

    def on_eval(step, history):
        seen.append((step, list(history.eval_steps), len(history.train_loss)))
        return step == 6

    history = train(small_model(), mse, lambda: square_problem(), steps=20, val_batch=lambda: square_problem(8, seed=1),
                    eval_every=3, on_eval=on_eval, log_every=5, device="cpu", progress=False)
    assert seen == [(3, [3], 3), (6, [3, 6], 6)]
    assert history.stopped_early and len(history.train_loss) == 6 and len(history.learning_rates) == 6
    last = train(small_model(), mse, lambda: square_problem(), steps=6, val_batch=lambda: square_problem(8, seed=1),
                 eval_every=3, on_eval=lambda step, history: True if step == 6 else None, device="cpu", progress=False)
    assert not last.stopped_early, "a stop at the last step is no early stop"


class BatchesUntilCtrlC:
    """A next_batch that returns ``batch`` until its call number ``at`` (from 1), which presses Ctrl-C."""

    def __init__(self, batch, at):
        self.batch, self.at, self.calls = batch, at, 0

    def __call__(self):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.batch


@pytest.mark.parametrize("log_every", [1, 4, 100])
def test_ctrl_c_in_next_batch_returns_the_finished_steps(log_every):
    model = small_model()
    history = train(model, mse, BatchesUntilCtrlC(square_problem(), at=7), steps=50, log_every=log_every, device="cpu",
                    progress=False)
    assert history.interrupted and len(history.train_loss) == 6 and len(history.learning_rates) == 6
    assert all(math.isfinite(loss) for loss in history.train_loss) and not model.training


def test_ctrl_c_with_keep_best_restores_the_best_weights():
    model = ValLossSchedule([2.0, 1.0, 3.0])
    zeros = (torch.zeros(4, 1), torch.zeros(4, 1))
    history = train(model, mse, BatchesUntilCtrlC(zeros, at=8), steps=10, val_batch=lambda: zeros, eval_every=2,
                    keep_best=True, optimizer="sgd", learning_rate=1e-9, device="cpu", progress=False)
    assert history.interrupted and history.eval_steps == [2, 4, 6] and history.best_step == 4
    assert model.weight.item() == 2.0


def test_divergence_names_the_first_bad_step_even_when_read_back_late():
    inputs, targets = square_problem(8)
    calls = []

    def next_batch():
        calls.append(None)
        return (torch.full_like(inputs, float("nan")) if len(calls) == 7 else inputs), targets

    with pytest.raises(TrainingDivergedError, match=re.escape("training diverged at step 7 of 20: the loss is nan")) as error:
        train(small_model(), mse, next_batch, steps=20, log_every=5, device="cpu", progress=False)
    assert error.value.step == 7 and len(calls) == 10, "noticed at the read-back after step 10"
    history = error.value.history
    assert len(history.train_loss) == 6 and len(history.learning_rates) == 6 and history.log_steps == [5]
    assert "smaller learning rate than 0.001" in str(error.value) and "grad_clip" in str(error.value)


class KeywordModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x, scale):
        return self.linear(x) * scale


def test_dict_batches_give_targets_to_the_loss_and_the_rest_to_the_model():
    inputs, targets = square_problem()
    torch.manual_seed(0)
    model = KeywordModel()
    with torch.no_grad():
        first_loss = mse(model(inputs, 2.0), targets).item()
    batch = {"x": inputs, "scale": torch.tensor(2.0), "targets": targets}
    history = train(model, mse, lambda: batch, steps=30, learning_rate=0.05, val_batch=lambda: batch, device="cpu",
                    progress=False)
    assert history.train_loss[0] == pytest.approx(first_loss, rel=1e-6)
    assert history.train_loss[-1] < history.train_loss[0]


def test_train_casts_floating_batches_to_the_models_dtype():
    inputs, targets = square_problem()
    history = train(small_model(), mse, lambda: (inputs.double(), targets.double()), steps=3, device="cpu", progress=False)
    reference = train(small_model(), mse, lambda: (inputs, targets), steps=3, device="cpu", progress=False)
    assert history.train_loss == reference.train_loss


@pytest.mark.parametrize(("batch", "source", "described"), [
    ((torch.zeros(2, 1),) * 3, "next_batch", "a tuple of 3 item(s)"),
    ({"inputs": torch.zeros(2, 1)}, "next_batch", "a dict with keys ['inputs']"),
    (None, "next_batch", "None"),
    (torch.zeros(2, 1), "next_batch", "a Tensor"),
])
def test_a_malformed_batch_is_named(batch, source, described):
    message = f'{source}() must return (inputs, targets) or a dict with a "targets" key; got {described}'
    with pytest.raises(ValueError, match=re.escape(message)):
        train(small_model(), mse, lambda: batch, steps=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match=re.escape(message.replace("next_batch", "val_batch"))):
        train(small_model(), mse, lambda: square_problem(), steps=2, val_batch=lambda: batch, device="cpu", progress=False)


def test_next_batch_that_runs_out_is_named():
    batches = iter([square_problem()] * 3)
    with pytest.raises(ValueError, match=re.escape("next_batch() ran out of batches at step 4")):
        train(small_model(), mse, lambda: next(batches), steps=5, device="cpu", progress=False)


def test_a_seed_makes_dropout_repeatable():
    def run(seed):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 1))
        torch.manual_seed(1234)  # whatever the state before, the seed decides
        return train(model, mse, lambda: square_problem(), steps=10, seed=seed, device="cpu", progress=False).train_loss

    assert run(7) == run(7) and run(7) != run(8)


def test_train_shows_a_progress_bar_counting_steps_with_the_losses(capsys):
    train(small_model(), mse, lambda: square_problem(), steps=5, val_batch=lambda: square_problem(8, seed=1), device="cpu",
          progress=True)
    shown = capsys.readouterr().err
    assert "train_loss=" in shown and "val_loss=" in shown and "5/5" in shown


@pytest.mark.parametrize(("arguments", "error", "message"), [
    ({"steps": 0}, ValueError, "steps must be an integer >= 1; got 0"),
    ({"steps": 2.0}, ValueError, "steps must be an integer >= 1; got 2.0"),
    ({"steps": 10**12}, ValueError, "steps=1,000,000,000,000 (a loss and a learning rate kept per step) would need"),
    ({"eval_batches": 0, "val_batch": square_problem}, ValueError, "eval_batches must be an integer >= 1; got 0"),
    ({"accumulate": 0}, ValueError, "accumulate must be an integer >= 1; got 0"),
    ({"log_every": 0}, ValueError, "log_every must be an integer >= 1; got 0"),
    ({"eval_every": 0, "val_batch": square_problem}, ValueError, "eval_every must be an integer >= 1 or None; got 0"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number > 0; got 0.0"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate must be a finite number > 0; got -1.0"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate must be a finite number > 0; got nan"),
    ({"weight_decay": -0.5}, ValueError, "weight_decay must be a finite number >= 0; got -0.5"),
    ({"grad_clip": 0.0}, ValueError, "grad_clip must be a finite number > 0 or None; got 0.0"),
    ({"grad_clip": float("inf")}, ValueError, "grad_clip must be a finite number > 0 or None; got inf"),
    ({"seed": -1}, ValueError, "seed must be an integer from 0 to 2**32 - 1 or None; got -1"),
    ({"optimizer": "adagrad"}, ValueError, "optimizer must be one of 'adam', 'adamw', 'sgd' or a torch.optim.Optimizer; got 'adagrad'"),
    ({"autocast_dtype": torch.float16}, ValueError, "autocast_dtype must be None or torch.bfloat16; got torch.float16 (float16 would need a gradient scaler"),
    ({"keep_best": True}, ValueError, "keep_best=True needs val_batch (or evaluate)"),
    ({"eval_every": 5}, ValueError, "eval_every=5 needs val_batch (or evaluate)"),
    ({"on_eval": lambda step, history: None}, ValueError, "on_eval needs val_batch (or evaluate)"),
    ({"val_batch": square_problem, "evaluate": lambda model: 0.0}, ValueError, "give val_batch or evaluate, not both"),
    ({"evaluate": lambda model: 0.0, "eval_batches": 2}, ValueError, "eval_batches=2 applies to val_batch"),
    ({"val_batch": 3}, TypeError, "val_batch must be a function (a callable) or None; got 3"),
    ({"lr_schedule": "cosine"}, TypeError, "lr_schedule must be a function (a callable) or None; got 'cosine'"),
    ({"on_eval": True}, TypeError, "on_eval must be a function (a callable) or None; got True"),
    ({"evaluate": 1.0}, TypeError, "evaluate must be a function (a callable) or None; got 1.0"),
    ({"device": "tpu"}, ValueError, "device must be one of"),
])
def test_train_names_bad_arguments(arguments, error, message):
    model = small_model()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    with pytest.raises(error, match=re.escape(message)):
        train(model, mse, lambda: square_problem(), progress=False, **{"steps": 3, "device": "cpu", **arguments})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "refused before any step"


def test_train_names_a_bad_model_next_batch_and_loss():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got function"):
        train(lambda x: x, mse, lambda: square_problem(), steps=2, device="cpu", progress=False)
    with pytest.raises(TypeError, match=re.escape("next_batch must be a function (a callable); got (")):
        train(small_model(), mse, square_problem(), steps=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match=re.escape("loss_fn must return one number (a 0-d tensor); got shape (32, 1)")):
        train(small_model(), lambda p, t: (p - t) ** 2, lambda: square_problem(), steps=2, device="cpu", progress=False)
    with pytest.raises(ValueError, match=re.escape("loss_fn must return one number (a 0-d tensor); got a float")):
        train(small_model(), lambda p, t: 1.0, lambda: square_problem(), steps=2, device="cpu", progress=False)


def test_build_mlp_refuses_a_network_too_large_for_memory_before_allocating():
    with pytest.raises(ValueError, match=r"layer_sizes=\(1, 100000, 100000, 1\) \(10,000,400,001 parameters\) would need 37\.3 GiB"):
        build_mlp((1, 100_000, 100_000, 1))
