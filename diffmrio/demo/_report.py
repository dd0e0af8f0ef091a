"""A small report builder: markdown sections, tables and PNG figures written atomically into one folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .._io import save_figure_atomic, write_text_atomic


def subplots(*args, figsize=None, **kwargs):
    """`matplotlib.pyplot.subplots` without pyplot: a `Figure` that needs no GUI backend (so importing the
    report code never switches the user's matplotlib backend)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def table_md(df: pd.DataFrame, floatfmt: str = "{:,.1f}") -> str:
    """A pandas frame as a GitHub-flavoured markdown table (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    head = "| " + " | ".join([str(df.index.name or "")] + cols) + " |"
    sep = "|" + "---|" * (len(cols) + 1)
    lines = [head, sep]
    for idx, row in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, (float, int)) and not isinstance(v, bool) else str(v)
                 for v in row.tolist()]
        lines.append("| " + " | ".join([str(idx)] + cells) + " |")
    return "\n".join(lines)


@dataclass
class Report:
    """Collects markdown and figures; `write()` produces `folder/report.md` and `folder/figures/*.png`."""

    folder: Path
    title: str
    parts: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.folder = Path(self.folder)
        (self.folder / "figures").mkdir(parents=True, exist_ok=True)

    def add(self, text: str) -> None:
        self.parts.append(text.strip() + "\n")

    def table(self, df: pd.DataFrame, caption: str = "", floatfmt: str = "{:,.1f}") -> None:
        self.parts.append((f"*{caption}*\n\n" if caption else "") + table_md(df, floatfmt) + "\n")

    def figure(self, fig, name: str, caption: str) -> Path:
        path = save_figure_atomic(fig, self.folder / "figures" / f"{name}.png", dpi=120, bbox_inches="tight")
        if fig.canvas.manager is not None:  # a pyplot figure (pyplot is then already imported): release it
            import matplotlib.pyplot as plt

            plt.close(fig)
        self.parts.append(f"![{caption}](figures/{name}.png)\n\n*{caption}*\n")
        return path

    def write(self) -> Path:
        text = f"# {self.title}\n\n" + "\n".join(self.parts)
        return write_text_atomic(self.folder / "report.md", text)
