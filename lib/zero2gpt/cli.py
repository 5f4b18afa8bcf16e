"""The ``zero2gpt`` command: train a GPT, write with it, fine-tune it, from a terminal.

Hand-written, not generated: the command line is plumbing around chapters 13 and 14.

    zero2gpt train --dataset tinyshakespeare --preset laptop --out runs/laptop
    zero2gpt sample --checkpoint runs/laptop --prompt "ROMEO:" --tokens 500 --temperature 0.8 --top-k 40
    zero2gpt finetune --from runs/laptop --dataset cat-poems --out runs/cats
    zero2gpt bench --json
    torchrun --nproc_per_node=2 -m zero2gpt train --preset laptop --out runs/laptop

``train`` and ``finetune`` take any key of the training config as a flag (``--n-layer 4``), write a
checkpoint into ``--out`` after every evaluation and on Ctrl-C, and continue from it with ``--resume``.
Every mistake the command can see (a bad value, a missing checkpoint, a character the model does not know)
ends it with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import zero2gpt
from zero2gpt.runtime import PROFILES, profile, tqdm

class CommandError(Exception):
    """A mistake on the command line, reported as one line."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with each error in one line (without it, argparse prints the usage first)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional(parse: typing.Callable[[str], object]) -> typing.Callable[[str], object]:
    def parse_or_none(text: str) -> object:
        return None if text.strip().lower() == "none" else parse(text)
    return parse_or_none


