"""Every ```python block of README.md and docs/*.md runs, page by page, in a fresh temporary folder.

The blocks of one page run in order in one namespace (a page is one session, as a reader would type it).
A block preceded by an HTML comment `<!-- skip: REASON -->` is not run (REASON says why: it needs the
user's own files, a cluster, ...); pages that read `../shared` get a link to it next to their folder and are
skipped (with the reason) where it is absent.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import types
from pathlib import Path

import pytest
from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^([ \t]*)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)  # also inside admonitions
_SKIP = re.compile(r"<!--\s*skip:\s*(.*?)\s*-->\s*$", re.S)


def blocks(text: str) -> list[tuple[int, str, str | None]]:
    """The ```python blocks of a page: (line number, code, skip reason or None)."""
    out = []
    for m in _FENCE.finditer(text):
        if m.group(2) != "python":
            continue
        before = text[: m.start()].rstrip("\n")
        last = before.rsplit("\n", 1)[-1]
        skip = _SKIP.search(last)
        code = textwrap.dedent(m.group(3))
        out.append((text.count("\n", 0, m.start()) + 1, code, skip.group(1) if skip else None))
    return out


def test_block_parser():
    text = ("a\n```python\nx = 1\n```\n<!-- skip: needs your CMAQ output -->\n```python\ny\n```\n```bash\nls\n```\n"
            "??? example\n\n    ```python\n    z = 2\n      w\n    ```\n")
    assert blocks(text) == [(2, "x = 1\n", None), (6, "y\n", "needs your CMAQ output"), (14, "z = 2\n  w\n", None)]


def test_skips_are_few_and_explained():
    skipped = [(p.name, line, reason) for p in PAGES for line, _, reason in blocks(p.read_text()) if reason is not None]
    assert all(len(reason) > 10 for _, _, reason in skipped), skipped
    total = sum(len(blocks(p.read_text())) for p in PAGES)
    assert len(skipped) <= total // 4, f"{len(skipped)} of {total} doc blocks are skipped: {skipped}"


# pages that run a CTM ensemble or train an emulator (quick settings, still tens of seconds on 2 cores); the
# tutorial also compiles the whole chain's analyses in `diffmrio chain` (~3 min on a loaded 2-core box)
SLOW = {"docs/emulators.md", "docs/reference_ctm.md", "docs/tutorial.md"}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if str(p.relative_to(ROOT)) in SLOW else p
     for p in PAGES if any(r is None for _, _, r in blocks(p.read_text()))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_page_runs(page: Path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    todo = [(line, code) for line, code, reason in blocks(page.read_text()) if reason is None]
    work = tmp_path / "work"
    work.mkdir()
    if any("../shared" in code for _, code in todo):
        if not SHARED.is_dir():
            pytest.skip(f"{page.name} reads ../shared, not found at {SHARED}")
        os.symlink(SHARED, tmp_path / "shared")
    monkeypatch.chdir(work)
    # the page's namespace is a module in sys.modules, as a reader's __main__ is: a block may define a dataclass
    # (an equinox Module, e.g. a user's own CRF in docs/health.md), which looks its module up there
    page_module = types.ModuleType("__docs__")
    monkeypatch.setitem(sys.modules, "__docs__", page_module)
    ns: dict = page_module.__dict__
    try:
        for line, code in todo:
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), ns)
            except Exception as e:  # name the page and block in the failure
                raise AssertionError(f"{page.relative_to(ROOT)}, block at line {line} failed: {e!r}") from e
    finally:
        plt.close("all")


def _table_rows(text: str):
    """(line number, number of cells) of every Markdown table row, outside code blocks; `\\|` is a literal bar."""
    in_code, out = False, []
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("|"):
            out.append((i, len(re.split(r"(?<!\\)\|", line.strip().strip("|")))))
        elif not in_code:
            out.append((i, None))
    return out


def test_tables_have_one_cell_per_column():
    bad = []
    for p in PAGES:
        header = None
        for line, n in _table_rows(p.read_text()):
            if n is None:
                header = None
            elif header is None:
                header = n
            elif n != header:
                bad.append(f"{p.relative_to(ROOT)}:{line}: {n} cells under a {header}-column header (escape | as \\|)")
    assert not bad, bad


def test_math_is_rendered_at_build_time():
    """The docs load nothing from the network for math: the hook turns arithmatex's markup into MathML."""
    import importlib.util

    pytest.importorskip("latex2mathml", reason="the docs extra (latex2mathml) is not installed")
    spec = importlib.util.spec_from_file_location("mathml_hook", ROOT / "docs_hooks" / "mathml.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    out = hook.render('<p>a <span class="arithmatex">\\(x &lt; \\sum_i y_i\\)</span></p>'
                      '<div class="arithmatex">\\[M = S L\\]</div>')
    assert "arithmatex" not in out and out.count("<math") == 2 and "&#x0003C;" in out and 'display="block"' in out
    with pytest.raises(ValueError, match="cannot render"):
        hook.render('<span class="arithmatex">\\(x^\\)</span>', "x.md")
    config = (ROOT / "mkdocs.yml").read_text()
    assert "http" not in config.split("extra_javascript")[-1] if "extra_javascript" in config else True
