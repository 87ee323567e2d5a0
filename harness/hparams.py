"""Hyper-parameter resolution: method defaults < suite file < command line (``--set method.key=value``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from harness.registry import MethodSpec, did_you_mean


def parse_set_options(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``["salun.lr=0.1", "finetune.epochs=3"]`` -> ``{"salun": {"lr": "0.1"}, "finetune": {"epochs": "3"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--set {item!r}: expected METHOD.NAME=VALUE, e.g. --set finetune.lr=0.01")
        lhs, value = item.split("=", 1)
        method, key = lhs.split(".", 1)
        out.setdefault(method.strip(), {})[key.strip()] = value.strip()
    return out


def coerce(value: Any, default: Any, where: str) -> Any:
    """Convert ``value`` to the type of ``default`` (strings from the command line included)."""
    if default is None or value is None:
        if isinstance(value, str) and value.lower() in ("none", "null"):
            return None
        return value
    target = type(default)
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if target is int:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(value)  # "2.5" must not become 2 silently
            return int(number)
        if target is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: cannot use {value!r} as a {target.__name__}") from exc


def resolve_hparams(spec: MethodSpec, *layers: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Merge override layers over the method's defaults, checking names and types."""
    resolved = dict(spec.hparams)
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in spec.hparams:
                raise ValueError(f"{where or 'hyper-parameters'}: {spec.name!r} has no hyper-parameter {key!r}"
                                 f"{did_you_mean(key, spec.hparams)}")
            resolved[key] = coerce(value, spec.hparams[key], f"{spec.name}.{key}")
    return resolved


def config_hash(method: str, hparams: Mapping[str, Any]) -> str:
    blob = json.dumps({"method": method, "hparams": dict(hparams)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
