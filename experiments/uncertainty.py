r"""Monte Carlo uncertainty through the whole chain: convergence of the reported intervals, contribution of each
uncertain input, and throughput (docs/science.md, section 6; the COBENEFIT study reports 10,000-draw 95% intervals).

1. **Convergence.** One [`monte_carlo`][diffmrio.chain.monte_carlo] run with the largest draw count N (inventories,
   GEMM theta, baseline mortality sampled; zero-out attribution of deaths to consumers per draw). Draws are
   i.i.d., so the first n draws are an n-draw Monte Carlo sample: the mean and 2.5/97.5 percentiles of total
   deaths and of every consumer's attribution are computed on nested prefixes n = 100, 300, 1,000, 3,000, 10,000
   and compared with the N-draw values. The Monte Carlo standard error of the mean, `sd/sqrt(n)`, is the
   yardstick.
2. **Contribution of each input.** The same chain with one input sampled at a time (inventories only, CRF
   only, baseline mortality only), the others at their central values; variance shares and 95% interval widths.
3. **Throughput**: draws per second of the full chain (including compilation).

Run: `python -m experiments.uncertainty --out DIR [--quick] [--draws N,N,...] [--cache DIR]`. On the demo world
every number is **synthetic**. Writes `DIR/report.md`, `DIR/figures/*.png`, `DIR/results/*.nc` atomically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import xarray as xr

import diffmrio
from diffmrio.demo import Report, subplots

from ._common import (
    demo_source,
    footer,
    load_demo,
    make_parser,
    parse,
    seed_or,
    show_progress,
    tag,
    write_netcdf_atomic,
)

NAME = "uncertainty"
FULL_SIZES = (100, 300, 1000, 3000, 10000)
QUICK_SIZES = (100, 300, 1000)
INPUTS = ("inventories", "CRF", "baseline mortality")


def prefix_stats(values: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """`[size, statistic(mean, p2.5, p97.5), ...]` of `values[draw, ...]` over its first n draws for each n."""
    v = np.asarray(values)
    return np.stack([np.stack([v[:n].mean(0), np.percentile(v[:n], 2.5, axis=0), np.percentile(v[:n], 97.5, axis=0)])
                     for n in sizes])


def first_stable(sizes: Sequence[int], rel_change, tol: float):
    """The smallest of `sizes[:-1]` from which every |relative change| vs the largest run stays below `tol`
    (`None` if none does)."""
    rel = np.abs(np.asarray(rel_change, dtype=float))
    for i in range(len(sizes) - 1):
        if np.all(rel[i:-1] < tol):
            return int(sizes[i])
    return None


def one_at_a_time_specs(chain, baseline_cv: float = 0.1) -> dict:
    """Uncertainty specs sampling one input each: inventories (the default CVs per species), the CRF (its
    own parameter draws), baseline mortality (`baseline_cv`), and all of them together."""
    zero = {s: 0.0 for s in chain.source_map.species}
    U = diffmrio.chain.UncertaintySpec
    return {
        "inventories": U.default(chain, baseline_cv=0.0, sample_crf=False),
        "CRF": U.default(chain, baseline_cv=0.0, species_cv=zero, sample_crf=True),
        "baseline mortality": U.default(chain, baseline_cv=baseline_cv, species_cv=zero, sample_crf=False),
        "all": U.default(chain, baseline_cv=baseline_cv, sample_crf=True),
    }


def _fig_convergence(sizes, tot_stats, rel_attr, ref, se, synthetic):
    fig, axes = subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.3})
    ax = axes[0]
    for k, (lab, c) in enumerate((("mean", "#4c72b0"), ("2.5th percentile", "#dd8452"), ("97.5th percentile", "#55a868"))):
        ax.plot(sizes, tot_stats[:, k], "o-", color=c, label=lab)
        ax.axhline(ref[k], color=c, ls=":", lw=0.8)
    ax.fill_between(sizes, ref[0] - 2 * se, ref[0] + 2 * se, color="#4c72b0", alpha=0.15, label="mean +- 2 MC s.e.")
    ax.set_xscale("log")
    ax.set_xlabel("number of draws n (nested prefixes)")
    ax.set_ylabel("total deaths yr-1")
    ax.set_title("Total deaths: mean and 95% interval vs n", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    ax = axes[1]
    for k, lab in enumerate(("mean", "p2.5", "p97.5")):  # the largest run itself (change 0) is left out
        ax.plot(sizes[:-1], np.maximum(100 * rel_attr[:-1, k], 1e-3), "o-", label=lab)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of draws n")
    ax.set_ylabel("max |change| vs largest run over consumers (%)")
    ax.set_title("Attribution by consumer: change vs the largest run", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    fig.suptitle(f"Monte Carlo convergence{tag(synthetic)}", fontsize=11)
    return fig


def _fig_contrib(names, widths, shares, synthetic):
    fig, axes = subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"wspace": 0.6})
    axes[0].barh(names, widths, color="#8172b2")
    axes[0].set_xlabel("95% interval width / mean (%)")
    axes[0].set_title("Interval of total deaths, one input sampled at a time", fontsize=10)
    axes[1].barh(names[:-1], shares, color="#64b5cd")
    axes[1].set_xlabel("variance share (% of the sum of one-at-a-time variances)")
    axes[1].set_title("Contribution to the variance of total deaths", fontsize=10)
    fig.suptitle(f"Which uncertain input matters{tag(synthetic)}", fontsize=11)
    return fig


def compute(
    chain,
    *,
    sizes: Sequence[int] = FULL_SIZES,
    n_one: int = 2000,
    inputs: Sequence[str] = INPUTS,
    seed: int = 0,
    chunk_size: int | str = "auto",
    progress: bool = True,
    synthetic: bool = True,
    source: str | None = None,
) -> xr.Dataset:
    """Every number of the uncertainty experiment, no figures.

    **Arguments:** `chain`: a `diffmrio.chain.Chain`; `sizes`: draw counts compared (nested prefixes of one run
    of `max(sizes)` draws); `n_one`: draws per one-at-a-time run; `inputs`: the inputs sampled one at a time
    (some of `INPUTS`; each run compiles the chain once, so tests pass fewer); `seed`; `chunk_size` of the vmapped draws;
    `synthetic`, `source`: recorded in the attributes for the report.

    **Returns:** an `xarray.Dataset`: `total_deaths[draw]`, `attribution[draw, consumer]` (zero-out, per draw),
    their prefix statistics `total_stats[size, statistic]`, `attribution_stats[size, statistic, consumer]`
    (`statistic` = mean, p2.5, p97.5), `total_rel_change`, `attribution_max_rel_change[size, statistic]` (vs the
    largest run), `mc_se_mean[size]`, `one_at_a_time[input, draw_one]` and per input `variance`,
    `width_pct`, `variance_share_pct` (of the sum of the one-at-a-time variances), with timings in `mc_seconds`,
    `one_seconds[input]`.

    **Raises:** `ValueError` for fewer than two sizes, a size below 2, `n_one < 2` or unknown `inputs`.
    """
    sizes = sorted(int(s) for s in sizes)
    if len(sizes) < 2 or sizes[0] < 2:
        raise ValueError(f"sizes must hold at least two draw counts >= 2, got {sizes}")
    n_one = int(n_one)
    if n_one < 2:
        raise ValueError(f"n_one must be >= 2, got {n_one}")
    inputs = list(inputs)
    if not inputs or any(k not in INPUTS for k in inputs):
        raise ValueError(f"inputs={inputs}: give some of {list(INPUTS)}")
    N = sizes[-1]
    key_main, key_one = jax.random.split(jax.random.key(seed))
    specs = one_at_a_time_specs(chain)

    t_mc = time.perf_counter()
    mc = diffmrio.chain.monte_carlo(chain, specs["all"], N, key=key_main, by="consumer", chunk_size=chunk_size,
                                    progress=progress)
    t_mc = time.perf_counter() - t_mc
    tot = mc.total_deaths.values
    attr = mc.attribution.values  # (draw, consumer)
    tot_stats = prefix_stats(tot, sizes)  # (size, stat)
    attr_stats = prefix_stats(attr, sizes)  # (size, stat, consumer)
    ref_tot, ref_attr = tot_stats[-1], attr_stats[-1]
    names = inputs + ["all"]
    one, t_one = [], []
    for name in names:
        k = (list(INPUTS) + ["all"]).index(name)  # the same key per input whichever inputs are run
        t1 = time.perf_counter()
        r = diffmrio.chain.monte_carlo(chain, specs[name], n_one, key=jax.random.fold_in(key_one, k), by=None,
                                        chunk_size=chunk_size, progress=progress)
        t_one.append(time.perf_counter() - t1)
        one.append(r.total_deaths.values)
    one = np.stack(one)  # (input, draw_one)
    var = one.var(axis=1, ddof=1)
    width = 100 * (np.percentile(one, 97.5, axis=1) - np.percentile(one, 2.5, axis=1)) / one.mean(axis=1)
    share = np.append(100 * var[:-1] / var[:-1].sum(), np.nan)
    d = "deaths yr-1"
    return xr.Dataset(
        {
            "total_deaths": (("draw",), tot, {"units": d}),
            "attribution": (("draw", "consumer"), attr, {"units": d, "long_name": "zero-out attribution to consumers"}),
            "total_stats": (("size", "statistic"), tot_stats, {"units": d}),
            "attribution_stats": (("size", "statistic", "consumer"), attr_stats, {"units": d}),
            "total_rel_change": (("size", "statistic"), (tot_stats - ref_tot) / ref_tot, {"units": "1"}),
            "attribution_max_rel_change": (("size", "statistic"),
                                           np.abs((attr_stats - ref_attr) / ref_attr).max(axis=2), {"units": "1"}),
            "mc_se_mean": (("size",), tot.std(ddof=1) / np.sqrt(np.asarray(sizes, float)),
                           {"units": d, "long_name": "Monte Carlo standard error of the mean, sd/sqrt(n)"}),
            "one_at_a_time": (("input", "draw_one"), one, {"units": d}),
            "variance": (("input",), var, {"units": "(deaths yr-1)2"}),
            "width_pct": (("input",), width, {"units": "%", "long_name": "95% interval width / mean"}),
            "variance_share_pct": (("input",), share, {"units": "%"}),
            "one_seconds": (("input",), np.asarray(t_one), {"units": "s"}),
        },
        coords={"draw": np.arange(N), "size": sizes, "statistic": ["mean", "p2.5", "p97.5"],
                "consumer": list(mc.group.values), "input": names, "draw_one": np.arange(n_one)},
        attrs={"synthetic": int(bool(synthetic)), "source": source or "chain", "seed": seed,
               "fraction_outside_envelope": float(mc.attrs.get("fraction_outside_envelope", np.nan)),
               "mc_seconds": t_mc, "chunk_size": str(chunk_size),
               "note": "statistics at size n use the first n draws of the N-draw run"},
    )  # fmt: skip


def report(ds: xr.Dataset, out: str | Path, *, seconds: float | None = None) -> Path:
    """Write `out/report.md`, `out/figures/*.png` and `out/results/uncertainty.nc` from
    [`compute`][experiments.uncertainty.compute]'s dataset. **Returns** the report path."""
    t0 = time.perf_counter()
    out = Path(out)
    synthetic = bool(ds.attrs["synthetic"])
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    write_netcdf_atomic(ds, results / "uncertainty.nc")
    sizes = [int(s) for s in ds["size"].values]
    N, n_one = sizes[-1], ds.sizes["draw_one"]
    tot_stats, rel_tot = ds.total_stats.values, ds.total_rel_change.values
    rel_attr, se = ds.attribution_max_rel_change.values, ds.mc_se_mean.values
    ref_tot = tot_stats[-1]
    consumers = list(ds.consumer.values)
    names = list(ds.input.values)
    var = dict(zip(names, ds.variance.values))
    inputs = names[:-1]
    shares = {k: float(ds.variance_share_pct.sel(input=k)) for k in inputs}
    t_mc = float(ds.attrs["mc_seconds"])
    t_all = float(ds.one_seconds.sel(input="all"))

    rep = Report(out, "Monte Carlo uncertainty: convergence, contributions and throughput" + tag(synthetic))
    rep.add(
        f"Data: {ds.attrs['source']}." + (" **All numbers and figures are synthetic.**" if synthetic else "") + "\n\n"
        "Sampled per draw (`UncertaintySpec.default`): emission inventories (mean-one lognormal per CTM species; "
        "CV 12% SO2, 31% NOx, 68% VOC, 107% primary PM from the EXPORT study's MEIC figures, 50% NH3), GEMM theta "
        "~ Normal(theta, SE) with one standard normal per cause, and baseline mortality (10% per cause). The "
        "COBENEFIT study reports 10,000-draw means with 95% intervals; this report asks how many draws such "
        "intervals need."
    )
    dft = pd.DataFrame({"mean": tot_stats[:, 0], "p2.5": tot_stats[:, 1], "p97.5": tot_stats[:, 2],
                        "mean change %": 100 * rel_tot[:, 0], "p2.5 change %": 100 * rel_tot[:, 1],
                        "p97.5 change %": 100 * rel_tot[:, 2], "MC s.e. of mean %": 100 * se / ref_tot[0],
                        "attribution max change % (mean)": 100 * rel_attr[:, 0],
                        "attribution max change % (p2.5)": 100 * rel_attr[:, 1],
                        "attribution max change % (p97.5)": 100 * rel_attr[:, 2]},
                       index=pd.Index(sizes, name="draws n"))
    rep.add(
        "## 1. Convergence with the number of draws\n\n"
        f"One run of N = {N:,} draws; the statistics at n use its first n draws (i.i.d., so a valid n-draw "
        "sample), compared with the N-draw values. Attribution: zero-out of deaths to each consumer region's "
        "final demand, per draw."
    )
    rep.table(dft, "Total deaths (yr-1): mean and 95% interval vs n, and changes vs the largest run")
    dfa = pd.DataFrame(ds.attribution_stats.values[-1].T, index=pd.Index(consumers, name="consumer"),
                       columns=["mean", "p2.5", "p97.5"])
    rep.table(dfa, f"Deaths attributed to each consumer (zero-out), {N:,} draws")
    stable_tot = [first_stable(sizes, rel_tot[:, k], 0.01) for k in range(3)]
    stable_att = [first_stable(sizes, rel_attr[:, k], 0.02) for k in range(3)]

    def _n(v):
        return f"{v:,}" if v is not None else f"none below {N:,}"

    rep.add(
        "- Smallest listed n from which every larger listed n stays within 1% of the "
        f"{N:,}-draw value, total deaths: mean {_n(stable_tot[0])}, 2.5th percentile {_n(stable_tot[1])}, "
        f"97.5th percentile {_n(stable_tot[2])}.\n"
        f"- The same within 2% for the worst consumer's attribution: mean {_n(stable_att[0])}, 2.5th percentile "
        f"{_n(stable_att[1])}, 97.5th percentile {_n(stable_att[2])}. The percentiles need more draws than the "
        "mean; the comparison with the largest run understates the error of the largest run itself "
        f"(its Monte Carlo s.e. of the mean: {100 * se[-1] / ref_tot[0]:.2f}%).\n"
        f"- Share of draws whose emulator inputs leave the training envelope: "
        f"{100 * ds.attrs['fraction_outside_envelope']:.1f}% (inventory factors of CV ~1 reach beyond the 0-2x "
        "design; those draws are extrapolations)."
    )
    rep.figure(_fig_convergence(np.asarray(sizes), tot_stats, rel_attr, ref_tot, se, synthetic), "convergence",
               f"Convergence of the Monte Carlo mean and 95% interval with the number of draws{tag(synthetic)}.")
    one = ds.one_at_a_time
    dfo = pd.DataFrame({"mean": one.mean("draw_one").values, "sd": np.sqrt(ds.variance.values),
                        "95% width / mean %": ds.width_pct.values, "variance share %": ds.variance_share_pct.values},
                       index=pd.Index(names, name="sampled input"))
    top = max(shares, key=shares.get)
    vsum = sum(var[k] for k in inputs)
    rep.add(
        "## 2. Contribution of each uncertain input\n\n"
        f"{n_one:,} draws each with one input sampled, the others at their central values; *all* samples every "
        "input. Variance shares are of the sum of the one-at-a-time variances (interactions make the *all* "
        "variance differ from that sum)."
    )
    rep.table(dfo, "Total deaths (yr-1) with one input sampled at a time")
    rep.add(f"- **{top} dominates** ({shares[top]:.0f}% of the variance). Sum of one-at-a-time variances / "
            f"variance with all inputs sampled: {vsum / var['all']:.2f}.")
    rep.figure(_fig_contrib(names, list(ds.width_pct.values), [shares[k] for k in inputs], synthetic),
               "contributions", f"Width of the 95% interval and variance share per uncertain input{tag(synthetic)}.")
    rep.add(
        "## 3. Throughput\n\n"
        f"- {N:,} draws with the per-draw attribution to {len(consumers)} consumers ({len(consumers) + 1} chain "
        f"evaluations per draw): {t_mc:.1f} s including compilation = **{N / t_mc:,.0f} draws/s**.\n"
        f"- {n_one:,} draws of total deaths only: {t_all:.1f} s = {n_one / t_all:,.0f} draws/s.\n"
        f"- Device: {jax.devices()[0].platform} ({len(jax.devices())} device(s)); chunk size {ds.attrs['chunk_size']}."
    )
    rep.add(footer(NAME, (seconds or 0.0) + time.perf_counter() - t0))
    return rep.write()


