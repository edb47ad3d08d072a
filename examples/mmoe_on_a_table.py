"""An MMoE (Ma et al., KDD 2018) on a table: one binary task per target column, trained with
uniform scalarization and with PCGrad on the shared representation; test AUC per task.

The table is Census-Income (KDD), the MMoE paper's group 1 (income > 50K, never married), when
../shared/data/census-income-kdd holds it (or --census DIR); otherwise, and always with --small,
a generated table of impressions (dense, categorical and a derived click-and-purchase target)
read by scalarize.data.tabular like a Parquet file of your own.

    python examples/mmoe_on_a_table.py [--small] [--census DIR]
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from scalarize import TrainConfig, Trainer
from scalarize.data import load_benchmark
from scalarize.data.tabular import benchmark_from_table
from scalarize.methods import build_method
from scalarize.models import build_model

CENSUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "census-income-kdd"


def generated_table(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Impressions: a click depends on price, age and the item; a purchase (after a click) on the city."""
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 50, rows)
    city = rng.integers(0, 10, rows)
    price, age = rng.lognormal(3, 0.5, rows), rng.integers(18, 80, rows).astype(float)
    logit = 0.8 * np.sin(item) - 0.02 * (price - 20) + 0.01 * (age - 40)
    click = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    purchase = click * (rng.random(rows) < np.where(city < 3, 0.6, 0.1))
    return {
        "price": price,
        "age": age,
        "item_id": item.astype(str),
        "city": city.astype(str),
        "click": click,
        "purchase": purchase,
    }


def benchmark(small: bool, census: Path | None):
    if census is not None and not small and census.is_dir():
        return load_benchmark("census_income", root=str(census), tasks="group1")
    return benchmark_from_table(
        generated_table(2000 if small else 100_000),
        dense=["price", "age"],
        categorical=["item_id", "city"],
        targets={"ctr": "click", "ctcvr": "click * purchase"},
        split={"val": 0.15, "test": 0.15, "seed": 0},
    )


def main(small: bool, census: Path | None) -> dict[str, dict[str, float]]:
    bench = benchmark(small, census)
    print(f"{bench.name}: tasks {[t.name for t in bench.tasks]}, {bench.input_shape[0]} packed columns")
    results = {}
    for label, method in [
        ("uniform", build_method("scalarization")),
        ("pcgrad on Z", build_method("pcgrad", gradients="representation")),
    ]:
        torch.manual_seed(0)
        model = build_model(
            "mmoe",
            bench.input_shape,
            bench.tasks,
            width=0.5 if small else 1.0,
            features=bench.extras["features"],
            experts=4 if small else 8,
        )
        config = TrainConfig(epochs=1 if small else 5, batch_size=256, device="cpu")
        result = Trainer(config, bench, model, method, progress=False).fit()
        results[label] = {t.name: result.test[f"{t.name}/auc"] for t in bench.tasks}
        print(f"{label:12s} " + "  ".join(f"{k} AUC {v:.4f}" for k, v in results[label].items()))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a CI-sized run on a generated table (seconds)")
    parser.add_argument("--census", type=Path, default=CENSUS, help="Census-Income (KDD) folder")
    args = parser.parse_args()
    main(args.small, args.census)
