"""The 0.2 package layout: a core top level over subpackages, old paths resolving with a warning, and no plotting
dependency in the core."""

import subprocess
import sys

import pytest

import diffmrio

SUBPACKAGES = ("chain", "datasets", "health", "scenarios", "supply_chain", "tables")


def test_top_level_is_the_core_and_the_subpackages():
    public = {n for n in dir(diffmrio) if not n.startswith("_")}
    assert set(SUBPACKAGES) <= public
    assert "Chain" not in public and "ras" not in public and "structural_paths" not in public
    assert len(public - set(SUBPACKAGES)) <= 32, sorted(public)


@pytest.mark.parametrize(("old", "new"), [
    ("Chain", "chain"), ("monte_carlo", "chain"), ("ras", "tables"), ("read_wiod", "tables"),
    ("structural_path_analysis", "supply_chain"), ("gini", "scenarios"), ("footprint_gradients", "scenarios"),
])
def test_moved_names_resolve_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning, match=rf"diffmrio\.{old} moved to diffmrio\.{new}\.{old}"):
        obj = getattr(diffmrio, old)
    assert obj is getattr(getattr(diffmrio, new), old)


def test_demo_pipeline_moved_out_of_datasets():
    import diffmrio.demo

    with pytest.warns(DeprecationWarning, match=r"diffmrio\.datasets\.demo_chain moved to diffmrio\.demo"):
        assert diffmrio.datasets.demo_chain is diffmrio.demo.demo_chain


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        diffmrio.not_a_name  # noqa: B018


def test_every_subpackage_name_is_importable_and_documented():
    """Each public name of a subpackage is rendered on the API pages (so the docs list the namespaces)."""
    from pathlib import Path

    api = "".join(p.read_text() for p in (Path(__file__).parents[1] / "docs" / "api").glob("*.md"))
    missing = [f"diffmrio.{s}.{n}" for s in SUBPACKAGES if s not in ("datasets", "health")
               for n in dir(getattr(diffmrio, s)) if not n.startswith("_") and f"diffmrio.{s}.{n}" not in api]
    assert not missing, f"not on docs/api: {missing}"


def test_the_core_does_not_import_matplotlib():
    code = "import sys, diffmrio, diffmrio.chain, diffmrio.tables, diffmrio.health; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_docs_the_code_cites_are_in_the_repository():
    """Issue 11 item 6: every docs page a docstring or comment cites (`docs/<page>.md`) is a file of the
    repository, every cited section of the science page (`science.md, section N` or a quoted heading) exists,
    and nothing cites the design notes that were never in the repository or a path outside it."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    science = " ".join((root / "docs" / "science.md").read_text().split())
    sections = set(re.findall(r"## (\d+)\. ", science))
    bad = []
    for path in sorted(p for d in ("diffmrio", "surrogate", "ctm_interface", "experiments", "benchmarks")
                       for p in (root / d).rglob("*.py")):  # fmt: skip
        text = path.read_text()
        name = path.relative_to(root)
        bad += [f"{name}: docs/{page}" for page in re.findall(r"docs/([\w/]+\.md)", text)
                if not (root / "docs" / page).is_file()]  # fmt: skip
        bad += [f"{name}: science.md section {n}" for n in re.findall(r"science\.md,? section (\d+)", text)
                if n not in sections]  # fmt: skip
        bad += [f"{name}: science.md {q!r}" for q in re.findall(r'science\.md, "([^"]+)"', text)
                if " ".join(q.split()) not in science]  # fmt: skip
        bad += [f"{name}: {ref}" for ref in ("ARCHITECTURE.md", "SCIENCE.md", "STYLE.md", "RUN_FOLDER.md", "/work/")
                if ref in text]  # fmt: skip
    assert sections == {str(i) for i in range(1, 8)}
    assert not bad, bad
