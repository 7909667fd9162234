"""Builds chat messages from the prompt templates (Jinja files beside this module).

The system message depends only on the persona, so it is identical for every request in a session and
stays in the LLM's prompt cache; everything that changes (state, events, questions) goes after it.
"""

from __future__ import annotations

from importlib import resources

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from kibitz.brain.llm.base import Message
from kibitz.brain.persona import SPOILER_RULES, Persona

_situations: dict[str, str] = yaml.safe_load(
    (resources.files("kibitz.brain") / "prompts" / "situations.yaml").read_text(encoding="utf-8")
)
_env = Environment(
    loader=PackageLoader("kibitz.brain", "prompts"),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


def quote_untrusted(text: str) -> str:
    """Game/screen text is data: neutralise anything that could close the quoted block or fake a role."""
    return text.replace('"""', "'''").replace("\r", " ")


class PromptBuilder:
    def __init__(self, persona: Persona) -> None:
        self.persona = persona
        examples = [
            (_situations.get(kind, kind.replace("_", " ")), line)
            for kind, lines in persona.examples.items()
            for line in lines
        ]
        self.system = (
            _env.get_template("system.j2")
            .render(
                persona=persona,
                language_name=persona.language_name,
                max_sentences=persona.max_sentences,
                spoiler_rule=SPOILER_RULES[persona.spoiler_tolerance],
                example_lines=examples,
            )
            .strip()
        )

    def event_messages(self, state: str, events: list[str], recent: list[str], memory: str = "") -> list[Message]:
        user = (
            _env.get_template("event.j2")
            .render(state=quote_untrusted(state), events=events, recent=recent, memory=memory)
            .strip()
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def question_messages(self, state: str, question: str, events: list[str]) -> list[Message]:
        user = (
            _env.get_template("question.j2")
            .render(state=quote_untrusted(state), question=quote_untrusted(question), events=events)
            .strip()
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def warmup_messages(self) -> list[Message]:
        return self.event_messages("The game is loading.", ["Nothing yet."], [])

    def prefix_messages(self, state: str, recent: list[str]) -> list[Message]:
        """The event prompt without its event: evaluated ahead of time so an event only adds a few tokens."""
        return self.event_messages(state, [], recent)
