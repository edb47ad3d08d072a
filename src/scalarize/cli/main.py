"""The ``scalarize`` command.

Bad input ends with one line on stderr naming the key or file and what is allowed, exit code 2,
and nothing written. An interrupted command is resumed by running it again.
"""

from __future__ import annotations

import sys

try:  # Ctrl-C while the command itself is being imported: the same one line as later on
    import argparse
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from scalarize.cli.errors import (
        EXIT_INTERRUPTED,
        EXIT_TERMINATED,
        EXIT_USAGE,
        Terminated,
        UsageError,
        describe,
        ignore_further_signals,
        install_signal_handlers,
        interrupted_code,
    )
except KeyboardInterrupt:  # (`python -m scalarize.cli.main`; the `scalarize` command guards its import)
    if __name__ != "__main__":
        raise
    sys.stderr.write("\nscalarize: interrupted; run the same command again to resume\n")
    raise SystemExit(130) from None


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from scalarize.experiments.loading import load_experiment_config
    from scalarize.train.config import TrainConfig

    if args.nproc is not None and args.nproc < 1:
        raise UsageError(f"--nproc: must be a positive integer, got {args.nproc}")
    other_rank = _world_size() > 1 and _rank() > 0  # -q hides progress, never what a switch dropped
    config = load_experiment_config(args.config, _overrides(args), TrainConfig, log=None if other_rank else _say)
    from scalarize.cli.experiments import run_and_report

    if args.nproc is not None and args.nproc > 1:  # N local processes, as torchrun --standalone
        from scalarize.train import distributed
        from scalarize.train.setup import prepare

        backend = distributed.check_processes(args.nproc, args.dist_backend, config.device)
        benchmark, _ = prepare(config)  # bad input answered here, before any process starts
        distributed.check_batches(benchmark, config.batch_size, args.nproc)
        arguments = [args.config, *_overrides(args), "--dist-backend", backend, *(["-q"] if args.quiet else [])]
        return distributed.launch(arguments, args.nproc, log=lambda line: print(line, file=sys.stderr))
    if _world_size() > 1:  # one rank of data-parallel training (torchrun, or --nproc above)
        from scalarize.train import distributed

        context = distributed.init(args.dist_backend, config.device)
        if not context.is_driver:
            from scalarize.train.run import serve

            code = serve(context)
        else:
            try:
                run_and_report(config, progress=not args.quiet, say=_say)
            finally:
                distributed.finish(context)
            code = 0
        distributed.shutdown()
        return code
    run_and_report(config, progress=not args.quiet, say=_say)
    return 0


def _world_size() -> int:
    """torchrun's WORLD_SIZE (1 outside torchrun), read without loading torch."""
    import os

    value = os.environ.get("WORLD_SIZE", "1")
    return int(value) if value.isdigit() else 1


def _rank() -> int:
    import os

    value = os.environ.get("RANK", "0")
    return int(value) if value.isdigit() else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from scalarize.cli.experiments import sweep_and_report
    from scalarize.experiments.sweep import load_sweep_config

    config = load_sweep_config(args.config, _overrides(args), log=_say)
    sweep_and_report(config, progress=not args.quiet, say=_say)
    return 0


def cmd_pbt(args: argparse.Namespace) -> int:
    if args.target == "replay":
        from scalarize.cli.experiments import replay_and_report

        if len(args.overrides) != 1 or "=" in args.overrides[0]:
            raise UsageError("usage: scalarize pbt replay DIRECTORY [--seeds N ...] [--device DEVICE] [--trust]")
        replay_and_report(
            Path(args.overrides[0]),
            seeds=args.seeds,
            device=args.device,
            progress=not args.quiet,
            say=_say,
            trust=args.trust,
        )
        return 0
    if args.seeds is not None:
        raise UsageError("--seeds: only for `scalarize pbt replay DIRECTORY`")
    if args.trust:
        raise UsageError(
            "--trust: only for `scalarize pbt replay DIRECTORY` (a config you give is yours: its "
            "import paths are imported)"
        )
    from scalarize.cli.experiments import pbt_and_report
    from scalarize.experiments.pbt import load_pbt_config

    overrides = _overrides(args)
    overrides += [
        f"pbt.{key}={value}"
        for key, value in (
            ("backend", args.backend),
            ("address", args.address),
            ("storage", args.storage),
            ("algorithm", args.algorithm),
            ("diversity", args.diversity),
        )
        if value
    ]
    config = load_pbt_config(args.target, overrides, log=_say)
    pbt_and_report(config, sweep=Path(args.sweep) if args.sweep else None, progress=not args.quiet, say=_say)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from scalarize.cli.experiments import study_and_report
    from scalarize.experiments.study import load_study_config

    config = load_study_config(args.config, _overrides(args), log=_say)
    study_and_report(config, progress=not args.quiet, say=_say)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from scalarize.cli.compare import compare_and_report
    from scalarize.experiments.compare import load_compare_config

    config = load_compare_config(args.config, _overrides(args), log=_say)
    compare_and_report(config, progress=not args.quiet, say=_say)
    return 0


