"""PM2.5 component vocabularies: how CMAQ and GEOS-Chem name the components, mapped to the framework's.

The framework's components are `SO4, NO3, NH4, BC, OM, other` (ug m-3), and PM2.5 is their plain sum:
organic matter `OM` already carries the OM/OC factor when it is formed from organic carbon. A vocabulary maps
each component to a weighted sum of file variables; the first alternative whose variables are all in the file
is used, and optional terms (secondary organics, sea salt) are added when present. A total (`PM25_TOT`,
GEOS-Chem `PM25`, ...) is never summed together with its parts: a definition that would is refused.

Vocabularies (see docs/run_folders.md):

- `cmaq-elmo`: CMAQ ELMO/AELMO diagnostics `PM25_SO4, PM25_NO3, PM25_NH4, PM25_EC`, `PM25_OM` or
  `PM25_OC` x OM/OC, `PM25_OTHER` (or `PM25_UNSPCRS`).
- `cmaq-conc`: CMAQ CONC/ACONC aerosol species with the Aitken (I) and accumulation (J) modes summed:
  `ASO4I+ASO4J, ANO3I+ANO3J, ANH4I+ANH4J, AECI+AECJ`, `AOMIJ` or (`APOCI+APOCJ`) x OM/OC + `APNCOMI+APNCOMJ`,
  `AOTHRI+AOTHRJ`. No PM2.5 size cut is applied to the I and J modes (the coarse K mode is left out).
- `geoschem`: GEOS-Chem species in ug m-3 (`AerosolMass` or converted `SpeciesConc`): `SO4` (or `AerMassSO4`),
  `NIT`, `NH4`, `BCPI+BCPO` (or `AerMassBC`), `TotalOA`, or (`OCPI+OCPO`) x OM/OC plus any `SOA*` species,
  other = `DST1` + 0.38 `DST2` + `SALA` (those present; the GEOS-Chem PM2.5 definition's dust and fine sea salt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import numpy as np

#: The framework's PM2.5 components (PM2.5 = their sum).
FRAMEWORK_COMPONENTS: tuple[str, ...] = ("SO4", "NO3", "NH4", "BC", "OM", "other")
#: PM2.5 components of the reference CTMs and of the emulators trained on them (ug m-3), in the order of every
#: component axis: organic carbon `OC` (weighted by the OM/OC ratio in PM2.5) instead of organic matter.
CTM_COMPONENTS: tuple[str, ...] = ("SO4", "NO3", "NH4", "BC", "OC", "PM_other")
#: Spellings of ug m-3 accepted in a file's `units` attribute of a PM2.5 concentration (anything else is refused).
CONC_UNITS: frozenset[str] = frozenset({"ug m-3", "ug/m3", "ug m^-3", "µg m-3", "μg m-3", "micrograms/m3", "ug/m^3",
                                        "ug m**-3", "µg/m3", "μg/m3"})
#: Emitted species that drive the CTMs (kt/yr; the order of every species axis of CTM inputs).
EMISSION_SPECIES: tuple[str, ...] = ("SO2", "NOx", "NH3", "VOC", "BC", "OC", "PM_other")
#: Release levels of emissions: near-ground sources and elevated (stack) sources.
EMISSION_LEVELS: tuple[str, ...] = ("ground", "elevated")
#: Regions of the synthetic demo world and of the reference CTM's demo domain (the order of their region axes).
DEMO_REGIONS: tuple[str, ...] = ("Capital", "Harbor", "Central", "Basin", "Northeast", "Steppe")
#: Default OM/OC ratio (Xing et al. 2018, ACP 18, 7799, as used by the pf-ERSM studies).
DEFAULT_OM_OC = 1.4
#: Component names that are organic carbon (weighted by the OM/OC ratio in PM2.5): the framework's `OC`, CMAQ
#: `PM25_OC`/`APOCIJ`/`AOCIJ`, GEOS-Chem `OCPI`/`OCPO`, and the reference CTM's `POC`.
ORGANIC_CARBON_NAMES = frozenset({"OC", "PM25_OC", "POC", "OCPI", "OCPO", "TotalOC", "APOCIJ", "AOCIJ"})
#: Variable names that are PM2.5 (or PM) totals: never summed with the components they contain.
TOTALS = frozenset(
    {"PM25_TOT", "PM25_TOTAL", "PM25", "PM2.5", "PM25TOT", "PMIJ", "ATOTI", "ATOTJ", "ATOTK", "ATOTIJ",
     "ATOTIJK", "PM10", "PM10_TOT", "AerMassPM25", "TotalPM25"}
)  # fmt: skip

_OMOC = "om_oc"
# component -> (alternatives: each a tuple of required (variable, weight) terms), optional (pattern, weight)
_VOCABULARIES: dict[str, dict[str, tuple[tuple[tuple[tuple[str, float | str], ...], ...], tuple]]] = {
    "cmaq-elmo": {
        "SO4": ((("PM25_SO4", 1.0),),), "NO3": ((("PM25_NO3", 1.0),),), "NH4": ((("PM25_NH4", 1.0),),),
        "BC": ((("PM25_EC", 1.0),),), "OM": ((("PM25_OM", 1.0),), (("PM25_OC", _OMOC),)),
        "other": ((("PM25_OTHER", 1.0),), (("PM25_UNSPCRS", 1.0),)),
    },
    "cmaq-conc": {
        "SO4": ((("ASO4I", 1.0), ("ASO4J", 1.0)),), "NO3": ((("ANO3I", 1.0), ("ANO3J", 1.0)),),
        "NH4": ((("ANH4I", 1.0), ("ANH4J", 1.0)),), "BC": ((("AECI", 1.0), ("AECJ", 1.0)),),
        "OM": ((("AOMIJ", 1.0),),
               (("APOCI", _OMOC), ("APOCJ", _OMOC), ("APNCOMI", 1.0), ("APNCOMJ", 1.0)),
               (("APOCI", _OMOC), ("APOCJ", _OMOC))),
        "other": ((("AOTHRI", 1.0), ("AOTHRJ", 1.0)), (("AOTHRJ", 1.0),)),
    },
    "geoschem": {
        "SO4": ((("SO4", 1.0),), (("AerMassSO4", 1.0),)), "NO3": ((("NIT", 1.0),), (("AerMassNIT", 1.0),)),
        "NH4": ((("NH4", 1.0),), (("AerMassNH4", 1.0),)),
        "BC": ((("BCPI", 1.0), ("BCPO", 1.0)), (("AerMassBC", 1.0),)),
        "OM": ((("TotalOA", 1.0),), (("OCPI", _OMOC), ("OCPO", _OMOC))),
        "other": ((("DST1", 1.0),),),
    },
}  # fmt: skip
# optional terms added when present (regular expressions on variable names), per vocabulary and component;
# only used with the alternative listed (OM from OC: add secondary organics; other: coarse dust share, sea salt)
_OPTIONAL: dict[str, dict[str, tuple[tuple[str, float], ...]]] = {
    "geoschem": {"OM": ((r"SOA\w*", 1.0),), "other": ((r"DST2", 0.38), (r"SALA", 1.0))},
}
VOCABULARIES: tuple[str, ...] = tuple(_VOCABULARIES)


def pm25_weights(components: Sequence[str], *, om_oc: float = DEFAULT_OM_OC) -> np.ndarray:
    """Weights of the components in PM2.5 (the one table): `om_oc` for organic carbon (`ORGANIC_CARBON_NAMES`), 1
    for every other component (organic matter `OM` already carries the factor), so that
    $\\mathrm{PM_{2.5}} = \\sum_c w_c\\, y_c$, e.g. `SO4 + NO3 + NH4 + BC + 1.4 OC + PM_other`.

    **Returns** a float64 array `w[component]` in the order given. A PM2.5 total among the components is refused
    (it already contains its parts).
    """
    components = [str(c) for c in components]
    totals = [c for c in components if c in TOTALS]
    if totals and len(components) > 1:
        raise ValueError(
            f"pm25_weights: {totals} are PM2.5 totals listed together with other components {components}; a "
            "total already contains its parts, so drop it or use it alone"
        )
    if not float(om_oc) > 0:
        raise ValueError(f"om_oc must be positive, got {om_oc!r}")
    return np.array([float(om_oc) if c in ORGANIC_CARBON_NAMES else 1.0 for c in components], dtype=np.float64)


class ComponentMap:
    """A resolved component definition: `component -> [(variable, weight), ...]` for one file layout.

    Build it with `resolve_components(spec, variables, om_oc=...)`. `describe()` gives the definitions as
    strings (`{"OM": "1.4*PM25_OC", ...}`), `variables` the file variables used.
    """

    def __init__(self, name: str, om_oc: float, terms: Mapping[str, Sequence[tuple[str, float]]]):
        self.name = name
        self.om_oc = float(om_oc)
        self.terms = {c: tuple((str(v), float(w)) for v, w in t) for c, t in terms.items()}
        _refuse_totals(self.terms, name)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.terms)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for t in self.terms.values() for v, _ in t))

    def describe(self) -> dict[str, str]:
        return {c: " + ".join(v if w == 1.0 else f"{w:g}*{v}" for v, w in t) for c, t in self.terms.items()}

    def attrs(self) -> dict[str, str | float]:
        """Attributes written into a run set (and from there into saved emulators)."""
        return {
            "components_vocabulary": self.name,
            "om_oc": self.om_oc,
            "component_definitions": json.dumps(self.describe()),
        }


def _refuse_totals(terms: Mapping[str, Sequence[tuple[str, float]]], name: str) -> None:
    with_total = {c: [v for v, _ in t if v in TOTALS] for c, t in terms.items()}
    with_total = {c: v for c, v in with_total.items() if v}
    if not with_total:
        return
    mixed = {c: [v for v, _ in terms[c]] for c in with_total if len(terms[c]) > 1}
    if mixed or len(terms) > 1:
        raise ValueError(
            f"components {name!r}: {dict(with_total)} use a PM2.5 total together with "
            + (f"other variables {mixed}" if mixed else f"the other components {sorted(set(terms) - set(with_total))}")
            + ": a total already contains its parts, so PM2.5 would be counted twice; drop the total, or use it "
            "alone as the single component"
        )


def _parse_term(term: str, om_oc: float) -> tuple[str, float]:
    term = term.strip()
    m = re.fullmatch(r"(?:([0-9.eE+-]+|om_oc)\s*\*\s*)?([A-Za-z_][\w.]*)(?:\s*\*\s*([0-9.eE+-]+|om_oc))?", term)
    if not m or (m.group(1) and m.group(3)):
        raise ValueError(
            f"cannot read the component term {term!r}: write VARIABLE, WEIGHT*VARIABLE or om_oc*VARIABLE"
        )
    w = m.group(1) or m.group(3) or "1"
    return m.group(2), om_oc if w == _OMOC else float(w)


def resolve_components(
    spec: str | Mapping[str, str | Sequence[str]], variables: Sequence[str], *, om_oc: float = DEFAULT_OM_OC
) -> ComponentMap:
    """Resolve a component vocabulary against the variables of a file.

    **Arguments**

    - `spec`: a vocabulary name (`"cmaq-elmo"`, `"cmaq-conc"`, `"geoschem"`), or a table
      `{component: "VAR" | "VAR1 + VAR2" | "om_oc*VAR" | [terms...]}` (component names of your choice).
    - `variables`: the variable names in the run files.
    - `om_oc`: the OM/OC ratio applied to organic carbon.

    **Returns** a `ComponentMap`. Raises `ValueError` naming the component and the variables it looked for
    when a component cannot be formed, and when a total would be summed with its parts.
    """
    if not float(om_oc) > 0:
        raise ValueError(f"om_oc must be positive, got {om_oc!r}")
    have = set(variables)
    if isinstance(spec, str):
        if spec not in _VOCABULARIES:
            raise ValueError(f"unknown component vocabulary {spec!r}: use one of {VOCABULARIES} or a table")
        terms = {}
        for comp, alternatives in _VOCABULARIES[spec].items():
            chosen = next((alt for alt in alternatives if all(v in have for v, _ in alt)), None)
            if chosen is None:
                wanted = " or ".join("+".join(v for v, _ in alt) for alt in alternatives)
                raise ValueError(
                    f"vocabulary {spec!r}: component {comp} needs {wanted}, which the run files lack "
                    f"(they have {sorted(have)}); pick another vocabulary or give a components table"
                )
            t = [(v, om_oc if w == _OMOC else float(w)) for v, w in chosen]
            oc_based = any(w == _OMOC for _, w in chosen) or comp == "other"
            for pattern, w in _OPTIONAL.get(spec, {}).get(comp, ()):
                if oc_based:
                    t += [(v, w) for v in sorted(have) if re.fullmatch(pattern, v) and v not in dict(t)]
            terms[comp] = t
        return ComponentMap(spec, om_oc, terms)
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"components must be a vocabulary name or a non-empty table, got {spec!r}")
    terms = {}
    for comp, value in spec.items():
        parts = value.split("+") if isinstance(value, str) else list(value)
        t = [_parse_term(str(p), float(om_oc)) for p in parts]
        missing = [v for v, _ in t if v not in have]
        if missing:
            raise ValueError(
                f"components table: {comp} = {value!r} uses {missing}, not in the run files (they have "
                f"{sorted(have)})"
            )
        terms[str(comp)] = t
    return ComponentMap("table", om_oc, terms)


def default_components(variables: Sequence[str]) -> list[str]:
    """The variables of a file without the PM2.5 totals (what `collect_runs` collects by default)."""
    return [v for v in variables if v not in TOTALS]
