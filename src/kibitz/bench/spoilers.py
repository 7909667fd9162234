"""`kibitz bench spoilers`: does a complaint about spoilers work? The real companion and model answer a scripted
session of tempting questions; the player complains once ("that's a spoiler!"), the complaint goes through the
real command path into their profile, and the same questions come again.

Every line is rated against its moment's labelled answer key (`key` in prompts/spoiler_session.yaml: what names
the solution, what hints at it), never by the rater the companion's filter uses (core/spoiler.py): a filter scored
by its own rater would pass by construction. Reported per phase: the share of lines the player saw that give
something away (a hint or more) and that give a solution, and the same for what the model itself wrote before the
filter held anything back, so the prompt's and the filter's parts show separately; beside them, for comparison
only, what kibitz's own rater makes of the lines shown (`filter_view`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import yaml

from kibitz.bench.stats import wilson
from kibitz.brain.companion import Companion, Job
from kibitz.brain.llm.base import LLMBackend
from kibitz.brain.policy import SpeakRequest
from kibitz.brain.prompts import fallback_line
from kibitz.core.persona import load_persona
from kibitz.core.records import Event
from kibitz.core.spoiler import HINT, SOLUTION, rate
from kibitz.memory.commands import interpret
from kibitz.memory.profile import Profile


def load_session() -> dict[str, Any]:
    text = (resources.files("kibitz.bench") / "prompts" / "spoiler_session.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def key_rating(text: str, key: dict[str, str]) -> int:
    """How much a line gives away by its moment's answer key: 2 names the solution, 1 hints at it, 0 neither."""
    if re.search(key["solution"], text, re.IGNORECASE):
        return SOLUTION
    return HINT if re.search(key["hint"], text, re.IGNORECASE) else 0


def _rates(
    lines: list[dict[str, Any]], field: str, rater: Callable[[dict[str, Any]], int] | None = None
) -> dict[str, Any]:
    def rated(line: dict[str, Any]) -> int:
        return rater(line) if rater is not None else key_rating(line[field], line["key"])

    n = len(lines)
    gives, solves = sum(rated(line) >= HINT for line in lines), sum(rated(line) >= SOLUTION for line in lines)
    return {
        "gives_away": gives / n if n else None,
        "solution": solves / n if n else None,
        "n": n,
        "gives_away_ci95": list(wilson(gives, n)) if n else None,
        "solution_ci95": list(wilson(solves, n)) if n else None,
    }


def run_spoiler_session(
    backend: LLMBackend,
    persona_name: str = "buddy",
    start: str = "hints",
    repeats: int = 1,
    language: str | None = None,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Ask every moment `repeats` times, complain, ask again; returns the lines and the rates."""
    session = load_session()
    moments = [m for m in session["moments"] if language in (None, m["lang"])]
    base = load_persona(persona_name)
    profile = Profile(spoilers=start)
    companion = Companion(backend, profile.apply(base), max_tokens=60, temperature=0.7)
    phases: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    complaint = session["complaint"]["ko" if language == "ko" else "en"]
    outcome = None
    for phase in ("before", "after"):
        if phase == "after":
            outcome = interpret(complaint, profile, base)
            profile = outcome.profile
            companion.set_persona(profile.apply(base))
        for _ in range(repeats):
            for i, moment in enumerate(moments):
                event = Event(float(i), "question", 10, f"The player asked: {moment['ask']}", {"text": moment["ask"]})
                request = SpeakRequest([event], time.perf_counter(), question=moment["ask"])
                utt = companion.say(Job(request, moment["state"], [], float(i)))
                # What the model wrote: what was shown plus what was held back (a promise line replaced it all).
                kept = "" if utt.text == fallback_line("no_spoilers", companion.persona.language) else utt.text
                said = f"{kept} {utt.withheld}".strip()
                phases[phase].append(
                    {
                        "lang": moment["lang"],
                        "ask": moment["ask"],
                        "key": moment["key"],
                        "shown": utt.text,
                        "model": said,
                        "withheld": utt.withheld,
                        "first_token_s": utt.first_token_latency,
                    }
                )
                if progress is not None:
                    progress()
    result: dict[str, Any] = {
        "persona": persona_name,
        "start": start,
        "after": profile.spoilers,
        "complaint": complaint,
        "changes": outcome.changes if outcome else {},
        "lines": phases,
    }
    for phase, lines in phases.items():
        result[f"{phase}_shown"] = _rates(lines, "shown")
        result[f"{phase}_model"] = _rates(lines, "model")
        result[f"{phase}_filter_view"] = _rates(lines, "shown", lambda line: rate(line["shown"]))
        result[f"{phase}_withheld"] = sum(bool(line["withheld"]) for line in lines)
    before, after = result["before_shown"]["gives_away"], result["after_shown"]["gives_away"]
    result["drop"] = None if not before or after is None else 1 - after / before
    return result
