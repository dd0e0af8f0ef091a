"""The second stand-in CTM: exact adjoint against finite differences, structural zeros of primary species,
mass positivity, the run-set layout."""

import numpy as np
import pytest

import surrogate as sg
from ctm_interface.spectral import COMPONENTS, REGIONS, SPECIES, SpectralCTM, SpectralWorld


@pytest.fixture(scope="module")
def world():
    return SpectralWorld.default(SpectralCTM.default(n_days=1.5))  # short seasons: a fast test


def test_adjoint_against_finite_differences_and_structure(world):
    rng = np.random.default_rng(0)
    s0 = rng.uniform(0.5, 1.5, (len(REGIONS), len(SPECIES)))
    w = world.pwpm_weights()
    g = world.adjoint(s0[None], w)[0]
    h = 1e-5
    states, picks = [], [(1, 0), (2, 1), (3, 2), (0, 3), (4, 4)]
    for i, k in picks:
        for sign in (1, -1):
            s = s0.copy()
            s[i, k] += sign * h
            states.append(s)
    y = world.run(np.stack(states + [s0]))
    j = np.einsum("cr,ncr->n", w, y)
    for n, (i, k) in enumerate(picks):
        assert g[i, k] == pytest.approx((j[2 * n] - j[2 * n + 1]) / (2 * h), rel=1e-5)
    # EC emissions change only EC (a primary species), and linearly; everything non-negative
    s1 = s0.copy()
    s1[:, SPECIES.index("EC")] *= 2.0
    s2 = s0.copy()
    s2[:, SPECIES.index("EC")] *= 3.0
    y0, y1, y2 = world.run(np.stack([s0, s1, s2]))
    other = [c for c in range(len(COMPONENTS)) if COMPONENTS[c] != "EC"]
    np.testing.assert_array_equal(y1[other], y0[other])
    ec = COMPONENTS.index("EC")
    np.testing.assert_allclose(y2[ec] - y1[ec], y1[ec] - y0[ec], rtol=1e-9)
    assert np.all(y0 > 0)
    ds = world.run_set(np.stack([s0, s1]), np.stack([y0, y1]))
    lab = sg.EmulatorLabels.from_runs(ds)
    assert lab.input_coords == (REGIONS, SPECIES) and lab.components == COMPONENTS
    assert ds["low"].shape == (len(REGIONS), len(SPECIES))
