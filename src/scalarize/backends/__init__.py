"""Where runs execute: in-process (the population engine, ``scalarize.population``) or on Ray
Tune (:mod:`scalarize.backends.ray_backend`, imported only when asked for)."""
