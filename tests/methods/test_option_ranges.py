"""Every numeric and choice option of every method: the documented range, its ends accepted or
refused as documented, and the exact one-line ``MethodError`` (naming the method, the key and the
allowed values) for a value outside it or of the wrong type."""

import math

import pytest
from registered import ALL

from scalarize.methods import MethodError, build_method
from scalarize.methods.registry import method_options

#: Options a method cannot be built without.
REQUIRED = {"frozen": {"source": [[0, [0.5, 0.5]]]}}

INF = math.inf

#: (method, option, low, high, low_open, high_open, other options): the documented range.
REAL = [
    ("cagrad", "c", 0, 1, False, True, {}),
    ("cosmos", "penalty", 0, INF, False, True, {}),
    ("cosmos", "alpha", 0, INF, True, True, {}),
    ("db_mtl", "beta", 0, 1, False, True, {}),
    ("db_mtl", "beta_sigma", 0, INF, False, True, {}),
    ("db_mtl", "eps", 0, INF, True, True, {}),
    ("dualproj", "norm_eps", 0, INF, False, True, {}),
    ("dualproj", "reg_eps", 0, INF, True, True, {}),
    ("dwa", "temperature", 0, INF, True, True, {}),
    ("doremi", "step_size", 0, INF, False, True, {}),
    ("doremi", "smoothing", 0, 1, False, False, {}),
    ("doremi", "reference_decay", 0, 1, False, True, {}),
    ("aioli", "eta", 0, INF, False, True, {}),
    ("aioli", "one_hot_factor", 0, 1, False, False, {}),
    ("aioli", "ema", 0, 1, False, True, {}),
    ("excess_mtl", "robust_step_size", 0, INF, True, True, {}),
    ("fairgrad", "alpha", 0, INF, False, True, {}),
    ("fairgrad", "max_norm", 0, INF, False, True, {}),
    ("famo", "lr", 0, INF, False, True, {}),
    ("famo", "weight_decay", 0, INF, False, True, {}),
    ("famo", "eps", 0, INF, False, True, {}),
    ("famo", "max_norm", 0, INF, False, True, {}),
    ("frozen", "beta", 0, 1, False, True, {}),
    ("graddrop", "leak", 0, 1, False, False, {}),
    ("gradnorm", "alpha", 0, INF, False, True, {}),
    ("gradvac", "beta", 0, 1, False, False, {}),
    ("gradvac", "eps", 0, INF, False, True, {}),
    ("imtl_l", "init", -INF, INF, True, True, {}),
    ("metabalance", "relax_factor", 0, 1, False, False, {}),
    ("metabalance", "beta", 0, 1, False, True, {}),
    ("moco", "beta", 0, 1, True, False, {}),
    ("moco", "gamma", 0, INF, True, True, {}),
    ("moco", "rho", 0, INF, False, True, {}),
    ("modo", "gamma", 0, INF, True, True, {}),
    ("modo", "rho", 0, INF, False, True, {}),
    ("mtadam", "eps", 0, INF, False, True, {}),
    ("mtadam", "weight_decay", 0, INF, False, True, {}),
    ("nash_mtl", "max_norm", 0, INF, False, True, {}),
    ("sdmgrad", "lam", 0, INF, False, True, {}),
    ("sdmgrad", "lr", 0, INF, True, True, {}),
    ("sdmgrad", "momentum", 0, 1, False, True, {}),
    ("sdmgrad", "max_norm", 0, INF, False, True, {}),
    ("stch", "mu", 0, INF, True, True, {}),
    ("upgrad", "norm_eps", 0, INF, False, True, {}),
    ("upgrad", "reg_eps", 0, INF, True, True, {}),
    ("uw", "init", -INF, INF, True, True, {}),
    ("mgda", "epsilon", 0, INF, True, True, {"solver": "frank_wolfe"}),
    ("mgda_ub", "epsilon", 0, INF, True, True, {"solver": "frank_wolfe"}),
]

#: (method, option, lowest allowed, other options).
INT = [
    ("excess_mtl", "warmup_steps", 1, {}),
    ("aioli", "lp_rounds", 1, {}),
    ("aioli", "lp_steps", 1, {}),
    ("aioli", "update_steps", 1, {}),
    ("frozen", "start_step", 0, {}),
    ("nash_mtl", "update_weights_every", 1, {}),
    ("sdmgrad", "n_iter", 1, {}),
    ("stch", "warmup_epochs", 0, {}),
    ("mgda", "max_iters", 1, {"solver": "frank_wolfe"}),
    ("mgda_ub", "max_iters", 1, {"solver": "frank_wolfe"}),
]

#: (method, option, allowed values).
CHOICE = [
    ("aligned_mtl", "scale_mode", ("min", "median", "rmse")),
    ("doremi", "mixture", ("current", "average")),
    ("cagrad", "rescale", (0, 1, 2)),
    ("frozen", "reduce", ("mean", "ema", "last")),
    ("gradient_similarity", "mode", ("weighted", "binary")),
    ("gradnorm", "layer", ("last_shared", "representation")),
    ("mgda", "normalization", ("none", "l2", "loss", "loss+")),
    ("mgda", "solver", ("exact", "frank_wolfe")),
    ("mgda_ub", "normalization", ("none", "l2", "loss", "loss+")),
    ("mgda_ub", "solver", ("exact", "frank_wolfe")),
    ("rlw", "distribution", ("normal", "uniform", "dirichlet")),
    ("rlw", "normalization", ("softmax", "sum")),
    ("uw", "form", ("regression", "classification")),
]


