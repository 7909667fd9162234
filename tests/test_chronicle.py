"""The session's chronicle: each event gets its facts (how, where, how often, compared with the session's best)."""

from __future__ import annotations

from typing import Any

import pytest

from kibitz.core.facts import ordinal, particulars, with_particulars
from kibitz.core.records import Event, Facts, Frame, Observation, Provenance, Reading
from kibitz.games import get_game
from kibitz.games.smb import enemy_touching
from kibitz.state.chronicle import Chronicle
from kibitz.state.detectors import DETECTORS


class Runner:
    """A platformer 1000 pixels long whose deaths are falls when `fell` is set."""

    def progress(self, obs: Observation) -> float | None:
        x = obs.value("x")
        return None if x is None else x / 1000

    def death_cause(self, obs: Observation) -> tuple[str, str | None] | None:
        return ("fell into a pit", None) if obs.value("fell") else None

    def level_name(self, obs: Observation) -> str | None:
        return f"World {obs.value('world')}-{obs.value('stage')}"


def obs(t: float, scene: str = "gameplay", **values: Any) -> Observation:
    fields = {k: Reading(v, Provenance.RAM) for k, v in values.items()}
    return Observation(t=t, frame_index=int(t * 10), game="runner", game_confidence=1.0, scene=scene, fields=fields)


def event(t: float, type_: str, summary: str = "Something happened.", **data: Any) -> Event:
    return Event(t=t, type=type_, priority=8, summary=summary, data=data)


def play(chronicle: Chronicle, t: float, x: int, level: tuple[int, int] = (1, 1), **extra: Any) -> list[Event]:
    return chronicle.update(obs(t, world=level[0], stage=level[1], x=x, score=int(t * 10), **extra), [])


def test_deaths_get_their_cause_place_count_and_the_sessions_best() -> None:
    c = Chronicle(Runner(), ["world", "stage"])  # type: ignore[arg-type]
    for t in range(0, 20):
        play(c, float(t), 30 * t)  # runs to 570 px (57 %)
    play(c, 20.0, 570, fell=True)
    [first] = c.update(obs(20.1, world=1, stage=1, x=570, score=201), [event(20.1, "death", "The player just died.")])
    f = first.facts
    assert (f.cause, f.level, f.nth, f.nth_here, f.best_progress) == ("fell into a pit", "1-1", 1, 1, None)
    assert f.progress == pytest.approx(0.57) and f.lasted_s == pytest.approx(20.1) and f.gained == 201
    assert first.headline == "The player just died."
    assert first.summary.startswith("The player just died: fell into a pit; 57% of the way through World 1-1")
    assert ("cause", "fell into a pit") in first.details

    # The next life gets past the best (57 %) by more than the margin: a new best in this level, reported once.
    records = [e for t in range(30, 60) for e in play(c, float(t), 20 * (t - 30) + 300)]
    assert [e.type for e in records] == ["record"]
    assert records[0].facts.best_progress == pytest.approx(0.57) and records[0].facts.nth_here == 1
    assert "the best before was 57%, with 1 death there" in records[0].summary
    [second] = c.update(obs(60.0, world=1, stage=1, x=590, score=600), [event(60.0, "death")])
    assert second.facts.nth_here == 2 and second.facts.best_progress == pytest.approx(0.57)
    assert "the 2nd death in World 1-1 this session" in second.summary
    assert "further than any earlier try at World 1-1" in second.summary


def test_level_changes_and_game_overs() -> None:
    c = Chronicle(Runner(), ["world", "stage"])  # type: ignore[arg-type]
    play(c, 0.0, 10)
    play(c, 40.0, 900)
    [change] = c.update(obs(45.0, world=1, stage=2, x=0), [event(45, "level_change", level="1-2", previous="1-1")])
    assert (change.facts.first_visit, change.facts.previous, change.facts.lasted_s) == (True, "1-1", 45.0)
    assert "the first time in World 1-2 this session; 1-1 took 45 seconds" in change.summary
    [over] = c.update(obs(50.0, "game_over", world=1, stage=2, score=1200), [event(50.0, "game_over")])
    assert over.facts.score == 1200 and over.facts.best_score is None
    # A new game starts back in 1-1 without a level-change event: the chronicle follows it.
    c.update(obs(55.0, "title"), [])
    play(c, 60.0, 10)
    assert c.level == "1-1"
    [again] = c.update(obs(99.0, world=1, stage=2, x=0), [event(99, "level_change", level="1-2", previous="1-1")])
    assert again.facts.first_visit is False and again.facts.lasted_s == pytest.approx(39.0)
    assert "back in World 1-2, reached 2 times this session" in again.summary
    [second] = c.update(obs(120.0, "game_over", world=1, stage=2, score=800), [event(120.0, "game_over")])
    assert second.facts.best_score == 1200 and "the best game this session scored 1200" in second.summary


def test_a_game_without_levels_still_counts_lives() -> None:
    c = Chronicle(None, [])
    c.update(obs(0.0, score=0, lives=3), [])
    [one] = c.update(obs(10.0, score=40, lives=2), [event(10.0, "death", "The player just died (2 lives left).")])
    c.update(obs(12.0, score=40, lives=2), [])
    [two] = c.update(obs(15.0, score=55, lives=1), [event(15.0, "death", "The player just died (1 life left).")])
    assert (one.facts.nth, one.facts.gained, one.facts.lasted_s) == (1, 40, 10.0)
    assert (two.facts.nth, two.facts.gained, two.facts.lasted_s) == (2, 15, 3.0)
    assert two.summary == (
        "The player just died (1 life left): the 2nd death this session; that life lasted 3 seconds; "
        "15 points scored in that life."
    )


