"""The speak policy: decides when the companion talks, so it reacts to what matters and never floods.

Rules, in order:
- a question from the player always goes first and ignores cooldowns;
- events below `min_priority` are never spoken;
- an event not spoken within `max_age_s` is dropped as stale, unless it is critical;
- after a line ends, the companion stays quiet for `cooldown_s`; critical events may cut that short;
- each event type has its own cooldown (`type_cooldown_s`), so a coin streak is not cheered every time;
- events still pending when the companion is free are merged into one line, highest priority first.

Every rule is timed on the policy's clock (`now`: the wall clock, or the frames' own times with `policy.clock:
media`); latency is always measured on the wall clock (`wall`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kibitz.core.config import PolicyConfig
from kibitz.core.records import Event


@dataclass(slots=True)
class Pending:
    event: Event
    at: float
    """The policy's clock when the event was detected."""
    wall: float
    """Wall-clock time (perf_counter) when the event was detected."""


@dataclass(slots=True)
class SpeakRequest:
    events: list[Event]
    wall: float
    """Wall-clock time of the earliest event in the request (latency is measured from here)."""
    question: str | None = None
    reasons: list[str] = field(default_factory=list)
    released: float | None = None
    """Wall-clock time the policy decided to speak (later than `wall` when a cooldown held the event)."""

    @property
    def trigger(self) -> str:
        return self.events[0].type


class SpeakPolicy:
    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.pending: list[Pending] = []
        self.last_end: float | None = None
        self.last_by_type: dict[str, float] = {}
        self.dropped: list[tuple[Event, str]] = []
        self.cooldown_factor = 1.0
        """Scales every cooldown: the player's profile (frequency quiet 2.5, lively 0.6)."""

    def offer(self, event: Event, now: float, wall: float | None = None) -> None:
        """An event was detected at `now` on the policy's clock (`wall` on the wall clock, if that is another)."""
        if event.priority < self.config.min_priority and event.type != "question":
            self.dropped.append((event, "below min_priority"))
            return
        self.pending.append(Pending(event, now, now if wall is None else wall))

    def _expire(self, now: float) -> None:
        keep: list[Pending] = []
        for p in self.pending:
            critical = p.event.priority >= self.config.critical_priority
            if now - p.at > self.config.max_age_s and not critical and p.event.type != "question":
                self.dropped.append((p.event, f"stale after {now - p.at:.1f}s"))
            else:
                keep.append(p)
        self.pending = keep

    def _type_ready(self, p: Pending, now: float) -> bool:
        cooldown = self.config.type_cooldown_s.get(p.event.type, 0.0) * self.cooldown_factor
        last = self.last_by_type.get(p.event.type)
        return last is None or now - last >= cooldown

    def next(self, now: float, wall: float | None = None) -> SpeakRequest | None:
        """The next thing to say, if anything should be said now (call only while the companion is free)."""
        wall = now if wall is None else wall
        self._expire(now)
        if not self.pending:
            return None
        questions = [p for p in self.pending if p.event.type == "question"]
        if questions:
            q = questions[0]
            self.pending.remove(q)
            question = str(q.event.data.get("text", ""))
            return SpeakRequest([q.event], q.wall, question=question, reasons=["question"], released=wall)
        in_cooldown = self.last_end is not None and now - self.last_end < self.config.cooldown_s * self.cooldown_factor
        ready: list[Pending] = []
        for p in self.pending:
            if not self._type_ready(p, now):
                continue
            if in_cooldown and p.event.priority < self.config.critical_priority:
                continue
            ready.append(p)
        if not ready:
            # Events held back by a per-type cooldown are dropped, not queued: the moment has passed.
            for p in list(self.pending):
                if not self._type_ready(p, now):
                    self.pending.remove(p)
                    self.dropped.append((p.event, f"{p.event.type} cooldown"))
            return None
        ready.sort(key=lambda p: (-p.event.priority, p.at))
        for p in ready:
            self.pending.remove(p)
            self.last_by_type[p.event.type] = now
        reasons = ["critical during cooldown" if in_cooldown else "free"]
        if len(ready) > 1:
            reasons.append(f"merged {len(ready)} events")
        return SpeakRequest([p.event for p in ready], min(p.wall for p in ready), reasons=reasons, released=wall)

    def spoke(self, end: float) -> None:
        """The companion finished a line at `end` on the policy's clock."""
        self.last_end = end
