"""The ``scalarize`` command.

Bad input ends with one line on stderr naming the key or file and what is allowed, exit code 2,
and nothing written. An interrupted command is resumed by running it again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from scalarize.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    UsageError,
    describe,
    install_signal_handlers,
)


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from scalarize.train.config import load_config

    config = load_config(args.config, args.overrides)  # bad input fails before torch is imported
    from scalarize.cli.experiments import run_and_report

    run_and_report(config, progress=not args.quiet, say=_say)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from scalarize.cli.experiments import sweep_and_report
    from scalarize.experiments.sweep import load_sweep_config

    config = load_sweep_config(args.config, args.overrides)
    sweep_and_report(config, progress=not args.quiet, say=_say)
    return 0


def cmd_pbt(args: argparse.Namespace) -> int:
    if args.target == "replay":
        from scalarize.cli.experiments import replay_and_report

        if len(args.overrides) != 1 or "=" in args.overrides[0]:
            raise UsageError("usage: scalarize pbt replay DIRECTORY")
        replay_and_report(Path(args.overrides[0]), progress=not args.quiet, say=_say)
        return 0
    from scalarize.cli.experiments import pbt_and_report
    from scalarize.experiments.pbt import load_pbt_config

    overrides = list(args.overrides)
    overrides += [f"pbt.{key}={value}" for key, value in
                  (("backend", args.backend), ("address", args.address), ("algorithm", args.algorithm)) if value]
    config = load_pbt_config(args.target, overrides)
    pbt_and_report(config, sweep=Path(args.sweep) if args.sweep else None, progress=not args.quiet, say=_say)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from scalarize.cli.experiments import study_and_report
    from scalarize.experiments.study import load_study_config

    config = load_study_config(args.config, args.overrides)
    study_and_report(config, progress=not args.quiet, say=_say)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from scalarize.cli.compare import compare_and_report
    from scalarize.experiments.compare import load_compare_config

    config = load_compare_config(args.config, args.overrides)
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
            [name, bench.setting.upper(), f"{kind}: {', '.join(bench.objectives)}",
             "x".join(map(str, bench.input_shape)), f"{total['train']}/{total['val']}/{total['test']}"]
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

    run_demo(Path(args.output), epochs=args.epochs, progress=not args.quiet, say=_say)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from scalarize.store.database import Store

    directory = Path(args.directory)
    with Store.open_existing(directory) as store:
        paths = store.export_csv(Path(args.to) if args.to else directory / "export")
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalarize",
        description="Train one model on several tasks or domains by scalarization; search and compare weights.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a config (and its single-task baselines)")
    train.add_argument("config", help="YAML config file (see configs/)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optimizer.lr=3e-4")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train)

    sweep = commands.add_parser("sweep", help="train a sweep of weights as a population; report the front")
    sweep.add_argument("config", help="YAML config with a sweep: section (see configs/*-sweep.yaml)")
    sweep.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sweep.step=0.05")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=cmd_sweep)

    pbt = commands.add_parser("pbt", help="search weights with PBT/PB2; `pbt replay DIR` retrains the best schedule")
    pbt.add_argument("target", help="YAML config with a pbt: section, or `replay`")
    pbt.add_argument("overrides", nargs="*", help="key=value overrides (or, after replay, the experiment directory)")
    pbt.add_argument("--algorithm", choices=["pbt", "pb2"], help="overrides pbt.algorithm")
    pbt.add_argument("--backend", choices=["local", "ray"], help="overrides pbt.backend (default local)")
    pbt.add_argument("--address", help="Ray cluster address to join (with --backend ray)")
    pbt.add_argument("--sweep", help="experiment directory of a sweep of the same benchmark to compare with")
    pbt.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pbt.set_defaults(handler=cmd_pbt)

    study = commands.add_parser("study", help="the scaling study: best weights and gains over depth x width")
    study.add_argument("config", help="YAML config with a study: section (see configs/*-study.yaml)")
    study.add_argument("overrides", nargs="*", help="key=value overrides, e.g. study.depths=[1,2]")
    study.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    study.set_defaults(handler=cmd_study)

    compare = commands.add_parser("compare", help="MTO methods against uniform scalarization: same budget, seeds, lr grid")
    compare.add_argument("config", help="YAML config with a compare: section (see configs/*-compare.yaml)")
    compare.add_argument("overrides", nargs="*", help="key=value overrides, e.g. compare.seeds=[0,1]")
    compare.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    compare.set_defaults(handler=cmd_compare)

    bench = commands.add_parser("benchmarks", help="list the bundled benchmarks")
    bench.add_argument("--options", metavar="NAME", help="show the options of one benchmark")
    bench.set_defaults(handler=cmd_benchmarks)

    demo = commands.add_parser("demo", help="uniform scalarization vs single-task on multimnist and digits")
    demo.add_argument("--output", default="experiments/demo", help="where to write (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=5, help="epochs per run (default: %(default)s)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(handler=cmd_demo)

    export = commands.add_parser("export", help="export an experiment's database")
    export.add_argument("directory", help="experiment directory (holds scalarize.db)")
    export.add_argument("--csv", action="store_true", required=True, help="one CSV file per table")
    export.add_argument("--to", help="destination folder (default: DIRECTORY/export)")
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
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if extra:
            args.overrides = [*args.overrides, *extra]
        handler: Callable[[argparse.Namespace], int] = args.handler
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
        message = describe(error)
        if message is None:
            raise
        print(f"scalarize: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
