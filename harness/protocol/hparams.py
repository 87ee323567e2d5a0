"""Hyper-parameter resolution: method defaults < suite file ([method], then [method.<kind>]) < command line
(``--set method.key=value``); and the tuning record behind a suite setting (``unlearn-bench tune``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from harness.core.registry import did_you_mean
from harness.protocol.methods import MethodSpec


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


# ------------------------------------------------------------------ per-scenario-kind suite hyper-parameters
# A suite's hparams file may give a method's settings per scenario kind, next to the settings for both:
#
#   [finetune]            # both kinds
#   batch_size = 128
#   [finetune.random]     # random scenarios only (wins over [finetune])
#   lr = 0.03
#   [finetune.random.tuning]   # written by `unlearn-bench tune`: how this setting was chosen
#   budget = 16
#
# A sub-table is never a hyper-parameter (those are scalars), so the two cannot be confused.
TUNING_TABLE = "tuning"
TUNING_COLUMNS = ("tuning_budget", "tuning_trials", "tuned_on", "tuning_at_bound")


def _kinds() -> tuple[str, ...]:
    from harness.protocol.scoring import SCENARIO_KINDS  # every kind is tuned on its own (docs/scenarios.md)

    return SCENARIO_KINDS


def method_table(hparams: Mapping[str, Any], method: str, kind: str | None = None) -> dict[str, Any]:
    """The scalar settings of ``[method]`` (``kind`` None) or ``[method.<kind>]``; checks the sub-tables."""
    table = hparams.get(method) or {}
    where = f"hparams file [{method}]"
    for key, value in table.items():
        if isinstance(value, Mapping) and key not in _kinds():
            raise ValueError(f"{where}: unknown sub-table [{method}.{key}]: expected a scenario kind "
                             f"({', '.join(_kinds())}){did_you_mean(key, _kinds())}")
    if kind is None:
        return {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    sub = table.get(kind) or {}
    for key, value in sub.items():
        if isinstance(value, Mapping) and key != TUNING_TABLE:
            raise ValueError(f"hparams file [{method}.{kind}]: unknown sub-table [{method}.{kind}.{key}]"
                             f"{did_you_mean(key, [TUNING_TABLE])}")
    return {k: v for k, v in sub.items() if not isinstance(v, Mapping)}


def suite_layer(hparams: Mapping[str, Any], method: str, kind: str) -> dict[str, Any]:
    """A method's suite settings for one scenario kind: ``[method]`` overlaid with ``[method.<kind>]``."""
    return {**method_table(hparams, method), **method_table(hparams, method, kind)}


def tuning_record(hparams: Mapping[str, Any], method: str, kind: str) -> dict[str, Any]:
    """``[method.<kind>.tuning]`` (empty when the setting was not tuned by ``unlearn-bench tune``)."""
    record = ((hparams.get(method) or {}).get(kind) or {}).get(TUNING_TABLE) or {}
    return dict(record) if isinstance(record, Mapping) else {}


def tuning_columns(record: Mapping[str, Any] | None, overridden: bool = False) -> dict[str, Any]:
    """The result-row columns that say how a configuration was tuned (zeros / empty when it was not).

    ``overridden``: ``--set`` changed the method's settings, so the run is not the tuned configuration.
    """
    if not record or overridden:
        return {"tuning_budget": 0, "tuning_trials": 0, "tuned_on": "overridden by --set" if record else "",
                "tuning_at_bound": ""}
    return {"tuning_budget": int(record.get("budget", 0)), "tuning_trials": int(record.get("trials", 0)),
            "tuned_on": str(record.get("tuned_on", "")),
            "tuning_at_bound": ",".join(str(k) for k in record.get("at_bound", []))}
