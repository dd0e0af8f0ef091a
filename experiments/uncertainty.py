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

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

import diffmrio  # noqa: E402
from diffmrio._io import write_netcdf_atomic  # noqa: E402
from diffmrio.demo._report import Report  # noqa: E402

from ._common import demo_source, footer, load_demo, make_parser, parse, seed_or, show_progress, tag  # noqa: E402

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
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"wspace": 0.3})
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
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"wspace": 0.6})
    axes[0].barh(names, widths, color="#8172b2")
    axes[0].set_xlabel("95% interval width / mean (%)")
    axes[0].set_title("Interval of total deaths, one input sampled at a time", fontsize=10)
    axes[1].barh(names[:-1], shares, color="#64b5cd")
    axes[1].set_xlabel("variance share (% of the sum of one-at-a-time variances)")
    axes[1].set_title("Contribution to the variance of total deaths", fontsize=10)
    fig.suptitle(f"Which uncertain input matters{tag(synthetic)}", fontsize=11)
    return fig


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
    """Run the uncertainty experiment; writes `out/report.md`, `out/figures/*.png`, `out/results/*.nc`.

    **Arguments:** `out` folder; `demo`: a built demo chain to reuse (default: build or load the demo chain);
    `sizes`: draw counts compared (default 100...10,000, or 100, 300, 1,000 with `quick`); `n_one`: draws per
    one-at-a-time run (default 2,000, or 300 with `quick`); `seed`; `chunk_size` of the vmapped draws.

    **Returns:** dict of headline quantities and `report`.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if demo is None:
        demo = load_demo(quick, cache_dir, progress)
    sizes = sorted(int(s) for s in (sizes if sizes is not None else (QUICK_SIZES if quick else FULL_SIZES)))
    if len(sizes) < 2 or sizes[0] < 2:
        raise ValueError(f"sizes must hold at least two draw counts >= 2, got {sizes}")
    n_one = int(n_one if n_one is not None else (300 if quick else 2000))
    if n_one < 2:
        raise ValueError(f"n_one must be >= 2, got {n_one}")
    chain = demo.chain
    synthetic = True
    N = sizes[-1]
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
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
    rel_tot = (tot_stats - ref_tot) / ref_tot
    rel_attr = np.abs((attr_stats - ref_attr) / ref_attr).max(axis=2)  # (size, stat)
    se = tot.std(ddof=1) / np.sqrt(np.asarray(sizes, float))

    one = {}
    t_one = {}
    for k, name in enumerate(INPUTS + ("all",)):
        t1 = time.perf_counter()
        r = diffmrio.chain.monte_carlo(chain, specs[name], n_one, key=jax.random.fold_in(key_one, k), by=None,
                                 chunk_size=chunk_size, progress=progress)
        t_one[name] = time.perf_counter() - t1
        one[name] = r.total_deaths.values
    var = {k: float(np.var(v, ddof=1)) for k, v in one.items()}
    width = {k: float(100 * (np.percentile(v, 97.5) - np.percentile(v, 2.5)) / v.mean()) for k, v in one.items()}
    vsum = sum(var[k] for k in INPUTS)
    shares = {k: 100 * var[k] / vsum for k in INPUTS}
    throughput = N / t_mc
    throughput_plain = n_one / t_one["all"]

    consumers = list(mc.group.values)
    ds = xr.Dataset(
        {
            "total_deaths": (("draw",), tot), "attribution": (("draw", "consumer"), attr),
            "total_stats": (("size", "statistic"), tot_stats),
            "attribution_stats": (("size", "statistic", "consumer"), attr_stats),
            "total_rel_change": (("size", "statistic"), rel_tot),
            "attribution_max_rel_change": (("size", "statistic"), rel_attr),
            "one_at_a_time": (("input", "draw_one"), np.stack([one[k] for k in INPUTS + ("all",)])),
        },
        coords={"draw": np.arange(N), "size": sizes, "statistic": ["mean", "p2.5", "p97.5"], "consumer": consumers,
                "input": list(INPUTS) + ["all"], "draw_one": np.arange(n_one)},
        attrs={"synthetic": int(synthetic), "source": demo_source(demo, quick), "seed": seed,
               "fraction_outside_envelope": float(mc.attrs.get("fraction_outside_envelope", np.nan)),
               "mc_seconds": t_mc, "note": "statistics at size n use the first n draws of the N-draw run"},
    )  # fmt: skip
    write_netcdf_atomic(ds, results / "uncertainty.nc")

    rep = Report(out, "Monte Carlo uncertainty: convergence, contributions and throughput" + tag(synthetic))
    rep.add(
        f"Data: {demo_source(demo, quick)}. **All numbers and figures are synthetic.**\n\n"
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
    dfa = pd.DataFrame(ref_attr.T, index=pd.Index(consumers, name="consumer"), columns=["mean", "p2.5", "p97.5"])
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
    names = list(INPUTS) + ["all"]
    dfo = pd.DataFrame({"mean": [one[k].mean() for k in names], "sd": [np.sqrt(var[k]) for k in names],
                        "95% width / mean %": [width[k] for k in names],
                        "variance share %": [shares.get(k, np.nan) for k in names]},
                       index=pd.Index(names, name="sampled input"))
    top = max(shares, key=shares.get)
    rep.add(
        "## 2. Contribution of each uncertain input\n\n"
        f"{n_one:,} draws each with one input sampled, the others at their central values; *all* samples every "
        "input. Variance shares are of the sum of the one-at-a-time variances (interactions make the *all* "
        "variance differ from that sum)."
    )
    rep.table(dfo, "Total deaths (yr-1) with one input sampled at a time")
    rep.add(f"- **{top} dominates** ({shares[top]:.0f}% of the variance). Sum of one-at-a-time variances / "
            f"variance with all inputs sampled: {vsum / var['all']:.2f}.")
    rep.figure(_fig_contrib(names, [width[k] for k in names], [shares[k] for k in INPUTS], synthetic), "contributions",
               f"Width of the 95% interval and variance share per uncertain input{tag(synthetic)}.")
    rep.add(
        "## 3. Throughput\n\n"
        f"- {N:,} draws with the per-draw attribution to {len(consumers)} consumers ({len(consumers) + 1} chain "
        f"evaluations per draw): {t_mc:.1f} s including compilation = **{throughput:,.0f} draws/s**.\n"
        f"- {n_one:,} draws of total deaths only: {t_one['all']:.1f} s = {throughput_plain:,.0f} draws/s.\n"
        f"- Device: {jax.devices()[0].platform} ({len(jax.devices())} device(s)); chunk size {chunk_size}."
    )
    rep.add(footer(NAME, time.perf_counter() - t0))
    return {
        "sizes": sizes, "total_mean": float(ref_tot[0]), "total_interval": (float(ref_tot[1]), float(ref_tot[2])),
        "total_rel_change": {n: rel_tot[i].tolist() for i, n in enumerate(sizes)},
        "first_stable_total": stable_tot, "first_stable_attribution": stable_att,
        "attribution_max_rel_change": {n: rel_attr[i].tolist() for i, n in enumerate(sizes)},
        "variance_share": shares, "width_pct": width, "throughput_draws_per_s": throughput,
        "throughput_plain_draws_per_s": throughput_plain, "report": rep.write(),
    }  # fmt: skip


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
