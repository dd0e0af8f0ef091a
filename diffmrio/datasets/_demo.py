r"""The synthetic demo world (docs/getting_started.md).

A deterministic, structured, **synthetic** economy of six regions and twelve sectors, built so that every
feature runs on a fresh machine without downloads. It is not data about any real place: it carries the
contrasts the studies report (coastal consumer hubs that import embodied pollution; inland manufacturing
provinces and an energy exporter with emission intensities several times the coastal ones in metals,
nonmetal minerals and power).

Construction: a national technical-coefficient pattern `T[i, j]` (inputs of product i per unit output of
sector j) is perturbed per region; each buying region sources product i from the producing regions with
shares that follow specialisation and distance; final demand per consuming region and category is sourced
the same way; exports stay in the exporting region's `export` column. Output then follows from
$x = (I - A)^{-1} y$, and `Z = A diag(x)`. Value added is the balancing item $x_j - \sum_i Z_{ij}$.
Units: money in billion CNY (synthetic), emissions in kt, CO2 in Mt, employment in thousand persons.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ctm_interface._vocabulary import DEMO_REGIONS as REGIONS
from ctm_interface.reference import demo_domain

from .._mrio import MRIO

#: The demo world's 12 sectors, in table order (its regions are `REGIONS`, the six demo regions).
SECTORS = (
    "agriculture", "mining", "power", "metals", "nonmetal", "chemicals",
    "light_mfg", "heavy_mfg", "construction", "transport", "trade", "services",
)  # fmt: skip
#: Final-demand categories of each region.
CATEGORIES = ("household", "government", "capital_formation", "export")
#: Satellite rows (stressors) of the demo table; their units are `UNITS`, in the same order.
STRESSORS = ("SO2", "NOx", "NH3", "VOC", "PM2.5", "BC", "OC", "CO2", "value_added", "employment")
#: Units of `STRESSORS`, in the same order.
UNITS = ("kt", "kt", "kt", "kt", "kt", "kt", "kt", "Mt", "billion CNY", "thousand persons")
#: The air-pollutant stressors (the first seven of `STRESSORS`), the chain's emission rows.
AIR_POLLUTANTS = STRESSORS[:7]
#: Sectors whose emissions leave tall stacks (the `elevated` emission level).
ELEVATED_SECTORS = ("power", "metals", "nonmetal", "chemicals")

# Region character: population (million), income level, coastal flag, position (x east, y north) on a unit map
_POP = np.array([60.0, 75.0, 90.0, 80.0, 45.0, 25.0])
_INCOME = np.array([2.2, 2.0, 1.0, 0.9, 1.0, 0.8])
_POS = np.array([[0.80, 0.60], [0.85, 0.30], [0.55, 0.45], [0.40, 0.25], [0.75, 0.85], [0.15, 0.70]])
_DIRTY = np.array([0.35, 0.40, 1.6, 1.8, 1.5, 2.2])  # intensity multiplier in power/metals/nonmetal
_OTHER = np.array([0.6, 0.65, 1.1, 1.2, 1.1, 1.3])  # intensity multiplier elsewhere

# Production capacity/specialisation by region (rows) and sector (cols): relative attractiveness as supplier
_SPEC = np.array([
    # agr  min  pow  met  non  che  lig  hea  con  tra  tra  ser
    [0.3, 0.1, 0.6, 0.3, 0.4, 0.8, 1.2, 1.3, 1.0, 1.2, 1.6, 2.2],  # Capital
    [0.5, 0.1, 0.7, 0.5, 0.5, 1.2, 2.0, 1.6, 1.0, 1.5, 1.6, 1.8],  # Harbor
    [1.3, 0.8, 1.2, 1.5, 1.6, 1.0, 1.0, 1.2, 1.0, 1.0, 0.9, 0.8],  # Central
    [1.6, 0.9, 1.1, 1.3, 1.5, 0.9, 0.8, 0.9, 1.0, 0.9, 0.8, 0.7],  # Basin
    [1.2, 1.2, 1.3, 2.0, 1.3, 1.1, 0.6, 1.5, 1.0, 0.9, 0.8, 0.7],  # Northeast
    [0.8, 3.5, 2.5, 1.0, 0.9, 0.8, 0.3, 0.4, 1.0, 0.7, 0.5, 0.5],  # Steppe
])  # fmt: skip
# How tradable each product is across regions (0: local only)
_TRADABLE = np.array([0.5, 0.9, 0.6, 0.8, 0.5, 0.8, 0.8, 0.8, 0.05, 0.3, 0.2, 0.15])

# National input structure T[i, j]: input of product i per unit output of sector j (column sums ~0.45-0.75)
_T = np.zeros((12, 12))
_inputs = {
    "agriculture": {"agriculture": 0.15, "chemicals": 0.08, "power": 0.02, "transport": 0.03, "trade": 0.03, "services": 0.03},
    "mining": {"mining": 0.08, "power": 0.08, "metals": 0.04, "heavy_mfg": 0.06, "transport": 0.04, "services": 0.06},
    "power": {"mining": 0.32, "power": 0.08, "heavy_mfg": 0.06, "construction": 0.02, "transport": 0.05, "services": 0.06},
    "metals": {"mining": 0.22, "power": 0.09, "metals": 0.25, "nonmetal": 0.02, "chemicals": 0.03, "transport": 0.05, "trade": 0.03, "services": 0.04},
    "nonmetal": {"mining": 0.15, "power": 0.10, "nonmetal": 0.12, "chemicals": 0.04, "heavy_mfg": 0.03, "transport": 0.06, "services": 0.05},
    "chemicals": {"agriculture": 0.03, "mining": 0.14, "power": 0.06, "chemicals": 0.28, "transport": 0.04, "trade": 0.03, "services": 0.06},
    "light_mfg": {"agriculture": 0.18, "power": 0.03, "chemicals": 0.10, "light_mfg": 0.22, "transport": 0.04, "trade": 0.05, "services": 0.06},
    "heavy_mfg": {"power": 0.03, "metals": 0.20, "chemicals": 0.05, "light_mfg": 0.03, "heavy_mfg": 0.26, "transport": 0.03, "trade": 0.04, "services": 0.07},
    "construction": {"metals": 0.14, "nonmetal": 0.16, "chemicals": 0.03, "heavy_mfg": 0.09, "construction": 0.03, "transport": 0.05, "trade": 0.03, "services": 0.08},
    "transport": {"chemicals": 0.18, "heavy_mfg": 0.06, "transport": 0.08, "power": 0.02, "trade": 0.02, "services": 0.10},
    "trade": {"power": 0.02, "transport": 0.06, "light_mfg": 0.03, "trade": 0.06, "services": 0.15},
    "services": {"power": 0.03, "light_mfg": 0.04, "transport": 0.04, "trade": 0.04, "services": 0.20, "heavy_mfg": 0.02},
}  # fmt: skip
for _j, _row in _inputs.items():
    for _i, _v in _row.items():
        _T[SECTORS.index(_i), SECTORS.index(_j)] = _v

# Direct intensities at national average (kt per billion CNY output; CO2 Mt per billion CNY)
_INT = {
    #               SO2    NOx    NH3    VOC    PM2.5  BC     OC     CO2
    "agriculture": (0.02, 0.04, 0.90, 0.05, 0.10, 0.010, 0.040, 0.03),
    "mining": (0.10, 0.08, 0.00, 0.05, 0.12, 0.010, 0.010, 0.12),
    "power": (0.45, 0.60, 0.01, 0.02, 0.12, 0.004, 0.004, 4.50),
    "metals": (0.22, 0.20, 0.01, 0.06, 0.20, 0.020, 0.020, 1.20),
    "nonmetal": (0.25, 0.35, 0.01, 0.05, 0.35, 0.030, 0.030, 1.40),
    "chemicals": (0.08, 0.07, 0.05, 0.35, 0.05, 0.003, 0.006, 0.40),
    "light_mfg": (0.02, 0.02, 0.01, 0.25, 0.02, 0.002, 0.006, 0.05),
    "heavy_mfg": (0.02, 0.02, 0.00, 0.15, 0.03, 0.003, 0.004, 0.06),
    "construction": (0.005, 0.03, 0.00, 0.10, 0.06, 0.006, 0.008, 0.03),
    "transport": (0.02, 0.45, 0.01, 0.12, 0.04, 0.015, 0.008, 0.45),
    "trade": (0.003, 0.005, 0.00, 0.02, 0.004, 0.0005, 0.001, 0.02),
    "services": (0.003, 0.005, 0.00, 0.02, 0.004, 0.0005, 0.001, 0.02),
}  # fmt: skip
# Direct emissions of households per billion CNY of household final demand (residential fuel, vehicles)
_HH_INT = np.array([0.04, 0.05, 0.02, 0.06, 0.10, 0.02, 0.05, 0.08])
# Value added per employee (billion CNY per thousand persons) by sector at national average
_PRODUCTIVITY = np.array([0.03, 0.30, 0.50, 0.35, 0.25, 0.40, 0.18, 0.30, 0.12, 0.20, 0.15, 0.22])


class DemoWorld(eqx.Module):
    """The synthetic demo world: an MRIO plus the region attributes later layers need.

    **Fields:**

    - `mrio`: the [`MRIO`][diffmrio.MRIO] (6 regions x 12 sectors, 4 final-demand categories including
      `export`, stressors SO2, NOx, NH3, VOC, PM2.5, BC, OC, CO2, value added, employment).
    - `population`: persons per region, shape `(R,)`.
    - `elevated`: 1.0 for sectors whose emissions leave through stacks (power, metals, nonmetal,
      chemicals), shape `(N,)`; the source map of the chain uses it.
    - `geography`: the CTM domain on which the world sits (grid, region fractions, gridded
      population, allocation weights); `None` when built without it.
    - `synthetic`: always `True`: reports label every figure from this world as synthetic.
    """

    mrio: MRIO
    population: np.ndarray
    elevated: np.ndarray
    geography: object = None
    synthetic: bool = eqx.field(static=True, default=True)


def _shares(rng, attract: np.ndarray, dist: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """Sourcing shares `sh[r, s, i]`: share of product i bought by region s that comes from region r."""
    R, N = attract.shape
    sh = np.empty((R, R, N))
    for i in range(N):
        w = attract[:, i][:, None] * np.exp(-dist / 0.35)  # (r, s)
        w = w * (1.0 + 0.1 * rng.random((R, R)))
        w = w / w.sum(axis=0, keepdims=True)
        local = np.eye(R)
        sh[:, :, i] = (1 - tradable[i]) * local + tradable[i] * w
    return sh


def demo_positions() -> dict[str, tuple[float, float]]:
    """Positions of the demo world's six regions on its unit map (x east, y north), the map from which
    [`demo_world`][diffmrio.datasets.demo_world] takes the distances that shape its trade shares.

    Use them for a distance-based model on the demo world (e.g. `diffmrio.tables.distance_matrix` for the
    gravity prior of `diffmrio.tables.gravity_ras_rebuild`). Synthetic, like the world.

    **Returns:** `{region: (x, y)}` in the order of `REGIONS`.
    """
    return {r: (float(p[0]), float(p[1])) for r, p in zip(REGIONS, _POS, strict=True)}


def demo_world(seed: int = 0, *, geography: bool = True) -> DemoWorld:
    """Build the synthetic demo world deterministically (a fraction of a second).

    **Arguments:**

    - `seed`: seeds the small random perturbations (same seed, same world).
    - `geography`: attach the reference CTM's demo domain (grid, region fractions, population grid)
      when `ctm_interface.reference` is available.

    **Returns:** a [`DemoWorld`][diffmrio.datasets.DemoWorld].
    """
    rng = np.random.default_rng(seed)
    R, N, K = len(REGIONS), len(SECTORS), len(CATEGORIES)
    dist = np.linalg.norm(_POS[:, None, :] - _POS[None, :, :], axis=-1)
    # regional technologies: dirtier regions use more energy inputs
    T = np.empty((R, N, N))
    for s in range(R):
        pert = np.exp(0.08 * rng.standard_normal((N, N)))
        energy = np.ones((N, 1))
        energy[[SECTORS.index("mining"), SECTORS.index("power")]] = 0.8 + 0.2 * _DIRTY[s]
        T[s] = _T * pert * energy
    sh = _shares(rng, _SPEC, dist, _TRADABLE)
    A = np.zeros((R, N, R, N))
    for r in range(R):
        for s in range(R):
            A[r, :, s, :] = T[s] * sh[r, s, :][:, None]
    A = A.reshape(R * N, R * N)
    # final demand by consuming region and category (billion CNY)
    size = _POP * _INCOME * 60.0  # GDP-like scale
    hh = np.array([0.08, 0.0, 0.0, 0.0, 0.0, 0.02, 0.25, 0.06, 0.0, 0.06, 0.18, 0.35])
    gov = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.03, 0.05, 0.05, 0.05, 0.80])
    cap = np.array([0.0, 0.0, 0.0, 0.02, 0.03, 0.0, 0.02, 0.25, 0.60, 0.02, 0.02, 0.04])
    exp_mix = np.array([0.04, 0.02, 0.0, 0.12, 0.04, 0.12, 0.30, 0.30, 0.0, 0.03, 0.01, 0.02])
    export_scale = np.array([0.30, 0.55, 0.20, 0.12, 0.18, 0.10])
    Y = np.zeros((R, N, R, K))
    for s in range(R):
        for k, (mix, frac) in enumerate(((hh, 0.45), (gov, 0.15), (cap, 0.40))):
            d = size[s] * frac * mix * np.exp(0.05 * rng.standard_normal(N))
            Y[:, :, s, k] = sh[:, s, :] * d[None, :]
        ex = size[s] * export_scale[s] * exp_mix * _SPEC[s] / (_SPEC[s] * exp_mix).sum() * exp_mix.sum()
        Y[s, :, s, 3] = ex
    Y = Y.reshape(R * N, R * K)
    x = np.linalg.solve(np.eye(R * N) - A, Y.sum(axis=1))
    Z = A * x[None, :]
    # satellite accounts
    base = np.array([_INT[sec] for sec in SECTORS])  # (N, 8)
    dirty_sector = np.isin(SECTORS, ("power", "metals", "nonmetal"))
    mult = np.where(dirty_sector[None, :], _DIRTY[:, None], _OTHER[:, None])  # (R, N)
    noise = np.exp(0.1 * rng.standard_normal((R, N, 8)))
    inten = base[None, :, :] * mult[:, :, None] * noise  # (R, N, 8)
    inten[:, :, 7] *= 0.2  # CO2: the table above is in units of 5 Mt per billion CNY
    # NH3 follows agriculture, not industrial dirtiness
    inten[:, :, 2] = base[None, :, 2] * noise[:, :, 2]
    inten[:, :, 4] = np.maximum(inten[:, :, 4], inten[:, :, 5] + inten[:, :, 6] + 1e-4)  # PM2.5 >= BC + OC
    F_air = (inten * x.reshape(R, N)[:, :, None]).reshape(R * N, 8).T  # (8, n)
    va = x - Z.sum(axis=0)
    prod = _PRODUCTIVITY[None, :] * (0.5 + 0.5 * _INCOME[:, None])
    emp = va.reshape(R, N) / prod
    F = np.vstack([F_air, va[None, :], emp.reshape(1, -1)])
    F_Y = np.zeros((len(STRESSORS), R * K))
    hh_spend = Y.reshape(R * N, R, K)[:, :, 0].sum(axis=0)  # (R,)
    rural = np.array([0.5, 0.4, 1.2, 1.3, 1.1, 1.5])  # residential solid-fuel use
    for s in range(R):
        F_Y[:8, s * K] = _HH_INT * hh_spend[s] * rural[s]
    F_Y[4, :] = np.maximum(F_Y[4, :], F_Y[5, :] + F_Y[6, :])
    mrio = MRIO.from_arrays(
        Z, Y, F, F_Y, regions=REGIONS, sectors=SECTORS, categories=CATEGORIES,
        stressors=STRESSORS, units=UNITS, name="demo world (synthetic)",
    )  # fmt: skip
    geo = None
    if geography:
        geo = demo_domain(seed=seed)
    elevated = np.isin(SECTORS, ELEVATED_SECTORS).astype(np.float64)
    return DemoWorld(mrio=mrio, population=_POP * 1e6, elevated=elevated, geography=geo)
