"""Parameter validation, shared by the notebooks and the presets: one schema, one error type.

The schema is generated from the stage registry (`registry.PARAMS`: every parameter's type, range, allowed
values and one-line description, declared once). `validate_params` checks values against it
before anything is written and returns them normalised, so that equal settings are equal values (and give
the same run hash): task names become canonical (`sst-2` -> `SST-2`), numbers take their declared type
(epochs `1` -> `1.0`), and the strings a command line passes for booleans and lists (`"false"`, `"[1, 2]"`)
are parsed. A bad value raises one `ParameterError` naming the parameter, the value, what is allowed and the fix.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, MutableMapping, Sequence
from functools import cache
from typing import Any

import yaml

from ..core.errors import ParameterError
from .registry import GRID_KEYS, json_schema, nearest_parameter

_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


@cache
def schema() -> dict[str, Any]:
    """The parameter schema (a JSON schema, draft 2020-12), generated from `registry.PARAMS`."""
    return json_schema()


def parameter_names() -> tuple[str, ...]:
    return tuple(schema()["properties"])


def _resolve(spec: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with a local `$ref` merged in (its own keys, e.g. the description, win)."""
    ref = spec.get("$ref")
    if ref is None:
        return spec
    target = schema()["$defs"][ref.removeprefix("#/$defs/")]
    return {**_resolve(target), **{k: v for k, v in spec.items() if k != "$ref"}}


def _scalar_spec(key: str) -> tuple[dict[str, Any], bool]:
    """The schema of one value of `key`, and whether a preset may give it per task ({task: value})."""
    spec = _resolve(schema()["properties"][key])
    if "anyOf" not in spec:
        return spec, False
    scalar = next(s for s in spec["anyOf"] if s.get("$ref") != "#/$defs/per_task")
    return {**_resolve(scalar), "description": spec.get("description", "")}, True


def allowed(key: str) -> str:
    """What `key` accepts, in words (from the schema)."""
    spec, per_task = _scalar_spec(key)
    kind = spec.get("type")
    if "enum" in spec:
        text = "one of " + ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in spec["enum"])
    elif kind in ("integer", "number"):
        bounds = [f">= {spec['minimum']}" if "minimum" in spec else "",
                  f"> {spec['exclusiveMinimum']}" if "exclusiveMinimum" in spec else "",
                  f"<= {spec['maximum']}" if "maximum" in spec else "",
                  f"< {spec['exclusiveMaximum']}" if "exclusiveMaximum" in spec else ""]
        text = f"{'an integer' if kind == 'integer' else 'a number'} {' and '.join(b for b in bounds if b)}".strip()
    elif kind == "array":
        item = _resolve(spec["items"])
        text = "a non-empty list" + (" of " + ", ".join(map(str, item["enum"])) if "enum" in item else
                                     " of integers >= 0" if item.get("type") == "integer" else "")
    elif kind == "boolean":
        text = "true or false"
    else:
        text = "a string" + (" (not empty)" if spec.get("minLength") else "")
    return text + (" (or, in a preset, a mapping {task: value})" if per_task else "") + f": {spec.get('description', '')}"


def _error(key: str, value: Any, reason: str = "") -> ParameterError:
    return ParameterError(f"Invalid parameter {key} = {value!r}{': ' + reason if reason else ''}. Allowed: "
                          f"{allowed(key)}. Fix: set `{key}` to an allowed value (papermill `-p {key} VALUE`, "
                          f"Snakemake `--config {key}=VALUE`, or the preset's YAML).")


def _unknown(key: str) -> ParameterError:
    return ParameterError(f"Unknown parameter `{key}`{nearest_parameter(key)}. Allowed parameters: "
                          f"{', '.join(sorted(parameter_names()))}. "
                          "Fix: correct its name or remove it.")


def _task_name(key: str, name: Any) -> str:
    from ..core.tasks import get_task

    try:
        return get_task(str(name)).name
    except ValueError:
        raise _error(key, name, "unknown GLUE task") from None


