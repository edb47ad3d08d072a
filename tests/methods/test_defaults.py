"""Every method's defaults, as documented: the constructor's signature, the built method's
attributes, and the module docstring (which must name each option and its default value).
Changing a default means changing this table, the docstring and the README together."""

import inspect

import pytest
import torch
from registered import ALL

from scalarize.methods import available_methods, build_method
from scalarize.methods.registry import _METHODS, method_options

REQUIRED = object()

DEFAULTS = {
    "scalarization": {"weights": None},
    "scheduled_scalarization": {"schedule": REQUIRED},
    "uw": {"init": 0.0, "form": "regression"},
    "imtl_l": {"init": 0.0},
    "dwa": {"temperature": 2.0},
    "rlw": {"distribution": "normal", "normalization": "softmax", "seed": None},
    "famo": {"lr": 0.025, "weight_decay": 1e-3, "min_losses": 0.0, "betas": (0.9, 0.999), "eps": 1e-8, "max_norm": 0.0},
    "gradnorm": {"alpha": 1.5, "layer": "last_shared"},
    "pcgrad": {"seed": None},
    "gradvac": {"beta": 0.5, "eps": 1e-8, "seed": None},
    "graddrop": {"leak": 0.0, "seed": None},
    "mgda": {"normalization": "none", "solver": "exact", "epsilon": None, "max_iters": None},
    "mgda_ub": {"normalization": "none", "solver": "exact", "epsilon": None, "max_iters": None},
    "cagrad": {"c": 0.4, "rescale": 1},
    "imtl_g": {},
    "nash_mtl": {"max_norm": 1.0, "update_weights_every": 1, "scale_heads": False},
    "aligned_mtl": {"scale_mode": "min"},
    "upgrad": {"norm_eps": 1e-4, "reg_eps": 1e-4},
    "gradient_similarity": {"main_task": None, "mode": "weighted"},
    "metabalance": {"main_task": None, "relax_factor": 0.7, "beta": 0.9},
    "mtadam": {"betas": (0.9, 0.999, 0.9), "eps": 1e-8, "weight_decay": 0.0, "weights": None},
    "stch": {"mu": 1.0, "warmup_epochs": 5},
    "cosmos": {"penalty": 2.0, "alpha": 1.2, "seed": None},
    "gls": {},
    "db_mtl": {"beta": 0.9, "beta_sigma": 0.0, "eps": 1e-8},
    "excess_mtl": {"robust_step_size": 1e-2, "warmup_steps": 1},
    "fairgrad": {"alpha": 2.0, "max_norm": 0.0},
    "sdmgrad": {"lam": 0.3, "lr": 10.0, "momentum": 0.5, "n_iter": 20, "max_norm": 0.0},
    "modo": {"gamma": 0.1, "rho": 0.1},
    "moco": {"beta": 0.1, "gamma": 0.1, "rho": 0.1},
    "config": {},
    "dualproj": {"norm_eps": 1e-4, "reg_eps": 1e-4},
    "doremi": {
        "step_size": 1.0,
        "smoothing": 1e-3,
        "reference_losses": None,
        "reference_decay": 0.9,
        "mixture": "current",
    },
    "aioli": {
        "eta": 0.2,
        "lp_rounds": 4,
        "lp_steps": 4,
        "one_hot_factor": 0.625,
        "update_steps": 250,
        "ema": 0.1,
        "normalize": True,
    },
    "frozen": {"source": REQUIRED, "run": None, "reduce": "mean", "beta": 0.9, "start_step": 0},
}
#: Values for the required options, to build the method.
REQUIRED_VALUES = {"schedule": [(0, [0.5, 0.5])], "source": [[0, [0.5, 0.5]]]}


def test_every_registered_method_is_listed():
    assert sorted(DEFAULTS) == available_methods()


@pytest.mark.parametrize("name", ALL)
def test_signature_defaults_are_the_documented_ones(name):
    assert method_options(name) == list(DEFAULTS[name]), "options (in order) as documented"
    parameters = inspect.signature(_METHODS[name].__init__).parameters
    for option, value in DEFAULTS[name].items():
        default = parameters[option].default
        if value is REQUIRED:
            assert default is inspect.Parameter.empty
        else:
            assert default == value and type(default) is type(value), (option, default)


def _formats(value):
    if isinstance(value, bool):
        return {str(value), str(value).lower()}
    if isinstance(value, str):
        return {f'"{value}"', f"'{value}'", f"``{value}``"}
    if isinstance(value, tuple):
        return {str(value)}
    if isinstance(value, (int, float)):
        out = {repr(value), f"{value:g}", f"{float(value):.0e}".replace("e-0", "e-").replace("e+0", "e")}
        if float(value).is_integer():
            out.add(str(int(value)))
        return out
    return set()


@pytest.mark.parametrize("name", ALL)
def test_docstring_names_every_option_and_its_default(name):
    module = inspect.getmodule(_METHODS[name])
    doc = " ".join((module.__doc__ or "").split())
    for option, value in DEFAULTS[name].items():
        assert f"``{option}``" in doc, f"{name}: option {option} not documented"
        if value is REQUIRED or value is None:
            continue
        starts = [i for i in range(len(doc)) if doc.startswith(f"``{option}``", i)]
        windows = [doc[i : i + 160] for i in starts]
        assert any(text in w for w in windows for text in _formats(value)), (
            f"{name}: default {option}={value!r} not documented"
        )


@pytest.mark.parametrize("name", ALL)
def test_the_built_method_holds_its_defaults(name):
    options = {k: REQUIRED_VALUES[k] for k, v in DEFAULTS[name].items() if v is REQUIRED}
    method = build_method(name, **options)
    for option, value in DEFAULTS[name].items():
        if value is REQUIRED or not hasattr(method, option):
            continue
        held = getattr(method, option)
        if isinstance(held, torch.Tensor):
            continue
        assert held == value, (option, held)
