from kibitz.core.records import Observation, Provenance, Reading
from kibitz.state.detectors import (
    Confirmed,
    DeathDetector,
    LevelChangeDetector,
    LowValueDetector,
    StallDetector,
    StreakDetector,
)


def obs(t: float, scene: str = "gameplay", **values: object) -> Observation:
    return Observation(
        t=t,
        frame_index=int(t * 60),
        game="g",
        game_confidence=1.0,
        scene=scene,
        fields={k: Reading(v, Provenance.RAM) for k, v in values.items()},
    )


def test_confirmed_ignores_single_frame_flicker() -> None:
    c = Confirmed(2)
    assert c.feed(1) is False
    assert c.feed(1) is True
    assert c.feed(5) is False and c.feed(1) is False  # one flickering frame changes nothing
    assert c.value == 1


def test_death_fires_once_per_life_from_dying_flag_then_lives_drop() -> None:
    d = DeathDetector(lives="lives", dying="dying")
    seq = [obs(0, lives=3, dying=False)] * 3 + [obs(1, lives=3, dying=True)] * 5 + [obs(4, lives=2, dying=False)] * 5
    events = [e for o in seq for e in d.update(o)]
    assert [e.type for e in events] == ["death"]
    assert events[0].data["lives_left"] == 2


def test_death_from_lives_drop_without_flag_and_flicker_is_ignored() -> None:
    d = DeathDetector(lives="lives")
    seq = [obs(0, lives=3)] * 3 + [obs(1, lives=2)] + [obs(1.1, lives=3)] * 3 + [obs(2, lives=2)] * 3
    events = [e for o in seq for e in d.update(o)]
    assert len(events) == 1


def test_level_change_needs_confirmation_and_ignores_start() -> None:
    d = LevelChangeDetector(["world", "stage"])
    seq = [obs(0, world=1, stage=1)] * 4 + [obs(1, world=1, stage=2)] * 1 + [obs(1.1, world=1, stage=1)] * 2
    seq += [obs(2, world=1, stage=2)] * 4
    events = [e for o in seq for e in d.update(o)]
    assert [e.data["level"] for e in events] == ["1-2"]


def test_streak_stall_and_low_value() -> None:
    s = StreakDetector("coins", count=3, window_s=5, type="coin_streak")
    events = [e for i in range(6) for e in s.update(obs(i * 0.5, coins=i))]
    assert [e.type for e in events] == ["coin_streak"]

    stall = StallDetector("x", after_s=10)
    events = [e for i in range(30) for e in stall.update(obs(float(i), x=100))]
    assert [e.type for e in events] == ["stall"]
    assert stall.update(obs(31.0, x=400)) == []

    low = LowValueDetector("time", below=100, type="low_time")
    events = [e for v in (120, 101, 99, 98, 97, 96) for e in low.update(obs(0, time=v))]
    assert [e.type for e in events] == ["low_time"]


def test_new_game_after_game_over_is_not_a_level_change() -> None:
    d = LevelChangeDetector(["world", "stage"])
    seq = [obs(0, world=1, stage=2)] * 4 + [obs(1, scene="game_over", world=1, stage=2)] * 3
    seq += [obs(2, scene="title", world=1, stage=1)] * 3 + [obs(3, world=1, stage=1)] * 4
    assert [e for o in seq for e in d.update(o)] == []


def test_milestone_burst_gives_one_event_with_the_highest_mark() -> None:
    from kibitz.state.detectors import MilestoneDetector

    d = MilestoneDetector("score", every=1000, min_gap_s=10)
    seq = [obs(0, score=500)] * 2 + [obs(1 + i * 0.1, score=1000 + 500 * i) for i in range(20)]
    seq += [obs(3.5, score=11000)] * 3 + [obs(12, score=11000)] * 2
    events = [e for o in seq for e in d.update(o)]
    assert [e.data["mark"] for e in events] == [1000, 11000]


def screen(t: float, scene: str = "gameplay", text: tuple[str, ...] = ()) -> Observation:
    return Observation(t=t, frame_index=int(t * 10), game=None, game_confidence=0.0, scene=scene, text=text)


def test_text_change_ignores_ticking_numbers_and_names_big_moments() -> None:
    from kibitz.state.detectors import TextChangeDetector

    d = TextChangeDetector(min_gap_s=1.0)
    assert d.update(screen(0.0, text=("Game Type Help", "[0:00] Marked: 0 / 10"))) == []  # the starting picture
    for i in range(1, 30):
        assert d.update(screen(i / 10, text=("Game Type Help", f"[0:{i:02d}] Marked: {i % 3} / 10"))) == []
    (dead,) = d.update(screen(5.0, text=("Game Type Help", "[0:05] DEAD! Deaths: 1")))
    assert dead.type == "death" and "DEAD" not in dead.summary  # screen text never goes into a summary
    (over,) = d.update(screen(7.0, text=("GAME OVER", "Press start")))
    assert over.type == "game_over"
    (plain,) = d.update(screen(9.0, text=("Shop", "Buy a sword")))
    assert plain.type == "text_change"
    # A big moment right after a plain change is not held back by the gap between plain changes.
    (dead_again,) = d.update(screen(9.3, text=("Shop", "You died")))
    assert dead_again.type == "death"
    assert d.update(screen(9.5, text=("Shop", "Sell a shield"))) == []  # a plain change within the gap waits


