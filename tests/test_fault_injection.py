"""Fault injection: what a careful but careless user does to resumable training, saved emulators, the atomic
writers, netCDF inputs and the demo's output folder. Each case asserts the correct result or an error that
names the file or argument and the fix; nothing silently wrong, nothing half-written, nothing of the user's
overwritten.

Interruptions are real: `kill -9` of `fit` in a subprocess at a random point, then a resume that must be
bitwise identical to a clean fit; `SIGINT` of `diffmrio demo --economy-only` (both marked slow)."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

import surrogate as sg
from ctm_interface._atomic import TMP_TAG, _host_tag, atomic_path, clean_stale_temporaries, write_text_atomic
from diffmrio._io import NetCDFReadError, load_netcdf
from diffmrio.cli import main
from diffmrio.demo._job import MANIFEST, DemoOutputError, OutputGuard
from diffmrio.health import load_pm25_netcdf

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------- fit: data, model


def _runs(n=24, seed=0):
    x = np.random.default_rng(seed).uniform(0.1, 2.0, (n, 2, 2))
    nox, nh3 = x[:, :, 0] @ [1.0, 0.5], x[:, :, 1] @ [0.4, 1.0]
    no3 = nox * nh3 / (0.5 + nox + nh3)
    y = np.stack([no3, 0.3 * nh3 + 0.2 * no3, 1.0 + 0.1 * x[:, 0, 0]], axis=1)
    y = np.stack([y, 1.3 * y], axis=1)  # [run, receptor, component]
    return xr.Dataset(
        {"scale": (("run", "source", "species"), x), "pm25": (("run", "receptor", "component"), y)},
        coords={"source": ["a", "b"], "species": ["NOx", "NH3"], "receptor": ["p", "q"],
                "component": ["NO3", "NH4", "OC"]},
    )  # fmt: skip


LABELS = sg.EmulatorLabels.from_runs(_runs(3))
FIT_KW = dict(key=jr.PRNGKey(3), steps=12, eval_every=4, checkpoint_every=4, patience=None, progress=False)


def _mlp(seed=0):
    return sg.MLPEmulator(LABELS, width=6, depth=1, key=jr.PRNGKey(seed))


def _leaves(model):
    return [np.asarray(v) for v in jax.tree.leaves(model) if hasattr(v, "shape")]


def _assert_bitwise(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb, strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.fixture(scope="module")
def clean_fit():
    return sg.fit(_mlp(), _runs(), **FIT_KW)


@pytest.fixture(scope="module")
def partial_ckpt_bytes(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ckpt") / "train.ckpt"
    sg.fit(_mlp(), _runs(), checkpoint=ck, max_steps=5, **FIT_KW)
    return ck.read_bytes()


@pytest.fixture
def partial_ckpt(tmp_path, partial_ckpt_bytes):
    """A checkpoint of an interrupted training (5 of 12 steps), fresh for each test."""
    ck = tmp_path / "train.ckpt"
    ck.write_bytes(partial_ckpt_bytes)
    return ck


def test_identical_rerun_resumes_bitwise(clean_fit, partial_ckpt):
    resumed, hist = sg.fit(_mlp(), _runs(), checkpoint=partial_ckpt, return_history=True, **FIT_KW)
    assert hist["steps_done"] == 12
    _assert_bitwise(resumed, clean_fit)
    assert [p.name for p in partial_ckpt.parent.iterdir()] == [partial_ckpt.name]


def _swap_outputs(ds, i, j):
    y = ds["pm25"].values.copy()
    y[[i, j]] = y[[j, i]]
    return ds.assign(pm25=(ds["pm25"].dims, y))


@pytest.mark.parametrize(
    ("change", "what"),
    [
        # same runs in a new order: the old checksum sum(x) + 1e-3 sum(y) could not see this
        (dict(runs=lambda: _runs().isel(run=np.random.default_rng(1).permutation(24))), "run inputs differ"),
        # two runs' outputs swapped: inputs identical, sums identical
        (dict(runs=lambda: _swap_outputs(_runs(), 0, 1)), "run outputs differ"),
        (dict(runs=lambda: _runs(n=23)), "number of runs differs"),
        (dict(learning_rate=1e-2), "hyperparameter learning_rate: checkpoint has 0.003, this call 0.01"),
        (dict(weight_decay=0.0), "hyperparameter weight_decay"),
        (dict(patience=50), "hyperparameter patience"),
        (dict(key=jr.PRNGKey(4)), "hyperparameter key"),
        (dict(model=lambda: _mlp(seed=1)), "initial weights"),
        (dict(model=lambda: sg.MLPEmulator(LABELS, width=6, depth=1, sharpness=5.0, key=jr.PRNGKey(0))),
         "hyperparameters differ"),
    ],
)
def test_resume_of_a_different_training_is_refused(partial_ckpt, change, what):
    change = dict(change)
    runs = change.pop("runs", _runs)()
    model = change.pop("model", _mlp)()
    before = partial_ckpt.read_bytes()
    with pytest.raises(ValueError, match="written by a different training") as err:
        sg.fit(model, runs, checkpoint=partial_ckpt, **{**FIT_KW, **change})
    msg = str(err.value)
    assert str(partial_ckpt) in msg and what in msg and "Delete it" in msg
    assert partial_ckpt.read_bytes() == before  # the refused call does not touch the checkpoint


def test_a_new_order_really_changes_the_result(clean_fit):
    """The refusal above protects something: a clean fit on the permuted runs differs (another validation
    split), so resuming across the change would mix two trainings."""
    other = sg.fit(_mlp(), _runs().isel(run=np.random.default_rng(1).permutation(24)), **FIT_KW)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(other), _leaves(clean_fit), strict=True))


def _corruptions(raw: bytes):
    header_end = raw.index(b"\n", raw.index(b"\n") + 1) + 1
    return {
        "empty": (b"", "the file is empty"),
        "garbage": (os.urandom(300), "does not start with"),
        "text": (b"hello\nworld\n", "does not start with"),
        "truncated": (raw[: len(raw) - 37], "truncated or overwritten"),
        "trailing": (raw + b"\0junk", "truncated or overwritten"),
        "flipped": (raw[:-5] + bytes([raw[-5] ^ 0xFF]) + raw[-4:], "truncated or overwritten"),
        "header": (raw[:30] + b"\xff\xfe" + raw[32:], "unreadable header"),
        "no-newline": (raw[:header_end - 1], "unreadable header"),
    }


def test_corrupt_checkpoint_is_named_with_the_fix(partial_ckpt):
    raw = partial_ckpt.read_bytes()
    for name, (content, why) in _corruptions(raw).items():
        partial_ckpt.write_bytes(content)
        with pytest.raises(ValueError) as err:
            sg.fit(_mlp(), _runs(), checkpoint=partial_ckpt, **FIT_KW)
        msg = str(err.value)
        assert str(partial_ckpt) in msg and why in msg, (name, msg)
        assert "corrupt" in msg and "delete it" in msg and "fresh `checkpoint=` path" in msg, name
        assert "different training" not in msg, name


def test_checkpoint_of_another_state_shape_is_refused(partial_ckpt, tmp_path):
    """A checkpoint whose header is intact and matches but whose stored tree is of another shape (as a code
    change could produce): an error naming the file, not a TreePathError."""
    from surrogate._fit import CHECKPOINT_MAGIC

    raw = partial_ckpt.read_bytes()
    nl = raw.index(b"\n", len(CHECKPOINT_MAGIC))
    header = json.loads(raw[len(CHECKPOINT_MAGIC):nl])
    body = raw[nl + 1 : nl + 1 + header["body_bytes"] // 2]  # a shorter tree
    header.update(body_sha256=hashlib.sha256(body).hexdigest(), body_bytes=len(body))
    partial_ckpt.write_bytes(CHECKPOINT_MAGIC + json.dumps(header).encode() + b"\n" + body)
    with pytest.raises(ValueError, match=r"does not fit this model.*delete it"):
        sg.fit(_mlp(), _runs(), checkpoint=partial_ckpt, **FIT_KW)
    old = tmp_path / "old.ckpt"  # the format before content fingerprints: a JSON line, then leaves
    old.write_bytes(b'{"class": "MLPEmulator", "data_checksum": 1.0}\n' + body)
    with pytest.raises(ValueError, match=r"old.ckpt was written by an older version.*delete it"):
        sg.fit(_mlp(), _runs(), checkpoint=old, **FIT_KW)
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(ValueError, match="a_folder is not a file"):
        sg.fit(_mlp(), _runs(), checkpoint=folder, **FIT_KW)


@pytest.mark.parametrize(
    ("arg", "value"),
    [("learning_rate", float("nan")), ("learning_rate", float("inf")), ("learning_rate", -1e-3),
     ("learning_rate", 0.0), ("eval_every", 0), ("checkpoint_every", 0), ("steps", 0), ("weight_decay", np.nan),
     ("validation_fraction", 1.0), ("batch_size", 0), ("sobolev_weight", -1.0), ("eval_every", 2.5)],
)
def test_bad_training_arguments_are_named(arg, value):
    with pytest.raises(ValueError, match=f"`{arg}` must be"):
        sg.fit(_mlp(), _runs(), **{**FIT_KW, arg: value})


def test_diverging_training_raises_instead_of_returning_nan(tmp_path):
    ck = tmp_path / "div.ckpt"
    with pytest.raises(FloatingPointError, match=r"non-finite.*by step \d+; lower `learning_rate` \(now 1e\+300\)"):
        sg.fit(_mlp(), _runs(), checkpoint=ck, **{**FIT_KW, "learning_rate": 1e300})
    with pytest.raises(FloatingPointError, match="non-finite"):
        sg.fit(_mlp(), _runs(), **{**FIT_KW, "learning_rate": 1e300, "max_steps": 3})  # stopped before any eval


# ------------------------------------------------------------------------------------------- saved emulators


@pytest.fixture(scope="module")
def saved(clean_fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("emu") / "mlp.eqx"
    sg.save(path, clean_fit, provenance={"runs": 24})
    return path


def _edited(path: Path, tmp: Path, old: bytes, new: bytes) -> Path:
    raw = path.read_bytes()
    assert raw.count(old) >= 1, old
    out = tmp / f"edited_{hashlib.sha1(old + new).hexdigest()[:6]}.eqx"
    out.write_bytes(raw.replace(old, new))
    return out


def test_saved_emulator_loads_bitwise(saved, clean_fit):
    _assert_bitwise(sg.load(saved), clean_fit)
    assert sg.load_metadata(saved)["hyperparameters"]["sharpness"] == clean_fit.sharpness


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"sharpness": 20.0', b'"sharpness": 5.0'),  # predictions would change by a few percent
        (b'"input_coords": [["a", "b"]', b'"input_coords": [["b", "a"]'),  # source labels swapped
        (b'"policy": "warn"', b'"policy": "ignore"'),
    ],
)
def test_edited_metadata_is_refused(saved, tmp_path, old, new):
    edited = _edited(saved, tmp_path, old, new)
    for loader in (sg.load, sg.load_metadata):
        with pytest.raises(ValueError, match=rf"{edited.name}: content hash mismatch.*save the emulator again"):
            loader(edited)


def test_edited_sharpness_would_have_changed_predictions(saved, clean_fit):
    """Why the check matters: the same weights read with sharpness 5 (what loading the edited file without a
    hash would give) predict something else."""
    import io

    import equinox as eqx

    from surrogate import _serialise

    meta, weights = _serialise._read_verified(saved)
    meta["hyperparameters"]["sharpness"] = 5.0
    soft = eqx.tree_deserialise_leaves(io.BytesIO(weights), _serialise._skeleton(meta))
    x = np.asarray(_runs()["scale"].values[0])
    assert np.max(np.abs(np.asarray(soft(x)) - np.asarray(clean_fit(x)))) > 1e-3


def test_trailing_garbage_changed_weights_and_old_format_are_refused(saved, tmp_path):
    raw = saved.read_bytes()
    cases = {
        "trailing.eqx": (raw + b"garbage", "content hash mismatch"),
        "flipped.eqx": (raw[:-9] + bytes([raw[-9] ^ 1]) + raw[-8:], "content hash mismatch"),
        "nohash.eqx": (raw.replace(b"sha256:", b"sha512:", 1), "no content-hash line"),
        "v1.eqx": (b"DIFFMRIO-SURROGATE 1\n" + raw.split(b"\n", 2)[2], "format 1"),
        "empty.eqx": (b"", "not a surrogate emulator file"),
    }
    for name, (content, why) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=why) as err:
            sg.load(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)


# ------------------------------------------------------------------------------------------- atomic writers


def test_atomic_write_fsyncs_file_before_rename_and_folder_after(tmp_path, monkeypatch):
    import ctm_interface._atomic as atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", Path(b).name))
        real_replace(a, b)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    write_text_atomic(tmp_path / "t.txt", "x")
    assert events == [("fsync", "file"), ("replace", "t.txt"), ("fsync", "dir")]
    assert (tmp_path / "t.txt").read_text() == "x"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_killed_writers_are_cleaned_and_nothing_else(tmp_path):
    target = tmp_path / "table.csv"
    host = _host_tag()
    dead = tmp_path / f".table.csv{TMP_TAG}{_dead_pid()}-{host}-abc123.csv"
    live = tmp_path / f".table.csv{TMP_TAG}{os.getppid()}-{host}-def456.csv"  # a running writer's
    other_host = tmp_path / f".table.csv{TMP_TAG}{_dead_pid()}-{'0' * 8 if host != '0' * 8 else '1' * 8}-x.csv"
    old_live = tmp_path / f".other.csv{TMP_TAG}{os.getppid()}-{host}-old.csv"
    users = [tmp_path / ".table.csv.swp", tmp_path / ".table.csv.diffmrio-tmpx", tmp_path / "table.csv.bak"]
    for p in [dead, live, other_host, old_live, *users]:
        p.write_text("partial")
    os.utime(old_live, (time.time() - 3 * 86400,) * 2)
    write_text_atomic(target, "done")
    left = {p.name for p in tmp_path.iterdir()}
    assert dead.name not in left  # removed by the next write of the same target
    assert {live.name, other_host.name, old_live.name, target.name} | {u.name for u in users} == left
    assert clean_stale_temporaries(tmp_path) == [old_live]  # older than a day, whatever its process
    assert all(u.read_text() == "partial" for u in users)


def test_kill_9_inside_a_write_leaves_the_old_file_and_a_temporary_that_is_cleaned(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[2]);\n"
        "import importlib.util as u\n"
        "spec = u.spec_from_file_location('atomic', sys.argv[2] + '/ctm_interface/_atomic.py')\n"
        "m = u.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "with m.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half'); print('ready', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(target), str(REPO)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    p.wait()
    temps = [q for q in tmp_path.iterdir() if q.name != "out.txt"]
    assert len(temps) == 1 and TMP_TAG in temps[0].name and target.read_text() == "old"
    write_text_atomic(target, "new")
    assert [q.name for q in tmp_path.iterdir()] == ["out.txt"] and target.read_text() == "new"


def test_two_writers_on_one_target_leave_one_complete_file(tmp_path):
    """Concurrent writers of the same file (two jobs on one folder): the result is one writer's complete
    content, never a mix, and no temporary is left."""
    import threading

    target = tmp_path / "shared.bin"
    contents = [bytes([i]) * 200_000 for i in range(6)]

    def write(c):
        for _ in range(5):
            write_text_atomic(target, c.decode("latin-1"))

    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_text(encoding="utf-8").encode("latin-1") in contents
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


def test_interrupted_block_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "r.nc") as tmp:
        tmp.write_bytes(b"CDF")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_names_the_target_not_the_temporary(tmp_path):
    """A full disk inside the block: the error names the file the user asked for (the hidden temporary it
    used to name is gone by then), keeps the errno, and nothing is left behind."""
    import errno

    target = tmp_path / "out" / "deaths.nc"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert str(target) in str(info.value) and "nothing was written there" in str(info.value)
    assert list(target.parent.iterdir()) == []
    with pytest.raises(PermissionError, match="elsewhere"), atomic_path(target):  # other files: untouched
        raise PermissionError(errno.EACCES, "denied", str(tmp_path / "elsewhere"))


# ------------------------------------------------------------------------------------------- netCDF inputs


def _pm25_file(path: Path, n=40) -> Path:
    v = np.random.default_rng(0).uniform(5, 50, (n, n))
    xr.Dataset({"PM2.5": (("lat", "lon"), v)}, coords={"lat": np.arange(n) * 0.5, "lon": np.arange(n) * 0.5}
               ).to_netcdf(path, encoding={"PM2.5": {"zlib": True, "chunksizes": (10, 10)}})
    return path


def test_pm25_netcdf_empty_text_and_overwritten_files(tmp_path):
    good = _pm25_file(tmp_path / "good.nc")
    assert load_pm25_netcdf(good).shape == (40, 40)
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    text = tmp_path / "text.nc"
    text.write_text("lat,lon,pm25\n1,2,3\n")
    raw = good.read_bytes()
    mid = len(raw) // 2
    smashed = tmp_path / "smashed.nc"
    smashed.write_bytes(raw[:mid] + b"\xff" * 4096 + raw[mid + 4096:])
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(raw[: len(raw) // 3])
    for p, why in ((empty, "empty"), (text, "not a netCDF file"), (smashed, "corrupt"), (truncated, "corrupt")):
        with pytest.raises(NetCDFReadError, match=why) as err:
            load_pm25_netcdf(p)
        assert str(p) in str(err.value) and "intact" in str(err.value), str(err.value)


def test_demo_cache_entry_that_is_corrupt_is_rebuilt_with_a_warning(tmp_path):
    """`demo_chain`'s cache loader: a damaged entry warns (naming the file) and is rebuilt instead of
    failing with `OSError: NetCDF: HDF error`."""
    from diffmrio.demo._pipeline import _load_cache

    runs = _runs()
    folder = tmp_path / "demo_chain_x"
    folder.mkdir()
    runs.to_netcdf(folder / "runs.nc")
    runs.to_netcdf(folder / "test_runs.nc")
    sg.save(folder / "emulator.eqx", sg.fit(sg.LinearEmulator(LABELS), runs))
    got = _load_cache(folder, sg, "linear", 0)
    assert got is not None
    xr.testing.assert_identical(got[0], runs)
    for damage in ("runs.nc", "emulator.eqx"):
        raw = (folder / damage).read_bytes()
        (folder / damage).write_bytes(raw[: len(raw) // 2])
        with pytest.warns(UserWarning, match=rf"demo cache entry .*demo_chain_x is unreadable and is rebuilt.*{damage}"):
            assert _load_cache(folder, sg, "linear", 0) is None
        (folder / damage).write_bytes(raw)
    assert load_netcdf(folder / "runs.nc")["scale"].shape == (24, 2, 2)


# ------------------------------------------------------------------------------------------- the demo's folder


def _economy(out, *extra):
    return main(["demo", "--out", str(out), "--quiet", "--economy-only", *extra])


def test_demo_refuses_to_overwrite_users_files_then_force_and_manifest(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "results").mkdir(parents=True)
    (out / "report.md").write_text("my own notes\n")
    (out / "results" / "accounts.nc").write_bytes(b"my own results")
    assert _economy(out) == 2
    err = capsys.readouterr().err
    assert "report.md" in err and "results/accounts.nc" in err and "--force" in err and "Traceback" not in err
    assert (out / "report.md").read_text() == "my own notes\n"
    assert (out / "results" / "accounts.nc").read_bytes() == b"my own results"
    # --force overwrites them, and the manifest records what the demo wrote, with the files' hashes
    assert _economy(out, "--force") == 0
    doc = json.loads((out / MANIFEST).read_text())
    assert doc["written_by"] == "diffmrio demo"
    assert {"report.md", "results/accounts.nc", "figures/pba_vs_cba.png"} <= set(doc["files"])
    for rel, hashes in doc["files"].items():
        assert hashes == [hashlib.sha256((out / rel).read_bytes()).hexdigest()], rel
    assert "my own notes" not in (out / "report.md").read_text()
    # an edited demo output is the user's now: refused again, untouched
    (out / "report.md").write_text((out / "report.md").read_text() + "\nmy remark\n")
    edited = (out / "report.md").read_bytes()
    assert _economy(out) == 2 and "report.md" in capsys.readouterr().err
    assert (out / "report.md").read_bytes() == edited


def test_demo_rerun_over_its_own_outputs_and_unlisted_files(tmp_path):
    out = tmp_path / "demo"
    assert _economy(out) == 0
    (out / "notes.txt").write_text("mine")
    assert _economy(out) == 0  # its own files are replaced; others are not its business
    assert (out / "notes.txt").read_text() == "mine"
    # the write guard also covers files not in the up-front list
    guard = OutputGuard(out)
    (out / "figures" / "new.png").write_bytes(b"user figure")
    from ctm_interface._atomic import write_guard

    with write_guard(guard), pytest.raises(DemoOutputError, match=r"figures/new.png.*--force"):
        write_text_atomic(out / "figures" / "new.png", "demo figure")
    assert (out / "figures" / "new.png").read_bytes() == b"user figure"
    (out / MANIFEST).write_text("{not json")
    with pytest.raises(DemoOutputError, match=rf"{MANIFEST} exists but is not a readable"):
        OutputGuard(out)


def test_demo_out_that_is_a_file_or_unwritable(tmp_path, capsys, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("keep")
    assert _economy(f) == 2
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in err and "Traceback" not in err
    assert _economy(f / "sub") == 2
    assert "cannot write in the output folder" in capsys.readouterr().err
    assert f.read_text() == "keep"
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes anyway: simulate the refusal of the file system
        import diffmrio.demo._job as job

        def refuse(*a, **k):
            raise PermissionError(13, "Permission denied", str(ro))

        monkeypatch.setattr(job.tempfile, "mkstemp", refuse)
    else:
        ro.chmod(0o555)
    try:
        assert _economy(ro) == 2
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err
    assert "cannot write in the output folder" in err and "Permission denied" in err and str(ro) in err


# ------------------------------------------------------------------------------------------- real interruptions

_FIT_CHILD = """
import sys
sys.path[:0] = [{repo!r}, {repo!r} + "/tests"]
import test_fault_injection as t
import surrogate as sg
kw = dict(t.FIT_KW, steps=150, checkpoint_every=1)
sg.fit(t._mlp(), t._runs(), checkpoint={ckpt!r}, **kw)
"""


@pytest.mark.slow
def test_kill_9_of_fit_at_a_random_point_then_resume_is_bitwise_identical(tmp_path):
    ckpt = tmp_path / "k.ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    p = subprocess.Popen([sys.executable, "-c", _FIT_CHILD.format(repo=str(REPO), ckpt=str(ckpt))], env=env,
                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ckpt.exists() and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.02)
    assert ckpt.exists(), p.stderr.read().decode()[-2000:] if p.poll() is not None else "no checkpoint in 300 s"
    time.sleep(random.uniform(0.0, 1.0))
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL  # killed mid-training, not finished
    kw = dict(FIT_KW, steps=150, checkpoint_every=1)
    resumed, hist = sg.fit(_mlp(), _runs(), checkpoint=ckpt, return_history=True, **kw)
    clean = sg.fit(_mlp(), _runs(), **kw)
    assert hist["steps_done"] == 150
    _assert_bitwise(resumed, clean)
    assert [q.name for q in tmp_path.iterdir()] == ["k.ckpt"]  # the killed writer's temporary was removed


def _complete(p: Path) -> bool:
    raw = p.read_bytes()
    if p.suffix == ".png":
        return raw.startswith(b"\x89PNG\r\n\x1a\n") and raw[-12:-4] == b"\0\0\0\0IEND"
    if p.suffix == ".nc":
        return load_netcdf(p) is not None
    return True


@pytest.mark.slow
def test_ctrl_c_of_the_demo_leaves_no_half_written_files(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "diffmrio.cli", "demo", "--out", str(out), "--quiet", "--economy-only"]
    p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not (out / "results").exists() and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 4.0))
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode in (0, 130), err.decode()[-2000:]
    if p.returncode == 130:
        assert b"interrupted" in err and b"Traceback" not in err
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {"files": {}}
    for f in (q for q in out.rglob("*") if q.is_file()):
        rel = f.relative_to(out).as_posix()
        if TMP_TAG in f.name:  # a temporary of the killed process (only if SIGINT hit its cleanup)
            continue
        assert rel == MANIFEST or hashlib.sha256(f.read_bytes()).hexdigest() in manifest["files"][rel], rel
        assert _complete(f), rel
    clean_stale_temporaries(out, recursive=True)
    assert not [q for q in out.rglob("*") if TMP_TAG in q.name]
    # and the next run finishes over the interrupted one's files
    assert _economy(out) == 0
