"""How fast the library's GPT trains and writes on this machine, and how much memory training takes.

Hand-written, not generated: measuring is plumbing around chapters 12 and 13. ``zero2gpt bench`` prints what
``run_bench`` returns; the book's Performance page calls the same functions.

Speeds depend on the machine, so every target is a *ratio* measured in one run: training's achieved FLOP/s
against this device's own dense matmul peak (measured here with one large ``torch.matmul``), writing with the
key/value cache against writing without it, measured memory against the analytic estimate. The formulas:

- FLOPs per token trained: ``6 N + 12 L T C`` (Kaplan et al. 2020, section 2.1; the PaLM paper, appendix B):
  2 FLOPs per weight for the forward pass (a multiply and an add), 4 for the backward pass (the gradient of the
  input and of the weight), over the ``N`` weights that multiply (not the position table, a lookup); plus the
  attention scores and their mixing, ``4 T C`` per layer forward and twice that backward, for ``L`` layers of
  width ``C`` over a context of ``T`` tokens (counted whole, as the causal half is not skipped by the kernels).
- Memory to train: 16 bytes per parameter (float32 weights, gradients, and Adam's two moments) plus the
  activations that backward needs, ``training_memory_estimate`` (the Performance page derives it).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import math
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from zero2gpt.checks import check_choice, check_integer
from zero2gpt.runtime import device as runtime_device

if TYPE_CHECKING:  # for the hints alone: the command imports the chapters' modules only when it runs them
    from zero2gpt.gpt import GPTTrainingConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# The targets of issue 14, each checked on the device the bench runs on.
TARGET_PEAK_FRACTION = 0.45  # training the laptop shape sustains this share of the matmul peak
TARGET_CACHE_SPEEDUP = 5.0  # writing 500 tokens with the key/value cache, against recomputing, at block 256
TARGET_MEMORY_RATIO = 1.5  # measured peak memory within this factor of the estimate (either way)
GENERATION_TOKENS = 500
MEMORY_BATCH = 64  # the full shape's published batch


@dataclass
class BenchSettings:
    """What ``run_bench`` measures. ``shapes`` are (label, training config) rows, each trained for ``warmup``
    then ``steps`` timed steps; generation writes ``new_tokens`` with ``generation_config``'s shape; memory is
    measured for ``memory_config`` (None: not measured) over ``memory_steps`` steps."""

    shapes: list[tuple[str, GPTTrainingConfig]]
    generation_config: GPTTrainingConfig
    memory_config: GPTTrainingConfig | None
    vocab_size: int = 65
    steps: int = 10
    warmup: int = 2
    new_tokens: int = GENERATION_TOKENS
    memory_steps: int = 2
    device: str | None = None
    dtype: str = "float32"
    compile: bool = False


@dataclass
class BenchResult:
    """Everything ``run_bench`` measured, as plain numbers and strings (``as_dict`` for JSON)."""

    device: str
    dtype: str
    matmul_peak_flops: float
    training: list[dict] = field(default_factory=list)
    generation: dict = field(default_factory=dict)
    attention: dict = field(default_factory=dict)
    memory: dict | None = None
    targets: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # how long the whole bench took

    def as_dict(self) -> dict:
        """The result as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def default_settings(device: str | None = None) -> BenchSettings:
    """The bench's default rows for ``device``: the laptop shape at its own batch and at 4 times it, the full
    shape at 64 on a GPU and at 4 elsewhere (where 64 would take minutes a step), generation and attention
    with the full shape (a context of 256), and the full shape's memory at batch 64."""
    from zero2gpt.gpt import gpt_preset

    on_gpu = runtime_device(device).type == "cuda"
    laptop = gpt_preset("laptop")
    return BenchSettings(
        shapes=[("laptop", laptop), ("laptop", gpt_preset("laptop", batch_size=4 * laptop.batch_size)),
                ("full", gpt_preset("full", batch_size=64 if on_gpu else 4))],
        generation_config=gpt_preset("full"), memory_config=gpt_preset("full", batch_size=MEMORY_BATCH),
        device=device)