def test_facts_are_phrased_from_data_and_round_trip_as_json() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
    ]  # fmt: skip
    assert particulars("death", Facts()) == []
    assert with_particulars("Nothing more.", []) == "Nothing more."
    details = tuple(particulars("death", Facts(cause="ran into a Goomba", culprit="Goomba", nth=1)))
    e = Event(1.0, "death", 8, "The player died: ran into a Goomba.", facts=Facts(culprit="Goomba"), details=details)
    back = Event.from_json(e.to_json())
    assert (back.facts, back.details, back.id) == (e.facts, e.details, e.id)


def test_smb_names_the_enemy_mario_touched() -> None:
    state = {"x": 500, "y": 176, "enemies": [(900, 176), (512, 180)], "enemy_ids": [0x06, 0x06]}
    assert enemy_touching(state) == "Goomba"
    assert enemy_touching({**state, "enemies": [(900, 176), (600, 176)]}) is None
    assert enemy_touching({**state, "enemy_ids": [0x06, 0x2E]}) is None  # a power-up is no enemy


def test_smb_deaths_from_its_ram_carry_their_cause() -> None:
    """The built-in player's first death in a real Super Mario Bros. run (seed 1) is a Goomba, halfway through 1-1."""
    game = get_game("smb")
    env, player = game.make_env(), game.make_player(1)
    c = Chronicle(game, ["world", "stage"])
    detector = DETECTORS.get("death")(lives="lives", dying="dying", level=["world", "stage"])
    env.reset(1)
    deaths: list[Event] = []
    for i in range(60 * 40):
        state = env.state()
        seen = game.observe(Frame(i / 60, env.step(player.act(state, i)), "test", i, env.state()))
        deaths += c.update(seen, detector.update(seen))
        if deaths:
            break
    env.close()
    assert deaths, "no death in 40 s of play"
    f = deaths[0].facts
    assert f.cause is not None and f.level == "1-1" and f.progress is not None and 0.1 < f.progress < 1.0


def test_starts_streaks_milestones_and_stalls_get_their_particulars_too() -> None:
    """A friend says "third game tonight", "another coin streak, in 1-2", "5000 points, a minute in", "stuck after
    two deaths here": the events that had only their own words carry the session's facts as well."""
    c = Chronicle(Runner(), ["world", "stage"])
    c.update(obs(0.0, world=1, stage=1, score=0, x=10), [])
    start = c.update(obs(1.0, world=1, stage=1, score=0, x=10), [event(1.0, "game_start")])[0]
    assert start.details == ()  # the first game of the session is nothing to remark on
    first = c.update(obs(5.0, world=1, stage=1, x=100), [event(5.0, "coin_streak")])[0]
    assert ("first", "the first coin streak this session") in first.details
    assert ("place", "in World 1-1") in first.details
    second = c.update(obs(9.0, world=1, stage=1, x=200), [event(9.0, "coin_streak")])[0]
    assert ("count", "the 2nd coin streak this session") in second.details
    milestone = c.update(obs(61.0, world=1, stage=1, x=300), [event(61.0, "score_milestone", value=5000)])[0]
    assert ("time", "61 seconds into this game") in milestone.details
    c.update(obs(62.0, world=1, stage=1, x=300, lives=2), [event(62.0, "death")])
    c.update(obs(63.0, world=1, stage=1, x=10, lives=2), [])
    stall = c.update(obs(80.0, world=1, stage=1, x=310, lives=2), [event(80.0, "stall")])[0]
    assert ("count", "after 1 death in World 1-1 this session") in stall.details
    c.update(obs(90.0, "game_over", world=1, stage=1, score=2000), [event(90.0, "game_over")])
    again = c.update(obs(95.0, world=1, stage=1, score=0, x=10), [event(95.0, "game_start")])[0]
    assert ("count", "the 2nd game this session") in again.details
    assert ("best", "the best game so far scored 2000") in again.details


def test_a_close_call_is_one_event_and_a_stomp_a_hit_or_a_death_is_none() -> None:
    from kibitz.state.detectors import NearMissDetector

    def run(*frames: dict[str, Any]) -> list[Event]:
        d = NearMissDetector("touching")
        out: list[Event] = []
        for n, values in enumerate(frames):
            out += d.update(obs(n * 0.5, **{"lives": 2, "score": 100, "big": False, "touching": None, **values}))
        return out

    close = run({}, {"touching": "Goomba"}, {"touching": "Goomba"}, {}, {}, {}, {"touching": "Koopa Troopa"}, {}, {})
    assert [e.data["culprit"] for e in close] == ["Goomba"]  # the Koopa came too near the end to be judged
    assert close[0].summary == "A Goomba nearly got the player."
    assert run({}, {"touching": "Goomba"}, {"score": 200}, {}, {}, {}) == []  # stomped
    assert run({}, {"touching": "Goomba"}, {"lives": 1}, {}, {}, {}) == []  # died
    assert run({"big": True}, {"touching": "Goomba", "big": True}, {}, {}, {}, {}) == []  # shrank
    assert len(run({}, *[{"touching": "Goomba"}] * 12)) == 1  # one contact, one close call
