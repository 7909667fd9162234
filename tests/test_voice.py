"""The voice pipeline on real audio and real models: Piper, Kokoro and eSpeak NG speak, Whisper hears, Silero VAD
segments, and a scripted timeline checks barge-in and the companion's own echo. No sound device is needed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import pytest

from kibitz.core.config import VoiceConfig
from kibitz.core.errors import ConfigError, KibitzError, UnknownNameError
from kibitz.core.persona import load_persona
from kibitz.core.records import Utterance
from kibitz.voice import audio
from kibitz.voice.asr import Transcriber, is_hallucination
from kibitz.voice.listener import chunks
from kibitz.voice.live import Voice
from kibitz.voice.records import RATE, AudioChunk, SpeechSegment, SpeechStarted, SpokenSentence
from kibitz.voice.sentences import SentenceSplitter
from kibitz.voice.tts import load_voice, voice_for, voices
from kibitz.voice.vad import Segmenter, make_vad


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(language="en")


def speak(name: str, text: str) -> np.ndarray:
    engine = load_voice(voices()[name])
    return audio.resample(engine.synthesize(text), engine.rate)


def espeak(text: str, voice: str = "en-us") -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = audio.decode_wav_bytes(wav)
    return audio.resample(samples, rate)


def wer(truth: str, heard: str) -> float:
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    return float(jiwer.wer(norm(truth), norm(heard)))


SENTENCES = [
    "How do I beat the boss in world four?",
    "Where is the hidden exit in this castle?",
    "Should I save my fire flowers for later?",
]


@pytest.mark.parametrize("make", ["piper", "espeak"])
def test_a_spoken_question_round_trips_through_whisper(transcriber: Transcriber, make: str) -> None:
    heard_all = []
    for text in SENTENCES:
        samples = speak("joe", text) if make == "piper" else espeak(text)
        heard = transcriber.transcribe(SpeechSegment(samples, 0.0, len(samples) / RATE, True))
        assert heard.language == "en" and heard.asr_s > 0
        heard_all.append(heard.text)
    # Over the three (Piper's voice varies a little from run to run; `kibitz bench voice` has the real figure).
    assert wer(" ".join(SENTENCES), " ".join(heard_all)) <= 0.2, heard_all


def test_japanese_voice_round_trips() -> None:
    samples = speak("alpha", "ボスはどうやって倒すの？")
    heard = Transcriber(language="ja").transcribe(SpeechSegment(samples, 0.0, 1.0, True))
    assert "ボス" in heard.text, heard.text


def test_noise_and_whisper_hallucinations_are_not_questions(transcriber: Transcriber) -> None:
    noise = np.random.default_rng(3).normal(0, 0.05, 2 * RATE).astype(np.float32)
    assert transcriber.transcribe(SpeechSegment(noise, 0.0, 2.0, True)).text == ""
    assert transcriber.transcribe(SpeechSegment(np.zeros(RATE, np.float32), 0.0, 1.0, True)).text == ""
    assert is_hallucination("Thanks for watching!") and not is_hallucination("Thanks, where is the key?")


def test_a_sentence_whisper_repeats_in_a_loop_is_kept_once() -> None:
    from kibitz.voice.asr import without_repeats

    looped = "How do I jump higher? How do I jump higher? How do I jump higher"
    assert without_repeats(looped) == "How do I jump higher?"
    assert without_repeats("Yes. Yes, and no. About 1.5 coins.") == "Yes. Yes, and no. About 1.5 coins."
    assert without_repeats("気をつけて。気をつけて。ボス") == "気をつけて。ボス"


def test_segmenter_finds_each_question_and_its_start() -> None:
    q = speak("joe", "Where is the key?")
    silence = np.zeros(RATE, np.float32)
    stream = np.concatenate([silence, q, silence, q * 0.5, silence])
    stream += np.random.default_rng(1).normal(0, 0.002, len(stream)).astype(np.float32)
    seg = Segmenter(make_vad("silero"))
    out = [item for chunk in chunks(stream) for item in seg.feed(chunk)]
    starts = [o for o in out if isinstance(o, SpeechStarted)]
    finals = [o for o in out if isinstance(o, SpeechSegment) and o.final]
    assert len(starts) == 2 and len(finals) == 2
    second = 2.0 + len(q) / RATE
    assert abs(starts[0].t - 1.0) < 0.25 and abs(starts[1].t - second) < 0.25
    assert starts[0].detected_at - starts[0].t < 0.2  # sure within 200 ms: fast enough for barge-in


def test_sentences_are_cut_as_they_stream() -> None:
    splitter = SentenceSplitter()
    text = "Oh no, that goomba got you again, third time now. Try jumping earlier! Ok?"
    out = [s for i in range(0, len(text), 3) for s in splitter.feed(text[i : i + 3])] + splitter.flush()
    assert out == ["Oh no,", "that goomba got you again, third time now.", "Try jumping earlier!", "Ok?"]
    ja = SentenceSplitter()
    assert ja.feed("気をつけて。ボス") == ["気をつけて。"] and ja.flush() == ["ボス"]
    first = SentenceSplitter()  # a comma after a word ends the first clause as it comes; after a digit, not yet
    assert first.feed("Yes,") == ["Yes,"] and first.feed(" go") == []
    number = SentenceSplitter()
    assert number.feed("About 1,") == [] and number.feed("000 coins") == []
    assert number.feed(".") == ["About 1,000 coins."]  # a stop after a word ends the sentence at once
    stops = SentenceSplitter()
    assert stops.feed("Version 1.") == [] and stops.feed("5 is out. Use a fire flower, e.g.") == ["Version 1.5 is out."]
    assert stops.flush() == ["Use a fire flower, e.g."]


def test_a_long_first_sentence_is_spoken_up_to_a_clause_word_with_a_continuing_voice() -> None:
    """With no comma, the first sentence is cut before a word that starts a clause or phrase once four words are
    written: the player hears the answer begin while the model writes the rest; later sentences stay whole."""
    from kibitz.voice.sentences import continuing

    text = "You can see the flag from the top of that pipe if you jump. Then run and jump to it."
    splitter = SentenceSplitter()
    out = [s for i in range(0, len(text), 2) for s in splitter.feed(text[i : i + 2])] + splitter.flush()
    assert out == ["You can see the flag", "from the top of that pipe if you jump.", "Then run and jump to it."]
    short = SentenceSplitter()  # too few words before the clause word
    assert short.feed("Jump and run to the flag.") == ["Jump and run to the flag."]
    assert SentenceSplitter("ja").feed("ボスの前でジャンプしてからとても速く走って") == []  # no list for Japanese
    assert continuing("You can see the flag") == "You can see the flag," and continuing("Yes,") == "Yes,"


def test_an_answer_held_back_has_its_first_words_synthesised_ahead_and_plays_them_if_said() -> None:
    """The answer to a question the player may have finished asking is written before they are heard to stop and
    held back; its first piece is synthesised meanwhile (never played), so if it is said its audio is ready."""
    from kibitz.voice.playback import Mixer
    from kibitz.voice.speaker import VoiceOutput

    engine = load_voice(voices()["joe"])
    texts: list[str] = []
    synthesize = engine.synthesize

    def counted(text: str, speed: float = 1.0) -> np.ndarray:
        texts.append(text)
        return synthesize(text, speed)

    engine.synthesize = counted  # type: ignore[method-assign]
    mixer = Mixer()
    output = VoiceOutput(engine, mixer)
    try:
        held, never = Utterance(0.0, [], "question"), Utterance(0.0, [], "question")
        for piece in ("Yes", ",", " the pipe"):
            output.draft(held, piece)
            output.draft(never, piece.upper())
        deadline = time.perf_counter() + 30
        while len(texts) < 2 and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert texts == ["Yes,", "YES,"] and not output.speaking and not mixer.active  # synthesised, not played
        output.token(held, "Yes, the pipe on the right.")
        output.done(held)
        deadline = time.perf_counter() + 30
        while len(output.current_sentences()) < 2 or not all(s.ready for s in output.current_sentences()):
            assert time.perf_counter() < deadline, [s.text for s in output.current_sentences()]
            time.sleep(0.01)
        assert texts == ["Yes,", "YES,", "the pipe on the right."]  # its first piece was not synthesised again
        assert [s.text for s in output.current_sentences()] == ["Yes,", "the pipe on the right."]
        assert len(output.current_sentences()[0].samples) > 0
    finally:
        output.close()


def test_heard_text_is_what_was_played() -> None:
    s = SpokenSentence(1, 0, "one two three four", np.zeros(1000, np.float32), 16000)
    s.played = 0
    assert s.heard_text == ""
    s.played = 500
    assert s.heard_text == "one two"
    s.played = 1000
    assert s.heard_text == "one two three four"


def test_voices_and_their_errors(tmp_path: Path) -> None:
    assert voice_for(None, "en").name == "joe" and voice_for(None, "ko").engine == "espeak"
    assert voice_for(None, "ja").engine == "kokoro"
    with pytest.raises(UnknownNameError, match="known voices"):
        voice_for("nobody", "en")
    with pytest.raises(ConfigError, match="No voice speaks 'xx'"):
        voice_for(None, "xx")
    with pytest.raises(ConfigError, match="speed"):
        load_voice(voices()["joe"]).synthesize("hi", speed=5.0)
    assert len(load_voice(voices()["joe"]).synthesize("   ")) == 0


def test_bad_audio_files_get_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(audio.AudioError, match="No audio file"):
        audio.load(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(audio.AudioError, match=r"not an audio file|no audio"):
        audio.load(bad)
    # A stereo 44.1 kHz file is mixed down and resampled; clipping and silence are reported, not fatal.
    stereo = tmp_path / "stereo.flac"
    import soundfile

    loud = np.stack([np.ones(44100), np.zeros(44100)], axis=1).astype(np.float32)
    soundfile.write(stereo, loud, 44100)
    mono = audio.load(stereo)
    assert abs(len(mono) - RATE) < 10
    assert audio.check(np.ones(RATE, np.float32)).problems()[0].endswith("lower the microphone's input gain.")
    assert "silent" in audio.check(np.zeros(RATE, np.float32)).problems()[0]
    with pytest.raises(audio.AudioError, match="does not exist"):
        audio.save(tmp_path / "no" / "such" / "dir.wav", mono, RATE)


def test_no_sound_device_is_a_clear_message() -> None:
    from kibitz.voice.playback import sound_device

    try:
        sound_device()
    except KibitzError as exc:
        assert "device" in exc.message or "PortAudio" in exc.message
    # (On a machine with a sound card this test has nothing to check.)


class Timeline:
    """A scripted run in real time: the companion speaks a line; the microphone hears its echo (60 ms late, at
    0.4) plus, from `player_at` seconds after the first sample was played, the player's own speech."""

    def __init__(self, voice: Voice, player: np.ndarray | None, player_at: float, seconds: float) -> None:
        self.voice, self.player, self.player_at, self.seconds = voice, player, player_at, seconds
        self.played: list[tuple[float, float]] = []
        self.onset_wall: float | None = None
        self._mirror: list[np.ndarray] = []

    def sink(self, block: np.ndarray) -> None:
        self.played.append((time.perf_counter(), float(np.abs(block).max())))

    def run(self, echo: bool = True) -> None:
        v = self.voice
        while not v.output.first_audio:
            time.sleep(0.005)
        n, t, pi = 320, 0.0, 0
        delay = np.zeros(int(0.06 * RATE), np.float32)
        tap = v.mixer  # the echo is what was played (the mixer's own 16 kHz tap, read by a second reader below)
        start = time.perf_counter()
        rng = np.random.default_rng(7)
        while time.perf_counter() - start < self.seconds:
            mic = rng.normal(0, 0.002, n).astype(np.float32)
            if echo:
                played = self.reference(tap, n)
                delay = np.concatenate([delay, played])
                mic += 0.4 * delay[:n]
                delay = delay[n:]
            if self.player is not None and time.perf_counter() - start >= self.player_at and pi < len(self.player):
                if self.onset_wall is None:
                    self.onset_wall = time.perf_counter()
                piece = self.player[pi : pi + n]
                mic[: len(piece)] += piece
                pi += n
            v.ear.hear(AudioChunk(mic, t))
            t += n / RATE
            time.sleep(max(0.0, start + t - time.perf_counter()))

    def reference(self, mixer: object, n: int) -> np.ndarray:
        out = np.concatenate(self._mirror) if self._mirror else np.zeros(0, np.float32)
        self._mirror.clear()
        if len(out) > 2 * n:  # the echo follows the playback clock even when this feed fell behind
            out = out[len(out) - 2 * n :]
        if len(out) < n:
            out = np.concatenate([out, np.zeros(n - len(out), np.float32)])
        else:
            self._mirror.append(out[n:])
        return out[:n]


