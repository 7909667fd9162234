"""`kibitz bench lines`: are the companion's lines worth hearing? Measured without a judge.

Real runs of several games are recorded once per seed as event streams (`record`): every event kibitz's session
saw, with the game state it described, the recent events, the frame on screen and the game's truth at that moment
(the emulator's RAM, or a bench recorder's truth for a game kibitz has no plugin for). Each stream is then replayed
through kibitz's real prompt path (its `Companion`: persona, prompts, post-filter, what it remembers it said) and
through the baseline's (the screen's OCR text to the model: `bench.stacks.BaselineStack`), one line per event, and
every line is scored by rules that read only the moment's record and the bench's word lists (`bench/data/
lines.yaml`), never kibitz's own code:

- specific: the line names something particular to this moment: a number, level, enemy, monster or cause from the
  event's facts or the game's truth;
- generic: it uses a stock phrase and names nothing particular;
- repeated: it (nearly) repeats a line the same stack said in the 10 minutes before, in the same stream;
- copied: it (nearly) copies one of the persona's example lines;
- wrong point of view: it speaks as the one playing ("I died");
- invented number: it has a number the moment's record does not;
- language: its letters are in the persona's language;
- length: within the persona's words and sentences.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kibitz.bench.stats import percentile, wilson
from kibitz.core.config import KibitzConfig
from kibitz.core.errors import KibitzError
from kibitz.core.persona import Persona
from kibitz.core.records import Event, Frame

STREAM_VERSION = 3
"""Bumped when what a recording holds changes (older recordings are made again)."""
REPEAT_WINDOW_S = 600.0
"""Lines within this many seconds of stream time count as one session for repeats."""
NEAR_SAME = 0.85
"""Two lines this similar (difflib's ratio over their words, lower case, no punctuation) are the same line."""


@dataclass(frozen=True, slots=True)
class LineGame:
    id: str
    split: str
    """seen (a kibitz game plugin, its true RAM state) or unseen (no plugin: pixels only, as for any game)."""
    minutes: float
    """How much play each recording holds (game time)."""


LINE_GAMES: dict[str, LineGame] = {
    g.id: g
    for g in (
        LineGame("smb", "seen", 15.0),
        LineGame("breakout", "seen", 10.0),
        LineGame("space_invaders", "seen", 10.0),
        LineGame("nethack", "unseen", 15.0),
    )
}
DEV_SEED, TEST_SEED = 11, 1
"""Streams looked at while building the prompts (dev) and the ones the figures come from (test, held out)."""


# --- recording -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Moment:
    """One event of a recorded stream, with everything a stack could be given and the truth."""

    game: str
    split: str
    seed: int
    t: float
    event: dict[str, Any]
    """The event as kibitz saw it (Event.to_json, facts included)."""
    state: str
    """kibitz's description of the game at that moment (what its prompt gets)."""
    precise: str
    context: list[str]
    """The recent events before it."""
    frame: str
    """The frame on screen (PNG file name beside the stream), for the baseline's OCR."""
    truth: dict[str, Any] = field(default_factory=dict)
    """What was true at that moment: HUD values and facts from the game itself."""
    index: int = 0
    """Its place in its stream."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Quiet:
    """An output that keeps nothing (recording needs only the session's events)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def _config(pixels: bool, labels: dict[str, tuple[str, ...]] | None = None) -> KibitzConfig:
    from kibitz.core.config import load_config

    config = load_config(None, {})
    if pixels:
        config.perception.mode = "pixels"
        config.perception.labels = {k: list(v) for k, v in (labels or {}).items()}
        config.perception.ocr_inline = True
    config.policy.clock = "media"
    return config


def _seen_frames(game_id: str, seed: int, seconds: float) -> Iterator[tuple[Frame, dict[str, Any]]]:
    """A built-in game played by its built-in player, with the truth from its RAM."""
    from kibitz.games import get_game
    from kibitz.sources.emulator import EmulatorSource

    game = get_game(game_id)
    source = EmulatorSource(game, fps=60.0, realtime=False, seed=seed)  # as `kibitz watch` plays it
    try:
        for frame in source.frames():
            if frame.t > seconds:
                return
            state = frame.state or {}
            truth = {**game.hud(state), **game.truth(state)} if state else {}
            yield frame, {k: v for k, v in truth.items() if isinstance(v, str | int | float | bool) or v is None}
    finally:
        source.close()


def _unseen_frames(game_id: str, seed: int, seconds: float) -> Iterator[tuple[Frame, dict[str, Any]]]:
    """A game kibitz has no plugin for, from the bench's recorder: the picture only, its truth beside it."""
    from kibitz.bench.recorders import RECORDERS

    recorder = RECORDERS.get(game_id)()
    recorder.check_installed()
    step = 1.0 / recorder.clip_fps
    next_t = 0.0
    try:
        for n, tf in enumerate(recorder.frames(seed, seconds)):
            if tf.t + 1e-9 < next_t:
                continue
            next_t = tf.t + step
            facts = {k: v for k, v in tf.facts.items() if k != "hud_alt"}
            yield Frame(tf.t, tf.image, "bench", n), {**tf.hud, **facts, "scene": tf.scene}
    finally:
        recorder.close()


def record(game_id: str, seed: int, out: Path, minutes: float | None = None) -> list[Moment]:
    """Play `game_id` for its minutes with kibitz's real session watching (no model), and keep every event it saw
    with the state, the frame and the truth; written to `out` (stream.jsonl and PNG frames)."""
    from kibitz.bench.dataset import png_bytes
    from kibitz.games import get_game
    from kibitz.session import Session

    spec = LINE_GAMES[game_id]
    seconds = 60.0 * (minutes or spec.minutes)
    if spec.split == "seen":
        game = get_game(game_id)
        config = _config(pixels=False)
        frames = _seen_frames(game_id, seed, seconds)
    else:
        from kibitz.bench.recorders import RECORDERS

        game = None
        config = _config(pixels=True, labels=RECORDERS.get(game_id).hud_labels)
        frames = _unseen_frames(game_id, seed, seconds)
    session = Session(config, game, None, _Quiet(), react=False)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    moments: list[Moment] = []
    for frame, truth in frames:
        context = list(session.recent_events)
        events: list[Event] = session.step(frame)
        if not events:
            continue
        obs = session.last_observation
        name = f"{game_id}-{len(moments):04d}.png"
        (out / name).write_bytes(png_bytes(frame.image))
        for event in events:
            moments.append(
                Moment(
                    game_id,
                    spec.split,
                    seed,
                    round(frame.t, 3),
                    event.to_json(),
                    session.describe(obs),
                    session.describe(obs, precise=True),
                    context,
                    name,
                    truth,
                    len(moments),
                )
            )
            context = [*context, event.summary][-4:]
    return moments


def streams(seed: int, games: list[str], root: Path, progress: Callable[[str], None] | None = None) -> list[Moment]:
    """The recorded streams for these games (recorded now where missing or made by other recording code)."""
    moments: list[Moment] = []
    for game_id in games:
        folder = root / f"seed{seed}" / game_id
        path = folder / "stream.jsonl"
        stamp = folder / "version.json"
        if not (path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == _stamp(game_id)):
            if progress:
                progress(f"recording {game_id} (seed {seed})")
            recorded = record(game_id, seed, folder)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(m.to_json()) + "\n" for m in recorded), encoding="utf-8")
            tmp.replace(path)
            stamp.write_text(json.dumps(_stamp(game_id)))
        moments += [Moment(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    return moments


def _stamp(game_id: str) -> dict[str, Any]:
    """What a recording depends on: its version and length, and the code that saw the events (sessions, detectors,
    the chronicle, the games, perception): a recording made by other code is made again."""
    import hashlib

    import kibitz

    base = Path(kibitz.__file__).parent
    digest = hashlib.sha256()
    for folder in ("state", "games", "perception", "core"):
        for path in sorted((base / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and path.is_file():
                digest.update(path.read_bytes())
    digest.update((base / "session.py").read_bytes())
    return {"version": STREAM_VERSION, "minutes": LINE_GAMES[game_id].minutes, "code": digest.hexdigest()[:16]}


# --- the bench's truth: what is particular to a moment ----------------------------------------------------------


@cache
def word_lists() -> dict[str, Any]:
    text = (resources.files("kibitz.bench") / "data" / "lines.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _number_terms(n: int) -> list[str]:
    words = word_lists()
    terms = [rf"(?<![\d.]){n}(?:st|nd|rd|th)?(?![\d])"]
    if 0 <= n < len(words["number_words"]):
        terms += [rf"\b{words['number_words'][n]}\b", rf"\b{words['ordinal_words'][n]}\b"]
    if n >= 1000:
        terms.append(rf"(?<![\d.]){n:,}(?![\d])".replace(",", r"[,.]?"))
    return terms


PARTICULAR_FACTS = ("nth", "nth_here", "lasted_s", "gained", "score", "best_score")
"""Facts that are numbers a line may name."""
TRUTH_NUMBERS = ("lives", "score", "coins", "time", "world", "hp", "dlvl", "depth", "gold", "health", "ammo", "kills")
"""Truth values a line may name as numbers."""


def particulars(m: Moment) -> list[str]:
    """Patterns for what is particular to this moment: numbers, the level, the culprit, the cause, monsters."""
    facts = m.event.get("facts", {})
    truth = m.truth
    terms: list[str] = []
    for key in PARTICULAR_FACTS:
        value = facts.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
            terms += _number_terms(round(value))
    for key in ("progress", "best_progress"):
        if isinstance(facts.get(key), int | float):
            terms.append(rf"(?<!\d){round(100 * facts[key])}\s?(?:%|percent)")
    level = facts.get("level") or (
        f"{truth['world']}-{truth['stage']}" if "world" in truth and "stage" in truth else None
    )
    if level:
        terms.append(rf"(?<![\d-]){re.escape(str(level))}(?![\d-])")
    for key in ("culprit", "killer"):
        name = facts.get(key) or truth.get(key)
        if isinstance(name, str) and name:
            terms += [rf"\b{re.escape(w.lower())}s?\b" for w in name.split() if len(w) > 3]
    cause = facts.get("cause")
    if isinstance(cause, str):
        for key, words in word_lists()["causes"].items():
            if key == cause:
                terms += [rf"\b{re.escape(w)}" for w in words]
    for key in TRUTH_NUMBERS:
        value = truth.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            terms += _number_terms(value)
    for key in ("monsters", "threats", "nearby"):
        for name in truth.get(key) or []:
            if isinstance(name, str) and len(name) > 2:
                terms.append(rf"\b{re.escape(name.lower())}s?\b")
    return terms


# --- scoring ---------------------------------------------------------------------------------------------------


def _norm(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def same(a: str, b: str) -> bool:
    """Two lines are (nearly) the same line."""
    wa, wb = _norm(a), _norm(b)
    return bool(wa and wb) and difflib.SequenceMatcher(None, wa, wb).ratio() >= NEAR_SAME


def _numbers(text: str) -> set[int]:
    plain = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)
    return {int(n) for n in re.findall(r"(?<![\w.])\d+(?![\d])", plain)}


def allowed_numbers(m: Moment, screen: str = "") -> set[int]:
    """Every number the moment's record holds (what a stack was given, and the truth)."""
    record = json.dumps(m.event) + m.state + m.precise + " ".join(m.context) + json.dumps(m.truth) + screen
    numbers = _numbers(record)
    facts = m.event.get("facts", {})
    for key in ("progress", "best_progress"):
        if isinstance(facts.get(key), int | float):
            numbers.add(round(100 * facts[key]))
    return numbers


def _letters_in(text: str, language: str) -> float | None:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    if language == "ko":
        mine = sum("\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e" for c in letters)
    elif language == "ja":
        mine = sum("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in letters)
    else:
        mine = sum(c.isascii() for c in letters)
    return mine / len(letters)


def _content_sentences(text: str) -> int:
    parts = [p for p in re.split(r"(?<=[.!?。！？])\s+", text.strip()) if p]
    return sum(len(p.split()) >= 3 for p in parts) or (1 if parts else 0)


def score_line(
    text: str, m: Moment, persona: Persona, earlier: list[tuple[float, str]], screen: str = ""
) -> dict[str, Any]:
    """The rules' verdicts on one line (`earlier`: the same stack's lines before it in the stream, with their times)."""
    words = word_lists()
    low = text.lower()
    specific = any(re.search(p, low) for p in particulars(m))
    stock = any(re.search(rf"(?<!\w){re.escape(s)}(?!\w)", low) for s in words["stock"])
    pov = any(re.search(p, text, re.IGNORECASE) for p in words["wrong_pov"].get(persona.language, []))
    invented = sorted(_numbers(text) - allowed_numbers(m, screen))
    share = _letters_in(text, persona.language)
    examples = [line for lines in persona.examples.values() for line in lines]
    return {
        "said": bool(text.strip()),
        "specific": specific,
        "generic": stock and not specific,
        "repeated": any(same(text, before) for t, before in earlier if m.t - t <= REPEAT_WINDOW_S),
        "copied": any(same(text, e) for e in examples),
        "wrong_pov": pov,
        "invented": invented,
        "language_ok": share is None or share >= 0.8,
        "length_ok": len(text.split()) <= persona.max_words and _content_sentences(text) <= persona.max_sentences,
    }


MEASURES: dict[str, tuple[str, str, float]] = {
    # name: (what it counts, target direction, target)
    "specific": ("names something particular to the moment", ">=", 0.80),
    "generic": ("a stock phrase naming nothing particular", "<=", 0.10),
    "repeated": ("(nearly) repeats its own line of the last 10 minutes", "<=", 0.0),
    "copied": ("(nearly) copies a persona example", "<=", 0.0),
    "wrong_pov": ("speaks as the player ('I died')", "<=", 0.02),
    "invented": ("a number not in the moment's record", "<=", 0.02),
    "language_ok": ("in the persona's language", ">=", 0.98),
    "length_ok": ("within the persona's length", ">=", 0.95),
}


def distinct_2(lines: list[str]) -> float | None:
    """Distinct bigrams over all bigrams of these lines."""
    grams = [tuple(w[i : i + 2]) for w in map(_norm, lines) for i in range(len(w) - 1)]
    return len(set(grams)) / len(grams) if grams else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each measure's share with its 95 % Wilson interval over the lines (a failed or empty line counts as said
    nothing: not specific, and failing the rules that need words), distinct-2 and the first-token times."""
    n = len(rows)
    out: dict[str, Any] = {"lines": n, "failed": sum(1 for r in rows if not r["score"]["said"])}
    for name in MEASURES:
        k = sum(1 for r in rows if (bool(r["score"][name]) if name != "invented" else bool(r["score"]["invented"])))
        if name in ("language_ok", "length_ok"):
            k = sum(1 for r in rows if r["score"]["said"] and r["score"][name])
        low, high = wilson(k, n)
        out[name] = {"k": k, "n": n, "rate": k / n if n else None, "ci95": [low, high]}
    out["distinct_2"] = distinct_2([r["text"] for r in rows if r["text"]])
    firsts = [r["first_token_s"] for r in rows if r.get("first_token_s") is not None]
    out["first_token_p50"] = percentile(firsts, 50) if firsts else None
    out["first_token_p95"] = percentile(firsts, 95) if firsts else None
    return out


# --- the stacks ------------------------------------------------------------------------------------------------


class KibitzLines:
    """kibitz's real prompt path: one Companion per stream (it remembers what it said in it), each event submitted
    as the session would, with the state, the recent events and the event's facts."""

    name = "kibitz"

    def __init__(self, backend: Any, persona: Persona, config: KibitzConfig) -> None:
        self.backend, self.persona, self.config = backend, persona, config
        self.companion: Any = None
        self.knowledge: Any = None

    def start_stream(self) -> None:
        from kibitz.brain.companion import Companion
        from kibitz.games.knowledge import builtin_tips
        from kibitz.memory.knowledge import GameKnowledge

        if self.companion is not None:
            self.companion.stop(close_backend=False)
        # The game's built-in tips, as a session has them (never the user's own guides: the bench stays hermetic).
        self.knowledge = GameKnowledge(builtin_tips) if self.config.knowledge.enabled else None
        self.companion = Companion(
            self.backend,
            self.persona,
            self.config.llm.max_tokens,
            self.config.llm.temperature,
            knowledge=self.knowledge,
        )
        self.companion.start(warm=True)

    def line(self, m: Moment, root: Path) -> tuple[str, float | None, str]:
        from kibitz.brain.policy import SpeakRequest

        event = Event.from_json(m.event)
        if self.knowledge is not None and self.config.knowledge.tips:
            self.knowledge.follow(m.game, event.facts.level if event.facts is not None else None)
            self.knowledge.annotate(event, self.companion.spoiler_limit)  # as Session._handle_events does
        self.companion.prefetch(m.state)  # idle between events, as in a session: the state's prefix is evaluated
        deadline = time.monotonic() + 30
        while self.companion.working and time.monotonic() < deadline:
            time.sleep(0.01)
        self.companion.submit(SpeakRequest([event], time.perf_counter()), m.state, m.context, m.t)
        utt = self.companion.finished.get(timeout=300)
        return utt.text, utt.first_token_latency, utt.error

    def close(self) -> None:
        if self.companion is not None:
            self.companion.stop(close_backend=False)


class BaselineLines:
    """The baseline's prompt path: the screen's OCR text at the event's frame, its own prompt (bench.stacks)."""

    name = "baseline"

    def __init__(self, backend: Any, persona: Persona, config: KibitzConfig) -> None:
        from kibitz.bench.stacks import BaselineStack

        self.stack = BaselineStack(config, backend)
        self.screen = ""

    def start_stream(self) -> None:
        self.stack.warm()

    def line(self, m: Moment, root: Path) -> tuple[str, float | None, str]:
        import numpy as np
        from PIL import Image

        image = np.asarray(Image.open(root / f"seed{m.seed}" / m.game / m.frame).convert("RGB"))
        out, self.screen = self.stack.look(image, "react", 40)
        return out.text, out.first_token_s, ""

    def close(self) -> None:
        self.stack.close()


LINE_STACKS: dict[str, type[KibitzLines] | type[BaselineLines]] = {"kibitz": KibitzLines, "baseline": BaselineLines}


def run_lines(
    moments: list[Moment],
    stack_names: list[str],
    backend: Any,
    persona: Persona,
    config: KibitzConfig,
    root: Path,
    progress: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Every moment through every stack, in stream order: one scored row per line."""
    rows: list[dict[str, Any]] = []
    for stack_name in stack_names:
        stack = LINE_STACKS[stack_name](backend, persona, config)
        try:
            current: tuple[str, int] | None = None
            earlier: list[tuple[float, str]] = []
            for m in moments:
                if (m.game, m.seed) != current:
                    current, earlier = (m.game, m.seed), []
                    stack.start_stream()
                try:
                    text, first, error = stack.line(m, root)
                except KibitzError as exc:
                    text, first, error = "", None, exc.message
                screen = getattr(stack, "screen", "")
                rows.append(
                    {
                        "stack": stack_name,
                        "game": m.game,
                        "split": m.split,
                        "t": m.t,
                        "event": m.event["type"],
                        "summary": m.event["summary"],
                        "text": text,
                        "error": error,
                        "first_token_s": first,
                        "score": score_line(text, m, persona, earlier, screen),
                    }
                )
                if text:
                    earlier.append((m.t, text))
                if progress:
                    progress()
        finally:
            stack.close()
    return rows


def tables(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Summaries per stack, per stack and game, and per stack and split."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for key in (r["stack"], f"{r['stack']}/{r['game']}", f"{r['stack']}/{r['split']}"):
            groups.setdefault(key, []).append(r)
    return {key: summarise(group) for key, group in groups.items()}


def judge_sample(rows: list[dict[str, Any]], moments: list[Moment], n: int) -> list[tuple[str, str, str]]:
    """Up to `n` moments where both stacks said something, spread evenly over the streams: (moment as the judge
    reads it, kibitz's line, the baseline's line)."""
    by_key: dict[tuple[str, float, str], dict[str, str]] = {}
    for r in rows:
        if r["text"]:
            by_key.setdefault((r["game"], r["t"], r["event"]), {})[r["stack"]] = r["text"]
    both = []
    for m in moments:
        lines = by_key.get((m.game, m.t, m.event["type"]), {})
        if "kibitz" in lines and "baseline" in lines:
            both.append((f"{m.state} Just now: {m.event['summary']}", lines["kibitz"], lines["baseline"]))
    if len(both) <= n:
        return both
    step = len(both) / n
    return [both[int(i * step)] for i in range(n)]
