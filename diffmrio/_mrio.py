r"""The MRIO table as a JAX pytree.

An MRIO with `R` regions and `N` sectors has `n = R N` region-sector pairs ordered region-major
(`(r, i)` is row `r N + i`), and final-demand columns `(consuming region, category)`, also
region-major. Notation follows pymrio (docs/science.md, section 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import numpy as np
import pandas as pd
import xarray as xr

from ._custom_types import Array, Float
from ._units import add_account_units
from ._validate import (
    MRIOError,
    as_numeric,
    check_finite,
    check_lost_stressors,
    check_shapes,
    check_table,
    table_issues,
    validation_policy,
    warn_issues,
)


def _as_labels(name: str, labels) -> tuple[str, ...]:
    if labels is None:
        raise MRIOError(f"`{name}` labels are required")
    if isinstance(labels, (str, bytes)):  # a string is iterable: 'r1' would become the labels ('r', '1')
        raise MRIOError(f"`{name}` is the string {labels!r}, not a sequence of labels: pass a list, e.g. "
                        f"{name}=[{labels!r}]")
    try:
        out = tuple(str(v) for v in labels)
    except TypeError:
        raise MRIOError(f"`{name}` must be a sequence of labels (a list or tuple of names), got {labels!r}") from None
    if len(set(out)) != len(out):
        dup = sorted({v for v in out if out.count(v) > 1})
        raise MRIOError(f"`{name}` labels must be unique; duplicated: {dup}")
    return out


class MRIO(eqx.Module):
    r"""A multi-regional input-output table with satellite accounts (an `equinox.Module`).

    **Fields:**

    - `Z`: intermediate flows, shape `(n, n)`; `Z[(r,i),(s,j)]` is the sale of sector i in region r to
      sector j in region s.
    - `Y`: final demand, shape `(n, R K)`, columns `(consuming region, category)`.
    - `F`: satellite accounts (direct stressors of industries), shape `(p, n)`.
    - `F_Y`: stressors emitted directly by final demand, shape `(p, R K)`.
    - `regions`, `sectors`, `categories`, `stressors`, `units`: labels (static).
    - `extensions`: the satellite extension each stressor belongs to (pymrio's extensions, e.g.
      `"emissions"`, `"factor_inputs"`), one name per stressor; `()` when the table has no such grouping.
    - `population`: optional population per region, shape `(R,)` (pymrio's `io.population`), in
      `population_unit` (static, default `"person"`); with it [`accounts`][diffmrio.accounts] adds the
      per-capita accounts `D_cba_cap`, `D_pba_cap`, `D_imp_cap`, `D_exp_cap`.

    Arrays are float64 leaves (numpy arrays from the constructors below, read-only; JAX arrays inside
    transformed code), labels are static, so the table passes through `jax.jit`,
    `jax.grad` and `jax.vmap` as a whole. Build it with [`MRIO.from_arrays`][diffmrio.MRIO.from_arrays],
    [`MRIO.from_pymrio`][diffmrio.MRIO.from_pymrio], [`MRIO.from_dataframes`][diffmrio.MRIO.from_dataframes],
    [`MRIO.from_xarray`][diffmrio.MRIO.from_xarray] or [`read_ceads`][diffmrio.tables.read_ceads]; these validate
    values. The plain constructor only checks shapes, so that it can be used inside transformed code.

    The constructors do not copy inputs that are already float64 and C-ordered (an EXIOBASE-sized `Z` is
    0.8 GB); they mark them read-only instead, so the table cannot change under the MRIO. Pass `Z.copy()`
    to keep a writable array of your own; a scenario is a new MRIO (`from_arrays` with new arrays, or
    `equinox.tree_at(lambda m: m.Y, mrio, Y_new)`).
    """

    Z: Float[np.ndarray | Array, "n n"]
    Y: Float[np.ndarray | Array, "n fd"]
    F: Float[np.ndarray | Array, "p n"]
    F_Y: Float[np.ndarray | Array, "p fd"]
    regions: tuple[str, ...] = eqx.field(static=True)
    sectors: tuple[str, ...] = eqx.field(static=True)
    categories: tuple[str, ...] = eqx.field(static=True)
    stressors: tuple[str, ...] = eqx.field(static=True)
    units: tuple[str, ...] = eqx.field(static=True)
    name: str = eqx.field(static=True, default="mrio")
    extensions: tuple[str, ...] = eqx.field(static=True, default=())
    population: Float[np.ndarray | Array, " R"] | None = None
    population_unit: str = eqx.field(static=True, default="person")
    validation: tuple[str, ...] = eqx.field(static=True, default=())  # problems accepted with validate="warn"

    def __check_init__(self):
        check_shapes(
            self.Z, self.Y, self.F, self.F_Y,
            len(self.regions), len(self.sectors), len(self.categories), len(self.stressors),
        )  # fmt: skip
        if len(self.units) != len(self.stressors):
            raise MRIOError(
                f"{len(self.units)} units given for {len(self.stressors)} stressors: give one unit per stressor"
            )
        if self.extensions and len(self.extensions) != len(self.stressors):
            raise MRIOError(
                f"{len(self.extensions)} extension names given for {len(self.stressors)} stressors: give one "
                "extension name per stressor, or none (`extensions=()`)"
            )
        if self.population is not None and tuple(self.population.shape) != (len(self.regions),):
            raise MRIOError(
                f"population has shape {tuple(self.population.shape)}; it needs one value per region, shape "
                f"({len(self.regions)},), in the order of `regions`"
            )

    # ------------------------------------------------------------------ sizes
    @property
    def n_regions(self) -> int:
        return len(self.regions)

    @property
    def n_sectors(self) -> int:
        return len(self.sectors)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def n(self) -> int:
        return self.n_regions * self.n_sectors

    @property
    def n_stressors(self) -> int:
        return len(self.stressors)

    @property
    def extension_names(self) -> tuple[str, ...]:
        """The extensions of the table in order of first appearance (pymrio's `get_extensions()`); `()`
        when the stressors are not grouped."""
        return tuple(dict.fromkeys(self.extensions))

    def extension_stressors(self, extension: str) -> tuple[str, ...]:
        """The stressor labels of one extension, with an error listing the extensions when it is unknown."""
        if extension not in self.extension_names:
            raise KeyError(f"extension {extension!r} not in this MRIO; available: {list(self.extension_names)}"
                           + ("" if self.extensions else " (the table's stressors are not grouped into extensions)"))
        return tuple(s for s, e in zip(self.stressors, self.extensions) if e == extension)

    def stressor_index(self, name: str) -> int:
        """Row of stressor `name` in `F`, with an error listing the available names."""
        try:
            return self.stressors.index(name)
        except ValueError:
            raise KeyError(f"stressor {name!r} not in this MRIO; available: {list(self.stressors)}") from None

    def category_index(self, name: str) -> int:
        try:
            return self.categories.index(name)
        except ValueError:
            raise KeyError(f"category {name!r} not in this MRIO; available: {list(self.categories)}") from None

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_arrays(
        cls,
        Z,
        Y,
        F=None,
        F_Y=None,
        *,
        regions: Sequence[str],
        sectors: Sequence[str],
        categories: Sequence[str],
        stressors: Sequence[str] = (),
        units: Sequence[str] | None = None,
        name: str = "mrio",
        validate: bool | str = True,
        extensions: Sequence[str] | None = None,
        population=None,
        population_unit: str = "person",
    ) -> MRIO:
        """Build and validate an MRIO from arrays (region-major ordering).

        **Arguments:** `Z (n, n)`, `Y (n, R K)`, optional `F (p, n)` and `F_Y (p, R K)` (zeros when
        omitted), and labels; optional `extensions` (the extension name of each stressor) and `population`
        (one value per region, in `population_unit`). `validate=True` checks NaN/inf, negative flows or output, zero-output
        sectors with inputs and the spectral radius of `A`, raising [`MRIOError`][diffmrio.MRIOError]
        that names the region-sector at fault. `validate` is a policy: `"raise"` (= `True`), `"warn"` (build
        the table, warn, and list each problem with the country-industries at fault in `MRIO.validation`;
        non-finite values are still refused) or `"off"` (= `False`).
        """
        regions = _as_labels("regions", regions)
        sectors = _as_labels("sectors", sectors)
        categories = _as_labels("categories", categories)
        stressors = _as_labels("stressors", stressors)
        units = tuple(str(u) for u in units) if units is not None else ("",) * len(stressors)
        extensions = tuple(str(e) for e in extensions) if extensions is not None else ()
        empty = [nm for nm, lab in (("regions", regions), ("sectors", sectors), ("categories", categories)) if not lab]
        if empty:
            raise MRIOError(f"the table is empty: no {' and no '.join(empty)} given; an MRIO needs at least one "
                            "region, one sector and one final-demand category.")
        Z = as_numeric("Z", Z)
        Y = as_numeric("Y", Y)
        if Y.ndim == 1:
            Y = Y[:, None]
        for nm, arr in (("Z", Z), ("Y", Y)):
            if arr.ndim != 2:
                raise MRIOError(f"`{nm}` must be a 2-D matrix (rows: region-sectors, region-major), got shape "
                                f"{arr.shape}")
        p = len(stressors)
        F = np.zeros((p, Z.shape[0])) if F is None else as_numeric("F", F)
        if F.ndim == 1:
            F = F[None, :]
        F_Y = np.zeros((p, Y.shape[1])) if F_Y is None else as_numeric("F_Y", F_Y)
        if F_Y.ndim == 1:
            F_Y = F_Y[None, :]
        check_shapes(Z, Y, F, F_Y, len(regions), len(sectors), len(categories), p)
        policy = validation_policy(validate)
        if policy == "warn":  # non-finite values are refused under every policy but "off"
            for nm, arr in (("Z", Z), ("Y", Y), ("F", F), ("F_Y", F_Y)):
                check_finite(nm, arr)
        issues = table_issues(Z, Y, regions, sectors) if policy == "warn" else ()
        warn_issues(issues, name)
        if policy == "raise":
            for nm, arr in (("Z", Z), ("Y", Y), ("F", F), ("F_Y", F_Y)):
                check_finite(nm, arr)
            check_table(Z, Y, regions, sectors)
            check_lost_stressors(F, Z.sum(axis=1) + Y.sum(axis=1), regions, sectors, stressors, units)
        pop = None if population is None else _frozen(_population_array(population, regions))
        # numpy leaves: JAX transformations take them as arrays (zero-copy on a CPU), and the host path of
        # `accounts` reads them without exporting a device buffer (which would copy an n x n matrix)
        return cls(
            _frozen(Z), _frozen(Y), _frozen(F), _frozen(F_Y),
            regions, sectors, categories, stressors, units, name,
            extensions=extensions, population=pop, population_unit=str(population_unit), validation=issues,
        )  # fmt: skip

    @classmethod
    def from_dataframes(
        cls,
        Z: pd.DataFrame,
        Y: pd.DataFrame,
        F: pd.DataFrame | None = None,
        F_Y: pd.DataFrame | None = None,
        *,
        units: Sequence[str] | None = None,
        name: str = "mrio",
        validate: bool | str = True,
        extensions: Sequence[str] | None = None,
        population: pd.DataFrame | pd.Series | None = None,
        population_unit: str = "person",
    ) -> MRIO:
        """Build an MRIO from pandas frames indexed like pymrio's (`(region, sector)` MultiIndex rows,
        `(region, category)` final-demand columns). `population` is a Series indexed by region or pymrio's
        one-row frame with regions as columns; it is matched to the regions by label.

        The frames are *not* silently reordered: if `Z`'s columns, `Y`'s rows or `F`'s columns are in a
        different order from `Z`'s rows, or the rows are not region-major, an error says so and how to
        fix it (`df.reindex(...)`).
        """
        idx = Z.index
        if not isinstance(idx, pd.MultiIndex) or idx.nlevels != 2:
            raise MRIOError("`Z` must have a 2-level (region, sector) MultiIndex on its rows")
        regions = list(dict.fromkeys(idx.get_level_values(0)))
        sectors = list(dict.fromkeys(idx.get_level_values(1)))
        expected = pd.MultiIndex.from_product([regions, sectors])
        if len(idx) != len(expected) or not np.array_equal(idx.to_flat_index(), expected.to_flat_index()):
            raise MRIOError(
                "`Z`'s rows are not ordered region-major (all sectors of the first region, then the next "
                "region, in the same sector order): reorder with "
                "`Z.reindex(index=order, columns=order)` where `order = pd.MultiIndex.from_product([regions, sectors])`."
            )
        if not np.array_equal(Z.columns.to_flat_index(), idx.to_flat_index()):
            raise MRIOError(
                "`Z`'s columns are not in the same order as its rows: use `Z = Z.reindex(columns=Z.index)`."
            )
        if not np.array_equal(Y.index.to_flat_index(), idx.to_flat_index()):
            raise MRIOError("`Y`'s rows are not in the order of `Z`'s rows: use `Y = Y.reindex(index=Z.index)`.")
        ycols = Y.columns
        if not isinstance(ycols, pd.MultiIndex) or ycols.nlevels != 2:
            raise MRIOError("`Y` must have a 2-level (region, category) MultiIndex on its columns")
        categories = list(dict.fromkeys(ycols.get_level_values(1)))
        yexp = pd.MultiIndex.from_product([regions, categories])
        if len(ycols) != len(yexp) or not np.array_equal(ycols.to_flat_index(), yexp.to_flat_index()):
            raise MRIOError(
                "`Y`'s columns must be (region, category) for every region of `Z` in the same order, with "
                "the same categories per region: use `Y.reindex(columns=pd.MultiIndex.from_product([regions, "
                "categories]), fill_value=0)`."
            )
        stressors: list[str] = []
        Fv = None
        FYv = None
        if F is None and F_Y is not None:  # stressors emitted by final demand only: industries emit none of them
            F = pd.DataFrame(0.0, index=F_Y.index, columns=idx)
        if F is not None:
            if not np.array_equal(F.columns.to_flat_index(), idx.to_flat_index()):
                raise MRIOError("`F`'s columns are not in the order of `Z`'s rows: use `F.reindex(columns=Z.index)`.")
            stressors = [_flat_label(v) for v in F.index]
            Fv = as_numeric("F", F)
            if F_Y is not None:
                if not np.array_equal(F_Y.columns.to_flat_index(), ycols.to_flat_index()):
                    raise MRIOError("`F_Y`'s columns are not in the order of `Y`'s: use `F_Y.reindex(columns=Y.columns)`.")
                if not np.array_equal(F_Y.index.to_flat_index(), F.index.to_flat_index()):
                    raise MRIOError("`F_Y`'s rows are not in the order of `F`'s: use `F_Y.reindex(index=F.index)`.")
                FYv = as_numeric("F_Y", F_Y)
        return cls.from_arrays(
            as_numeric("Z", Z), as_numeric("Y", Y), Fv, FYv,
            regions=regions, sectors=sectors, categories=categories, stressors=stressors,
            units=units, name=name, validate=validate, extensions=extensions,
            population=None if population is None else _population_by_label(population, regions, "population"),
            population_unit=population_unit,
        )  # fmt: skip

    @classmethod
    def from_pymrio(
        cls, io, extensions: Sequence[str] | None = None, *, validate: bool | str = True,
        population_unit: str = "person",
    ) -> MRIO:
        """Build an MRIO from a pymrio `IOSystem` (e.g. `pymrio.load_test()` or a parsed EXIOBASE).

        `Z` (or `A` and `x`), `Y` and the `F`/`F_Y` of the chosen extensions (all by default) are read
        and reordered by their labels. Stressor labels join pymrio's row index levels with `/`; when two
        extensions share a label it is prefixed with the extension name (`"emissions:CO2"`). Each stressor
        keeps its extension (`MRIO.extensions`, an `extension` coordinate on the accounts; select one with
        [`select_extension`][diffmrio.select_extension]) and its unit from `extension.unit`.

        `io.population` (pymrio's one-row frame, regions as columns), when present, is carried as
        `MRIO.population` in `population_unit` (pymrio does not record it; `"person"` by default, pass e.g.
        `"1000 persons"` for a table that counts in thousands), and gives the per-capita accounts.
        """
        Z = io.Z
        if Z is None:
            if io.A is None or io.x is None:
                raise MRIOError("the pymrio system has neither Z nor (A, x): run `io.calc_system()` first")
            Z = io.A * io.x.to_numpy().reshape(1, -1)
        regions = list(io.get_regions())
        sectors = list(io.get_sectors())
        categories = list(io.get_Y_categories())
        order = pd.MultiIndex.from_product([regions, sectors])
        ycols = pd.MultiIndex.from_product([regions, categories])
        _check_labels("Z rows", Z.index, order)
        _check_labels("Z columns", Z.columns, order)
        _check_labels("Y rows", io.Y.index, order)
        _check_labels("Y columns", io.Y.columns, ycols)
        Zr = Z.reindex(index=order, columns=order)
        Yr = io.Y.reindex(index=order, columns=ycols, fill_value=0.0)
        names = list(extensions) if extensions is not None else [e for e in io.get_extensions()]
        F_blocks, FY_blocks, pairs, units = [], [], [], []
        known = list(io.get_extensions())
        unknown = [e for e in names if e not in known]
        if unknown:
            raise MRIOError(f"extension(s) {unknown} are not in the pymrio system; it has {known}")
        for ename in names:
            ext = getattr(io, ename)
            if ext.F is None:
                raise MRIOError(f"extension {ename!r} has no F; run `io.calc_all()` or give F")
            _check_labels(f"extension {ename!r} F columns", ext.F.columns, order)
            F_blocks.append(as_numeric(f"{ename}.F", ext.F.reindex(columns=order)))
            if getattr(ext, "F_Y", None) is not None:
                _check_labels(f"extension {ename!r} F_Y columns", ext.F_Y.columns, ycols)
                FY_blocks.append(as_numeric(f"{ename}.F_Y", ext.F_Y.reindex(columns=ycols, fill_value=0.0)))
            else:
                FY_blocks.append(np.zeros((ext.F.shape[0], len(ycols))))
            unit_col = ext.unit.reindex(ext.F.index) if ext.unit is not None else None
            for k, row in enumerate(ext.F.index):
                pairs.append((ename, _flat_label(row)))
                units.append(str(unit_col.iloc[k, 0]) if unit_col is not None else "")
        counts = pd.Series([lab for _, lab in pairs]).value_counts()
        labels = [f"{e}:{lab}" if counts[lab] > 1 else lab for e, lab in pairs]
        F = np.concatenate(F_blocks, axis=0) if F_blocks else None
        F_Y = np.concatenate(FY_blocks, axis=0) if FY_blocks else None
        pop = getattr(io, "population", None)
        return cls.from_arrays(
            as_numeric("Z", Zr), as_numeric("Y", Yr), F, F_Y,
            regions=regions, sectors=sectors, categories=categories, stressors=labels, units=units,
            name=str(getattr(io, "name", "mrio") or "mrio"), validate=validate,
            extensions=[e for e, _ in pairs],
            population=None if pop is None else _population_by_label(pop, regions, "io.population"),
            population_unit=population_unit,
        )  # fmt: skip

    @classmethod
    def from_xarray(cls, ds: xr.Dataset, *, validate: bool | str = True) -> MRIO:
        """Build an MRIO from a Dataset in the layout of [`MRIO.to_xarray`][diffmrio.MRIO.to_xarray].

        Dimensions are matched by name and the `to_region`/`to_sector`/`fd_region` axes are aligned to
        `region`/`sector` by label, so a transposed or reordered Dataset gives the same table.
        """
        missing = [v for v in ("Z", "Y", "region", "sector", "category") if v not in ds.variables]
        if missing:
            hint = (" (it looks like a WIOD table: read it with diffmrio.tables.read_wiod, or `diffmrio accounts "
                    "--format wiod`)" if "row_country" in ds.variables else "")
            raise MRIOError(f"Dataset lacks {missing}; it needs Z(region, sector, to_region, to_sector) and "
                            f"Y(region, sector, fd_region, category), as MRIO.to_xarray writes{hint}")
        regions = [str(v) for v in ds["region"].values]
        sectors = [str(v) for v in ds["sector"].values]
        categories = [str(v) for v in ds["category"].values]
        try:
            Z = ds["Z"].sel(to_region=regions, to_sector=sectors).transpose("region", "sector", "to_region", "to_sector")
            Y = ds["Y"].sel(fd_region=regions).transpose("region", "sector", "fd_region", "category")
        except (KeyError, ValueError) as exc:
            raise MRIOError(f"Dataset dimensions do not match the MRIO layout: {exc}") from None
        n = len(regions) * len(sectors)
        stressors, units, Fv, FYv = [], None, None, None
        if "F" in ds or "F_Y" in ds:
            stressors = [str(v) for v in ds["stressor"].values]
            if "F" in ds:
                Fv = ds["F"].transpose("stressor", "region", "sector").values.reshape(len(stressors), n)
            else:  # stressors emitted by final demand only: industries emit none of them
                Fv = np.zeros((len(stressors), n))
            units = [str(u) for u in ds["unit"].values] if "unit" in ds.coords else None
            if "F_Y" in ds:
                FYv = ds["F_Y"].sel(fd_region=regions).transpose("stressor", "fd_region", "category").values
                FYv = FYv.reshape(len(stressors), -1)
        exts = [str(e) for e in ds["extension"].values] if "extension" in ds.coords and stressors else None
        pop, pop_unit = None, "person"
        if "population" in ds:
            pop = ds["population"].sel(region=regions).values
            pop_unit = str(ds["population"].attrs.get("units", "person"))
        return cls.from_arrays(
            Z.values.reshape(n, n), Y.values.reshape(n, -1), Fv, FYv,
            regions=regions, sectors=sectors, categories=categories, stressors=stressors, units=units,
            name=str(ds.attrs.get("name", "mrio")), validate=validate,
            extensions=exts, population=pop, population_unit=pop_unit,
        )  # fmt: skip

    # ------------------------------------------------------------ conversions
    def coords(self) -> dict:
        c = {
            "region": list(self.regions), "sector": list(self.sectors),
            "to_region": list(self.regions), "to_sector": list(self.sectors),
            "fd_region": list(self.regions), "category": list(self.categories),
            "stressor": list(self.stressors), "unit": ("stressor", list(self.units)),
        }  # fmt: skip
        if self.extensions:
            c["extension"] = ("stressor", list(self.extensions))
        return c

    def to_xarray(self) -> xr.Dataset:
        """The table as a labelled Dataset: `Z(region, sector, to_region, to_sector)`,
        `Y(region, sector, fd_region, category)`, `F(stressor, region, sector)`,
        `F_Y(stressor, fd_region, category)`, with the stressor units (and extensions, when known) as
        coordinates and `population(region)` when the table has one."""
        R, N, K, p = self.n_regions, self.n_sectors, self.n_categories, self.n_stressors
        ds = xr.Dataset(
            {
                "Z": (("region", "sector", "to_region", "to_sector"), np.asarray(self.Z).reshape(R, N, R, N)),
                "Y": (("region", "sector", "fd_region", "category"), np.asarray(self.Y).reshape(R, N, R, K)),
                "F": (("stressor", "region", "sector"), np.asarray(self.F).reshape(p, R, N)),
                "F_Y": (("stressor", "fd_region", "category"), np.asarray(self.F_Y).reshape(p, R, K)),
            },
            coords=self.coords(),
            attrs={"name": self.name},
        )
        if self.population is not None:
            ds["population"] = ("region", np.asarray(self.population), {"units": self.population_unit})

        return add_account_units(ds, self)

    def to_dataframes(self) -> dict[str, pd.DataFrame]:
        """`Z`, `Y`, `F`, `F_Y`, `unit` as pandas frames with pymrio's index layout, plus `extension` (one
        name per stressor) when the stressors are grouped and `population` (pymrio's one-row frame) when
        the table has one."""
        rs = pd.MultiIndex.from_product([self.regions, self.sectors], names=["region", "sector"])
        rc = pd.MultiIndex.from_product([self.regions, self.categories], names=["region", "category"])
        st = pd.Index(self.stressors, name="stressor")
        out = {
            "Z": pd.DataFrame(np.asarray(self.Z), index=rs, columns=rs),
            "Y": pd.DataFrame(np.asarray(self.Y), index=rs, columns=rc),
            "F": pd.DataFrame(np.asarray(self.F), index=st, columns=rs),
            "F_Y": pd.DataFrame(np.asarray(self.F_Y), index=st, columns=rc),
            "unit": pd.DataFrame({"unit": list(self.units)}, index=st),
        }
        if self.extensions:
            out["extension"] = pd.DataFrame({"extension": list(self.extensions)}, index=st)
        if self.population is not None:
            out["population"] = pd.DataFrame(
                np.asarray(self.population)[None, :], index=["Population"], columns=pd.Index(self.regions, name="region")
            )
        return out

    def to_pymrio(self, extension_name: str = "satellite"):
        """A pymrio `IOSystem` with `Z`, `Y`, the population (when the table has one) and the stressors:
        one pymrio extension per entry of `extensions` (with the `"extension:"` prefix that
        [`from_pymrio`][diffmrio.MRIO.from_pymrio] adds to shared labels removed again), or a single
        extension `extension_name` when the stressors are not grouped. Row labels are the flat stressor
        labels (pymrio's multi-level rows come back joined with `/`)."""
        import pymrio

        d = self.to_dataframes()
        io = pymrio.IOSystem(Z=d["Z"], Y=d["Y"], name=self.name, population=d.get("population"))
        groups = (
            [(e, list(self.extension_stressors(e))) for e in self.extension_names]
            if self.extensions
            else ([(extension_name, list(self.stressors))] if self.n_stressors else [])
        )
        for ename, rows in groups:
            labels = pd.Index(_strip_extension(rows, ename) if self.extensions else rows, name="stressor")
            parts = {k: d[k].loc[rows].set_axis(labels, axis=0) for k in ("F", "F_Y", "unit")}
            ext = pymrio.Extension(name=ename, F=parts["F"], F_Y=parts["F_Y"], unit=parts["unit"])
            setattr(io, ename.replace(" ", "_"), ext)
        return io


def _check_labels(what: str, index: pd.Index, expected: pd.MultiIndex) -> None:
    """Refuse labels that reindexing to `expected` would drop (a typo in a region, sector or category)."""
    known = set(expected.to_flat_index())
    unmatched = [v for v in index.to_flat_index() if v not in known]
    if unmatched:
        regions = list(dict.fromkeys(expected.get_level_values(0)))
        second = list(dict.fromkeys(expected.get_level_values(1)))
        raise MRIOError(
            f"the pymrio system's {what} have {len(unmatched)} label(s) that match no (region, sector/category) of "
            f"the table, e.g. {unmatched[:5]}; their values would be dropped. Known regions: {regions[:10]}, "
            f"sectors/categories: {second[:10]}. Fix the labels (e.g. `df.rename(index=..., columns=...)`)."
        )


def _strip_extension(labels, extension: str) -> list[str]:
    """Stressor labels of one extension without the `"extension:"` prefix that `from_pymrio` adds to labels
    shared by two extensions (kept when removing it would make two labels equal)."""
    prefix = f"{extension}:"
    out = [lab[len(prefix):] if lab.startswith(prefix) else lab for lab in labels]
    return out if len(set(out)) == len(out) else list(labels)


def _population_array(population, regions: tuple[str, ...]) -> np.ndarray:
    """A population vector in region order, refused (naming the region) when it is not one finite
    non-negative number per region."""
    pop = as_numeric("population", population).reshape(-1) if np.ndim(population) else None
    if pop is None or pop.shape != (len(regions),):
        shape = np.shape(population)
        raise MRIOError(
            f"population has shape {shape}; it needs one value per region ({len(regions)}: {list(regions)[:10]}), "
            "in the order of `regions`"
        )
    bad = [(regions[i], float(pop[i])) for i in np.flatnonzero(~np.isfinite(pop) | (pop < 0))]
    if bad:
        raise MRIOError(
            f"population must be finite and non-negative; got {bad[:5]} (region, value). Fix the population "
            "data, or leave it out (`population=None`) to skip the per-capita accounts."
        )
    return pop


def _population_by_label(population, regions: list[str] | tuple[str, ...], what: str) -> np.ndarray:
    """pymrio's population frame (one row, regions as columns) or a Series indexed by region, in the order
    of `regions`; refuses missing or unknown regions and frames with more than one row."""
    if isinstance(population, pd.DataFrame):
        if population.shape[0] != 1:
            raise MRIOError(
                f"`{what}` has {population.shape[0]} rows; it needs one (pymrio's layout: one row, regions as "
                f"columns). Pick the row, e.g. `{what}.iloc[[0]]`."
            )
        population = population.iloc[0]
    if not isinstance(population, pd.Series):
        return np.asarray(population)
    labels = [str(v) for v in population.index]
    missing = [r for r in regions if r not in labels]
    unknown = [v for v in labels if v not in set(regions)]
    if missing or unknown:
        raise MRIOError(
            f"`{what}` does not match the table's regions: missing {missing[:10]}, unknown {unknown[:10]}. "
            "Give one value per region of the table, labelled by region."
        )
    return population.set_axis(labels).reindex(list(regions)).to_numpy()


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _flat_label(v) -> str:
    if isinstance(v, tuple):
        return "/".join(str(p) for p in v)
    return str(v)
