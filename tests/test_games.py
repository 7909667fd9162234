"""Real emulator runs: events detected from observations are checked against the RAM truth."""

from __future__ import annotations

import itertools

from kibitz.core.records import Event
from kibitz.games import get_game
from kibitz.games.smb import SMBEnv, true_deaths
from kibitz.sources.emulator import EmulatorSource
from kibitz.state.tracker import StateTracker


def run(game_id: str, seconds: float, fps: float = 60.0, seed: int = 0):  # type: ignore[no-untyped-def]
    game = get_game(game_id)
    source = EmulatorSource(game, fps=fps, realtime=False, seed=seed)
    tracker = StateTracker(game.detectors())
    events: list[Event] = []
    states = []
    for frame in source.frames():
        events += tracker.update(game.observe(frame))
        states.append((frame.t, frame.state))
        if frame.t >= seconds:
            break
    return source, events, states


def test_smb_every_death_caught_once() -> None:
    _, events, states = run("smb", 75.0)
    truth = true_deaths(states)
    deaths = [e.t for e in events if e.type == "death"]
    assert len(truth) >= 4
    # Every true death has exactly one detected death in the 6 s before the lives counter drops.
    for t in truth:
        assert sum(1 for d in deaths if t - 6.0 <= d <= t + 0.5) == 1, (t, deaths)
    # No extra deaths (one may be in flight at the end of the run, before its counter drops).
    unmatched = [d for d in deaths if not any(t - 6.0 <= d <= t + 0.5 for t in truth)]
    assert len(unmatched) <= 1 and all(d > states[-1][0] - 6.0 for d in unmatched)
    overs = [e for e in events if e.type == "game_over"]
    true_overs = sum(1 for (_, a), (_, b) in itertools.pairwise(states) if a["mode"] != 3 and b["mode"] == 3)
    assert len(overs) == true_overs >= 1


def test_smb_level_change_from_ram() -> None:
    game = get_game("smb")
    source = EmulatorSource(game, fps=60, realtime=False)
    tracker = StateTracker(game.detectors())
    events: list[Event] = []
    env = source.env
    assert isinstance(env, SMBEnv)
    poked = False
    for frame in source.frames():
        events += tracker.update(game.observe(frame))
        if not poked and frame.t >= 4.0 and frame.state and frame.state["mode"] == 1:
            env.write(0x075C, 1)  # the game's own stage counter moves to 1-2
            poked = True
        if frame.t >= 6.0:
            break
    levels = [e for e in events if e.type == "level_change"]
    assert [e.data["level"] for e in levels] == ["1-2"]
    assert levels[0].t >= 4.0


def test_smb_frames_carry_hud_truth() -> None:
    source, _, states = run("smb", 5.0, fps=30)
    assert source.skip == 2
    _t, s = states[-1]
    assert s["world"] == 1 and s["stage"] == 1 and 0 < s["time"] <= 400
    frame = next(iter(source.frames()))
    assert frame.image.shape == (240, 256, 3) and frame.image.dtype.name == "uint8"


def test_breakout_lives_and_deaths_match_truth() -> None:
    _, events, states = run("breakout", 90.0)
    true_drops = [t for (_, a), (t, b) in itertools.pairwise(states) if b["lives"] < a["lives"]]
    deaths = [e.t for e in events if e.type == "death"]
    assert len(true_drops) >= 1
    assert len(deaths) == len(true_drops)
    for t, d in zip(true_drops, deaths, strict=True):
        assert 0 <= d - t <= 0.1
    assert states[-1][1]["score"] > 0


def test_space_invaders_runs_and_scores() -> None:
    _, events, states = run("space_invaders", 30.0, fps=15)
    assert states[-1][1]["score"] > 0
    assert all(e.game == "space_invaders" for e in events)
