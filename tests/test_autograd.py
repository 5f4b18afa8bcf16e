"""zero2gpt.autograd: a small reverse-mode autograd engine, checked against PyTorch (chapter 5)."""

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zero2gpt import checks, mlp
from zero2gpt.autograd import Tensor, tensor_activation, tensor_mlp_forward, tensor_parameters
from zero2gpt.regression import numerical_gradient


def gradients_of(build, *arrays, weights=None):
    """The value of ``build(*tensors)`` and the gradients its backward() leaves, for our Tensor and for torch.

    With ``weights``, the loss is (build(*tensors) * weights).sum() instead.
    """
    ours = [Tensor(array) for array in arrays]
    theirs = [torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=True) for array in arrays]
    our_out, their_out = build(*ours), build(*theirs)
    if weights is not None:
        our_out, their_out = (our_out * weights).sum(), (their_out * torch.tensor(weights)).sum()
    our_out.backward()
    their_out.backward()
    return (our_out.item(), [t.grad for t in ours]), (their_out.item(), [t.grad.numpy() for t in theirs])


def assert_same_gradients(build, *arrays, weights=None, rtol=1e-10):
    (our_value, our_grads), (their_value, their_grads) = gradients_of(build, *arrays, weights=weights)
    assert our_value == pytest.approx(their_value, rel=rtol, abs=1e-12)
    for ours, theirs in zip(our_grads, their_grads):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-12)


# --- every operation, against torch ------------------------------------------------------------------

RNG = np.random.default_rng(0)
MATRIX, OTHER, ROW = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=4)
POSITIVE = RNG.uniform(0.5, 2.0, size=(3, 4))

UNARY = {
    "tanh": lambda a: a.tanh(),
    "sin": lambda a: a.sin(),
    "sigmoid": lambda a: a.sigmoid(),
    "relu": lambda a: a.relu(),
    "exp": lambda a: a.exp(),
    "neg": lambda a: -a,
    "square": lambda a: a**2,
    "cube": lambda a: a**3,
    "sum": lambda a: a.sum(),
    "mean": lambda a: a.mean(),
    "sum axis 0": lambda a: a.sum(axis=0),
    "mean axis 1": lambda a: a.mean(axis=1),
    "sum both axes": lambda a: a.sum(axis=(0, 1)),
    "number minus": lambda a: 2.0 - a,
    "number over": lambda a: 1.0 / (a * a + 1.0),
    "times number": lambda a: 3.0 * a * 0.5,
}


@pytest.mark.parametrize("name", UNARY)
def test_each_unary_operation_matches_torch(name):
    # a random weighting of the outputs makes every entry of the gradient different
    weights = RNG.normal(size=UNARY[name](Tensor(MATRIX)).shape)
    assert_same_gradients(UNARY[name], MATRIX, weights=weights)


@pytest.mark.parametrize("name", ["log", "sqrt", "inverse"])
def test_operations_on_positive_numbers_match_torch(name):
    build = {"log": lambda a: a.log(), "sqrt": lambda a: a**0.5, "inverse": lambda a: a**-1}[name]
    assert_same_gradients(lambda a: (build(a) * a).sum(), POSITIVE)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
}


@pytest.mark.parametrize("name", BINARY)
def test_each_binary_operation_matches_torch(name):
    assert_same_gradients(lambda a, b: (BINARY[name](a, b) ** 2).sum(), MATRIX, OTHER)


def test_matmul_matches_torch():
    left, right = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 2))
    assert_same_gradients(lambda a, b: ((a @ b).tanh() ** 2).sum(), left, right)


def test_matmul_gradients_are_the_transposed_products():
    left, right = Tensor(RNG.normal(size=(3, 4))), Tensor(RNG.normal(size=(4, 2)))
    (left @ right).sum().backward()
    np.testing.assert_allclose(left.grad, np.ones((3, 2)) @ right.data.T)
    np.testing.assert_allclose(right.grad, left.data.T @ np.ones((3, 2)))


