r"""A second stand-in CTM, built differently from the reference CTM on purpose, so that emulators can be judged
on a model they were not developed against. Synthetic: plausible magnitudes, not a validated air-quality model.

What differs from `ctm_interface.reference` (and nothing of its code is used):

- **transport**: one well-mixed boundary layer on a 30 x 40 grid of 50 km cells, advected and diffused
  *spectrally* (each step a convolution, by `jnp.fft`, with the advection-diffusion Green's function of a
  uniform seasonal wind: a displaced Gaussian, sampled and normalised, so mass is conserved and
  concentrations stay non-negative) on a doubly periodic domain, with first-order ventilation to the free troposphere and a sponge along
  the edges that removes what would re-enter (the reference: two layers, flux-form upwind advection by
  spatially varying winds, open boundaries);
- **seasons**: three wind/chemistry regimes (winter, summer, autumn), each averaged over its last third of
  steps (the reference: four seasons, end-of-season states);
- **chemistry**: OH bell-shaped in the NOx/VOC ratio (NOx-limited below, titration above), H2O2 suppressed
  by NOx; sulfate from gas-phase OH oxidation plus *oxidant-limited aqueous* oxidation in clouds
  ($\propto SO_2 H_2O_2 / (SO_2 + H_2O_2)$, sub-linear in SO2); nitric acid from OH and from night-time
  N2O5 hydrolysis (quadratic in NOx at low NOx); secondary organic aerosol from VOC with a NOx-dependent
  yield; an ammonia-rich regime (large agricultural NH3);
- **partitioning**: a different smooth kernel: ammonium sulfate $A_s = 2S(1 - e^{-T_A/2S})$, ammonium
  nitrate $n = T_N F / (T_N + F + K(T))$ from the free ammonia $F = T_A - A_s$;
- **regions and species**: 8 source/receptor regions x 6 species (SO2, NOx, NH3, VOC, EC, OM); components
  SO4, NO3, NH4, EC, OM, SOA (OM is organic matter, PM2.5 weight 1).

Every step is smooth, so `jax.grad` through the model is its exact adjoint.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, Float

from .._regions import region_kernel, spread_to_grid

#: The spectral world's 8 source and receptor regions.
REGIONS: tuple[str, ...] = ("Delta", "Plain", "Uplands", "Coast", "Valley", "Lakes", "Ridge", "Frontier")
#: Emitted species (EC and OM are primary carbonaceous particles).
SPECIES: tuple[str, ...] = ("SO2", "NOx", "NH3", "VOC", "EC", "OM")
#: PM2.5 components of its output (SOA: secondary organic aerosol).
COMPONENTS: tuple[str, ...] = ("SO4", "NO3", "NH4", "EC", "OM", "SOA")
#: The seasons it simulates.
SEASONS: tuple[str, ...] = ("winter", "summer", "autumn")
#: tracers: SO2, SO4, NOx (ug m-3 of themselves, NOx as NO2), total nitrate and total ammonia (umol m-3),
#: VOC, SOA, EC, OM (ug m-3)
TRACERS: tuple[str, ...] = ("SO2", "SO4", "NOx", "TNO3", "TNH3", "VOC", "SOA", "EC", "OM")
_T = {n: i for i, n in enumerate(TRACERS)}
_KT_PER_YR_TO_UG_PER_S = 1e15 / (365.0 * 86400.0)
_M = {"SO2": 64.066, "SO4": 96.06, "NO2": 46.006, "NH3": 17.031, "NO3": 62.005, "NH4": 18.039}


def _inorganic(so4_ug, ta, tn, k):
    """(ammonium, nitrate) in umol m-3: sulfate binds ammonia first, the free ammonia forms ammonium nitrate."""
    s2 = 2.0 * so4_ug / _M["SO4"] + 1e-12
    bound = s2 * -jnp.expm1(-ta / s2)
    free = ta - bound
    nitrate = tn * free / (tn + free + k)
    return bound + nitrate, nitrate


class SpectralCTM(eqx.Module):
    """The second stand-in CTM (see the module docstring). Construct with `SpectralCTM.default()`.

    **Fields** (leading `season=3` axis where seasonal): `wind` `(season, 2)` (u, v in m/s), `kh` `(season,)`
    (m2/s), `h_bl` `(season,)` (m), `ventilation` `(season,)` (1/s), `sponge` `(row, col)` (1/s),
    `temperature` `(season, row, col)` (K), `cloud` `(season, row, col)` (cloud fraction), `oh_max`, `h2o2_max`,
    `bvoc` `(season,)`, rates `k_so2_oh`, `k_so2_aq`, `k_nox_oh`, `k_n2o5`, `k_voc` (1/s), SOA yields,
    deposition rates `dep_gas`, `dep_particle`, `dep_nh3`, `dep_hno3` (1/s); static `dt` (s), `n_steps`.
    """

    wind: Float[Array, "season 2"]
    kh: Float[Array, " season"]
    h_bl: Float[Array, " season"]
    ventilation: Float[Array, " season"]
    sponge: Float[Array, "row col"]
    temperature: Float[Array, "season row col"]
    cloud: Float[Array, "season row col"]
    oh_max: Float[Array, " season"]
    h2o2_max: Float[Array, " season"]
    bvoc: Float[Array, " season"]
    k_so2_oh: Float[Array, ""]
    k_so2_aq: Float[Array, ""]
    k_nox_oh: Float[Array, ""]
    k_n2o5: Float[Array, " season"]
    k_voc: Float[Array, ""]
    soa_yield_low_nox: Float[Array, ""]
    soa_yield_high_nox: Float[Array, ""]
    dep_gas: Float[Array, ""]
    dep_particle: Float[Array, ""]
    dep_nh3: Float[Array, ""]
    dep_hno3: Float[Array, ""]
    shape: tuple[int, int] = eqx.field(static=True, default=(30, 40))
    dx: float = eqx.field(static=True, default=50_000.0)
    dt: float = eqx.field(static=True, default=10800.0)
    n_steps: int = eqx.field(static=True, default=48)

    @classmethod
    def default(cls, n_days: float = 6.0, dt: float = 10800.0) -> SpectralCTM:
        """Synthetic defaults: winter north-westerly (shallow, cold, slow chemistry, N2O5 nitrate), summer
        southerly (deep, warm, fast photochemistry, clouds), autumn westerly."""
        ny, nx = 30, 40
        y, x = np.meshgrid(np.arange(ny) / ny, np.arange(nx) / nx, indexing="ij")
        edge = np.minimum.reduce([x, 1 - x, y, 1 - y]) * np.array([nx, ny]).min()
        sponge = 1.0 / (4 * 3600.0) * np.exp(-np.maximum(edge - 0.5, 0) / 1.2)
        temp0 = np.array([268.0, 298.0, 284.0])
        temperature = temp0[:, None, None] - 8.0 * (y[None] - 0.5)
        cloud = np.stack(
            [0.15 + 0.1 * x, 0.3 + 0.25 * np.exp(-((x - 0.7) ** 2 + (y - 0.3) ** 2) / 0.05), 0.2 + 0.1 * y]
        )
        f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
        return cls(
            wind=f([[3.0, -2.0], [-0.5, 2.5], [2.5, 0.5]]),
            kh=f([2.0e4, 3.0e4, 2.5e4]),
            h_bl=f([500.0, 1300.0, 800.0]),
            ventilation=f([1 / (3.0 * 86400), 1 / (1.2 * 86400), 1 / (2.0 * 86400)]),
            sponge=f(sponge),
            temperature=f(temperature),
            cloud=f(cloud),
            oh_max=f([0.3, 1.0, 0.6]),
            h2o2_max=f([0.5, 3.0, 1.2]),
            bvoc=f([0.5, 6.0, 2.0]),
            k_so2_oh=f(4.0e-6),
            k_so2_aq=f(2.5e-5),
            k_nox_oh=f(2.0e-5),
            k_n2o5=f([3.0e-6, 0.3e-6, 1.5e-6]),
            k_voc=f(1.5e-5),
            soa_yield_low_nox=f(0.15),
            soa_yield_high_nox=f(0.05),
            dep_gas=f(1.0e-6),
            dep_particle=f(2.5e-6),
            dep_nh3=f(1.5e-5),
            dep_hno3=f(2.5e-5),
            shape=(ny, nx),
            dx=50_000.0,
            dt=float(dt),
            n_steps=max(3, int(round(n_days * 86400.0 / dt))),
        )

    # ------------------------------------------------------------------ pieces
    def _transport_factor(self, s):
        """Fourier transform of one step's transport kernel: the advection-diffusion Green's function (a
        Gaussian displaced by the wind) sampled on the periodic grid and normalised, so transport conserves
        mass and keeps concentrations non-negative (the exact spectral phase shift would ring)."""
        ny, nx = self.shape
        oy = (np.arange(ny) + ny // 2) % ny - ny // 2  # periodic offsets (cells)
        ox = (np.arange(nx) + nx // 2) % nx - nx // 2
        OY, OX = np.meshgrid(oy * self.dx, ox * self.dx, indexing="ij")
        var = 2.0 * self.kh[s] * self.dt + (0.25 * self.dx) ** 2
        u, v = self.wind[s, 0], self.wind[s, 1]
        kern = jnp.exp(-((OX - u * self.dt) ** 2 + (OY - v * self.dt) ** 2) / (2.0 * var))
        return jnp.fft.fft2(kern / jnp.sum(kern))

    def _chemistry(self, c, s):
        dt = self.dt
        so2, so4, nox, tn, ta, voc, soa, ec, om = (c[i] for i in range(len(TRACERS)))
        voc_tot = voc + self.bvoc[s]
        q = nox / (0.8 * voc_tot)
        oh = self.oh_max[s] * 2.0 * q / (1.0 + q * q) + 0.05 * self.oh_max[s]  # bell in log(NOx/VOC)
        h2o2 = self.h2o2_max[s] * voc_tot / (voc_tot + 1.5 * nox)  # ug m-3 SO2-equivalent capacity
        aq = self.k_so2_aq * self.cloud[s] * h2o2 / (so2 + h2o2 + 1e-9)
        k_so2 = self.k_so2_oh * oh + aq
        d_so2 = so2 * -jnp.expm1(-k_so2 * dt)
        k_nox = self.k_nox_oh * oh + self.k_n2o5[s] * nox / (nox + 2.0)
        d_nox = nox * -jnp.expm1(-k_nox * dt)
        d_voc = voc * -jnp.expm1(-self.k_voc * oh * dt)
        yld = self.soa_yield_high_nox + (self.soa_yield_low_nox - self.soa_yield_high_nox) / (1.0 + nox / 4.0)
        so2 = so2 - d_so2
        so4 = so4 + d_so2 * _M["SO4"] / _M["SO2"]
        nox = nox - d_nox
        tn = tn + d_nox / _M["NO2"]
        voc = voc - d_voc
        soa = soa + yld * d_voc
        # partitioning, then deposition of each phase
        k_eq = 0.02 * jnp.exp(0.09 * (self.temperature[s] - 285.0))
        nh4, no3 = _inorganic(so4, ta, tn, k_eq)
        gas_lost = lambda k: -jnp.expm1(-k * dt)  # noqa: E731
        ta = ta - (ta - nh4) * gas_lost(self.dep_nh3) - nh4 * gas_lost(self.dep_particle)
        tn = tn - (tn - no3) * gas_lost(self.dep_hno3) - no3 * gas_lost(self.dep_particle)
        keep_p = jnp.exp(-self.dep_particle * dt)
        keep_g = jnp.exp(-self.dep_gas * dt)
        return jnp.stack([so2 * keep_g, so4 * keep_p, nox * keep_g, tn, ta, voc * keep_g, soa * keep_p,
                          ec * keep_p, om * keep_p])  # fmt: skip

    def _season(self, source, s):
        """Mean state over the last third of the season's steps (c[tracer, row, col])."""
        fac = self._transport_factor(s)
        loss = jnp.exp(-(self.ventilation[s] + self.sponge) * self.dt)
        add = source * (self.dt / self.h_bl[s])
        n_avg = max(1, self.n_steps // 3)

        def step(carry, i):
            c, acc = carry
            c = c + add
            c = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(c) * fac)) * loss
            c = self._chemistry(c, s)
            acc = acc + jnp.where(i >= self.n_steps - n_avg, 1.0, 0.0) * c
            return (c, acc), None

        c0 = jnp.zeros_like(source)
        (_, acc), _ = jax.lax.scan(jax.checkpoint(step), (c0, c0), jnp.arange(self.n_steps))
        return acc / n_avg

    def run(self, E: Float[Array, "species row col"]) -> Float[Array, "component row col"]:
        """Annual mean PM2.5 components `C[component, row, col]` (ug m-3) for emissions `E[species, row, col]`
        (kt/yr per cell, species as `SPECIES`)."""
        E = jnp.asarray(E, jnp.float64)
        if E.shape != (len(SPECIES), *self.shape):
            raise ValueError(
                f"SpectralCTM.run: `E` must have shape {(len(SPECIES), *self.shape)} = (species {SPECIES}, row, "
                f"col) in kt/yr per cell, got {E.shape}"
            )
        flux = E * _KT_PER_YR_TO_UG_PER_S / (self.dx * self.dx)  # ug m-2 s-1
        src = jnp.zeros((len(TRACERS), *self.shape))
        for sp, tr, fac in (("SO2", "SO2", 1.0), ("NOx", "NOx", 1.0), ("NH3", "TNH3", 1.0 / _M["NH3"]),
                            ("VOC", "VOC", 1.0), ("EC", "EC", 1.0), ("OM", "OM", 1.0)):  # fmt: skip
            src = src.at[_T[tr]].set(flux[SPECIES.index(sp)] * fac)
        cs = [self._season(src, s) for s in range(len(SEASONS))]
        c = jnp.mean(jnp.stack(cs), axis=0)
        nh4, no3 = _inorganic(c[_T["SO4"]], c[_T["TNH3"]], c[_T["TNO3"]], 0.02)
        return jnp.stack(
            [c[_T["SO4"]], _M["NO3"] * no3, _M["NH4"] * nh4, c[_T["EC"]], c[_T["OM"]], c[_T["SOA"]]]
        )


