"""Concentration-response functions: published reference points, an independent numpy implementation reading the
reference CSVs, safe gradients at the counterfactual, IER whole-draw sampling and vmap over draws."""

import csv

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, Float

from diffmrio.health import GEMM, GEMM_BURNETT2018, IER, IER_CENTRAL, AbstractCRF, LogLinear, load_ier_draws

C_GRID = np.array([0.0, 1.0, 2.4, 3.0, 5.0, 7.5, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 300.0])


# ------------------------------------------------------------------------ independent numpy implementations


def np_gemm(C, theta, alpha, mu, nu, cf=2.4):
    z = np.maximum(0.0, np.asarray(C, dtype=float) - cf)
    return np.exp(theta * np.log(1 + z / alpha) / (1 + np.exp(-(z - mu) / nu)))


def np_ier(C, alpha, gamma, delta, zcf):
    z = np.maximum(0.0, np.asarray(C, dtype=float) - zcf)
    return 1 + alpha * (1 - np.exp(-gamma * z**delta))


def read_csv_rows(path):
    with open(path, encoding="utf-8-sig") as f:
        lines = [line for line in f if not line.startswith("#")]
    return list(csv.DictReader(lines))


CANON = {"Stroke": "STROKE", "ALRI": "LRI"}


# ------------------------------------------------------------------------------------------ published values


@pytest.mark.parametrize(("C", "expected"), [(35.0, 1.3086), (50.0, 1.4127), (100.0, 1.7039)])
def test_gemm_ncd_lri_reference_points(C, expected):
    """docs/science.md: GEMM NCD+LRI with the Chinese cohort, RR(35)=1.3086, RR(50)=1.4127, RR(100)=1.7039."""
    crf = GEMM.burnett2018("NCD+LRI", ages=(25,), age_specific=False, with_china=True)
    rr = float(crf.relative_risk(jnp.asarray(C))[0, 0])
    assert abs(rr - expected) < 1e-4


def test_gemm_constants_and_values_match_reference_csv(shared_dir):
    """Every row of gemm_burnett2018.csv: the transcribed constants equal the CSV, and GEMM reproduces a numpy
    GEMM built from the CSV values on a grid of concentrations."""
    rows = read_csv_rows(shared_dir / "reference" / "gemm_burnett2018.csv")
    assert len(rows) == 2 * 6 * 13
    lower = {"25+": 25, "80+": 80}
    for r in rows:
        cause = CANON.get(r["cause"], r["cause"])
        vals = tuple(float(r[k]) for k in ("theta", "se_theta", "alpha", "mu", "nu"))
        assert GEMM_BURNETT2018[r["region"]][cause][r["age"]] == vals
        age = lower[r["age"]] if r["age"] in lower else int(r["age"].split("-")[0])
        crf = GEMM.burnett2018(cause, ages=(age,), with_china=r["region"] == "inc_China",
                               age_specific=r["age"] != "25+")
        got = np.asarray(crf.relative_risk(jnp.asarray(C_GRID)))[0, 0]
        ref = np_gemm(C_GRID, vals[0], vals[2], vals[3], vals[4])
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_ier_central_matches_reference_csv(shared_dir):
    rows = read_csv_rows(shared_dir / "reference" / "ier_central.csv")
    assert len(rows) == 9
    for r in rows:
        cause = CANON.get(r["cause"], r["cause"])
        vals = tuple(float(r[k]) for k in ("alpha", "gamma", "delta", "zcf"))
        assert IER_CENTRAL[r["source"]][cause] == vals
        crf = IER.central(cause, source=r["source"], ages=(0, 30), age_ranges={cause: (0, None)})
        got = np.asarray(crf.relative_risk(jnp.asarray(C_GRID)))
        np.testing.assert_allclose(got[0, 0], np_ier(C_GRID, *vals), rtol=1e-12)
        np.testing.assert_allclose(got[0, 1], got[0, 0])


