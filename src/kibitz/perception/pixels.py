"""Pixels-only perception: what a player's screen shows, with no access to the game's memory.

Per frame (cheap): change detection, and the HUD read with glyph templates when the game is known.
When the picture changes, and every `recognise_every_s` otherwise: game and scene recognition on image
embeddings. Generic mode (an unknown game, a video, a web page) adds the screen's text by OCR. When a
VLM is configured, the router decides per moment whether it is worth a look; the VLM runs on its own
thread and its latest report joins the observations when it arrives, so the frame loop never waits.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kibitz.core.config import PerceptionConfig
from kibitz.core.records import Frame, Observation, Provenance, Reading, RGBImage
from kibitz.games.base import GameAdapter
from kibitz.perception.assets import game_labels, load_glyphs, recognition_bank, user_hud_dir
from kibitz.perception.base import Perceiver
from kibitz.perception.classifier import (
    EMBEDDERS,
    SCENES,
    Embedder,
    PrototypeBank,
    Recognition,
    canonical_scene,
    prepare,
)
from kibitz.perception.follow import GameFollower, LookLearner
from kibitz.perception.hud import GlyphBook, HudReader, HudSmoother, hud_spec_path, load_hud_spec
from kibitz.perception.letterbox import Box, ContentBox, crop, shaped_like
from kibitz.perception.router import Route, Router
from kibitz.perception.scenetext import is_card, scene_in_text

log = logging.getLogger("kibitz.pixels")
VLM_SCENE_FRESH_S = 10.0
"""How long the VLM's scene stands in for an unsure classifier (until a cut)."""


@dataclass(frozen=True, slots=True)
class VLMJob:
    image: RGBImage
    route: Route
    context: str | None


J = TypeVar("J")
R = TypeVar("R")


@dataclass
class OcrWork:
    """What whole-frame OCR has cost so far (on its own thread, or inline): reads, seconds, and the reads set off by a
    cut or a burst (on the thread, the quick ones)."""

    reads: int = 0
    seconds: float = 0.0
    cut_reads: int = 0
    cut_seconds: float = 0.0

    def add(self, seconds: float, after_cut: bool) -> None:
        self.reads += 1
        self.seconds += seconds
        if after_cut:
            self.cut_reads += 1
            self.cut_seconds += seconds


