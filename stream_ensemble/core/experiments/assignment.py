"""Sticky arm assignment by weighted rendezvous hashing.

Each event's key (its ``entity_id``, or its ``event_id`` when it has none) is hashed once with
the experiment's salt to 64 bits; each arm mixes that hash with the arm's own name into a
uniform ``u`` in (0, 1) and scores ``w / -ln(u)``; the event goes to the arm with the highest
score. Then

- the probability of arm ``i`` is exactly ``w_i / sum(w)`` (the scores are exponential races),
- the assignment depends only on the salt, the key, the arm names and the weights, so an entity
  stays in its arm while they are unchanged (sticky, no state to store),
- raising one arm's weight moves entities only *into* that arm and lowering it moves them only
  *out of* it: the minimal movement (a cumulative-interval split would reshuffle the arms after
  the changed one).

Changing the salt reshuffles everyone: that is how a new experiment gets a fresh assignment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def entity_hashes(salt: str, keys: Sequence[str]) -> npt.NDArray[np.uint64]:
    """64-bit hash of ``salt`` and each key.

    Parameters
    ----------
    salt : str
        The experiment's salt.
    keys : sequence of str, length n
        ``entity_id`` of each event, or its ``event_id`` when it has none.

    Returns
    -------
    numpy.ndarray of uint64, shape (n,)
    """
    prefix = hashlib.blake2b(salt.encode() + b"\x00", digest_size=8)
    out = np.empty(len(keys), dtype=np.uint64)
    for i, key in enumerate(keys):  # one C-level hash per key; everything after is per batch
        h = prefix.copy()
        h.update(key.encode())
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser: a bijection of uint64 whose outputs look independent per input."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (x ^ (x >> np.uint64(31))) & _MASK


def arm_uniforms(hashes: npt.NDArray[np.uint64], arm: str) -> npt.NDArray[np.float64]:
    """Uniform numbers in (0, 1), one per hash, independent across arm names. Shape (n,)."""
    mixed = _mix(hashes ^ np.uint64(_hash64("arm:" + arm)))
    # The top 53 bits give a double in [0, 1); +0.5 keeps it strictly inside (0, 1).
    return ((mixed >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def assign_arms(hashes: npt.NDArray[np.uint64], weights: Mapping[str, float]) -> npt.NDArray[np.intp]:
    """Index (into ``list(weights)``) of each event's arm.

    Parameters
    ----------
    hashes : numpy.ndarray of uint64, shape (n,)
        From :func:`entity_hashes`.
    weights : mapping arm name -> weight >= 0
        At least one weight must be positive; an arm of weight 0 gets no event.

    Returns
    -------
    numpy.ndarray of intp, shape (n,)
    """
    names = list(weights)
    w = np.array([float(weights[a]) for a in names], dtype=np.float64)
    if not names or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"arm weights must be finite, >= 0 and not all 0: {dict(weights)}")
    scores = np.full((len(names), len(hashes)), -np.inf)
    for i, name in enumerate(names):
        if w[i] > 0:
            # argmax of w / -ln(u) == argmin of -ln(u) / w
            scores[i] = -(-np.log(arm_uniforms(hashes, name)) / w[i])
    best: npt.NDArray[np.intp] = np.argmax(scores, axis=0).astype(np.intp)
    return best