def _config_fields() -> list[tuple[str, typing.Callable[[str], object], object]]:
    """(name, parser, default) for every field of GPTTrainingConfig, from its type hints."""
    from zero2gpt.gpt import GPTTrainingConfig

    hints = typing.get_type_hints(GPTTrainingConfig)
    found = []
    for field in dataclasses.fields(GPTTrainingConfig):
        hint = hints[field.name]
        arguments = [item for item in typing.get_args(hint) if item is not type(None)]
        optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        base = arguments[0] if optional else hint
        parse = {bool: _boolean, int: int, float: float}[base]
        found.append((field.name, _optional(parse) if optional else parse, field.default))
    return found


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from zero2gpt.gpt import GPT_PRESETS

    group = parser.add_argument_group("training config (any key overrides the preset's value)")
    for name, parse, default in _config_fields():
        presets = ", ".join(f"{preset} {getattr(config, name)}" for preset, config in GPT_PRESETS.items())
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"config_{name}", type=parse, default=None,
                           metavar=type(default).__name__.upper() if default is not None else "INT|none",
                           help=f"train presets: {presets}")


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that train and finetune share: where to write, resuming, the device, and the config keys."""
    parser.add_argument("--out", required=True, type=Path, help="the folder to write checkpoint.pt into")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(parser)


def _overrides(arguments: argparse.Namespace) -> dict[str, object]:
    return {name[len("config_"):]: value for name, value in vars(arguments).items()
            if name.startswith("config_") and value is not None}


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="zero2gpt", description="Train a GPT, write with it, fine-tune it.")
    parser.add_argument("--version", action="version", version=f"zero2gpt {zero2gpt.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,finetune,bench}")

    train = commands.add_parser("train", help="train a GPT on a dataset",
                                description="Train a GPT on a dataset, with a checkpoint in --out after every "
                                            "evaluation and on Ctrl-C.")
    train.add_argument("--dataset", default="tinyshakespeare", help="a registered dataset (default: %(default)s)")
    train.add_argument("--preset", choices=PROFILES, default=None,
                       help="the model's shape and schedule (default: the active profile)")
    _add_run_flags(train)

    sample = commands.add_parser("sample", help="write text with a trained GPT",
                                 description="Print the prompt followed by the model's continuation. A prompt "
                                             "longer than the model's context is cut to its last block_size "
                                             "characters; an empty one starts from a new line.")
    sample.add_argument("--checkpoint", required=True, type=Path, help="a run folder or a checkpoint file")
    sample.add_argument("--prompt", default="", help="the text to continue")
    sample.add_argument("--tokens", type=int, default=500, help="how many characters to write (default: 500)")
    sample.add_argument("--temperature", type=float, default=0.8, help=">= 0; 0 is greedy (default: 0.8)")
    sample.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest characters")
    sample.add_argument("--seed", type=int, default=None, help="a seed for a repeatable sample")
    sample.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")

    finetune = commands.add_parser("finetune", help="fine-tune a trained GPT on another dataset",
                                   description="Continue training a GPT from a checkpoint on another dataset, "
                                               "with the preset's fine-tuning schedule; the shape stays the same.")
    finetune.add_argument("--from", dest="source", required=True, type=Path, help="the run to start from")
    finetune.add_argument("--dataset", default="cat-poems", help="a registered dataset (default: %(default)s)")
    finetune.add_argument("--preset", choices=PROFILES, default=None,
                          help="the fine-tuning schedule (default: the active profile)")
    _add_run_flags(finetune)

    bench = commands.add_parser("bench", help="measure training and writing speed, and memory, on this machine",
                                description="Print one table for this device: training speed of the laptop and "
                                            "full shapes (and of the shape the config flags give), writing with "
                                            "and without the key/value cache, attention by hand against torch's "
                                            "fused kernel, peak memory, and the speed and memory targets.")
    bench.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    bench.add_argument("--compile", action="store_true", help="train through torch.compile where it works")
    bench.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                       help="float32, or bfloat16 autocast where the device supports it (default: %(default)s)")
    bench.add_argument("--shapes", nargs="*", choices=("laptop", "full"), default=["laptop", "full"],
                       help="the presets to time training for (default: laptop full); config flags add a row")
    bench.add_argument("--preset", choices=PROFILES, default="laptop",
                       help="the preset the config flags change, for their row (default: %(default)s)")
    bench.add_argument("--repeats", type=int, default=10, help="timed training steps per row (default: 10)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    bench.add_argument("--tokens", type=int, default=500, help="tokens to write for generation (default: 500)")
    bench.add_argument("--memory-batch", type=int, default=64,
                       help="the batch to measure peak training memory at; 0: do not (default: 64)")
    _add_config_flags(bench)
    return parser


def _report(arguments: argparse.Namespace, config, log, folder: Path) -> int:
    """The last lines of a training command; its exit status."""
    from zero2gpt.language import bits_per_char

    if log.interrupted:
        print(f"interrupted at step {log.step:,} of {config.steps:,}; the checkpoint is in {folder}. "
              f"Continue with: zero2gpt {arguments.command} ... --out {folder} --resume", file=sys.stderr)
        return 130
    print(f"done: {log.step:,} steps; best val {log.best_val:.4f} nats/char ({bits_per_char(log.best_val):.3f} "
          f"bits/char) at step {log.best_step:,}; checkpoint in {folder}")
    return 0


def _log_evaluation(step: int, model, log) -> None:
    """One line per evaluation, printed above the progress bar."""
    # the gradient norm (before clipping) shows trouble coming: it grows before the loss turns NaN
    norm = f"; grad norm {log.grad_norms[-1]:.3g}" if log.grad_norms else ""
    tqdm.write(f"step {step:,}: val {log.val_loss[-1]:.4f}, train {log.train_eval_loss[-1]:.4f} nats/char; "
               f"best val {log.best_val:.4f} at step {log.best_step:,}{norm}")
    sys.stdout.flush()  # a log file or a pipe sees each evaluation as it happens


def _train(arguments: argparse.Namespace) -> int:
    from zero2gpt.distributed import distributed_training, is_main_process, world_size
    from zero2gpt.gpt import gpt_preset, train_gpt
    from zero2gpt.language import char_corpus

    config = gpt_preset(arguments.preset or profile(), **_overrides(arguments))
    corpus = char_corpus(arguments.dataset)
    # Under torchrun, every process runs this; the first alone speaks (zero2gpt.distributed).
    with distributed_training(arguments.device) as place:
        if is_main_process():
            processes = f" in {world_size()} processes" if world_size() > 1 else ""
            print(f"training a GPT on {arguments.dataset}{processes}: {len(corpus.train_ids):,} characters to "
                  f"train on, {len(corpus.val_ids):,} to validate on; {config}", flush=True)
        _, log = train_gpt(config, corpus, out=arguments.out, resume=arguments.resume, device=place,
                           progress=not arguments.no_progress, on_eval=_log_evaluation)
        if not is_main_process():
            return 130 if log.interrupted else 0  # the exit status _report gives, without its words
        return _report(arguments, config, log, arguments.out)


def _finetune(arguments: argparse.Namespace) -> int:
    from zero2gpt.distributed import distributed_training, is_main_process
    from zero2gpt.finetune import finetune_config, finetune_gpt, poem_corpus
    from zero2gpt.gpt import GPTTrainingConfig, load_gpt

    with distributed_training(arguments.device) as place:  # under torchrun, as _train
        model, tokenizer, state = load_gpt(arguments.source, device=place)
        overrides = _overrides(arguments)
        config = finetune_config(GPTTrainingConfig(**state["training_config"]), arguments.preset or profile(),
                                 **overrides)
        corpus = poem_corpus(arguments.dataset, tokenizer)
        if is_main_process():
            print(f"fine-tuning {arguments.source} (step {state['step']:,}) on {arguments.dataset}: "
                  f"{len(corpus.train_ids):,} characters to train on, {len(corpus.val_ids):,} to validate on; "
                  f"{config}", flush=True)
        _, log = finetune_gpt(model, corpus, config, out=arguments.out, resume=arguments.resume, device=place,
                              progress=not arguments.no_progress, on_eval=_log_evaluation)
        if not is_main_process():
            return 130 if log.interrupted else 0  # the exit status _report gives, without its words
        return _report(arguments, config, log, arguments.out)


def _sample(arguments: argparse.Namespace) -> int:
    import torch

    from zero2gpt.checks import check_integer
    from zero2gpt.gpt import load_gpt

    check_integer("--tokens", arguments.tokens, minimum=0)
    model, tokenizer, _ = load_gpt(arguments.checkpoint, device=arguments.device)
    prompt = arguments.prompt or "\n"  # an empty prompt starts from a new line
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as error:
        raise CommandError(f"the prompt cannot be written in this model's vocabulary: {error}") from None
    generator = None
    if arguments.seed is not None:
        generator = torch.Generator().manual_seed(check_integer("--seed", arguments.seed, minimum=0))
    written = model.generate(torch.tensor([ids]), arguments.tokens, temperature=arguments.temperature,
                             top_k=arguments.top_k, generator=generator)
    print(arguments.prompt + tokenizer.decode(written[0, len(ids):]))
    return 0


def _bench(arguments: argparse.Namespace) -> int:
    import json

    from zero2gpt.bench import default_settings, format_result, run_bench
    from zero2gpt.checks import check_integer
    from zero2gpt.gpt import gpt_preset, updated_config

    for flag in ("repeats", "tokens"):
        check_integer(f"--{flag}", getattr(arguments, flag), minimum=1)
    check_integer("--warmup", arguments.warmup, minimum=0)
    check_integer("--memory-batch", arguments.memory_batch, minimum=0)
    settings = default_settings(arguments.device)
    settings.shapes = [(label, config) for label, config in settings.shapes if label in arguments.shapes]
    overrides = _overrides(arguments)
    if overrides:  # the flags' shape joins the rows, and is the one generation and memory use
        custom = gpt_preset(arguments.preset, **overrides)
        settings.shapes.append(("custom", custom))
        settings.generation_config = settings.memory_config = custom
    elif "full" not in arguments.shapes:
        settings.generation_config = settings.memory_config = gpt_preset(arguments.preset)
    settings.memory_config = None if not arguments.memory_batch else \
        updated_config(settings.memory_config, batch_size=arguments.memory_batch)
    settings.steps, settings.warmup, settings.new_tokens = arguments.repeats, arguments.warmup, arguments.tokens
    settings.dtype, settings.compile = arguments.dtype, arguments.compile
    say = None if arguments.json else (lambda message: print(f"measuring: {message}", file=sys.stderr, flush=True))
    result = run_bench(settings, progress=say)
    print(json.dumps(result.as_dict(), indent=2) if arguments.json else format_result(result))
    return 0


COMMANDS = {"train": _train, "sample": _sample, "finetune": _finetune, "bench": _bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); return the exit status."""
    from zero2gpt.data import DatasetError
    from zero2gpt.runs import CheckpointError, RunLockedError
    from zero2gpt.runtime import DeviceUnavailableError
    from zero2gpt.training import TrainingDivergedError

    parser = _parser()
    arguments, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [item for item in unknown if item.startswith("--")]
        keys = ", ".join(f"--{name.replace('_', '-')}" for name, _, _ in _config_fields())
        what = f"unknown option {flags[0]!r}" if flags else f"unexpected argument {unknown[0]!r}"
        print(f"zero2gpt {arguments.command}: error: {what}; valid config keys: {keys}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[arguments.command](arguments)
    except (CommandError, CheckpointError, DatasetError, ValueError, OSError, RunLockedError, DeviceUnavailableError,
            TrainingDivergedError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"zero2gpt {arguments.command}: error: {message}", file=sys.stderr)
        return 2
