"""Smoke and value tests of the OUTSOURCE experiment (experiments/outsourcing.py) on the synthetic demo world.

Headline quantities are checked against explicit numpy computations (Leontief inverse by `np.linalg.inv`,
burden matrices and net transfers by hand, RAS by a hand-written loop)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _systems import ceads_arrays

import diffmrio
from experiments import _common, outsourcing as exp


@pytest.fixture(scope="module")
def world():
    return diffmrio.datasets.demo_world(seed=0, geography=False).mrio


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("outsourcing")
    return out, exp.run(out, quick=True)


def _np_accounts(m, stressor="CO2", categories=None):
    """Burden matrix E[r, s] and CBA/PBA per region, by an explicit inverse."""
    Z, Y, F, FY = (np.asarray(a) for a in (m.Z, m.Y, m.F, m.F_Y))
    R, N, K = m.n_regions, m.n_sectors, m.n_categories
    q = m.stressors.index(stressor)
    w = np.ones(R * K) if categories is None else np.tile([c in categories for c in m.categories], R).astype(float)
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(R * N) - Z / x[None, :])
    s = F[q] / x
    Yreg = (Y * w[None, :]).reshape(R * N, R, K).sum(2)
    E = (s[:, None] * (L @ Yreg)).reshape(R, N, R).sum(1)
    fy = (FY[q] * w).reshape(R, K).sum(1)
    cba = E.sum(0) + fy
    pba = F[q].reshape(R, N).sum(1) + FY[q].reshape(R, K).sum(1)
    return E, cba, pba


def test_report_written_from_result(result, tmp_path):
    out, res = result
    report = out / "report.md"
    assert res["report"] == report and report.is_file()
    text = report.read_text()
    assert "synthetic" in text.lower() and res["synthetic"] is True
    lnt = res["largest_net_transfer"]
    assert (f"Largest net transfer: {lnt['value']:,.1f} {res['unit']} emitted in {lnt['to_emitter']} for "
            f"{lnt['from_consumer']}'s final demand") in text
    assert f"{100 * res['hub_share_emitted_elsewhere']:.1f}%** (domestic final demand)" in text
    assert f"Largest regional CBA error: {100 * res['reconstruction_error']:.1f}%" in text
    for name in ("pba_vs_cba", "net_transfers_map", "net_transfers", "reconstruction"):
        assert f"figures/{name}.png" in text
    for nc in ("outsourcing.nc", "rebuilt_mrio.nc"):
        assert (out / "results" / nc).is_file()
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"
    # the same report from the result alone, without the reconstruction (sections 1-2 are the same numbers)
    full = res["result"]
    accounts = exp.compute(diffmrio.datasets.demo_world(seed=0, geography=False).mrio, top_k=5, reconstruct=False,
                           synthetic=True, source=full.attrs["source"])
    assert "cba" in accounts and "cba_true" not in accounts and "rebuilt_Z" not in accounts
    xr.testing.assert_allclose(accounts, full[list(accounts.data_vars)], rtol=1e-12)
    text = exp.report(accounts, tmp_path / "o").read_text()
    assert "Skipped: no region positions or distances" in text and not (tmp_path / "o" / "results" / "rebuilt_mrio.nc").exists()
    assert all("units" in full[v].attrs for v in full.data_vars)
    # the rebuilt table travels in the dataset and comes back whole
    back = diffmrio.MRIO.from_xarray(xr.load_dataset(out / "results" / "rebuilt_mrio.nc"))
    np.testing.assert_array_equal(np.asarray(exp.rebuilt_table(full).Z), np.asarray(back.Z))


def test_pba_cba_and_net_transfers_match_numpy(result, world):
    out, res = result
    E, cba, pba = _np_accounts(world)
    regions = list(world.regions)
    np.testing.assert_allclose([res["cba"][r] for r in regions], cba, rtol=1e-9)
    np.testing.assert_allclose([res["pba"][r] for r in regions], pba, rtol=1e-9)
    net = E - E.T
    r, s = np.unravel_index(np.argmax(net), net.shape)
    lnt = res["largest_net_transfer"]
    assert (lnt["to_emitter"], lnt["from_consumer"]) == (regions[r], regions[s])
    np.testing.assert_allclose(lnt["value"], net[r, s], rtol=1e-9)
    ds = xr.open_dataset(out / "results" / "outsourcing.nc")
    np.testing.assert_allclose(ds["net_transfer"].values, net, rtol=1e-9, atol=1e-9 * np.abs(net).max())
    # the category split adds up to the total burden, and the household part matches numpy
    np.testing.assert_allclose(ds["burden_by_category"].sum("category_group").values, E, rtol=1e-9)
    E_hh, _, _ = _np_accounts(world, categories=("household",))
    np.testing.assert_allclose(ds["burden_by_category"].sel(category_group="household").values, E_hh, rtol=1e-9)
    ds.close()


def test_hub_share_by_hand(result, world):
    _, res = result
    regions = list(world.regions)
    domestic = ("household", "government", "capital_formation")
    E, cba, _ = _np_accounts(world, categories=domestic)
    H = [regions.index(h) for h in ("Capital", "Harbor")]
    notH = [k for k in range(len(regions)) if k not in H]
    expected = E[np.ix_(notH, H)].sum() / cba[H].sum()
    assert res["hubs"] == ("Capital", "Harbor")
    np.testing.assert_allclose(res["hub_share_emitted_elsewhere"], expected, rtol=1e-9)
    for h in H:
        own = (cba[h] - (E[:, h].sum() - E[h, h])) / cba[h]
        np.testing.assert_allclose(res["hub_share_emitted_outside_each_hub"][regions[h]], 1 - own, rtol=1e-9)


def _hand_ras(P, u, v, iters=5000):
    X = P.copy()
    for _ in range(iters):
        X *= (v / np.where(X.sum(0) > 0, X.sum(0), 1))[None, :]
        X *= (u / np.where(X.sum(1) > 0, X.sum(1), 1))[:, None]
    return X


def test_reconstruction_keeps_totals_and_error_matches_numpy(result, world):
    out, res = result
    R, N, K = world.n_regions, world.n_sectors, world.n_categories
    reb = diffmrio.MRIO.from_xarray(xr.open_dataset(out / "results" / "rebuilt_mrio.nc").load())
    Z, Y = np.asarray(world.Z), np.asarray(world.Y)
    Zr, Yr = np.asarray(reb.Z), np.asarray(reb.Y)
    # the regional totals the reconstruction starts from are reproduced
    np.testing.assert_allclose(Zr.sum(1) + Yr.sum(1), Z.sum(1) + Y.sum(1), rtol=1e-9)
    use = lambda Zm: Zm.reshape(R, N, R, N).sum(0)  # noqa: E731  (product, region, sector): use regardless of origin
    np.testing.assert_allclose(use(Zr), use(Z), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Yr.reshape(R, N, R, K).sum(0), Y.reshape(R, N, R, K).sum(0), rtol=1e-9, atol=1e-12)
    # reconstruction error from an explicit inverse on both tables
    _, cba_true, _ = _np_accounts(world)
    _, cba_reb, _ = _np_accounts(reb)
    err = (cba_reb - cba_true) / cba_true
    np.testing.assert_allclose([res["reconstruction_error_by_region"][r] for r in world.regions], err, rtol=1e-7)
    np.testing.assert_allclose(res["reconstruction_error"], np.abs(err).max(), rtol=1e-7)
    assert 0 < res["reconstruction_error"] < res["reconstruction_error_totals_only"]


def test_gravity_trade_equals_hand_ras(result, world):
    out, _ = result
    R, N, K = world.n_regions, world.n_sectors, world.n_categories
    Z4 = np.asarray(world.Z).reshape(R, N, R, N)
    Y4 = np.asarray(world.Y).reshape(R, N, R, K)
    i = diffmrio.datasets.SECTORS.index("metals")
    T = Z4[:, i].sum(-1) + Y4[:, i, :, :3].sum(-1)  # true flows of product i, r -> s (domestic use)
    out_i = T.sum(1) - np.diag(T)
    in_i = T.sum(0) - np.diag(T)
    pos = np.array([diffmrio.datasets.demo_positions()[r] for r in world.regions])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    prior = np.where(np.eye(R, dtype=bool), 0.0, np.outer(out_i, in_i) / np.where(d > 0, d, 1.0))
    expected = _hand_ras(prior, out_i, in_i)
    rec = xr.open_dataset(out / "results" / "outsourcing.nc")
    got = rec["trade_rebuilt"].sel(sector="metals").values
    rec.close()
    off = ~np.eye(R, dtype=bool)
    np.testing.assert_allclose(got[off], expected[off], rtol=1e-7)
    np.testing.assert_allclose(np.diag(got), np.diag(T), rtol=1e-9)  # local supply comes from the totals


def test_bad_inputs_raise(world, tmp_path):
    """(The gravity + RAS functions' own errors are tested in tests/test_gravity.py.)"""
    with pytest.raises(ValueError, match="hubs"):
        exp.run(tmp_path / "a", mrio=world, quick=True, hubs=("Atlantis",))
    with pytest.raises(ValueError, match="stressor"):
        exp.run(tmp_path / "b", mrio=world, quick=True, stressor="CH4")
    with pytest.raises(ValueError, match="no position"):
        exp.run(tmp_path / "c", mrio=world, quick=True, positions={"Capital": (0, 0)})


def test_distances_csv(world, tmp_path):
    """User-data path: distances from a labelled CSV (the emission inventory reader is tested in
    tests/test_inventory.py)."""
    d = diffmrio.tables.distance_matrix(diffmrio.datasets.demo_positions(), world.regions).values
    rev = list(world.regions)[::-1]
    pd.DataFrame(d[::-1, ::-1], index=rev, columns=rev).to_csv(tmp_path / "d.csv")
    np.testing.assert_allclose(diffmrio.tables.read_distances_csv(tmp_path / "d.csv", world.regions).values, d)


def test_cli_on_mrio_netcdf(world, tmp_path, capsys):
    """`main()` on a user table given as netCDF (the demo table relabelled as non-synthetic)."""
    from diffmrio._io import write_netcdf_atomic

    ds = world.to_xarray()
    ds.attrs["name"] = "user table"
    write_netcdf_atomic(ds, tmp_path / "t.nc")
    res = exp.main(["--out", str(tmp_path / "o"), "--mrio", str(tmp_path / "t.nc"), "--quick",
                    "--hubs", "Capital,Harbor", "--beta", "1.5"])
    assert res["synthetic"] is False and res["beta"] == 1.5
    assert "report written" in capsys.readouterr().out
    assert "synthetic" not in (tmp_path / "o" / "report.md").read_text().split("##")[0].lower()


def test_cli_on_ceads_workbook_with_emissions_and_distances(tmp_path):
    """The user-data path end to end: a CEADs-layout workbook, a CO2 inventory CSV and a distance CSV."""
    from diffmrio.tables._ceads import write_ceads_like

    rng = np.random.default_rng(1)
    provinces, sectors = ["P1", "P2", "P3"], ["s1", "s2"]
    n = 6
    Z, fd, exports, _, _, va, x = ceads_arrays(3, 2, seed=1, imports=0.0)
    write_ceads_like(tmp_path / "t.xlsx", Z, fd, exports, va, provinces, sectors)
    co2 = rng.uniform(1, 10, n)
    pd.DataFrame([("CO2", p, s, co2[k], "Mt") for k, (p, s) in enumerate((p, s) for p in provinces for s in sectors)],
                 columns=["stressor", "region", "sector", "value", "unit"]).to_csv(tmp_path / "e.csv", index=False)
    d = np.array([[0, 1.0, 2.0], [1.0, 0, 1.5], [2.0, 1.5, 0]])
    pd.DataFrame(d, index=provinces, columns=provinces).to_csv(tmp_path / "d.csv")
    res = exp.main(["--out", str(tmp_path / "o"), "--ceads", str(tmp_path / "t.xlsx"), "--emissions",
                    str(tmp_path / "e.csv"), "--distances", str(tmp_path / "d.csv"), "--quick"])
    assert res["synthetic"] is False and len(res["hubs"]) == 1
    table = _common.load_table(ceads=tmp_path / "t.xlsx", emissions=tmp_path / "e.csv").mrio
    _, cba, pba = _np_accounts(table)
    np.testing.assert_allclose([res["cba"][p] for p in provinces], cba, rtol=1e-9)
    np.testing.assert_allclose(sum(res["pba"].values()), co2.sum(), rtol=1e-12)
    assert res["hubs"] == (provinces[int(np.argmax(cba / pba))],)
    assert np.isfinite(res["reconstruction_error"])
    assert (tmp_path / "o" / "figures" / "reconstruction.png").is_file()
