"""Derived arrays (e.g. the MultiMNIST composites) cached in the user's cache directory.

The location is ``$SCALARIZE_CACHE`` when set, else the platform's user cache directory. Files
are written atomically (temporary file, then rename), so an interrupted build never leaves a
half-written array behind; an entry that cannot be read back whole anyway (truncated, zero-filled
or corrupted by hand or by a failing disk) is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from platformdirs import user_cache_dir


def cache_dir() -> Path:
    path = Path(os.environ.get("SCALARIZE_CACHE") or user_cache_dir("scalarize"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_arrays(name: str, key: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Returns ``build()``'s arrays, computed once per (name, key) and kept in the cache."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{digest}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
            path.unlink(missing_ok=True)  # a corrupt or truncated cache entry: rebuild it
    arrays = build()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return arrays
