"""Ensemble combiners over member probabilities ``P`` (n_events, n_models, n_classes).

Every combiner renormalises over the members present in each row (``mask`` True) and returns
the class prior for rows without any (fitted prior from ``y``; uniform for an unfitted
stateless rule). Look strategies up by name with :func:`make_combiner`.

===================  ==============  =========================================================
name                 space           rule
===================  ==============  =========================================================
``hard_voting``      vote_fraction   fraction of present members voting for each class
``soft_voting``      probability     mean probability
``weighted``         probability     weighted mean; weights given or fit on held-out log loss
``geometric_mean``   log_odds        normalised weighted geometric mean (mean log-odds)
``rank_average``     rank            mean held-out ECDF rank, Platt-mapped back (binary)
``stacking``         log_odds        meta-learner on member log-odds (fit on OOF predictions)
``boosting``         log_odds        forward-stagewise sum of member log-odds (binary)
===================  ==============  =========================================================
"""

from __future__ import annotations

from typing import Any

from stream_ensemble.core.combiners._base import (
    EPS,
    Combiner,
    CombinerName,
    Contributions,
    IdentityLink,
    Link,
    LogisticLink,
    validate_labels,
    validate_proba,
)
from stream_ensemble.core.combiners.boosting import Boosting
from stream_ensemble.core.combiners.rank import RankAverage
from stream_ensemble.core.combiners.stacking import Stacking, out_of_fold_proba
from stream_ensemble.core.combiners.voting import (
    GeometricMean,
    HardVoting,
    SoftVoting,
    Weighted,
    geometric_mean,
    hard_vote,
    soft_vote,
)
from stream_ensemble.errors import ConfigError

COMBINERS: dict[CombinerName, type[Combiner]] = {
    cls.name: cls
    for cls in (HardVoting, SoftVoting, Weighted, GeometricMean, RankAverage, Stacking, Boosting)
}


def make_combiner(name: str | CombinerName, **params: Any) -> Combiner:
    """Build a registered combiner by name.

    Parameters
    ----------
    name : str or CombinerName
        One of the ``CombinerName`` values, e.g. ``"soft_voting"``.
    **params
        Constructor parameters of that combiner.

    Returns
    -------
    Combiner
        An unfitted instance.

    Raises
    ------
    ConfigError
        If the name is unknown (the message lists the valid names) or a parameter is not
        accepted by that combiner.

    Examples
    --------
    >>> make_combiner("weighted", weights=[1.0, 2.0])
    Weighted(weights=[1.0, 2.0])
    """
    try:
        key = CombinerName(name)
    except ValueError:
        valid = ", ".join(n.value for n in CombinerName)
        raise ConfigError(f"unknown combiner {name!r}; valid choices: {valid}") from None
    cls = COMBINERS[key]
    try:
        return cls(**params)
    except TypeError as exc:
        valid_params = ", ".join(sorted(cls._get_param_names())) or "(none)"
        raise ConfigError(
            f"invalid parameters for combiner {key.value!r}: {exc}; accepted: {valid_params}"
        ) from exc


__all__ = [
    "COMBINERS",
    "EPS",
    "Boosting",
    "Combiner",
    "CombinerName",
    "Contributions",
    "GeometricMean",
    "HardVoting",
    "IdentityLink",
    "Link",
    "LogisticLink",
    "RankAverage",
    "SoftVoting",
    "Stacking",
    "Weighted",
    "geometric_mean",
    "hard_vote",
    "make_combiner",
    "out_of_fold_proba",
    "soft_vote",
    "validate_labels",
    "validate_proba",
]
