"""MTO methods compared with uniform scalarization on equal terms (the same model, budget,
learning rate and seeds): `scalarize compare` from Python, on MultiMNIST. Prints each method's
mean test accuracy per digit and Δm against the single-task models, and writes compare.md and
compare.html to the output directory.

    python examples/compare_methods.py [--small] [--output DIR]
"""

import argparse

from scalarize.experiments.compare import CompareConfig, run_compare
from scalarize.report.compare import summary_rows
from scalarize.report.experiment import format_table


def main(small: bool, output: str):
    methods = [{"name": "pcgrad"}, {"name": "mgda_ub"}, {"name": "uw"}]
    if not small:
        methods += [
            {"name": "cagrad", "options": {"c": 0.4}},
            {"name": "nash_mtl"},
            {"name": "famo"},
            {"name": "upgrad"},
        ]
    config = CompareConfig(
        name="mm-compare",
        benchmark={
            "name": "multimnist",
            "options": {"train_size": 600 if small else 9000, "test_size": 300 if small else 1000},
        },
        model={"family": "mlp", "width": 0.25 if small else 1.0, "depth": 2},
        epochs=1 if small else 10,
        output=output,
        compare={"methods": methods, "seeds": [0] if small else [0, 1, 2]},
    )
    result = run_compare(config, progress=False)
    header, rows = summary_rows(result)  # mean ± std over the seeds, Δm, time per step, memory
    print(format_table(header, rows))
    print(f"report in {output}/compare.html")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a CI-sized run (seconds)")
    parser.add_argument("--output", default="experiments/example-compare")
    args = parser.parse_args()
    main(args.small, args.output)
