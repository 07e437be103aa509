"""Charts of the compliance report as inline SVG (matplotlib, drawn offline, no pyplot).

Labels are data (district ids may be hostile): mathtext is off, matplotlib escapes text for
XML, and every SVG id is prefixed so several charts can share one HTML page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

STATUS_COLOURS = {
    "completed": "#2e7d32",
    "running": "#1565c0",
    "not_started": "#9e9e9e",
    "failed": "#c62828",
    "blocked": "#ef6c00",
    "restored": "#6a1b9a",
}
PRODUCT_COLOURS = {"imagine_math": "#1565c0", "imagine_math_facts": "#00897b", None: "#9e9e9e"}
PRODUCT_LABELS = {
    "imagine_math": "Imagine Math",
    "imagine_math_facts": "Imagine Math Facts",
    None: "no product",
}

_RC: dict[str, Any] = {
    "text.parse_math": False,  # a "$" in a district id must stay a dollar sign
    "svg.fonttype": "none",  # text as <text>, not glyph paths: smaller, selectable
    "svg.hashsalt": "eoy-reset",  # the same report twice is the same bytes
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_ID = re.compile(r'\bid="([^"]+)"')


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        yield


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # a non-interactive canvas; savefig(format="svg") renders the SVG
    return fig


def _to_svg(fig: Figure, prefix: str, title: str) -> str:
    buf = io.StringIO()
    # no RDF metadata block: its date would make each report differ
    fig.savefig(
        buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
    )
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: it is inline now
    for old in set(_ID.findall(text)):
        new = f"{prefix}-{old}"
        text = text.replace(f'id="{old}"', f'id="{new}"').replace(f"#{old})", f"#{new})")
        text = text.replace(f'href="#{old}"', f'href="#{new}"')
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def _label(text: object, limit: int = 32) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def timeline_svg(rows: Sequence[tuple[date, str]], as_of: date, prefix: str = "timeline") -> str:
    """Districts per reset date, stacked by status; a line marks the as-of day."""
    title = "Districts per reset date, by status"
    with _style():
        fig = _new_figure(10, 3.6)
        ax = fig.add_subplot()
        days = sorted({d for d, _ in rows})
        xs = [float(date2num(d)) for d in days]
        statuses = [s for s in STATUS_COLOURS if any(st == s for _, st in rows)]
        statuses += sorted({st for _, st in rows} - set(statuses))
        bottom = dict.fromkeys(days, 0)
        for status in statuses:
            heights = [sum(1 for d, st in rows if d == day and st == status) for day in days]
            ax.bar(
                xs,
                heights,
                bottom=[bottom[d] for d in days],
                width=0.8,
                color=STATUS_COLOURS.get(status, "#607d8b"),
                label=status.replace("_", " "),
            )
            for day, h in zip(days, heights, strict=True):
                bottom[day] += h
        today = float(date2num(as_of))
        ax.axvline(today, color="#212121", linestyle="--", linewidth=1)
        ax.annotate(
            f"as of {as_of.isoformat()}",
            (today, 1),
            xycoords=("data", "axes fraction"),
            xytext=(4, -10),
            textcoords="offset points",
            fontsize=9,
        )
        ax.set_ylim(0, max(bottom.values(), default=1) * 1.2 + 0.2)  # room for the label
        ax.set_xlim(min(*xs, today) - 2, max(*xs, today) + 2)
        ax.xaxis_date()
        ax.set_ylabel("districts")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.autofmt_xdate()
        fig.legend(
            loc="outside lower center", ncols=max(len(statuses), 1), frameon=False, fontsize=9
        )
        ax.set_title(title, loc="left")
        return _to_svg(fig, prefix, title)


def deleted_rows_svg(rows: Sequence[tuple[str, str | None, int]], prefix: str = "deleted") -> str:
    """Rows deleted per table (horizontal bars), stacked by product."""
    title = "Rows deleted by table and product"
    with _style():
        totals: dict[str, int] = {}
        for table, _, n in rows:
            totals[table] = totals.get(table, 0) + n
        tables = sorted(totals, key=lambda t: (totals[t], t))  # largest on top
        fig = _new_figure(10, 0.45 * max(len(tables), 2) + 1.4)
        ax = fig.add_subplot()
        left = dict.fromkeys(tables, 0)
        for product in PRODUCT_COLOURS:
            widths = [sum(n for t, p, n in rows if t == table and p == product) for table in tables]
            if not any(widths):
                continue
            ax.barh(
                tables,
                widths,
                left=[left[t] for t in tables],
                color=PRODUCT_COLOURS[product],
                label=PRODUCT_LABELS[product],
            )
            for table, w in zip(tables, widths, strict=True):
                left[table] += w
        for i, table in enumerate(tables):
            ax.annotate(
                f"{left[table]:,}",
                (left[table], i),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=9,
            )
        ax.set_xlabel("rows deleted")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.margins(x=0.08)
        ax.legend(loc="lower right", frameon=False, fontsize=9)
        ax.set_title(title, loc="left")
        return _to_svg(fig, prefix, title)


def inactive_educators_svg(
    rows: Sequence[tuple[str, int, int]], prefix: str = "educators", top: int = 20
) -> str:
    """Inactive educators per district (never logged in / idle), the `top` largest."""
    title = (
        f"Inactive educators per district (top {top})"
        if len(rows) > top
        else ("Inactive educators per district")
    )
    with _style():
        shown = sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0]))[:top][::-1]
        fig = _new_figure(10, 0.35 * max(len(shown), 2) + 1.4)
        ax = fig.add_subplot()
        labels = [_label(d) for d, _, _ in shown]
        positions = list(range(len(shown)))
        never = [n for _, n, _ in shown]
        idle = [i for _, _, i in shown]
        ax.barh(positions, never, color="#ef6c00", label="never logged in")
        ax.barh(positions, idle, left=never, color="#fbc02d", label="inactive")
        ax.set_yticks(positions, labels)
        ax.set_xlabel("educators")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="lower right", frameon=False, fontsize=9)
        ax.set_title(title, loc="left")
        return _to_svg(fig, prefix, title)
