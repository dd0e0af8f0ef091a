"""The synthetic demo world and the `diffmrio demo` command."""

import numpy as np
import pytest

import diffmrio
from diffmrio.cli import main
from diffmrio.datasets import demo_world


def test_demo_world_is_deterministic_and_structured():
    a = demo_world(seed=0, geography=False)
    b = demo_world(seed=0, geography=False)
    np.testing.assert_array_equal(a.mrio.Z, b.mrio.Z)
    m = a.mrio
    assert m.n_regions == 6 and m.n_sectors == 12 and "export" in m.categories
    assert set(diffmrio.datasets.AIR_POLLUTANTS) <= set(m.stressors)
    acc = diffmrio.accounts(m)
    S = acc.S.sel(stressor="SO2")
    for sec in ("power", "metals", "nonmetal"):
        inland = S.sel(sector=sec, region=["Central", "Basin", "Northeast", "Steppe"]).mean()
        coastal = S.sel(sector=sec, region=["Capital", "Harbor"]).mean()
        assert inland > 3 * coastal, sec
    # coastal hubs are net importers of embodied SO2, the energy exporter a net exporter
    net = acc.D_cba_reg - acc.D_pba_reg
    assert net.sel(stressor="SO2", region="Capital") > 0 and net.sel(stressor="SO2", region="Steppe") < 0
    # value added is the balancing item: x = column inputs + value added
    x = np.asarray(acc.x).reshape(-1)
    va = np.asarray(m.F[m.stressor_index("value_added")])
    np.testing.assert_allclose(np.asarray(m.Z).sum(0) + va, x, rtol=1e-12)
    assert demo_world(seed=1, geography=False).mrio.Z[0, 0] != m.Z[0, 0]


def test_demo_positions_are_the_regions_on_the_unit_map():
    """`demo_positions`: one distinct point per region, in the world's region order, on the unit map, with the
    coastal hubs east of the inland provinces and the energy exporter furthest west (x east, y north)."""
    pos = diffmrio.datasets.demo_positions()
    assert tuple(pos) == diffmrio.datasets.REGIONS == demo_world(seed=0, geography=False).mrio.regions
    xy = np.array(list(pos.values()))
    assert xy.shape == (6, 2) and (xy >= 0).all() and (xy <= 1).all() and len({tuple(p) for p in xy}) == 6
    assert min(pos["Capital"][0], pos["Harbor"][0]) > max(pos[r][0] for r in ("Central", "Basin", "Steppe"))
    assert min(pos, key=lambda r: pos[r][0]) == "Steppe"


def test_demo_command_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet", "--economy-only"]) == 0
    report = out / "report.md"
    text = report.read_text()
    assert "synthetic" in text
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 2
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{p.name}" in text
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"
    assert str(report.resolve()) in capsys.readouterr().out


@pytest.mark.slow
def test_quick_full_demo_runs_the_whole_chain(tmp_path, demo_chain_cache):
    """The whole chain on a coarse grid: CTM ensemble, emulator, health, gradients, attribution, Monte Carlo.
    The CTM ensemble and the emulator come from the session's cache of the same quick demo chain (`--cache`;
    `quick_demo_chain` builds it with the same `demo_chain(**demo_config(quick=True))`), not a second build."""
    out = tmp_path / "demo"
    n_cached = len(list(demo_chain_cache.rglob("*")))
    args = ["demo", "--out", str(out), "--quiet", "--quick", "--draws", "64", "--cache", str(demo_chain_cache)]
    assert main(args) == 0
    assert len(list(demo_chain_cache.rglob("*"))) == n_cached, "the demo rebuilt the cached chain"
    text = (out / "report.md").read_text()
    for section in ("CTM ensemble and emulator", "Health impacts", "Gradient query", "attribution to consumers"):
        assert section in text, section
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert {"deaths_map.png", "attribution_mc.png", "adjoint_check.png", "emulator_vs_ctm.png"} <= names
    assert (out / "results" / "monte_carlo_summary.nc").exists()
