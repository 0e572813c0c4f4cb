"""Data: tables in, model matrices out.

Owns datasets (``datasets``: scikit-learn's bundled data, any CSV or DataFrame, stratified
splits) and the fitted feature encoder (``features``: feature records or columns -> one float64
matrix per batch, imputation and standardisation learnt at training time). A new data source is a
loader returning :class:`Dataset` in ``datasets``. May import numpy, pandas, scikit-learn, types
and errors only.
"""

from stream_ensemble.core.data.datasets import Dataset, from_frame, load_bundled, load_csv, stratified_split
from stream_ensemble.core.data.features import EncodedBatch, FeatureEncoder

__all__ = ["Dataset", "EncodedBatch", "FeatureEncoder", "from_frame", "load_bundled", "load_csv", "stratified_split"]
