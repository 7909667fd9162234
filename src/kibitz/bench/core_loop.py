"""Core-loop benchmarks (issue targets): event → first token latency, loop rate, stalls, RAM, and event
detection against the emulator's RAM truth."""

from __future__ import annotations

import random
import re
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.progress import Progress

from kibitz.brain.companion import Companion
from kibitz.brain.llm import make_backend
from kibitz.core.config import KibitzConfig, PerceptionConfig
from kibitz.core.persona import Persona, load_persona
from kibitz.core.records import Event, Frame
from kibitz.games import get_game
from kibitz.games.base import GameAdapter
from kibitz.games.smb import true_deaths, true_game_overs, true_level_changes
from kibitz.outputs.sinks import Output
from kibitz.perception.base import PERCEIVERS
from kibitz.session import Session
from kibitz.sources.emulator import EmulatorSource
from kibitz.state.tracker import StateTracker

if TYPE_CHECKING:
    from kibitz.memory.live import PlayerMemory


def pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(list(values), q)) if values else None


@dataclass
class LatencyReport:
    backend: str
    seconds: float
    events: int
    lines: int
    first_token_p50_s: float | None
    first_token_p95_s: float | None
    model_first_token_p50_s: float | None
    """Event → first token minus the time the speak policy held the event on purpose (cooldowns)."""
    model_first_token_p95_s: float | None
    line_total_p50_s: float | None
    queue_p50_s: float | None
    """Time an event waited for the model (a prefetch or an earlier line in progress)."""
    queue_p95_s: float | None
    distinct_lines: float | None
    """Share of lines that are not a repeat of an earlier line (case- and punctuation-insensitive)."""
    mean_words: float | None
    loop_fps: float
    native_fps: float
    frame_work_p50_ms: float | None
    frame_work_p95_ms: float | None
    max_gap_while_speaking_ms: float | None
    late_frames_while_speaking: int
    """Frame gaps over 50 ms (3 NES frames) while the model was generating."""
    peak_rss_mb: float
    prefetches: int
    prefetch_p50_s: float | None
    prefetch_max_s: float | None
    transcript: list[dict[str, Any]]
    """Every event and line of the run, in order (so quality can be read next to the figures)."""
    memories: int = 0
    """Memories the player already had (0: memory off)."""
    recall_p50_ms: float | None = None
    recall_p95_ms: float | None = None
    """The companion's memory lookups (per game state and per question), as it waited for them."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Progress(Output):
    def __init__(self, progress: Progress, task: Any) -> None:
        self.progress, self.task = progress, task

    def event(self, event: Event) -> None:
        self.progress.update(self.task, completed=event.t)


def _ticking(frames: Any, progress: Progress, task: Any) -> Any:
    for frame in frames:
        if frame.index % 60 == 0:
            progress.update(task, completed=frame.t)
        yield frame


def _player_memory(count: int, folder: Path, game: GameAdapter, persona: Persona) -> PlayerMemory:
    """A player who already has `count` memories (1,000 distinct sentences embedded for real, spread over
    games, a tenth of them about this game), in a SQLite store in `folder`."""
    from kibitz.bench.memory import SUBJECTS, _texts
    from kibitz.memory.embed import shared_embedder
    from kibitz.memory.live import PlayerMemory
    from kibitz.memory.records import Memory
    from kibitz.memory.sqlite import SQLiteStore

    embedder = shared_embedder()  # as `kibitz watch` has it
    store = SQLiteStore(str(folder / "memory.sqlite"), embedder)
    base = _texts(min(1000, count), random.Random(0))
    vectors = embedder.passages(base)
    noise = np.random.default_rng(0)
    for c in range(-(-count // len(base))):
        n = min(len(base), count - c * len(base))
        v = vectors[:n] + noise.normal(0, 0.01, (n, vectors.shape[1])).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        where = game.id if c % 10 == 0 else f"game{c}"
        store.load([Memory("player", base[i], where, SUBJECTS[i % len(SUBJECTS)], "event") for i in range(n)], v)
    return PlayerMemory(store, "player", persona, game.id, game.title)


def latency_bench(config: KibitzConfig, seconds: float, memories: int = 0) -> LatencyReport:
    """Play the game in real time with the configured model and measure how fast and how smoothly it reacts;
    with `memories`, the player has that many memories and the companion recalls them for every line."""
    game = get_game(config.game or "smb")
    source = EmulatorSource(game, fps=config.source.fps, realtime=True, seed=config.seed)
    backend = make_backend(config.llm)
    persona = load_persona(config.persona.name)
    recall_ms: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        memory = _player_memory(memories, Path(folder), game, persona) if memories else None

        class Timed:
            """The player's memory, timing every lookup the companion waits for."""

            def for_state(self, state: str) -> list[str]:
                return self._timed(lambda m: m.for_state(state))

            def for_question(self, question: str) -> list[str]:
                return self._timed(lambda m: m.for_question(question))

            def _timed(self, fn: Callable[[PlayerMemory], list[str]]) -> list[str]:
                assert memory is not None
                start = time.perf_counter()
                lines = fn(memory)
                recall_ms.append((time.perf_counter() - start) * 1000)
                return lines

        companion = Companion(
            backend,
            persona,
            config.llm.max_tokens,
            config.llm.temperature,
            recall=Timed() if memory is not None else None,
        )
        companion.start(warm=True)
        with Progress(transient=True) as progress:
            task = progress.add_task(f"playing {game.title} in real time", total=seconds)
            session = Session(config, game, companion, _Progress(progress, task), memory=memory)
            result = session.run(_ticking(source.frames(), progress, task), max_seconds=seconds)
        companion.stop()
        source.close()
        if memory is not None:
            memory.close()
            memory.store.close()
    first = [u.first_token_latency for u in result.utterances if u.first_token_latency is not None]
    model_first = [
        u.first_token_latency - (u.hold_latency or 0.0) for u in result.utterances if u.first_token_latency is not None
    ]
    total = [u.total_latency for u in result.utterances if u.total_latency is not None]
    speaking = result.stats.gaps_while_speaking_ms
    prefetch = [seconds for _, seconds in companion.prefetch_log]
    queue = [u.queue_latency for u in result.utterances if u.queue_latency is not None]
    norm = [re.sub(r"[^\w ]", "", u.text.lower()).strip() for u in result.utterances if u.text]
    return LatencyReport(
        backend=backend.label,
        seconds=seconds,
        events=len(result.events),
        lines=len(result.utterances),
        first_token_p50_s=pct(first, 50),
        first_token_p95_s=pct(first, 95),
        model_first_token_p50_s=pct(model_first, 50),
        model_first_token_p95_s=pct(model_first, 95),
        line_total_p50_s=pct(total, 50),
        queue_p50_s=pct(queue, 50),
        queue_p95_s=pct(queue, 95),
        distinct_lines=len(set(norm)) / len(norm) if norm else None,
        mean_words=float(np.mean([len(u.text.split()) for u in result.utterances])) if result.utterances else None,
        loop_fps=result.stats.frames / result.stats.wall_s,
        native_fps=source.env.native_fps,
        frame_work_p50_ms=pct(result.stats.work_ms, 50),
        frame_work_p95_ms=pct(result.stats.work_ms, 95),
        max_gap_while_speaking_ms=max(speaking) if speaking else None,
        late_frames_while_speaking=sum(1 for g in speaking if g > 50),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        prefetches=len(prefetch),
        prefetch_p50_s=pct(prefetch, 50),
        prefetch_max_s=max(prefetch) if prefetch else None,
        transcript=sorted(
            [e.to_json() for e in result.events] + [u.to_json() for u in result.utterances],
            key=lambda r: (r["t"], r["kind"] == "utterance"),
        ),
        memories=memories,
        recall_p50_ms=pct(recall_ms, 50),
        recall_p95_ms=pct(recall_ms, 95),
    )


