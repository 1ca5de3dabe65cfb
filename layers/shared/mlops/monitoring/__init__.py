"""Monitoring a served model over time: data drift and quality on fresh labelled rows.

``drift`` and ``quality`` are pure (stdlib, numpy, pandas), like ``mlops.ml``, so they run in
any Python 3.10+; ``monitor`` is the AWS side the monitor function calls.
"""
