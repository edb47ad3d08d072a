"""QM9 (Ramakrishnan et al., Scientific Data 2014) from the ``qm9pack`` package, as a graph
benchmark with the 11 targets Nash-MTL (Navon et al., ICML 2022) and FAMO (Liu et al., NeurIPS
2023) learn together.

Data: ``qm9pack`` 1.0.3 ships the 130,831 molecules of QM9 (the 3,054 whose geometry failed the
consistency check are not in it) as CSV files: elements, B3LYP/6-31G(2df,p) geometries in Å and
the properties in atomic units. It is installed with scalarize; nothing is downloaded. The files
are parsed once and the arrays cached in ``$SCALARIZE_CACHE``.

Targets (``TARGETS``, in Nash-MTL's order, PyTorch Geometric's ``QM9`` indices 0, 1, 2, 3, 5, 6,
12, 13, 14, 15, 11; the HOMO–LUMO gap, index 4, is left out as it is their difference), in
PyTorch Geometric's units: ``mu`` dipole moment (D), ``alpha`` isotropic polarizability (a₀³),
``homo``, ``lumo`` (eV), ``r2`` electronic spatial extent (a₀²), ``zpve`` (eV), ``U0``, ``U``,
``H``, ``G``: atomization energies at 0 K and 298.15 K (eV; the total energy minus the atoms'
reference energies of QM9's ``atomref`` table, as DimeNet and PyTorch Geometric define them),
``cv`` heat capacity (cal/mol K). Energies are converted with 1 Ha = 27.211386246 eV.

Protocol (Nash-MTL's ``experiments/quantum_chemistry``, which FAMO reuses): a random permutation
of the molecules (``split_seed``), the first 10,000 for test, the next 10,000 for validation, the
remaining 110,831 for training; each target standardised with the mean and standard deviation
of the training split (Nash-MTL's code reads them from ``train_dataset.data``, which in PyTorch
Geometric is the whole in-memory dataset: a difference of a few parts in a thousand); the loss is
the MSE on the standardised targets; the reported metric is the MAE in the original units, with
``homo``, ``lumo``, ``zpve``, ``U0``, ``U``, ``H`` and ``G`` in meV. Each task is a
``normalized_regression`` task (:mod:`scalarize.data.dense`), its ``mae`` in those units.
``max_train`` and ``max_eval`` take fixed random subsets of the splits (the normalisation stays
that of the full training split) for budgets smaller than the paper's.

Graphs (``collate_molecules``): one node per atom, edges between every ordered pair of atoms of
a molecule (``graph: complete``, as Nash-MTL's ``Complete`` transform) or between bonded atoms
only (``graph: bonds``, cheaper). PyTorch Geometric builds node and edge features from the SDF
files with RDKit; here the same 11 node and 5 edge features are derived from the geometry, so
that no SDF file and no RDKit are needed:

* bonds: atoms i, j are bonded when their distance is below r_i + r_j + 0.4 Å (single-bond
  covalent radii, Pyykkö & Atsumi 2009: H 0.32, C 0.75, N 0.71, O 0.63, F 0.64 Å); the bond's
  class is the nearest of the single, "aromatic" (midpoint of single and double), double and
  triple bond lengths that the single-, double- (Pyykkö & Atsumi 2009: C 0.67, N 0.60, O 0.57,
  F 0.59) and triple-bond radii (Pyykkö, Riedel & Patzschke 2005: C 0.60, N 0.54, O 0.53,
  F 0.53) predict; H has single bonds only;
* node features (PyTorch Geometric's layout): one-hot H, C, N, O, F; atomic number; aromatic
  (an aromatic bond); sp, sp2, sp3 (a triple bond or two double bonds; a double or aromatic bond;
  neither — heavy atoms only); the number of bonded hydrogens;
* edge features: the one-hot bond class (single, double, triple, aromatic; zeros for non-bonded
  pairs of the complete graph) and the distance in Å (PyTorch Geometric's ``Distance(norm=False)``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from scalarize.data.benchmark import Benchmark
from scalarize.data.cache import cached_arrays
from scalarize.data.loaders._common import BoundedSplit, DataFileError, MissingDataError, check_int, choose_names
from scalarize.data.task import Task

TARGETS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "cv")
#: Units of the MAE each target reports (Nash-MTL: meV for the energies).
UNITS = {
    "mu": "D",
    "alpha": "a0^3",
    "homo": "meV",
    "lumo": "meV",
    "r2": "a0^2",
    "zpve": "meV",
    "U0": "meV",
    "U": "meV",
    "H": "meV",
    "G": "meV",
    "cv": "cal/mol K",
}
MEV = {"homo", "lumo", "zpve", "U0", "U", "H", "G"}
HARTREE_EV = 27.211386246
#: Single-task MAEs of Nash-MTL's code (``experiments/quantum_chemistry/utils.py``, ``BASE``;
#: Navon et al. 2022, Table 2), in the units above: the reference of Δm as the papers compute it.
PUBLISHED_SINGLE_TASK = {
    "mu": 0.0671,
    "alpha": 0.1814,
    "homo": 60.576,
    "lumo": 53.915,
    "r2": 0.5027,
    "zpve": 4.539,
    "U0": 58.838,
    "U": 64.244,
    "H": 63.852,
    "G": 66.223,
    "cv": 0.07212,
}
ELEMENTS = ("H", "C", "N", "O", "F")
ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
#: QM9's atomref table (B3LYP/6-31G(2df,p), Hartree): U0, U(298.15 K), H(298.15 K), G(298.15 K).
ATOM_REFERENCE = {
    "H": (-0.500273, -0.498857, -0.497912, -0.510927),
    "C": (-37.846772, -37.845355, -37.844411, -37.861317),
    "N": (-54.583861, -54.582445, -54.581501, -54.598897),
    "O": (-75.064579, -75.063163, -75.062219, -75.079532),
    "F": (-99.718730, -99.717314, -99.716370, -99.733544),
}
COLUMNS = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "U0": "InternalEnergy_0K_au",
    "U": "InternalEnergy_298K_au",
    "H": "Enthalphy_298K_au",
    "G": "GibbsFreeEnergy_298K_au",
    "cv": "Heatcapacity_Cv_cal_mol_K",
}
MOLECULES = 130_831
# Covalent radii (Å) by atomic number: single (Pyykkö & Atsumi 2009), double, triple (NaN: none).
_RADII = np.full((3, 10), np.nan)
for _z, _single, _double, _triple in (
    (1, 0.32, np.nan, np.nan),
    (6, 0.75, 0.67, 0.60),
    (7, 0.71, 0.60, 0.54),
    (8, 0.63, 0.57, 0.53),
    (9, 0.64, 0.59, 0.53),
):
    _RADII[:, _z] = (_single, _double, _triple)
BOND_TOLERANCE = 0.4
GRAPHS = ("complete", "bonds")
NEEDS = "QM9 comes with the qm9pack package: pip install qm9pack==1.0.3"


def qm9pack_files() -> list[Path]:
    """The CSV files of the installed ``qm9pack`` (found without importing it: its ``__init__``
    needs setuptools' ``pkg_resources``)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(f"qm9pack: not installed ({NEEDS})")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = [folder / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    for path in files:
        if not path.is_file():
            raise MissingDataError(f"{path}: missing ({NEEDS})")
    return files


def read_molecules(files: Sequence[Path]) -> dict[str, np.ndarray]:
    """Atomic numbers, positions and the 11 targets (in PyTorch Geometric's units) of every
    molecule in ``files``: ``z [A]``, ``pos [A, 3]``, ``counts [M]``, ``y [M, 11]``, ``index [M]``."""
    import pandas as pd

    wanted = ["Index", "N_atoms", "Elements", "XYZ_Ang", *COLUMNS.values()]
    frames = []
    for path in files:
        try:
            frames.append(pd.read_csv(path, usecols=wanted))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise DataFileError(f"{path}: truncated or unreadable ({str(error).splitlines()[0]})") from None
        except ValueError as error:
            raise DataFileError(f"{path}: not a qm9pack table ({str(error).splitlines()[0]})") from None
    table = pd.concat(frames, ignore_index=True)
    if table[list(COLUMNS.values())].isna().any().any():
        raise DataFileError(f"{files[0].parent}: a property is missing for some molecules (truncated file?)")
    elements = [s.replace("'", "").strip("[]").split(",") for s in table["Elements"]]
    counts = np.array([len(e) for e in elements], dtype=np.int64)
    if not np.array_equal(counts, table["N_atoms"].to_numpy()):
        bad = int(np.flatnonzero(counts != table["N_atoms"].to_numpy())[0])
        raise DataFileError(
            f"{files[0].parent}: molecule {int(table['Index'][bad])}: {counts[bad]} elements "
            f"for N_atoms {int(table['N_atoms'][bad])} (truncated file?)"
        )
    symbols = np.concatenate(elements)
    unknown = sorted(set(symbols.tolist()) - set(ELEMENTS))
    if unknown:
        raise DataFileError(f"{files[0].parent}: unknown element {unknown[0]!r}; QM9 has {', '.join(ELEMENTS)}")
    z = np.vectorize(ATOMIC_NUMBER.get, otypes=[np.int8])(symbols)
    text = ",".join(table["XYZ_Ang"]).replace("[", "").replace("]", "")
    try:
        pos = np.array(text.split(","), dtype=np.float64).reshape(-1, 3)
    except ValueError:
        raise DataFileError(f"{files[0].parent}: malformed coordinates (XYZ_Ang)") from None
    if len(pos) != len(z):
        raise DataFileError(f"{files[0].parent}: {len(pos)} coordinates for {len(z)} atoms (truncated file?)")
    y = np.stack([table[COLUMNS[t]].to_numpy(np.float64) for t in TARGETS], axis=1)
    for name in ("homo", "lumo", "zpve"):
        y[:, TARGETS.index(name)] *= HARTREE_EV
    molecule = np.repeat(np.arange(len(counts)), counts)
    for k, name in enumerate(("U0", "U", "H", "G")):
        reference = np.array([np.nan] * 10)
        for element, values in ATOM_REFERENCE.items():
            reference[ATOMIC_NUMBER[element]] = values[k]
        atoms = np.bincount(molecule, weights=reference[z], minlength=len(counts))
        y[:, TARGETS.index(name)] = (y[:, TARGETS.index(name)] - atoms) * HARTREE_EV
    return {"z": z, "pos": pos.astype(np.float32), "counts": counts, "y": y, "index": table["Index"].to_numpy(np.int64)}


def load_molecules() -> dict[str, np.ndarray]:
    """:func:`read_molecules` of the installed qm9pack, cached (keyed by the files' sizes)."""
    files = qm9pack_files()
    key = {"files": [(p.name, os.stat(p).st_size) for p in files], "version": 1}
    return cached_arrays("qm9", key, lambda: read_molecules(files))


def split_positions(count: int, test_size: int, val_size: int, seed: int) -> dict[str, np.ndarray]:
    """Nash-MTL's split of a random permutation: test first, then val, the rest train."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    return {
        "test": order[:test_size],
        "val": order[test_size : test_size + val_size],
        "train": order[test_size + val_size :],
    }


def _subset(positions: np.ndarray, maximum: int, seed: int) -> np.ndarray:
    if maximum <= 0 or len(positions) <= maximum:
        return positions
    chosen = np.random.default_rng(seed).choice(len(positions), size=maximum, replace=False)
    return positions[np.sort(chosen)]


class Molecule:
    """One molecule as a model input: atomic numbers ``z [n]`` and positions ``pos [n, 3]`` (Å)."""

    __slots__ = ("z", "pos")

    def __init__(self, z: Tensor, pos: Tensor) -> None:
        self.z, self.pos = z, pos


class QM9Molecules(Dataset):
    """Map-style dataset: item ``i`` is ``(Molecule, {target: [1] standardised value})``."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        positions: np.ndarray,
        targets: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
    ) -> None:
        offsets = np.concatenate([[0], np.cumsum(arrays["counts"])])
        self.z = torch.as_tensor(arrays["z"].astype(np.int64))
        self.pos = torch.as_tensor(arrays["pos"])
        self.start = torch.as_tensor(offsets[positions])
        self.stop = torch.as_tensor(offsets[positions + 1])
        columns = [TARGETS.index(t) for t in targets]
        y = (arrays["y"][positions][:, columns] - mean[columns]) / std[columns]
        self.y = torch.as_tensor(y, dtype=torch.float32)
        self.targets = list(targets)
        self.molecule_index = arrays["index"][positions]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        start, stop = int(self.start[i]), int(self.stop[i])
        row = self.y[i]
        return Molecule(self.z[start:stop], self.pos[start:stop]), {
            t: row[k : k + 1] for k, t in enumerate(self.targets)
        }


