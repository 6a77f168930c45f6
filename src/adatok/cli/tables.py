"""The rich tables the commands print: tokens of a file, an evaluation's summary, a region's PSNR;
and the console (:func:`output_console`) and table class (:class:`WholeTable`) every command prints
them with, which never cut a number or a name to "…"."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from adatok import TokenSequence
from adatok.core.checks import counted

#: The width of :func:`output_console` when stdout is not a terminal: wider than any table or line
#: the commands print, which rich then lays out at their own width (no padding to this one).
PIPE_WIDTH = 10_000


def output_console() -> Console:
    """The console a command prints its lines and tables to (stdout). On a terminal, its width; on a
    pipe or a file (``adatok info x.atk | cat``, a test runner) as wide as the lines need: rich took
    80 columns there (or ``$COLUMNS``) and cut the numbers of a wide table to ``2,788,5…``, though
    nothing would have wrapped them (found by an outside user's review)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


class WholeTable(Table):
    """A rich :class:`~rich.table.Table` whose columns fold a value too long for them onto the next
    line (``overflow="fold"``) instead of cutting it to ``…``: on a terminal too narrow for the table
    every digit still shows. A column with ``no_wrap=True`` keeps rich's ``…`` (folded, it would be cut
    without a mark), and any ``overflow`` given is kept."""

    def add_column(self, *args: Any, overflow: Any = None, **kwargs: Any) -> None:
        if overflow is None:
            overflow = "ellipsis" if kwargs.get("no_wrap") else "fold"
        super().add_column(*args, overflow=overflow, **kwargs)


def token_table(seq: TokenSequence) -> Table | None:
    """A table of how many of ``seq``'s tokens fall on each bit-plane (rows) and level (columns).

    For sequences whose ``pos_fields`` lack ``plane`` or ``level``, a one-column table of the
    counts per value of the first position field. ``None`` if the sequence has no position fields.
    """
    fields = list(seq.pos_fields)
    if "plane" in fields and "level" in fields:
        pos = seq.pos
        plane, level = pos[:, fields.index("plane")], pos[:, fields.index("level")]
        # counted by np.bincount of plane x level, a few million tokens at a time (sets of the values
        # as Python lists, and a scan per plane, took 3 GB and 19 s for the 40 million tokens of a
        # 2000x1500 photo; whole int64 copies of the two columns, 16 bytes a token)
        p0, l0 = (int(plane.min()), int(level.min())) if len(plane) else (0, 0)
        nl = int(level.max()) - l0 + 1 if len(level) else 1
        cells = np.zeros((int(plane.max()) - p0 + 1) * nl if len(plane) else 0, np.int64)
        for a in range(0, len(plane), 1 << 22):
            part = slice(a, a + (1 << 22))
            cells += np.bincount((plane[part].astype(np.int64) - p0) * nl + (level[part] - l0), minlength=len(cells))
        tally = {(p0 + c // nl, l0 + c % nl): int(n) for c, n in enumerate(cells.tolist()) if n}
        planes = sorted({p for p, _ in tally}, reverse=True)  # coded top plane first
        levels = sorted({lev for _, lev in tally}, reverse=True)  # coarse to fine
        if "levels" in seq.params:  # every level of the image, even those with no tokens yet
            levels = sorted(set(levels) | set(range(1, int(seq.params["levels"]) + 1)), reverse=True)

        def count(p: int, lev: int) -> int:
            return tally.get((p, lev), 0)

        table = WholeTable(title="tokens per bit-plane and level", caption="level 1 is the finest")
        table.add_column("plane", justify="right")
        for lev in levels:
            table.add_column(f"L{lev}", justify="right")
        table.add_column("total", justify="right", style="bold")
        for p in planes:
            counts = [count(p, lev) for lev in levels]
            table.add_row(str(p), *[f"{c:,}" for c in counts], f"{sum(counts):,}")
        table.add_section()
        table.add_row("total", *[f"{sum(count(p, lev) for p in planes):,}" for lev in levels], f"{len(seq):,}",
                      style="bold")
        return table
    if not fields:
        return None
    name = fields[0]
    values, counts = np.unique(seq.pos[:, 0], return_counts=True)
    table = WholeTable(title=f"tokens per {name}")
    table.add_column(name, justify="right")
    table.add_column("tokens", justify="right")
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        table.add_row(str(v), f"{c:,}")
    table.add_section()
    table.add_row("total", f"{len(seq):,}", style="bold")
    return table


def print_eval(ev, report: Path, console: Console) -> None:
    """The terminal summary of a run: skipped files, mean PSNR @ bpp per method and budget, BD-rate."""
    from adatok.eval import bd_rates, read_results, summarize
    from adatok.eval.report import met_count
    from adatok.eval.runner import budget_text

    rows = read_results(report.parent / "results.csv")
    if ev.skipped:
        console.print(f"skipped {len(ev.skipped)}:", markup=False)
        for name, reason in ev.skipped:
            console.print(f"  {name}: {reason}", markup=False, soft_wrap=True)
    stats = summarize(rows)
    rates = bd_rates(rows)
    caption = "n/N: the budget was met on n of N images" + (
        "; BD-rate: against JPEG 2000, on PSNR (n/N: over the n images where both curves overlap)" if rates else "")
    table = WholeTable(title=f"mean PSNR in dB (mean bits per pixel) over {counted(len(ev.images), 'image')}",
                  caption=caption)
    table.add_column("method", no_wrap=True, min_width=max(len(m.label) for m in ev.methods))
    for kind, b in ev.budgets:
        table.add_column(f"{budget_text(kind, b)} {'bpp' if kind == 'bpp' else 'tokens'}", justify="right")
    if rates:
        table.add_column("BD-rate", justify="right", no_wrap=True)
    for m in ev.methods:
        cells = []
        for kind, b in ev.budgets:
            st = stats.get((m.name, kind, budget_text(kind, b)))
            if st is None:
                cells.append("-")
            elif not st["n"]:
                cells.append("cannot")
            else:
                cells.append(f"{st['psnr']:.2f} ({st['bpp']:.2f}){met_count(st)}")
        if rates:
            v = rates.get(m.name, {}).get("psnr")
            n = int(rates.get(m.name, {}).get("n", 0))
            part = f" {n}/{len(ev.images)}" if n < len(ev.images) else ""  # (a mean of fewer images: said, as above)
            cells.append("ref." if m.name == "jp2" else ("n/a" if v is None or math.isnan(v) else f"{v:+.1f}%{part}"))
        table.add_row(m.label, *cells)
    console.print(table)
    console.print(f"results: {report.parent / 'results.csv'}", markup=False, soft_wrap=True)
    console.print(f"report:  {report}", markup=False, soft_wrap=True)


def print_region(ev, report: Path, console: Console) -> None:
    """With a region of interest: mean PSNR inside / outside it per method and bpp budget."""
    from adatok.eval import read_results, summarize
    from adatok.eval.report import met_count, side_count
    from adatok.eval.runner import budget_text

    if not ev.config.get("roi"):
        return
    stats = summarize(read_results(report.parent / "results.csv"))
    bpps = [(k, b) for k, b in ev.budgets if k == "bpp"]
    if not bpps:
        return
    table = WholeTable(title=f"mean PSNR in dB inside / outside the region over {counted(len(ev.images), 'image')}",
                  caption=f"region: {ev.config['roi']}; inside: map >= 0.5; + roi: encoded with it; n/N: over the "
                          "n images measured (budget met), or after a mean, over the n with pixels on that side")
    table.add_column("method", no_wrap=True)
    for k, b in bpps:
        table.add_column(f"{budget_text(k, b)} bpp", justify="right")
    for m in ev.methods:
        cells = []
        for k, b in bpps:
            st = stats.get((m.name, k, budget_text(k, b)))
            if st is None or not st["n"]:
                cells.append("-" if st is None else "cannot")
                continue
            cells.append(f"{st['psnr_roi']:.2f}{side_count(st, 'psnr_roi')} / "
                         f"{st['psnr_out']:.2f}{side_count(st, 'psnr_out')}{met_count(st)}")
        table.add_row(m.label, *cells)
    console.print(table)