def matmul_parameters(config: GPTTrainingConfig, vocab_size: int) -> int:
    """The parameters of ``config``'s GPT that multiply a token's vector: all but the lookup tables (the
    position table, and the token table unless it is tied to the output layer, which multiplies)."""
    from zero2gpt.gpt import gpt_parameter_count

    shape = config.model_config(vocab_size)
    lookups = shape.block_size * shape.n_embd + (0 if shape.tie_weights else vocab_size * shape.n_embd)
    return gpt_parameter_count(shape) - lookups


def training_flops_per_token(config: GPTTrainingConfig, vocab_size: int) -> float:
    """FLOPs to train on one token: 6 N + 12 L T C (Kaplan et al. 2020; PaLM, appendix B)."""
    attention = 12 * config.n_layer * config.block_size * config.n_embd
    return float(6 * matmul_parameters(config, vocab_size) + attention)


def training_memory_estimate(config: GPTTrainingConfig, vocab_size: int, device_type: str = "cpu",
                             dtype: str = "float32") -> dict[str, float]:
    """Bytes to train ``config`` (at its batch_size) with AdamW: weights, gradients, Adam's two moments, and the
    activations kept for backward, as the Performance page derives them; and their ``total``.

    Per token, each block keeps 16 C numbers (its input and LayerNorms' outputs, 2 C each; queries, keys and
    values, 3 C; attention's output, C; the feed-forward's 4 C before and after GELU); the end keeps 2 C + V.
    Dropout adds its masks (C per block on a CPU, which keeps them as float32), and on a CPU, where attention
    with dropout falls back to the unfused form, 3 H T numbers: the attention weights, their dropout mask and
    the dropped weights (that form keeps its own copies of queries, keys and values, 3 C, in place of the 3 C
    above, for any batch of more than one).
    """
    from zero2gpt.gpt import gpt_parameter_count

    shape = config.model_config(vocab_size)
    width, layers, heads, context = shape.n_embd, shape.n_layer, shape.n_head, shape.block_size
    parameters = gpt_parameter_count(shape)
    per_block = 16 * width
    ending = 2 * width + vocab_size
    if shape.dropout > 0:
        if device_type == "cpu":
            per_block += 2 * width + 3 * heads * context  # two masks; the unfused attention's T x T tensors
            ending += width  # the embedding's dropout mask
        else:
            per_block += width // 2  # two boolean masks of C bytes each, in units of 4 bytes
            ending += width // 4
    activation_bytes = 2 if dtype == "bfloat16" else 4  # under bfloat16 autocast, most kept tensors are 2 bytes
    tokens = config.batch_size * context
    estimate = {"weights": 4.0 * parameters, "gradients": 4.0 * parameters, "optimizer": 8.0 * parameters,
                "activations": float(activation_bytes * tokens * (layers * per_block + ending))}
    estimate["total"] = sum(estimate.values())
    return estimate


def _synchronize(place: torch.device) -> None:
    if place.type == "cuda":
        torch.cuda.synchronize(place)
    elif place.type == "mps":
        torch.mps.synchronize()


