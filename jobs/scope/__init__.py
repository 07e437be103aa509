"""The reset's scope: declared in the root dbt project's sources, checked against the
warehouse's catalog, compiled to set-based SQL."""

from jobs.scope.current import current_scope, demo_scope, use_scope
from jobs.scope.declared import ScopeError
from jobs.scope.model import Scope, ScopedTable
from jobs.scope.scope import ensure_scope, load_scope, scope_from_manifest

__all__ = [
    "Scope",
    "ScopeError",
    "ScopedTable",
    "current_scope",
    "demo_scope",
    "ensure_scope",
    "load_scope",
    "scope_from_manifest",
    "use_scope",
]
