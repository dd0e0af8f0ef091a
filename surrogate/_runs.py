"""Run sets in an emulator's layout: which variables are the inputs and outputs, and their arrays.

Shared by `EmulatorLabels.from_runs` (`_abstract`), `fit` and the evaluation functions; it imports nothing
from the rest of `surrogate` at run time, so none of them import each other in a circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._abstract import EmulatorLabels

_INPUT_NAMES = ("scale", "emissions")
_OUTPUT_NAMES = ("pm25", "conc")


def _io_names(runs, inputs: str | None, outputs: str | None) -> tuple[str, str]:
    if not hasattr(runs, "data_vars"):
        raise TypeError(f"`runs` must be an xarray.Dataset of CTM runs, got {type(runs).__name__}")
    if inputs is None:
        inputs = next((n for n in _INPUT_NAMES if n in runs.data_vars), None)
    if outputs is None:
        outputs = next((n for n in _OUTPUT_NAMES if n in runs.data_vars), None)
    for what, name, default in (("inputs", inputs, _INPUT_NAMES), ("outputs", outputs, _OUTPUT_NAMES)):
        if name is None or name not in runs.data_vars:
            raise ValueError(
                f"the run set has no {what} variable (looked for {name or default}; it has "
                f"{list(runs.data_vars)}): pass {what}='<variable name>'"
            )
        if "run" not in runs[name].dims:
            raise ValueError(f"variable {name!r} has dims {runs[name].dims}: it needs a 'run' dimension")
    return inputs, outputs


def align(da, dims, coords, name):
    """`da` with its labels along `dims` in the order of `coords` (the emulator's), whatever their order in
    the run set: selected by label, so a run set whose labels come in another order is read right, never
    silently misaligned. A dim without a coordinate is taken by position (its length must match). Labels that
    differ (missing or extra) raise an error naming them."""
    for d, c in zip(dims, coords, strict=True):
        c = tuple(str(v) for v in c)
        if d not in da.coords:
            if da.sizes[d] != len(c):
                raise ValueError(
                    f"{name}: {da.sizes[d]} entries along {d!r} (no labels) but the emulator expects {len(c)}: "
                    f"{c[:8]}{'...' if len(c) > 8 else ''}"
                )
            continue
        have = [str(v) for v in da[d].values]
        if tuple(have) == c:
            continue
        missing = [v for v in c if v not in have]
        extra = [v for v in have if v not in c]
        if missing or extra or len(set(have)) != len(have):
            dup = sorted({v for v in have if have.count(v) > 1})
            raise ValueError(
                f"{name}: labels along {d!r} do not match the emulator's: missing {missing[:8]}, unexpected "
                f"{extra[:8]}{f', repeated {dup[:8]}' if dup else ''} (the emulator expects "
                f"{c[:8]}{'...' if len(c) > 8 else ''}): the run set and the emulator must describe the same "
                "inputs/outputs"
            )
        pos = {v: i for i, v in enumerate(have)}
        da = da.isel({d: [pos[v] for v in c]})
    return da


def run_arrays(runs, labels: EmulatorLabels, inputs: str | None = None, outputs: str | None = None) -> dict:
    """Arrays of a run set in the emulator's layout.

    **Returns** a dict with `x[run, *input_shape]`, `y[run, *output_shape]`, and, when the run set has
    adjoint sensitivities, `g[run, *input_shape]` (NaN where a run has none) and `w[*output_shape]`.
    """
    xname, yname = _io_names(runs, inputs, outputs)
    x, y = runs[xname], runs[yname]
    for da, dims, name in ((x, labels.input_dims, xname), (y, labels.output_dims, yname)):
        missing = set(dims) - set(da.dims)
        if missing or set(da.dims) - {"run"} != set(dims):
            raise ValueError(
                f"variable {name!r} has dims {da.dims} but the emulator expects ('run', *{dims}); "
                "rename or transpose the run set"
            )
    x = align(x, labels.input_dims, labels.input_coords, xname)
    y = align(y, labels.output_dims, labels.output_coords, yname)
    out = {
        "x": np.asarray(x.transpose("run", *labels.input_dims).values, dtype=np.float64),
        "y": np.asarray(y.transpose("run", *labels.output_dims).values, dtype=np.float64),
    }
    if "sensitivity" in runs.data_vars:
        if "cost_weights" not in runs.data_vars:
            raise ValueError(
                "the run set has `sensitivity` but no `cost_weights`: add the weights w[component, receptor...] "
                "of the linear cost J = sum(w * y) the adjoint was run for"
            )
        g = runs["sensitivity"]
        if set(g.dims) - {"run"} != set(labels.input_dims):
            raise ValueError(
                f"`sensitivity` has dims {g.dims}; expected the input dims ('run', *{labels.input_dims})"
            )
        g = align(g, labels.input_dims, labels.input_coords, "sensitivity")
        out["g"] = np.asarray(g.transpose("run", *labels.input_dims).values, dtype=np.float64)
        cw = runs["cost_weights"]
        if set(cw.dims) - {"run"} != set(labels.output_dims):
            raise ValueError(
                f"`cost_weights` has dims {cw.dims}; expected the output dims {labels.output_dims}, optionally "
                "with 'run' first when runs' adjoints are of different costs"
            )
        cw = align(cw, labels.output_dims, labels.output_coords, "cost_weights")
        w = np.asarray(cw.transpose(*(("run",) if "run" in cw.dims else ()), *labels.output_dims).values,
                       dtype=np.float64)
        out["w"] = np.broadcast_to(w, (out["g"].shape[0], *labels.output_shape))
    if not np.all(np.isfinite(out["x"])) or not np.all(np.isfinite(out["y"])):
        raise ValueError(
            f"the run set has non-finite values in {xname!r} or {yname!r}: drop or repair those runs"
        )
    return out