def headline(ds: xr.Dataset) -> dict:
    """The headline numbers of [`compute`][experiments.uncertainty.compute]'s dataset as a plain dict."""
    sizes = [int(s) for s in ds["size"].values]
    ref = ds.total_stats.values[-1]
    rel_tot, rel_attr = ds.total_rel_change.values, ds.attribution_max_rel_change.values
    N, n_one = sizes[-1], ds.sizes["draw_one"]
    return {
        "sizes": sizes, "total_mean": float(ref[0]), "total_interval": (float(ref[1]), float(ref[2])),
        "total_rel_change": {n: rel_tot[i].tolist() for i, n in enumerate(sizes)},
        "first_stable_total": [first_stable(sizes, rel_tot[:, k], 0.01) for k in range(3)],
        "first_stable_attribution": [first_stable(sizes, rel_attr[:, k], 0.02) for k in range(3)],
        "attribution_max_rel_change": {n: rel_attr[i].tolist() for i, n in enumerate(sizes)},
        "variance_share": {str(k): float(v) for k, v in zip(ds.input.values[:-1], ds.variance_share_pct.values[:-1])},
        "width_pct": {str(k): float(v) for k, v in zip(ds.input.values, ds.width_pct.values)},
        "throughput_draws_per_s": N / float(ds.attrs["mc_seconds"]),
        "throughput_plain_draws_per_s": n_one / float(ds.one_seconds.sel(input="all")),
    }  # fmt: skip


