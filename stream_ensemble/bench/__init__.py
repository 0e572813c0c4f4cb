"""Benchmarks: commands anyone can rerun, each writing JSON, Markdown and a plot.

One module (or package) per benchmark: ``accuracy`` (every member, strategy and outside
baseline on real datasets), ``explain_cost`` (scoring cost per explanation level),
``selection_scale`` (branch-and-bound on a 120-member pool), with ``datasets`` (the shared
real datasets) and ``report`` (Markdown and charts). A new benchmark is a module here plus a
command in :mod:`stream_ensemble.cli.bench`. May import everything below the CLI.
"""
