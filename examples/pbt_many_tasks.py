"""Population-based training of the weights of K = 8 synthetic regression tasks whose loss
scales are spread 10x: PBT's cost is that of its N members however many tasks there are (a
lattice over 8 weights would not be). Prints the best member's final weights and its fitness
against uniform scalarization trained on the same budget.

    python examples/pbt_many_tasks.py [--small] [--tasks K] [--output DIR]
"""

import argparse

from scalarize.experiments.pbt import PBTConfig, run_pbt


def main(small: bool, tasks: int, output: str):
    config = PBTConfig(
        name="pbt-many",
        benchmark={
            "name": "synthetic",
            "options": {
                "num_tasks": tasks,
                "scale_spread": 10.0,
                **({"train_size": 512, "val_size": 256, "test_size": 256} if small else {}),
            },
        },
        model={"family": "mlp", "width": 0.25 if small else 0.5, "depth": 2},
        method={"name": "scalarization"},
        epochs=3 if small else 20,
        output=output,
        pbt={"population": 4 if small else 8, "interval": 1, "quantile": 0.25, "factors": [0.8, 1.2]},
    )
    result = run_pbt(config, progress=False)
    weights = result.schedule[-1][1]  # the best member's weights at its last change
    print(f"best of {len(result.members)} members: fitness {result.fitness[result.best]:.4f} (validation)")
    print("its final weights: " + ", ".join(f"{w:.3f}" for w in weights))

    def mean_mse(test):
        return sum(v for k, v in test.items() if k.endswith("/mse")) / tasks

    print(f"PBT best, mean test MSE over the {tasks} tasks: {mean_mse(result.test):.4f}")
    if result.uniform is not None:
        print(f"uniform scalarization, same budget:        {mean_mse(result.uniform.test):.4f}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a CI-sized run (seconds)")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--output", default="experiments/example-pbt")
    args = parser.parse_args()
    main(args.small, args.tasks, args.output)
