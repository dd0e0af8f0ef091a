"""The main job on the synthetic demo world: what `diffmrio demo` runs and `make demo` calls."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ctm_interface._atomic import TMP_TAG, clean_stale_temporaries, write_guard

from .._accounts import accounts
from .._io import write_netcdf_atomic, write_text_atomic
from .._trade import eebt
from ..datasets import demo_world
from ._chain_report import (
    attribution_and_mc_section,
    emulator_section,
    health_section,
    sensitivity_section,
    supply_chain_section,
)
from ._pipeline import demo_chain, demo_config
from ._report import Report, subplots

MANIFEST = "diffmrio-demo-manifest.json"
# what the demo writes (checked before it starts; the write guard also checks every other write)
OUTPUTS = (
    "report.md",
    "results/accounts.nc",
    "results/sensitivity_final_demand.nc",
    "results/monte_carlo_summary.nc",
    *(f"figures/{n}.png" for n in ("pba_vs_cba", "burden_matrix", "production_layers", "emulator_vs_ctm",
                                   "adjoint_check", "deaths_map", "sensitivity_top", "attribution_mc")),
)


class DemoOutputError(Exception):
    """The output folder cannot be used: not a folder, not writable, or holding files the demo did not write."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OutputGuard:
    """Keeps `out/diffmrio-demo-manifest.json`, the sha256 of every file the demo wrote in `out`, and refuses
    (unless `force`) to replace a file that is not in it or that changed since (a user's own or edited file).
    Paths outside `out` or inside `exempt` folders (the self-checking cache) are not its business.

    A file's new hash is recorded before the file replaces the old one (both are accepted until the
    replacement is done), so an interruption at any point leaves every demo file recognisable as the demo's."""

    def __init__(self, out: Path, *, force: bool = False, exempt: tuple[Path, ...] = ()):
        self.out = out.resolve()
        self.force = force
        self.exempt = tuple(e.resolve() for e in exempt)
        self.manifest = out / MANIFEST
        self.files: dict[str, list[str]] = {}
        self.manifest_problem = ""
        if self.manifest.exists():
            try:
                doc = json.loads(self.manifest.read_text(encoding="utf-8"))
                if doc.get("written_by") != "diffmrio demo" or not isinstance(doc.get("files"), dict):
                    raise ValueError("not a diffmrio demo manifest")
                self.files = {str(k): [str(h) for h in (v if isinstance(v, list) else [v])]
                              for k, v in doc["files"].items()}
            except (ValueError, OSError, AttributeError, TypeError) as err:
                self.manifest_problem = f" ({self.manifest} is unreadable: {err})"
                if not force:
                    raise DemoOutputError(
                        f"{self.manifest} exists but is not a readable diffmrio demo manifest ({err}), so the "
                        f"demo cannot tell which files in {out} it wrote; pass --force to overwrite the demo's "
                        "outputs anyway, or use another --out folder"
                    ) from None

    def _rel(self, path: Path) -> str | None:
        p = path.resolve()
        if any(p.is_relative_to(e) for e in self.exempt) or not p.is_relative_to(self.out):
            return None
        rel = p.relative_to(self.out).as_posix()
        return None if rel == MANIFEST else rel

    def owned(self, rel: str) -> bool:
        p = self.out / rel
        return not p.exists() or _sha256(p) in self.files.get(rel, [])

    def foreign(self, rels) -> list[str]:
        """Those of `rels` that exist in `out` but were not written by the demo (or were changed since)."""
        return [r for r in rels if not self.owned(r)]

    def check(self, rels) -> None:
        if not self.force and (bad := self.foreign(rels)):
            raise DemoOutputError(
                f"{self.out} holds files the demo did not write (or that changed since it wrote them): "
                f"{', '.join(bad)}{self.manifest_problem}. The demo does not overwrite them: move them away, "
                "use another --out folder, or pass --force to overwrite them"
            )

    def _save(self) -> None:
        write_text_atomic(self.manifest, json.dumps({"written_by": "diffmrio demo", "files": self.files},
                                                    indent=1, sort_keys=True))

    def before_write(self, path: Path) -> None:
        if (rel := self._rel(path)) is not None:
            self.check([rel])

    def before_replace(self, tmp: Path, path: Path) -> None:
        if (rel := self._rel(path)) is not None:
            old = [_sha256(path)] if path.exists() and self.owned(rel) else []
            self.files[rel] = [_sha256(tmp), *old]
            self._save()

    def after_write(self, path: Path) -> None:
        if (rel := self._rel(path)) is not None:
            self.files[rel] = self.files[rel][:1]
            self._save()