def _coerce(key: str, value: Any, spec: dict[str, Any]) -> Any:
    """`value` in the type `spec` declares; a ParameterError when it cannot be, or breaks the schema."""
    import jsonschema

    kind = spec.get("type")
    enum = spec.get("enum", ())
    if isinstance(value, str) and (kind == "boolean" or True in enum):
        word = value.strip().lower()
        value = True if word in _TRUE else False if word in _FALSE else value
    elif kind == "integer" and not isinstance(value, bool):
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        elif isinstance(value, numbers.Real) and float(value).is_integer():  # 3.0 and numpy integers
            value = int(value)
    elif kind == "number" and not isinstance(value, bool):
        try:
            value = float(value) if isinstance(value, (numbers.Real, str)) else value
        except ValueError:
            pass
    elif kind == "array":
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if isinstance(value, (list, tuple)):
            item = _resolve(spec["items"])
            items = []
            for v in value:
                try:
                    items.append(_task_name(key, v) if key == "tasks" else _coerce(key, v, item))
                except ParameterError:
                    raise _error(key, value, f"its item {v!r} is not allowed") from None
            repeated = sorted({v for v in items if items.count(v) > 1}, key=items.index)
            if repeated:
                raise _error(key, value, f"{', '.join(map(repr, repeated))} "
                                         f"{'is' if len(repeated) == 1 else 'are'} repeated; each item counts once")
            value = items
    if key == "task":
        value = _task_name(key, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(key, value, "not a finite number")
    try:
        jsonschema.Draft202012Validator({**spec, "$defs": schema()["$defs"]}).validate(value)
    except jsonschema.ValidationError as e:
        raise _error(key, value, e.message) from None
    return value


def validate_params(params: Mapping[str, Any], *, per_task: bool = False, unknown: str = "error") -> dict[str, Any]:
    """`params` checked against the schema and normalised (see the module docstring).

    `per_task`: a mapping {task: value} is allowed where the schema says so (presets); task names are
    normalised. `unknown="ignore"` passes keys the schema does not know through unchanged."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in schema()["properties"]:
            if unknown != "ignore":
                raise _unknown(key)
            out[key] = value
            continue
        spec, may_vary = _scalar_spec(key)
        if isinstance(value, Mapping) and per_task and may_vary:
            out[key] = {_task_name(key, t): _coerce(key, v, spec) for t, v in value.items()}
        elif isinstance(value, Mapping):
            raise _error(key, dict(value), "one value is needed here" + ("" if may_vary else
                                                                         ", this parameter cannot vary by task"))
        else:
            out[key] = _coerce(key, value, spec)
    return out


_PLAIN = (str, int, float, bool, list, dict, type(None))  # what papermill injects
_KERNEL_NAMES = {"In", "Out"}  # IPython's own plain globals


def validate_globals(namespace: MutableMapping[str, Any], names: Sequence[str], stage: str) -> dict[str, Any]:
    """A notebook's parameters `names` (of `namespace`, its `globals()`), validated and normalised in place
    (`stages.open` calls it, after the imports and before anything is written). A `model` must be of a
    supported encoder family (`lotterylib.core.families`): its config is read to check that. Any other plain value
    (papermill injects `-p learning_rat 5e-5` as the global `learning_rat`, and only warns) is an error: an
    unknown parameter names the nearest known one, a known one that `stage` does not take says so."""
    stray = [k for k, v in namespace.items()
             if not k.startswith("_") and k not in _KERNEL_NAMES and k not in names and isinstance(v, _PLAIN)]
    if stray and stray[0] in schema()["properties"]:
        raise ParameterError(f"The {stage} stage takes no parameter `{stray[0]}`: it takes {', '.join(names)}. "
                             "Fix: remove it.")
    if stray:
        raise _unknown(stray[0])
    missing = [k for k in names if k not in namespace]
    if missing:
        raise ParameterError(f"The {stage} notebook does not define {', '.join(missing)}. Fix: restore its "
                             "parameters cell (`lottery notebook-params`).")
    values = validate_params({k: namespace[k] for k in names})
    if "model" in values:
        from ..core.models import check_model

        check_model(values["model"])
    namespace.update(values)
    return values


def validate_preset(preset: Mapping[str, Any], source: str = "the preset") -> dict[str, Any]:
    """A whole preset: every key known and valid, the grid (`tasks`, `seeds`, `stages`) present, and a value
    for every task in each per-task mapping."""
    try:
        out = validate_params(preset, per_task=True)
    except ParameterError as e:
        raise ParameterError(f"{source}: {e}") from None
    for key, grid_key in (("task", "tasks"), ("seed", "seeds")):
        if key in out:
            raise ParameterError(f"{source}: `{key}` is set for each job by the grid. Fix: use `{grid_key}`.")
    for key in GRID_KEYS:
        if key not in out:
            raise ParameterError(f"{source}: `{key}` is missing. Allowed: {allowed(key)}. Fix: add it.")
    for key, value in out.items():
        lacking = [t for t in out["tasks"] if isinstance(value, dict) and t not in value]
        if lacking:
            raise ParameterError(f"{source}: `{key}` is per task but has no value for {', '.join(lacking)}. "
                                 "Fix: add them to its mapping.")
    return out
