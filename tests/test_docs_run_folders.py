"""docs/run_folders.md runs end to end: its ```python blocks are executed in order, in one namespace, in a
temporary folder (on a run folder the reference CTM writes)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "run_folders.md"


def _blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_page_is_in_the_nav():
    nav = (PAGE.parents[1] / "mkdocs.yml").read_text()
    assert "run_folders.md" in nav


@pytest.mark.slow
def test_run_folders_page_runs(tmp_path, monkeypatch, capsys):
    blocks = _blocks(PAGE.read_text())
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"{PAGE.name}[block {i}]", "exec"), ns)
            except Exception as e:  # pragma: no cover - the message says which block failed
                raise AssertionError(f"block {i} of {PAGE.name} failed: {e!r}\n{code}") from e
    out = capsys.readouterr().out
    assert "[outputs]" in out and "no problems found" in out
    assert (tmp_path / "model.eqx").exists() and (tmp_path / "metrics.json").exists()
    assert ns["gridded"].attrs["base_case"] == "run 0"
