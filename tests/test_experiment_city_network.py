"""The BTH experiment (experiments/city_network.py) on the synthetic demo world: `compute`'s dataset checked
independently - the ANAIS margins and bounds on the updated table, Phi = diag(s) L Z by an explicit numpy inverse,
the top links by sorting, the inefficient share by an explicit loop over Phi - and `report` from the dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import diffmrio
from experiments import city_network as exp


@pytest.fixture(scope="module")
def world():
    return diffmrio.datasets.demo_world(seed=0, geography=False).mrio


@pytest.fixture(scope="module")
def ds():
    return exp.compute()


@pytest.fixture(scope="module")
def updated(ds):
    return exp.updated_table(ds)


def _np_phi(m, stressor="NOx"):
    Z, Y = np.asarray(m.Z), np.asarray(m.Y)
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(m.n) - Z / x[None, :])
    s = np.asarray(m.F[m.stressors.index(stressor)]) / x
    return s[:, None] * (L @ Z), s


def test_report_from_dataset(ds, updated, tmp_path):
    out = tmp_path / "out"
    path = exp.report(ds, out, quick=True)
    text = path.read_text()
    assert path == out / "report.md" and "synthetic" in text.lower() and ds.attrs["synthetic"] == 1
    assert f"{100 * float(ds.inefficient_share):.1f}%" in text and f"{100 * float(ds.anais_max_rel_change):.2f}%" in text
    for name in ("anais_update", "network_links", "network_heatmap", "efficiency"):
        assert (out / "figures" / f"{name}.png").is_file() and f"figures/{name}.png" in text
    with xr.open_dataset(out / "results" / "updated_mrio.nc") as t:
        back = diffmrio.MRIO.from_xarray(t.load())
    np.testing.assert_array_equal(np.asarray(back.Z), np.asarray(updated.Z))
    np.testing.assert_array_equal(np.asarray(back.F), np.asarray(updated.F))
    xr.testing.assert_equal(xr.load_dataset(out / "results" / "city_network.nc").Phi, ds.Phi)
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"
    assert all("units" in ds[v].attrs for v in ds.data_vars)


def test_anais_margins_met_and_changes_bounded(ds, world, updated):
    n = world.n
    X0 = np.hstack([np.asarray(world.Z), np.asarray(world.Y)])
    X = np.hstack([np.asarray(updated.Z), np.asarray(updated.Y)])
    u = ds.output_target.values.ravel()
    v = np.concatenate([ds.input_target.values.ravel(), ds.final_demand_target.values.ravel()])
    # the targets are the scenario's (independently regenerated) and they are met
    sc = exp.scenario_margins(world, seed=7)
    np.testing.assert_allclose(u, sc["output"], rtol=1e-12)
    np.testing.assert_allclose(v, np.concatenate([sc["inputs"], sc["final_demand"]]), rtol=1e-12)
    np.testing.assert_allclose(X.sum(1), u, rtol=1e-9)
    np.testing.assert_allclose(X.sum(0), v, rtol=1e-9, atol=1e-9)
    # zeros stay zero, signs kept, every relative change within t*
    assert np.all(X[X0 == 0] == 0) and np.all(X >= 0)
    nz = X0 != 0
    rel = np.abs(X[nz] - X0[nz]) / X0[nz]
    np.testing.assert_allclose(float(ds.anais_achieved_max_rel_change), rel.max(), rtol=1e-9)
    np.testing.assert_allclose(np.sort(np.abs(ds.cell_rel_change.values)), np.sort(rel), rtol=1e-9)
    assert rel.max() <= float(ds.anais_max_rel_change) * (1 + 1e-6) + 1e-8
    # t* cannot be below what a single margin forces: |u_i - sum_j x0_ij| <= t* sum_j |x0_ij|
    lower = max(np.max(np.abs(u - X0.sum(1)) / X0.sum(1)), np.max(np.abs(v - X0.sum(0)) / X0.sum(0)))
    assert float(ds.anais_max_rel_change) >= lower - 1e-9
    # input-structure coefficients within +/-30% of the prior's
    sh0 = X0[:, :n] / X0[:, :n].sum(0)
    sh = X[:, :n] / X[:, :n].sum(0)
    m = X0[:, :n] > 0
    assert np.max(np.abs(sh[m] / sh0[m] - 1)) <= 0.3 + 1e-7
    # direct intensities are kept
    x0, x1 = X0.sum(1), X.sum(1)
    np.testing.assert_allclose(np.asarray(updated.F) / x1, np.asarray(world.F) / x0, rtol=1e-9)


def test_network_and_top_links_match_numpy(ds, updated):
    Phi, s = _np_phi(updated)
    np.testing.assert_allclose(float(ds.total_embodied), Phi.sum(), rtol=1e-9)
    np.testing.assert_allclose(ds["Phi"].values.reshape(Phi.shape), Phi, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ds.intensity.values.ravel(), s, rtol=1e-12)
    labels = [f"{r}/{s}" for r in updated.regions for s in updated.sectors]
    P = Phi.copy()
    np.fill_diagonal(P, 0.0)
    flat = np.argsort(P, axis=None)[::-1][:10]
    expected = [(labels[k // P.shape[0]], labels[k % P.shape[0]], P.flat[k]) for k in flat]
    assert list(zip(ds.link_supplier.values, ds.link_buyer.values)) == [(a, b) for a, b, _ in expected]
    np.testing.assert_allclose(ds.link_flow.values, [f for *_, f in expected], rtol=1e-9)
    np.testing.assert_allclose(float(ds.top_links_share), sum(f for *_, f in expected) / Phi.sum(), rtol=1e-9)
    np.testing.assert_allclose(float(ds.self_supply_share), np.trace(Phi) / Phi.sum(), rtol=1e-9)
    # the aggregated heat map keeps the total
    np.testing.assert_allclose(float(ds.group_flows.sum()), Phi.sum(), rtol=1e-12)


def test_inefficient_share_by_explicit_loop(ds, updated):
    Phi, s = _np_phi(updated)
    n, R = Phi.shape[0], updated.n_regions
    N = n // R
    ineff = tot = 0.0
    reg_i, reg_t = np.zeros(R), np.zeros(R)
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            tot += Phi[a, b]
            reg_t[a // N] += Phi[a, b]
            if s[a] > s[b]:
                ineff += Phi[a, b]
                reg_i[a // N] += Phi[a, b]
    np.testing.assert_allclose(float(ds.inefficient_share), ineff / tot, rtol=1e-9)
    np.testing.assert_allclose(ds.inefficient_share_by_supplier.values, reg_i / reg_t, rtol=1e-9)
    assert 0.0 < float(ds.inefficient_share) < 1.0


def test_scenario_margins_balance_and_csv_roundtrip(world, tmp_path):
    sc = exp.scenario_margins(world, seed=3)
    np.testing.assert_allclose(sc["output"].sum(), sc["inputs"].sum() + sc["final_demand"].sum(), rtol=1e-12)
    rows = []
    for k, (r, s) in enumerate((r, s) for r in world.regions for s in world.sectors):
        rows += [("output", r, s, sc["output"][k]), ("inputs", r, s, sc["inputs"][k])]
    for k, (r, c) in enumerate((r, c) for r in world.regions for c in world.categories):
        rows.append(("final_demand", r, c, sc["final_demand"][k]))
    df = pd.DataFrame(rows, columns=["kind", "region", "label", "value"]).sample(frac=1.0, random_state=0)
    df.to_csv(tmp_path / "m.csv", index=False)
    assert exp.read_margins_csv is diffmrio.tables.read_margins_csv  # the library reader, still importable here
    back = diffmrio.tables.read_margins_csv(tmp_path / "m.csv", world)
    for key in ("output", "inputs", "final_demand"):
        np.testing.assert_allclose(back[key], sc[key], rtol=1e-12)
    df.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="missing"):
        diffmrio.tables.read_margins_csv(tmp_path / "short.csv", world)
    df.rename(columns={"value": "v"}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(ValueError, match=r"cols\.csv: margins CSV needs columns"):
        diffmrio.tables.read_margins_csv(tmp_path / "cols.csv", world)
    pd.concat([df, df.iloc[:1]]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match=r"dup\.csv: duplicated"):
        diffmrio.tables.read_margins_csv(tmp_path / "dup.csv", world)


def test_top_links_and_bad_inputs(world, tmp_path):
    Phi = np.array([[5.0, 1.0, 3.0], [0.0, 9.0, 2.0], [4.0, 0.5, 0.0]])
    lab = ["a", "b", "c"]  # the experiment ranks links with diffmrio.supply_chain.top_flows
    t = diffmrio.supply_chain.top_flows(
        xr.DataArray(Phi, dims=("region", "to_region"), coords={"region": lab, "to_region": lab}), 2)
    assert list(zip(t.region.values, t.to_region.values)) == [("c", "a"), ("a", "c")]
    np.testing.assert_allclose(t["share"], [4 / Phi.sum(), 3 / Phi.sum()])
    with pytest.raises(ValueError, match="stressor"):
        exp.compute(world, stressor="CH4")
    with pytest.raises(ValueError, match="k_links=0"):
        exp.compute(world, k_links=0)
    with pytest.raises(ValueError, match="leave out"):
        exp._groups_for(world.sectors, {"energy": ("power",)})


def test_cli_with_user_table_and_margins(world, tmp_path, capsys):
    """`main()` with a netCDF table and a margins CSV: the updated table meets the user's margins."""
    from diffmrio._io import write_netcdf_atomic

    ds = world.to_xarray()
    ds.attrs["name"] = "user table"
    write_netcdf_atomic(ds, tmp_path / "t.nc")
    sc = exp.scenario_margins(world, seed=11)
    rows = []
    for k, (r, s) in enumerate((r, s) for r in world.regions for s in world.sectors):
        rows += [("output", r, s, sc["output"][k]), ("inputs", r, s, sc["inputs"][k])]
    for k, (r, c) in enumerate((r, c) for r in world.regions for c in world.categories):
        rows.append(("final_demand", r, c, sc["final_demand"][k]))
    pd.DataFrame(rows, columns=["kind", "region", "label", "value"]).to_csv(tmp_path / "m.csv", index=False)
    res = exp.main(["--out", str(tmp_path / "o"), "--mrio", str(tmp_path / "t.nc"), "--margins",
                    str(tmp_path / "m.csv"), "--quick"])
    assert res["dataset"].attrs["synthetic"] == 0 and "report written" in capsys.readouterr().out
    with xr.open_dataset(tmp_path / "o" / "results" / "updated_mrio.nc") as up:
        rows_new = up["Z"].sum(("to_region", "to_sector")) + up["Y"].sum(("fd_region", "category"))
        np.testing.assert_allclose(rows_new.values.ravel(), sc["output"], rtol=1e-9)
    assert "given by the user" in (tmp_path / "o" / "report.md").read_text()
