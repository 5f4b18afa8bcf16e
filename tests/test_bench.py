"""``zero2gpt bench``: every figure is printed, torch.compile falls back cleanly, the formulas are right.

No timing is asserted here: speeds are the bench's output, not the tests'.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import pytest
import torch

from zero2gpt import bench
from zero2gpt.cli import main
from zero2gpt.gpt import GPT, gpt_parameter_count, gpt_preset

TINY = ["--shapes", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "2",
        "--repeats", "2", "--warmup", "1", "--tokens", "20", "--memory-batch", "2", "--device", "cpu"]


def _numbers(value):
    """Every number inside a JSON value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, (int, float)):
        return [value]
    items = value.values() if isinstance(value, dict) else value
    return [number for item in items for number in _numbers(item)]


@pytest.fixture(scope="module")
def tiny_json():
    """What ``zero2gpt bench --json`` prints for a tiny shape, parsed."""
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["bench", "--json", *TINY]) == 0
    return json.loads(printed.getvalue())


def test_bench_json_prints_every_figure(tiny_json):
    assert tiny_json["device"] == "cpu" and tiny_json["dtype"] == "float32"
    assert tiny_json["matmul_peak_flops"] > 0
    [row] = tiny_json["training"]
    assert row["label"] == "custom" and row["batch_size"] == 2 and row["n_layer"] == 1
    for key in ("ms_per_step", "tokens_per_second", "flops_per_token", "achieved_flops", "peak_fraction"):
        assert row[key] > 0, key
    generation = tiny_json["generation"]
    for key in ("cached_tokens_per_second", "recomputed_tokens_per_second", "cache_speedup"):
        assert generation[key] > 0, key
    assert generation["new_tokens"] == 20
    attention = tiny_json["attention"]
    for key in ("by_hand_ms", "sdpa_ms", "sdpa_speedup"):
        assert attention[key] > 0, key
    memory = tiny_json["memory"]
    assert memory["bytes"] > 0 and memory["method"] and memory["batch_size"] == 2
    assert set(memory["estimate"]) == {"weights", "gradients", "optimizer", "activations", "total"}
    assert {target["target"].split(" ")[1] for target in tiny_json["targets"]} >= {"key/value", "memory"}
    assert all(isinstance(target["met"], bool) for target in tiny_json["targets"])
    assert all(math.isfinite(number) for number in _numbers(tiny_json))


def test_bench_prints_a_table_with_the_targets(capsys):
    assert main(["bench", *TINY, "--memory-batch", "0"]) == 0
    table = capsys.readouterr().out
    for words in ("matmul peak (measured)", "tokens/s", "with the key/value cache", "scaled_dot_product_attention",
                  "targets (ratios measured in this run)"):
        assert words in table
    assert "peak memory" not in table, "--memory-batch 0 skips the memory measurement"


def test_compile_falls_back_to_eager_with_a_note_where_it_fails(monkeypatch):
    def broken_compile(model, *arguments, **options):
        raise RuntimeError("no compiler on this machine")

    monkeypatch.setattr(torch, "compile", broken_compile)
    notes = []
    config = gpt_preset("smoke", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=2)
    row = bench.measure_training(config, device="cpu", steps=1, warmup=0, compile=True, notes=notes)
    assert row["compiled"] is False and row["ms_per_step"] > 0
    assert len(notes) == 1 and "torch.compile is not available here" in notes[0] and "no compiler" in notes[0]


def test_bfloat16_is_refused_clearly_where_the_device_cannot(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *arguments, **options: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *arguments: "an old GPU")
    with pytest.raises(ValueError, match="bfloat16 is not supported on an old GPU"):
        bench._check_dtype(torch.device("cuda"), "bfloat16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        bench._check_dtype(torch.device("cpu"), "float16")


def test_the_flops_formula_counts_the_weights_that_multiply():
    config = gpt_preset("full")
    parameters = gpt_parameter_count(config.model_config(65))
    assert bench.matmul_parameters(config, 65) == parameters - config.block_size * config.n_embd
    expected = 6 * bench.matmul_parameters(config, 65) + 12 * config.n_layer * config.block_size * config.n_embd
    assert bench.training_flops_per_token(config, 65) == expected
    untied = gpt_preset("full", tie_weights=False)
    assert bench.matmul_parameters(untied, 65) == gpt_parameter_count(untied.model_config(65)) \
        - (untied.block_size + 65) * untied.n_embd


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_the_activation_estimate_counts_what_backward_keeps(dropout):
    """The estimate against the bytes autograd actually saves for backward, on a CPU."""
    config = gpt_preset("full", n_layer=2, block_size=64, batch_size=2, dropout=dropout)
    model = GPT(config.model_config(65)).train()
    saved = {}

    def keep(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    weights = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
    ids = torch.randint(65, (config.batch_size, config.block_size))
    from zero2gpt.language import language_model_loss

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        language_model_loss(model(ids), ids)
    kept = sum(size for pointer, size in saved.items() if pointer not in weights)
    estimate = bench.training_memory_estimate(config, 65, "cpu")["activations"]
    assert abs(kept / estimate - 1) < 0.03, (kept, estimate)
