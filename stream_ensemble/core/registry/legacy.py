"""Reading pickles written before the package layout of the core changed.

Pickles name the module of every class they contain. Registries written before the core was
split into packages (up to 0.1.0's first layout) name modules such as
``stream_ensemble.core.strategies`` for classes that now live in
``stream_ensemble.core.strategies.planner``. :class:`LayoutUnpickler` maps each old module
(and, where a class was renamed, the old name) to where the class is today, so those
registries load without being rewritten; everything else resolves as usual.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any, BinaryIO

#: Old module -> the modules, in order, where its classes live now.
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "stream_ensemble.core.calibration": ("stream_ensemble.core.confidence.calibration",),
    "stream_ensemble.core.conformal": ("stream_ensemble.core.confidence.conformal",),
    "stream_ensemble.core.uncertainty": ("stream_ensemble.core.confidence.uncertainty",),
    "stream_ensemble.core.explain": (
        "stream_ensemble.core.confidence.explanation",
        "stream_ensemble.core.confidence.occlusion",
    ),
    "stream_ensemble.core.features": ("stream_ensemble.core.data.features",),
    "stream_ensemble.core.data": ("stream_ensemble.core.data.datasets",),
    "stream_ensemble.core.pool": ("stream_ensemble.core.members.pool",),
    "stream_ensemble.core.zoo": ("stream_ensemble.core.members.families",),
    "stream_ensemble.core.oof": ("stream_ensemble.core.members.oof",),
    "stream_ensemble.core.regions": ("stream_ensemble.core.selection.dynamic",),
    "stream_ensemble.core.selection": (
        "stream_ensemble.core.selection.constraints",
        "stream_ensemble.core.selection.objective",
        "stream_ensemble.core.selection.select",
        "stream_ensemble.core.selection.cache",
    ),
    "stream_ensemble.core.strategies": (
        "stream_ensemble.core.strategies.catalogue",
        "stream_ensemble.core.strategies.planner",
        "stream_ensemble.core.strategies.strategy",
    ),
    "stream_ensemble.core.evaluation": (
        "stream_ensemble.core.evaluation.metrics",
        "stream_ensemble.core.evaluation.selective",
    ),
}

#: (old module, old class name) -> new class name, for classes renamed by the move.
RENAMED: dict[tuple[str, str], str] = {
    ("stream_ensemble.core.strategies", "_Plan"): "Plan",
    ("stream_ensemble.core.strategies", "_Planner"): "Planner",
    ("stream_ensemble.core.strategies", "_SelectFn"): "SelectFn",
}


def resolve(module: str, name: str) -> tuple[str, str]:
    """Where a class pickled as ``module.name`` lives now.

    Parameters
    ----------
    module : str
        Module path recorded in the pickle.
    name : str
        Class (or function) name recorded in the pickle.

    Returns
    -------
    (module, name) : tuple of str
        Unchanged when the module did not move.

    Examples
    --------
    >>> resolve("stream_ensemble.core.strategies", "_Planner")
    ('stream_ensemble.core.strategies.planner', 'Planner')
    >>> resolve("sklearn.linear_model._logistic", "LogisticRegression")
    ('sklearn.linear_model._logistic', 'LogisticRegression')
    """
    candidates = MOVED_MODULES.get(module)
    if candidates is None:
        return module, name
    new_name = RENAMED.get((module, name), name)
    for candidate in candidates:
        if hasattr(importlib.import_module(candidate), new_name):
            return candidate, new_name
    return module, name  # let pickle raise its usual error, naming the old path


class LayoutUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that also reads pickles of the earlier package layout."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*resolve(module, name))


def load(fh: BinaryIO) -> Any:
    """Unpickle from ``fh`` with :class:`LayoutUnpickler`."""
    return LayoutUnpickler(fh).load()
