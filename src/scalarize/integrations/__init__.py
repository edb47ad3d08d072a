"""Bridges to other training frameworks; each is an optional extra, imported only when asked for.

* :mod:`scalarize.integrations.lightning`: any scalarize method inside a Lightning ``Trainer``
  (``pip install scalarize[lightning]``).
"""
