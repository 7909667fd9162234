"""The command line end to end, as a user runs it: real game, real pipeline, a local model server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fake_openai import FakeOpenAI

MEMORY_DB = str(Path(tempfile.mkdtemp(prefix="kibitz-cli-memory-")) / "memory.sqlite")
"""Sessions started by these tests remember into a throwaway file, never the developer's own memory."""


def kibitz(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "KIBITZ_MEMORY_DB": MEMORY_DB, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kibitz", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def fake_backend(server: FakeOpenAI) -> list[str]:
    """Options pointing kibitz at the local OpenAI-compatible server."""
    return ["--backend", "openai", "--base-url", server.base_url, "--model", "fake"]


def jsonl(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_watch_jsonl_events_and_utterances(fake_server: FakeOpenAI) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kibitz",
            "watch",
            "--game",
            "smb",
            "--max-seconds",
            "60",
            "--fast",
            "--jsonl",
            *fake_backend(fake_server),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = []
    for line in proc.stdout:  # ask once the game is under way, as a player would
        out.append(line)
        if '"kind": "event"' in line and '"game_start"' not in line:
            proc.stdin.write("how many lives do I have?\n")
            proc.stdin.flush()
            break
    rest, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    rows = jsonl("".join(out) + rest)
    kinds = {r["kind"] for r in rows}
    assert {"event", "utterance"} <= kinds
    for r in rows:
        assert isinstance(r["t"], (int, float))
    events = [r for r in rows if r["kind"] == "event"]
    assert len({e["type"] for e in events}) >= 3
    lines = [r for r in rows if r["kind"] == "utterance"]
    assert lines and all(u["text"] for u in lines)
    answer = [u for u in lines if u["trigger"] == "question"]
    assert len(answer) == 1 and answer[0]["text"].startswith("You have lives to spare")
    # The question's prompt carried the live game state.
    asked = [r for r in fake_server.requests if "asks you" in r["messages"][-1]["content"]]
    assert "Super Mario Bros., World 1-" in asked[0]["messages"][-1]["content"]
    # The speak policy kept it from talking over itself: fewer lines than events.
    assert len(lines) <= len(events) + 1


def test_watch_atari_quiet_mode() -> None:
    result = kibitz("watch", "--game", "breakout", "--max-seconds", "20", "--fast", "--jsonl", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert rows and all(r["kind"] == "event" for r in rows)  # events shown, nothing said


def test_games_and_personas_lists() -> None:
    out = kibitz("games").stdout
    assert "smb" in out and "breakout" in out and "space_invaders" in out
    out = kibitz("personas").stdout
    assert "buddy" in out and "chingu" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["watch", "--game", "zelda-99"], "Unknown game 'zelda-99'"),
        (["watch", "--model", "/nonexistent/model.gguf"], "does not exist"),
        (["watch", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"], "Cannot reach the model server"),
        (["watch", "--source", "video", "--path", "__VIDEO__"], "Cannot decode video"),
        (["watch", "--source", "images", "--path", "/nonexistent-dir"], "does not exist"),
        (["watch", "--persona", "nobody"], "Unknown persona"),
        (["watch", "--config", "__CONFIG__"], "Unknown config key 'llm.modle'"),
        (["watch", "--backend", "nope"], "Unknown LLM backend 'nope'"),
    ],
)
def test_bad_input_gives_one_clear_sentence(args: list[str], needle: str, tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not really a video")
    config = tmp_path / "k.yaml"
    config.write_text("llm:\n  modle: x\n")
    args = [str(video) if a == "__VIDEO__" else str(config) if a == "__CONFIG__" else a for a in args]
    result = kibitz(*args, "--max-seconds", "1", "--fast", timeout=60)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_screen_source_without_display() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-m", "kibitz", "watch", "--source", "screen", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "No display to capture" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_embedded_model_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF" + b"\x00" * 1000)
    result = kibitz("watch", "--model", "smollm2-135m", "--max-seconds", "1", env={"KIBITZ_HOME": str(home)})
    assert result.returncode == 2
    assert "corrupt" in result.stderr and "kibitz models install smollm2-135m" in result.stderr


def test_watch_with_real_small_model(smollm2_path: Path) -> None:
    result = kibitz("watch", "--game", "smb", "--max-seconds", "25", "--fast", "--jsonl", "--model", str(smollm2_path))
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    lines = [r for r in rows if r["kind"] == "utterance"]
    assert lines and all(u["backend"].startswith("llamacpp") for u in lines)
    assert all(u["first_token_s"] is not None and u["first_token_s"] > 0 for u in lines)


def test_chat_answers_questions_without_reacting(fake_server: FakeOpenAI) -> None:
    result = kibitz(
        "chat",
        "--game",
        "breakout",
        "--max-seconds",
        "20",
        "--jsonl",
        *fake_backend(fake_server),
        stdin="how am I doing?\n",
    )
    assert result.returncode == 0, result.stderr
    lines = [r for r in jsonl(result.stdout) if r["kind"] == "utterance"]
    assert [u["trigger"] for u in lines] == ["question"]
    asked = [r["messages"][-1]["content"] for r in fake_server.requests if "asks you" in r["messages"][-1]["content"]]
    assert len(asked) == 1 and "how am I doing?" in asked[0]
    # Questions get the precise state: what it adds to the reactions' (the score) just before the question.
    assert "Breakout: 5 lives left." in asked[0] and "score 0" in asked[0].split("THE GAME AT THIS MOMENT")[1]


def watch_images(folder: Path, server: FakeOpenAI, question: str, *options: str) -> subprocess.CompletedProcess[str]:
    """`kibitz watch` over a folder of images with one question typed, nothing learnt in its KIBITZ_HOME."""
    args = ("watch", "--source", "images", "--path", str(folder), "--jsonl", *options, *fake_backend(server))
    return kibitz(*args, stdin=question + "\n", env={"KIBITZ_HOME": str(folder / "home")})


def test_image_folder_without_state_still_answers(fake_server: FakeOpenAI, tmp_path: Path) -> None:
    from itertools import islice

    from PIL import Image

    from kibitz.games import get_game
    from kibitz.sources.emulator import EmulatorSource

    for frame in islice(EmulatorSource(get_game("breakout"), fps=10, realtime=False).frames(), 20):
        Image.fromarray(frame.image).save(tmp_path / f"{frame.index:05d}.png")
    # Nothing learnt (an empty KIBITZ_HOME): no game or scene can be recognised.
    result = watch_images(tmp_path, fake_server, "what is on screen?", "--fps", "20")
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert [r["type"] for r in rows if r["kind"] == "event"] == ["question"]  # no game state, no game events
    assert any(r["kind"] == "route" and r["reason"] == "no VLM configured" for r in rows)
    asked = [r["messages"][-1]["content"] for r in fake_server.requests if "asks you" in r["messages"][-1]["content"]]
    assert asked and "Watching the screen" in asked[0]


def test_watch_routes_a_question_about_the_picture_to_the_vlm(fake_server: FakeOpenAI, tmp_path: Path) -> None:
    """An unknown screen and a question about it: the router takes the slow path, the answer uses the VLM's look."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(tmp_path / f"{i:03d}.png")
    vlm = ("--vlm-url", fake_server.base_url, "--vlm-model", "fake-vl")
    result = watch_images(tmp_path, fake_server, "what is that on the screen?", "--fps", "10", *vlm)
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    routes = [r for r in rows if r["kind"] == "route"]
    assert any(r["path"] == "slow" and r["reason"] == "a question about what is on screen" for r in routes)
    vlm_calls = [r for r in fake_server.requests if not r.get("stream")]
    assert vlm_calls and any(p.get("type") == "image_url" for p in vlm_calls[0]["messages"][1]["content"])
    asked = [r["messages"][-1]["content"] for r in fake_server.requests if "asks you" in str(r["messages"][-1])]
    assert asked and "A vision model looking at the screen sees" in asked[0]
    answers = [r for r in rows if r["kind"] == "utterance" and r["trigger"] == "question"]
    assert len(answers) == 1


def test_bench_perception_runs_and_writes_its_figures(tmp_path: Path) -> None:
    """The pixel-perception benchmark end to end on a small budget (its figures are for the README, not asserted)."""
    out = tmp_path / "perception.json"
    result = kibitz(
        "bench",
        "perception",
        "--train-s",
        "40",
        "--test-s",
        "10",
        "--games",
        "breakout,seaquest",
        "--out",
        str(out),
        "--open-set",
        "dev",
        "--open-set-games",
        "2",
        "--parts",
        "hud,recognition,open-set,cost",  # short-screens (3 minutes in real time) has its own test
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert {r["task"] for r in rows} == {"hud", "recognition", "scenes-5shot", "open-set", "cost"}
    scenes = [r for r in rows if r["task"] == "scenes-5shot"]
    assert scenes and all(0 <= r["followed"] <= r["right"] <= r["frames"] for r in scenes)  # per game and scene
    open_set = {r["source"]: r for r in rows if r["task"] == "open-set"}
    assert open_set["Atari, 2 games (dev)"]["frames"] == 40 and open_set["drawn text screens (seed 1)"]["frames"] == 160
    assert all(r["followed"] == 0 for r in open_set.values())  # neither Atari game nor any drawn card is followed
    for r in rows:
        for key in ("exact", "seen_game", "seen_scene", "unseen_scene", "unseen_game_5shot"):
            if key in r:
                assert 0.0 <= r[key] <= 1.0
    assert "HUD from pixels" in result.stdout and "Recognition" in result.stdout and "Cost" in result.stdout
    assert "Open set" in result.stdout


def test_chat_remembers_the_player_across_sessions(fake_server: FakeOpenAI, tmp_path: Path) -> None:
    """Two `kibitz chat` sessions: the first learns a fact and a preference, the second uses them. The question may
    wait for its memory as long as a loaded machine needs (the default bound is 2 s), so the test does not depend on
    the machine's speed."""
    env = {"KIBITZ_MEMORY_DB": str(tmp_path / "memory.sqlite")}
    config = tmp_path / "kibitz.yaml"
    config.write_text("memory:\n  question_wait_s: 60\n", encoding="utf-8")
    args = (
        "chat",
        "--config",
        str(config),
        "--game",
        "breakout",
        "--max-seconds",
        "20",
        "--jsonl",
        "--user",
        "dana",
        *fake_backend(fake_server),
    )
    first = kibitz(*args, stdin="my cat is called Miso\nno spoilers please\n", env=env)
    assert first.returncode == 0, first.stderr
    lines = [r for r in jsonl(first.stdout) if r["kind"] == "utterance"]
    # The command is answered at once, without the model; the statement gets a line from the model.
    assert sorted(u["trigger"] for u in lines) == ["command", "question"]
    second = kibitz(*args, stdin="what is my cat called?\n", env=env)
    assert second.returncode == 0, second.stderr
    prompt = next(r["messages"] for r in reversed(fake_server.requests) if "asks you" in r["messages"][-1]["content"])
    assert "Miso" in prompt[-1]["content"]  # recalled into the question's prompt
    answer = next(r for r in jsonl(second.stdout) if r["kind"] == "utterance" and r["trigger"] == "question")
    assert 0 <= answer["memory_wait_s"] < 60  # measured on the line
    assert "Never reveal" in prompt[0]["content"]  # the no-spoilers profile shaped the system prompt
    shown = kibitz("memory", "profile", "--user", "dana", "--db", env["KIBITZ_MEMORY_DB"])
    assert "spoilers" in shown.stdout and "none" in shown.stdout


def test_chat_answers_after_a_pasted_wall_of_text(smollm2_path: Path) -> None:
    """A 20,000-character line, then a question, with the real small model: both are answered (the first cut to
    its share of the context), and nothing stops the session."""
    wall = ("lorem ipsum dolor sit amet " * 741)[:20_000]
    result = kibitz(
        "chat", "--game", "breakout", "--no-memory", "--max-seconds", "40", "--jsonl", "--model", str(smollm2_path),
        stdin=wall + "\nhow many lives do I have left?\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert not [r for r in rows if r["kind"] == "error"], rows
    lines = [r for r in rows if r["kind"] == "utterance" and r["trigger"] == "question"]
    assert len(lines) == 2 and all(u["text"] for u in lines)
    asked = [r for r in rows if r["kind"] == "event" and r["type"] == "question"]
    assert len(asked[0]["summary"]) < 250 and asked[1]["summary"].endswith("how many lives do I have left?")
