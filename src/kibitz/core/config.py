"""Configuration: pydantic models that reject unknown keys, loaded from YAML and overridden from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kibitz.core.errors import ConfigError
from kibitz.core.events import cooldowns
from kibitz.core.layouts import combine_labels, label_layouts


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(Section):
    kind: str = "emulator"
    """emulator | screen | video | images."""
    fps: float = Field(60.0, gt=0, le=240)
    """Frames per second delivered to perception (emulators run at their native rate and skip between)."""
    realtime: bool = True
    """Pace to the wall clock; False runs as fast as the machine can (benchmarks, tests)."""
    path: str | None = None
    """Video file or image folder."""
    region: tuple[int, int, int, int] | None = None
    """Screen region as left, top, width, height."""
    monitor: int = 1
    window: str | None = None
    """Screen: capture the first window whose title contains this (needs xdotool)."""
    loop: bool = False
    """Images: start again at the end of the folder."""


class LLMConfig(Section):
    backend: str = "llamacpp"
    """llamacpp (embedded, default) | openai (any OpenAI-compatible server)."""
    model: str = "qwen2.5-coder-1.5b"
    """An embedded model name from `kibitz models list`, a .gguf path, or the server's model name."""
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (never the key itself)."""
    max_tokens: int = Field(40, gt=0, le=1024)
    temperature: float = Field(0.7, ge=0, le=2)
    n_threads: int = Field(1, ge=1)
    """Threads for the embedded model; one by default so the game keeps its CPU."""
    n_threads_batch: int | None = Field(None, ge=1)
    """Threads for evaluating prompts (bursts of a fraction of a second before a line); n_threads when unset. Two
    answer a spoken question sooner (docs/voice.md) at the cost of a core taken from the game meanwhile."""
    answer_threads: int | None = Field(2, ge=1)
    """Threads while the player waits for a line: their question's prompt while they ask it, and every line (an
    answer or a reaction) until its first words are out (about half a second a line); n_threads when unset. Two take
    a core from the game for that moment and answer about 0.3 s sooner on two cores (docs/voice.md)."""
    n_ctx: int = Field(2048, ge=256)
    """Tokens a prompt and its reply must fit in: the embedded model's context; for a server, its context length
    (every prompt's parts are cut to their share of it)."""
    timeout_s: float = Field(30.0, gt=0)
    seed: int = 0


class PolicyConfig(Section):
    cooldown_s: float = Field(6.0, ge=0)
    """Least time between the ends of two spoken reactions (questions are exempt)."""
    type_cooldown_s: dict[str, float] = Field(default_factory=cooldowns)
    """Least time between two reactions to one event type (defaults from core/data/events.yaml)."""
    merge_window_s: float = Field(0.8, ge=0)
    """Events this close together are answered in one line."""
    max_age_s: float = Field(5.0, gt=0)
    """An event not spoken within this time is dropped as stale (unless its priority is critical)."""
    min_priority: int = Field(1, ge=0)
    """Events below this priority are never spoken."""
    critical_priority: int = 8
    """Events at or above this priority may interrupt a cooldown."""
    clock: Literal["wall", "media"] = "wall"
    """What cooldowns and an event's age are timed on: the wall clock, or the frames' own times (media: a recording
    replayed faster or slower than it was played, as the bench does, keeps the timing it was played with)."""


class PersonaConfig(Section):
    name: str = "buddy"
    """A persona name from `kibitz personas` or a path to a persona YAML file."""


class OutputConfig(Section):
    jsonl: bool = False
    log_dir: str | None = None
    """Write the session's events and utterances as JSONL here (stays on this machine)."""


DEFAULT_GAME = "smb"


class MemoryConfig(Section):
    enabled: bool = True
    """Remember the player across sessions (on this machine only; `kibitz memory forget --all` erases it)."""
    db: str | None = None
    """Memory file or postgresql:// URL (default: $KIBITZ_MEMORY_DB or ~/.cache/kibitz/memory/memory.sqlite)."""
    user: str | None = None
    """Whose memory (default: the login name)."""
    question_wait_s: float = Field(2.0, gt=0, le=120)
    """A question waits at most this long for the memories that may answer it (the search starts when the question
    is typed, ahead of any writes; ~20-50 ms when the machine is free)."""


class KnowledgeConfig(Section):
    enabled: bool = True
    """Use what kibitz knows about the game: the built-in games' notes and your own guides (`kibitz games guide`)."""
    tips: bool = True
    """Follow an event with a tip when the same thing went wrong again (a second death in a level, a stall)."""
    embedder: str = "e5-small"
    """The text embedder that finds the tips and guide passages closest to a question (any language)."""


class VLMSection(Section):
    """A vision-language model on an OpenAI-compatible server (vLLM, SGLang, llama.cpp server, LM Studio...)."""

    base_url: str
    model: str
    api_key_env: str = "KIBITZ_VLM_API_KEY"
    timeout_s: float = Field(8.0, gt=0, le=600)
    max_side: int = Field(512, ge=32, le=4096)
    expected_latency_s: float = Field(2.0, gt=0)
    """What one VLM call is expected to take, until real calls have been measured."""


LABEL_PLACES = ("after", "max", "above", "under")
"""Where a labelled number is from its label (perception.labels: `HP@max`)."""


class PerceptionConfig(Section):
    mode: str = "auto"
    """auto (RAM state when frames carry it, else pixels), ram, pixels, or generic (pixels, no game knowledge)."""
    embedder: str = "efficientnet-lite0"
    recognise_every_s: float = Field(0.5, gt=0)
    """How often game and scene recognition runs (also on every scene cut)."""
    ocr_every_s: float = Field(3.0, gt=0)
    """Generic mode: how often the screen's text is read (also after a scene cut)."""
    ocr_max_side: int = Field(960, ge=160)
    ocr_quick_side: int = Field(480, ge=160)
    """After a cut or a burst (a banner), the screen is first read shrunk to this longer side (big text, ~0.1 s at
    720p where a full read takes ~0.5 s) so a short card is read while it is shown; a full read follows."""
    ocr_burst_gap_s: float = Field(1.0, ge=0)
    """Bursts (sudden local changes) set off a read at most this often (a busy game flashes a lot)."""
    ocr_inline: bool = False
    """Read the screen's text on the frame loop, on the frame it is due, instead of on the OCR thread (slower frames,
    but what is read no longer depends on the machine's speed: replays and the bench)."""
    labels: dict[str, list[str]] = Field(default_factory=dict)
    """Generic mode: on-screen labels of numbers to read from the screen text, e.g. {hp: [HP], hp_max: [HP@max],
    health: [HEALTH@above]} (`@max`: the second number of 12(15) or 12/15; `@above` / `@under`: where the number is
    from its label). Fields named lives, hp/health and depth/floor/world/stage also get death and level events."""
    layout: str | None = None
    """Generic mode: a built-in label layout read on top of `labels` (roguelike: "Dlvl:1 $:0 HP:14(14)...", shooter:
    numbers above AMMO, HEALTH, ARMOR; core/data/label_layouts.yaml). A field in `labels` replaces the layout's."""
    vlm: VLMSection | None = None

    @field_validator("layout")
    @classmethod
    def _layout_known(cls, layout: str | None) -> str | None:
        if layout is not None and layout not in label_layouts():
            raise ValueError(f"there is no label layout {layout!r}; the built-in ones are {', '.join(label_layouts())}")
        return layout

    def label_specs(self, *more: dict[str, list[str]]) -> dict[str, list[str]]:
        """Every labelled number to read: the layout's, then `labels`, then `more` (an added game's own labels)."""
        return combine_labels(self.layout, self.labels, *more)

    @field_validator("labels")
    @classmethod
    def _labels_parse(cls, labels: dict[str, list[str]]) -> dict[str, list[str]]:
        for field, specs in labels.items():
            for spec in specs:
                text, _, where = spec.partition("@")
                if not text.strip() or (where and where.strip().lower() not in LABEL_PLACES):
                    places = ", ".join("@" + p for p in LABEL_PLACES)
                    raise ValueError(f"the label {spec!r} of {field} is not LABEL or LABEL@HOW (HOW: {places})")
        return labels

    vlm_budget_s: float = Field(3.0, gt=0)
    """The slow path (VLM) is used only when it is expected to answer within this many seconds."""
    vlm_min_interval_s: float = Field(10.0, ge=0)
    """At most one unprompted VLM look this often (questions may ask sooner)."""


class VoiceConfig(Section):
    """Talking with the companion aloud (`--voice`; needs the voice extra and its models)."""

    enabled: bool = False
    voice: str | None = None
    """A voice from `kibitz voice voices` (default: the persona's, else its language's default)."""
    speed: float | None = Field(None, ge=0.5, le=2.0)
    """Speaking speed, 0.5 to 2.0 (default: the persona's, else 1.0)."""
    language: str | None = None
    """The language the player speaks ("auto" to detect it per question; default: the persona's language)."""
    vad: str = "silero"
    """How speech is told from silence: silero (a model) or energy (a loudness gate)."""
    echo: str = "speex"
    """Echo cancellation of the companion's own voice: speex, or none (with headphones)."""
    push_to_talk: bool = False
    """Hear the player only while they hold the talk key (for games whose sound would otherwise be heard)."""
    hangover_ms: int = Field(480, ge=160, le=3000)
    """Silence that ends a question."""
    confirm_barge_in: bool = False
    """When a sound starts while the companion speaks, pause it at once and cut its line only once words are heard
    (resume after 1.5 s without any): game music costs a moment's pause rather than the line, but a player's words
    are sometimes recognised too late (docs/voice.md has both figures). False (default): cut at once. Push-to-talk
    always cuts at once."""
    input_device: str | None = None
    output_device: str | None = None
    """Sound devices by name or number (`kibitz voice devices`); default: the system's."""


class KibitzConfig(Section):
    game: str | None = None
    """Game id from `kibitz games`; the emulator source defaults to Super Mario Bros."""
    seed: int = 0
    source: SourceConfig = Field(default_factory=SourceConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    persona: PersonaConfig = Field(default_factory=PersonaConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    perception: PerceptionConfig = Field(default_factory=PerceptionConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    voice: VoiceConfig = Field(default_factory=VoiceConfig)


def _describe(err: ValidationError, origin: str) -> str:
    """One sentence for the first validation problem, naming the dotted key and the allowed keys."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        model: type[BaseModel] = KibitzConfig
        for part in loc[:-1]:
            ann = model.model_fields[part].annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                model = ann
        known = ", ".join(model.model_fields)
        return f"Unknown config key {key!r} in {origin}; valid keys there are: {known}."
    return f"Bad value for {key!r} in {origin}: {first['msg']}."


def build_config(data: dict[str, Any], origin: str = "the configuration") -> KibitzConfig:
    """Validate a plain dict into a KibitzConfig, turning the first problem into a one-sentence ConfigError."""
    try:
        return KibitzConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from None


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> KibitzConfig:
    """Read a YAML config file (optional) and apply dotted-key overrides such as {"llm.backend": "openai"}."""
    data: dict[str, Any] = {}
    origin = "command-line options"
    if path is not None:
        origin = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist; check the path given to --config.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path} is not valid YAML ({exc.__class__.__name__}); fix it.") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of keys to values at the top level.")
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return build_config(data, origin)
