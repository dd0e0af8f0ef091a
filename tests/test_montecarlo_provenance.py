"""Monte Carlo resumes are keyed by content: a checkpoint folder of a different computation, chunks without
a manifest, a short chunk and damaged files are refused with an error naming the file (issue 14); an identical
rerun still resumes bitwise."""

import copy
import json
import shutil
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _chains import small_chain

import diffmrio
from diffmrio._provenance import fingerprint
from diffmrio.chain._montecarlo import run_draws


@pytest.fixture(scope="module")
def chain():
    return small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))


def _mc(chain, folder, spec=None, by="consumer", key=0, n=8):
    return diffmrio.chain.monte_carlo(chain, spec, n, key=jax.random.key(key), by=by, chunk_size=4,
                                checkpoint_dir=folder, progress=False)


@pytest.fixture(scope="module")
def finished(chain, tmp_path_factory):
    """A finished chain Monte Carlo (8 draws in 2 chunks, attribution by consumer) and its folder; tests work on
    copies of the folder so that the chain is compiled once."""
    folder = tmp_path_factory.mktemp("mc") / "done"
    return folder, _mc(chain, folder)


@pytest.fixture
def folder(finished, tmp_path):
    dst = tmp_path / "ck"
    shutil.copytree(finished[0], dst)
    return dst


def _draw(k):
    a = jax.random.normal(k, (3,))
    return {"a": a, "tot": jnp.sum(a**2)}


def _run(folder, draw=_draw, key=0, n=40):
    return run_draws(draw, n, key=jax.random.key(key), chunk_size=8, checkpoint_dir=folder, progress=False)


def test_identical_rerun_resumes_bitwise_without_recomputing(chain, finished, folder):
    first = finished[1]
    chunks = sorted(folder.glob("chunk_*.npz"))
    assert len(chunks) == 2
    stamp = chunks[0].stat().st_mtime_ns
    chunks[1].unlink()  # interrupted before the last chunk
    again = _mc(chain, folder)
    assert chunks[0].stat().st_mtime_ns == stamp, "a finished chunk was recomputed"
    for v in ("deaths", "attribution", "pwpm"):
        np.testing.assert_array_equal(again[v].values, first[v].values)
    # a fresh chain object built the same way has the same fingerprint, so it resumes too
    np.testing.assert_array_equal(_mc(small_chain("linear", ny=4, nx=6, causes=("IHD", "LC")), folder)
                                  .total_deaths.values, first.total_deaths.values)


def test_new_uncertainty_spec_is_refused(chain, folder):
    spec = diffmrio.chain.UncertaintySpec.default(chain, baseline_cv=0.5)  # the first run had the default 0.1
    with pytest.raises(ValueError, match=r"(?s)different computation.*spec differs.*delete the folder") as e:
        _mc(chain, folder, spec)
    assert str(folder) in str(e.value)
    assert "chain differs" not in str(e.value) and "grouping" not in str(e.value)


def test_other_attribution_grouping_is_refused(chain, folder):
    with pytest.raises(ValueError, match=r"grouping differs \('consumer' -> 'final_producer'\)"):
        _mc(chain, folder, by="final_producer")


def test_changed_chain_is_refused(folder):
    other = small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"), seed=1)  # other emulator and rates
    with pytest.raises(ValueError, match=r"chain differs"):
        _mc(other, folder)


def test_changed_draw_function_is_refused(tmp_path):
    _run(tmp_path)

    def draw2(k):  # same outputs, other code
        a = jax.random.normal(k, (3,))
        return {"a": 2.0 * a, "tot": jnp.sum(a**2)}

    with pytest.raises(ValueError, match=r"the draw function \(its code or the values it closes over\) differs"):
        _run(tmp_path, draw2)

    def make(scale):
        def draw(k):
            return {"a": scale * jax.random.normal(k, (3,)), "tot": jnp.sum(scale)}

        return draw

    _run(tmp_path / "c", make(jnp.ones(3)))
    _run(tmp_path / "c", make(jnp.ones(3)))  # the same closure values: resumes
    with pytest.raises(ValueError, match="draw function"):
        _run(tmp_path / "c", make(jnp.ones(3).at[1].set(1.0 + 1e-15)))


