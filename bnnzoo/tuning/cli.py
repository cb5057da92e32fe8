"""`bnnzoo tune`: hyperparameter search with keras-tuner, locally or chief/worker."""

from __future__ import annotations

import argparse
import sys

from bnnzoo.cli_support import (
    SeedAction,
    Terminated,
    ctrl_c_as_interrupt,
    fail,
    key_value,
    positive_float,
    positive_int,
    split_logical_cpus,
)

__all__ = ["add_parser", "cmd_tune"]


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected NAME[,NAME...], got {text!r}")
    return names


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 1..65535, got {value}")
    return value


def add_parser(sub) -> None:
    from bnnzoo.tuning.spaces import SEARCH_SPACES
    from bnnzoo.tuning.tuners import list_tuners

    spaces = "; ".join(f"{s.name}: {s.description}" for _, s in SEARCH_SPACES.items())
    p = sub.add_parser(
        "tune",
        help="search quantizers, optimizers and their hyperparameters with keras-tuner",
        description="Hyperparameter search whose trials are bnnzoo training runs. Search spaces: "
        + spaces,
    )
    p.add_argument("--model", "-m", default="binarynet_mlp", help="model family (default binarynet_mlp)")
    p.add_argument("--dataset", "-d", default="digits", help="dataset (default digits)")
    p.add_argument("--space", "-s", default="full", help="search-space preset: bop2ndorder, quantizers, full")
    p.add_argument("--tuner", "-t", default="random", help=f"tuner: {', '.join(list_tuners())}")
    p.add_argument("--max-trials", "-n", type=positive_int, default=10, help="number of trials (> 0)")
    p.add_argument("--epochs", "-e", type=positive_int, default=1,
                   help="epochs per trial (Hyperband: the largest budget)")
    p.add_argument("--final-epochs", type=positive_int,
                   help="epochs for the best configuration in OUT/best (default: --epochs, reusing its trial)")
    p.add_argument("--optimizer", "-o", type=_names, help="restrict the optimizer choice: NAME[,NAME...]")
    p.add_argument("--quantizer", "-q", type=_names, help="restrict the quantizer choice: NAME[,NAME...]")
    p.add_argument("--learning-rate", "--lr", type=positive_float, default=1e-3,
                   help="learning rate when the space does not search it")
    p.add_argument("--batch-size", "-b", type=positive_int, default=64,
                   help="batch size when the space does not search it")
    p.add_argument("--seed", action=SeedAction, default=0, metavar="S",
                   help="seed of the search (default 0), an integer in 0..2**32-1: the same S samples the "
                        "same trials in the same order, for every tuner, and trains each from the same "
                        "initial weights. Random search repeats exactly; Hyperband's promotions and "
                        "Bayesian proposals also follow the trials' scores, which repeat on the same "
                        "machine type and software stack. --distributed: only the random draws follow S, "
                        "not the order workers finish in; start every worker with the chief's S")
    p.add_argument("--model-arg", type=key_value, action="append", default=[], metavar="K=V",
                   help="model-family option for every trial (e.g. units=128)")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--baseline", action="store_true",
                   help="also train the default hyperparameters (OUT/baseline) and compare")
    p.add_argument("--out", default="tune", help="output directory (default ./tune); rerun to resume")
    p.add_argument("--logical-cpus", type=positive_int, help=argparse.SUPPRESS)
    g = p.add_argument_group("distributed (keras-tuner chief/worker mode)")
    g.add_argument("--distributed", choices=("chief", "worker"),
                   help="chief: serve the oracle and wait; worker: run trials for the chief")
    g.add_argument("--oracle-ip", help="the chief's address (listen address on the chief)")
    g.add_argument("--oracle-port", type=_port, help="the chief's port")
    g.add_argument("--tuner-id", help="a worker's id (default worker-HOST-PID); reuse it when restarting a worker")
    g.add_argument("--connect-timeout", type=positive_float, default=60.0,
                   help="seconds a worker waits for the chief before failing (default 60)")
    g.add_argument("--rpc-timeout", type=positive_float, default=600.0,
                   help="bound on each later worker->chief call in seconds (default 600)")
    g.add_argument("--worker-timeout", type=positive_float, default=120.0,
                   help="chief: seconds without word from a worker before its trial goes to another "
                        "(default 120)")
    p.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    if args.distributed and (not args.oracle_ip or not args.oracle_port):
        fail("--distributed needs --oracle-ip and --oracle-port")
    if not args.distributed and (args.oracle_ip or args.oracle_port or args.tuner_id):
        fail("--oracle-ip/--oracle-port/--tuner-id only apply with --distributed chief|worker")
    split_logical_cpus(args.logical_cpus)
    from bnnzoo.data import DataUnavailableError
    from bnnzoo.training import TrainConfig
    from bnnzoo.tuning.distributed import ChiefUnreachableError
    from bnnzoo.tuning.search import run_search

    signals = ctrl_c_as_interrupt(terminate=True)  # SIGTERM ends it like Ctrl-C, in one line
    try:
        base = TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs,
                           batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                           data_dir=args.data_dir, model_kwargs=dict(args.model_arg))
        with signals:
            result = run_search(
                base, space=args.space, tuner=args.tuner, max_trials=args.max_trials, out=args.out,
                optimizers=args.optimizer, quantizers=args.quantizer, final_epochs=args.final_epochs,
                baseline=args.baseline, distributed=args.distributed, oracle_ip=args.oracle_ip,
                oracle_port=args.oracle_port, tuner_id=args.tuner_id, connect_timeout=args.connect_timeout,
                rpc_timeout=args.rpc_timeout, worker_timeout=args.worker_timeout,
                command="bnnzoo " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("bnnzoo")
                else "bnnzoo tune " + " ".join(_echo(args)),
            )
    except KeyboardInterrupt:
        fail(_interrupted_search(args, "terminated" if signals.interrupted is Terminated else "interrupted"))
    except ChiefUnreachableError as err:
        fail(str(err))
    except (ValueError, FileNotFoundError, DataUnavailableError) as err:
        fail(str(err))
    except RuntimeError as err:  # e.g. the chief cannot bind its port, too many failed trials
        fail(str(err))
    except Exception as err:  # a lost chief surfaces as a gRPC error on workers
        if type(err).__module__.startswith("grpc"):
            fail(f"lost contact with the tuning chief at {args.oracle_ip}:{args.oracle_port}: "
                  f"{getattr(err, 'details', lambda: err)()}")
        raise
    if result is not None and result.best is None:
        fail("no trial completed; see the trial messages above")
    return 0


