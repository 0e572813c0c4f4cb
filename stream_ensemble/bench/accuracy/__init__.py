"""The accuracy benchmark: every member, every strategy and outside baselines, side by side.

Protocol, per dataset and per repeat ``r`` (seed ``random_state + r``):

1. stratified split into fit 60% / calibration-validation 20% / test 20%;
2. a :class:`~stream_ensemble.core.data.features.FeatureEncoder` fit on the fit part only;
3. :func:`~stream_ensemble.core.training.builder.build` with every strategy: members fit with
   out-of-fold predictions on the fit part, strategies fit on those, then calibrators and
   conformal predictors as ``build`` does it (``BuiltEnsemble.calibration_split`` says on
   which rows; it is recorded per dataset);
4. on the test part: metrics of every member (raw probabilities), every strategy (calibrated
   probabilities; the uncalibrated ones are kept under ``methods_uncalibrated``), ``best_single``
   (the member with the lowest log loss on the calibration-validation part -- chosen on
   validation, never on test), ``sklearn_stacking`` (scikit-learn's ``StackingClassifier``
   over the same specs, cv=5, fit on the fit part), ``deslib_knora_e`` (DESlib ``KNORAE`` over
   the same fitted members, DSEL = the calibration-validation part) and ``default`` (the
   strategy ``build`` serves by default), and ``distilled`` (one fast student fit to the
   default's calibrated OOF probabilities of the fit part and calibrated on the
   calibration-validation part; :mod:`~stream_ensemble.bench.accuracy.distilled`).

Log loss clips probabilities at 1e-15 (DESlib and single trees output exact 0 and 1).
Metrics are averaged over the repeats (``std`` alongside); the relative log-loss reduction
against ``best_single`` is computed per repeat and then averaged.

Modules: ``config`` (settings, row names, pool and strategy choice), ``baselines`` (scikit-learn
stacking, DESlib KNORA-E), ``split`` (one split, every method on its test part), ``aggregate``
(per-dataset means and the summary with its goals), ``distilled`` (the student row), ``run`` (the loop over datasets). A new
baseline is a function in ``baselines`` called from ``split.run_split``; a new goal a line in
``aggregate.summarise``.
"""

from stream_ensemble.bench.accuracy.aggregate import aggregate_dataset, summarise
from stream_ensemble.bench.accuracy.baselines import deslib_knora_e_proba, deslib_shim, fit_sklearn_stacking
from stream_ensemble.bench.accuracy.config import (
    BEST_SINGLE,
    DEFAULT,
    DESLIB_KNORA_E,
    DISTILLED,
    METRIC_NAMES,
    REL_LL,
    SKLEARN_STACKING,
    VALIDATED_STRATEGY,
    BenchConfig,
    check_strategies,
    pool_subset,
)
from stream_ensemble.bench.accuracy.run import run_accuracy
from stream_ensemble.bench.accuracy.split import SplitResult, proba_metrics, run_split

__all__ = [
    "BEST_SINGLE", "DEFAULT", "DESLIB_KNORA_E", "DISTILLED", "METRIC_NAMES", "REL_LL", "SKLEARN_STACKING",
    "VALIDATED_STRATEGY", "BenchConfig", "SplitResult", "aggregate_dataset", "check_strategies",
    "deslib_knora_e_proba", "deslib_shim", "fit_sklearn_stacking", "pool_subset", "proba_metrics",
    "run_accuracy", "run_split", "summarise",
]
