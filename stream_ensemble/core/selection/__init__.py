"""Member selection: which members of the pool an ensemble runs.

Owns every selector and what they share: the objective (held-out metric of the averaged
ensemble and member diversity, ``objective``), the problem's constraints and the answer
(``constraints``: budget, size, diversity floor -> :class:`SelectionResult` with a boolean mask
and weights), the incremental subset scoring both searches use (``search``), one module per
static selector (``branch_and_bound``, ``caruana``) behind the ``select`` registry, the per
healthy-set re-selection cache (``cache``), and the dynamic, per-input selectors (``dynamic``:
regions and KNORA-E). Selectors return masks, never lists of models. A new selector is a new
module here plus an entry in ``select.SELECTORS`` (static) or ``dynamic.REGION_SELECTORS``.
May import: numpy, scipy, scikit-learn, :mod:`stream_ensemble.types` and
:mod:`stream_ensemble.errors` -- nothing else of the project.
"""

from stream_ensemble.core.selection.branch_and_bound import branch_and_bound
from stream_ensemble.core.selection.cache import SelectionCache
from stream_ensemble.core.selection.caruana import caruana
from stream_ensemble.core.selection.constraints import SelectionConstraints, SelectionResult, selection_id
from stream_ensemble.core.selection.dynamic import KnoraE, RegionMethod, RegionSelector, make_region_selector
from stream_ensemble.core.selection.objective import (
    METRICS,
    Metric,
    MetricSpec,
    check_heldout,
    diversity,
    diversity_matrix,
    ensemble_score,
    get_metric,
)
from stream_ensemble.core.selection.select import SELECTORS, SelectionMethod, select

__all__ = [
    "METRICS", "SELECTORS", "KnoraE", "Metric", "MetricSpec", "RegionMethod", "RegionSelector",
    "SelectionCache", "SelectionConstraints", "SelectionMethod", "SelectionResult", "branch_and_bound",
    "caruana", "check_heldout", "diversity", "diversity_matrix", "ensemble_score", "get_metric",
    "make_region_selector", "select", "selection_id",
]