@dataclass
class DetectionReport:
    game: str
    seconds: float
    kind: str
    truth: int
    detected: int
    caught: int
    missed: int
    extra: int
    mean_lead_s: float | None
    """How long before the RAM counter changed the event fired (positive = earlier)."""
    loop_fps: float = 0.0
    """Frames per second the emulator + perception + tracking loop sustained, unpaced, with no model."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _match(
    kind: str, truth: list[float], detected: list[float], before: float, after: float, game: str, seconds: float
) -> DetectionReport:
    used: set[int] = set()
    leads: list[float] = []
    for t in truth:
        for i, d in enumerate(detected):
            if i not in used and t - before <= d <= t + after:
                used.add(i)
                leads.append(t - d)
                break
    # A detection in the last `before` seconds may precede a counter change the run did not reach.
    extra = sum(1 for i, d in enumerate(detected) if i not in used and d < seconds - before)
    return DetectionReport(
        game,
        seconds,
        kind,
        len(truth),
        len(detected),
        len(used),
        len(truth) - len(used),
        extra,
        float(np.mean(leads)) if leads else None,
    )


def detection_bench(seconds: float, seed: int = 0, fps: float = 60.0, perception: str = "ram") -> list[DetectionReport]:
    """Run Super Mario Bros. (as fast as possible) and compare detected events with the RAM truth.

    perception "pixels" hides the RAM from perception (frames are handed over as bare pictures) and allows
    detections up to 3 s later than the RAM change: a death is then seen on the next "× lives" card.
    """
    game = get_game("smb")
    source = EmulatorSource(game, fps=fps, realtime=False, seed=seed)
    tracker = StateTracker(game.detectors())
    perceiver = PERCEIVERS.get(perception)(game, PerceptionConfig())
    late = 3.0 if perception != "ram" else 0.0
    events: list[Event] = []
    states: list[tuple[float, dict[str, Any]]] = []
    frame: Frame
    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("Super Mario Bros. vs RAM truth", total=seconds)
        for frame in source.frames():
            bare = frame if perception == "ram" else Frame(frame.t, frame.image, frame.source, frame.index)
            events += tracker.update(perceiver.perceive(bare))
            assert frame.state is not None
            states.append((frame.t, frame.state))
            if frame.index % 600 == 0:
                progress.update(task, completed=frame.t)
            if frame.t >= seconds:
                break
    source.close()
    loop_fps = len(states) / (time.perf_counter() - started)

    def times(kind: str) -> list[float]:
        return [e.t for e in events if e.type == kind]

    reports = [
        _match("death", true_deaths(states), times("death"), 6.0, 0.5 + late, "smb", seconds),
        _match("level_change", true_level_changes(states), times("level_change"), 0.5, 1.0 + late, "smb", seconds),
        _match("game_over", true_game_overs(states), times("game_over"), 0.5, 1.0 + late, "smb", seconds),
    ]
    for report in reports:
        report.loop_fps = loop_fps
    return reports
