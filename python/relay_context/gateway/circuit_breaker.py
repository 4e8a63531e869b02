"""A circuit breaker per upstream deployment.

``closed``: calls go through; ``failure_threshold`` failures in a row open it. ``open``: no
call for ``cooldown`` seconds (fallbacks skip the deployment). ``half_open``: after the
cooldown, one probe goes through; its success closes the circuit, its failure opens it again.
Client errors (4xx other than 408/429) are not the deployment's failures.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


#: Gauge values of ``relay_circuit_breaker_state``.
STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass
class CircuitBreaker:
    failure_threshold: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def allow(self) -> bool:
        """Whether a call may go to the deployment now (a half-open circuit lets one probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self.clock() - self.opened_at < self.cooldown:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def retry_after(self) -> float:
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probing = False

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()
            self.probing = False

    def release(self) -> None:
        """A probe that ended neither way (the client went away): let the next one try."""
        self.probing = False


@dataclass
class BreakerBoard:
    """The breakers of every deployment, created on first use."""

    failure_threshold: int
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def get(self, key: str) -> CircuitBreaker:
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(self.failure_threshold, self.cooldown, self.clock)
            self.breakers[key] = breaker
        return breaker

    def configure(self, failure_threshold: int, cooldown: float) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        for breaker in self.breakers.values():
            breaker.failure_threshold = failure_threshold
            breaker.cooldown = cooldown

    def states(self) -> dict[str, str]:
        return {key: b.state.value for key, b in self.breakers.items()}


__all__ = ["STATE_VALUES", "BreakerBoard", "BreakerState", "CircuitBreaker"]