def _trial_statuses(out: str) -> dict[str, str]:
    """keras-tuner's status (`COMPLETED`, `RUNNING`, ...) of each trial in `out`, in creation order."""
    import json
    from pathlib import Path

    from bnnzoo.tuning.search import PROJECT
    from bnnzoo.tuning.tuners import _creation_order

    status = {}
    for path in (Path(out) / PROJECT).glob("trial_*/trial.json"):
        try:
            status[path.parent.name.removeprefix("trial_")] = json.loads(path.read_text()).get("status")
        except (OSError, ValueError, AttributeError):  # unreadable: the rerun names it
            continue
    return {trial: status[trial] for trial in sorted(status, key=_creation_order)}


def _interrupted_search(args, how: str = "interrupted") -> str:
    """The one line for a Ctrl-C'd (`how="interrupted"`) or SIGTERM'd (`"terminated"`)
    `bnnzoo tune`: the trials finished in `--out` and what the same command does.

    A rerun reloads keras-tuner's project (`overwrite=False`): finished trials are kept,
    and the trial that was running is retried, from its run directory's last epoch
    checkpoint when it has one.
    """
    from pathlib import Path

    from bnnzoo.training.run_dir import checkpointed_epoch
    from bnnzoo.tuning.search import PROJECT
    from bnnzoo.tuning.tuners import RUN_SUBDIR

    if args.distributed == "worker":
        return (f"{how}; the chief gives this worker's unfinished trial to another worker after its "
                "--worker-timeout, and the same command starts this worker again")
    status = _trial_statuses(args.out)
    if not status:
        return f"{how} before the first trial started; the same command starts the search in {args.out}"
    finished = [trial for trial, state in status.items() if state == "COMPLETED"]
    listed = f" ({', '.join(finished)})" if finished else ""
    line = (f"{how} with {len(finished)} of {args.max_trials} trial(s) finished{listed}; "
            f"the same command resumes the search in {args.out}")
    running = [trial for trial, state in status.items() if state == "RUNNING"]
    if running and not args.distributed:  # a chief's running trials are its workers'
        run = Path(args.out) / PROJECT / f"trial_{running[0]}" / RUN_SUBDIR
        start = "its start" if checkpointed_epoch(run) is None else "its last epoch checkpoint"
        line += f", retrying trial {running[0]} from {start}"
    return line


def _echo(args) -> list[str]:
    """A command line equivalent to `args` (when not run as the `bnnzoo` script)."""
    parts = ["--model", args.model, "--dataset", args.dataset, "--space", args.space, "--tuner", args.tuner,
             "--max-trials", str(args.max_trials), "--epochs", str(args.epochs), "--seed", str(args.seed),
             "--out", args.out]
    for flag, value in (("--optimizer", args.optimizer), ("--quantizer", args.quantizer)):
        if value:
            parts += [flag, ",".join(value)]
    if args.baseline:
        parts.append("--baseline")
    if args.distributed:
        parts += ["--distributed", args.distributed, "--oracle-ip", args.oracle_ip,
                  "--oracle-port", str(args.oracle_port)]
    return parts
