"""What the operator sees and types at a terminal: tables laid out for its width, and the
one typed confirmation before a command changes data.

A table is printed whole only when every column fits at its natural width: numbers, dates,
step names and paths are never cut or wrapped. When the terminal is too narrow a view drops
or abbreviates columns (with a legend) or lists the long values below the table. Rich takes
the width from the terminal, or from COLUMNS when output is piped (80 without it).
A destructive command asks for a word typed back (a count, a district id), not a yes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text


def width_of(text: str) -> int:
    """Printed width of a cell, markup removed."""
    return max((cell_len(line) for line in Text.from_markup(text).plain.splitlines()), default=0)


def table_width(header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """Width of a rich table with square borders and padding 1 at natural column widths."""
    widths = [width_of(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], width_of(cell))
    return sum(w + 2 for w in widths) + len(widths) + 1


def fits(console: Console, header: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    return table_width(header, rows) <= console.width


def grid(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Collection[str] = (),
    wrap: Sequence[str] = (),
) -> Table:
    """A table whose columns never wrap or cut, except those named in `wrap` (word-wrapped)."""
    table = Table(title=title or None, title_justify="left")
    for name in header:
        table.add_column(
            name,
            justify="right" if name in right else "left",
            no_wrap=name not in wrap,
            overflow="fold" if name in wrap else "ellipsis",
        )
    for row in rows:
        table.add_row(*row)
    return table


def print_lines(
    console: Console, title: str, lines: Sequence[tuple[str, str]], whole: bool = True
) -> None:
    """`title`, then one `key: value` line each: never wrapped by us when `whole` (paths stay
    whole), else wrapped between words."""
    if not lines:
        return
    console.print(title, highlight=False)
    for key, value in lines:
        text = Text(f"  {key}: {value}")
        console.print(text, soft_wrap=whole, highlight=False)


def print_fitted(
    console: Console,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Collection[str] = (),
    wrap: Sequence[str] = (),
    movable: Sequence[str] = (),
) -> None:
    """Print the table; while it is too wide, the `movable` columns (in order) leave it and
    are listed below it, one `first column: value` line each. Columns in `wrap` wrap between
    words, so they need only their longest word; every other column stays whole."""
    header = list(header)
    table = [list(r) for r in rows]
    for name in list(header[1:]):  # an empty column is no column
        i = header.index(name)
        if table and not any(r[i] for r in table):
            header.pop(i)
            for r in table:
                r.pop(i)
    below: list[tuple[str, list[tuple[str, str]]]] = []

    def squeezed() -> list[list[str]]:
        out = []
        for r in table:
            out.append(
                [
                    max(cell.split() or [""], key=width_of) if name in wrap else cell
                    for name, cell in zip(header, r, strict=True)
                ]
            )
        return out

    for name in movable:
        if fits(console, header, squeezed()) or name not in header:
            continue
        i = header.index(name)
        below.append((name, [(r[0], r[i]) for r in table if r[i]]))
        header.pop(i)
        for r in table:
            r.pop(i)
    console.print(grid(title, header, table, right=right, wrap=wrap))
    for name, lines in below:
        label = f"{name[:1].upper()}{name[1:]}{'' if name.endswith('s') else 's'}:"
        print_lines(console, label, lines, whole=name not in wrap)


def print_table_or_records(
    console: Console,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Collection[str] = (),
) -> None:
    """The table when it fits; else one block per row, `column: value` a line (nothing cut)."""
    if fits(console, header, rows):
        console.print(grid(title, header, rows, right=right))
        return
    console.print(title, highlight=False)
    pad = max((width_of(h) for h in header), default=0)
    for n, row in enumerate(rows, 1):
        console.print(f"[bold]#{n}[/bold]")
        for name, value in zip(header, row, strict=True):
            console.print(Text(f"  {name.ljust(pad)}  {value}"), soft_wrap=True, highlight=False)


def typed_confirmation(what: str, expected: str) -> bool:
    """Ask `Type <expected> to <what>` and whether the operator typed exactly that back."""
    answer = typer.prompt(f"Type {expected} to {what}", default="", show_default=False)
    return bool(answer.strip() == expected)
