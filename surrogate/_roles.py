"""What each emitted species and each PM2.5 component is, chemically: the roles shared by the structural-zero
table of the metrics (`surrogate.structural_zeros`) and the structured emulator (`surrogate.StructuredEmulator`).

Names are matched case-insensitively after dropping `_`, `-`, `.` and spaces, so `PM_other`, `PMOTHR` and
`pm-other` are one name. Unknown names get no role (and no structural zeros: the table never claims a zero it
cannot justify).
"""

from __future__ import annotations

import numpy as np

#: species role -> accepted species names (normalised: upper case, no `_`/`-`/`.`/spaces)
SPECIES_ALIASES: dict[str, tuple[str, ...]] = {
    "SO2": ("SO2", "SOX"),
    "NOX": ("NOX", "NO2", "NO"),
    "NH3": ("NH3",),
    "VOC": ("VOC", "NMVOC", "AVOC"),
    "BC": ("BC", "EC"),
    "OC": ("OC", "OM", "POA", "POC"),
    "PMOTHER": ("PMOTHER", "PMOTHR", "PMOTH", "OTHER", "PM25OTHER", "PRIMARYPM", "PMFINE", "PRIMPM"),
}
#: component role -> accepted component names
COMPONENT_ALIASES: dict[str, tuple[str, ...]] = {
    "SO4": ("SO4", "SULFATE", "ASO4"),
    "NO3": ("NO3", "NITRATE", "ANO3"),
    "NH4": ("NH4", "AMMONIUM", "ANH4"),
    "BC": ("BC", "EC", "AEC"),
    "OC": ("OC", "OM", "POA", "POC", "AOC", "AOM"),
    "SOA": ("SOA", "SOC", "ASOA"),
    "PMOTHER": ("PMOTHER", "PMOTHR", "PMOTH", "OTHER", "AOTHR", "PRIMARYPM", "PMFINE", "PRIMPM"),
}
#: The default structural-zero table: species role -> the component roles it CAN affect (everything else is
#: a structural zero). From atmospheric chemistry (Seinfeld and Pandis, chs. 6, 10, 14):
#:
#: - primary species (BC/EC, OC/OM, other primary PM) only into their own component (transport and
#:   deposition are linear in them and they take part in no reaction);
#: - SO2 -> sulfate, and nitrate/ammonium through the ammonia that sulfate binds first;
#: - NOx -> nitrate, ammonium (ammonium nitrate), sulfate and SOA through the oxidants (OH, H2O2, O3);
#: - NH3 -> ammonium and nitrate; not sulfate (no pH-dependent aqueous oxidation assumed: add it for a CTM
#:   that has one);
#: - VOC -> SOA/organic matter, and sulfate, nitrate, ammonium through the oxidants.
#:
#: Organic matter (`OC`) may be primary only or include SOA depending on the CTM, so VOC and NOx are allowed
#: to affect it. Pass `table=` to the metrics for a CTM with other chemistry.
DEFAULT_CAN_AFFECT: dict[str, tuple[str, ...]] = {
    "SO2": ("SO4", "NO3", "NH4"),
    "NOX": ("SO4", "NO3", "NH4", "SOA", "OC"),
    "NH3": ("NO3", "NH4"),
    "VOC": ("SO4", "NO3", "NH4", "SOA", "OC"),
    "BC": ("BC",),
    "OC": ("OC",),
    "PMOTHER": ("PMOTHER",),
}


def normalise(name: str) -> str:
    return "".join(ch for ch in str(name).upper() if ch not in "_-. ")


def _role(name: str, aliases: dict[str, tuple[str, ...]]) -> str | None:
    n = normalise(name)
    for role, names in aliases.items():
        if n in names:
            return role
    return None


def species_role(name: str) -> str | None:
    """The role (`"SO2"`, `"NOX"`, `"NH3"`, `"VOC"`, `"BC"`, `"OC"`, `"PMOTHER"`) of an emitted species, or
    `None` when the name is not recognised."""
    return _role(name, SPECIES_ALIASES)


def component_role(name: str) -> str | None:
    """The role (`"SO4"`, `"NO3"`, `"NH4"`, `"BC"`, `"OC"`, `"SOA"`, `"PMOTHER"`) of a PM2.5 component, or
    `None`."""
    return _role(name, COMPONENT_ALIASES)


def structural_zeros(species, components, table: dict | None = None) -> np.ndarray:
    """Boolean mask `[component, species]`: `True` where the component cannot depend on the species.

    **Arguments**

    - `species`, `components`: the labels (e.g. `model.labels.input_coords[1]`, `model.labels.components`).
    - `table`: which components each species can affect, `{species: [components...]}`. Keys and values are
      species/component names or roles (matched as in the module docstring); a species that is not a key
      keeps the default row. Default `DEFAULT_CAN_AFFECT` (see its comment for the chemistry).

    A species or component without a recognised name gets no structural zeros.
    """
    can = {k: set(v) for k, v in DEFAULT_CAN_AFFECT.items()}
    if table is not None:
        for sp, comps in dict(table).items():
            role = species_role(sp) or normalise(sp)
            if isinstance(comps, str):
                raise TypeError(
                    f"structural-zero table: the components of {sp!r} must be a list of names, got the string "
                    f"{comps!r}; write [{comps!r}]"
                )
            can[role] = {component_role(c) or normalise(c) for c in comps}
    mask = np.zeros((len(components), len(species)), dtype=bool)
    for j, sp in enumerate(species):
        role = species_role(sp) or normalise(sp)
        if role not in can:
            continue
        for i, comp in enumerate(components):
            crole = component_role(comp)
            if crole is not None and crole not in can[role] and normalise(comp) not in can[role]:
                mask[i, j] = True
    return mask
