"""Where dbt built eoy-reset's own models (reset_schedule, due_districts, reset_scope, …).

In this repository they land in schema `eoy` (and the audit views in `eoy_audit`); in a
vendor's project that installs eoy-reset as a dbt package, wherever the vendor's profile and
schema settings put them. A command that loaded the root project's manifest learns each
model's schema and alias from it (`use_built`); before that, the repository's own layout.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from jobs.warehouse.connection import quote_ident

PACKAGE = "eoy_reset"  # eoy-reset's dbt project name, the package_name of its models
DEFAULT_SCHEMA = "eoy"

_lock = threading.Lock()
_built: dict[str, tuple[str, str]] = {}


def _parts(node: Mapping[str, Any]) -> tuple[str, str] | None:
    schema, alias = node.get("schema"), node.get("alias")
    if schema and alias:
        return str(schema), str(alias)
    relation = str(node.get("relation_name") or "")  # "db"."schema"."name" or schema.name
    parts = [p.strip('"') for p in relation.split(".")] if relation else []
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def built_models(manifest: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """eoy-reset's models in a manifest: name -> (schema, name in the warehouse)."""
    found: dict[str, tuple[str, str]] = {}
    for node in (manifest.get("nodes") or {}).values():
        if node.get("resource_type") != "model" or node.get("package_name") != PACKAGE:
            continue
        parts = _parts(node)
        if parts is not None:
            found[str(node.get("name"))] = parts
    return found


def use_built(manifest: Mapping[str, Any]) -> None:
    """Take the built models' places from the root project's manifest."""
    found = built_models(manifest)
    with _lock:
        _built.clear()
        _built.update(found)


def forget_built() -> None:
    with _lock:
        _built.clear()


def built_parts(model: str) -> tuple[str, str]:
    """(schema, name) of one of eoy-reset's models where dbt built it."""
    with _lock:
        return _built.get(model, (DEFAULT_SCHEMA, model))


def built_relation(model: str) -> str:
    """The model's relation, to write in SQL (schema.name, quoted where it must be)."""
    schema, name = built_parts(model)
    return f"{quote_ident(schema)}.{quote_ident(name)}"