class Worker(Generic[J, R]):
    """Runs one job at a time on a daemon thread; the frame loop hands jobs over and picks results up, never waits.

    A job offered while the last one still runs is refused (the next frame offers a fresher one).
    """

    def __init__(self, name: str, run: Callable[[J], R]) -> None:
        self.run = run
        self.jobs: queue.Queue[J | None] = queue.Queue()
        self.results: queue.Queue[tuple[J, R | None]] = queue.Queue()
        self.busy = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()
        atexit.register(self.close, 5.0)  # also when nobody called close(): never exit mid native call

    def submit(self, job: J) -> bool:
        if self.busy:
            return False
        self.busy = True
        self.jobs.put(job)
        return True

    def done(self) -> list[tuple[J, R | None]]:
        """Finished jobs with their results (None when the job raised; the error is logged)."""
        out = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                return out

    def close(self, timeout: float = 10.0) -> None:
        """Let the job in progress finish and stop the thread (a native library must not be cut off mid-call)."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join(timeout)
        atexit.unregister(self.close)

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            result: R | None = None
            try:
                result = self.run(job)
            except Exception as exc:  # a last guard: the thread must survive any one bad job
                log.warning("%s failed: %s", self.thread.name, exc)
            self.results.put((job, result))
            self.busy = False


class PixelPerceiver(Perceiver):
    """Understands frames from their pixels alone (screen captures, videos, or emulator frames on purpose)."""

    generic = False

    def __init__(
        self,
        game: GameAdapter | None,
        config: PerceptionConfig | None = None,
        *,
        embedder: Embedder | None = None,
        bank: PrototypeBank | None = None,
        ocr_engine: Any = None,
    ) -> None:
        """`embedder`, `bank` and `ocr_engine` (an OCREngine) may be shared between perceivers (the bench watches
        many clips with one prototype bank); by default each is loaded as configured."""
        super().__init__(None if self.generic else game, config)
        from kibitz.perception.change import ChangeDetector

        self.change = ChangeDetector()
        self.content = ContentBox()
        """Where the game is in the capture (between dark bars found over time): recognition and the HUD look there."""
        self._box: tuple[tuple[int, ...], Box | None] = ((), None)
        """The content box found at the last recognition, and the shape of the frame it was found in."""
        self.embedder: Embedder = embedder or EMBEDDERS.get(self.config.embedder)()
        self.bank: PrototypeBank | None = bank if bank is not None else recognition_bank(self.embedder)
        self._engine = ocr_engine
        if self.bank is None:
            log.warning("No game or scene prototypes yet: run `kibitz games learn` (or `kibitz games add`).")
        self.recognition: Recognition | None = None
        self.follower = GameFollower()
        """The game the screen has consistently shown (when no game was named)."""
        self.learner = LookLearner()
        """The followed game's new looks, learnt for the session."""
        self.label_specs: dict[str, list[str]] = self.config.label_specs()
        """The numbers read by their labels: the configured layout and labels, and those of the game followed."""
        self._recognised_at: float | None = None
        self.reader: HudReader | None = None
        self.smoother: HudSmoother | None = None
        self._hud_game: str | None = self.game.id if self.game is not None else None
        if self.game is not None:
            self._load_hud(self.game.id)
        self.ocr: Worker[tuple[RGBImage, float, bool], tuple[list[Any], dict[str, int] | None]] | None = None
        self.text: tuple[str, ...] = ()
        self._text_at = float("-inf")
        """When the frame the text was read from was shown."""
        self._text_card = False
        """The frame the text was read from is text and little else (a card: its level phrase names a scene)."""
        self.labelled: dict[str, int] = {}
        self._labelled_fresh = False
        self._ocr_at: float | None = None
        self._cut_unread = False
        """A cut (or a burst) happened and no frame after it has been handed to OCR yet (the thread was busy)."""
        self._full_due = False
        """A quick read was taken: a full read is due at once."""
        self._burst_at: float | None = None
        self.ocr_work = OcrWork()
        self.routes: deque[Route] = deque(maxlen=100)
        """Recent route decisions (the log gets each change of decision, not every tick)."""
        self._notes: list[dict[str, Any]] = []
        self.router = Router(
            vlm_available=self.config.vlm is not None,
            budget_s=self.config.vlm_budget_s,
            min_interval_s=self.config.vlm_min_interval_s,
            expected_latency_s=self.config.vlm.expected_latency_s if self.config.vlm else 2.0,
        )
        self.vlm: Worker[VLMJob, Any] | None = self._make_vlm()
        self.vlm_description: str | None = None
        self.vlm_scene: tuple[str, float] | None = None
        """The VLM's last scene in the shared vocabulary, and the time of the frame it looked at."""
        self.vlm_answered: deque[str] = deque(maxlen=20)
        self.bad_frames = 0
        self._last: Observation | None = None
        self._image: RGBImage | None = None
        self._cut_at = float("-inf")

    def _make_vlm(self) -> Worker[VLMJob, Any] | None:
        if self.config.vlm is None:
            return None
        import os

        from kibitz.perception.vlm import VLMClient, VLMConfig

        v = self.config.vlm
        client = VLMClient(
            VLMConfig(
                base_url=v.base_url,
                model=v.model,
                api_key=os.environ.get(v.api_key_env),
                timeout_s=v.timeout_s,
                max_side=v.max_side,
            )
        )
        return Worker(
            "kibitz-vlm", lambda job: client.report(job.image, question=job.route.question, context=job.context)
        )

    def _load_hud(self, game_id: str) -> None:
        path = hud_spec_path(game_id, (user_hud_dir(),))
        if path is None:
            return
        spec = load_hud_spec(path)
        book = load_glyphs(game_id)
        if book is None and any(f.method == "glyphs" for f in spec.fields.values()):
            log.warning("No HUD font learnt for %s yet: run `kibitz games learn %s` to read its HUD.", game_id, game_id)
            return
        self.reader, self.smoother = HudReader(spec, book or GlyphBook()), HudSmoother(spec)

    # --- per frame ---------------------------------------------------------------------------------------
    def perceive(self, frame: Frame) -> Observation:
        try:
            image = prepare(frame.image)
        except ValueError as exc:
            self.bad_frames += 1
            if self.bad_frames in (1, 10, 100, 1000):
                log.warning("Frame %d skipped: %s (%d bad frames so far).", frame.index, exc, self.bad_frames)
            return self._unchanged(frame)
        self._image = image
        change = self.change.update(image, frame.t)
        if change.cut:
            self._cut_at = frame.t
        due = self._recognised_at is None or frame.t - self._recognised_at >= self.config.recognise_every_s
        if due or change.cut:
            if self.bank is not None:
                hint = self.game.id if self.game is not None else None
                self._box = (image.shape, self.content.update(image, frame.t))
                vector = self.embedder.embed([crop(image, self._box[1])])[0]
                self.recognition = self.bank.classify(vector, game_hint=hint, scene_game=self.follower.game)
                if self.game is None and not self.generic:
                    followed = self.follower.update(self.recognition, blank=change.blank)
                    self.bank = self.learner.learn(self.bank, vector, self.recognition, followed, blank=change.blank)
                    self._follow(followed)
            self._recognised_at = frame.t
            self._consider_vlm(image, frame.t, change.cut)
        self._collect_vlm()
        rec = self.recognition
        scene = rec.scene if rec is not None else "unknown"
        unsure = rec is None or rec.game is None or rec.scene_confidence < 0.5
        # A look taken before the last cut describes another picture; a look too old may too.
        look = self.vlm_scene
        if unsure and look is not None and look[1] >= self._cut_at and frame.t - look[1] < VLM_SCENE_FRESH_S:
            scene = look[0]  # the slow path looked at this screen recently and the classifier cannot say
        if change.blank:  # nothing to recognise on a blank screen: it is the game's loading scene
            scene = self._blank_scene()
        # The game: the one named, else the one the screen has consistently shown (one picture is not enough).
        game_id = self.game.id if self.game is not None else self.follower.game
        confidence = 1.0 if self.game is not None else self.follower.confidence if game_id is not None else 0.0
        unnamed = self.generic or self.game is None
        if unnamed:  # the screen's text first, so numbers read by their labels come from this frame's text
            self._maybe_ocr(image, frame.t, change.cut, change.burst)
        fields: dict[str, Reading] = {}
        if self.reader is not None and self.smoother is not None:  # the game's own scene names (its HUD file's)
            shape, box = self._box  # the HUD's boxes are in the game's own pixels: read between the bars
            game_view = shaped_like(image, box if shape == image.shape else None, self.reader.spec.size)
            fields = self.smoother.update(frame.t, self.reader.read(game_view, scene))
        elif self.labelled:  # numbers read by their labels: fresh on the frame their text was read
            sure = 1.0 if self._labelled_fresh else 0.9
            fields = {k: Reading(v, Provenance.OCR, sure) for k, v in self.labelled.items()}
            self._labelled_fresh = False
        if unnamed:
            # A title card's words say what the screen is ("GAME OVER", "PAUSED"), if read since the last cut; a
            # level card's ("WORLD 1-1") only on a screen of text and little else.
            card = self._text_card or (rec is not None and rec.text_only)
            said = scene_in_text(self.text, card) if self._text_at >= self._cut_at and not change.blank else None
            scene = canonical_scene(said or scene)
        obs = Observation(
            t=frame.t,
            frame_index=frame.index,
            game=game_id,
            game_confidence=confidence,
            scene=scene,
            fields=fields,
            text=self.text,
            description=self.vlm_description,
        )
        self._last = obs
        return obs

    def _blank_scene(self) -> str:
        """The scene of a blank screen: the loading scene of the game played (named, or followed by its HUD)."""
        from kibitz.games import GAMES, get_game

        if self.game is not None:
            return self.game.blank_scene
        followed = self._hud_game if self.reader is not None else None
        return get_game(followed).blank_scene if followed is not None and followed in GAMES else "loading"

    def _follow(self, game_id: str | None) -> None:
        """No game was named, and the screen has consistently shown a game kibitz knows: read that game's HUD (and
        stop reading it when the screen stops showing that game)."""
        if game_id == self._hud_game:
            return
        self._hud_game = game_id
        self.reader = self.smoother = None
        self.label_specs = self.config.label_specs(game_labels(game_id) if game_id is not None else {})
        if game_id is not None:
            self._load_hud(game_id)
            log.info("The screen shows %s; reading its HUD.", game_id)

    def _unchanged(self, frame: Frame) -> Observation:
        last = self._last
        if last is None:
            return Observation(t=frame.t, frame_index=frame.index, game=None, game_confidence=0.0, scene="unknown")
        return Observation(
            frame.t, frame.index, last.game, last.game_confidence, last.scene, last.fields, last.text, last.description
        )

    @property
    def engine(self) -> Any:
        """The OCR engine (loaded on first use)."""
        if self._engine is None:
            from kibitz.perception.ocr import OCREngine

            self._engine = OCREngine()
        return self._engine

    def _maybe_ocr(self, image: RGBImage, t: float, cut: bool, burst: bool = False) -> None:
        """Read the screen's text now and then, and right after a cut or a burst (a banner drawn over the play), on
        the OCR thread, or on this frame with `ocr_inline`.

        After a cut or a burst the first read is a quick one (shrunk to `ocr_quick_side`: big text, a fraction of a
        full read's time) so a short card (a death, a level card) is read while it is still shown, and a full read
        follows at once. A cut met while the thread is busy is read on the first frame the thread takes after it."""
        config = self.config
        if burst and (self._burst_at is None or t - self._burst_at >= config.ocr_burst_gap_s):
            self._burst_at = t
            self._cut_unread = True
        self._cut_unread = self._cut_unread or cut
        due = self._ocr_at is None or t - self._ocr_at >= config.ocr_every_s or self._cut_unread or self._full_due
        if config.ocr_inline:  # one full read on the frame it is due: what is read must not depend on speed
            if due:
                self._ocr_at = t
                boxes, labelled = self._read(image, config.ocr_max_side, self._cut_unread, labels=True)
                self.take_text(boxes, image, t, labelled=labelled)
                self._cut_unread = self._full_due = False
            return
        if self.ocr is None:
            _ = self.engine  # loaded here, once: a missing model is reported on the loop, not lost on the thread
            self.ocr = Worker(
                "kibitz-ocr",
                lambda job: self._read(
                    job[0], config.ocr_quick_side if job[2] else config.ocr_max_side, job[2], labels=not job[2]
                ),
            )
        for (read, read_at, quick), result in self.ocr.done():
            if result is not None:
                self.take_text(result[0], read, read_at, labels=not quick, labelled=result[1])
            self._full_due = self._full_due or quick
        if not due:
            return
        quick = self._cut_unread and config.ocr_quick_side < config.ocr_max_side
        if self.ocr.submit((image.copy(), t, quick)):
            self._ocr_at = t
            self._cut_unread = False
            self._full_due = self._full_due and quick

    def _read(
        self, image: RGBImage, max_side: int, after_cut: bool, labels: bool
    ) -> tuple[list[Any], dict[str, int] | None]:
        """One OCR read of a whole frame and, with `labels`, the numbers named by their labels (a caption whose number
        detection missed gets the strip beside it recognised: more OCR, so here, off the loop), its time counted in
        `ocr_work`."""
        start = time.perf_counter()
        try:
            boxes = list(self.engine.read(image, max_side=max_side))
            specs = self.label_specs
            if not (labels and specs):
                return boxes, None
            from kibitz.perception.labels import read_labelled

            return boxes, read_labelled(boxes, specs, image, self.engine.recognize)
        finally:
            self.ocr_work.add(time.perf_counter() - start, after_cut)

    @property
    def text_read_at(self) -> float:
        """When the frame the current screen text was read from was shown (-inf before the first read)."""
        return self._text_at

    def take_text(
        self,
        boxes: list[Any],
        image: RGBImage | None = None,
        t: float | None = None,
        labels: bool = True,
        labelled: dict[str, int] | None = None,
    ) -> None:
        """A new reading of the screen's text (and of the numbers named by their labels, if any, unless `labels` is
        False: a quick read sees big text only), from `image`, the frame shown at `t`; `labelled`: those numbers,
        already read with the text."""
        from kibitz.perception.ocr import screen_lines

        self.text = screen_lines(b.text for b in boxes)
        self._text_at = t if t is not None else float("inf")
        self._text_card = image is not None and is_card(image, boxes)
        if self.label_specs and labels:
            from kibitz.perception.labels import read_labelled

            self.labelled = labelled if labelled is not None else read_labelled(boxes, self.label_specs, image)
            self._labelled_fresh = True

    # --- slow path ---------------------------------------------------------------------------------------
    def _consider_vlm(self, image: RGBImage, t: float, cut: bool, question: str | None = None) -> Route:
        route = self.router.decide(t, self.recognition, question=question, cut=cut)
        # Log each change of decision (and every question); "looked 2.3 s ago" and "3.1 s ago" are one kind.
        kind = re.sub(r"[\d.]+", "#", route.reason)
        last = self.routes[-1] if self.routes else None
        if route.path == "slow" or question is not None or last is None or re.sub(r"[\d.]+", "#", last.reason) != kind:
            self._notes.append(route.to_json())
            log.info("route %s: %s", route.path, route.reason)
        self.routes.append(route)
        if route.path == "slow" and self.vlm is not None:
            context = "\n".join(self.text) if self.text else None
            if not self.vlm.submit(VLMJob(image.copy(), route, context)):
                log.info("The VLM is still busy with the last look; this one is skipped.")
        return route

    def ask(self, question: str, t: float) -> Route:
        """Route a player's question: a question about the picture gets the VLM's look when it is worth it."""
        image = self._image
        if image is None:
            return Route("fast", "no frame yet", t, question)
        return self._consider_vlm(image, t, cut=False, question=question)

    def _collect_vlm(self) -> None:
        if self.vlm is None:
            return
        for job, result in self.vlm.done():
            if result is None:
                continue
            self.router.observe_latency(result.latency_s)
            if result.report is None:
                log.warning("The VLM look failed: %s", result.error)
                self.vlm_answered.append(job.route.question or "")
                continue
            r = result.report
            if r.scene in SCENES:  # a scene the shared vocabulary has: it may stand in for an unsure classifier
                self.vlm_scene = (r.scene, job.route.t)
            parts = [f"A vision model looking at the screen sees: {r.scene}"]
            if r.objects:
                parts.append("objects: " + ", ".join(r.objects))
            if r.threats:
                parts.append("threats: " + ", ".join(r.threats))
            if r.suggestion:
                parts.append("it suggests: " + r.suggestion)
            self.vlm_description = "; ".join(parts) + "."
            self.vlm_answered.append(job.route.question or "")

    def answered(self) -> set[str]:
        return set(self.vlm_answered)

    def notes(self) -> list[dict[str, Any]]:
        out, self._notes = self._notes, []
        return out

    def close(self) -> None:
        for worker in (self.ocr, self.vlm):
            if worker is not None:
                worker.close()

    def readings(self) -> dict[str, Reading]:
        return {} if self._last is None else dict(self._last.fields)


STILL_S = 1.5
"""How long `perceive_still` shows a picture: four recognitions at the default 0.5 s, one more than following needs."""


def perceive_still(perceiver: PixelPerceiver, image: RGBImage, seconds: float = STILL_S) -> Observation:
    """What live perception makes of a picture left on screen for `seconds` (one picture alone names no game: a game
    is followed after several recognitions agree). The perceiver should be fresh (nothing seen before)."""
    step = max(perceiver.config.recognise_every_s, 0.05)
    obs = perceiver.perceive(Frame(0.0, image, "still", 0))
    for i in range(1, int(seconds / step + 1e-9) + 1):
        obs = perceiver.perceive(Frame(i * step, image, "still", i))
    return obs


class GenericPerceiver(PixelPerceiver):
    """No game knowledge: change detection, scenes in the shared vocabulary, the screen's text, and the VLM."""

    generic = True
