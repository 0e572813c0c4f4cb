"""``stream-ensemble registry``: rewrite a pickle registry in safe formats, check every artifact.

Also the ``--trust-pickle`` flag, shared by the commands that load artifacts: it sets
``SE_TRUST_PICKLE=1`` for the process (and the workers it starts), which every registry it
opens reads (``core/registry/signing.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from stream_ensemble.cli.common import Group, config_from, setting_option

F = TypeVar("F", bound=Callable[..., Any])


def _trust(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        os.environ["SE_TRUST_PICKLE"] = "1"
    return value


def trust_pickle_option(f: F) -> F:
    """``--trust-pickle``: load pickle artifacts too (they run whatever code they name)."""
    return click.option("--trust-pickle", is_flag=True, expose_value=False, callback=_trust, is_eager=True,
                        help="Also load pickle artifacts (registries written before the safe formats). A pickle "
                             "runs the code it names when loaded: only for a registry you trust; "
                             "`registry migrate` removes the need. Same as SE_TRUST_PICKLE=1.")(f)


@click.group(cls=Group)
def registry() -> None:
    """The model registry's artifacts: formats, signatures, migration.

    Signing key (outside the registry): SE_REGISTRY_KEY (the key) or SE_REGISTRY_KEY_FILE
    (a file holding it). With a key set, new artifacts are signed and unsigned or mis-signed
    ones are refused.
    """


@registry.command()
@setting_option("worker.registry")
@click.option("--dry-run", is_flag=True, help="List what would be rewritten; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def migrate(ctx: click.Context, registry: Path | None, dry_run: bool, as_json: bool) -> None:
    """Rewrite every pickle artifact in the safe formats, keeping its version; sign with the key if set.

    Loading each pickle runs it: migrate a registry you trust, once, before exposing it. Old
    directories are kept under <registry>/.migrated/ (delete them once the fleet serves the
    rewritten versions). Exit 1 when an artifact could not be migrated.
    """
    import orjson

    from stream_ensemble.core.registry.migrate import migrate as run

    root = config_from(ctx, worker__registry=registry).worker.registry
    report = run(root, dry_run=dry_run)
    if as_json:
        click.echo(orjson.dumps(report.as_dict()).decode())
    else:
        for m in report.migrated:
            click.echo(f"{m['artifact']:<40} {m['from']} -> {m['to']}{'  signed' if m['signed'] else ''}")
        for f in report.failed:
            click.echo(f"{f['artifact']:<40} NOT migrated: {f['reason']}")
        click.echo(f"{len(report.migrated)} rewritten, {len(report.unchanged)} already safe, {len(report.failed)} failed")
    if report.failed:
        ctx.exit(1)


@registry.command()
@setting_option("worker.registry")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def verify(ctx: click.Context, registry: Path | None, as_json: bool) -> None:
    """Load every artifact as a worker would (signature, sha256, format); exit 1 if one is refused."""
    import orjson

    from stream_ensemble.core.registry import Registry
    from stream_ensemble.errors import StreamEnsembleError

    root = config_from(ctx, worker__registry=registry).worker.registry
    reg = Registry(root)
    ok: list[str] = []
    refused: list[dict[str, str]] = []
    for kind in ("models", "ensembles"):
        for name in reg.names(kind):
            for version in reg.versions(kind, name):
                what = f"{kind}/{name}/v{version}"
                try:
                    _, manifest = reg.load(kind, name, version)
                    ok.append(f"{what} ({manifest.get('format', 'pickle')}{', signed' if manifest.get('signature') else ''})")
                except StreamEnsembleError as exc:
                    refused.append({"artifact": what, "reason": str(exc)})
    if as_json:
        click.echo(orjson.dumps({"ok": ok, "refused": refused, "n_ok": len(ok), "n_refused": len(refused),
                                 "key": reg.security.key_id}).decode())
    else:
        for line in ok:
            click.echo(f"ok       {line}")
        for r in refused:
            click.echo(f"REFUSED  {r['reason']}")
        click.echo(f"{len(ok)} ok, {len(refused)} refused")
    if refused:
        ctx.exit(1)
