"""Atomic file writing (the helpers live in `ctm_interface._atomic`, shared by all three packages), plus the
figure and netCDF writers diffmrio's reports use."""

from __future__ import annotations

from pathlib import Path

from ctm_interface._atomic import atomic_path as atomic_path, write_text_atomic as write_text_atomic


def save_figure_atomic(fig, path: str | Path, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return Path(path)


def write_netcdf_atomic(ds, path: str | Path) -> Path:
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp)
    return Path(path)