def test_numbers_and_arrays_work_on_either_side():
    x = Tensor([1.0, 2.0, 4.0])
    array = np.array([2.0, 2.0, 2.0])
    for result, expected in [
        (x + 1, [2, 3, 5]), (1 + x, [2, 3, 5]), (x - 1, [0, 1, 3]), (1 - x, [0, -1, -3]),
        (x * 2, [2, 4, 8]), (2 * x, [2, 4, 8]), (x / 2, [0.5, 1, 2]), (4 / x, [4, 2, 1]),
        (array * x, [2, 4, 8]), (array - x, [1, 0, -2]), (array / x, [2, 1, 0.5]), (-x, [-1, -2, -4]),
    ]:
        assert isinstance(result, Tensor)
        np.testing.assert_allclose(result.data, expected)
    product = np.ones((2, 3)) @ Tensor(np.ones((3, 1)))
    assert isinstance(product, Tensor) and product.shape == (2, 1)
    np.testing.assert_allclose(product.data, 3.0)


def test_relu_slope_at_zero_is_zero_like_torch():
    x = Tensor([-1.0, 0.0, 2.0])
    x.relu().sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


def test_sigmoid_does_not_overflow_and_its_slope_vanishes_far_out():
    x = Tensor([-1000.0, 0.0, 1000.0])
    with np.errstate(over="raise", invalid="raise"):
        y = x.sigmoid()
        y.sum().backward()
    assert y.data.tolist() == [0.0, 0.5, 1.0]
    assert x.grad.tolist() == [0.0, 0.25, 0.0]


# --- broadcasting, accumulation, zero_grad -----------------------------------------------------------


def test_the_gradient_of_a_broadcast_bias_is_summed_over_the_rows():
    inputs, weights, bias = Tensor(RNG.normal(size=(5, 3)), requires_grad=False), Tensor(RNG.normal(size=(3, 2))), Tensor(np.zeros(2))
    outputs = inputs @ weights + bias  # bias (2,) is added to each of the 5 rows
    (outputs * np.arange(10.0).reshape(5, 2)).sum().backward()
    assert bias.grad.shape == (2,)
    np.testing.assert_allclose(bias.grad, np.arange(10.0).reshape(5, 2).sum(axis=0))


@pytest.mark.parametrize("shape", [(), (1,), (4,), (1, 4), (3, 1), (1, 1)])
def test_broadcast_operands_get_gradients_of_their_own_shape(shape):
    small = RNG.normal(size=shape)
    assert_same_gradients(lambda a, b: ((a * b + b) ** 2).sum(), MATRIX, small)


def test_a_value_used_twice_gets_the_sum_of_both_gradients():
    x = Tensor(3.0)
    (x * x).backward()
    assert x.grad.item() == 6.0  # d(x^2)/dx = 2x, not x
    y = Tensor(2.0)
    z = y * 4.0
    (z + z * y).backward()  # z + z y = 4y + 4y^2: slope 4 + 8y = 20
    assert y.grad.item() == 20.0


