"""Builds chat messages from the prompt templates (Jinja files beside this module).

The system message depends only on the persona, so it is identical for every request in a session and
stays in the LLM's prompt cache; the game state comes next (prefetched while idle), and the event last. A
question's prompt starts the same way (state, then the recent events and the instruction: its head, also
prefetched where questions come aloud) and ends with what depends on the moment and the question: the notes the
question recalls, the numbers that tick, the question itself.
Earlier lines are deliberately not shown to the model: small models copy them (measured: the same line
three times in a row), so variety comes from sampling and the instruction instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from kibitz.brain.budget import Budget
from kibitz.brain.llm.base import Message
from kibitz.core.persona import Persona, SpoilerTolerance
from kibitz.core.spoiler import LIMIT, rate

SPOILER_RULES = {
    SpoilerTolerance.NONE: "Never reveal what comes later in the game or how to solve anything; only encourage.",
    SpoilerTolerance.HINTS: "Give gentle hints, never full solutions or what comes later, unless the player asks.",
    SpoilerTolerance.FULL: "You may give direct tips and solutions.",
}
"""The system prompt's sentence for each spoiler tolerance."""

_env = Environment(
    loader=PackageLoader("kibitz.brain", "prompts"),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


_YOU: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\bThe player's\b"), "Your"),
    (re.compile(r"\bthe player's\b"), "your"),
    (re.compile(r"\bThe player (has|is|was)\b"), lambda m: "You " + {"has": "have", "is": "are", "was": "were"}[m[1]]),
    (re.compile(r"\bthe player (has|is|was)\b"), lambda m: "you " + {"has": "have", "is": "are", "was": "were"}[m[1]]),
    (re.compile(r"\bThe player\b"), "You"),
    (re.compile(r"\bthe player\b"), "you"),
]


def to_you(text: str) -> str:
    """What happened, told to the player ("The player just died" → "You just died"): a line about an event written
    in the third person makes the model talk about the player instead of to them (measured: `kibitz bench lines`,
    wrong point of view)."""
    for pattern, repl in _YOU:
        text = pattern.sub(repl, text)
    return text


def quote_untrusted(text: str) -> str:
    """Game/screen text is data: neutralise anything that could close the quoted block."""
    return text.replace('"""', "'''").replace("\r", " ")


CHAT_OVERHEAD_TOKENS = 24
"""What a chat template adds around two messages (role markers, the assistant's turn)."""


