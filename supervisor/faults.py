"""The faults a run met and survived, by kind, as the driver saw them."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class FaultLog:
    """Faults the driver handled (actor restarts) or caused (a soak's injections), each with its time."""

    started: float = field(default_factory=time.monotonic)
    survived: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)
    events: list[dict] = field(default_factory=list)

    def _event(self, what: str, kind: str, detail: str) -> None:
        at = time.monotonic() - self.started
        self.events.append({"at_s": round(at, 1), what: kind, "detail": detail})
        log.warning("fault %s at %.1f s: %s (%s)", what, at, kind, detail)

    def inject(self, kind: str, detail: str, count: int = 1) -> None:
        self.injected[kind] += count
        self._event("injected", kind, detail)

    def survive(self, kind: str, detail: str) -> None:
        self.survived[kind] += 1
        self._event("survived", kind, detail)