def test_backward_adds_up_over_calls_until_zero_grad():
    x = Tensor([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
    x.zero_grad()
    assert x.grad.tolist() == [0.0, 0.0] and x.grad.shape == x.shape
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_a_second_backward_on_the_same_graph_adds_the_same_gradient_to_the_leaves():
    x = Tensor(2.0)
    square = x * x
    cube = square * x
    cube.backward()
    cube.backward()
    assert x.grad.item() == 24.0  # 2 * 3x^2
    assert square.grad.item() == 2.0  # computed tensors hold the latest pass's gradient: dcube/dsquare = x


def test_gradients_start_at_zero_and_constants_collect_none():
    x, constant = Tensor([[1.0, 2.0]]), Tensor([[5.0, 7.0]], requires_grad=False)
    assert x.grad.tolist() == [[0.0, 0.0]]
    (x * constant).sum().backward()
    assert x.grad.tolist() == [[5.0, 7.0]] and constant.grad.tolist() == [[0.0, 0.0]]


def test_a_long_chain_does_not_hit_the_recursion_limit():
    x = Tensor(1.0)
    total = x
    for _ in range(5000):
        total = total + x
    total.backward()
    assert x.grad.item() == 5001.0


# --- errors ------------------------------------------------------------------------------------------


def test_backward_on_a_non_scalar_names_its_shape():
    with pytest.raises(ValueError, match=re.escape("this tensor has shape (3, 4): reduce it first")):
        Tensor(MATRIX).tanh().backward()


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=re.escape("got shapes (3, 4) and (3, 4)")):
        Tensor(MATRIX) @ Tensor(OTHER)
    with pytest.raises(ValueError, match=re.escape("got shapes (4,) and (4, 2)")):
        Tensor(ROW) @ np.ones((4, 2))


@pytest.mark.parametrize("bad", ["1.5", None, [1.0, "a"], {"a": 1}, b"12"])
def test_bad_data_is_a_type_error(bad):
    with pytest.raises(TypeError, match="Tensor data must be numbers"):
        Tensor(bad)


def test_a_tensor_is_not_wrapped_twice():
    with pytest.raises(TypeError, match="got Tensor"):
        Tensor(Tensor(1.0))


def test_bad_operands_and_exponents_are_refused():
    x = Tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="Tensor data must be numbers"):
        x + "one"
    with pytest.raises(ValueError, match=re.escape("the exponent of ** must be a finite number; got Tensor(2.")):
        x ** Tensor(2.0)
    with pytest.raises(ValueError, match=re.escape("the exponent of ** must be a finite number; got True")):
        x ** True
    with pytest.raises(ValueError, match=re.escape("got nan")):
        x ** float("nan")


def test_shapes_that_do_not_broadcast_name_both_shapes():
    with pytest.raises(ValueError, match=re.escape("(3,)") + ".*" + re.escape("(4,)")):
        Tensor(np.ones(3)) + Tensor(np.ones(4))


# --- memory: sizes that would not fit are refused before anything is allocated ---------------------


def test_a_broadcast_view_too_large_for_memory_is_refused_up_front():
    huge = np.broadcast_to(0.0, (10**6, 10**6))  # no memory behind it yet; a copy would need 7.3 TiB
    with pytest.raises(ValueError, match=re.escape("a Tensor of shape (1000000, 1000000), with its gradient, would need")):
        Tensor(huge)


@pytest.mark.parametrize("operation", ["+", "*", "-", "/", "@"])
def test_an_operation_whose_result_would_not_fit_is_refused_up_front(operation):
    column, row = Tensor(np.ones((10**5, 1))), Tensor(np.ones((1, 10**5)))  # 800 kB each; their product 75 GiB
    build = {"+": lambda: column + row, "*": lambda: column * row, "-": lambda: column - row,
             "/": lambda: column / row, "@": lambda: column @ row}[operation]
    with pytest.raises(ValueError, match=re.escape("of shape (100000, 100000), with its gradient, would need 149.0 GiB")):
        build()


def test_sizes_just_under_the_limit_are_not_refused(monkeypatch):
    monkeypatch.setattr(checks, "MAX_ALLOCATION_BYTES", 2 * 8 * 6)  # room for a (2, 3) result and its gradient
    assert (Tensor(np.ones((2, 1))) + Tensor(np.ones((1, 3)))).shape == (2, 3)
    with pytest.raises(ValueError, match="would need"):
        Tensor(np.ones((2, 1))) * Tensor(np.ones((1, 4)))


def test_log_of_a_non_positive_number_is_an_error():
    with pytest.raises(ValueError, match="log needs positive numbers; got a smallest value of -1.0"):
        Tensor([2.0, -1.0, 0.5]).log()


def test_item_shape_and_repr():
    assert Tensor([[2.5]]).item() == 2.5 and isinstance(Tensor(2).item(), float)
    with pytest.raises(ValueError, match=re.escape("has shape (2,)")):
        Tensor([1.0, 2.0]).item()
    assert Tensor(np.zeros((2, 3))).shape == (2, 3)
    assert Tensor(np.arange(3)).data.dtype == np.float64
    assert repr(Tensor([1.0, 2.0]) * 2) == "Tensor([2., 4.], op='*')"
    assert repr(Tensor(1.5, requires_grad=False)) == "Tensor(1.5, requires_grad=False)"


