"""Where a plan of runs is trained: in this process (:mod:`~scalarize.backends.local`) or on Ray
Tune (:mod:`~scalarize.backends.ray`, imported only when asked for), behind one interface
(:mod:`~scalarize.backends.base`)."""

from scalarize.backends.base import BACKENDS, Backend, get_backend

__all__ = ["BACKENDS", "Backend", "get_backend"]