def complete_edges(counts: Tensor) -> Tensor:
    """``[2, E]`` every ordered pair (i, j), i ≠ j, of atoms of the same molecule, for molecules of
    ``counts`` atoms stored one after another (row-major within a molecule, as PyTorch
    Geometric's ``Complete`` orders them)."""
    counts = counts.to(torch.int64)
    squares = counts * counts
    molecule = torch.repeat_interleave(torch.arange(len(counts)), squares)
    start = torch.cumsum(squares, 0) - squares
    local = torch.arange(int(squares.sum())) - start[molecule]
    size = counts[molecule]
    row, col = local // size, local % size
    keep = row != col
    offset = (torch.cumsum(counts, 0) - counts)[molecule]
    return torch.stack([row[keep] + offset[keep], col[keep] + offset[keep]])


def bond_classes(z: Tensor, distance: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """``[E]`` the class of each pair: -1 not bonded, 0 single, 1 double, 2 triple, 3 aromatic (see
    the module docstring)."""
    radii = torch.as_tensor(_RADII, dtype=torch.float32)
    zi, zj = z[row], z[col]
    lengths = radii[:, zi] + radii[:, zj]  # [3, E]: single, double, triple bond lengths (NaN: none)
    candidates = torch.stack([lengths[0], lengths[1], lengths[2], 0.5 * (lengths[0] + lengths[1])])
    gaps = (candidates - distance).abs().nan_to_num(nan=math.inf)
    kind = gaps.argmin(0)
    bonded = distance < lengths[0] + BOND_TOLERANCE
    return torch.where(bonded, kind, torch.full_like(kind, -1))


def collate_molecules(molecules: Sequence[Molecule], graph: str = "complete"):
    """A ``torch_geometric.data.Batch`` of molecules: ``x [A, 11]``, ``edge_index [2, E]``,
    ``edge_attr [E, 5]``, ``pos``, ``z``, ``batch`` (see the module docstring)."""
    from torch_geometric.data import Batch

    z = torch.cat([m.z for m in molecules])
    pos = torch.cat([m.pos for m in molecules])
    counts = torch.tensor([len(m.z) for m in molecules], dtype=torch.int64)
    edge_index = complete_edges(counts)
    row, col = edge_index
    distance = (pos[row] - pos[col]).norm(dim=1)
    kind = bond_classes(z, distance, row, col)
    bonded = kind >= 0
    if graph == "bonds":
        edge_index, row, col, distance, kind, bonded = (
            edge_index[:, bonded],
            row[bonded],
            col[bonded],
            distance[bonded],
            kind[bonded],
            bonded[bonded],
        )
    one_hot = torch.zeros(len(kind), 4)
    one_hot[bonded, kind[bonded]] = 1.0
    edge_attr = torch.cat([one_hot, distance.unsqueeze(1)], dim=1)

    atoms = len(z)
    per_atom = torch.zeros(atoms, 4)  # bonds per class at each atom (over bonded pairs, both ways)
    per_atom.index_put_((row[bonded], kind[bonded]), torch.ones(int(bonded.sum())), accumulate=True)
    hydrogens = torch.zeros(atoms).index_add_(0, row[bonded], (z[col[bonded]] == 1).float())
    heavy = z != 1
    aromatic = per_atom[:, 3] > 0
    sp = heavy & ((per_atom[:, 2] > 0) | (per_atom[:, 1] >= 2))
    sp2 = heavy & ~sp & ((per_atom[:, 1] > 0) | aromatic)
    sp3 = heavy & ~sp & ~sp2
    element = torch.zeros(atoms, 5)
    element[torch.arange(atoms), torch.bucketize(z, torch.tensor([1, 6, 7, 8, 9]))] = 1.0
    x = torch.cat(
        [
            element,
            z.unsqueeze(1).float(),
            aromatic.unsqueeze(1).float(),
            sp.unsqueeze(1).float(),
            sp2.unsqueeze(1).float(),
            sp3.unsqueeze(1).float(),
            hydrogens.unsqueeze(1),
        ],
        dim=1,
    )
    batch = torch.repeat_interleave(torch.arange(len(molecules)), counts)
    ptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
    return Batch(x=x, edge_index=edge_index, edge_attr=edge_attr, pos=pos, z=z, batch=batch, ptr=ptr)


class _Collate:
    """Picklable collate (loader workers, Ray trials) for one graph kind."""

    def __init__(self, graph: str) -> None:
        self.graph = graph

    def __call__(self, molecules):
        return collate_molecules(molecules, self.graph)


def qm9(
    targets: list[str] | str | None = None,
    graph: str = "complete",
    split_seed: int = 0,
    test_size: int = 10000,
    val_size: int = 10000,
    max_train: int = 0,
    max_eval: int = 0,
    subset_seed: int = 0,
    eval_batch: int = 256,
) -> Benchmark:
    """MTL benchmark: the 11 QM9 targets of Nash-MTL (``normalized_regression`` tasks) on
    molecular graphs (see the module docstring).

    Args:
        targets: a subset of ``TARGETS`` (names or one comma-separated string); default all 11.
        graph: ``complete`` (every pair of atoms, as Nash-MTL) or ``bonds`` (bonded pairs only).
        split_seed: the seed of the permutation that makes the test / val / train split.
        test_size, val_size: the sizes of the test and validation splits (10,000 each).
        max_train, max_eval: at most this many training / validation and test molecules (fixed
            random subsets drawn with ``subset_seed``); 0 keeps the whole split.
        eval_batch: the most molecules per evaluation batch (a complete graph of 1,024 molecules
            holds ~300,000 edges, each with a dim² matrix in the MPNN's edge network).
    """
    chosen = choose_names("targets", targets, TARGETS)
    if graph not in GRAPHS:
        raise ValueError(f"graph: must be one of {', '.join(GRAPHS)}, got {graph!r}")
    for name, value, minimum in (
        ("split_seed", split_seed, 0),
        ("test_size", test_size, 1),
        ("val_size", val_size, 1),
        ("max_train", max_train, 0),
        ("max_eval", max_eval, 0),
        ("subset_seed", subset_seed, 0),
        ("eval_batch", eval_batch, 1),
    ):
        check_int(name, value, minimum)
    arrays = load_molecules()
    count = len(arrays["counts"])
    if test_size + val_size >= count:
        raise ValueError(f"test_size + val_size must leave training molecules: got {test_size} + {val_size} of {count}")
    positions = split_positions(count, test_size, val_size, split_seed)
    train_y = arrays["y"][positions["train"]]
    mean, std = train_y.mean(axis=0), train_y.std(axis=0, ddof=1)
    limits = {"train": max_train, "val": max_eval, "test": max_eval}
    scales = {t: float(std[TARGETS.index(t)]) * (1000.0 if t in MEV else 1.0) for t in chosen}
    collate = _Collate(graph)
    splits = {}
    for offset, (split, limit) in enumerate(limits.items()):
        rows = _subset(positions[split], limit, subset_seed + offset)
        splits[split] = BoundedSplit(
            QM9Molecules(arrays, rows, chosen, mean, std), chosen, collate, max_batch=eval_batch
        )
    tasks = [Task(t, "normalized_regression", 1, options={"scale": scales[t], "unit": UNITS[t]}) for t in chosen]
    benchmark = Benchmark.from_datasets(
        "qm9",
        tasks,
        splits,
        description=f"QM9: {len(chosen)} molecular properties (Nash-MTL's targets and split), MAE in original units",
    )
    benchmark.extras.update(
        {
            "mean": {t: float(mean[TARGETS.index(t)]) for t in chosen},
            "std": {t: float(std[TARGETS.index(t)]) for t in chosen},
            "units": {t: UNITS[t] for t in chosen},
            "published_single_task": {f"{t}/mae": PUBLISHED_SINGLE_TASK[t] for t in chosen},
            "graph": graph,
        }
    )
    return benchmark