def test_the_callers_array_is_copied():
    array = np.ones(3)
    x = Tensor(array)
    x.data += 1
    assert array.tolist() == [1.0, 1.0, 1.0]


# --- the network -------------------------------------------------------------------------------------

LAYERS = (2, 5, 4, 1)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "sine", "tanh"])
def test_tensor_mlp_forward_is_chapter_4s_network(activation):
    parameters = mlp.init_mlp(LAYERS, seed=1)
    inputs = RNG.normal(size=(7, 2))
    outputs = tensor_mlp_forward(tensor_parameters(parameters), inputs, activation)
    np.testing.assert_allclose(outputs.data, mlp.mlp_forward(parameters, inputs, activation), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "sine", "tanh"])
def test_backward_through_the_network_matches_numerical_gradients(activation):
    parameters = mlp.init_mlp(LAYERS, seed=2)
    inputs, targets = RNG.normal(size=(6, 2)), RNG.normal(size=(6, 1))
    tensors = tensor_parameters(parameters)
    loss = ((tensor_mlp_forward(tensors, Tensor(inputs, requires_grad=False), activation) - targets) ** 2).mean()
    loss.backward()
    ours = np.concatenate([np.concatenate([w.grad.ravel(), b.grad]) for w, b in tensors])
    loss_of = mlp.mlp_loss_for(LAYERS, inputs, targets, activation)
    flat = mlp.flatten_parameters(parameters)
    assert loss.item() == pytest.approx(loss_of(flat), rel=1e-12)
    np.testing.assert_allclose(ours, numerical_gradient(loss_of, flat), rtol=1e-5, atol=1e-8)


def test_tensor_parameters_copies_chapter_4s_arrays():
    parameters = mlp.init_mlp(LAYERS, seed=3)
    tensors = tensor_parameters(parameters)
    assert [(w.shape, b.shape) for w, b in tensors] == [(w.shape, b.shape) for w, b in parameters]
    tensors[0][0].data[:] = 0.0
    assert np.any(parameters[0][0] != 0.0)


@pytest.mark.parametrize("bad", [[], [(np.ones((2, 3)), np.ones(3)), (np.ones((4, 1)), np.ones(1))], [np.ones(3)]])
def test_tensor_parameters_rejects_what_chapter_4_rejects(bad):
    with pytest.raises(ValueError) as ours:
        tensor_parameters(bad)
    with pytest.raises(ValueError) as theirs:
        mlp.layer_sizes_of(bad)
    assert str(ours.value) == str(theirs.value)


def test_tensor_activation_names_chapter_4s_activations():
    z = Tensor([-1.0, 0.0, 2.0])
    for name in mlp.ACTIVATIONS:
        np.testing.assert_allclose(tensor_activation(name)(z).data, mlp.activation_function(name)(z.data))
    with pytest.raises(ValueError) as ours:
        tensor_activation("swish")
    with pytest.raises(ValueError) as theirs:
        mlp.activation_function("swish")
    assert str(ours.value) == str(theirs.value)


def test_tensor_mlp_forward_rejects_what_chapter_4_rejects():
    tensors = tensor_parameters(mlp.init_mlp(LAYERS, seed=4))
    with pytest.raises(ValueError) as ours:
        tensor_mlp_forward(tensors, np.zeros((3, 2)), "swish")
    with pytest.raises(ValueError) as theirs:
        mlp.activation_function("swish")
    assert str(ours.value) == str(theirs.value) and "'swish'" in str(ours.value)
    with pytest.raises(TypeError, match="tensor_parameters"):
        tensor_mlp_forward(mlp.init_mlp(LAYERS, seed=4), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=re.escape("inputs must have shape (n_samples, n_in); got shape (2,)")):
        tensor_mlp_forward(tensors, np.zeros(2))
    with pytest.raises(ValueError, match=re.escape("got shapes (3, 5) and (2, 5)")):
        tensor_mlp_forward(tensors, np.zeros((3, 5)))


# --- property: random graphs, against torch.autograd -------------------------------------------------