def test_gemm_age_specific_mapping():
    """Ages 80..95 use the 80+ fit; under-25s are not exposed (RR = 1); COPD has no age pattern."""
    crf = GEMM.burnett2018(("IHD", "COPD"), ages=(0, 20, 25, 50, 80, 95))
    t = GEMM_BURNETT2018["inc_China"]["IHD"]
    np.testing.assert_array_equal(np.asarray(crf.theta[0, 2:]), [t["25-29"][0], t["50-54"][0], t["80+"][0], t["80+"][0]])
    rr = np.asarray(crf.relative_risk(jnp.asarray(60.0)))
    np.testing.assert_array_equal(rr[:, :2], 1.0)
    assert (rr[:, 2:] > 1).all()
    assert len(set(np.asarray(crf.theta[1, 2:]).tolist())) == 1
    assert rr[0, 2] > rr[0, 3] > rr[0, 4]  # IHD relative risk falls with age


def test_ier_default_ages_lri_under_five():
    crf = IER.central(ages=(0, 5, 25, 60))
    rr = np.asarray(crf.relative_risk(jnp.asarray(80.0)))
    lri = crf.causes.index("LRI")
    assert rr[lri, 0] > 1 and (rr[lri, 1:] == 1).all()
    others = [i for i in range(5) if i != lri]
    assert (rr[others][:, :2] == 1).all() and (rr[others][:, 2:] > 1).all()


def test_loglinear_rr_per_10_and_morbidity_formula():
    crf = LogLinear.from_rr_per_10({"asthma_er": 1.04, "hospital_resp": 1.0112})
    dC = jnp.asarray([0.0, 5.0, 10.0, 37.0])
    rr = np.asarray(crf.relative_risk(dC))[:, 0]
    np.testing.assert_allclose(rr[:, 2], [1.04, 1.0112], rtol=1e-13)
    beta = np.log([1.04, 1.0112])[:, None] / 10
    np.testing.assert_allclose(np.asarray(crf.attributable_fraction(dC))[:, 0], 1 - np.exp(-beta * np.asarray(dC)),
                               rtol=1e-12)


@pytest.mark.parametrize("bad", [{"IHD": 0.0}, {"IHD": float("nan")}, {}])
def test_loglinear_rejects_bad_rr(bad):
    with pytest.raises(ValueError):
        LogLinear.from_rr_per_10(bad)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no fit for"):
        GEMM.burnett2018(("IHD", "asthma"))
    with pytest.raises(ValueError, match="unknown IER source"):
        IER.central(source="gbd2099")
    with pytest.raises(ValueError, match="no fit for"):
        IER.central(("LRI",), source="gbd2016")
    with pytest.raises(ValueError, match=r"\[cause, age\]"):
        IER(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)), ("IHD", "LC"), (25, 30, 35))
    with pytest.raises(ValueError, match="strictly increasing"):
        GEMM.burnett2018(ages=(30, 25))


# ---------------------------------------------------------------------------------------------- gradients


def _crfs():
    return {
        "gemm": GEMM.burnett2018(ages=(25, 60, 80)),
        "gemm_ex_china": GEMM.burnett2018(ages=(25, 60, 80), with_china=False),
        "ier": IER.central(ages=(0, 25, 60), age_ranges={"LRI": (0, None)}),
        "ier_gbd2016": IER.central(("IHD", "STROKE", "COPD", "LC"), source="gbd2016", ages=(25, 60)),
        "loglinear": LogLinear.from_rr_per_10({"a": 1.06, "b": 1.2}, cf=3.0),
    }


@pytest.mark.parametrize("name", list(_crfs()))
def test_grad_finite_at_and_below_counterfactual(name):
    crf = _crfs()[name]
    cfs = {"gemm": [2.4], "gemm_ex_china": [2.4], "loglinear": [3.0]}.get(name)
    if cfs is None:
        cfs = sorted(set(np.asarray(crf.zcf).ravel().tolist()))
    f = lambda c: jnp.sum(crf.relative_risk(c)) + jnp.sum(crf.attributable_fraction(c))  # noqa: E731
    pts = np.array([[cf, np.nextafter(cf, -np.inf), cf - 1.0, 0.0, -5.0] for cf in cfs]).ravel()
    g = jax.jit(jax.vmap(jax.grad(f)))(jnp.asarray(pts))
    assert np.isfinite(np.asarray(g)).all(), (name, pts, g)
    # below every threshold the function is flat: exactly zero gradient and RR = 1
    low = min(cfs) - 0.5
    assert float(jax.grad(f)(jnp.asarray(low))) == 0.0
    np.testing.assert_array_equal(np.asarray(crf.relative_risk(jnp.asarray(low))), 1.0)


