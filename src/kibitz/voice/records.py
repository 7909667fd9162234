"""The typed records the voice stages hand each other.

Hearing:  AudioChunk (microphone or file, 16 kHz mono) → VAD → SpeechStarted / SpeechSegment → ASR → Transcript,
          which becomes the same question a typed line would.
Speaking: Utterance pieces → SpokenSentence (one sentence of a line) → TTS → audio played, with how much of it was
          heard (Playback), so a barge-in cuts the companion's record of what it said to what was actually played.
Samples are float32 numpy arrays in [-1, 1]; times are seconds on the stream's own clock (samples / rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RATE = 16_000
"""The sample rate of everything heard (the VAD's and Whisper's rate)."""


@dataclass(slots=True)
class AudioChunk:
    """A run of microphone (or file) samples, mono at `rate`, starting `t` seconds into the stream."""

    samples: np.ndarray
    t: float
    rate: int = RATE
    wall: float | None = None
    """perf_counter when it arrived (just after it was recorded): what the companion played meanwhile is its echo."""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The player started talking at `t` (stream seconds); `detected_at` is when the VAD was sure."""

    t: float
    detected_at: float


@dataclass(slots=True)
class SpeechSegment:
    """One stretch of the player's speech (with a little audio before and after), ready for ASR."""

    samples: np.ndarray
    start: float
    end: float
    """Stream seconds of the last voiced frame."""
    final: bool
    """False for a look at speech still going on (a partial), True once the player stopped."""
    rate: int = RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


@dataclass(slots=True)
class Transcript:
    """What the player said in one segment."""

    text: str
    language: str
    start: float
    end: float
    final: bool
    asr_s: float = 0.0
    """Seconds the recogniser took."""
    no_speech: float = 0.0
    """Whisper's probability that the segment held no speech at all."""
    stable: str = ""
    """For a partial: the prefix two successive partials agreed on (safe to act on early)."""


@dataclass(slots=True)
class SpokenSentence:
    """One sentence of a companion line, synthesised and queued for playback."""

    key: int
    """Which line (an id the speaker gives each utterance)."""
    index: int
    text: str
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    rate: int = 22_050
    played: int = 0
    """Samples actually played so far."""
    ready: bool = False
    """Synthesised (its samples are final; none when there was nothing to say or synthesis failed)."""
    continues: bool = False
    """Its sentence may go on in the next piece (spoken with a continuing intonation if it ends in a word)."""

    @property
    def unplayed(self) -> bool:
        """Still to be synthesised or played to the end."""
        return not self.ready or self.played < len(self.samples)

    @property
    def heard_text(self) -> str:
        """The words the player heard, by the share of the sentence's audio that was played (a word counts when its
        share of the time has fully played)."""
        if not len(self.samples) or self.played >= len(self.samples):
            return self.text if self.played >= len(self.samples) and len(self.samples) else ""
        share = self.played / len(self.samples)
        spaced = " " in self.text.strip()
        # Words (or, in a language written without spaces, characters) take time in proportion to their letters,
        # plus one for the gap after each.
        words = self.text.split() if spaced else list(self.text.strip())
        weights = [len(w) + 1 for w in words]
        total = sum(weights)
        heard: list[str] = []
        acc = 0
        for word, weight in zip(words, weights, strict=True):
            acc += weight
            if acc / total <= share + 1e-9:
                heard.append(word)
            else:
                break
        return (" " if spaced else "").join(heard)