def _timed(function: Callable[[], object], place: torch.device, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``function``, the device finished before and after each."""
    seconds = []
    for _ in range(repeats):
        _synchronize(place)
        started = time.perf_counter()
        function()
        _synchronize(place)
        seconds.append(time.perf_counter() - started)
    return seconds


def matmul_peak_flops(device: str | torch.device | None = None, dtype: str = "float32", size: int | None = None,
                      seconds: float = 0.5) -> float:
    """This device's dense matmul speed, FLOP/s: the best of repeated ``size`` x ``size`` products (default 2048
    on a CPU, 8192 on a GPU) over about ``seconds``."""
    place = runtime_device(None if device is None else str(device))
    size = size or (8192 if place.type == "cuda" else 2048)
    first = torch.randn(size, size, device=place, dtype=DTYPES[dtype])
    second = torch.randn(size, size, device=place, dtype=DTYPES[dtype])
    best, spent = math.inf, 0.0
    while spent < seconds or best == math.inf:
        took = _timed(lambda: first @ second, place, 1)[0]
        best, spent = min(best, took), spent + took
    return 2 * size**3 / best


def _autocast(place: torch.device, dtype: str):
    return torch.autocast(place.type, dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()


def _check_dtype(place: torch.device, dtype: str) -> None:
    check_choice("dtype", dtype, DTYPES)
    if dtype == "bfloat16" and (place.type == "mps" or (place.type == "cuda" and not torch.cuda.is_bf16_supported())):
        name = torch.cuda.get_device_name(place) if place.type == "cuda" else "mps"
        raise ValueError(f"dtype bfloat16 is not supported on {name}: use --dtype float32")


def measure_training(config: GPTTrainingConfig, vocab_size: int = 65, *, device: str | torch.device | None = None,
                     steps: int = 10, warmup: int = 2, dtype: str = "float32", compile: bool = False,
                     notes: list[str] | None = None) -> dict:
    """Train a new GPT of ``config``'s shape at its batch_size with the library's loop (zero2gpt.training.train,
    the optimizer of gpt_optimizer, gradient clipping as train_gpt does), on one batch of random ids kept on the
    device; time ``steps`` steps after ``warmup``. Tokens per second (from the median step), ms per step, model
    FLOPs per token and achieved FLOP/s. ``compile`` tries torch.compile and falls back to eager, with a line in
    ``notes``, where it fails."""
    from zero2gpt.gpt import GPT, gpt_optimizer
    from zero2gpt.language import language_model_loss
    from zero2gpt.training import train

    place = runtime_device(None if device is None else str(device))
    _check_dtype(place, dtype)
    check_integer("steps", steps, minimum=1)
    check_integer("warmup", warmup, minimum=0)
    torch.manual_seed(0)
    inputs = torch.randint(vocab_size, (config.batch_size, config.block_size), device=place)
    targets = torch.randint(vocab_size, (config.batch_size, config.block_size), device=place)

    def run(use_compile: bool) -> list[float]:
        model = GPT(config.model_config(vocab_size)).to(place)
        optimizer = gpt_optimizer(model, config.learning_rate, config.weight_decay, place)
        stamps = []

        def next_batch():  # called once per step: the time between two calls is one step
            _synchronize(place)
            stamps.append(time.perf_counter())
            return inputs, targets

        trained = torch.compile(model) if use_compile else model
        train(trained, language_model_loss, next_batch, steps=warmup + steps + 1, optimizer=optimizer,
              grad_clip=config.grad_clip, autocast_dtype=DTYPES[dtype] if dtype == "bfloat16" else None,
              log_every=warmup + steps + 1, device=place, progress=False)
        return [later - earlier for earlier, later in zip(stamps[warmup:], stamps[warmup + 1:])]

    compiled = compile
    if compile:
        try:
            seconds = run(True)
        except Exception as error:  # torch.compile fails in many ways (no compiler, an unsupported platform)
            compiled = False
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            if notes is not None:
                notes.append(f"torch.compile is not available here ({type(error).__name__}: {reason}); "
                             "measured without it")
    if not compiled:
        seconds = run(False)
    step = statistics.median(seconds)
    tokens = config.batch_size * config.block_size
    flops = training_flops_per_token(config, vocab_size)
    return {"n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd,
            "block_size": config.block_size, "batch_size": config.batch_size, "dropout": config.dropout,
            "compiled": compiled, "ms_per_step": 1e3 * step, "tokens_per_second": tokens / step,
            "flops_per_token": flops, "achieved_flops": flops * tokens / step}


def _malloc_trim() -> None:
    """Give freed heap memory back to the system (glibc), so that a later rise of the RSS is new memory."""
    library = ctypes.util.find_library("c")
    if library and platform.system() == "Linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(library).malloc_trim(0)


def _linux_memory(field_name: str) -> int | None:
    """A field of /proc/self/status (VmRSS, VmHWM) in bytes; None where there is none."""
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status"):
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return None


def measure_peak_memory(config: GPTTrainingConfig, vocab_size: int = 65, *, device: str | torch.device | None = None,
                        steps: int = 2, dtype: str = "float32") -> dict:
    """The peak memory of making and training ``config``'s GPT for ``steps`` steps at its batch_size, in bytes,
    and how it was measured: on CUDA, torch.cuda.max_memory_allocated above what was allocated before; on a CPU
    under Linux, the rise of the resident set size (VmHWM, reset first, less VmRSS before); elsewhere,
    getrusage's maxrss less the RSS before (a lower bound if the process was bigger earlier)."""
    place = runtime_device(None if device is None else str(device))
    gc.collect()
    if place.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(place)
        before, method = torch.cuda.memory_allocated(place), "torch.cuda.max_memory_allocated, less before"
    else:
        _malloc_trim()
        reset = False
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as file:
                file.write("5")  # reset VmHWM, the peak resident set size, to the current size
            reset = True
        before = _linux_memory("VmRSS") if reset else None
        if before is None:
            before = _maxrss_bytes()
            method = "getrusage maxrss, less maxrss before"
        else:
            method = "peak resident set size (Linux VmHWM, reset first), less before"
    measure_training(config, vocab_size, device=place, steps=steps - 1, warmup=0, dtype=dtype)
    if place.type == "cuda":
        peak = torch.cuda.max_memory_allocated(place) - before
    elif method.startswith("peak resident"):
        peak = _linux_memory("VmHWM") - before
    else:
        peak = _maxrss_bytes() - before
    return {"bytes": float(peak), "method": method, "steps": steps, "batch_size": config.batch_size}


