"""save/load: round trips for every emulator class, JSON metadata, refusal on mismatch, atomic writes."""

import hashlib
import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import surrogate as sg


def _runs(n=30, species=("SO2", "NH3")):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2, (n, 2, 2))
    y = 2 + np.stack([x[:, 0, 0] * x[:, 1, 1], x.sum((1, 2))], 1)[:, :, None] * np.array([1.0, 0.5, 0.2])
    return xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "component", "receptor"), y)},
        coords={
            "source": ["a", "b"],
            "species": list(species),
            "component": ["SO4", "OC"],
            "receptor": ["p", "q", "r"],
        },
    )


@pytest.fixture(scope="module")
def fitted():
    runs = _runs()
    lab = sg.EmulatorLabels.from_runs(runs)
    kw = dict(key=jr.PRNGKey(1), steps=15, progress=False)
    return {
        "linear": sg.fit(sg.LinearEmulator(lab), runs),
        "poly": sg.fit(sg.PolynomialEmulator(lab, degree=3), runs),
        "mlp": sg.fit(sg.MLPEmulator(lab, width=8, key=jr.PRNGKey(0)), runs, **kw),
        "ens": sg.fit(
            sg.Ensemble(lambda k: sg.MLPEmulator(lab, width=8, key=k), 2, key=jr.PRNGKey(0)), runs, **kw
        ),
    }


@pytest.mark.parametrize("kind", ["linear", "poly", "mlp", "ens"])
def test_round_trip(fitted, kind, tmp_path):
    model = sg.with_envelope_policy(fitted[kind], "raise")
    path = sg.save(
        tmp_path / "m.eqx",
        model,
        provenance={"ctm": "analytic", "runs": 30},
        scores=sg.evaluate(model, _runs(10)),
    )
    assert [p.name for p in tmp_path.iterdir()] == ["m.eqx"]  # no temporary file left behind
    for loaded in (sg.load(path), sg.load(path, like=model)):
        assert type(loaded) is type(model)
        assert loaded.labels == model.labels and loaded.envelope.policy == "raise"
        x = jnp.asarray(_runs(5)["scale"].values[3])
        np.testing.assert_array_equal(loaded(x), model(x))
        np.testing.assert_array_equal(loaded.envelope.lower, model.envelope.lower)
    meta = sg.load_metadata(path)
    assert meta["class"] == type(model).__name__
    assert meta["provenance"] == {"ctm": "analytic", "runs": 30}
    assert meta["labels"]["input_dims"] == ["source", "species"]
    assert meta["output_units"] == "ug m-3" and meta["envelope"]["policy"] == "raise"
    assert "NME" in meta["scores"]["data_vars"]
    # the file has no pickle: header, content hash, one JSON line, then raw leaves
    raw = path.read_bytes()
    assert raw.startswith(b"DIFFMRIO-SURROGATE 2\n")
    lines = raw.split(b"\n")
    assert lines[1] == b"sha256:" + hashlib.sha256(raw[len(lines[0]) + len(lines[1]) + 2 :]).hexdigest().encode()
    json.loads(lines[2])


def test_load_refuses_mismatch(fitted, tmp_path):
    path = sg.save(tmp_path / "poly.eqx", fitted["poly"])
    lab = fitted["poly"].labels
    with pytest.raises(ValueError, match="hyperparameters"):
        sg.load(path, like=sg.PolynomialEmulator(lab, degree=2))
    with pytest.raises(ValueError, match="class"):
        sg.load(path, like=fitted["linear"])
    other = sg.EmulatorLabels.from_runs(_runs(species=("NOx", "NH3")))
    with pytest.raises(ValueError, match="labels"):
        sg.load(path, like=sg.PolynomialEmulator(other, degree=3))


def test_load_rejects_foreign_and_truncated_files(fitted, tmp_path):
    bad = tmp_path / "x.eqx"
    bad.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="not a surrogate emulator file"):
        sg.load(bad)
    path = sg.save(tmp_path / "mlp.eqx", fitted["mlp"])
    data = path.read_bytes()
    trunc = tmp_path / "trunc.eqx"
    trunc.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="trunc.eqx: content hash mismatch"):
        sg.load(trunc)
    with pytest.raises(FileNotFoundError):
        sg.load(tmp_path / "missing.eqx")


def test_gridded_round_trip(tmp_path):
    ny, nx = 6, 6
    lab = sg.EmulatorLabels(
        ("species", "level", "row", "col"), (("SO2",), ("ground",), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "kt/yr", ("component", "row", "col"), (("SO4",), tuple(map(str, range(ny))), tuple(map(str, range(nx)))),
        "ug m-3", input_kind="emission",
    )  # fmt: skip
    e0 = np.random.default_rng(0).uniform(0.5, 1, (1, 1, ny, nx))
    m = sg.GriddedEmulator(lab, x_ref=e0, base=np.ones((1, ny, nx)), width=4, n_layers=1, modes=(2, 2), pad=2,
                           key=jr.PRNGKey(3), on_out_of_envelope="ignore")  # fmt: skip
    path = sg.save(tmp_path / "g.eqx", m)
    loaded = sg.load(path)
    np.testing.assert_array_equal(loaded(jnp.asarray(e0 * 1.2)), m(jnp.asarray(e0 * 1.2)))
    np.testing.assert_array_equal(loaded.x_ref, m.x_ref)
