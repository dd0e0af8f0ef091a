"""diffmrio.chain.deaths_satellite (moved from experiments/cobenefits.py) against finite differences of the chain,
and with_deaths_row against the table it extends."""

from __future__ import annotations

import equinox as eqx
import numpy as np
import pytest

import diffmrio
from diffmrio.chain import deaths_satellite, with_deaths_row
from diffmrio.datasets import demo_world


def test_with_deaths_row_keeps_the_table():
    m = demo_world(seed=0, geography=False).mrio
    rng = np.random.default_rng(0)
    Fd, FYd = rng.uniform(0, 5, m.n), rng.uniform(0, 1, np.shape(m.Y)[1])
    m2 = with_deaths_row(m, Fd, FYd)
    assert m2.stressors == tuple(m.stressors) + ("deaths",) and m2.units[-1] == "deaths yr-1"
    np.testing.assert_array_equal(np.asarray(m2.F)[:-1], np.asarray(m.F))
    np.testing.assert_array_equal(np.asarray(m2.F)[-1], Fd)
    np.testing.assert_array_equal(np.asarray(m2.F_Y)[-1], FYd)
    np.testing.assert_array_equal(np.asarray(m2.Z), np.asarray(m.Z))
    # consumption-based deaths = S_d L Y by region of final demand + direct household deaths (numpy)
    Z, Y = np.asarray(m.Z), np.asarray(m.Y)
    x = Z.sum(1) + Y.sum(1)
    L = np.linalg.inv(np.eye(m.n) - Z / x[None, :])
    cba = ((Fd / x) @ L @ Y + FYd).reshape(m.n_regions, -1).sum(1)
    acc = diffmrio.accounts(m2).sel(stressor="deaths")
    np.testing.assert_allclose(acc.D_cba_reg.values, cba, rtol=1e-10)
    with pytest.raises(ValueError, match="already has a stressor 'CO2'"):
        with_deaths_row(m, Fd, FYd, name="CO2")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        with_deaths_row(m, Fd[:3], FYd)


@pytest.mark.slow
def test_deaths_satellite_against_finite_differences(quick_demo_chain):
    chain = quick_demo_chain.chain
    inp = chain.base_inputs()
    Fd, FYd = deaths_satellite(chain, inp)

    def J(S, S_Y):
        return float(chain(eqx.tree_at(lambda i: (i.S, i.S_Y), inp, (S, S_Y))).deaths.sum())

    h = 1e-4
    S, SY = np.asarray(inp.S), np.asarray(inp.S_Y)
    # one region-sector: scale its emission intensities (all species) by 1 +- h
    k = int(np.argmax(Fd))
    up, dn = S.copy(), S.copy()
    up[:, k] *= 1 + h
    dn[:, k] *= 1 - h
    assert Fd[k] == pytest.approx((J(up, SY) - J(dn, SY)) / (2 * h), rel=1e-5)
    # Euler: the rows sum to d/da J(a S, a S_Y) at a = 1
    total = (J(S * (1 + h), SY * (1 + h)) - J(S * (1 - h), SY * (1 - h))) / (2 * h)
    assert Fd.sum() + FYd.sum() == pytest.approx(total, rel=1e-5)
    assert Fd.shape == (chain.mrio.n,) and Fd.dtype == np.float64