def test_lost_manifest_is_refused_even_with_another_key(tmp_path):
    _run(tmp_path, key=0)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"holds 5 chunk file\(s\) but no manifest.json") as e:
        _run(tmp_path, key=1)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(ValueError, match="PRNG key differs"):  # with the manifest, a new key is named
        _run(tmp_path / "k", key=0)
        _run(tmp_path / "k", key=1)


def test_short_chunk_is_refused(tmp_path):
    _run(tmp_path)
    path = tmp_path / "chunk_00002.npz"
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["a"], data["tot"] = data["a"][:6], data["tot"][:6]
    with open(path, "wb") as fh:
        np.savez(fh, **data)
    with pytest.raises(ValueError, match=r"chunk_00002.npz holds 6 draws of 'a' but should hold 8 \(draws 16 to 23\)"):
        _run(tmp_path)


def _damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped":  # one byte of an array's data: the zip's CRC-32 no longer matches
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("a.npy")
        i = info.header_offset + 30 + len(info.filename) + info.file_size - 3
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    elif how == "missing output":  # a chunk without `tot` (a KeyError deep inside before)
        with np.load(path) as z:
            data = {k: z[k] for k in z.files if k != "tot"}
        with open(path, "wb") as fh:
            np.savez(fh, **data)


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped", "missing output"])
def test_damaged_chunk_is_refused_naming_the_file(tmp_path, how):
    full = _run(tmp_path)
    path = tmp_path / "chunk_00001.npz"
    _damage(path, how)
    with pytest.raises(ValueError, match=r"checkpoint chunk .*chunk_00001.npz .*delete this file") as e:
        _run(tmp_path)
    if how == "flipped":
        assert "CRC" in str(e.value)
    path.unlink()  # the advice works: the chunk is recomputed and the result is the same
    again = _run(tmp_path)
    for k in full:
        np.testing.assert_array_equal(again[k], full[k])


def test_chunk_from_another_folder_is_refused(tmp_path):
    _run(tmp_path / "a", key=0)
    _run(tmp_path / "b", key=1)
    (tmp_path / "a" / "chunk_00003.npz").write_bytes((tmp_path / "b" / "chunk_00003.npz").read_bytes())
    with pytest.raises(ValueError, match=r"chunk_00003.npz was not written by the computation"):
        _run(tmp_path / "a", key=0)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"name": "draws", "n_draws": 40}'])
def test_damaged_or_old_manifest_is_refused(tmp_path, text):
    _run(tmp_path)
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match=r"checkpoint manifest .*manifest.json .*delete the folder"):
        _run(tmp_path)


def test_manifest_records_what_the_draws_depend_on(chain, finished):
    m = json.loads((finished[0] / "manifest.json").read_text())
    assert m["provenance"]["grouping"] == "consumer"
    assert m["provenance"]["chain"] == "sha256:" + fingerprint(chain)
    assert m["n_draws"] == 8 and m["chunk_size"] == 4
    assert set(m["outputs"]) == {"deaths", "pwpm", "target", "attribution", "in_envelope"}


def test_fingerprint_sees_values_dtypes_static_fields_and_code():
    a = small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))
    b = small_chain("linear", ny=4, nx=6, causes=("IHD", "LC"))
    assert a is not b and fingerprint(a) == fingerprint(b)
    x = np.arange(4.0)
    assert fingerprint(x) != fingerprint(np.nextafter(x, 10))  # one ulp
    assert fingerprint(x) != fingerprint(x.astype(np.float32))
    assert fingerprint(x) != fingerprint(x.reshape(2, 2))
    assert fingerprint(jax.random.key(0)) != fingerprint(jax.random.key(1))
    # a static field (the table's name) and a float field of a module
    renamed = copy.copy(a.mrio)
    object.__setattr__(renamed, "name", a.mrio.name + "_")
    assert fingerprint(renamed) != fingerprint(a.mrio)
    s1, s2 = (diffmrio.chain.UncertaintySpec.default(a, baseline_cv=cv) for cv in (0.1, 0.5))
    assert fingerprint(s1) != fingerprint(s2)
    assert fingerprint(lambda k: k + 1) != fingerprint(lambda k: k + 2)
    assert fingerprint(lambda k: k + 1) == fingerprint(lambda k: k + 1)
