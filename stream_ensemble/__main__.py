"""``python -m stream_ensemble`` = the ``stream-ensemble`` command."""

from stream_ensemble.cli import main

main()
