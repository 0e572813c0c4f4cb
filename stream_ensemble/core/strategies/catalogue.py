"""The catalogue of strategies: names, recipes (selector + combiner) and the default."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stream_ensemble.core.combiners import COMBINERS, CombinerName
from stream_ensemble.errors import ConfigError


class StrategyName(str, Enum):
    """Registered strategies (keys of :data:`STRATEGIES`)."""

    BEST_MEMBER = "best_member"
    SOFT_VOTING_ALL = "soft_voting_all"
    STACKING_ALL = "stacking_all"
    CARUANA = "caruana"
    BNB_SOFT = "bnb_soft"
    BNB_WEIGHTED = "bnb_weighted"
    BNB_STACKING = "bnb_stacking"
    BOOSTING = "boosting"
    GEOMETRIC_MEAN = "geometric_mean"
    RANK_AVERAGE = "rank_average"
    HARD_VOTING = "hard_voting"
    DYNAMIC_REGIONS = "dynamic_regions"
    KNORA_E = "knora_e"


class SelectorKind(str, Enum):
    """How a strategy picks its members."""

    ALL = "all"  # every healthy member
    BEST = "best"  # the one healthy member with the lowest OOF log loss (within the budget)
    CARUANA = "caruana"  # greedy with replacement; its counts become the weights
    BNB = "bnb"  # branch-and-bound subset under the constraints
    ALL_OR_BNB = "all_or_bnb"  # whichever scores better in inner CV on the OOF rows
    REGIONS = "regions"  # per-region branch-and-bound (RegionSelector)
    KNORA_E = "knora_e"  # per-row local competence (KnoraE)


DYNAMIC_SELECTORS = (SelectorKind.REGIONS, SelectorKind.KNORA_E)


@dataclass(frozen=True)
class StrategySpec:
    """Recipe of a strategy.

    Attributes
    ----------
    selector : SelectorKind
    combiner : CombinerName
    description : str
    """

    selector: SelectorKind
    combiner: CombinerName
    description: str


STRATEGIES: dict[StrategyName, StrategySpec] = {
    StrategyName.BEST_MEMBER: StrategySpec(
        SelectorKind.BEST, CombinerName.SOFT_VOTING, "the single member with the lowest OOF log loss (no combining)"),
    StrategyName.SOFT_VOTING_ALL: StrategySpec(
        SelectorKind.ALL, CombinerName.SOFT_VOTING, "plain mean of every member (naive baseline)"),
    StrategyName.STACKING_ALL: StrategySpec(
        SelectorKind.ALL, CombinerName.STACKING, "logistic meta-learner on every member's OOF log-odds"),
    StrategyName.CARUANA: StrategySpec(
        SelectorKind.CARUANA, CombinerName.WEIGHTED, "Caruana greedy selection, its counts as weights"),
    StrategyName.BNB_SOFT: StrategySpec(
        SelectorKind.BNB, CombinerName.SOFT_VOTING, "branch-and-bound subset, plain mean"),
    StrategyName.BNB_WEIGHTED: StrategySpec(
        SelectorKind.BNB, CombinerName.WEIGHTED, "branch-and-bound subset, non-negative weights fit on OOF"),
    StrategyName.BNB_STACKING: StrategySpec(
        SelectorKind.BNB, CombinerName.STACKING, "branch-and-bound subset, logistic meta-learner on OOF log-odds"),
    StrategyName.BOOSTING: StrategySpec(
        SelectorKind.ALL_OR_BNB, CombinerName.BOOSTING,
        "stagewise boosting of member log-odds over all members or the B&B subset (inner-CV pick)"),
    StrategyName.GEOMETRIC_MEAN: StrategySpec(
        SelectorKind.BNB, CombinerName.GEOMETRIC_MEAN, "branch-and-bound subset, geometric mean"),
    StrategyName.RANK_AVERAGE: StrategySpec(
        SelectorKind.BNB, CombinerName.RANK_AVERAGE, "branch-and-bound subset, rank average"),
    StrategyName.HARD_VOTING: StrategySpec(
        SelectorKind.BNB, CombinerName.HARD_VOTING, "branch-and-bound subset, majority vote"),
    StrategyName.DYNAMIC_REGIONS: StrategySpec(
        SelectorKind.REGIONS, CombinerName.SOFT_VOTING, "per-region branch-and-bound subsets, plain mean"),
    StrategyName.KNORA_E: StrategySpec(
        SelectorKind.KNORA_E, CombinerName.SOFT_VOTING, "KNORA-Eliminate local competence, plain mean"),
}

#: Fallback strategy of an :class:`EnsembleStrategy` constructed without a name. ``build``
#: does not serve a constant: by default (``BuildConfig.strategy="auto"``) it picks among
#: :data:`AUTO_CANDIDATES` on validation rows per ensemble (``core.training.choice``).
DEFAULT_STRATEGY = StrategyName.BOOSTING

#: Candidates of the per-ensemble choice, simplest first: the single best member, plain
#: averages, weighted averages, then the learned combiners. The choice
#: (``core.training.choice.choose_strategy``) serves the lowest validation loss; this order
#: only breaks exact ties (toward the simpler one). Binary-only ones are skipped for K > 2
#: classes. The dynamic selectors, hard voting, geometric mean and rank average are left
#: out: they cost more to serve or explain.
AUTO_CANDIDATES: tuple[StrategyName, ...] = (
    StrategyName.BEST_MEMBER, StrategyName.SOFT_VOTING_ALL, StrategyName.BNB_SOFT, StrategyName.CARUANA,
    StrategyName.BNB_WEIGHTED, StrategyName.BNB_STACKING, StrategyName.STACKING_ALL, StrategyName.BOOSTING,
)

#: ``BuildConfig.strategy`` value asking for the per-ensemble choice.
AUTO = "auto"


def binary_only(name: StrategyName) -> bool:
    """True when the strategy's combiner supports binary labels only (boosting, rank average)."""
    return bool(COMBINERS[STRATEGIES[name].combiner].binary_only)


def parse_strategy(name: str | StrategyName) -> StrategyName:
    """Validate a strategy name.

    Parameters
    ----------
    name : str or StrategyName

    Returns
    -------
    StrategyName

    Raises
    ------
    ConfigError
        Unknown name (the message lists the choices).
    """
    try:
        return StrategyName(name)
    except ValueError:
        choices = ", ".join(s.value for s in StrategyName)
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {choices}") from None
