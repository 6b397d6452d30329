"""JSON text exactly as the Rust SDK (serde_json) writes it, so that a plan built in Python is
byte-identical to the same plan built in Rust: no spaces, keys in the order given, non-ASCII text
unescaped, and floats in Rust's shortest form (``1.0``, ``1e-7``, ``1e16``)."""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any) -> str:
    """``value`` (dicts, lists, text, numbers, booleans, None) as compact JSON text.

    >>> dumps({"epsilon": 1.0, "tiny": 1e-07, "n": 3, "k": ["Zürich", True]})
    '{"epsilon":1.0,"tiny":1e-7,"n":3,"k":["Zürich",true]}'
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"{x} cannot be written as JSON; plans and tables hold finite numbers")
    text = repr(x)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(k), ensure_ascii=False))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
