"""Several loaded ensemble versions in one worker, and the checks a version passes before it serves.

:class:`LoadedEnsembles` holds every :class:`ServingEnsemble` a worker has loaded, by tag
(``name@vN``), and which one is active. Hot deploy (:mod:`stream_ensemble.serving.deploy`)
adds a validated version from its loader thread and the worker thread activates it between
batches; experiments route traffic to several held versions. :func:`validate_candidate` is the
gate: feature schema compatible with the topic's events, and a smoke score on the sample
rows stored in the ensemble's manifest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from stream_ensemble.serving.ensemble import ServingEnsemble


def parse_tag(tag: str) -> tuple[str, int]:
    """``"name@vN"`` -> ``("name", N)``.

    Raises
    ------
    ValueError
        Not of the form ``name@vN`` with N >= 1.
    """
    name, sep, v = tag.strip().rpartition("@v")
    if not sep or not name or not v.isdigit() or int(v) < 1:
        raise ValueError(f"{tag!r} is not name@vN (e.g. default@v3)")
    return name, int(v)


def feature_kinds(ensemble: ServingEnsemble) -> dict[str, str]:
    """The input features an ensemble reads: name -> ``"numeric"`` or ``"categorical"``."""
    enc = ensemble.encoder
    return {**{c: "numeric" for c in enc.numeric}, **{c: "categorical" for c in enc.categorical}}


def schema_problem(candidate: Mapping[str, str], topic: Mapping[str, str]) -> str | None:
    """Why a candidate's features are incompatible with the topic's, or ``None``.

    Parameters
    ----------
    candidate : mapping of str to str
        Feature name -> kind the candidate reads (:func:`feature_kinds`).
    topic : mapping of str to str
        Feature name -> kind the topic's events carry (the serving version's features and
        the names seen in recent events; kind ``"seen"`` matches any).

    Every feature the candidate reads must be carried by the topic (an absent feature would
    be imputed on every event: the version would score garbage silently), with the same kind.
    """
    missing = sorted(set(candidate) - set(topic))
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        return f"feature schema incompatible: {len(missing)} feature(s) not in the topic's events: {shown}"
    clash = sorted(c for c, kind in candidate.items() if topic[c] not in (kind, "seen"))
    if clash:
        return f"feature schema incompatible: kind differs for {', '.join(clash[:5])}"
    return None


def smoke_problem(ensemble: ServingEnsemble, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Score ``rows`` (raw feature dicts) with every member healthy; why it failed, or ``None``.

    A version passes when every row encodes, no member fails, and every probability is finite,
    in [0, 1], and each row's probabilities sum to 1.
    """
    if not rows:
        # Registries written before smoke rows were stored: the encoder's training medians.
        rows = [dict.fromkeys(ensemble.encoder.numeric, None) for _ in range(2)]
    try:
        encoded = ensemble.encoder.transform_records(list(rows))
        if not encoded.ok.all():
            return f"smoke rows do not encode: {next(iter(encoded.errors.values()))}"
        healthy = np.ones(len(ensemble.pool), dtype=bool)
        batch = ensemble.score(encoded.X, healthy, "none")
    except Exception as exc:  # any failure of a candidate is a refusal, never a crash
        return f"smoke score raised {type(exc).__name__}: {exc}"
    if batch.failed:
        name, why = next(iter(batch.failed.items()))
        return f"smoke score: member {name} failed: {why}"
    p = batch.proba
    if p.shape != (len(rows), len(ensemble.class_names)):
        return f"smoke score: probabilities of shape {p.shape}, expected {(len(rows), len(ensemble.class_names))}"
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        return "smoke score: probabilities not finite, outside [0, 1] or not summing to 1"
    return None


def validate_candidate(candidate: ServingEnsemble, topic_features: Mapping[str, str],
                       smoke_rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The refusal reason for ``candidate``, or ``None`` when it may serve.

    Integrity (sha256 of every artifact) is checked by the loader before this runs.
    """
    return schema_problem(feature_kinds(candidate), topic_features) or smoke_problem(candidate, smoke_rows)


class LoadedEnsembles:
    """Every loaded ensemble version of a worker, by tag, and the active one.

    Thread-safe: a loader thread may :meth:`add` while the scoring thread reads
    :meth:`active` and :meth:`activate` s between batches.

    Parameters
    ----------
    first : ServingEnsemble
        The version serving at start (active).
    keep : int
        Most versions held; the inactive ones least recently added or active are dropped first.
    """

    def __init__(self, first: ServingEnsemble, keep: int = 4) -> None:
        self._lock = threading.Lock()
        self._by_tag: dict[str, ServingEnsemble] = {first.tag: first}
        self._active = first.tag
        self._recent: list[str] = [first.tag]
        self.keep = max(keep, 2)

    @property
    def active(self) -> ServingEnsemble:
        """The version that scores the next batch."""
        with self._lock:
            return self._by_tag[self._active]

    @property
    def active_tag(self) -> str:
        """Tag of the active version."""
        return self._active

    def tags(self) -> list[str]:
        """Every held tag."""
        with self._lock:
            return list(self._by_tag)

    def get(self, tag: str) -> ServingEnsemble | None:
        """A held version, or ``None``."""
        with self._lock:
            return self._by_tag.get(tag)

    def add(self, ensemble: ServingEnsemble) -> None:
        """Hold ``ensemble`` (not active until :meth:`activate`)."""
        with self._lock:
            self._by_tag[ensemble.tag] = ensemble
            self._recent = [t for t in self._recent if t != ensemble.tag] + [ensemble.tag]
            self._trim()

    def activate(self, tag: str) -> ServingEnsemble:
        """Make a held version active and return it.

        Raises
        ------
        KeyError
            ``tag`` is not held.
        """
        with self._lock:
            ens = self._by_tag[tag]
            self._active = tag
            self._recent = [t for t in self._recent if t != tag] + [tag]
            self._trim()
            return ens

    def _trim(self) -> None:
        # _recent orders tags by last add / activation: drop the stalest inactive ones.
        for tag in [t for t in self._recent if t != self._active]:
            if len(self._by_tag) <= self.keep:
                break
            self._by_tag.pop(tag, None)
            self._recent.remove(tag)


def topic_features(ensembles: Iterable[ServingEnsemble], seen: Iterable[str] = ()) -> dict[str, str]:
    """Features the topic's events carry: those of ``ensembles`` (kinds known) plus ``seen`` names."""
    out: dict[str, str] = dict.fromkeys(seen, "seen")
    for ens in ensembles:
        out.update(feature_kinds(ens))
    return out
