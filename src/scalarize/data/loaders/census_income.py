"""Census-Income (KDD) (UCI; T. Lane and R. Kohavi, from the 1994/95 Current Population Surveys)
from local disk, as binary tasks on table rows (:mod:`scalarize.data.tabular`).

Reads the published files under ``root``, either or both::

    root/census-income.data.gz   199,523 rows (the training half)
    root/census-income.test.gz    99,762 rows (the test half)

each 42 comma-separated fields without a header, in the order of ``census-income.names``
(:data:`COLUMNS`: 40 features, the instance weight in field 25, the income label ``- 50000.`` /
``50000+.`` last); values are trimmed of the space after each comma. The instance weight is not
used (neither feature nor loss weight), as in the MMoE paper.

**Splits.** Both files: train is the data file; the test file is split in half, val and test, by
``seed`` (the MMoE paper's protocol: Ma et al., KDD 2018, section 6.3). One file alone (as in
``../shared/data/census-income-kdd/``, the test half only): a seeded 70/15/15 train/val/test
partition of its rows, so numbers are not comparable to the paper's.

**Task groups** (option ``tasks``); each task's source columns are dropped from the features:

* ``group1`` (MMoE §6.3): ``income`` (income > 50K), ``marital`` (marital status "Never married");
* ``group2`` (MMoE §6.3): ``education`` (at least some college: "Some college but no degree", an
  associate, bachelor, master, professional or doctoral degree), ``marital``;
* ``many``: eight targets from the data's own columns, two of them masked where the survey item
  does not apply (label NaN): ``income``, ``marital``, ``education``, ``female`` (sex),
  ``full_year`` (worked 52 weeks), ``investment`` (capital gains, losses or stock dividends > 0),
  ``union`` (union member; defined where the item is not "Not in universe", ~10% of rows),
  ``moved`` (did not live in this house a year ago; defined where the item is Yes or No, ~49%).

Features: the 7 continuous fields (age, wage per hour, capital gains, capital losses, dividends,
persons worked for the employer, weeks worked) dense, the other 33 (the industry, occupation,
self-employment, veterans' benefits and year codes included) categorical, all minus the task
sources. ``moved`` drops the four migration codes and the previous region and state too (they say
"Nonmover" or "Not in universe" for those who did not move: with them its
test AUC is 1.0). Some remaining fields still correlate with a target (household status with
marital status): the paper's protocol keeps them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scalarize.data.benchmark import SPLITS, Benchmark
from scalarize.data.errors import DataFileError, MissingDataError
from scalarize.data.loaders._common import resolve_root
from scalarize.data.tabular import benchmark_from_table

FILES = ("census-income.data.gz", "census-income.test.gz")
NEEDS = "Census-Income (KDD) needs census-income.data.gz and/or census-income.test.gz under root"

#: The 42 fields of census-income.names, in order (names as in drawbridge/keras-mmoe).
COLUMNS = (
    "age",
    "class_worker",
    "det_ind_code",
    "det_occ_code",
    "education",
    "wage_per_hour",
    "hs_college",
    "marital_stat",
    "major_ind_code",
    "major_occ_code",
    "race",
    "hisp_origin",
    "sex",
    "union_member",
    "unemp_reason",
    "full_or_part_emp",
    "capital_gains",
    "capital_losses",
    "stock_dividends",
    "tax_filer_stat",
    "region_prev_res",
    "state_prev_res",
    "det_hh_fam_stat",
    "det_hh_summ",
    "instance_weight",
    "mig_chg_msa",
    "mig_chg_reg",
    "mig_move_reg",
    "mig_same",
    "mig_prev_sunbelt",
    "num_emp",
    "fam_under_18",
    "country_father",
    "country_mother",
    "country_self",
    "citizenship",
    "own_or_self",
    "vet_question",
    "vet_benefits",
    "weeks_worked",
    "year",
    "income_50k",
)
DENSE = ("age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp", "weeks_worked")
UNUSED = ("instance_weight",)

COLLEGE = (
    "Some college but no degree",
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)

#: task -> (label expression, where expression or None, source columns dropped from the features)
TARGETS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "income": ("income_50k == '50000+.'", None, ("income_50k",)),
    "marital": ("marital_stat == 'Never married'", None, ("marital_stat",)),
    "education": (f"education in {list(COLLEGE)!r}", None, ("education",)),
    "female": ("sex == 'Female'", None, ("sex",)),
    "full_year": ("weeks_worked == 52", None, ("weeks_worked",)),
    "investment": (
        "capital_gains > 0 or capital_losses > 0 or stock_dividends > 0",
        None,
        ("capital_gains", "capital_losses", "stock_dividends"),
    ),
    "union": ("union_member == 'Yes'", "union_member != 'Not in universe'", ("union_member",)),
    "moved": (
        "mig_same == 'No'",
        "mig_same in ['Yes', 'No']",
        (
            "mig_same",
            "mig_chg_msa",
            "mig_chg_reg",
            "mig_move_reg",
            "mig_prev_sunbelt",
            "region_prev_res",
            "state_prev_res",
        ),
    ),
}
GROUPS = {
    "group1": ("income", "marital"),
    "group2": ("education", "marital"),
    "many": tuple(TARGETS),
}


def read_census(path: Path) -> pa.Table:
    """One published file as a table of :data:`COLUMNS`, strings trimmed."""
    import pyarrow.csv as csv

    try:
        table = csv.read_csv(path, read_options=csv.ReadOptions(column_names=list(COLUMNS)))
    except pa.ArrowInvalid as error:
        raise DataFileError(
            f"{path}: not the published layout (42 comma-separated fields, no header): {str(error).splitlines()[0]}"
        ) from None
    trimmed = [pc.utf8_trim_whitespace(c) if pa.types.is_string(c.type) else c for c in table.columns]
    table = pa.table(dict(zip(COLUMNS, trimmed)))
    labels = set(pc.unique(table.column("income_50k")).to_pylist())
    if not labels <= {"- 50000.", "50000+."}:
        raise DataFileError(f"{path}: field 42 must be '- 50000.' or '50000+.', got {sorted(map(str, labels))[:3]}")
    return table


def _partition(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded partition of ``range(n)`` with these fractions (the last takes the rest), sorted."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([round(f * n) for f in fractions[:-1]])
    return [np.sort(part) for part in np.split(order, cuts)]


def census_income(root: str | None = None, tasks: str = "group1", seed: int = 0, min_count: int = 1) -> Benchmark:
    """MTL benchmark: the binary tasks of ``tasks`` (``group1``, ``group2`` or ``many``; module
    docstring) on Census-Income (KDD) rows, primary metric AUC.

    Args:
        root: the folder holding the published ``.gz`` files; default
            ``$SCALARIZE_DATA/census-income-kdd``.
        tasks: the task group.
        seed: the seed of the val/test (and, with one file, train) partition.
        min_count: categorical values seen fewer times in training map to id 0.
    """
    if tasks not in GROUPS:
        raise ValueError(f"tasks: expected one of {', '.join(GROUPS)}, got {tasks!r}")
    folder = resolve_root(root, "census-income-kdd", NEEDS)
    present = [folder / f for f in FILES if (folder / f).is_file()]
    if not present:
        raise MissingDataError(f"{folder}: no {' or '.join(FILES)} ({NEEDS})")
    tables = {p.name: read_census(p) for p in present}
    if len(tables) == 2:
        test = tables[FILES[1]]
        val_rows, test_rows = _partition(test.num_rows, (0.5, 0.5), seed)
        parts = {
            "train": tables[FILES[0]],
            "val": test.take(pa.array(val_rows)),
            "test": test.take(pa.array(test_rows)),
        }
        protocol = "train: census-income.data; val/test: halves of census-income.test"
    else:
        (only,) = tables.values()
        rows = _partition(only.num_rows, (0.70, 0.15, 0.15), seed)
        parts = {s: only.take(pa.array(r)) for s, r in zip(SPLITS, rows)}
        protocol = f"70/15/15 of {present[0].name} alone (seed {seed})"
    chosen = GROUPS[tasks]
    dropped = {c for t in chosen for c in TARGETS[t][2]} | set(UNUSED)
    dense = [c for c in DENSE if c not in dropped]
    categorical = [c for c in COLUMNS if c not in DENSE and c not in dropped]
    targets = {t: {"label": TARGETS[t][0], "where": TARGETS[t][1]} for t in chosen}
    return benchmark_from_table(
        parts,
        dense=dense,
        categorical=categorical,
        targets=targets,
        min_count=min_count,
        name="census_income",
        description=f"Census-Income (KDD), {tasks}: {', '.join(chosen)}; {protocol}",
    )