def test_scene_change_needs_the_new_scene_to_hold() -> None:
    from kibitz.state.detectors import SceneChangeDetector

    d = SceneChangeDetector(hold_frames=3)
    events = [
        e
        for i, sc in enumerate(["menu"] * 5 + ["gameplay"] * 2 + ["menu"] * 2 + ["gameplay"] * 4)
        for e in d.update(screen(i / 10, sc))
    ]
    assert [(e.data["before"], e.data["after"]) for e in events] == [("menu", "gameplay")]
    assert d.update(screen(5.0, "unknown")) == []


def test_low_time_ignores_a_bonus_draining_the_clock() -> None:
    from kibitz.state.detectors import LowValueDetector

    d = LowValueDetector("time", below=100, type="low_time", max_fall_per_s=10)
    # The flagpole: 300 → 0 in 3 s (100 a second) is points being counted, not time running out.
    drain = [e for i in range(60) for e in d.update(obs(i / 20, time=300 - i * 5))]
    assert drain == []
    # The next level's clock, ticking 2.5 a second, does run low.
    ticks = [e for i in range(320) for e in d.update(obs(10 + i * 0.4, time=400 - i))]
    assert [e.type for e in ticks] == ["low_time"]


def test_first_lives_card_mid_level_is_a_death_and_a_new_level_card_is_not() -> None:
    """Watched from the middle of a level (pixels), SMB shows the lives only on the card between lives."""
    d = DeathDetector(lives="lives", level=["world", "stage"])
    play = [obs(t, world=1, stage=1) for t in (0, 1, 2)]
    card = [obs(t, scene="transition", world=1, stage=1, lives=2) for t in (3, 3.1, 3.2)]
    assert [e.type for o in play + card for e in d.update(o)] == ["death"]
    d = DeathDetector(lives="lives", level=["world", "stage"])
    next_level = [obs(t, scene="transition", world=1, stage=2, lives=3) for t in (3, 3.1, 3.2)]
    assert [e for o in play + next_level for e in d.update(o)] == []


def test_labelled_health_dies_only_at_zero_and_levels_come_from_level_fields() -> None:
    from kibitz.state.detectors import DETECTORS, labelled_detectors

    specs = dict(labelled_detectors(["hp", "depth", "level", "gold"]))
    assert set(specs) == {"death", "level_change"} and specs["level_change"]["fields"] == ["depth"]
    d = DETECTORS.get("death")(**specs["death"])
    seq = [obs(0, hp=12), obs(3, hp=5), obs(6, hp=9), obs(9, hp=0)]
    events = [(o.t, e.type) for o in seq for e in d.update(o)]
    assert events == [(9, "death")]  # losing health is not dying
    lv = DETECTORS.get("level_change")(**specs["level_change"])
    assert [e.type for o in (obs(0, depth=1), obs(3, depth=2)) for e in lv.update(o)] == ["level_change"]


def test_a_death_screen_is_a_death_once_it_holds_and_one_death_is_reported_once() -> None:
    from kibitz.games.base import DetectorSpec
    from kibitz.state.detectors import GENERIC_DETECTORS, SceneEnteredDetector
    from kibitz.state.tracker import StateTracker

    d = SceneEnteredDetector("death", "death", "The screen shows the player's death.", hold_s=1.0)
    scenes = ["gameplay"] * 10 + ["death"] * 5 + ["gameplay"] * 10 + ["death"] * 15 + ["unknown"] * 5
    scenes += ["death"] * 10 + ["gameplay"] * 20 + ["death"] * 12
    events = [(i / 10, e) for i, sc in enumerate(scenes) for e in d.update(screen(i / 10, sc))]
    # A half-second glimpse is no death; the death screen held a second is; "unknown" frames change nothing;
    # the second death comes after the play has held again.
    assert [round(t, 1) for t, _ in events] == [3.5, 8.5]
    assert all(e.type == "death" and e.data["scene"] == "death" for _, e in events)

    # The same death on the death screen and in its banner text: reported once by the generic detectors.
    tracker = StateTracker([DetectorSpec(kind, params) for kind, params in GENERIC_DETECTORS])
    seen = []
    for i in range(60):
        t = i / 10
        dead = t >= 2.0
        obs = screen(t, "death" if dead else "gameplay", ("YOU DIED",) if dead and t >= 2.5 else ("Score",))
        seen += tracker.update(obs)
    assert [e.type for e in seen if e.type == "death"] == ["death"]
