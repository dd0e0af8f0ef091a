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
