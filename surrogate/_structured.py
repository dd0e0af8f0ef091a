r"""A physically structured emulator: what every CTM shares, built in; what differs between CTMs, learned.

For scaling factors (or emissions) $x_{g,k}$ of source $g$ and species $k$, normalised $u = x / x^{ref}$, and
outputs $y_{c,r}$ (component $c$, receptor $r$), with $\sigma$ the softplus (every footprint $T \ge 0$, every
background $b \ge 0$):

- **primary components** (BC/EC, OC/OM, other primary PM), affine in their own species through transport
  alone: $y_{c,r} = \sigma(b_{c,r}) + \sum_g \sigma(T_{c,r,g})\, u_{g,k(c)}$ (no other species, no cross
  terms; fitted in closed form by non-negative least squares and kept);
- **oxidants**: each receptor sees footprint-weighted NOx and VOC, $n_r = \sum_g \pi^N_{r,g} u_{g,NOx}$,
  $v_r = \sum_g \pi^V_{r,g} u_{g,VOC}$ ($\pi$ a softmax over sources); a small MLP $h(n_r - 1, v_r - 1, e_r)$
  with a receptor embedding $e_r$ gives log-modulations of the oxidation rates (zero at initialisation);
- **sulfate** (and SOA when the CTM outputs it, from VOC): $y_{SO4,r} = (\sigma(b) + \sum_g \sigma(T_{r,g})
  u_{g,SO2}\, \epsilon^S_g)\, e^{h_{SO4}(n_r, v_r, e_r)}$ (SOA the same from VOC with $\epsilon^O_g$);
- **chemistry near the sources**: formation efficiencies from each source's own emissions, with a source
  embedding $f_g$ (small MLPs, zero at initialisation): $\log \epsilon^S_g = \psi(u_{g,SO2}, u_{g,NOx},
  u_{g,VOC}, f_g)$ for sulfate (oxidant-limited aqueous oxidation saturates in SO2; no NH3 input),
  $\log \epsilon^N_g, \log \epsilon^A_g = \chi(u_{g,SO2}, u_{g,NOx}, u_{g,NH3}, u_{g,VOC}, f_g)$ for total
  nitrate and total ammonia (their deposition depends on how much is in the particle phase), $\log \epsilon^O_g = \phi(u_{g,NOx}, u_{g,VOC}, f_g)$ for SOA (no SO2 input: SO2 cannot
  affect it);
- **total nitrate and ammonia** (molar, umol m-3): $T^N_r = (\sigma(b^N_r) + \sum_g \sigma(T^N_{r,g})
  u_{g,NOx} \epsilon^N_g)\, e^{h_N}$, $T^A_r = \sigma(b^A_r) + \sum_g \sigma(T^A_{r,g}) u_{g,NH3}
  \epsilon^A_g$;
- **backgrounds tied to the emissions**: each secondary background $\sigma(b)$ above (sulfate, SOA, total
  nitrate, total ammonia) enters as $\sigma(b_r)\,(1 - w_r + w_r p_r)$, with $p_r$ the footprint-weighted
  precursor the receptor sees ($s_r$, $v_r$, $n_r$, $a_r$: 1 at the reference state, 0 when that precursor
  is off everywhere) and $w_r = \mathrm{sigmoid}(\tau_r)$ learned ($w = 0.5$ at the start): the part of a
  receptor's ammonia (or sulfate, nitrate) the fit cannot attribute to one source still vanishes with the
  emissions that make it, instead of staying when a receptor's own precursor is switched off;
- **partitioning**: sulfate takes ammonia first, $A_s = P(T^A, 2S; k_s)$ with $S = y_{SO4}/96.06$, nitrate
  forms from the free ammonia $F = T^A - A_s$: $n = P(F, T^N; k_{n,r})$, where $P(a, b; k)$ is the smooth
  equilibrium amount of a 1:1 product, $(a - P)(b - P) = kP$ (`ctm_interface.reference.partition_inorganic`
  uses the same kernel); $y_{NO3} = 62.0\, n\, e^{q_1}$, $y_{NH4} = 18.04 (A_s + n)\, e^{q_2}$, with a second
  small MLP $q(n_r, v_r, s_r, a_r, e_r)$ (zero at initialisation) for what the receptor-mean partitioning
  misses (sub-receptor heterogeneity, phase-dependent deposition); $s_r$, $a_r$ are footprint-weighted SO2
  and NH3, $k_{n,r} > 0$ learned per receptor.

Structural zeros hold by construction (exact zeros of the derivative, not small numbers): primary components
depend on their own species only; sulfate and SOA not on NH3 or primary species; nitrate and ammonium not on
primary species. Outputs are non-negative for non-negative inputs.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._abstract import AbstractEmulator, EmulatorLabels, Envelope, default_envelope
from ._linear import _reference_input
from ._roles import component_role, normalise, species_role

_M_SO4, _M_NO3, _M_NH4 = 96.06, 62.005, 18.039
_PRIMARY = ("BC", "OC", "PMOTHER")
_SECONDARY = {"SO4": "SO2", "SOA": "VOC"}


def _softplus(z):
    return jnp.logaddexp(0.0, z)


def _inv_softplus(y):
    y = np.maximum(np.asarray(y, np.float64), 1e-12)
    return np.where(y > 30, y, np.log(np.expm1(np.minimum(y, 30))))


def _pair(a, b, k):
    """Smooth amount of a 1:1 product from `a` and `b` at equilibrium `(a - x)(b - x) = k x` (0 <= x <= min)."""
    s = a + b + k
    disc = (a - b) ** 2 + k * k + 2.0 * k * (a + b)
    return 2.0 * a * b / (s + jnp.sqrt(disc))


def _resolve(names, given: dict | None, resolve, what: str) -> tuple:
    given = {normalise(k): v for k, v in (given or {}).items()}
    out = []
    for n in names:
        role = given.get(normalise(n))
        role = normalise(role) if role is not None else resolve(n)
        out.append(role)
    return tuple(out)


class StructuredEmulator(AbstractEmulator):
    """Physically structured source-level emulator (equations in the module docstring).

    **Arguments** (constructor)

    - `labels`: `EmulatorLabels` with inputs `[source, species]` and outputs `[component, receptor]`. The
      species must include SO2, NOx and NH3 (VOC is optional) and the components SO4, NO3 and NH4; every
      other component must be a primary one (BC/EC, OC/OM, other primary PM) with its own emitted species,
      or SOA (needs VOC). Names are recognised as in `surrogate.structural_zeros`.
    - `species_roles`, `component_roles`: `{name: role}` for names that are not recognised (roles:
      `SO2, NOX, NH3, VOC, BC, OC, PMOTHER` and `SO4, NO3, NH4, BC, OC, SOA, PMOTHER`).
    - `width`, `depth`, `embed_size`: the two small MLPs (defaults 16, 2, 3).
    - `x_ref`, `on_out_of_envelope`: as for `LinearEmulator`; `key`: keyword-only PRNG key.

    Fit with `surrogate.fit` (closed-form initialisation, then optax; a Sobolev term works as for the MLP).
    """

    primary_bg: Float[Array, "primary receptor"]
    primary_fp: Float[Array, "primary receptor source"]
    secondary_bg: Float[Array, "secondary receptor"]
    secondary_fp: Float[Array, "secondary receptor source"]
    nitrate_bg: Float[Array, " receptor"]
    nitrate_fp: Float[Array, "receptor source"]
    ammonia_bg: Float[Array, " receptor"]
    ammonia_fp: Float[Array, "receptor source"]
    background_tie: Float[Array, "tied receptor"]
    seen_logits: Float[Array, "4 receptor source"]
    k_nitrate: Float[Array, " receptor"]
    k_sulfate: Float[Array, ""]
    embedding: Float[Array, "receptor e"]
    oxidant_mlp: eqx.nn.MLP
    source_embedding: Float[Array, "source e"]
    sulfur_mlp: eqx.nn.MLP
    inorganic_mlp: eqx.nn.MLP
    organic_mlp: eqx.nn.MLP
    partition_mlp: eqx.nn.MLP
    x_ref: Float[Array, "source species"]
    envelope: Envelope
    labels: EmulatorLabels = eqx.field(static=True)
    species_roles: tuple[str, ...] = eqx.field(static=True)
    component_roles: tuple[str, ...] = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    embed_size: int = eqx.field(static=True)

    def __init__(
        self,
        labels: EmulatorLabels,
        *,
        species_roles: dict | None = None,
        component_roles: dict | None = None,
        width: int = 16,
        depth: int = 2,
        embed_size: int = 3,
        x_ref=None,
        on_out_of_envelope: str = "warn",
        key: PRNGKeyArray,
    ):
        if len(labels.input_dims) != 2 or len(labels.output_dims) != 2:
            raise ValueError(
                f"StructuredEmulator needs inputs [source, species] and outputs [component, receptor]; got "
                f"{labels.input_dims} -> {labels.output_dims}"
            )
        species, comps = labels.input_coords[1], labels.components
        sroles = _resolve(species, species_roles, species_role, "species")
        croles = _resolve(comps, component_roles, component_role, "component")
        for need in ("SO2", "NOX", "NH3"):
            if need not in sroles:
                raise ValueError(
                    f"StructuredEmulator: no {need} among the species {species}; name it, or pass "
                    f"species_roles={{'<name>': '{need}'}}"
                )
        for need in ("SO4", "NO3", "NH4"):
            if need not in croles:
                raise ValueError(
                    f"StructuredEmulator: no {need} among the components {comps}; pass component_roles="
                    f"{{'<name>': '{need}'}}"
                )
        for c, role in zip(comps, croles, strict=True):
            if role is None:
                raise ValueError(
                    f"StructuredEmulator: component {c!r} has no recognised role; pass component_roles="
                    f"{{{c!r}: '<role>'}} (one of SO4, NO3, NH4, BC, OC, SOA, PMOTHER)"
                )
            if role in _PRIMARY and role not in sroles:
                raise ValueError(
                    f"StructuredEmulator: primary component {c!r} has no emitted species of its kind among "
                    f"{species}; pass species_roles"
                )
            if role == "SOA" and "VOC" not in sroles:
                raise ValueError(f"StructuredEmulator: component {c!r} (SOA) needs a VOC species")
        if len(set(r for r in croles)) != len(croles):
            raise ValueError(f"StructuredEmulator: two components with one role: {dict(zip(comps, croles))}")
        self.labels = labels
        self.species_roles = tuple(r if r is not None else "" for r in sroles)
        self.component_roles = croles
        self.width, self.depth, self.embed_size = int(width), int(depth), int(embed_size)
        self.x_ref = _reference_input(labels, x_ref)
        n_src = labels.input_shape[0]
        n_rec = labels.output_shape[1]
        n_pri, n_sec = len(self._primary), len(self._secondary)
        k1, k2, k3, k4, k5, k6, k7 = jax.random.split(key, 7)
        self.primary_bg = jnp.zeros((n_pri, n_rec))
        self.primary_fp = jnp.zeros((n_pri, n_rec, n_src))
        self.secondary_bg = jnp.zeros((n_sec, n_rec))
        self.secondary_fp = jnp.zeros((n_sec, n_rec, n_src))
        self.nitrate_bg = jnp.zeros(n_rec)
        self.nitrate_fp = jnp.zeros((n_rec, n_src))
        self.ammonia_bg = jnp.zeros(n_rec)
        self.ammonia_fp = jnp.zeros((n_rec, n_src))
        self.background_tie = jnp.zeros((n_sec + 2, n_rec))  # half tied at the start: w = 0.5
        self.seen_logits = jnp.zeros((4, n_rec, n_src))
        self.k_nitrate = jnp.zeros(n_rec)
        self.k_sulfate = jnp.asarray(-5.0)
        self.embedding = 0.1 * jax.random.normal(k1, (n_rec, self.embed_size))

        def mlp(n_in, n_out, k):
            m = eqx.nn.MLP(n_in, n_out, self.width, self.depth, activation=jax.nn.silu, key=k)
            last = m.layers[-1]
            m = eqx.tree_at(lambda q: q.layers[-1].weight, m, jnp.zeros_like(last.weight))
            return eqx.tree_at(lambda q: q.layers[-1].bias, m, jnp.zeros_like(last.bias))

        self.oxidant_mlp = mlp(2 + self.embed_size, n_sec + 1, k2)
        self.source_embedding = 0.1 * jax.random.normal(k5, (n_src, self.embed_size))
        self.sulfur_mlp = mlp(3 + self.embed_size, 1, k4)
        self.inorganic_mlp = mlp(4 + self.embed_size, 2, k7)
        self.organic_mlp = mlp(2 + self.embed_size, 1, k6)
        self.partition_mlp = mlp(4 + self.embed_size, 2, k3)
        self.envelope = default_envelope(labels, on_out_of_envelope)

    # ------------------------------------------------------------------ structure (static)
    @property
    def _primary(self) -> tuple[tuple[int, int], ...]:
        """(component index, species index) of each primary component."""
        return tuple(
            (i, self.species_roles.index(r)) for i, r in enumerate(self.component_roles) if r in _PRIMARY
        )

    @property
    def _secondary(self) -> tuple[tuple[int, int], ...]:
        """(component index, precursor species index) of sulfate (and SOA)."""
        return tuple(
            (i, self.species_roles.index(_SECONDARY[r]))
            for i, r in enumerate(self.component_roles)
            if r in _SECONDARY
        )

    def _sp(self, role: str) -> int | None:
        return self.species_roles.index(role) if role in self.species_roles else None

    def _comp(self, role: str) -> int:
        return self.component_roles.index(role)

    @property
    def hyperparameters(self) -> dict:
        return {
            "width": self.width,
            "depth": self.depth,
            "embed_size": self.embed_size,
            "species_roles": dict(zip(self.labels.input_coords[1], self.species_roles, strict=True)),
            "component_roles": dict(zip(self.labels.components, self.component_roles, strict=True)),
        }

    @property
    def base(self) -> Float[Array, "component receptor"]:
        return self._predict(self.x_ref)

    @property
    def frozen(self) -> tuple:
        """Fields `surrogate.fit` keeps at their closed-form values (the primary components)."""
        return (lambda m: m.primary_bg, lambda m: m.primary_fp)

    def _frozen(self) -> tuple:  # the training hook of AbstractEmulator
        return self.frozen

    def _training_start(self, x, y, base) -> tuple[StructuredEmulator, bool]:
        """Gradient training starts from the closed-form `initialise` (the primary components are final)."""
        if base is not None:
            raise ValueError("`base=` is used by the MLP emulator only; StructuredEmulator does not take it")
        return self.initialise(x, y), False

    # ------------------------------------------------------------------ the model
    def _normalised(self, x):
        return x / jnp.where(self.x_ref > 0, self.x_ref, 1.0)

    def _seen(self, u, i, role):
        """Footprint-weighted input of species `role` seen at each receptor (ones when absent)."""
        k = self._sp(role)
        if k is None:
            return jnp.ones(self.k_nitrate.shape)
        return jax.nn.softmax(self.seen_logits[i], axis=-1) @ u[:, k]

    def _predict(self, x):
        u = self._normalised(x)
        n_comp, n_rec = self.labels.output_shape
        out = [None] * n_comp
        for j, (c, k) in enumerate(self._primary):
            out[c] = _softplus(self.primary_bg[j]) + _softplus(self.primary_fp[j]) @ u[:, k]
        n_r, v_r = self._seen(u, 0, "NOX"), self._seen(u, 1, "VOC")
        ox_in = jnp.concatenate([jnp.stack([n_r - 1.0, v_r - 1.0], axis=1), self.embedding], axis=1)
        log_mod = jax.vmap(self.oxidant_mlp)(ox_in)  # [receptor, secondary + 1]
        s_r, a_r = self._seen(u, 2, "SO2"), self._seen(u, 3, "NH3")
        # chemistry near each source: formation efficiencies from the source's own emissions
        col = lambda role: u[:, self._sp(role)] - 1.0 if self._sp(role) is not None else jnp.zeros(u.shape[0])  # noqa: E731
        so2_g, nox_g, nh3_g, voc_g = col("SO2"), col("NOX"), col("NH3"), col("VOC")
        eff_s = jnp.exp(jax.vmap(self.sulfur_mlp)(
            jnp.concatenate([jnp.stack([so2_g, nox_g, voc_g], axis=1), self.source_embedding], axis=1)))  # [source, 1]
        eff_i = jnp.exp(jax.vmap(self.inorganic_mlp)(
            jnp.concatenate([jnp.stack([so2_g, nox_g, nh3_g, voc_g], axis=1), self.source_embedding], axis=1)))
        eff_o = jnp.exp(jax.vmap(self.organic_mlp)(
            jnp.concatenate([jnp.stack([nox_g, voc_g], axis=1), self.source_embedding], axis=1)))[:, 0]  # [source]
        # backgrounds tied to the emissions: a share w = sigmoid(tie) of each receptor background scales with
        # the footprint-weighted precursor the receptor sees (1 at the reference state, 0 when it is off)
        tie = jax.nn.sigmoid(self.background_tie)
        seen_of = {"SO2": s_r, "VOC": v_r, "NOX": n_r, "NH3": a_r}

        def background(raw, row, precursor):
            return _softplus(raw) * (1.0 - tie[row] + tie[row] * seen_of[precursor])

        for j, (c, k) in enumerate(self._secondary):
            eff = eff_s[:, 0] if self.component_roles[c] == "SO4" else eff_o
            bg = background(self.secondary_bg[j], j, _SECONDARY[self.component_roles[c]])
            out[c] = (bg + _softplus(self.secondary_fp[j]) @ (u[:, k] * eff)) * jnp.exp(log_mod[:, j])
        n_sec = len(self._secondary)
        tn = (
            background(self.nitrate_bg, n_sec, "NOX")
            + _softplus(self.nitrate_fp) @ (u[:, self._sp("NOX")] * eff_i[:, 0])
        ) * jnp.exp(log_mod[:, -1])
        ta = background(self.ammonia_bg, n_sec + 1, "NH3") + _softplus(self.ammonia_fp) @ (
            u[:, self._sp("NH3")] * eff_i[:, 1]
        )
        s2 = 2.0 * out[self._comp("SO4")] / _M_SO4
        bound = _pair(ta, s2, _softplus(self.k_sulfate) * 1e-3)
        free = ta - bound
        nitrate = _pair(free, tn, _softplus(self.k_nitrate))
        p_in = jnp.concatenate(
            [jnp.stack([n_r - 1.0, v_r - 1.0, s_r - 1.0, a_r - 1.0], axis=1), self.embedding], axis=1
        )
        corr = jnp.exp(jax.vmap(self.partition_mlp)(p_in))  # [receptor, 2]
        out[self._comp("NO3")] = _M_NO3 * nitrate * corr[:, 0]
        out[self._comp("NH4")] = _M_NH4 * (bound + nitrate) * corr[:, 1]
        return jnp.stack(out)

    # ------------------------------------------------------------------ closed-form start
    def initialise(self, x: np.ndarray, y: np.ndarray) -> StructuredEmulator:
        """Closed-form starting values from runs `x[run, source, species]`, `y[run, component, receptor]`:
        non-negative least squares per receptor for the primary components (final), sulfate/SOA on their
        precursors, total nitrate on NOx and total ammonia on NH3 (starting values for `surrogate.fit`)."""
        from scipy.optimize import nnls

        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        xs = np.asarray(jnp.where(self.x_ref > 0, self.x_ref, 1.0))
        u = x / xs[None]
        n = x.shape[0]

        def fit_nonneg(k, target):
            """NNLS of target[run, receptor] on [1, u[:, :, k]] per receptor -> (bg[rec], fp[rec, src])."""
            a = np.concatenate([np.ones((n, 1)), u[:, :, k]], axis=1)
            sol = np.stack([nnls(a, target[:, r], maxiter=50 * a.shape[1])[0] for r in range(target.shape[1])])
            return sol[:, 0], sol[:, 1:]

        m = self
        ref = max(float(np.mean(np.abs(y))), 1e-12) * 1e-10
        pb, pf = [], []
        for c, k in self._primary:
            b, f = fit_nonneg(k, y[:, c])
            pb.append(b)
            pf.append(f)
        if pb:
            m = eqx.tree_at(lambda q: q.primary_bg, m, jnp.asarray(_inv_softplus(np.stack(pb) + ref)))
            m = eqx.tree_at(lambda q: q.primary_fp, m, jnp.asarray(_inv_softplus(np.stack(pf) + ref)))
        sb, sf = [], []
        for c, k in self._secondary:
            b, f = fit_nonneg(k, y[:, c])
            sb.append(b)
            sf.append(f)
        if sb:
            m = eqx.tree_at(lambda q: q.secondary_bg, m, jnp.asarray(_inv_softplus(np.stack(sb) + ref)))
            m = eqx.tree_at(lambda q: q.secondary_fp, m, jnp.asarray(_inv_softplus(np.stack(sf) + ref)))
        no3 = y[:, self._comp("NO3")] / _M_NO3
        nh4 = y[:, self._comp("NH4")] / _M_NH4
        so4 = y[:, self._comp("SO4")] / _M_SO4
        b, f = fit_nonneg(self._sp("NOX"), 1.3 * no3)
        m = eqx.tree_at(lambda q: q.nitrate_bg, m, jnp.asarray(_inv_softplus(b + ref)))
        m = eqx.tree_at(lambda q: q.nitrate_fp, m, jnp.asarray(_inv_softplus(f + ref)))
        # total ammonia: what the particles hold at the base case plus some free NH3
        b, f = fit_nonneg(self._sp("NH3"), 1.2 * nh4)
        m = eqx.tree_at(lambda q: q.ammonia_bg, m, jnp.asarray(_inv_softplus(b + ref)))
        m = eqx.tree_at(lambda q: q.ammonia_fp, m, jnp.asarray(_inv_softplus(f + ref)))
        kn = 0.1 * np.maximum(no3.mean(0), 1e-9)
        m = eqx.tree_at(lambda q: q.k_nitrate, m, jnp.asarray(_inv_softplus(kn)))
        ks = 1e3 * 1e-3 * max(float(2 * so4.mean()), 1e-9)  # k_s = softplus(raw) * 1e-3
        m = eqx.tree_at(lambda q: q.k_sulfate, m, jnp.asarray(_inv_softplus(ks)))
        # footprints of what each receptor "sees": start from the fitted transport footprints
        def logits(fp):
            w = np.maximum(np.asarray(_softplus(jnp.asarray(fp))), 1e-9)
            return np.log(w / w.sum(axis=-1, keepdims=True))

        so2_fp = m.secondary_fp[[j for j, (c, _) in enumerate(self._secondary) if self.component_roles[c] == "SO4"][0]]
        seen = np.stack([logits(m.nitrate_fp), logits(m.nitrate_fp), logits(so2_fp), logits(m.ammonia_fp)])
        return eqx.tree_at(lambda q: q.seen_logits, m, jnp.asarray(seen))
