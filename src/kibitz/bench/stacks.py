"""The stacks the bench compares: kibitz's event-driven pipeline and a baseline that does what simple AI game
companions do (send the screen to the LLM every few seconds and speak the reply).

Both get the same LLM backend, the same pictures and the same hints (the candidate games, the names and
on-screen labels of the HUD fields to read); neither sees the truth.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar

import yaml
from jinja2 import Environment, StrictUndefined

from kibitz.bench.dataset import Dataset
from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.core.config import KibitzConfig
from kibitz.core.errors import KibitzError
from kibitz.core.records import Event, Frame, RGBImage
from kibitz.core.registry import Registry
from kibitz.outputs.sinks import Output
from kibitz.perception.labels import Label

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


TRUTH_FREE = ("sha256", "labels", "question")
"""The fields of a manifest item a stack may see: what a player's machine would have (the item's picture or clip
comes with them). Never its truth, nor its id, which names the game."""


@dataclass(frozen=True, slots=True)
class ItemView:
    """One bench item as a stack sees it."""

    key: str
    """The item file's sha256 (e.g. the seed of the baseline's tick phase)."""
    labels: dict[str, list[str]]
    """How the game labels its numbers on screen (a hint a player could give)."""
    question: str | None = None

    @classmethod
    def of(cls, item: dict[str, Any]) -> ItemView:
        labels = {str(k): [str(x) for x in v] for k, v in item.get("labels", {}).items()}
        question = item.get("question")
        return cls(str(item.get("sha256", "")), labels, None if question is None else str(question))


class Stack(ABC):
    """One way of being a game companion, run on the bench's items."""

    name: ClassVar[str]
    option_keys: ClassVar[tuple[str, ...]] = ()
    """The options this stack uses (part of its identity)."""

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

    @property
    def identity(self) -> str:
        """A hash of everything that decides this stack's outputs: its options, the configuration, the backend
        (the model file's sha256) and kibitz's code outside the scoring. A result stored under another identity is
        never reused."""
        parts = {
            "stack": self.name,
            "options": {k: self.options.get(k) for k in self.option_keys},
            "config": self.config.model_dump(mode="json"),
            "backend": self.backend.identity,
            "code": code_fingerprint(),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

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
    def recognise(self, image: RGBImage, view: ItemView) -> dict[str, Any]:
        """{"game": id or None, "scene": str, "hud": {field: value}} for one picture."""

    @abstractmethod
    def watch(self, frames: list[RGBImage], times: list[float], view: ItemView) -> dict[str, Any]:
        """Watch a clip: {"events": [{"type", "t"}], "lines": [{"t", "event_t", "text", "first_token_s", "total_s"}]}
        (a line's latencies count from `event_t`, when what it reacts to was seen)."""

    @abstractmethod
    def answer(self, image: RGBImage, question: str, view: ItemView) -> dict[str, Any]:
        """Answer a player's question about this picture: {"text", "first_token_s", "total_s", "context"}."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free what the stack loaded (not the shared backend)."""


STACKS: Registry[type[Stack]] = Registry("bench stack")

SCORING_ONLY = ("cli",)
"""Parts of kibitz that never change what a stack outputs (the bench's own code is left out too, but for the stacks
and their prompts)."""


@cache
def code_fingerprint() -> str:
    """A hash of kibitz's source that the stacks run: perception, state, brain, memory, core, games, the stacks."""
    root = resources.files("kibitz")
    digest = hashlib.sha256()
    stack = resources.files("kibitz.bench")
    files = [stack / "stacks.py", stack / "prompts" / "baseline.yaml"]

    def walk(folder: Any, rel: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            name = f"{rel}{entry.name}"
            if entry.is_dir():
                if name not in SCORING_ONLY and name != "bench" and entry.name != "__pycache__":
                    walk(entry, name + "/")
            elif entry.name.endswith((".py", ".yaml", ".json")):
                files.append(entry)

    walk(root, "")
    for entry in files:
        digest.update(entry.name.encode() + entry.read_bytes())
    return digest.hexdigest()[:16]


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
    """The product itself: kibitz's own `PixelPerceiver`, `Session` and `Companion`, configured through their public
    options (the screen's text read on the frame it is due, the speak policy on the clip's clock) and sharing one
    prototype bank, embedder and OCR engine across items."""

    name = "kibitz"

    def __init__(self, config: KibitzConfig, backend: LLMBackend, options: dict[str, Any] | None = None) -> None:
        super().__init__(config, backend, options)
        from kibitz.core.persona import load_persona
        from kibitz.perception.assets import recognition_bank
        from kibitz.perception.classifier import EMBEDDERS

        self.embedder = EMBEDDERS.get(config.perception.embedder)()
        bank = recognition_bank(self.embedder)
        if bank is None:
            raise KibitzError("kibitz has learnt no games yet: run `kibitz games learn` once, then the bench.")
        self.bank = bank
        self.persona = load_persona(config.persona.name)
        self._ocr: Any = None

    def prepare(self, dataset: Dataset) -> None:
        """Check the bank never saw what it is scored on, then add the unseen games' few support pictures, as a
        user would with `kibitz games add`."""
        super().prepare(dataset)
        from kibitz.perception.classifier import PrototypeBank, prepare

        self.bank_origins = check_bank(set(self.bank.game_names), dataset.meta)

        from kibitz.perception.change import is_blank

        pictures = [(prepare(dataset.image(i)), i) for i in dataset.of_kind("support")]
        pictures = [(im, i) for im, i in pictures if not is_blank(im)]  # skipped by `kibitz games add` too
        if pictures:
            extra = PrototypeBank.build(
                self.embedder,
                [im for im, _ in pictures],
                [i["game"] for _, i in pictures],
                [i["scene"] for _, i in pictures],
            )
            self.bank = self.bank.merge(extra)

    @property
    def ocr(self) -> Any:
        if self._ocr is None:
            self._ocr = _ocr_engine()
        return self._ocr

    def session_config(self, view: ItemView) -> KibitzConfig:
        """The user's configuration with what a replay needs: pixels only, the numbers a player would point kibitz
        at by their labels (the same hint the baseline gets), text read in step with the clip, the clip's clock."""
        config = self.config.model_copy(deep=True)
        config.perception.mode = "pixels"
        config.perception.labels = {k: list(v) for k, v in view.labels.items()}
        config.perception.ocr_inline = True
        config.policy.clock = "media"
        return config

    def perceiver(self, config: KibitzConfig) -> Any:
        from kibitz.perception.pixels import PixelPerceiver

        return PixelPerceiver(None, config.perception, embedder=self.embedder, bank=self.bank, ocr_engine=self.ocr)

    def recognise(self, image: RGBImage, view: ItemView) -> dict[str, Any]:
        """What live perception makes of the picture left on screen for a moment (`perceive_still`: one picture alone
        names no game, a game is followed once several recognitions agree)."""
        from kibitz.perception.pixels import perceive_still

        perceiver = self.perceiver(self.session_config(view))
        try:
            obs = perceive_still(perceiver, image)
        finally:
            perceiver.close()
        return {"game": obs.game, "scene": obs.scene, "hud": obs.values()}

    def _session(self, view: ItemView, react: bool) -> tuple[Any, Any, list[str]]:
        from kibitz.brain.companion import Companion
        from kibitz.games.knowledge import builtin_tips
        from kibitz.memory.knowledge import open_knowledge
        from kibitz.session import Session

        config = self.session_config(view)
        errors: list[str] = []
        companion = Companion(
            self.backend,
            self.persona,
            config.llm.max_tokens,
            config.llm.temperature,
            on_error=lambda u, message: errors.append(message),
        )
        # The built-in games' knowledge, as a session has it; never the guides a user added (the bench stays hermetic).
        knowledge = open_knowledge(config.knowledge, builtin_tips, guides=False) if config.knowledge.enabled else None
        session = Session(
            config, None, companion, _Lines(), react=react, perceiver=self.perceiver(config), knowledge=knowledge
        )
        return session, companion, errors

    def answer(self, image: RGBImage, question: str, view: ItemView) -> dict[str, Any]:
        """The player types the question while this picture is on screen; the session answers it. As in `recognise`,
        the picture stays on screen for a moment first (`perceive_still`'s 1.5 s: one picture alone names no game),
        and the question comes on its last frame, as a player asks about a game already on screen."""
        from kibitz.perception.pixels import STILL_S

        session, companion, errors = self._session(view, react=False)
        step = max(session.config.perception.recognise_every_s, 0.05)
        last = int(STILL_S / step + 1e-9)

        def still() -> Iterator[Frame]:
            for i in range(last + 1):
                if i == last:
                    session.questions.put(question)
                yield Frame(i * step, image, "bench", i)

        with self.lock:
            companion.start(warm=True)  # a running companion has its system prompt cached (not counted)
            try:
                result = session.run(still(), drain_s=600.0)
            finally:
                companion.stop(close_backend=False)
        said = [u for u in result.utterances if u.trigger == "question"]
        if not said:
            raise KibitzError(errors[0] if errors else "The companion gave no answer to the question.")
        u = said[0]
        return {
            "text": u.text,
            "first_token_s": u.first_token_latency,
            "total_s": u.total_latency,
            "context": session.describe(session.last_observation, precise=True),
        }

    def watch(self, frames: list[RGBImage], times: list[float], view: ItemView) -> dict[str, Any]:
        session, companion, errors = self._session(view, react=True)
        with self.lock:
            companion.start(warm=True)  # as in a live session, the fixed system prompt is evaluated before play
            started = time.perf_counter()
            try:
                result = session.run(replay(frames, times, lambda: companion.working), drain_s=600.0)
            finally:
                companion.stop(close_backend=False)
        by_id = {e.id: e for e in result.events}
        lines = []
        for u in result.utterances:
            mine = [by_id[i] for i in u.event_ids if i in by_id]
            lines.append(
                {
                    "t": round(u.t, 3),
                    # When the events it speaks of were detected: its latency counts from there.
                    "event_t": round(min((e.t for e in mine), default=u.t), 3),
                    "text": u.text,
                    "trigger": u.trigger,
                    "events": [e.summary for e in mine],
                    "first_token_s": u.first_token_latency,
                    "total_s": u.total_latency,
                }
            )
        return {
            "events": [{"type": e.type, "t": round(e.t, 3)} for e in result.events if e.type != "question"],
            "lines": lines,
            "errors": errors,
            "dropped": [{"type": e.type, "t": round(e.t, 3), "why": why} for e, why in result.dropped],
            "wall_s": round(time.perf_counter() - started, 3),
        }

    def close(self) -> None:
        self._ocr = None


def replay(frames: list[RGBImage], times: list[float], working: Callable[[], bool]) -> Iterator[Frame]:
    """A clip's frames, as fast as perception takes them while the companion is idle and in real time while it
    works (`working()`), so a line takes as much of the clip as it would of a game played live."""
    anchor: tuple[float, float] | None = None
    """(clip time, wall time) when the companion started working."""
    last_t = times[0] if times else 0.0
    for n, (t, image) in enumerate(zip(times, frames, strict=True)):
        if working():
            if anchor is None:
                anchor = (last_t, time.perf_counter())
            wait = (t - anchor[0]) - (time.perf_counter() - anchor[1])
            if wait > 0:
                time.sleep(wait)
        else:
            anchor = None
        last_t = t
        yield Frame(t, image, "bench", n)


# --- baseline ----------------------------------------------------------------------------------------------


@STACKS.decorator("baseline", "OCR text every 5 s: the screen's text to the LLM every N seconds, the reply spoken")
class BaselineStack(Stack):
    """What simple AI game companions do: look every `every_s` seconds and speak whatever the model says."""

    name = "baseline"
    kind = "ocr"
    option_keys: ClassVar[tuple[str, ...]] = ("every_s",)
    scenes = ("gameplay", "menu", "title", "loading", "death", "game_over", "pause", "map", "cutscene")

    def __init__(self, config: KibitzConfig, backend: LLMBackend, options: dict[str, Any] | None = None) -> None:
        super().__init__(config, backend, options)
        self.every_s = float(self.options.get("every_s", 5.0))
        self.prompts = load_prompts("baseline.yaml")
        self._ocr: Any = None

    @property
    def label(self) -> str:
        return f"{self.name}-{self.kind}-{self.every_s:g}s[{self.backend.label}]"

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

    def look(
        self,
        image: RGBImage,
        prompt: str,
        max_tokens: int,
        temperature: float | None = None,
        done: Callable[[str], bool] | None = None,
        **values: Any,
    ) -> tuple[Generated, str]:
        """One look at the screen with one of the prompts: the reply (timed from the look) and what was sent."""
        screen, ocr_s = self.screen(image)
        out = self.llm(
            self._messages(render(self.prompts[prompt], screen=screen, **values)), max_tokens, temperature, done
        )
        first = None if out.first_token_s is None else ocr_s + out.first_token_s
        return Generated(out.text, first, ocr_s + out.total_s), screen

    def warm(self) -> None:
        """A companion that has been running has its system prompt cached too (not counted)."""
        with self.lock:
            self.backend.warm(self._messages(render(self.prompts["react"], screen="")))

    def recognise(self, image: RGBImage, view: ItemView) -> dict[str, Any]:
        out, _ = self.look(
            image,
            "recognise",
            80,
            0.0,
            json_closed,
            games=sorted(self.games.values()),
            scenes=self.scenes,
            fields={name: [Label.parse(spec).describe() for spec in specs] for name, specs in view.labels.items()},
        )
        return {**parse_recognition(out.text, self.games), "raw": out.text}

    def answer(self, image: RGBImage, question: str, view: ItemView) -> dict[str, Any]:
        out, sent = self.look(image, "question", 60, question=question)
        return {"text": out.text, "first_token_s": out.first_token_s, "total_s": out.total_s, "context": sent}

    def watch(self, frames: list[RGBImage], times: list[float], view: ItemView) -> dict[str, Any]:
        # Where the ticks fall relative to the events is chance in real life: a phase drawn per clip.
        tick = random.Random(view.key).uniform(0, self.every_s)
        lines, events = [], []
        self.warm()
        i = 0
        while tick <= (times[-1] if times else 0.0):
            while i + 1 < len(times) and times[i + 1] <= tick:
                i += 1
            out, _ = self.look(frames[i], "react", 40)
            lines.append(
                {
                    "t": round(tick, 3),
                    "event_t": round(tick, 3),
                    "text": out.text,
                    "trigger": "tick",
                    "events": [],
                    "first_token_s": out.first_token_s,
                    "total_s": out.total_s,
                }
            )
            events += [{"type": kind, "t": round(tick, 3)} for kind in events_in_line(out.text)]
            tick += self.every_s
        return {"events": events, "lines": lines}

    def close(self) -> None:
        self._ocr = None


@STACKS.decorator("baseline-vlm", "frame to a VLM every 5 s (--vlm-url): the picture itself, the reply spoken")
class VLMBaselineStack(BaselineStack):
    """The baseline that sends the frame itself to a vision model, as most simple companions do. Needs a VLM server
    (options: vlm_url, vlm_model); its reply is not streamed, so its first token is the whole reply's time."""

    name = "baseline-vlm"
    kind = "vlm"
    option_keys = ("every_s", "vlm_url", "vlm_model")

    def __init__(self, config: KibitzConfig, backend: LLMBackend, options: dict[str, Any] | None = None) -> None:
        super().__init__(config, backend, options)
        from kibitz.perception.vlm import VLMClient, VLMConfig

        url, model = self.options.get("vlm_url"), self.options.get("vlm_model")
        if not url or not model:
            raise KibitzError("The baseline-vlm stack needs a vision model server: pass --vlm-url and --vlm-model.")
        self.vlm = VLMClient(VLMConfig(base_url=str(url), model=str(model), timeout_s=60.0))

    @property
    def label(self) -> str:
        return f"{self.name}-{self.every_s:g}s[vlm:{self.vlm.config.model}]"

    def look(
        self,
        image: RGBImage,
        prompt: str,
        max_tokens: int,
        temperature: float | None = None,
        done: Callable[[str], bool] | None = None,
        **values: Any,
    ) -> tuple[Generated, str]:
        text = render(self.prompts["vlm_" + prompt], **values)
        start = time.perf_counter()
        with self.lock:
            reply = self.vlm.chat(image, self.prompts["system"].strip(), text, max_tokens)
        took = time.perf_counter() - start
        return Generated(reply, took if reply else None, took), "(the screenshot)"

    def warm(self) -> None:
        """A server keeps its own cache."""

    def close(self) -> None:
        self.vlm.close()


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
