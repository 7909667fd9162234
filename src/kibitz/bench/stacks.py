"""The stacks the bench compares: kibitz's event-driven pipeline and a baseline that does what simple AI game
companions do (send the screen to the LLM every few seconds and speak the reply).

Both get the same LLM backend, the same pictures and the same hints (the candidate games, the names and
on-screen labels of the HUD fields to read); neither sees the truth.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import yaml
from jinja2 import Environment, StrictUndefined

from kibitz.bench.dataset import Dataset
from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.config import KibitzConfig
from kibitz.core.errors import KibitzError
from kibitz.core.records import Event, Frame, Observation, Provenance, Reading, RGBImage
from kibitz.core.registry import Registry
from kibitz.outputs.sinks import Output

_jinja = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def load_prompts(name: str) -> dict[str, str]:
    """A prompt file under kibitz/bench/prompts."""
    text = resources.files("kibitz.bench").joinpath("prompts", name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return {k: str(v) for k, v in data.items()}


def render(template: str, **values: Any) -> str:
    return _jinja.from_string(template).render(**values).strip()


@dataclass(frozen=True, slots=True)
class Generated:
    text: str
    first_token_s: float | None
    total_s: float


def json_closed(text: str) -> bool:
    """The reply holds a complete JSON object: nothing after it is needed."""
    start = text.find("{")
    return start >= 0 and text.count("}", start) >= text.count("{", start)


def generate(
    backend: LLMBackend,
    messages: list[Message],
    max_tokens: int,
    temperature: float,
    lock: threading.Lock,
    done: Callable[[str], bool] | None = None,
) -> Generated:
    """One streamed completion, timed, stopped early once `done(text)` (a backend failure raises a KibitzError)."""
    with lock:
        start = time.perf_counter()
        first: float | None = None
        text = ""
        for piece in backend.stream(messages, max_tokens, temperature, stop=["\n\n"]):
            if first is None and piece.strip():
                first = time.perf_counter() - start
            text += piece
            if done is not None and done(text):
                break
        return Generated(text.strip(), first, time.perf_counter() - start)


EVENT_WORDS: dict[str, str] = {
    "death": r"\b(die[sd]?|dead|death|killed you|lost (a|another|your) (life|ball)|you lost)\b",
    "game_over": r"\bgame over\b",
    "level_change": r"\b(new|next) (level|stage|world|floor)\b|\bdescend",
    "kill": r"\b(killed|kill|took (it|him|them) down|destroyed|slain)\b",
    "achievement": r"\b(unlocked|achievement|crafted|you made|placed)\b",
    "capture": r"\b(captur\w*|takes|took (the|a|his|her|your))\b",
    "check": r"\bcheck\b(?! out)|\bcheckmate\b",
    "damage": r"\b(hit|hurt|damage|ouch|took a hit)\b",
}
"""How a free-text line is read as events (the baseline speaks lines, not events): word patterns per type."""


def events_in_line(text: str) -> list[str]:
    low = text.lower()
    return [kind for kind, pattern in EVENT_WORDS.items() if re.search(pattern, low)]


class Stack(ABC):
    """One way of being a game companion, run on the bench's items."""

    name: ClassVar[str]

    def __init__(self, config: KibitzConfig, backend: LLMBackend, options: dict[str, Any] | None = None) -> None:
        self.config = config
        self.backend = backend
        self.options = options or {}
        self.lock = threading.Lock()
        self.games: dict[str, str] = {}
        """Dataset game ids → titles (the candidates both stacks are told about)."""

    @property
    def label(self) -> str:
        return f"{self.name}[{self.backend.label}]"

    def prepare(self, dataset: Dataset) -> None:
        self.games = {g: info.get("title", g) for g, info in dataset.meta.get("games", {}).items()}

    def llm(
        self,
        messages: list[Message],
        max_tokens: int | None = None,
        temperature: float | None = None,
        done: Callable[[str], bool] | None = None,
    ) -> Generated:
        return generate(
            self.backend,
            messages,
            max_tokens or self.config.llm.max_tokens,
            self.config.llm.temperature if temperature is None else temperature,
            self.lock,
            done,
        )

    @abstractmethod
    def recognise(self, image: RGBImage, item: dict[str, Any]) -> dict[str, Any]:
        """{"game": id or None, "scene": str, "hud": {field: value}} for one picture."""

    @abstractmethod
    def watch(self, frames: list[RGBImage], times: list[float], item: dict[str, Any]) -> dict[str, Any]:
        """Watch a clip: {"events": [{"type", "t"}], "lines": [{"t", "text", "first_token_s", "total_s"}]}."""

    @abstractmethod
    def answer(self, image: RGBImage, question: str, item: dict[str, Any]) -> dict[str, Any]:
        """Answer a player's question about this picture: {"text", "first_token_s", "total_s", "context"}."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free what the stack loaded (not the shared backend)."""


