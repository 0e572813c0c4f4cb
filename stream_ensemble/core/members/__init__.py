"""Members: the models an ensemble is made of.

Owns the model families and pool recipes (``families``: unfitted :class:`ModelSpec` per
family, the default and large pools), fitting them with out-of-fold predictions and measuring
their predict cost (``oof``), and the fitted pool the serving path runs once per batch with
failures isolated per member (``pool``). A new model family is a spec in ``families``. May import
numpy, scikit-learn (and model libraries), types and errors only.
"""

from stream_ensemble.core.members.families import POOLS, ModelSpec, default_pool, large_pool, make_pool
from stream_ensemble.core.members.oof import MemberFit, fit_members, predict_members
from stream_ensemble.core.members.pool import Member, ModelPool, PoolRun

__all__ = [
    "POOLS", "Member", "MemberFit", "ModelPool", "ModelSpec", "PoolRun", "default_pool", "fit_members",
    "large_pool", "make_pool", "predict_members",
]