def prepare_output_folder(out: Path) -> None:
    """Create `out` (and `out/results`) or explain why it cannot be used; remove temporaries a killed run
    left in it."""
    if out.exists() and not out.is_dir():
        raise DemoOutputError(f"--out {out} is a file, not a folder: pass a folder (it is created if missing)")
    try:
        (out / "results").mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".probe{TMP_TAG}", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise DemoOutputError(
            f"cannot write in the output folder {out} ({err.strerror or err}: {err.filename or out}); pass a "
            "writable --out folder"
        ) from None
    clean_stale_temporaries(out, recursive=True)


def _accounts_section(rep: Report, world, out: Path, log) -> None:
    mrio = world.mrio
    t0 = time.perf_counter()
    acc = accounts(mrio)
    log(f"accounts computed in {time.perf_counter() - t0:.2f} s")
    write_netcdf_atomic(acc.drop_vars(["A"]), out / "results" / "accounts.nc")
    rep.add(
        "## 1. Production- and consumption-based accounts\n\n"
        "Production-based (`D_pba_reg`: emitted in the region, incl. households' direct emissions) and "
        "consumption-based (`D_cba_reg`: emitted anywhere for the region's final demand, incl. exports in its "
        "`export` column) accounts, computed with one LU factorisation (pymrio names and meanings)."
    )
    for sp in ("SO2", "PM2.5", "CO2"):
        df = acc[["D_pba_reg", "D_cba_reg", "D_imp_reg", "D_exp_reg"]].sel(stressor=sp).to_dataframe()
        df = df[["D_pba_reg", "D_cba_reg", "D_imp_reg", "D_exp_reg"]]
        df["net import"] = df["D_cba_reg"] - df["D_pba_reg"]
        unit = str(acc["unit"].sel(stressor=sp).values)
        rep.table(df, f"{sp} ({unit}) by region")
    gap = float(np.max(np.abs(acc.D_cba_reg - acc.D_pba_reg - acc.D_imp_reg + acc.D_exp_reg) /
                       np.maximum(np.abs(acc.D_cba_reg), 1e-12)))
    rep.add(f"Identity check `D_cba_reg = D_pba_reg + D_imp_reg - D_exp_reg`: largest relative gap {gap:.1e}.")
    # Figure: pba vs cba per region for three stressors
    fig, axes = subplots(1, 3, figsize=(13, 3.8))
    regions = list(mrio.regions)
    xs = np.arange(len(regions))
    for ax, sp in zip(axes, ("SO2", "PM2.5", "CO2")):
        ax.bar(xs - 0.2, acc.D_pba_reg.sel(stressor=sp), 0.4, label="production-based", color="#4c72b0")
        ax.bar(xs + 0.2, acc.D_cba_reg.sel(stressor=sp), 0.4, label="consumption-based", color="#dd8452")
        ax.set_xticks(xs, regions, rotation=30)
        ax.set_title(f"{sp} ({acc['unit'].sel(stressor=sp).values})")
        ax.set_ylim(0, 1.25 * ax.get_ylim()[1])  # headroom: the legend must not hide the tallest bar
    axes[0].legend(frameon=False, loc="upper center", ncol=2, fontsize=8)
    fig.suptitle("Production- vs consumption-based emissions (synthetic demo world)")
    rep.figure(fig, "pba_vs_cba", "Production- vs consumption-based emissions per region (synthetic).")
    # Figure: region-to-region burden
    fig, axes = subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"wspace": 0.35})
    for ax, sp in zip(axes, ("SO2", "CO2")):
        B = acc.burden.sel(stressor=sp).values
        im = ax.imshow(B, cmap="magma_r")
        ax.set_xticks(xs, regions, rotation=35)
        ax.set_yticks(xs, regions)
        ax.set_xlabel("final demand of (consumer)")
        ax.set_ylabel("emitted in")
        ax.set_title(f"{sp} burden matrix ({acc['unit'].sel(stressor=sp).values})")
        for i in range(len(regions)):
            for j in range(len(regions)):
                ax.text(j, i, f"{B[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if B[i, j] > 0.5 * B.max() else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Region-to-region burden: emitted in row region for final demand of column region (synthetic)")
    rep.figure(fig, "burden_matrix", "Region-to-region burden matrices E[r, s] = S_r L_rt y_ts (synthetic).")
    e = eebt(mrio).sel(stressor="SO2").to_pandas()
    e.index.name = "SO2 exporter \\ importer"
    rep.table(e, "Emissions embodied in bilateral trade (EEBT, SO2, kt): gross trade, first importer")
    fp = acc.final_producer.sel(stressor="CO2").sum("region").to_pandas()
    cons = acc.burden.sel(stressor="CO2").sum("region").to_pandas()
    view = fp.to_frame("final-producer view").join(cons.rename("consumer view").rename_axis("producer"))
    view.index.name = "region"
    rep.table(view, "CO2 (Mt) attributed to regions in the final-producer and consumer views (industries' emissions "
                    "only: the consumer view is D_cba_reg less the households' direct emissions F_Y)")