# Each operation works on our Tensor and on a torch tensor alike. Inputs of log, division and
# fractional powers go through x*x + 0.5, and of exp through sin, so every value stays finite.
def _positive(x):
    return x * x + 0.5


GRAPH_UNARY = {
    "tanh": lambda x: x.tanh(),
    "sin": lambda x: x.sin(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "exp": lambda x: x.sin().exp(),
    "log": lambda x: _positive(x).log(),
    "square": lambda x: x**2,
    "sqrt": lambda x: _positive(x) ** 0.5,
    "neg": lambda x: -x,
    "number minus": lambda x: 1.5 - x,
    "number over": lambda x: 2.0 / _positive(x),
}
GRAPH_BINARY = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / _positive(y),
}
REDUCTIONS = ["sum", "mean"]

# a step: (kind, operation name, index of the first operand, index of the second, axis choice)
steps = st.lists(
    st.tuples(st.sampled_from(["unary", "binary", "reduce", "matmul"]),
              st.integers(0, 10), st.integers(0, 50), st.integers(0, 50), st.integers(0, 3)),
    min_size=1, max_size=8,
)
leaf_shapes = st.lists(st.sampled_from(["full", "row", "column", "row 2-D", "scalar"]), min_size=1, max_size=3)


def build_graph(library, leaves, plan, extras):
    """Apply ``plan`` to ``leaves`` (Tensors or torch tensors) and return a scalar that uses every node."""
    nodes = list(leaves)
    for kind, op, first, second, axis in plan:
        x = nodes[first % len(nodes)]
        if kind == "unary":
            nodes.append(list(GRAPH_UNARY.values())[op % len(GRAPH_UNARY)](x))
        elif kind == "binary":
            fits = [y for y in nodes if _broadcasts(x.shape, y.shape)]  # x itself always fits: x op x
            nodes.append(list(GRAPH_BINARY.values())[op % len(GRAPH_BINARY)](x, fits[second % len(fits)]))
        elif kind == "reduce":
            axes = [None] + list(range(len(x.shape)))
            chosen = axes[axis % len(axes)]
            reduce = getattr(x, REDUCTIONS[op % 2])
            nodes.append(reduce() if chosen is None else reduce(axis=chosen))
        elif kind == "matmul" and len(x.shape) == 2:
            nodes.append(x @ library(extras[x.shape[1]]))
    total = None
    for index, node in enumerate(nodes):  # a random weighting of every node, so that each one matters
        weights = np.random.default_rng(index).normal(size=tuple(node.shape))
        term = (node * library(weights)).sum()
        total = term if total is None else total + term
    return total


def _broadcasts(shape_a, shape_b) -> bool:
    try:
        return np.broadcast_shapes(tuple(shape_a), tuple(shape_b)) == tuple(shape_a)
    except ValueError:
        return False


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 4), columns=st.integers(1, 4), shapes=leaf_shapes, plan=steps, seed=st.integers(0, 2**16))
def test_random_graphs_have_torchs_gradients(rows, columns, shapes, plan, seed):
    rng = np.random.default_rng(seed)
    shape_of = {"full": (rows, columns), "row": (columns,), "column": (rows, 1), "row 2-D": (1, columns), "scalar": ()}
    arrays = [rng.uniform(-2, 2, size=shape_of[name]) for name in shapes]
    extras = {size: rng.normal(size=(size, 3)) for size in range(1, 5)}  # right-hand sides for @

    ours = [Tensor(array) for array in arrays]
    theirs = [torch.tensor(array, requires_grad=True) for array in arrays]
    our_loss = build_graph(lambda a: Tensor(a, requires_grad=False), ours, plan, extras)
    their_loss = build_graph(torch.tensor, theirs, plan, extras)
    our_loss.backward()
    their_loss.backward()

    assert our_loss.item() == pytest.approx(their_loss.item(), rel=1e-10, abs=1e-12)
    for mine, reference in zip(ours, theirs):
        expected = reference.grad.numpy() if reference.grad is not None else np.zeros(mine.shape)
        assert mine.grad.shape == expected.shape
        np.testing.assert_allclose(mine.grad, expected, rtol=1e-9, atol=1e-11)
