"""Training: from a dataset to registry versions of the members and the ensemble.

Owns the build pipeline on out-of-fold predictions (``builder``: members, every strategy,
calibrators, conformal predictors, metrics; its options and result, with the scoring path,
in ``built``; ensembles of models users bring in ``byom``; the validated strategy and
confidence choices in ``choice``; the cross-fitted evidence and calibration helpers in
``crossfit``) and the training run that splits the data and writes the registry
(``pipeline``). A new training step goes into ``builder.build``; a new field of the ensemble
manifest into ``pipeline.train``. The top of the core: may import every other core package,
types and errors; never serving, adapters or I/O.
"""

from stream_ensemble.core.training.builder import BuildConfig, BuiltEnsemble, build
from stream_ensemble.core.training.pipeline import TrainResult, holdout_rows, train

__all__ = ["BuildConfig", "BuiltEnsemble", "TrainResult", "build", "holdout_rows", "train"]
