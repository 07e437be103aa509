"""The reset's scope, loaded once per command: the declaration (dbt's manifest) joined with
the warehouse's catalog, checked, ordered. Everything that deletes, snapshots, restores or
counts student rows asks it which tables, keys, columns and owners there are."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.scope.build import build_scope
from jobs.scope.built import use_built
from jobs.scope.catalog import read_catalog
from jobs.scope.current import current_scope, loaded, use_scope
from jobs.scope.declared import declaration_from_manifest
from jobs.scope.model import Scope
from jobs.warehouse.connection import Warehouse


def scope_from_manifest(wh: Warehouse, manifest: Mapping[str, Any]) -> Scope:
    declaration = declaration_from_manifest(manifest)
    steps = {s.table.split(".", 1)[0] for t in declaration.tables for s in (*t.via, t.of) if s}
    schemas = [*declaration.schemas, *sorted(steps - set(declaration.schemas))]
    return build_scope(declaration, read_catalog(wh, schemas))


def _manifest_digest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the scope needs of a manifest: the root's name, sources, models' relations
    (eoy-reset's own among them: where the reset's marts were built)."""
    return {
        "metadata": {"project_name": (manifest.get("metadata") or {}).get("project_name")},
        "sources": {
            k: {
                f: v.get(f)
                for f in (
                    "package_name",
                    "schema",
                    "name",
                    "identifier",
                    "source_name",
                    "meta",
                    "source_meta",
                    "config",
                    "description",
                )
            }
            for k, v in (manifest.get("sources") or {}).items()
        },
        "nodes": {
            k: {
                f: v.get(f)
                for f in (
                    "resource_type",
                    "name",
                    "package_name",
                    "relation_name",
                    "schema",
                    "alias",
                )
            }
            for k, v in (manifest.get("nodes") or {}).items()
            if v.get("resource_type") == "model"
        },
    }


def project_manifest(settings: Settings) -> dict[str, Any]:
    """The root project's manifest (what of it the scope reads): `dbt parse` once per change
    of the project's files, kept beside dbt's target folder under the project's digest."""
    from jobs.plan.dbt import dbt_work_dir, project_key, run_dbt

    work = dbt_work_dir(settings)
    kept = work / "scope" / f"{project_key(settings, 'scope')}.json"
    if kept.is_file():
        return dict(json.loads(kept.read_text(encoding="utf-8")))
    run_dbt(settings, ["parse"])
    written = Path(work / "target" / "manifest.json")
    digest = _manifest_digest(json.loads(written.read_text(encoding="utf-8")))
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_suffix(".partial")
    partial.write_text(json.dumps(digest), encoding="utf-8")
    partial.replace(kept)
    return digest


def load_scope(settings: Settings, wh: Warehouse) -> Scope:
    """The declared scope of the root project on this warehouse, checked: ScopeError (one
    line naming the table, column or foreign key) when the reset cannot follow it."""
    manifest = project_manifest(settings)
    use_built(manifest)
    return use_scope(scope_from_manifest(wh, manifest))


def ensure_scope(settings: Settings, wh: Warehouse) -> Scope:
    """The scope for a command that reads snapshots or rows but plans nothing (restore,
    export, share, status, verify): a vendor's project is loaded and checked once per
    process; this repo's own is the demo's (a test holds the two equal), without a parse."""
    found = loaded()
    if found is not None or not settings.is_vendor_project:
        return current_scope()
    return load_scope(settings, wh)
