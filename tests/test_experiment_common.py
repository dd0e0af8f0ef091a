"""experiments._common and `diffmrio experiment`: one set of flags for every experiment, output folders that are
never someone else's, data folders given by flags with clear errors, and the experiments runnable from the
installed package (`diffmrio experiment NAME`, `python -m experiments.NAME`)."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

from diffmrio import cli
from diffmrio._cli.experiment import names
from experiments import _common

ROOT = Path(__file__).resolve().parents[1]
ALL = ["adjoint_replication", "china_health_2015", "city_network", "cobenefits", "export_pollution",
       "global_health_2015", "outsourcing", "uncertainty", "value_chain", "wiod_exports"]
SHARED_FLAGS = ("--out", "--quick", "-q, --quiet, --no-progress", "--seed", "--force")


def test_every_experiment_is_listed():
    assert set(ALL) <= set(names())
    assert not [n for n in names() if n.startswith("_")]


@pytest.mark.parametrize("name", ALL)
def test_shared_flags(name, capsys):
    mod = importlib.import_module(f"experiments.{name}")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in SHARED_FLAGS:
        assert flag in text, (name, flag)


def test_flags_parse():
    ap = _common.experiment_parser("x")
    a = ap.parse_args(["--out", "o", "--no-progress", "--seed", "3"])
    assert a.quiet and a.seed == 3 and not a.force and not a.quick
    assert ap.parse_args(["--out", "o", "-q"]).quiet
    assert not _common.show_progress(a)
    assert _common.seed_or(a, 7) == 3 and _common.seed_or(ap.parse_args(["--out", "o"]), 7) == 7
    assert not hasattr(a, "mrio") and _common.make_parser("x").parse_args(["--out", "o"]).mrio is None


def test_prepare_out_never_takes_a_users_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match="did not write.*--force"):
        _common.prepare_out(mine, "value_chain")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # nothing written
    # a new folder, then a second run of the same experiment: fine; another experiment: refused
    out = _common.prepare_out(tmp_path / "new" / "out", "value_chain")
    (out / "report.md").write_text("old report")
    assert _common.prepare_out(out, "value_chain") == out
    with pytest.raises(FileExistsError, match="experiment 'value_chain'"):
        _common.prepare_out(out, "cobenefits")
    _common.prepare_out(mine, "value_chain", force=True)
    assert (mine / "notes.txt").read_text() == "my notes"
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(FileExistsError, match="is a file"):
        _common.prepare_out(f, "value_chain", force=True)


def test_shared_folder(tmp_path, monkeypatch):
    (tmp_path / "data" / "x").mkdir(parents=True)
    assert _common.shared_folder(tmp_path / "data" / "x", "data/x", "--flag") == tmp_path / "data" / "x"
    monkeypatch.setenv("DIFFMRIO_SHARED", str(tmp_path))
    assert _common.shared_folder(None, "data/x", "--flag") == tmp_path / "data" / "x"
    with pytest.raises(FileNotFoundError, match=r"data/y not found; pass --flag DIR \(or set DIFFMRIO_SHARED"):
        _common.shared_folder(None, "data/y", "--flag")


def test_cli_experiment_runs_main(tmp_path, capsys):
    # wiod_exports with a missing data folder: the experiment's own usage error, under the diffmrio name
    with pytest.raises(SystemExit) as exc:
        cli.main(["experiment", "wiod_exports", "--out", str(tmp_path / "o"), "--wiod", str(tmp_path / "none")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: diffmrio experiment wiod_exports") and "none not found; pass --wiod DIR" in err
    with pytest.raises(SystemExit):
        cli.main(["experiment", "no_such_study", "--out", "o"])
    assert "invalid choice" in capsys.readouterr().err
    assert _common.PROG is None  # the usage name does not leak into later parsers


def test_experiments_ship_in_the_wheel():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "experiments" in cfg["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