def run(
    out: str | Path,
    *,
    demo=None,
    quick: bool = False,
    cache_dir: str | Path | None = None,
    sizes: Sequence[int] | None = None,
    n_one: int | None = None,
    seed: int = 0,
    chunk_size: int | str = "auto",
    progress: bool = True,
) -> dict:
    """`compute` + `report` on the demo chain (`demo`, or built / loaded from `cache_dir`, full or `quick`);
    `sizes` default 100...10,000 (100, 300, 1,000 with `quick`), `n_one` 2,000 (300 with `quick`).

    **Returns:** the [headline][experiments.uncertainty.headline] numbers, `dataset` and `report`.
    """
    t0 = time.perf_counter()
    if demo is None:
        demo = load_demo(quick, cache_dir, progress)
    ds = compute(demo.chain, sizes=sizes if sizes is not None else (QUICK_SIZES if quick else FULL_SIZES),
                 n_one=n_one if n_one is not None else (300 if quick else 2000), seed=seed, chunk_size=chunk_size,
                 progress=progress, synthetic=True, source=demo_source(demo, quick))
    return headline(ds) | {"dataset": ds, "report": report(ds, out, seconds=time.perf_counter() - t0)}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = make_parser(__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="demo-chain cache folder")
    ap.add_argument("--draws", default=None, help="comma-separated draw counts (default 100,300,1000,3000,10000)")
    ap.add_argument("--one", type=int, default=None, help="draws per one-at-a-time run")
    args = parse(ap, argv, NAME)
    if args.mrio is not None or args.ceads is not None:
        ap.error("the uncertainty study needs the whole chain, which exists only for the demo world")
    sizes = None
    if args.draws:
        try:
            sizes = [int(s) for s in args.draws.split(",") if s.strip()]
        except ValueError:
            ap.error(f"--draws must be comma-separated integers, got {args.draws!r}")
    t0 = time.perf_counter()
    res = run(args.out, quick=args.quick, cache_dir=args.cache, sizes=sizes, n_one=args.one, seed=seed_or(args, 0),
              progress=show_progress(args))
    print(f"[{NAME}] report written in {time.perf_counter() - t0:.1f} s: {Path(res['report']).resolve()}")
    return res


if __name__ == "__main__":
    main()
