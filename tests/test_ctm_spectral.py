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
    # gridded emissions of a scale: sum over regions of scale x base x allocation (numpy, not the kernel)
    E = np.asarray(world.emissions(s0))
    np.testing.assert_allclose(E, np.einsum("gk,gk,gyx->kyx", s0, world.base_emissions, world.allocation),
                               rtol=1e-12)  # fmt: skip


def test_run_folder_round_trips_through_read_run_folder(world, tmp_path):
    """The folder the spectral CTM writes reads back (through the user's path) as the CTM's own outputs and
    adjoints, to 1e-10; the adjoint states attach to their training runs; nothing is overwritten."""
    import ctm_interface as ci
    from ctm_interface.spectral import write_run_folder

    toml = write_run_folder(tmp_path / "f", n_train=3, n_test=2, adjoint_states=2, adjoint_on_train=True,
                            low=0.0, high=2.0, n_days=1.5, seed=3)  # fmt: skip
    f = ci.read_run_folder(toml)
    x = f.runs["scale"].transpose("run", "source", "species").values
    assert x.shape == (5, len(REGIONS), len(SPECIES))
    np.testing.assert_array_equal(x[0], 1.0)  # the base case first
    assert 0.0 <= x.min() and x.max() <= 2.0 and len(np.unique(x[1:, 0, 0])) == 4
    assert f.runs["split"].values.tolist() == ["train"] * 3 + ["test"] * 2
    # the base emissions file: each region's kt/yr spread by its allocation pattern (numpy, not the kernel)
    base = np.einsum("gk,gyx->kyx", world.base_emissions, world.allocation)
    np.testing.assert_allclose(f.emissions.sel(species=list(SPECIES)).isel(level=0).values, base, rtol=1e-12)
    y = world.run(x)  # the CTM's own outputs, computed here independently of the files
    got = f.runs["pm25"].sel(component=list(COMPONENTS), receptor=list(REGIONS)).transpose("run", "component", "receptor")
    np.testing.assert_allclose(got.values, y, rtol=0, atol=1e-10 * np.abs(y).max())
    # adjoints: dJ/dscale of population-weighted PM2.5, the folder's cost weights equal the CTM's
    a = f.adjoints
    np.testing.assert_allclose(a["cost_weights"].sel(component=list(COMPONENTS), receptor=list(REGIONS)).values,
                               world.pwpm_weights(), rtol=0, atol=1e-12)  # fmt: skip
    g = world.adjoint(a["scale"].transpose("run", "source", "species").values, world.pwpm_weights())
    np.testing.assert_allclose(a["sensitivity"].transpose("run", "source", "species").values, g, rtol=0,
                               atol=1e-10 * np.abs(g).max())  # fmt: skip
    tr = f.split("train")
    assert np.isfinite(tr["sensitivity"].values[:2]).all() and np.isnan(tr["sensitivity"].values[2]).all()
    with pytest.raises(FileExistsError, match="runs.toml exists"):
        write_run_folder(tmp_path / "f", n_train=1, n_test=0, n_days=1.5)
    with pytest.raises(ValueError, match="only 1 training runs for 2 states"):
        write_run_folder(tmp_path / "g", n_train=1, n_test=0, adjoint_states=2, adjoint_on_train=True, n_days=1.5)