@pytest.mark.parametrize("name", list(_crfs()))
@pytest.mark.parametrize("seed", [0, 1])
def test_grad_matches_central_differences(name, seed):
    crf = _crfs()[name]
    C = jnp.asarray(np.random.default_rng(seed).uniform(8.0, 150.0, size=7))
    f = jax.jit(lambda c: jnp.sum(crf.log_relative_risk(c) * jnp.arange(1.0, 1.0 + c.shape[0])))
    g = np.asarray(jax.jit(jax.grad(f))(C))
    h = 1e-6 * 100.0
    fd = np.array([(f(C.at[i].add(h)) - f(C.at[i].add(-h))) / (2 * h) for i in range(C.shape[0])])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-10)


def test_grad_wrt_parameters_is_finite_at_zero_excess():
    crf = IER.central(("IHD",), ages=(25,))
    C = crf.zcf[0, 0]
    g = eqx.filter_grad(lambda m: jnp.sum(m.relative_risk(C)))(crf)
    for leaf in jax.tree.leaves(g):
        assert np.isfinite(np.asarray(leaf)).all()


# --------------------------------------------------------------------------------------- sampling and vmap


def test_gemm_sample_shares_one_normal_per_cause():
    crf = GEMM.burnett2018(ages=(25, 40, 60, 80))
    s = crf.sample(key=jax.random.key(3), n=64)
    assert s.theta.shape == (64, 5, 4) and s.alpha.shape == (64, 5, 4)
    z = (np.asarray(s.theta) - np.asarray(crf.theta)) / np.asarray(crf.se_theta)
    np.testing.assert_allclose(z, np.broadcast_to(z[:, :, :1], z.shape), atol=1e-9)
    assert abs(z[:, :, 0].std() - 1) < 0.25  # standard normal draws
    one = crf.sample(key=jax.random.key(3))
    assert one.theta.shape == crf.theta.shape