#: Options that are neither a range nor a choice, by name, and the test that holds them.
ELSEWHERE = {
    "seed": "test_seeded_behaviour.py (and _common's check_seed)",
    "main_task": "test_main_task.py",
    "betas": "test_betas_are_each_in_zero_one below",
    "min_losses": "test_famo.py",
    "source": "test_frozen.py",
    "run": "test_frozen.py",
    "weights": "test_scalarization.py, test_mtadam.py (check_weights)",
    "schedule": "test_scheduled.py",
    "scale_heads": "test_nash_mtl.py",
    "reference_losses": "test_doremi.py",
    "normalize": "test_aioli.py",
}


@pytest.mark.parametrize("name", ALL)
def test_every_option_of_every_method_has_its_range_tested(name):
    """A registered method's every option is in REAL, INT or CHOICE (or, by name, ELSEWHERE):
    an option added without its range fails here instead of going untested."""
    covered = {(row[0], row[1]) for row in (*REAL, *INT, *CHOICE)}
    missing = [o for o in method_options(name) or [] if (name, o) not in covered and o not in ELSEWHERE]
    assert not missing, f"{name}: add the range of {missing} to tests/methods/test_option_ranges.py"


def _build(name, **options):
    return build_method(name, **{**REQUIRED.get(name, {}), **options})


def _error(name, **options):
    with pytest.raises(MethodError) as error:
        _build(name, **options)
    message = str(error.value)
    assert "\n" not in message
    return message


def _span(low, high, low_open, high_open):
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    lo = "-inf" if low == -INF else f"{low:g}"
    hi = "inf" if high == INF else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


@pytest.mark.parametrize(("name", "key", "low", "high", "low_open", "high_open", "extra"), REAL)
def test_real_options_take_their_range_and_no_more(name, key, low, high, low_open, high_open, extra):
    span = _span(low, high, low_open, high_open)
    for value in (low, high):  # the ends
        if not math.isfinite(value):
            continue
        is_open = low_open if value == low else high_open
        if is_open:
            assert _error(name, **extra, **{key: value}) == f"method {name}: {key} must be in {span}, got {value}"
        else:
            assert getattr(_build(name, **extra, **{key: value}), key, value) == value
    if math.isfinite(low):
        below = low - 0.5
        assert _error(name, **extra, **{key: below}) == f"method {name}: {key} must be in {span}, got {below}"
    if math.isfinite(high):
        above = high + 0.5
        assert _error(name, **extra, **{key: above}) == f"method {name}: {key} must be in {span}, got {above}"
    inside = (low + high) / 2 if math.isfinite(high) else (low + 2.5 if math.isfinite(low) else -3.5)
    built = _build(name, **extra, **{key: inside})
    if hasattr(built, key):
        assert getattr(built, key) == inside
    for wrong in (True, "0.5", math.nan, math.inf):
        assert _error(name, **extra, **{key: wrong}) == f"method {name}: {key} must be a finite number, got {wrong!r}"


@pytest.mark.parametrize(("name", "key", "lowest", "extra"), INT)
def test_integer_options_take_their_range_and_no_more(name, key, lowest, extra):
    built = _build(name, **extra, **{key: lowest})
    if hasattr(built, key):
        assert getattr(built, key) == lowest
    assert _error(name, **extra, **{key: lowest - 1}) == f"method {name}: {key} must be >= {lowest}, got {lowest - 1}"
    for wrong in (True, 2.0, "3"):
        assert _error(name, **extra, **{key: wrong}) == f"method {name}: {key} must be an integer, got {wrong!r}"


@pytest.mark.parametrize(("name", "key", "allowed"), CHOICE)
def test_choice_options_take_the_listed_values_only(name, key, allowed):
    extra = {"distribution": "uniform"} if (name, key) == ("rlw", "normalization") else {}
    for value in allowed:
        built = _build(name, **extra, **{key: value})
        if hasattr(built, key):
            assert getattr(built, key) == value
    listed = ", ".join(repr(a) for a in allowed)
    assert _error(name, **{key: "other"}) == f"method {name}: {key} must be one of {listed}, got 'other'"


@pytest.mark.parametrize("name", ["famo", "mtadam"])
def test_betas_are_each_in_zero_one(name):
    size = 2 if name == "famo" else 3
    good = [0.5] * size
    for k in range(size):
        for value, message in ((1.0, "1.0"), (-0.1, "-0.1")):
            betas = list(good)
            betas[k] = value
            assert _error(name, betas=tuple(betas)) == f"method {name}: betas[{k}] must be in [0, 1), got {message}"
        betas = list(good)
        betas[k] = 0.0
        assert _build(name, betas=tuple(betas)).betas == tuple(betas)
    words = "two" if name == "famo" else "three"
    assert (
        _error(name, betas=(0.5,) * (size + 1))
        == f"method {name}: betas must be {words} numbers, got {(0.5,) * (size + 1)!r}"
    )
