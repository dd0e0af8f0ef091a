"""experiments/wiod_exports.py: numbers against an independent numpy computation (demo world, always; the WIOD
tables from ../shared when present) and the report with its figures."""

import numpy as np
import pytest

from diffmrio.datasets import demo_world
from experiments.wiod_exports import compute, industry_names, load_wiod, report


def _numpy_reference(m, T):
    Z, Y, F = np.asarray(m.Z), np.asarray(m.Y), np.asarray(m.F)
    R, N = m.n_regions, m.n_sectors
    n = R * N
    x = Z.sum(1) + Y.sum(1)
    A = Z / np.where(x != 0, x, 1.0)
    va = F[m.stressor_index("value_added")]
    v = np.where(x != 0, va / np.where(x != 0, x, 1.0), 0.0)
    L = np.linalg.inv(np.eye(n) - A)
    Ye = Y.reshape(n, R, -1).sum(2)
    vax = np.zeros((R, R))
    direct = np.zeros((R, R))
    layers = np.zeros((T + 1, R))
    for r in range(R):
        rows = slice(r * N, (r + 1) * N)
        for e in range(R):
            if e == r:
                continue
            vax[r, e] = v[rows] @ (L @ Ye[:, e])[rows]
            own = np.zeros(n)
            own[rows] = Ye[rows, e]
            direct[r, e] = v[rows] @ (L @ own)[rows]
        y = Ye.sum(1) - Ye[:, r]
        for t in range(T + 1):
            layers[t, r] = v[rows] @ (np.linalg.matrix_power(A, t) @ y)[rows]
    return vax, direct, layers


def test_demo_world_against_numpy(tmp_path):
    tables = {2009: demo_world(seed=0, geography=False).mrio, 2011: demo_world(seed=1, geography=False).mrio}
    ds = compute(tables, T=3, k=5, focus="Central")
    for y, m in tables.items():
        vax, direct, layers = _numpy_reference(m, 3)
        got = ds.sel(year=y)
        np.testing.assert_allclose(got.vax.values, vax, rtol=1e-10, atol=1e-10 * vax.max())
        np.testing.assert_allclose(got.direct.values, direct, rtol=1e-10, atol=1e-10 * vax.max())
        np.testing.assert_allclose(got.indirect.values, vax - direct, rtol=1e-9, atol=1e-9 * vax.max())
        np.testing.assert_allclose(got.layers.values, layers, rtol=1e-10, atol=1e-10 * vax.max())
        np.testing.assert_allclose(got.remainder.values, vax.sum(1) - layers.sum(0), rtol=1e-8, atol=1e-9 * vax.max())
        c = list(m.regions).index("Central")
        np.testing.assert_allclose(got.path_share.values, got.path_value.values / vax[c].sum(), rtol=1e-10)
        assert (np.diff(np.abs(got.path_value.values)) <= 1e-12).all()
    assert all("units" in ds[v].attrs for v in ds.data_vars)
    assert ds.sel(year=2011).vax.values.sum() != pytest.approx(ds.sel(year=2009).vax.values.sum())
    path = report(ds, tmp_path / "out")
    text = path.read_text()
    assert "Central" in text and (tmp_path / "out" / "figures" / "vax_layers.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="focus"):
        compute(tables, focus="Atlantis")


@pytest.mark.shared
@pytest.mark.slow
def test_wiod_numbers_and_report(shared_dir, tmp_path):
    d = shared_dir / "data" / "wiod2013"
    if not (d / "wiot_2011.nc").exists():
        pytest.skip(f"WIOD tables not found in {d}")
    tables = load_wiod(d)
    ds = compute(tables, T=3, k=8, focus="CHN", sector_names=industry_names(d))
    m = tables[2011]
    Z, Y = np.asarray(m.Z), np.asarray(m.Y)
    R, N = m.n_regions, m.n_sectors
    x = Z.sum(1) + Y.sum(1)
    v = np.where(x != 0, np.asarray(m.F)[0] / np.where(x != 0, x, 1.0), 0.0)
    A = Z / np.where(x != 0, x, 1.0)
    Ye = Y.reshape(R * N, R, -1).sum(2)
    X = np.linalg.solve(np.eye(R * N) - A, Ye)  # output for each country's final demand
    c = list(m.regions).index("CHN")
    rows = slice(c * N, (c + 1) * N)
    ref = v[rows] @ X[rows]  # CHN's value added in each country's final demand
    ref[c] = 0.0
    got = ds.sel(year=2011, origin="CHN").vax.values
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * ref.max())
    # world value added = world final demand: exported + domestic value added adds up (the table balances)
    domestic = sum(v[r * N:(r + 1) * N] @ X[r * N:(r + 1) * N, r] for r in range(R))
    assert float(ds.sel(year=2011).vax.sum()) + domestic == pytest.approx(Y.sum(), rel=1e-10)
    assert "LUX/INVEN" in ds.attrs["validation"]
    path = report(ds, tmp_path)
    text = path.read_text()
    assert "WIOD 2009 and 2011" in text and "Industries: " in text and "2011: cleaned: LUX/INVEN" in text
    for f in ("vax_direct_indirect", "vax_layers", "vax_change"):
        assert (tmp_path / "figures" / f"{f}.png").exists()