LINE = (
    "Oh no, the goomba got you again right at the first pipe. Try a running jump next time, and hold the "
    "button a little longer. You can do it!"
)


def open_voice(timeline_holder: dict[str, Timeline]) -> tuple[Voice, list[str]]:
    questions: list[str] = []
    voice = Voice.open(VoiceConfig(enabled=True), load_persona("buddy"), on_question=questions.append)

    def sink(block: np.ndarray) -> None:
        tl = timeline_holder.get("t")
        if tl is None:
            return
        tl.sink(block)
        tl._mirror.append(audio.resample(block, voice.mixer.rate, RATE))

    voice.start(microphone=False, speakers=False, sink=sink)
    return voice, questions


def say(voice: Voice, text: str) -> Utterance:
    utt = Utterance(t=0.0, event_ids=[], trigger="death")
    for i in range(0, len(text), 5):
        voice.output.token(utt, text[i : i + 5])
    utt.text = text
    voice.output.done(utt)
    return utt


def test_barge_in_stops_playback_fast_and_cuts_the_record() -> None:
    holder: dict[str, Timeline] = {}
    voice, questions = open_voice(holder)
    try:
        player = espeak("Wait, how do I get past that pipe?")
        holder["t"] = Timeline(voice, player, player_at=2.5, seconds=7.0)
        utt = say(voice, LINE)
        holder["t"].run()
        voice.ear.close()
    finally:
        voice.close()
    tl = holder["t"]
    assert tl.onset_wall is not None
    sounding = [w for w, peak in tl.played if peak > 1e-3]
    stopped_after = max(sounding) - tl.onset_wall
    assert stopped_after <= 0.3, f"playback went on {stopped_after * 1000:.0f} ms after the player spoke"
    assert len(voice.cuts) == 1 and utt.interrupted
    cut = voice.cuts[0]
    assert cut.heard and LINE.startswith(cut.heard) and len(cut.heard) < len(LINE) // 2
    assert utt.text == cut.heard and cut.unsaid.endswith("You can do it!")
    # The question itself reaches the companion (eSpeak's robotic voice is heard with ~17 % of words wrong: CI once
    # heard "get past that pipe" as "get best net pipe"; how well it is understood is the bench's figure).
    heard = questions[0].lower() if len(questions) == 1 else ""
    assert "how do i get" in heard and "pipe" in heard, questions


