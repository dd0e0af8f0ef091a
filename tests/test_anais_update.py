"""diffmrio.tables.anais_update: a whole MRIO updated to new margins by ANAIS, checked with numpy: margins met,
zeros kept, input coefficients within the range, direct intensities kept (F' = S x'), F_Y scaled per final-demand
column, the same table as `anais` on bounds built by explicit loops, labelled targets aligned by label."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import diffmrio
from diffmrio.datasets import random_mrio
from diffmrio.tables import AnaisInfeasibleError, anais, anais_update

R, N, K = 3, 3, 2
C = 0.3


@pytest.fixture(scope="module")
def prior():
    m = random_mrio(R, N, K, 2, seed=11, structure="uniform", density=0.8, stressors=("CO2", "SO2"), units=("Mt", "kt"))
    F_Y = np.random.default_rng(1).uniform(0.1, 1.0, (2, R * K))
    return diffmrio.MRIO.from_arrays(m.Z, m.Y, m.F, F_Y, regions=m.regions, sectors=m.sectors, categories=m.categories,
                                     stressors=m.stressors, units=m.units, population=[5.0, 6.0, 7.0],
                                     population_unit="thousand persons", name="p")  # fmt: skip


@pytest.fixture(scope="module")
def margins(prior):
    """Margins of a perturbed prior (cells changed by -5%..+8%): feasible within the coefficient range."""
    rng = np.random.default_rng(3)
    X0 = np.hstack([np.asarray(prior.Z), np.asarray(prior.Y)])
    Xt = X0 * rng.uniform(0.95, 1.08, X0.shape)
    n = prior.n
    return Xt.sum(1), Xt[:, :n].sum(0), Xt[:, n:].sum(0)


def test_update_against_numpy(prior, margins):
    u, vz, fy = margins
    n = prior.n
    upd, rep = anais_update(prior, u, vz, fy, coef_range=C)
    Z0, Y0, F0 = (np.asarray(a) for a in (prior.Z, prior.Y, prior.F))
    Z, Y = np.asarray(upd.Z), np.asarray(upd.Y)
    x0, x = Z0.sum(1) + Y0.sum(1), Z.sum(1) + Y.sum(1)
    np.testing.assert_allclose(x, u, rtol=1e-8)
    np.testing.assert_allclose(Z.sum(0), vz, rtol=1e-8)
    np.testing.assert_allclose(Y.sum(0), fy, rtol=1e-8)
    assert ((Z == 0) == (Z0 == 0)).all() and ((Y == 0) == (Y0 == 0)).all() and (Z >= 0).all()
    # input coefficients within +/- C of the prior's, cell by cell
    for i in range(n):
        for j in range(n):
            a0 = Z0[i, j] / Z0[:, j].sum()
            assert (1 - C) * a0 - 1e-9 <= Z[i, j] / vz[j] <= (1 + C) * a0 + 1e-9
    # direct intensities kept; F_Y scales with each final-demand column
    np.testing.assert_allclose(np.asarray(upd.F), F0 / x0[None, :] * x[None, :], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(upd.F) / x[None, :], F0 / x0[None, :], rtol=1e-8)
    np.testing.assert_allclose(np.asarray(upd.F_Y), np.asarray(prior.F_Y) * (fy / Y0.sum(0))[None, :], rtol=1e-12)
    # the same table as ANAIS on [Z Y] with the bounds built here
    lo = np.full((n, n + R * K), np.nan)
    hi = np.full((n, n + R * K), np.nan)
    for j in range(n):
        lo[:, j] = (1 - C) * Z0[:, j] / Z0[:, j].sum()
        hi[:, j] = (1 + C) * Z0[:, j] / Z0[:, j].sum()
    X, rep2 = anais(np.hstack([Z0, Y0]), u, np.concatenate([vz, fy]), coef_lower=lo, coef_upper=hi, total_rtol=1e-9)
    np.testing.assert_allclose(np.hstack([Z, Y]), X, rtol=1e-9, atol=1e-12 * X.max())
    assert rep.max_rel_change == pytest.approx(rep2.max_rel_change, rel=1e-9) and rep.max_rel_change <= 0.08 + 1e-6
    # labels, units, population kept
    assert upd.stressors == prior.stressors and upd.units == ("Mt", "kt") and upd.name == "p updated by ANAIS"
    np.testing.assert_array_equal(np.asarray(upd.population), [5.0, 6.0, 7.0])
    assert upd.population_unit == "thousand persons"


def test_labelled_targets_are_aligned_by_label(prior, margins):
    u, vz, fy = margins
    rs = {"region": list(prior.regions), "sector": list(prior.sectors)}
    money = {"units": "monetary unit of the table"}
    out = xr.DataArray(u.reshape(R, N), dims=("region", "sector"), coords=rs, attrs=money)
    inp = xr.DataArray(vz.reshape(R, N), dims=("region", "sector"), coords=rs)
    fd = xr.DataArray(fy.reshape(R, K), dims=("fd_region", "category"),
                      coords={"fd_region": list(prior.regions), "category": list(prior.categories)})
    flip = {"region": list(prior.regions)[::-1], "sector": list(prior.sectors)[::-1]}
    got, _ = anais_update(prior, out.sel(flip).transpose("sector", "region"), inp.sel(flip), fd.isel(fd_region=[2, 0, 1]))
    ref, _ = anais_update(prior, u.reshape(R, N), vz, fy.reshape(R, K))
    np.testing.assert_array_equal(np.asarray(got.Z), np.asarray(ref.Z))
    np.testing.assert_array_equal(np.asarray(got.Y), np.asarray(ref.Y))
    with pytest.raises(ValueError, match="`output` is in 'EUR'"):
        anais_update(prior, out.assign_attrs(units="EUR"), vz, fy)


def test_bad_targets(prior, margins):
    u, vz, fy = margins
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(9,\)"):
        anais_update(prior, u, vz[:-1], fy)
    bad = u.copy()
    bad[4] = -1.0
    with pytest.raises(ValueError, match="`output` has the value -1.0 at entry 4"):
        anais_update(prior, bad, vz, fy)
    with pytest.raises(ValueError, match="grand totals disagree"):
        anais_update(prior, u * 1.01, vz, fy)
    with pytest.raises(ValueError, match=r"coef_range=1.5; give a relative range in \[0, 1\)"):
        anais_update(prior, u, vz, fy, coef_range=1.5)
    # row 0's intermediate sales alone, with coefficients at least (1 - c) of the prior's, exceed its new output
    Z0 = np.asarray(prior.Z)
    need = ((1 - C) * Z0[0] / Z0.sum(0) * vz).sum()
    low = u.copy()
    low[0], low[1] = 0.5 * need, low[1] + low[0] - 0.5 * need
    with pytest.raises(AnaisInfeasibleError):
        anais_update(prior, low, vz, fy, coef_range=C)
    with pytest.warns(diffmrio.MRIOWarning, match="no or negative value added"):  # feasible without the range,
        anais_update(prior, low, vz, fy, coef_range=None)  # and the updated table is validated


@pytest.fixture(scope="module")
def negative_prior(prior):
    """The prior with region-sector 4's inventory drawdown (final-demand column 1) larger than its sales: gross
    output x_4 < 0, as happens in real tables with inventory changes."""
    Y = np.asarray(prior.Y).copy()
    k, col = 4, 1
    Y[k, col] = -(np.asarray(prior.Z)[k].sum() + Y[k].sum() - Y[k, col]) - 2.0
    m = diffmrio.MRIO.from_arrays(prior.Z, Y, prior.F, prior.F_Y, regions=prior.regions, sectors=prior.sectors,
                                  categories=prior.categories, stressors=prior.stressors, units=prior.units,
                                  name="negative", validate=False)  # fmt: skip
    x0 = np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1)
    assert x0[k] == pytest.approx(-2.0) and (np.delete(x0, k) > 0).all()
    return m


def _perturbed_margins(m, seed):
    X0 = np.hstack([np.asarray(m.Z), np.asarray(m.Y)])
    Xt = X0 * np.random.default_rng(seed).uniform(0.95, 1.08, X0.shape)  # signs kept: x_4 stays negative
    return Xt, (Xt.sum(1), Xt[:, : m.n].sum(0), Xt[:, m.n :].sum(0))


def test_negative_output_keeps_its_intensities(negative_prior):
    """Intensities are divided wherever x != 0, as in the rest of the library (Economy.S): a region-sector with
    negative output keeps S = F / x, so its emissions scale with its new (still negative) output. (Dividing only
    where x > 0 set its emissions to zero.)"""
    m = negative_prior
    _, (u, vz, fy) = _perturbed_margins(m, 5)
    assert u[4] < 0 and fy[1] < 0  # negative targets are allowed where the prior's totals are negative
    upd, _ = anais_update(m, u, vz, fy, coef_range=C, validate=False)
    F0, x0 = np.asarray(m.F), np.asarray(m.Z).sum(1) + np.asarray(m.Y).sum(1)
    x = np.asarray(upd.Z).sum(1) + np.asarray(upd.Y).sum(1)
    np.testing.assert_allclose(x, u, rtol=1e-8)
    expected = np.array([[F0[p, j] / x0[j] * x[j] for j in range(m.n)] for p in range(F0.shape[0])])
    np.testing.assert_allclose(np.asarray(upd.F), expected, rtol=1e-12)
    assert (np.asarray(upd.F)[:, 4] > 0).all()  # negative intensity times negative output: emissions kept
    np.testing.assert_allclose(diffmrio.Economy.from_mrio(upd).S, diffmrio.Economy.from_mrio(m).S, rtol=1e-8)
    fd0 = np.asarray(m.Y).sum(0)  # F_Y scales with each final-demand column, the negative one included
    fd = np.asarray(upd.Y).sum(0)
    np.testing.assert_allclose(fd, fy, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(upd.F_Y), np.asarray(m.F_Y) * (fd / fd0)[None, :], rtol=1e-12)
    bad = u.copy()  # a negative target where the prior's output is positive is still an error
    bad[3], bad[4] = -1.0, bad[4] + bad[3] + 1.0
    with pytest.raises(ValueError, match="`output` has the value -1.0 at entry 3.*non-negative where the prior"):
        anais_update(m, bad, vz, fy, validate=False)


def test_output_changing_sign_warns(negative_prior):
    """A positive target for the negative output (less inventory drawdown): the kept intensity flips the sign of
    its emissions, which is said, naming the region-sector."""
    m = negative_prior
    X0 = np.hstack([np.asarray(m.Z), np.asarray(m.Y)])
    Xt = X0.copy()
    Xt[4, m.n + 1] *= 0.5  # drawdown halved: x_4 > 0
    u, vz, fy = Xt.sum(1), Xt[:, : m.n].sum(0), Xt[:, m.n :].sum(0)
    assert u[4] > 0
    label = f"{m.regions[4 // N]}/{m.sectors[4 % N]}"
    with pytest.warns(UserWarning, match=f"gross output changes sign at 1 region-sector\\(s\\) \\({label}\\)"):
        upd, _ = anais_update(m, u, vz, fy, coef_range=None, validate=False)
    x0 = X0.sum(1)
    np.testing.assert_allclose(np.asarray(upd.F)[:, 4], np.asarray(m.F)[:, 4] / x0[4] * u[4], rtol=1e-8)
    assert (np.asarray(upd.F)[:, 4] < 0).all()
