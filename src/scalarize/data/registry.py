"""Benchmarks by the name configs use, with their options checked before anything loads."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from scalarize.data.benchmark import Benchmark
from scalarize.data.bundled.digits import digits
from scalarize.data.bundled.multimnist import multimnist
from scalarize.data.bundled.multimnist_dense import multimnist_dense
from scalarize.data.bundled.synthetic import synthetic, synthetic_linear
from scalarize.data.errors import BenchmarkError
from scalarize.data.loaders import celeba, cifar_stl, domainnet
from scalarize.data.loaders.census_income import census_income
from scalarize.data.loaders.cityscapes import cityscapes
from scalarize.data.loaders.nyuv2 import nyuv2
from scalarize.data.loaders.qm9 import qm9
from scalarize.data.tabular import table

_BENCHMARKS: dict[str, Callable[..., Benchmark]] = {}


def register_benchmark(name: str, builder: Callable[..., Benchmark]) -> None:
    """Adds a benchmark; ``builder(**options)`` returns a :class:`Benchmark`."""
    _BENCHMARKS[name] = builder


def available_benchmarks() -> list[str]:
    return sorted(_BENCHMARKS)


def benchmark_options(name: str) -> dict[str, Any]:
    """The options a benchmark accepts, with their defaults."""
    builder = _get(name)
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def load_benchmark(name: str, **options: Any) -> Benchmark:
    """Builds a benchmark by name; unknown names or options raise :class:`BenchmarkError`."""
    allowed = benchmark_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BenchmarkError(
            f"benchmark.options.{unknown[0]}: unknown option for {name!r}; allowed: {', '.join(allowed)}"
        )
    for key, value in options.items():
        default = allowed[key]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BenchmarkError(f"benchmark.options.{key}: expected a number, got {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                raise BenchmarkError(f"benchmark.options.{key}: expected an integer, got {value!r}")
    try:
        return _BENCHMARKS[name](**options)
    except ValueError as error:
        raise BenchmarkError(f"benchmark {name!r}: {error}") from None


def _get(name: str) -> Callable[..., Benchmark]:
    if name not in _BENCHMARKS:
        raise BenchmarkError(
            f"benchmark.name: unknown benchmark {name!r}; allowed: {', '.join(available_benchmarks())}"
        )
    return _BENCHMARKS[name]


for _name, _builder in (
    ("multimnist", multimnist),
    ("digits", digits),
    ("synthetic", synthetic),
    ("synthetic_linear", synthetic_linear),
    ("celeba", celeba),
    ("domainnet", domainnet),
    ("cifar_stl", cifar_stl),
    ("qm9", qm9),
    ("nyuv2", nyuv2),
    ("cityscapes", cityscapes),
    ("multimnist_dense", multimnist_dense),
    ("table", table),
    ("census_income", census_income),
):
    register_benchmark(_name, _builder)
