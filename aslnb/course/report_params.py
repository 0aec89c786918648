"""``aslnb report -p NAME=VALUE``: parsed as YAML and checked before anything runs or is touched."""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from ..errors import ParameterError
from ..models.registry import backbone_names
from .notebook import COMMON_PARAMS, NOTEBOOK_PARAMS, check_types

# Set by `aslnb report` itself: -p may not override them.
OWN_PARAMS = {"PROFILE": "--profile", "REPORT_DIR": "--out"}
# Parameters every notebook declares (one parameters cell) that some never read: 01 sizes its probe by the
# profile's probe_size and trains no network, 02 sizes its images by residual_size. -p NAME for these alone is refused.
UNUSED_BY = {"IMAGE_SIZE": ("01", "02"), "EPOCHS": ("01",)}
# The smallest value a numeric -p parameter takes (training's own limits: TrainConfig.validate).
MINIMUM = {"IMAGE_SIZE": 32, "EPOCHS": 1, "FINE_TUNE_EPOCHS": 0}


def parse_extra(extra: Iterable[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["EPOCHS=3", "WEIGHTS=none"]`` -> ``{"EPOCHS": 3, "WEIGHTS": "none"}`` (values read as YAML)."""
    import yaml

    if not extra:
        return {}
    if isinstance(extra, dict):
        return dict(extra)
    out: dict[str, Any] = {}
    for item in extra:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"-p {item!r}: expected NAME=VALUE, e.g. -p EPOCHS=5")
        try:
            out[name] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ParameterError(f"-p {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
    return out


def check_extras(extras: dict[str, Any], declared: set[str], notebook_names: list[str]) -> None:
    """Refuse a ``-p`` name no notebook to run declares, one set by the report itself, or a wrong type."""
    for name in extras:
        if name in OWN_PARAMS:
            raise ParameterError(f"-p {name}: set by `aslnb report` itself; use {OWN_PARAMS[name]} instead")
        if name not in declared:
            close = difflib.get_close_matches(name, sorted(declared), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ParameterError(f"-p {name}: no notebook to run ({', '.join(notebook_names)}) declares this "
                                 f"parameter; {hint}known: {', '.join(sorted(declared - set(OWN_PARAMS)))}")
    spec: dict[str, tuple[type, ...]] = dict(COMMON_PARAMS)
    for own in NOTEBOOK_PARAMS.values():
        spec.update(own)
    try:
        check_types({k: v for k, v in extras.items() if k in spec}, spec)
    except ParameterError as exc:
        raise ParameterError(f"-p {exc}".replace("-p parameter ", "-p ")) from None
    _check_used_and_range(extras, notebook_names)
    if "BACKBONE" in extras and extras["BACKBONE"] not in backbone_names():
        raise ParameterError(f"-p BACKBONE={extras['BACKBONE']!r}: choose one of {', '.join(backbone_names())}")


def _check_used_and_range(extras: dict[str, Any], notebook_names: list[str]) -> None:
    """Refuse a value below :data:`MINIMUM`, or a parameter that none of the notebooks to run reads."""
    for name, low in MINIMUM.items():
        if extras.get(name) is not None and extras[name] < low:
            raise ParameterError(f"-p {name}={extras[name]}: must be at least {low}")
    for name in extras:
        unused = UNUSED_BY.get(name, ())
        if notebook_names and all(n[:2] in unused for n in notebook_names):
            readers = ", ".join(n for n in NOTEBOOK_PARAMS if n not in unused)
            raise ParameterError(f"-p {name}: notebooks {', '.join(notebook_names)} declare it but do not use it "
                                 f"(their sizes and epochs are the profile's); drop it, or run a notebook that "
                                 f"reads it ({readers})")