def test_a_sound_that_is_not_words_pauses_the_line_a_moment_and_it_goes_on_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With voice.confirm_barge_in, a sound starting while the companion speaks pauses playback at once and keeps its
    place; with no words heard it goes on where it stopped, the line whole; words cut it there."""
    import kibitz.voice.live as live
    from kibitz.voice.records import SpeechStarted

    monkeypatch.setattr(live, "RESUME_AFTER_S", 0.6)
    played: list[tuple[float, float]] = []
    config = VoiceConfig(enabled=True, confirm_barge_in=True)
    voice = Voice.open(config, load_persona("buddy"), on_question=lambda q: None)
    voice.start(
        microphone=False, speakers=False, sink=lambda b: played.append((time.perf_counter(), float(abs(b).max())))
    )
    try:
        utt = say(voice, LINE)
        deadline = time.perf_counter() + 30
        while not voice.output.first_audio and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)
        paused = time.perf_counter()
        voice.stop_for(SpeechStarted(1.0, paused))  # game music, say: no words follow
        time.sleep(0.4)
        assert voice.mixer.paused and not [w for w, peak in played if peak > 1e-3 and w > paused + 0.1]
        while voice.output.speaking and time.perf_counter() < deadline:
            time.sleep(0.05)
        assert len(voice.resumed) == 1 and voice.cuts == [] and not utt.interrupted and utt.text == LINE
        assert [w for w, peak in played if peak > 1e-3 and w > paused + 0.6]  # it went on

        again = say(voice, LINE)
        while len(voice.output.first_audio) < 2 and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)
        voice.stop_for(SpeechStarted(9.0, time.perf_counter()))  # the player this time: words are heard
        voice.words_heard()
        time.sleep(1.0)  # past the timer: nothing resumes
        assert len(voice.cuts) == 1 and again.interrupted and LINE.startswith(again.text) and again.text != LINE
        assert len(voice.resumed) == 1 and not voice.output.speaking
    finally:
        voice.close()


def test_its_own_voice_coming_back_is_not_the_player() -> None:
    holder: dict[str, Timeline] = {}
    voice, questions = open_voice(holder)
    try:
        holder["t"] = Timeline(voice, None, player_at=0.0, seconds=9.0)
        utt = say(voice, LINE)
        holder["t"].run(echo=True)
        voice.ear.close()
    finally:
        voice.close()
    assert voice.cuts == [] and not utt.interrupted, "the companion's own echo stopped it"
    assert questions == [], f"the companion answered its own voice: {questions}"
    assert not voice.ear.barge_ins


def test_voice_commands_for_scripts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kibitz.cli.main import app

    runner = CliRunner()
    out = tmp_path / "line.wav"
    said = runner.invoke(app, ["voice", "say", "Jump over the third pipe now.", "--out", str(out)])
    assert said.exit_code == 0, said.output
    assert audio.load(out).size > RATE // 2
    heard = runner.invoke(app, ["voice", "transcribe", str(out), "--language", "en"])
    assert heard.exit_code == 0 and wer("Jump over the third pipe now.", heard.stdout.strip()) <= 0.25, heard.output
    missing = runner.invoke(app, ["voice", "transcribe", str(tmp_path / "none.wav")])
    assert isinstance(missing.exception, audio.AudioError) and "No audio file" in missing.exception.message
    listed = runner.invoke(app, ["voice", "voices"])
    assert listed.exit_code == 0 and "espeak-ko" in listed.stdout


def test_chat_with_voice_on_a_machine_without_sound_keeps_working_in_text() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kibitz",
            "chat",
            "--voice",
            "--model",
            "smollm2-135m",
            "--max-seconds",
            "4",
            "--no-memory",
        ],
        input="what should I do?\n",
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "Voice is off for this session" in result.stderr + result.stdout
    assert "question" in result.stdout  # the typed question still reached the companion


def test_chat_with_voice_from_a_recording_to_a_file(tmp_path: Path) -> None:
    """The whole `kibitz chat --voice` path with no sound card: a recorded question in, the spoken answer out."""
    question, answer = tmp_path / "question.wav", tmp_path / "answer.wav"
    audio.save(question, speak("joe", "How many coins do I have?"), RATE)
    result = subprocess.run(
        [
            *[
                sys.executable,
                "-m",
                "kibitz",
                "chat",
                "--voice",
                "--mic-file",
                str(question),
                "--speak-to",
                str(answer),
            ],
            *["--model", "smollm2-135m", "--max-seconds", "12", "--no-memory"],
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "you ›" in result.stderr and "coins" in result.stderr.lower(), result.stderr
    assert "question" in result.stdout and "Kibi ›" in result.stdout
    spoken = audio.load(answer)
    assert audio.check(spoken).rms_db > -40, "the answer was not spoken into the file"
    heard = Transcriber(language="en").transcribe_file(spoken)[0]
    assert len(heard.split()) >= 3, heard  # real words, whatever the tiny test model said


def test_game_music_alone_is_never_a_question(transcriber: Transcriber) -> None:
    from kibitz.bench.voice import chiptune

    questions: list[str] = []
    from kibitz.voice.listener import Ear

    ear = Ear(
        Segmenter(make_vad("silero")), transcriber, on_question=lambda heard: questions.append(heard.transcript.text)
    )
    for chunk in chunks(chiptune(8.0, seed=4, level=0.6)):
        ear.hear(chunk)
    ear.close()
    assert questions == [], questions


def test_the_companions_words_before_a_question_are_taken_off() -> None:
    from kibitz.voice.listener import Ear

    said = ["Sure! Save them for later, little one."]
    ear = Ear(
        Segmenter(make_vad("energy")), Transcriber.__new__(Transcriber), on_question=print, recent_lines=lambda: said
    )
    try:
        assert ear._strip_own_words("for later, little one. How many lives do I have?") == (
            "for later, little one.",
            "How many lives do I have?",
        )
        assert ear._strip_own_words("How many lives do I have?") == ("", "How many lives do I have?")
        assert ear._is_own_echo("Save them for later.")
    finally:
        ear.close(wait=False)
