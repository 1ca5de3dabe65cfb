"""Skew-free preparation core: cleaning, features, splitting, preprocessing and profiles.

Imports only the standard library, numpy and pandas, and works from the contract as a plain
JSON dict (``Contract.model_dump(mode="json")``): the same code runs in the Glue job (Python
3.11, through Spark's ``mapInPandas``), in the SageMaker scikit-learn container (3.10+) and
inside every model artifact, so training and serving compute features identically.
"""