def run_demo(out: str | Path, *, quiet: bool = False, quick: bool = False, n_draws: int | None = None,
             cache_dir: str | Path | None = None, economy_only: bool = False, force: bool = False) -> Path:
    """Run the main job on the synthetic demo world and write `out/report.md` with figures.

    The whole chain: accounts and supply-chain structure of the demo economy; a reference-CTM ensemble
    and a trained emulator (with the held-out and adjoint checks); deaths per grid cell; the gradient
    query; attribution to consumers by three methods; Monte Carlo with 95% intervals.

    **Arguments:** `out` folder; `quick`: a coarse CTM grid, fewer runs and draws (minutes -> seconds, for
    tests); `n_draws`: Monte Carlo draws (default 10,000, or 200 with `quick`); `cache_dir`: where the CTM
    ensemble and the trained emulator are cached (default `out/cache`); `economy_only`: stop after the
    MRIO sections; `force`: overwrite files in `out` that the demo did not write.

    The demo records what it writes in `out/diffmrio-demo-manifest.json` (with sha256 hashes) and refuses,
    with `DemoOutputError`, to overwrite a file it did not write or that was changed since (unless `force`);
    an `out` that is a file or not writable raises `DemoOutputError` too.

    **Returns:** the path of the report.
    """
    out = Path(out)
    prepare_output_folder(out)
    cache = Path(cache_dir) if cache_dir else out / "cache"
    guard = OutputGuard(out, force=force, exempt=(cache,))
    guard.check(OUTPUTS)
    with write_guard(guard):
        return _run(out, quiet=quiet, quick=quick, n_draws=n_draws, cache=cache, economy_only=economy_only)


def _run(out: Path, *, quiet: bool, quick: bool, n_draws: int | None, cache: Path,
         economy_only: bool) -> Path:
    def log(msg: str) -> None:
        if not quiet:
            print(f"[diffmrio demo] {msg}", flush=True)

    t_start = time.perf_counter()
    world = demo_world(seed=0)
    log(f"demo world: {world.mrio.n_regions} regions x {world.mrio.n_sectors} sectors (synthetic)")
    rep = Report(out, "diffmrio demo report (synthetic demo world)")
    rep.add(
        "All numbers below come from the **synthetic** demo world (`diffmrio.datasets.demo_world(seed=0)`): "
        "six regions (coastal hubs Capital and Harbor; inland manufacturing Central, Basin, Northeast; energy "
        "exporter Steppe), twelve sectors, final demand including exports. They illustrate the methods and are "
        "not data about any real place."
    )
    _accounts_section(rep, world, out, log)

    supply_chain_section(rep, world, log)
    timings = {}
    if not economy_only:
        t0 = time.perf_counter()
        cfg = demo_config(quick)
        log("building the chain: reference-CTM ensemble and emulator training (cached after the first run)")
        dc = demo_chain(**cfg, cache_dir=cache, progress=not quiet)
        timings["chain build"] = time.perf_counter() - t0
        emulator_section(rep, dc, out, log)
        health_section(rep, dc, out, log)
        sensitivity_section(rep, dc, out, log)
        n = n_draws if n_draws is not None else (200 if quick else 10_000)
        res = attribution_and_mc_section(rep, dc, out, log, n, quiet)
        timings["monte carlo"] = res["mc_seconds"]
    rep.add(
        f"---\nGenerated by `diffmrio demo{' --quick' if quick else ''}` in {time.perf_counter() - t_start:.1f} s "
        f"on {platform.machine()} ({platform.system()}, {os.cpu_count()} cores), Python {platform.python_version()}"
        + (": " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) if timings else "") + "."
    )
    path = rep.write()
    log(f"report written: {path.resolve()}")
    return path
