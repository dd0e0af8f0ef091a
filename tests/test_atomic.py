"""The shared atomic writers: a failure leaves the previous file and no temporary; results get ordinary
permissions (not mkstemp's 0600); the binary writer (checkpoints, saved models) behaves the same."""

import os
import stat

import pytest

from ctm_interface._atomic import atomic_path, write_bytes_atomic, write_text_atomic


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_failed_write_keeps_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "table.csv"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv" and tmp != target
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_written_files_get_ordinary_permissions(tmp_path):
    for p in (write_text_atomic(tmp_path / "a.txt", "x"), write_bytes_atomic(tmp_path / "b.bin", lambda f: f.write(b"y"))):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~_umask()
    assert (tmp_path / "b.bin").read_bytes() == b"y"


def test_failing_binary_writer_leaves_nothing(tmp_path):
    def writer(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(tmp_path / "model.eqx", writer)
    assert list(tmp_path.iterdir()) == []
