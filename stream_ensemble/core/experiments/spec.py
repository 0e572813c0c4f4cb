"""An experiment as operators write it in Redis (``se:ab:<ensemble>``, a hash of plain strings).

Fields (every value is text, so ``redis-cli HSET se:ab:default challengers default@v2=50``
works): ``experiment`` (its id, written into scored events), ``champion`` (``name@vN``, the
deployed version), ``challengers`` (``name@vN=weight[,name@vN=weight...]``, weights in percent
of traffic), ``mode`` (``split`` or ``shadow``), ``salt`` (assignment hash salt), ``status``
(``running``, ``stopped``, ``stopped: guardrail``, ``promoted: name@vN``), and for a canary
``ramp`` (``5,25,50``) with ``ramp_step``. In split mode the champion gets the rest of the
traffic (100 − the challengers' weights); in shadow mode every event is scored by the champion
and, for the challengers' share of events, also by them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from stream_ensemble.errors import ConfigError

MODES = ("split", "shadow")
CHAMPION = "champion"
_TAG = re.compile(r"^[A-Za-z0-9_.-]+@v[0-9]+$")


def check_tag(tag: str) -> str:
    """``tag`` when it is ``name@vN``, else :class:`ConfigError`."""
    if not _TAG.match(tag):
        raise ConfigError(f"ensemble version must look like name@vN (e.g. default@v2), got {tag!r}")
    return tag


def parse_challengers(text: str) -> dict[str, float]:
    """``"default@v2=30,default@v3=10"`` -> ``{"default@v2": 30.0, "default@v3": 10.0}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        tag, sep, weight = part.partition("=")
        try:
            w = float(weight) if sep else float("nan")
        except ValueError:
            w = float("nan")
        if not 0 <= w <= 100:
            raise ConfigError(f"challenger must be name@vN=weight with a weight in 0..100 percent, got {part!r}")
        out[check_tag(tag.strip())] = w
    return out


def format_challengers(weights: Mapping[str, float]) -> str:
    """Inverse of :func:`parse_challengers` (weights without a trailing .0)."""
    return ",".join(f"{t}={w:g}" for t, w in weights.items())


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment, parsed and checked."""

    ensemble: str
    experiment: str
    champion: str
    challengers: dict[str, float] = field(default_factory=dict)
    mode: str = "split"
    salt: str = ""
    status: str = "running"
    ramp: str = ""
    ramp_step: int = 0

    def __post_init__(self) -> None:
        check_tag(self.champion)
        if self.mode not in MODES:
            raise ConfigError(f"experiment mode must be split or shadow, got {self.mode!r}")
        if self.champion in self.challengers:
            raise ConfigError(f"the champion {self.champion} cannot also be a challenger")
        if self.mode == "split" and sum(self.challengers.values()) > 100:
            raise ConfigError(f"challenger weights add up to more than 100%: {format_challengers(self.challengers)}")

    @property
    def running(self) -> bool:
        return self.status == "running"

    def weights(self) -> dict[str, float]:
        """Arm name -> share of traffic: ``champion`` then each challenger's tag (split mode)."""
        rest = max(0.0, 100.0 - sum(self.challengers.values()))
        return {CHAMPION: rest, **self.challengers}

    def arm_version(self, arm: str) -> str:
        """The ``name@vN`` an arm serves."""
        return self.champion if arm == CHAMPION else arm

    def to_fields(self) -> dict[str, str]:
        """The hash fields (what :meth:`from_fields` reads)."""
        return {
            "experiment": self.experiment, "champion": self.champion,
            "challengers": format_challengers(self.challengers), "mode": self.mode, "salt": self.salt,
            "status": self.status, "ramp": self.ramp, "ramp_step": str(self.ramp_step),
        }  # fmt: skip

    @classmethod
    def from_fields(cls, ensemble: str, fields: Mapping[str, str]) -> ExperimentSpec:
        """Parse the hash; a missing or bad field raises :class:`ConfigError` naming it."""
        if not fields.get("champion"):
            raise ConfigError(f"experiment se:ab:{ensemble} has no champion field")
        experiment = fields.get("experiment") or ensemble
        try:
            step = int(fields.get("ramp_step") or 0)
        except ValueError:
            raise ConfigError(f"experiment se:ab:{ensemble}: ramp_step must be an integer") from None
        return cls(
            ensemble=ensemble, experiment=experiment, champion=fields["champion"],
            challengers=parse_challengers(fields.get("challengers", "")), mode=fields.get("mode") or "split",
            salt=fields.get("salt") or experiment, status=fields.get("status") or "running",
            ramp=fields.get("ramp", ""), ramp_step=step,
        )  # fmt: skip