class PromptBuilder:
    """Messages for events and questions; with a token counter and a context size, every part that varies (state,
    notes, events, question) is cut to its share of the context (brain.budget), so no prompt overflows it."""

    def __init__(
        self,
        persona: Persona,
        count: Callable[[str], int] | None = None,
        context: int | None = None,
        reply: int = 40,
    ) -> None:
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
        self.budget: Budget | None = None
        if count is not None and context is not None:
            empty = max(
                count(_env.get_template(name).render(**_EMPTY, persona=persona, language_name=persona.language_name))
                for name in ("event.j2", "question.j2")
            )
            self.budget = Budget.plan(count, context, count(self.system) + empty + CHAT_OVERHEAD_TOKENS, reply)

    def _fit(self, text: str, part: str) -> str:
        return text if self.budget is None else self.budget.cut(text, part)

    def _fit_all(self, items: Sequence[str], part: str) -> list[str]:
        return list(items) if self.budget is None else self.budget.cut_all(items, part)

    def _messages(self, user: str) -> list[Message]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user.strip()}]

    def event_messages(
        self, state: str, events: list[str], memories: Sequence[str] = (), focus: str = "", tip: str = ""
    ) -> list[Message]:
        """`focus`: the one detail of what happened the line should name (kibitz.core.facts); `tip`: a tip from the
        game's knowledge to give instead (kibitz.memory.knowledge)."""
        user = _env.get_template("event.j2").render(
            state=quote_untrusted(self._fit(state, "state")),
            events=self._fit_all([to_you(e) for e in events], "events"),
            memories=[quote_untrusted(m) for m in self._fit_all(memories, "memories")],
            focus=focus,
            tip=self._fit(tip, "known") if tip else "",
            language_name=self.persona.language_name,
        )
        return self._messages(user)

    def question_messages(
        self,
        state: str,
        question: str,
        events: list[str],
        memories: Sequence[str] = (),
        recalled: Sequence[str] = (),
        now: str = "",
        known: Sequence[str] = (),
    ) -> list[Message]:
        """`memories` are the notes for the state (as in the prefetched prefix); `recalled` the question's own; `known`
        what kibitz knows about the game that may answer it (tips, passages of the player's guides); `now`
        what the state leaves out at this moment (the numbers that tick: `moment`). Everything up to the instruction
        depends only on the state, the recent events and the state's notes, so it is evaluated while idle
        (`question_prefix_messages` with no words); what depends on the moment and the question comes last."""
        memories = self._fit_all(memories, "memories")
        user = _env.get_template("question.j2").render(
            state=quote_untrusted(self._fit(state, "state")),
            now=quote_untrusted(self._fit(now, "now")),
            question=quote_untrusted(self._fit(question, "question")),
            events=self._fit_all(events, "events"),
            memories=[quote_untrusted(m) for m in memories],
            recalled=[
                quote_untrusted(m) for m in self._fit_all([m for m in recalled if m not in memories], "recalled")
            ],
            known=[quote_untrusted(k) for k in self._fit_all(known, "known")],
        )
        return self._messages(user)

    def question_prefix_messages(
        self, state: str, heard: str, events: list[str], memories: Sequence[str] = (), now: str = ""
    ) -> list[Message]:
        """A question's prompt up to the words heard so far (its user message stops there, open): what can be
        evaluated while the player is still talking. Nothing that depends on the whole question (the notes it
        recalls) is in it. With no words, no `now` and no notes recalled yet, the head of every question's prompt
        for this state and these events: what an idle companion evaluates when questions may come aloud."""
        for words in (heard, ""):  # words too long for the question's share of the context: up to the quote
            whole = self.question_messages(state, words + _OPEN, events, memories, now=now)
            user = whole[-1]["content"]
            if _OPEN in user:
                break
        return [*whole[:-1], {"role": "user", "content": user[: user.index(_OPEN)]}]

    def warmup_messages(self) -> list[Message]:
        return self.event_messages("The game is loading.", ["Nothing yet."])

    def prefix_messages(self, state: str, memories: Sequence[str] = ()) -> list[Message]:
        """The event prompt without its event: evaluated ahead of time so an event only adds a few tokens."""
        return self.event_messages(state, [], memories)


_OPEN = "\ue000"
"""Marks where a question's prompt is cut while the player is still talking (a private-use character no text has)."""

_EMPTY = {
    "state": "",
    "now": ".",
    "events": [""],
    "memories": [""],
    "recalled": [""],
    "known": [""],
    "question": "",
    "focus": "a detail of it, in a few words",
    "tip": "",
}
"""Template variables that leave only the template's own words, every block's heading included (to measure them)."""


@cache
def _fallbacks() -> dict[str, dict[str, str]]:
    text = (resources.files("kibitz.brain") / "prompts" / "fallbacks.yaml").read_text(encoding="utf-8")
    data: dict[str, dict[str, str]] = yaml.safe_load(text)
    return data


@cache
def _barred() -> dict[str, list[str]]:
    text = (resources.files("kibitz.brain") / "prompts" / "barred.yaml").read_text(encoding="utf-8")
    data: dict[str, list[str]] = yaml.safe_load(text)
    return data


def barred_phrases(language: str) -> tuple[str, ...]:
    """Phrases no line may say (prompts/barred.yaml): the persona's language's, and English's (a line in another
    language may still slip into English)."""
    data = _barred()
    return tuple(dict.fromkeys([*data.get(language, []), *data.get("en", [])]))


def fallback_line(kind: str, language: str) -> str:
    """A fixed line for when the model's own was held back (in the persona's language, else English)."""
    lines = _fallbacks()[kind]
    return lines.get(language, lines["en"])


def moment(state: str, precise: str) -> str:
    """What `precise` (the state with every number at this moment) says that `state` (the state kept for the cached
    prompt prefix) does not: `precise` from the last word the two share on ("" when they are the same)."""
    if precise == state:
        return ""
    n = 0
    for a, b in zip(state, precise, strict=False):
        if a != b:
            break
        n += 1
    start = precise.rfind(" ", 0, n + 1) + 1 if n < len(precise) else n
    return precise[start:].strip()