def _write_draw_table(path, n=6):
    """A small draws table in the GBD layout whose rows are identifiable: alpha encodes (cause, age, sim)."""
    code = {"IHD": 1, "STROKE": 2, "COPD": 3, "LC": 4, "ALRI": 5}
    lines = ["\ufeffsim,funct,cause,age,alpha,beta,delta,zcf,aic,bic"]
    rows = []
    for cause, ages in (("IHD", ["AllAge", "25", "50", "80"]), ("STROKE", ["AllAge", "25", "80"]),
                        ("COPD", ["All Age"]), ("LC", ["All Age"]), ("ALRI", ["All Age"])):
        for age in ages:
            a = -1 if age.replace(" ", "") == "AllAge" else int(age)
            for sim in range(1, n + 1):
                alpha = code[cause] * 1000 + (a + 1) + sim / 100
                rows.append((sim, cause, age, alpha, 0.001 * sim + 0.01 * code[cause], 0.3 + 0.05 * sim,
                             2.0 + 0.5 * sim))
    for sim, cause, age, al, g, d, z in rows[::-1]:  # reversed order: the loader must sort by sim
        lines.append(f"{sim},power2,{cause},{age},{al!r},{g!r},{d!r},{z!r},0,0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def test_ier_draws_rows_stay_together_synthetic(tmp_path):
    path = tmp_path / "draws.csv"
    rows = _write_draw_table(path)
    ages = (0, 25, 30, 50, 75, 80, 95)
    draws = load_ier_draws(path, ages=ages)
    assert draws.alpha.shape == (6, 5, len(ages))
    table = {}
    for sim, cause, age, al, g, d, z in rows:
        lo = -1 if age.replace(" ", "") == "AllAge" else int(age)
        table[(CANON.get(cause, cause), lo, sim)] = (al, g, d, z)
    # age mapping: IHD 30 -> 25 rows, 75 -> 50 rows, 95 -> 80 rows; COPD all-age everywhere
    ihd = draws.causes.index("IHD")
    expect_lo = {0: -1, 25: 25, 30: 25, 50: 50, 75: 50, 80: 80, 95: 80}
    for k in range(6):
        for ai, a in enumerate(ages):
            got = tuple(float(np.asarray(x)[k, ihd, ai]) for x in (draws.alpha, draws.gamma, draws.delta, draws.zcf))
            assert got == table[("IHD", expect_lo[a], k + 1)]
    samp = draws.sample(key=jax.random.key(0), n=40)
    for k in range(40):
        sims = set()
        for ci, c in enumerate(draws.causes):
            for ai in range(len(ages)):
                tup = tuple(float(np.asarray(x)[k, ci, ai]) for x in (samp.alpha, samp.gamma, samp.delta, samp.zcf))
                matches = [key[2] for key, v in table.items() if key[0] == c and v == tup]
                assert matches, (c, ages[ai], tup)
                sims.add(matches[0])
        assert len(sims) == 1  # one draw index for every cause and age


def test_ier_draws_rows_stay_together_real(shared_dir):
    path = shared_dir / "reference" / "ier2015_draws.csv"
    draws = load_ier_draws(path, ages=(0, 25, 45, 80, 90))
    assert draws.n_draws == 1000
    rows = read_csv_rows(path)
    tuples = {}
    for r in rows:
        tuples.setdefault(CANON.get(r["cause"], r["cause"]), set()).add(
            tuple(float(r[k]) for k in ("alpha", "beta", "delta", "zcf")))
    s = draws.sample(key=jax.random.key(7), n=25)
    for k in range(25):
        for ci, c in enumerate(draws.causes):
            for ai in range(5):
                tup = tuple(float(np.asarray(x)[k, ci, ai]) for x in (s.alpha, s.gamma, s.delta, s.zcf))
                assert tup in tuples[c]
    single = draws.sample(key=jax.random.key(1))
    assert single.alpha.shape == (5, 5)


def test_vmap_over_draws_equals_loop(tmp_path):
    path = tmp_path / "draws.csv"
    _write_draw_table(path)
    draws = load_ier_draws(path, ages=(0, 25, 50, 80))
    C = jnp.asarray([1.0, 4.0, 12.0, 40.0, 90.0])
    stacked = draws.sample(key=jax.random.key(2), n=8)
    af = eqx.filter_jit(lambda crf: crf.attributable_fraction(C))
    vm = eqx.filter_vmap(af)(stacked)
    idx = jax.random.randint(jax.random.key(2), (8,), 0, draws.n_draws)
    loop = jnp.stack([af(draws.draw(int(i))) for i in idx])
    np.testing.assert_allclose(np.asarray(vm), np.asarray(loop), rtol=1e-13, atol=0)
    gemm = GEMM.burnett2018(ages=(25, 60)).sample(key=jax.random.key(4), n=5)
    rr = eqx.filter_jit(lambda crf: crf.relative_risk(C))
    vm = eqx.filter_vmap(rr)(gemm)
    loop = [rr(jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, gemm)) for i in range(5)]
    np.testing.assert_allclose(np.asarray(vm), np.asarray(jnp.stack(loop)), rtol=1e-13)


# ------------------------------------------------------------------------- a user's own CRF (AbstractCRF)


class _UserLogLog(AbstractCRF):
    """A CRF written outside the package, as AbstractCRF's docstring describes."""

    beta: Float[Array, "cause age"]
    cf: Float[Array, "cause age"]
    causes: tuple[str, ...] = eqx.field(static=True)
    ages: tuple[int, ...] = eqx.field(static=True)
    applies: tuple[tuple[bool, ...], ...] | None = eqx.field(static=True, default=None)

    def _log_rr(self, C):
        e = (1,) * C.ndim
        cf = self.cf.reshape(self.cf.shape + e)
        return self.beta.reshape(self.beta.shape + e) * jnp.log((jnp.maximum(C, cf) + 1.0) / (cf + 1.0))


