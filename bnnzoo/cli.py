"""The `bnnzoo` command: list, train, evaluate (and the subcommands features add).

Run `bnnzoo --help` or `bnnzoo SUBCOMMAND --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from bnnzoo.cli_support import (
    SeedAction,
    Terminated,
    ctrl_c_as_interrupt,
    fail,
    format_bytes,
    is_expected,
    key_value,
    non_negative_float,
    one_line,
    one_line_warnings,
    positive_float,
    positive_int,
    quiet_tensorflow,
    set_debug,
    split_logical_cpus,
)
from bnnzoo.registry import Registry

__all__ = ["main", "build_parser", "format_card_line", "stage_configs_from_args"]

# Subcommands that live next to their feature: name -> module. Each module has
# `add_parser(subparsers) -> None`, which adds its parser and sets `func` on it.
SUBCOMMAND_MODULES: Registry[str] = Registry("subcommand")
SUBCOMMAND_MODULES.register("tune", "bnnzoo.tuning.cli")
SUBCOMMAND_MODULES.register("export", "bnnzoo.export.cli")
SUBCOMMAND_MODULES.register("publish", "bnnzoo.zoo_cli")


# ----------------------------------------------------------------- list


def format_card_line(card) -> str:
    """One line of `bnnzoo list` for a `bnnzoo.pretrained.Card`: tag, dataset, top-1
    accuracy, binary-weight memory (and its share of float32's), `[download]` for
    remote weights.

    !!! example
        ```python
        from bnnzoo.cli import format_card_line
        from bnnzoo.cli_support import format_bytes
        from bnnzoo.pretrained import get_card

        card = get_card("binarynet", "digits")
        line = format_card_line(card)
        assert line.split()[:2] == ["digits", "digits"] and "[download]" not in line
        assert f"top-1 {100 * card.test_accuracy:6.2f} %" in line
        assert f"weights {format_bytes(card.weight_memory_bytes)} (1/" in line
        ```
    """
    ratio = card.memory_ratio_vs_float32
    size = format_bytes(card.weight_memory_bytes)
    if ratio is not None:
        size += f" (1/{1 / ratio:.0f} of float32 {format_bytes(card.float32_memory_bytes)})"
    where = "" if card.shipped else "  [download]"
    return (f"{card.tag:22s} {card.dataset:14s} top-1 {100 * card.test_accuracy:6.2f} %  "
            f"weights {size}{where}")


def cmd_list(args) -> int:
    from bnnzoo import data, optimizers, pretrained, quantizers
    from bnnzoo.models import get_model_spec, list_models

    print("Models:")
    for name in list_models(args.filter):
        spec = get_model_spec(name)
        print(f"  {name:22s} input {'x'.join(map(str, spec.default_input_shape)):9s} {spec.description}")
        for card in pretrained.list_cards(name):
            print("    " + format_card_line(card))
    print("Quantizers: " + ", ".join(quantizers.list_quantizers()))
    print("Annealed quantizers: " + ", ".join(quantizers.list_quantizers(annealed=True)))
    print("Optimizers: " + ", ".join(optimizers.list_optimizers()))
    print("Datasets:   " + ", ".join(data.list_datasets())
          + " (offline), any TFDS name, or a .npz file")
    return 0


# ----------------------------------------------------------------- train


def _flag_type(flag):
    """An argparse type for a `bnnzoo.optimizers.BuilderFlag`."""
    if flag.choices is not None:
        def choice(text: str):
            if text not in flag.choices:
                raise argparse.ArgumentTypeError(f"must be one of {', '.join(flag.choices)}, got {text!r}")
            return text
        return choice
    if flag.low == 0 and not flag.low_open:
        return non_negative_float
    return positive_float


def add_optimizer_flags(p) -> list[str]:
    """The flags the registered optimizer builders declare (`cli_flags`); their names."""
    from bnnzoo.optimizers import builder_flags

    names = []
    for name, (flag, optimizers) in builder_flags().items():
        p.add_argument("--" + name.replace("_", "-"), type=_flag_type(flag),
                       help=f"{flag.help} (--optimizer {', '.join(optimizers)})")
        names.append(name)
    return names


def add_train_parser(sub) -> None:
    from bnnzoo.training import STRATEGIES

    p = sub.add_parser("train", help="train a binary model and write a run directory")
    p.add_argument("--recipe", help="a .json/.toml recipe; flags given here override it (the run records "
                                    "it; `bnnzoo publish RUN_DIR` makes an artifact of the finished run)")
    p.add_argument("--model", "-m", help="model family (default binarynet_mlp)")
    p.add_argument("--dataset", "-d", help="dataset name (default digits)")
    p.add_argument("--optimizer", "-o", help="optimizer name (default adam)")
    p.add_argument("--quantizer", "-q", help="quantizer for activations and weights (default ste_sign)")
    p.add_argument("--input-quantizer", help="override the activation quantizer")
    p.add_argument("--kernel-quantizer", help="override the weight quantizer")
    p.add_argument("--epochs", "-e", type=positive_int)
    p.add_argument("--batch-size", "-b", type=positive_int)
    p.add_argument("--learning-rate", "--lr", type=positive_float)
    p.add_argument("--seed", action=SeedAction, metavar="S")
    p.add_argument("--validation-fraction", type=non_negative_float)
    p.add_argument("--data-dir", help="folder with the dataset files (Fashion-MNIST idx, TFDS data)")
    p.set_defaults(optimizer_flags=add_optimizer_flags(p))
    p.add_argument("--optimizer-arg", type=key_value, action="append", default=[], metavar="K=V")
    p.add_argument("--quantizer-arg", type=key_value, action="append", default=[], metavar="K=V")
    p.add_argument("--model-arg", type=key_value, action="append", default=[], metavar="K=V")
    p.add_argument("--annealing", choices=("default", "compressed", "none"),
                   help="quantizer annealing rule (for every quantizer that declares one; `bnnzoo list`): the papers' "
                        "bounded rules, the warm-up squeezed into short runs, or none")
    p.add_argument("--exact-sign-fraction", type=non_negative_float, metavar="F",
                   help="share in [0, 1) of the epochs at the end in which annealed quantizers use the exact "
                        "sign (at least the last epoch; default 0.2)")
    p.add_argument("--lr-schedule", choices=("constant", "linear", "halving", "step"),
                   help="learning-rate schedule over the run (default constant)")
    p.add_argument("--clipnorm", type=positive_float, help="global gradient-norm clip of every optimizer")
    p.add_argument("--init-from", metavar="RUN_DIR",
                   help="initialize the weights from a run directory or saved model of the same network "
                        "(of a staged recipe: its first stage)")
    p.add_argument("--teacher", metavar="SRC",
                   help="distill from a trained teacher: a finished run directory, a .keras/.h5 model file, or "
                        "family:tag of a pretrained artifact (bnnzoo list); for every stage of a staged recipe")
    p.add_argument("--distill-temperature", type=positive_float, metavar="T",
                   help="temperature of the distillation loss (default 1)")
    p.add_argument("--distill-alpha", type=non_negative_float, metavar="A",
                   help="weight in [0, 1] of the distillation term; 1 - A weighs the cross-entropy (default 1)")
    p.add_argument("--strategy", choices=STRATEGIES.names())
    p.add_argument("--connect-timeout", type=positive_float, metavar="S",
                   help="--strategy multiworker: seconds to wait for the other workers of TF_CONFIG "
                        "(default 120; also $BNNZOO_CONNECT_TIMEOUT)")
    p.add_argument("--logical-cpus", type=positive_int,
                   help="split the CPU into N logical devices (for --strategy mirrored without GPUs)")
    p.add_argument("--out", help="run directory (default runs/<model>-<dataset>-<optimizer>-<quantizer>)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a run of this config")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run --out holds, even a finished one of another config")
    p.set_defaults(func=cmd_train)


_TRAIN_FIELDS = ("model", "dataset", "optimizer", "quantizer", "input_quantizer", "kernel_quantizer",
                 "epochs", "batch_size", "learning_rate", "seed", "validation_fraction", "data_dir",
                 "strategy", "annealing", "exact_sign_fraction", "lr_schedule", "clipnorm", "init_from",
                 "teacher")
# Flags that set a key of TrainConfig.distillation_kwargs.
_DISTILL_FLAGS = {"distill_temperature": "temperature", "distill_alpha": "alpha"}


def config_from_args(args, recipe: dict | None = None):
    """The `TrainConfig` of `bnnzoo train`'s arguments: the recipe's values (`recipe`,
    else read from `args.recipe`), overridden by the flags given. A multi-stage
    recipe is refused (`stage_configs_from_args`)."""
    from bnnzoo.training import STAGES_KEY, read_recipe

    if args.recipe:
        recipe = read_recipe(args.recipe) if recipe is None else recipe
        if STAGES_KEY in recipe:
            raise ValueError(f"recipe {args.recipe} has [[stages]]: one config per stage (stage_configs_from_args)")
    return stage_configs_from_args(args, recipe)[0]


def stage_configs_from_args(args, recipe: dict | None = None) -> list:
    """The `TrainConfig` of every stage `bnnzoo train` trains: one, or one per
    `[[stages]]` table of the recipe (`recipe`, else read from `args.recipe`); the
    flags given override every stage. Stages of different architectures, and
    `--distill-*` flags without a teacher, are refused with one line.

    !!! example
        ```python
        from pathlib import Path
        from bnnzoo.cli import build_parser, stage_configs_from_args

        Path("r.toml").write_text('epochs = 3\\n[[stages]]\\nkernel_quantizer = "none"\\n[[stages]]\\n')
        args = build_parser().parse_args(["train", "--recipe", "r.toml", "--epochs", "1",
                                          "--teacher", "binarynet_mlp:digits", "--distill-alpha", "0.5"])
        first, second = stage_configs_from_args(args)
        assert (first.kernel_quantizer, second.kernel_quantizer) == ("none", None)
        assert first.epochs == second.epochs == 1
        assert second.teacher == "binarynet_mlp:digits" and second.distillation_kwargs == {"alpha": 0.5}
        ```
    """
    from bnnzoo.training import TrainConfig, check_same_architecture, read_recipe, stage_values

    stages = [{}]
    if args.recipe:
        recipe = read_recipe(args.recipe) if recipe is None else recipe
        stages = stage_values(recipe)
    configs = []
    for number, values in enumerate(stages, 1):
        try:
            configs.append(TrainConfig.from_dict(_apply_flags(args, values, first=number == 1)))
        except (ValueError, TypeError) as err:
            raise type(err)(f"stage {number}: {err}" if len(stages) > 1 else str(err)) from None
    check_same_architecture(configs)
    distill_flags = [f"--{name.replace('_', '-')}" for name in _DISTILL_FLAGS if getattr(args, name, None) is not None]
    if distill_flags and not any(c.teacher for c in configs):
        raise ValueError(f"{', '.join(distill_flags)} need a teacher: give --teacher SRC (or teacher in the recipe)")
    return configs


def _apply_flags(args, values: dict, first: bool = True) -> dict:
    """A recipe's (or stage's) TrainConfig values with the flags of `args` applied;
    `--init-from` only to the first stage (the others start from the one before)."""
    values = dict(values)
    for name in _TRAIN_FIELDS:
        if name == "init_from" and not first:
            continue
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    opt_kwargs = values.get("optimizer_kwargs", {})
    opt_kwargs = dict(opt_kwargs) if isinstance(opt_kwargs, dict) else opt_kwargs
    for name in getattr(args, "optimizer_flags", ()):
        value = getattr(args, name, None)
        if value is not None and isinstance(opt_kwargs, dict):
            opt_kwargs[name] = None if value == "none" else value
    if isinstance(opt_kwargs, dict):
        opt_kwargs.update(dict(args.optimizer_arg))
    values["optimizer_kwargs"] = opt_kwargs
    for key, given in (("quantizer_kwargs", args.quantizer_arg), ("model_kwargs", args.model_arg)):
        recipe_value = values.get(key, {})
        # A recipe's non-table value is left for TrainConfig to refuse, naming the key.
        values[key] = {**recipe_value, **dict(given)} if isinstance(recipe_value, dict) else recipe_value
    distill = {key: getattr(args, name) for name, key in _DISTILL_FLAGS.items()
               if getattr(args, name, None) is not None}
    if distill:
        recipe_value = values.get("distillation_kwargs", {})
        values["distillation_kwargs"] = {**recipe_value, **distill} if isinstance(recipe_value, dict) else recipe_value
    return values


def _interrupted(out: str, epochs: int, how: str = "interrupted") -> str:
    """The one line for a Ctrl-C'd (`how="interrupted"`) or SIGTERM'd (`"terminated"`)
    `bnnzoo train`: what `out` holds now."""
    from pathlib import Path

    from bnnzoo.training.run_dir import checkpointed_epoch

    done = checkpointed_epoch(out)
    if done is not None:
        return f"{how} after epoch {done} of {epochs}; the same command resumes {out} from there"
    if (Path(out) / "metrics.json").is_file():
        return f"{how}; {out} keeps its previous finished run (the unfinished replacement was discarded)"
    return f"{how} before the first epoch ended; nothing was kept in {out}"


def _interrupted_stages(out: str, configs, how: str = "interrupted") -> str:
    """The one line for a Ctrl-C'd (or SIGTERM'd) staged `bnnzoo train`: the stage and what it holds."""
    from pathlib import Path

    from bnnzoo.training import stage_dir

    for number, config in enumerate(configs, 1):
        folder = stage_dir(out, number)
        if not (folder / "metrics.json").is_file() or (folder / "checkpoints").exists():
            return f"stage {number} of {len(configs)}: " + _interrupted(str(folder), config.epochs, how)
    return f"{how} after the last stage; {Path(out)} holds every stage"


def cmd_train(args) -> int:
    split_logical_cpus(args.logical_cpus)
    if args.connect_timeout is not None:
        from bnnzoo.training.config import CONNECT_TIMEOUT_ENV

        os.environ[CONNECT_TIMEOUT_ENV] = repr(args.connect_timeout)
    from bnnzoo import data, pretrained
    from bnnzoo.training import STAGES_KEY, read_recipe

    recipe = record = None
    try:
        recipe = read_recipe(args.recipe) if args.recipe else None  # read once, here
        configs = stage_configs_from_args(args, recipe)
    except (ValueError, TypeError, OSError) as err:
        # TOML/JSON decode errors give the line but not the file.
        where = f"recipe {args.recipe}: " if args.recipe and args.recipe not in str(err) else ""
        fail(where + one_line(err))
    # Names are checked by TrainConfig; the optimizer and quantizers are built once,
    # by `train`, after the data loads and before anything is written.
    staged = recipe is not None and STAGES_KEY in recipe
    config = configs[-1]  # a staged recipe's result is its last stage
    try:
        data.check_dataset_name(config.dataset)
        if recipe is not None:
            # The artifact the run may be published as: refused now, not after training.
            record = {pretrained.RECIPE_RECORD: pretrained.recipe_record(args.recipe, recipe)}
            pretrained.recipe_artifact(recipe, config.model, config.dataset)
    except (ValueError, TypeError) as err:
        fail((f"recipe {args.recipe}: " if record else "") + one_line(err))
    out = args.out or os.path.join(
        "runs", f"{config.model}-{config.dataset}-{config.optimizer}-{config.quantizer}".replace("/", "_")
    )
    from bnnzoo import training
    from bnnzoo.data import DataUnavailableError

    taught = f", distilled from {config.teacher}" if config.teacher else ""
    if staged:
        print(f"Training {config.model} on {config.dataset} in {len(configs)} stages "
              f"({', '.join(f'{c.epochs} epochs' for c in configs)}) -> {out}/stage-N", flush=True)
    else:
        print(f"Training {config.model} on {config.dataset} with {config.optimizer} + {config.quantizer} "
              f"for {config.epochs} epochs{taught} -> {out}", flush=True)
    signals = ctrl_c_as_interrupt(terminate=True)  # SIGTERM ends it like Ctrl-C, in one line
    try:
        with signals:
            if staged:
                result = training.train_stages(configs, out, resume=not args.no_resume,
                                               overwrite=args.overwrite, record=record)[-1]
                out = str(training.final_stage_dir(out, recipe))
            else:
                result = training.train(config, out, resume=not args.no_resume, overwrite=args.overwrite,
                                        record=record)
    except (DataUnavailableError, FileNotFoundError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        how = "terminated" if signals.interrupted is Terminated else "interrupted"
        fail(_interrupted_stages(out, configs, how) if staged else _interrupted(out, config.epochs, how))
    # Values read back from metrics.json may be null (a NaN loss is written as null).
    m = {k: float("nan") if v is None else v for k, v in result.metrics.items()}
    print(f"test accuracy: {m['test_accuracy']:.4f}  (loss {m['test_loss']:.4f}, "
          f"{m['wall_seconds']:.1f} s, weights {m['weight_memory_bytes'] / 1024:.1f} KiB = "
          f"{m['memory_ratio_vs_float32']:.3f} of float32)")
    print(f"run directory: {out}")
    if m.get("binary_forward") is False:
        print(f"bnnzoo: warning: {out} is not binary (binary_forward: false in metrics.json): annealed "
              "quantizers without their exact-sign forward, or no 1-bit quantizer; the accuracy above is "
              "not that of a binary model (bnnzoo.quantizers.finalize(model), or --annealing default)",
              file=sys.stderr)
    return 0


# ----------------------------------------------------------------- evaluate


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="test accuracy of a run directory, model file or pretrained model")
    p.add_argument("source", nargs="?", help="run directory or saved model file")
    p.add_argument("--model", "-m", help="registered model name (with --weights)")
    p.add_argument("--weights", help="pretrained tag of --model (see bnnzoo list)")
    p.add_argument("--dataset", "-d", help="dataset (default: the run's or the card's)")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", "-b", type=positive_int, default=256)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    if bool(args.source) == bool(args.model):
        fail("give either a run directory/model file, or --model NAME --weights TAG")
    if args.model and not args.weights:
        fail("--model needs --weights TAG")
    from bnnzoo import training
    from bnnzoo.data import DataUnavailableError

    try:
        if args.source:
            if not os.path.exists(args.source):
                fail(f"no run directory or model file at {args.source}")
            result = training.evaluate(args.source, args.dataset, batch_size=args.batch_size,
                                       data_dir=args.data_dir)
        else:
            from bnnzoo import zoo

            result = zoo.evaluate_pretrained(args.model, args.weights, dataset=args.dataset,
                                             data_dir=args.data_dir, batch_size=args.batch_size)
    except (ValueError, FileNotFoundError, DataUnavailableError) as err:
        fail(str(err))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"test accuracy: {result['test_accuracy']:.4f}  (loss {result['test_loss']:.4f}, "
              f"{result['test_size']} images of {result['dataset']})")
    return 0


# ----------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnnzoo", description="Train, evaluate, tune and export binarized neural networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list model families, pretrained tags, quantizers, optimizers")
    p.add_argument("filter", nargs="?", default="*", help="shell-style filter on model names")
    p.set_defaults(func=cmd_list)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    import importlib

    for _, module in SUBCOMMAND_MODULES.items():
        importlib.import_module(module).add_parser(sub)
    debug_help = "show the full traceback of an error instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    for subparser in sub.choices.values():  # also accepted after the subcommand
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `bnnzoo` command; expected failures end as one line on stderr and exit 2.

    Args:
        argv: the arguments (default: `sys.argv[1:]`).
    """
    quiet_tensorflow()  # also done by the console-script shim, before bnnzoo imports TF
    one_line_warnings()
    args = build_parser().parse_args(argv)
    set_debug(args.debug)
    try:
        return args.func(args)
    except Exception as err:  # noqa: BLE001  (sorted by _is_expected)
        if not is_expected(err):
            raise
        fail(one_line(err))


if __name__ == "__main__":
    sys.exit(main())