STACKS: Registry[type[Stack]] = Registry("bench stack")


def _ocr_engine() -> Any:
    from kibitz.perception.ocr import OCREngine

    return OCREngine()


# --- kibitz ------------------------------------------------------------------------------------------------


class _Lines(Output):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, event: Event) -> None:
        self.events.append(event)


def check_bank(games: set[str], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Where each game of the prototype bank came from, after refusing a bank that learnt from what is scored: a
    seen game learnt from the dataset's own seed, or an unseen game the bank knows from anywhere but the dataset's
    support pictures."""
    from kibitz.perception.assets import origins

    known = origins()
    seed = meta.get("seed")
    for game, info in meta.get("games", {}).items():
        origin = known.get(game, {"source": "unknown"})
        if info.get("split") == "unseen" and game in games:
            raise KibitzError(
                f"The unseen game {game} is already in kibitz's prototype bank ({origin['source']}): an unseen game "
                f"may only be known from the dataset's support pictures; run `kibitz games remove {game}` first."
            )
        if info.get("split") == "seen" and seed in origin.get("seeds", []):
            raise KibitzError(
                f"kibitz learnt {game} from emulator seed {seed}, the seed this dataset was recorded with: scoring "
                f"on it would be test-on-train; build and run the bench with another seed (--seed 1)."
            )
    return {g: known.get(g, {"source": "unknown"}) for g in sorted(games)}


@STACKS.decorator("kibitz", "kibitz's pipeline: pixel perception, HUD reading, event detectors, the companion")
class KibitzStack(Stack):
    name = "kibitz"

    def __init__(self, config: KibitzConfig, backend: LLMBackend, options: dict[str, Any] | None = None) -> None:
        super().__init__(config, backend, options)
        from kibitz.brain.prompts import PromptBuilder
        from kibitz.core.persona import load_persona
        from kibitz.perception.assets import load_bank
        from kibitz.perception.classifier import EMBEDDERS

        self.embedder = EMBEDDERS.get(config.perception.embedder)()
        bank = load_bank(self.embedder.name)
        if bank is None:
            raise KibitzError("kibitz has learnt no games yet: run `kibitz games learn` once, then the bench.")
        self.bank = bank
        self.persona = load_persona(config.persona.name)
        # Questions are answered with up to 20 more tokens than a reaction (see answer()), cut to the same context.
        self.prompts = PromptBuilder(
            self.persona, backend.count_tokens, backend.context_window, config.llm.max_tokens + 20
        )
        self._ocr: Any = None
        self._readers: dict[str, Any] = {}

    def prepare(self, dataset: Dataset) -> None:
        """Check the bank never saw what it is scored on, then add the unseen games' few support pictures, as a
        user would with `kibitz games add`."""
        super().prepare(dataset)
        from kibitz.perception.classifier import PrototypeBank, prepare

        self.bank_origins = check_bank(set(self.bank.games.tolist()), dataset.meta)

        support = dataset.of_kind("support")
        if support:
            images = [prepare(dataset.image(i)) for i in support]
            extra = PrototypeBank.build(
                self.embedder, images, [i["game"] for i in support], [i["scene"] for i in support]
            )
            self.bank = self.bank.merge(extra)

    @property
    def ocr(self) -> Any:
        if self._ocr is None:
            self._ocr = _ocr_engine()
        return self._ocr

    def _reader(self, game: str) -> Any:
        """The HUD reader of a built-in game (None for games without a HUD file or learnt font)."""
        if game not in self._readers:
            from kibitz.perception.assets import load_glyphs, user_hud_dir
            from kibitz.perception.hud import GlyphBook, HudReader, hud_spec_path, load_hud_spec

            path = hud_spec_path(game, (user_hud_dir(),))
            reader = None
            if path is not None:
                spec = load_hud_spec(path)
                book = load_glyphs(game)
                if book is not None or all(f.method != "glyphs" for f in spec.fields.values()):
                    reader = HudReader(spec, book or GlyphBook())
            self._readers[game] = reader
        return self._readers[game]

    def look(self, image: RGBImage, labels: dict[str, list[str]]) -> Observation:
        """What kibitz's perception concludes from one picture."""
        from kibitz.games import GAMES, get_game
        from kibitz.perception.change import is_blank
        from kibitz.perception.classifier import canonical_scene, prepare
        from kibitz.perception.labels import read_labelled
        from kibitz.perception.ocr import screen_lines

        img = prepare(image)
        rec = self.bank.classify(self.embedder.embed([img])[0])
        game = rec.game if rec.game_confidence >= 0.5 else None
        builtin = game if game is not None and game in GAMES else None
        scene = rec.scene
        if is_blank(img):
            scene = get_game(builtin).blank_scene if builtin is not None else "loading"
        fields: dict[str, Reading] = {}
        text: tuple[str, ...] = ()
        reader = self._reader(builtin) if builtin is not None else None
        if reader is not None:
            for name, raw in reader.read(img, scene).items():
                if raw.value is not None:
                    fields[name] = Reading(raw.value, Provenance.OCR)
        else:
            scene = canonical_scene(scene) if game is None else scene
            boxes = self.ocr.read(img)
            text = screen_lines(b.text for b in boxes)
            for name, value in read_labelled(boxes, labels).items():
                fields[name] = Reading(value, Provenance.OCR, 0.8)
        return Observation(0.0, 0, game, rec.game_confidence, scene, fields, text)

    def describe(self, obs: Observation) -> str:
        from kibitz.session import describe_observation

        return describe_observation(obs, precise=True, title=self.games.get(obs.game) if obs.game else None)

    def recognise(self, image: RGBImage, item: dict[str, Any]) -> dict[str, Any]:
        obs = self.look(image, item.get("labels", {}))
        return {"game": obs.game, "scene": obs.scene, "hud": obs.values()}

    def answer(self, image: RGBImage, question: str, item: dict[str, Any]) -> dict[str, Any]:
        from kibitz.brain.postfilter import clean_line

        labels = {k: list(v) for k, v in item.get("labels", {}).items()}
        state = self.describe(self.look(image, labels))
        out = self.llm(self.prompts.question_messages(state, question, []), self.config.llm.max_tokens + 20)
        text = clean_line(out.text, self.persona.name, self.persona.max_sentences + 1, self.persona.max_words + 15)
        return {"text": text, "first_token_s": out.first_token_s, "total_s": out.total_s, "context": state}

    def watch(self, frames: list[RGBImage], times: list[float], item: dict[str, Any]) -> dict[str, Any]:
        from kibitz.brain.companion import Companion
        from kibitz.session import Session

        config = self.config.model_copy(deep=True)
        config.perception.mode = "pixels"
        # The numbers a player would point kibitz at by their labels (the same hint the baseline gets).
        config.perception.labels = {k: list(v) for k, v in item.get("labels", {}).items()}
        companion = Companion(self.backend, self.persona, config.llm.max_tokens, config.llm.temperature)
        output = _Lines()
        session = Session(config, None, companion, output)
        session.perceiver = _BenchPerceiver(self, config)
        with self.lock:
            # As in a live session, the fixed system prompt is evaluated once before play (not counted).
            companion.start(warm=True)
            started = time.perf_counter()
            result = session.run(Frame(t, f, "bench", n) for n, (t, f) in enumerate(zip(times, frames, strict=True)))
            companion.stop(close_backend=False)
        by_id = {e.id: e for e in result.events}
        return {
            "events": [{"type": e.type, "t": round(e.t, 3)} for e in result.events if e.type != "question"],
            "lines": [
                {
                    "t": round(u.t, 3),
                    "text": u.text,
                    "trigger": u.trigger,
                    "events": [by_id[i].summary for i in u.event_ids if i in by_id],
                    "first_token_s": u.first_token_latency,
                    "total_s": u.total_latency,
                }
                for u in result.utterances
            ],
            "wall_s": round(time.perf_counter() - started, 3),
        }

    def close(self) -> None:
        self._ocr = None


class _BenchPerceiver:
    """kibitz's pixel perceiver with the bench's prototypes, reading screen text in step with the clip.

    In a live session OCR runs on its own thread and lands ~0.2-0.4 s later; a clip is replayed faster than
    real time, so the text is read in line (every `ocr_every_s` of clip time, and after a cut) to keep what
    the detectors see independent of the machine's speed.
    """

    def __new__(cls, stack: KibitzStack, config: KibitzConfig) -> Any:
        from kibitz.perception.pixels import PixelPerceiver

        class Perceiver(PixelPerceiver):
            def _maybe_ocr(self, image: RGBImage, t: float, cut: bool) -> None:
                due = self._ocr_at is None or t - self._ocr_at >= self.config.ocr_every_s or cut
                if due:
                    self._ocr_at = t
                    self.take_text(stack.ocr.read(image))

        perceiver = Perceiver(None, config.perception)
        perceiver.bank = stack.bank
        return perceiver


# --- baseline ----------------------------------------------------------------------------------------------


@STACKS.decorator("baseline", "the screen's text to the LLM every N seconds, the reply spoken (simple companions)")
class BaselineStack(Stack):
    name = "baseline"
    scenes = ("gameplay", "menu", "title", "loading", "death", "game_over", "pause", "map", "cutscene")

    def __init__(self, config: KibitzConfig, backend: LLMBackend, options: dict[str, Any] | None = None) -> None:
        super().__init__(config, backend, options)
        self.every_s = float(self.options.get("every_s", 5.0))
        self.prompts = load_prompts("baseline.yaml")
        self._ocr: Any = None

    @property
    def label(self) -> str:
        return f"{self.name}-{self.every_s:g}s[{self.backend.label}]"

    def screen(self, image: RGBImage) -> tuple[str, float]:
        """The screen's text (what an OCR-based companion sends) and how long reading it took."""
        from kibitz.brain.prompts import quote_untrusted

        if self._ocr is None:
            self._ocr = _ocr_engine()
        start = time.perf_counter()
        boxes = self._ocr.read(image)
        text = " | ".join(b.text for b in boxes)[:600] or "(no text on screen)"
        return quote_untrusted(text), time.perf_counter() - start

    def _messages(self, user: str) -> list[Message]:
        return [{"role": "system", "content": self.prompts["system"].strip()}, {"role": "user", "content": user}]

    def recognise(self, image: RGBImage, item: dict[str, Any]) -> dict[str, Any]:
        screen, _ = self.screen(image)
        user = render(
            self.prompts["recognise"],
            screen=screen,
            games=sorted(self.games.values()),
            scenes=self.scenes,
            fields=item.get("labels", {}),
        )
        out = self.llm(self._messages(user), max_tokens=80, temperature=0.0, done=json_closed)
        return {**parse_recognition(out.text, self.games), "raw": out.text}

    def answer(self, image: RGBImage, question: str, item: dict[str, Any]) -> dict[str, Any]:
        screen, ocr_s = self.screen(image)
        out = self.llm(self._messages(render(self.prompts["question"], screen=screen, question=question)), 60)
        first = None if out.first_token_s is None else ocr_s + out.first_token_s
        return {"text": out.text, "first_token_s": first, "total_s": ocr_s + out.total_s, "context": screen}

    def watch(self, frames: list[RGBImage], times: list[float], item: dict[str, Any]) -> dict[str, Any]:
        # Where the ticks fall relative to the events is chance in real life: a phase drawn per clip.
        tick = random.Random(item["id"]).uniform(0, self.every_s)
        lines, events = [], []
        with self.lock:  # a companion that has been running has its system prompt cached too (not counted)
            self.backend.warm(self._messages(render(self.prompts["react"], screen="")))
        i = 0
        while tick <= (times[-1] if times else 0.0):
            while i + 1 < len(times) and times[i + 1] <= tick:
                i += 1
            screen, ocr_s = self.screen(frames[i])
            out = self.llm(self._messages(render(self.prompts["react"], screen=screen)), 40)
            lines.append(
                {
                    "t": round(tick, 3),
                    "text": out.text,
                    "trigger": "tick",
                    "events": [],
                    "first_token_s": None if out.first_token_s is None else ocr_s + out.first_token_s,
                    "total_s": ocr_s + out.total_s,
                }
            )
            events += [{"type": kind, "t": round(tick, 3)} for kind in events_in_line(out.text)]
            tick += self.every_s
        return {"events": events, "lines": lines}

    def close(self) -> None:
        self._ocr = None


def parse_recognition(text: str, games: dict[str, str]) -> dict[str, Any]:
    """The baseline's JSON answer read leniently: a game id or title, a scene word, integer fields."""
    match = re.search(r"\{.*\}", text, re.S)
    data: dict[str, Any] = {}
    if match:
        try:
            loaded = json.loads(match.group(0))
            data = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            data = {}
    said = str(data.get("game", text if not match else "")).lower()
    # The game named first (a free-text answer may go on to list others).
    named = [(said.find(title.lower()), gid) for gid, title in games.items() if title.lower() in said]
    named += [(0, gid) for gid in games if gid.lower() == said.strip()]
    game = min(named)[1] if named else None
    fields: dict[str, Any] = {}
    raw_fields = data.get("fields")
    if isinstance(raw_fields, dict):
        for k, v in raw_fields.items():
            number = re.search(r"-?\d+", str(v))
            if number:
                fields[str(k)] = int(number.group(0))
    return {"game": game, "scene": str(data.get("scene", "unknown")).lower().strip(), "hud": fields}
