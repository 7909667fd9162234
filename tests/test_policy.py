from kibitz.brain.policy import SpeakPolicy
from kibitz.core.config import PolicyConfig
from kibitz.core.records import Event
from kibitz.state.detectors import PRIORITY


def ev(type_: str, t: float = 0.0, **data: object) -> Event:
    return Event(t=t, type=type_, priority=PRIORITY.get(type_, 1), summary=type_, data=dict(data))


def policy(**kw: object) -> SpeakPolicy:
    return SpeakPolicy(PolicyConfig(**kw))  # type: ignore[arg-type]


def test_silence_when_nothing_happens() -> None:
    assert policy().next(0.0) is None


def test_cooldown_holds_minor_events_but_not_critical_ones() -> None:
    p = policy(cooldown_s=6.0)
    p.offer(ev("stall"), 0.0)
    assert p.next(0.0) is not None
    p.spoke(1.0)
    p.offer(ev("coin_streak"), 2.0)
    assert p.next(2.0) is None  # in cooldown, not critical
    p.offer(ev("death"), 3.0)
    req = p.next(3.0)
    assert req is not None and req.trigger == "death"


def test_questions_jump_the_queue_and_ignore_cooldown() -> None:
    p = policy(cooldown_s=100.0)
    p.spoke(0.0)
    p.offer(ev("death"), 1.0)
    p.offer(ev("question", text="how many lives?"), 1.1)
    req = p.next(1.2)
    assert req is not None and req.question == "how many lives?"


def test_near_simultaneous_events_merge_highest_first() -> None:
    p = policy()
    p.offer(ev("death"), 0.0)
    p.offer(ev("game_over"), 0.1)
    req = p.next(0.2)
    assert req is not None
    assert [e.type for e in req.events] == ["game_over", "death"]
    assert p.next(0.3) is None


def test_stale_events_are_dropped_unless_critical() -> None:
    p = policy(max_age_s=2.0)
    p.offer(ev("coin_streak"), 0.0)
    p.offer(ev("death"), 0.0)
    req = p.next(5.0)
    assert req is not None and [e.type for e in req.events] == ["death"]
    assert any("stale" in why for _, why in p.dropped)


def test_per_type_cooldown_drops_repeats() -> None:
    p = policy(cooldown_s=0.0, type_cooldown_s={"coin_streak": 20.0})
    p.offer(ev("coin_streak"), 0.0)
    assert p.next(0.0) is not None
    p.spoke(0.5)
    p.offer(ev("coin_streak"), 5.0)
    assert p.next(5.0) is None
    assert p.pending == []
    p.offer(ev("coin_streak"), 25.0)
    assert p.next(25.0) is not None


def test_min_priority_silences_minor_events() -> None:
    p = policy(min_priority=5)
    p.offer(ev("score_milestone"), 0.0)
    assert p.next(0.0) is None
    assert p.dropped and p.dropped[0][1] == "below min_priority"


def test_a_flood_of_events_yields_few_lines() -> None:
    p = policy(cooldown_s=6.0)
    spoken = 0
    for i in range(600):  # one minor event every 0.1 s for a minute
        now = i * 0.1
        p.offer(ev("score_milestone", t=now), now)
        if p.next(now) is not None:
            spoken += 1
            p.spoke(now + 1.0)
    assert 1 <= spoken <= 3  # type cooldown 25 s + global cooldown: at most one line per 25 s


def test_release_time_records_how_long_a_cooldown_held_an_event() -> None:
    p = policy(cooldown_s=6.0, max_age_s=10.0, type_cooldown_s={})
    p.offer(ev("stall"), 0.0)
    assert p.next(0.0) is not None
    p.spoke(1.0)
    p.offer(ev("stall", t=2.0), 2.0)
    assert p.next(2.0) is None  # held by the cooldown
    req = p.next(7.5)
    assert req is not None and req.released == 7.5 and req.wall == 2.0


def test_the_policy_times_its_rules_on_its_own_clock_and_latency_on_the_wall() -> None:
    """policy.clock media: cooldowns and ages on the frames' times (a replay), latency still from the wall clock."""
    p = policy()
    p.offer(ev("stall"), 100.0, wall=5.0)
    req = p.next(100.5, wall=5.2)
    assert req is not None and req.wall == 5.0 and req.released == 5.2
    p.spoke(101.0)
    p.offer(ev("coin_streak"), 103.0, wall=5.3)
    assert p.next(103.0, wall=5.3) is None  # within cooldown_s of the line's end on the policy's clock
    p.offer(ev("stall"), 108.0, wall=5.4)
    assert p.next(120.0, wall=5.5) is None and any("stale" in why for _, why in p.dropped)  # aged on that clock too
