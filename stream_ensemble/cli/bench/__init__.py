"""``stream-ensemble bench ...``: benchmark commands (the main CLI adds :data:`bench`).

One module per family: :mod:`.accuracy` (strategies vs baselines on real data), :mod:`.serving`
(explanation cost, cache bytes, throughput through the broker), :mod:`.live` (hot deploys and
fault scenarios under a steady stream), :mod:`.experiments` (the A/B statistics). Errors in the
arguments print one ``Error: ...`` line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import click

from stream_ensemble.cli.bench.accuracy import accuracy_cmd
from stream_ensemble.cli.bench.common import jsonable
from stream_ensemble.cli.bench.experiments import ab_cmd, ab_sim_cmd
from stream_ensemble.cli.bench.live import FAULT_SCENARIOS, deploy_cmd, faults_cmd
from stream_ensemble.cli.bench.serving import cache_bytes_cmd, explain_cost_cmd, throughput_cmd

__all__ = ["FAULT_SCENARIOS", "bench", "jsonable"]


@click.group(name="bench")
def bench() -> None:
    """Benchmarks that write JSON + Markdown (+ PNG) results."""


for _cmd in (accuracy_cmd, explain_cost_cmd, cache_bytes_cmd, throughput_cmd, deploy_cmd, faults_cmd, ab_sim_cmd, ab_cmd):
    bench.add_command(_cmd)
