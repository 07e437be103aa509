"""The package follows the data's way: no import goes from a lower stage to a higher one, no
two modules import each other (directly or round a longer loop), and the README and
ARCHITECTURE.md name the packages the tree has.

Every import counts, also one inside a function: a late import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"

# Stages, lowest first. A module may import its own stage and any lower one.
STAGES: list[tuple[str, set[str]]] = [
    ("base", {"jobs", "jobs.config", "jobs.errors", "jobs.faults", "jobs.output", "jobs.tables"}),
    ("warehouse", {"jobs.warehouse"}),
    ("plan", {"jobs.plan", "jobs.scope", "jobs.synthetic"}),
    ("snapshot", {"jobs.snapshot"}),
    ("reset", {"jobs.reset"}),
    ("roster", {"jobs.roster"}),
    ("csm", {"jobs.csm"}),
    ("report", {"jobs.report"}),
    ("web", {"jobs.web"}),
    ("top", {"jobs.cli", "jobs.demo", "jobs.__main__"}),
]
# Packages of one stage that must not lean on each other either.
SIBLINGS = {"jobs.plan", "jobs.synthetic"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(JOBS.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The jobs modules a file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from jobs.x import y` is jobs.x.y when y is a module, else jobs.x
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        found.update(n for n in names if n == "jobs" or n.startswith("jobs."))
    return found


def group(module: str) -> str:
    """The package a module belongs to for the rules: `jobs.snapshot.writer` → `jobs.snapshot`."""
    for _, members in STAGES:
        for member in sorted(members, key=len, reverse=True):
            if module == member or (member != "jobs" and module.startswith(member + ".")):
                return member
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES")


def stage(module: str) -> int:
    owner = group(module)
    return next(i for i, (_, members) in enumerate(STAGES) if owner in members)


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among modules, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_belongs_to_a_stage() -> None:
    for module in modules():
        group(module)


def test_no_import_goes_up_a_stage_or_across_to_a_sibling() -> None:
    wrong = []
    for module, deps in graph().items():
        for dep in deps:
            # a package's __init__ may gather its own modules; `jobs` itself holds only the version
            if dep == "jobs":
                continue
            if stage(dep) > stage(module):
                wrong.append(f"{module} → {dep} (upward)")
            elif {group(module), group(dep)} <= SIBLINGS and group(module) != group(dep):
                wrong.append(f"{module} → {dep} (sibling)")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    edges = graph()
    # a package's __init__ re-exports its modules: the edge package → module is not a loop back
    for module in list(edges):
        if modules()[module].name == "__init__.py":
            edges[module] = {d for d in edges[module] if not d.startswith(module + ".")}
    assert cycle_in(edges) is None, " → ".join(cycle_in(edges) or [])


def test_the_rules_find_what_they_are_meant_to_find() -> None:
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None
    assert stage("jobs.cli") > stage("jobs.reset.runner") > stage("jobs.snapshot.writer")
    assert stage("jobs.warehouse.connection") > stage("jobs.config")


def test_each_package_says_what_it_owns() -> None:
    for init in sorted(JOBS.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.parent.name}/__init__.py has no docstring"
        assert len(doc.splitlines()) <= 3, f"{init.parent.name}: say it in two lines"


def test_the_readme_and_architecture_name_the_tree() -> None:
    packages = {p.parent.name for p in JOBS.glob("*/__init__.py")}
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"`jobs/([a-z_]+)/`", readme)) == packages
    architecture = (ROOT / "ARCHITECTURE.md").read_text()
    tree = architecture.split("```")[1]
    assert set(re.findall(r"\b([a-z_]+)/", tree)) == packages
    for doc, text, prefix in [
        ("README.md", readme, ""),
        ("ARCHITECTURE.md", architecture, "jobs/"),
    ]:
        for module in re.findall(r"`((?:jobs/)?[a-z_]+(?:/[a-z_]+)*\.py)", text):
            path = (
                ROOT / module if module.startswith(("jobs/", "tests/")) else ROOT / prefix / module
            )
            assert path.exists(), f"{doc} names {module}, which does not exist"
