"""Node-side faults: what the policy node itself detects, latched until someone asks to resume.

Sources (one reason each): `input` (a message that cannot be decoded), `cycle` (an exception in
a control cycle), `watchdog` (joint states
silent, frozen or stamped in the future), `clock` (the sim clock stopped advancing),
`readiness` (the hardware supervisor says not ready, or went silent), `publisher` (a second
publisher on the joint-state input or the command topic), `restart` (sim time went back: present
until a joint state and every pose arrived from the restarted simulation). Faults the core detects in the
measurements themselves are latched by the core (`SteeringController.hold`); this board only
decides the node's own.

A fault is *present* while its cause lasts and *latched* from its first report until `resume`
(the `~/resume` service, or deactivate/activate). `resume` is refused while any fault is still
present. Staleness (silence, frozen stamps, a stopped sim clock, silent readiness) may release
itself once the cause is gone when `auto_resume_stale` is set; nothing else ever does.

Thread-safe: the control thread reports inputs, time and readiness, the executor thread other
publishers.
"""

from __future__ import annotations

import threading

SOURCES = ('input', 'cycle', 'watchdog', 'clock', 'restart', 'readiness', 'publisher')


class FaultBoard:
    def __init__(self, auto_resume_stale: bool = False) -> None:
        self.auto_resume_stale = auto_resume_stale
        self._lock = threading.Lock()
        self._present: dict[str, str] = {}
        self._latched: dict[str, str] = {}
        self._stale: set[str] = set()
        self.generation = 0  # bumped whenever the latched set changes (the node re-latches the core)

    def report(self, source: str, reason: str, *, stale: bool = False) -> None:
        """`reason` non-empty: the fault is present now; empty: its cause is gone."""
        with self._lock:
            if reason:
                self._present[source] = reason
                if source not in self._latched:
                    self.generation += 1
                self._latched[source] = reason
                if stale:
                    self._stale.add(source)
                else:
                    self._stale.discard(source)
            elif source in self._present:
                del self._present[source]
                if self.auto_resume_stale and source in self._stale and source in self._latched:
                    del self._latched[source]
                    self._stale.discard(source)
                    self.generation += 1

    def present(self, source: str) -> str:
        with self._lock:
            return self._present.get(source, '')

    @property
    def holding(self) -> bool:
        return bool(self._latched)

    def reason(self) -> str:
        """Why the node holds ('' when it does not): present causes first, then latched ones."""
        with self._lock:
            parts = [r for s, r in self._latched.items() if s in self._present]
            cleared = [r for s, r in self._latched.items() if s not in self._present]
        if cleared:
            parts.append('cleared, waiting for ~/resume: ' + '; '.join(cleared))
        return '; '.join(parts)

    def resume(self) -> str:
        """Release every latched fault; refused (the reason returned) while one is present."""
        with self._lock:
            if self._present:
                return 'still present: ' + '; '.join(self._present.values())
            if self._latched:
                self.generation += 1
            self._latched.clear()
            self._stale.clear()
            return ''

    def clear(self) -> None:
        """Forget everything (activation starts afresh; its own checks ran just before)."""
        with self._lock:
            self._present.clear()
            self._latched.clear()
            self._stale.clear()
            self.generation += 1
