"""`synthgate compare RUN_A RUN_B`: how the metrics moved between two runs.

Made for rounds of self-training: run the gate on round k and round k+1 and see whether the
synthetic data lost contact with the real data. Every metric both reports share is printed
with its change; the *tracked* ones (fidelity, rare-cluster coverage, diversity of the
synthetic sets) decide the exit status: 1 when one of them got worse by more than the
tolerance (relative to run A), else 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .ingest import InputError

DEFAULT_TOLERANCE = 0.05

# (section, metric) -> +1 when higher is better, -1 when lower is better.
TRACKED: dict[tuple[str, str], int] = {}
for _section in ("fidelity", "fidelity_kept"):
    TRACKED.update({(_section, "precision"): 1, (_section, "recall"): 1,
                    (_section, "coverage"): 1, (_section, "frechet"): -1})
TRACKED.update({("tails", "rare_coverage_in"): 1, ("tails", "rare_coverage_kept"): 1})
for _section in ("synthetic_in", "synthetic_kept"):
    TRACKED.update({(_section, "vendi"): 1, (_section, "distinct_2"): 1,
                    (_section, "distinct_4"): 1, (_section, "compression_ratio"): -1})


def load_report(run: str | Path) -> dict[str, Any]:
    """report.json of a run directory (or the file itself)."""
    path = Path(run)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{run}: no report.json (is it a synthgate run directory?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable report.json: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: not a readable report.json: nested too deeply") from None
    check_shape(report, path)
    return report


def check_shape(report: Any, path: Path) -> None:
    """The parts of report.json (DESIGN.md §4) that compare reads must have their shape: a
    report from another tool, or a hand-edited one, is refused with a message, never a
    traceback."""
    if not isinstance(report, dict):
        raise InputError(f"{path}: not a synthgate report: expected a JSON object, got "
                         f"{type(report).__name__}")
    if not isinstance(report.get("metrics"), dict):
        raise InputError(f"{path}: not a synthgate report: no 'metrics' object")
    gate = report.get("gate", {})
    if not isinstance(gate, dict):
        raise InputError(f"{path}: not a synthgate report: 'gate' is not an object")


def flat_metrics(report: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(section, metric) -> value for every number directly under a metrics section."""
    out = {}
    for section, values in (report.get("metrics") or {}).items():
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                out[(section, name)] = float(value)
    return out


def worsening(a: float, b: float, direction: int) -> float:
    """How much worse b is than a, relative to |a| (absolute when a is 0); <= 0 if not worse."""
    change = (a - b) if direction > 0 else (b - a)
    return change / abs(a) if a else change


def compare(run_a: str | Path, run_b: str | Path, tolerance: float | None = None) -> int:
    """Prints how every shared metric moved from run A to run B; returns 1 when a tracked
    metric got worse by more than `tolerance` (relative), else 0."""
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance)
            and tolerance >= 0):
        raise InputError(f"--tolerance: {tolerance} is not a finite number >= 0")
    report_a, report_b = load_report(run_a), load_report(run_b)
    metrics_a, metrics_b = flat_metrics(report_a), flat_metrics(report_b)
    shared = [key for key in metrics_a if key in metrics_b]
    if not shared:
        raise InputError(f"{run_a} and {run_b}: the reports share no metric")

    def verdict(report: dict) -> str:
        return "passed" if report.get("gate", {}).get("passed") else "FAILED"

    print(f"A {run_a}: gate {verdict(report_a)}")
    print(f"B {run_b}: gate {verdict(report_b)}")
    print(f"{'metric':<34} {'A':>10} {'B':>10} {'change':>9}")
    fallen = []
    for key in shared:
        a, b = metrics_a[key], metrics_b[key]
        rel = (b - a) / abs(a) if a else (b - a)
        note = ""
        if key in TRACKED:
            worse = worsening(a, b, TRACKED[key])
            if worse > tolerance:
                fallen.append((key, worse))
                note = f"  WORSE by {worse:.1%} (tolerance {tolerance:.1%})"
        else:
            note = "  (not tracked)"
        print(f"{key[0] + '.' + key[1]:<34} {a:>10.4g} {b:>10.4g} {rel:>+9.1%}{note}")
    # A tracked metric that run A measured and run B did not (a stage left out, too few
    # records) cannot be shown not to have fallen: it counts as fallen, and says why.
    missing = [key for key in metrics_a if key in TRACKED and key not in metrics_b]
    for key in missing:
        print(f"{key[0] + '.' + key[1]:<34} {metrics_a[key]:>10.4g} {'missing':>10}"
              f" {'':>9}  MISSING in B (tracked)")
        fallen.append((key, math.inf))
    if fallen:
        names = ", ".join(f"{s}.{m}" for (s, m), _ in fallen)
        print(f"{len(fallen)} tracked metric(s) got worse past the tolerance or are missing "
              f"in B: {names}")
        return 1
    print(f"no tracked metric got worse by more than {tolerance:.1%}")
    return 0