class _UserSpline(AbstractCRF):
    """A CRF with an array field that is not a [cause, age] parameter (names its parameters)."""

    scale: Float[Array, "cause age"]
    knots: Float[Array, " knot"]
    causes: tuple[str, ...] = eqx.field(static=True)
    ages: tuple[int, ...] = eqx.field(static=True)
    applies: tuple[tuple[bool, ...], ...] | None = eqx.field(static=True, default=None)
    param_fields = ("scale",)

    def _log_rr(self, C):
        return self.scale.reshape(self.scale.shape + (1,) * C.ndim) * jnp.interp(C, self.knots, self.knots / 100)


def test_user_crf_normalises_applies_causes_and_ages():
    beta, cf = np.full((2, 3), 0.15), np.full((2, 3), 5.0)
    # applies=None, lists, lower-case and alias cause names: what the built-in CRFs accept
    crf = _UserLogLog(jnp.asarray(beta), jnp.asarray(cf), ["ihd", "ALRI"], [25, 30, 35], None)
    assert crf.causes == ("IHD", "LRI") and crf.ages == (25, 30, 35)
    assert crf.applies == ((True,) * 3,) * 2
    C = np.array([[1.0, 12.0], [40.0, 5.0]])
    ref = beta[..., None, None] * np.log((np.maximum(C, 5.0) + 1.0) / 6.0)  # independent numpy formula
    np.testing.assert_allclose(np.asarray(crf.log_relative_risk(jnp.asarray(C))), ref, rtol=1e-13)
    # static fields are hashable tuples, so the CRF goes through jit
    out = eqx.filter_jit(lambda m, c: m.attributable_fraction(c))(crf, jnp.asarray(C))
    np.testing.assert_allclose(np.asarray(out), 1 - np.exp(-ref), rtol=1e-13)
    # a partial mask given as nested lists is kept (as tuples)
    crf2 = _UserLogLog(jnp.asarray(beta), jnp.asarray(cf), ("IHD", "LRI"), (25, 30, 35),
                       [[True, False, True], [False, False, True]])
    assert crf2.applies == ((True, False, True), (False, False, True))
    np.testing.assert_allclose(np.asarray(crf2.log_relative_risk(jnp.asarray(C)))[0, 1], 0.0)


def test_user_crf_wrong_shapes_refused_at_construction():
    ok = np.full((2, 3), 0.1)
    with pytest.raises(ValueError, match=r"_UserLogLog\.beta has shape \(3, 2\).*\[cause, age\].*transposed"):
        _UserLogLog(jnp.asarray(ok.T), jnp.asarray(ok), ("IHD", "LRI"), (25, 30, 35))
    with pytest.raises(ValueError, match=r"_UserLogLog\.cf has shape \(2,\)"):
        _UserLogLog(jnp.asarray(ok), jnp.ones(2), ("IHD", "LRI"), (25, 30, 35))
    with pytest.raises(ValueError, match=r"_UserLogLog: `applies` has shape \(3, 2\), expected \[cause, age\]"):
        _UserLogLog(jnp.asarray(ok), jnp.asarray(ok), ("IHD", "LRI"), (25, 30, 35), [[True, True]] * 3)
    with pytest.raises(ValueError, match="_UserLogLog: `ages` must be strictly increasing"):
        _UserLogLog(jnp.asarray(ok), jnp.asarray(ok), ("IHD", "LRI"), (35, 30, 25))
    with pytest.raises(ValueError, match="_UserLogLog: `causes` has duplicates"):
        _UserLogLog(jnp.asarray(ok), jnp.asarray(ok), ("IHD", "ihd"), (25, 30, 35))


def test_user_crf_param_fields_names_the_cause_age_parameters():
    knots = jnp.asarray([0.0, 50.0, 100.0])
    crf = _UserSpline(jnp.ones((1, 2)), knots, ("IHD",), (25, 30))
    np.testing.assert_allclose(np.asarray(crf.log_relative_risk(jnp.asarray(30.0))), [[0.3, 0.3]], rtol=1e-13)
    with pytest.raises(ValueError, match=r"_UserSpline\.scale has shape \(2, 1\)"):
        _UserSpline(jnp.ones((2, 1)), knots, ("IHD",), (25, 30))