def _padded(f, batch, *arrays):
    """f on a batch padded to `batch` rows (one compiled shape), the padding dropped."""
    n = len(arrays[0])
    padded = [np.concatenate([a, np.repeat(a[-1:], batch - n, axis=0)]) if n < batch else a for a in arrays]
    return np.asarray(f(*(jnp.asarray(a) for a in padded)))[:n]


@dataclasses.dataclass(frozen=True, eq=False)
class SpectralWorld:
    """The second stand-in CTM on its synthetic domain, at source level: inputs `scale[region, species]`
    (factors on the base emissions), outputs `y[component, receptor]` (population-weighted receptor means).

    Construct with `SpectralWorld.default()`; fields: `ctm`, `base_emissions[region, species]` (kt/yr),
    `allocation[region, row, col]` (each region's emission pattern, sums to 1), `population[row, col]`,
    `receptor_weights[region, row, col]` (population share of each cell within the region).
    """

    ctm: SpectralCTM
    base_emissions: np.ndarray
    allocation: np.ndarray
    population: np.ndarray
    receptor_weights: np.ndarray
    regions: tuple[str, ...] = REGIONS
    species: tuple[str, ...] = SPECIES
    components: tuple[str, ...] = COMPONENTS

    @classmethod
    def default(cls, ctm: SpectralCTM | None = None) -> SpectralWorld:
        ctm = SpectralCTM.default() if ctm is None else ctm
        ny, nx = ctm.shape
        rng = np.random.default_rng(2024)
        centres = np.array([[0.25, 0.2], [0.5, 0.35], [0.3, 0.7], [0.75, 0.15], [0.65, 0.6], [0.8, 0.85],
                            [0.45, 0.9], [0.15, 0.45]]) * np.array([ny, nx])  # fmt: skip
        yy, xx = np.meshgrid(np.arange(ny) + 0.5, np.arange(nx) + 0.5, indexing="ij")
        d2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
        owner = np.argmin(d2, axis=0)
        mask = (owner[None] == np.arange(len(REGIONS))[:, None, None]).astype(float)
        city = np.exp(-d2 / (2 * 2.0**2))
        alloc = mask * (0.2 + city)
        alloc /= alloc.sum(axis=(1, 2), keepdims=True)
        population = spread_to_grid(rng.uniform(2e6, 2e7, len(REGIONS)), alloc) + 1e3
        w = mask * population[None]
        # kt/yr per region: SO2, NOx, NH3, VOC, EC, OM (an NH3-rich, agricultural profile)
        profile = np.array([300.0, 350.0, 320.0, 500.0, 25.0, 60.0])
        base = profile[None] * rng.uniform(0.4, 1.6, (len(REGIONS), len(SPECIES)))
        return cls(ctm, base, alloc, population, w / w.sum(axis=(1, 2), keepdims=True))

    def emissions(self, scale):
        """scale[region, species] -> E[species, row, col] (kt/yr per cell)."""
        return spread_to_grid((jnp.asarray(scale) * jnp.asarray(self.base_emissions)).T, jnp.asarray(self.allocation))

    def receptor_means(self, scale) -> Float[Array, "component receptor"]:
        """y[component, receptor] for one scale[region, species] (differentiable)."""
        c = self.ctm.run(self.emissions(scale))
        return region_kernel(c, jnp.asarray(self.receptor_weights))

    @functools.cached_property
    def _batched_run(self):
        return jax.jit(jax.vmap(self.receptor_means))

    @functools.cached_property
    def _batched_adjoint(self):
        return jax.jit(jax.vmap(jax.grad(lambda s, wi: jnp.sum(wi * self.receptor_means(s)))))

    def run(self, scale: np.ndarray, batch: int = 16) -> np.ndarray:
        """Forward runs at each of `scale[n, region, species]` -> `y[n, component, receptor]`."""
        scale = np.asarray(scale, np.float64)
        return np.concatenate([_padded(self._batched_run, batch, scale[i : i + batch])
                               for i in range(0, len(scale), batch)])  # fmt: skip

    def adjoint(self, scale: np.ndarray, cost_weights: np.ndarray, batch: int = 16) -> np.ndarray:
        """Exact adjoint dJ/dscale[n, region, species] of J = sum(w * y) at each state (`jax.grad` through
        the model); `cost_weights` `w[component, receptor]` or one per state `[n, component, receptor]`."""
        scale = np.asarray(scale, np.float64)
        w = np.broadcast_to(np.asarray(cost_weights, np.float64), (len(scale), len(COMPONENTS), len(REGIONS)))
        return np.concatenate([_padded(self._batched_adjoint, batch, scale[i : i + batch], w[i : i + batch])
                               for i in range(0, len(scale), batch)])  # fmt: skip

    def pwpm_weights(self) -> np.ndarray:
        """Cost weights of population-weighted PM2.5 over all receptors, `w[component, receptor]`."""
        pop = region_kernel(np.asarray(self.population), np.asarray(self.receptor_weights > 0, np.float64))
        return np.ones(len(COMPONENTS))[:, None] * (pop / pop.sum())[None]

    def run_set(self, scale: np.ndarray, y: np.ndarray | None = None, low=0.0, high=2.0) -> xr.Dataset:
        """Run set in the `surrogate.fit` layout (`scale[run, source, species]`, `pm25[run, receptor,
        component]`)."""
        scale = np.asarray(scale, np.float64)
        y = self.run(scale) if y is None else y
        shape = (len(REGIONS), len(SPECIES))
        return xr.Dataset(
            {"scale": (("run", "source", "species"), scale, {"units": "1"}),
             "pm25": (("run", "receptor", "component"), np.transpose(y, (0, 2, 1)), {"units": "ug m-3"})},
            coords={"run": np.arange(len(scale)), "source": list(REGIONS), "species": list(SPECIES),
                    "receptor": list(REGIONS), "component": list(COMPONENTS)},
        ).assign_coords(
            low=(("source", "species"), np.full(shape, low)), high=(("source", "species"), np.full(shape, high))
        )  # fmt: skip