def _maxrss_bytes() -> int:
    maximum = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maximum if platform.system() == "Darwin" else maximum * 1024  # bytes on macOS, KiB on Linux


def measure_generation(config: GPTTrainingConfig, vocab_size: int = 65, *, new_tokens: int = GENERATION_TOKENS,
                       device: str | torch.device | None = None) -> dict:
    """Tokens per second of GPT.generate writing ``new_tokens`` after a one-token prompt, with the key/value cache
    and without it (recomputing the whole window at every step), and the ratio. The library's generate restarts
    its window from the last half when the context is full, in both modes."""
    from zero2gpt.gpt import GPT

    place = runtime_device(None if device is None else str(device))
    check_integer("new_tokens", new_tokens, minimum=1)
    torch.manual_seed(0)
    model = GPT(config.model_config(vocab_size)).to(place).eval()
    prompt = torch.zeros((1, 1), dtype=torch.long, device=place)
    speeds = {}
    for use_cache in (True, False):
        model.generate(prompt, 2, use_cache=use_cache)  # warm-up
        took = _timed(lambda: model.generate(prompt, new_tokens, use_cache=use_cache,
                                             generator=torch.Generator(device=place).manual_seed(0)), place, 1)[0]
        speeds[use_cache] = new_tokens / took
    return {"new_tokens": new_tokens, "block_size": config.block_size, "n_layer": config.n_layer,
            "n_embd": config.n_embd, "cached_tokens_per_second": speeds[True],
            "recomputed_tokens_per_second": speeds[False], "cache_speedup": speeds[True] / speeds[False]}


