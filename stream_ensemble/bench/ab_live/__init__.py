"""``bench ab``: a weaker challenger through the real broker, Redis, worker and faust app.

:mod:`.run` (the protocol), :mod:`.procs` (subprocesses, producer, outcome-publishing reader),
:mod:`.figures` (what the issue asks to measure, from what the reader saw), :mod:`.report`
(goals, Markdown, PNG, the one-line JSON contract).
"""
