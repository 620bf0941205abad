"""Gate checks: one result type for every check, whatever computed it.

A check reads like a linter message with its numbers (`coverage 0.61 < 0.80 (real hold-out
0.95)`): which metric, what was observed, what the threshold was and why it matters. The Great
Expectations contracts (contracts.py) and the threshold checks that stages add all end as
`Check` rows in report.json's `gate.checks`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Check:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    message: str
    # For checks against the real hold-out: its figure and its interval [low, high].
    reference: Any = None
    interval: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("reference", "interval"):
            if out[key] is None:
                del out[key]
        return out


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def at_most(name: str, observed: float, limit: float, what: str, context: str = "") -> Check:
    """Passes when observed <= limit; the message says by how much it is over."""
    passed = bool(observed <= limit)
    rel = "<=" if passed else ">"
    extra = f" ({context})" if context else ""
    return Check(name, passed, observed, limit,
                 f"{what} {_fmt(observed)} {rel} {_fmt(limit)}{extra}")


def at_least(name: str, observed: float, limit: float, what: str, context: str = "") -> Check:
    """Passes when observed >= limit; the message says by how much it fell short."""
    passed = bool(observed >= limit)
    rel = ">=" if passed else "<"
    extra = f" ({context})" if context else ""
    return Check(name, passed, observed, limit,
                 f"{what} {_fmt(observed)} {rel} {_fmt(limit)}{extra}")


def gate_passed(checks: list[Check]) -> bool:
    return all(c.passed for c in checks)
