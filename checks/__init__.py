"""Data contracts and gate checks: Great Expectations suites on input and output, and the
threshold checks the stages add. Every result is a `Check`."""

from .gate import Check, at_least, at_most, gate_passed

__all__ = ["Check", "at_least", "at_most", "gate_passed"]