def measure_attention(config: GPTTrainingConfig, *, device: str | torch.device | None = None, repeats: int = 5,
                      dtype: str = "float32") -> dict:
    """Milliseconds for causal attention's forward and backward pass at ``config``'s shape (batch_size, n_head,
    block_size, n_embd / n_head): chapter 12's ``attend``, written out, against torch's fused
    scaled_dot_product_attention; the median of ``repeats``, and the ratio."""
    from zero2gpt.attention import attend

    place = runtime_device(None if device is None else str(device))
    shape = (config.batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
    torch.manual_seed(0)
    queries, keys, values = (torch.randn(shape, device=place, dtype=DTYPES[dtype], requires_grad=True)
                             for _ in range(3))
    ways = {"by_hand": lambda: attend(queries, keys, values)[0],
            "sdpa": lambda: F.scaled_dot_product_attention(queries, keys, values, is_causal=True)}
    found = {}
    for name, forward in ways.items():
        def step():
            forward().sum().backward()

        step()  # warm-up
        found[f"{name}_ms"] = 1e3 * statistics.median(_timed(step, place, repeats))
    return {"batch_size": shape[0], "n_head": shape[1], "block_size": shape[2], "head_size": shape[3], **found,
            "sdpa_speedup": found["by_hand_ms"] / found["sdpa_ms"]}


def _targets(result: BenchResult) -> list[dict]:
    """Each target of issue 14 with its measured value and whether it is met, where this run measured it."""
    from zero2gpt.gpt import GPT_PRESETS

    found = []
    laptop = GPT_PRESETS["laptop"]
    rows = [row for row in result.training if row["label"] == "laptop" and row["batch_size"] == laptop.batch_size]
    if rows:
        fraction = rows[0]["peak_fraction"]
        found.append({"target": f"training the laptop shape (batch {laptop.batch_size}) sustains >= "
                                f"{TARGET_PEAK_FRACTION:.0%} of the matmul peak",
                      "measured": fraction, "shown": f"{fraction:.1%}", "met": fraction >= TARGET_PEAK_FRACTION})
    if result.generation:
        speedup = result.generation["cache_speedup"]
        found.append({"target": f"the key/value cache writes >= {TARGET_CACHE_SPEEDUP:.0f}x faster than recomputing "
                                f"({result.generation['new_tokens']} tokens, block {result.generation['block_size']})",
                      "measured": speedup, "shown": f"{speedup:.1f}x", "met": speedup >= TARGET_CACHE_SPEEDUP})
    if result.memory is not None:
        ratio = result.memory["bytes"] / result.memory["estimate"]["total"]
        found.append({"target": f"peak memory training at batch {result.memory['batch_size']} is within "
                                f"{TARGET_MEMORY_RATIO}x of the estimate",
                      "measured": ratio, "shown": f"{ratio:.2f}x the estimate",
                      "met": 1 / TARGET_MEMORY_RATIO <= ratio <= TARGET_MEMORY_RATIO})
    return found


def run_bench(settings: BenchSettings, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure everything ``settings`` asks for, on its device; ``progress(message)`` hears what runs next."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    place = runtime_device(settings.device)
    _check_dtype(place, settings.dtype)
    say("matmul peak")
    result = BenchResult(device=str(place), dtype=settings.dtype,
                         matmul_peak_flops=matmul_peak_flops(place, settings.dtype))
    for label, config in settings.shapes:
        say(f"training {label}, batch {config.batch_size}")
        row = measure_training(config, settings.vocab_size, device=place, steps=settings.steps,
                               warmup=settings.warmup, dtype=settings.dtype, compile=settings.compile,
                               notes=result.notes)
        row["peak_fraction"] = row["achieved_flops"] / result.matmul_peak_flops
        result.training.append({"label": label, **row})
    say(f"generation, {settings.new_tokens} tokens")
    result.generation = measure_generation(settings.generation_config, settings.vocab_size,
                                           new_tokens=settings.new_tokens, device=place)
    say("attention")
    attention_config = settings.shapes[-1][1] if settings.shapes else settings.generation_config
    result.attention = measure_attention(attention_config, device=place, dtype=settings.dtype)
    if settings.memory_config is not None:
        say(f"peak memory, batch {settings.memory_config.batch_size}")
        result.memory = measure_peak_memory(settings.memory_config, settings.vocab_size, device=place,
                                            steps=settings.memory_steps, dtype=settings.dtype)
        result.memory["estimate"] = training_memory_estimate(settings.memory_config, settings.vocab_size,
                                                             place.type, settings.dtype)
        result.memory["shape"] = {name: getattr(settings.memory_config, name)
                                  for name in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}
    result.targets = _targets(result)
    result.seconds = time.perf_counter() - started
    return result


def format_result(result: BenchResult) -> str:
    """The result as the table ``zero2gpt bench`` prints."""
    lines = [f"zero2gpt bench on {result.device} ({result.dtype}), torch {torch.__version__}, "
             f"{torch.get_num_threads()} CPU thread(s)",
             f"matmul peak (measured): {result.matmul_peak_flops / 1e9:,.1f} GFLOP/s", "",
             "training (median step after warm-up; random ids; FLOPs per token = 6N + 12 L T C)",
             f"{'shape':<8} {'layers x width':>14} {'block':>5} {'batch':>5} {'ms/step':>9} {'tokens/s':>10} "
             f"{'MFLOP/token':>11} {'GFLOP/s':>8} {'of peak':>7}"]
    for row in result.training:
        lines.append(f"{row['label']:<8} {row['n_layer']:>5} x {row['n_embd']:<6} {row['block_size']:>5} "
                     f"{row['batch_size']:>5} {row['ms_per_step']:>9.1f} {row['tokens_per_second']:>10,.0f} "
                     f"{row['flops_per_token'] / 1e6:>11.1f} {row['achieved_flops'] / 1e9:>8.1f} "
                     f"{row['peak_fraction']:>7.1%}" + (" compiled" if row["compiled"] else ""))
    generation = result.generation
    if generation:
        lines += ["", f"generation (GPT.generate, {generation['n_layer']} layers x {generation['n_embd']}, block "
                      f"{generation['block_size']}, {generation['new_tokens']} new tokens; the window restarts "
                      "from its last half when full)",
                  f"  with the key/value cache: {generation['cached_tokens_per_second']:,.0f} tokens/s; "
                  f"recomputing: {generation['recomputed_tokens_per_second']:,.0f} tokens/s; "
                  f"{generation['cache_speedup']:.1f}x"]
    attention = result.attention
    if attention:
        lines += ["", f"attention forward + backward (batch {attention['batch_size']}, {attention['n_head']} heads, "
                      f"{attention['block_size']} positions, head size {attention['head_size']})",
                  f"  by hand (chapter 12's attend): {attention['by_hand_ms']:.2f} ms; "
                  f"scaled_dot_product_attention: {attention['sdpa_ms']:.2f} ms; {attention['sdpa_speedup']:.1f}x"]
    memory = result.memory
    if memory is not None:
        estimate, shape = memory["estimate"], memory["shape"]
        lines += ["", f"peak memory training {shape['n_layer']} layers x {shape['n_embd']}, block "
                      f"{shape['block_size']}, dropout {shape['dropout']}, batch {memory['batch_size']} "
                      f"({memory['steps']} steps; {memory['method']})",
                  f"  measured {memory['bytes'] / 2**20:,.0f} MiB; estimate {estimate['total'] / 2**20:,.0f} MiB = "
                  f"weights {estimate['weights'] / 2**20:,.0f} + gradients {estimate['gradients'] / 2**20:,.0f} + "
                  f"Adam {estimate['optimizer'] / 2**20:,.0f} + activations {estimate['activations'] / 2**20:,.0f}"]
    if result.targets:
        lines += ["", "targets (ratios measured in this run)"]
        lines += [f"  [{'met' if target['met'] else 'NOT MET'}] {target['target']}: {target['shown']}"
                  for target in result.targets]
    lines += [f"note: {note}" for note in result.notes]
    lines.append(f"the bench took {result.seconds:.0f} s")
    return "\n".join(lines)
