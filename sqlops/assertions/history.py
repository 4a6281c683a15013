"""What prev() and anomaly() expect, from the values an environment recorded before."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_Z = 3.0
MIN_VALUES = 5  # below this, anomaly() is training: it passes and says so
PREV = "prev"
ANOMALY = "anomaly"


@dataclass(frozen=True)
class Expectation:
    """A value is expected within mean ± z·stddev of the recorded ones."""

    mean: float
    stddev: float
    z: float
    count: int

    @property
    def low(self) -> float:
        return self.mean - self.z * self.stddev - self._slack

    @property
    def high(self) -> float:
        return self.mean + self.z * self.stddev + self._slack

    @property
    def _slack(self) -> float:
        # the same aggregate computed twice may differ in its last bits
        return 1e-9 * max(1.0, abs(self.mean))

    def to_json(self) -> dict[str, float | int]:
        return {
            "mean": self.mean,
            "stddev": self.stddev,
            "z": self.z,
            "low": self.mean - self.z * self.stddev,
            "high": self.mean + self.z * self.stddev,
            "values": self.count,
        }


def expect(values: Sequence[float], z: float = DEFAULT_Z) -> Expectation | None:
    """None while there are too few values to learn from."""
    if len(values) < MIN_VALUES:
        return None
    return Expectation(statistics.fmean(values), statistics.stdev(values), z, len(values))
