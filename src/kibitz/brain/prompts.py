"""Builds chat messages from the prompt templates (Jinja files beside this module).

The system message depends only on the persona, so it is identical for every request in a session and
stays in the LLM's prompt cache; the game state comes next (prefetched while idle), and the event last.
Earlier lines are deliberately not shown to the model: small models copy them (measured: the same line
three times in a row), so variety comes from sampling and the instruction instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from kibitz.brain.llm.base import Message
from kibitz.brain.persona import SPOILER_RULES, Persona
from kibitz.brain.spoiler import LIMIT, rate

_env = Environment(
    loader=PackageLoader("kibitz.brain", "prompts"),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


def quote_untrusted(text: str) -> str:
    """Game/screen text is data: neutralise anything that could close the quoted block."""
    return text.replace('"""', "'''").replace("\r", " ")


class PromptBuilder:
    def __init__(self, persona: Persona) -> None:
        self.persona = persona
        self.system = (
            _env.get_template("system.j2")
            .render(
                persona=persona,
                language_name=persona.language_name,
                max_sentences=persona.max_sentences,
                max_words=persona.max_words,
                spoiler_rule=SPOILER_RULES[persona.spoiler_tolerance],
                # Examples that give more away than the player wants would teach the model to do it.
                example_lines=[
                    line
                    for lines in persona.examples.values()
                    for line in lines
                    if rate(line) <= LIMIT[persona.spoiler_tolerance.value]
                ],
            )
            .strip()
        )

    def _messages(self, user: str) -> list[Message]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user.strip()}]

    def event_messages(self, state: str, events: list[str], memories: Sequence[str] = ()) -> list[Message]:
        user = _env.get_template("event.j2").render(
            state=quote_untrusted(state), events=events, memories=[quote_untrusted(m) for m in memories]
        )
        return self._messages(user)

    def question_messages(
        self,
        state: str,
        question: str,
        events: list[str],
        memories: Sequence[str] = (),
        recalled: Sequence[str] = (),
    ) -> list[Message]:
        """`memories` are the notes for the state (as in the prefetched prefix); `recalled` the question's own."""
        user = _env.get_template("question.j2").render(
            state=quote_untrusted(state),
            question=quote_untrusted(question),
            events=events,
            memories=[quote_untrusted(m) for m in memories],
            recalled=[quote_untrusted(m) for m in recalled if m not in memories],
        )
        return self._messages(user)

    def warmup_messages(self) -> list[Message]:
        return self.event_messages("The game is loading.", ["Nothing yet."])

    def prefix_messages(self, state: str, memories: Sequence[str] = ()) -> list[Message]:
        """The event prompt without its event: evaluated ahead of time so an event only adds a few tokens."""
        return self.event_messages(state, [], memories)


@cache
def _fallbacks() -> dict[str, dict[str, str]]:
    text = (resources.files("kibitz.brain") / "prompts" / "fallbacks.yaml").read_text(encoding="utf-8")
    data: dict[str, dict[str, str]] = yaml.safe_load(text)
    return data


def fallback_line(kind: str, language: str) -> str:
    """A fixed line for when the model's own was held back (in the persona's language, else English)."""
    lines = _fallbacks()[kind]
    return lines.get(language, lines["en"])