def cmd_benchmarks(args: argparse.Namespace) -> int:
    from scalarize.data.loaders import DISK_BENCHMARKS
    from scalarize.data.registry import available_benchmarks, load_benchmark
    from scalarize.report.experiment import format_table

    rows = []
    for name in available_benchmarks():
        if name in DISK_BENCHMARKS:  # datasets on disk: listed, not read
            rows.append([name, *DISK_BENCHMARKS[name]])
            continue
        bench = load_benchmark(name)
        sizes = bench.sizes()
        total = {s: sum(v[s] for v in sizes.values()) for s in ("train", "val", "test")}
        kind = "tasks" if bench.setting == "mtl" else "domains"
        rows.append(
            [
                name,
                bench.setting.upper(),
                f"{kind}: {', '.join(bench.objectives)}",
                "x".join(map(str, bench.input_shape)),
                f"{total['train']}/{total['val']}/{total['test']}",
            ]
        )
    print(format_table(["benchmark", "setting", "objectives", "input", "train/val/test"], rows))
    print("\nOptions: see `scalarize benchmarks --options NAME`." if not args.options else "")
    if args.options:
        from scalarize.data.registry import benchmark_options

        for key, value in benchmark_options(args.options).items():
            print(f"  {key} = {value!r}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from scalarize.cli.experiments import run_demo

    run_demo(Path(args.output), epochs=args.epochs, device=args.device, progress=not args.quiet, say=_say)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from scalarize.cli.reference import config_overview, describe_section

    print(describe_section(args.section) if args.section else config_overview())
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from scalarize.cli.starter import starter

    text = starter(args.command_name, args.benchmark)
    if args.output is None:
        print(text, end="")
        return 0
    path = Path(args.output)
    if path.exists():
        raise UsageError(f"-o: {path} exists; remove it or name another file")
    if not path.parent.is_dir():
        raise UsageError(f"-o: {path.parent} is not a directory")
    path.write_text(text)
    _say(f"wrote {path}; run `scalarize {args.command_name} {path}`")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from scalarize.cli.reference import describe_methods

    print(describe_methods(args.name))
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    """The command line's key=value overrides, with ``--device`` as the last one."""
    return [*args.overrides, *([f"device={args.device}"] if getattr(args, "device", None) else [])]


def _version() -> str:
    import platform

    from scalarize import __version__

    try:
        import torch

        return f"scalarize {__version__} (torch {torch.__version__}, Python {platform.python_version()})"
    except ImportError:  # pragma: no cover - torch is a dependency
        return f"scalarize {__version__}"


class _HelpParser(argparse.ArgumentParser):
    """A parser whose epilog is written when help is asked for (the method names come from the
    registry, which imports torch: bad input is answered before torch loads)."""

    epilog_of: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.epilog_of is not None:
            self.epilog = self.epilog_of()
        return super().format_help()


class _Version(argparse.Action):
    """``--version``: computed when asked for (it names torch's version)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(
            option_strings,
            dest=dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show the versions of scalarize, torch and Python, and exit",
        )

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_version())
        parser.exit()


def _experiment_parser(commands, name: str, help: str, config_help: str, example: str, **kwargs):
    """A command that takes a config and key=value overrides, with --device and -q."""
    from scalarize.cli.reference import epilog

    parser = commands.add_parser(
        name, help=help, description=help, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )
    parser.epilog_of = lambda: epilog(name)
    parser.add_argument("config" if name != "pbt" else "target", help=config_help)
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {example}")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the config's device")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _unrecognized(argument: str, args: argparse.Namespace) -> str:
    """The one line for an argument argparse did not take: an override without ``=``, or an
    unknown option."""
    if not argument.startswith("-") and hasattr(args, "overrides"):
        return f"{argument}: an override is key=value, e.g. optimizer.lr=3e-4"
    return f"unrecognized argument {argument!r}; see `scalarize {args.command} --help`"


def cmd_export(args: argparse.Namespace) -> int:
    """Each format asked for, in turn: ``--csv`` and ``--members`` into ``--to``, ``--onnx`` to
    ``-o`` (see :mod:`scalarize.cli.export`)."""
    from scalarize.store.database import Store

    if not (args.csv or args.members or args.onnx):
        raise UsageError(
            "export: say the format: `scalarize export DIRECTORY --csv` (every table), --members "
            "(members.csv) or --onnx (a model)"
        )
    for flag, value in (("--run", args.run), ("-o", args.output)):
        if value is not None and not args.onnx:
            raise UsageError(f"{flag}: only with --onnx (the run whose model is written, and where)")
    directory = Path(args.directory)
    folder = Path(args.to) if args.to else directory / "export"
    paths: list[Path] = []
    with Store.open_existing(directory) as store:
        if args.csv:
            paths += store.export_csv(folder)
        if args.members:
            from scalarize.cli.export import write_members

            paths.append(write_members(store, folder))
    if args.onnx:
        from scalarize.cli.export import write_onnx

        paths.append(write_onnx(directory, args.run, Path(args.output) if args.output else None))
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalarize",
        description="Train one model on several tasks or domains by scalarization; search and compare weights.",
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_HelpParser)

    train = _experiment_parser(
        commands,
        "train",
        "train a config (and its single-task baselines)",
        "YAML config file (`scalarize init` writes a starter)",
        "optimizer.lr=3e-4 method.name=pcgrad",
    )
    train.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train data-parallel on N local processes (one per GPU with nccl); batch_size is the "
        "global batch (see docs/CLUSTER.md for torchrun on several machines)",
    )
    train.add_argument(
        "--dist-backend",
        choices=["auto", "gloo", "nccl"],
        default="auto",
        help="collective backend with --nproc or torchrun (auto: nccl on GPUs, gloo on CPUs)",
    )
    train.set_defaults(handler=cmd_train)

    sweep = _experiment_parser(
        commands,
        "sweep",
        "train a sweep of weights as a population; report the front",
        "YAML config with a sweep: section (`scalarize init --command sweep`)",
        "sweep.step=0.05",
    )
    sweep.set_defaults(handler=cmd_sweep)

    pbt = _experiment_parser(
        commands,
        "pbt",
        "search weights with PBT/PB2/MO-PBT; `pbt replay DIR` retrains the best schedule",
        "YAML config with a pbt: section (`scalarize init --command pbt`), or `replay`",
        "pbt.population=16 (after replay: the experiment directory)",
    )
    pbt.add_argument(
        "--algorithm",
        choices=["pbt", "pb2", "mo-pbt"],
        help="overrides pbt.algorithm: pbt (truncation by one fitness), pb2 (its explore by a GP "
        "bandit), mo-pbt (Dushatskiy et al. 2023: ranks by non-dominated sorting of the objectives' "
        "validation metrics; the result is the population's front)",
    )
    pbt.add_argument(
        "--diversity",
        choices=["scattered", "crowding", "hypervolume"],
        help="mo-pbt: the order inside a front (overrides pbt.diversity): scattered (the paper's "
        "epsilon-net, default), crowding (NSGA-II crowding distance), hypervolume (exclusive "
        "hypervolume contribution)",
    )
    pbt.add_argument("--backend", choices=["local", "ray"], help="overrides pbt.backend (default local)")
    pbt.add_argument("--address", help="Ray cluster address to join (with --backend ray)")
    pbt.add_argument(
        "--storage",
        help="with --backend ray: where trials checkpoint, a directory every node sees "
        "or s3://... (overrides pbt.storage; default <output>/ray)",
    )
    pbt.add_argument("--sweep", help="experiment directory of a sweep of the same benchmark to compare with")
    pbt.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="replay only: train the schedule and uniform scalarization with these seeds "
        "(default: 3 seeds from the best member's)",
    )
    pbt.add_argument(
        "--trust",
        action="store_true",
        help="replay only: import the import paths (model.target, benchmark.target, a task kind "
        "pkg.mod:Kind) of the config stored in DIRECTORY; without it they are refused, since "
        "whoever wrote the directory chose them (built-in names need no --trust)",
    )
    pbt.set_defaults(handler=cmd_pbt)

    study = _experiment_parser(
        commands,
        "study",
        "the scaling study: best weights and gains over depth x width",
        "YAML config with a study: section (`scalarize init --command study`)",
        "study.depths=[1,2]",
    )
    study.set_defaults(handler=cmd_study)

    compare = _experiment_parser(
        commands,
        "compare",
        "MTO methods against uniform scalarization: same budget, seeds, lr grid",
        "YAML config with a compare: section (`scalarize init --command compare`)",
        "compare.seeds=[0,1]",
    )
    compare.set_defaults(handler=cmd_compare)

    config = commands.add_parser("config", help="the keys of a config section: types, allowed values, defaults")
    config.add_argument(
        "section",
        nargs="?",
        help="train, benchmark, model, method, optimizer, schedule, tracking, "
        "sweep, compare, pbt, study... (none: list them)",
    )
    config.set_defaults(handler=cmd_config)

    init = commands.add_parser(
        "init",
        help="write a starter config for a command, every key commented",
        description="Write a starter config for a command: every key of its schema with its "
        "value and a comment (type, bounds, meaning); values from the shipped "
        "example of the benchmark when there is one.",
    )
    init.add_argument("--benchmark", metavar="B", help="the benchmark (scalarize benchmarks; default: the schema's)")
    init.add_argument(
        "--command",
        dest="command_name",
        default="train",
        metavar="C",
        help="train, sweep, compare, pbt or study (default: %(default)s)",
    )
    init.add_argument("-o", "--output", metavar="FILE", help="write to FILE (refused if it exists; default: stdout)")
    init.set_defaults(handler=cmd_init)

    methods = commands.add_parser("methods", help="the methods a config can name, with their options and defaults")
    methods.add_argument("name", nargs="?", help="one method: its rule, defaults and sources")
    methods.set_defaults(handler=cmd_methods)

    bench = commands.add_parser("benchmarks", help="list the bundled benchmarks")
    bench.add_argument("--options", metavar="NAME", help="show the options of one benchmark")
    bench.set_defaults(handler=cmd_benchmarks)

    demo = commands.add_parser("demo", help="uniform scalarization vs single-task on multimnist and digits")
    demo.add_argument("--output", default="experiments/demo", help="where to write (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=5, help="epochs per run (default: %(default)s)")
    demo.add_argument("--device", choices=["auto", "cpu", "cuda"], help="device of every run (default: auto)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(handler=cmd_demo)

    export = commands.add_parser(
        "export", help="export an experiment: its tables as CSV, a members table, a model as ONNX"
    )
    export.add_argument("directory", help="experiment directory (holds scalarize.db)")
    export.add_argument("--csv", action="store_true", help="one CSV file per table of the store")
    export.add_argument(
        "--members", action="store_true", help="members.csv: one row per run with its weights and final metrics"
    )
    export.add_argument(
        "--onnx",
        action="store_true",
        help="the reported model of --run as ONNX, one output per task (pip install 'scalarize[onnx]')",
    )
    export.add_argument("--run", metavar="NAME", help="with --onnx: the run (default: the main run or PBT's best)")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="with --onnx: the file (default: DIRECTORY/export/RUN.onnx)"
    )
    export.add_argument("--to", help="folder of --csv and --members (default: DIRECTORY/export)")
    export.set_defaults(handler=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_signal_handlers()
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may follow options too: `scalarize train c.yaml -q seed=1`
        unknown = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
        if unknown:
            raise UsageError(_unrecognized(unknown[0], args))
        if extra:
            args.overrides = [*args.overrides, *extra]
        handler: Callable[[argparse.Namespace], int] = args.handler
        if _world_size() > 1 and args.command != "train":
            raise UsageError(
                f"scalarize {args.command}: only `scalarize train` runs on several processes (torchrun); "
                f"run `scalarize {args.command}` alone, or use --backend ray for populations"
            )
        from scalarize.store.database import Store, release_directories

        Store.exclusive = True  # one command per experiment directory at a time
        try:
            return handler(args)
        finally:
            Store.exclusive = False
            release_directories()
    except KeyboardInterrupt as interrupt:
        print("\nscalarize: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    except Exception as error:
        if interrupted_code() is not None:  # e.g. an import a Ctrl-C broke off, failing on its retry
            print("\nscalarize: interrupted; run the same command again to resume", file=sys.stderr)
            return interrupted_code()
        message = describe(error)
        if message is None:
            raise
        print(f"scalarize: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except BaseException:  # not an Exception: e.g. a Rust extension's panic on an import Ctrl-C broke off
        if interrupted_code() is None:
            raise
        print("\nscalarize: interrupted; run the same command again to resume", file=sys.stderr)
        return interrupted_code()


def exit_code(code: int) -> int:
    """``code``, for the process to exit with: after an interrupt, a second signal is ignored
    from here on (see :func:`~scalarize.cli.errors.ignore_further_signals`)."""
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        ignore_further_signals()
    return code


if __name__ == "__main__":
    sys.exit(exit_code(main()))
