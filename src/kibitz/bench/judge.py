"""The LLM judge: naturalness and usefulness of the lines each stack said, graded 1-5 with a published rubric
(kibitz/bench/prompts/judge.yaml) by two judge models through the same backends as the companion (the embedded
model or any OpenAI-compatible server), with the agreement between the two judges reported."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kibitz.bench.stacks import load_prompts, render
from kibitz.core.config import LLMConfig
from kibitz.core.errors import KibitzError

SCALES = ("naturalness", "usefulness")


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    """backend:model, optionally @base_url (e.g. "llamacpp:qwen2.5-coder-1.5b", "openai:gpt-4o@https://...")."""

    backend: str
    model: str
    base_url: str | None = None

    @classmethod
    def parse(cls, text: str) -> JudgeSpec:
        backend, sep, rest = text.partition(":")
        if not sep or not rest:
            raise KibitzError(f"Judge {text!r} is not backend:model[@url]; e.g. llamacpp:qwen2.5-coder-0.5b.")
        model, _, url = rest.partition("@")
        return cls(backend, model, url or None)

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.model}"

    def llm_config(self, base: LLMConfig) -> LLMConfig:
        update: dict[str, Any] = {"backend": self.backend, "model": self.model, "temperature": 0.0, "max_tokens": 40}
        if self.base_url:
            update["base_url"] = self.base_url
        return base.model_copy(update=update)


def rubric_version() -> str:
    """A short hash of the judge's prompt file (grades are cached per rubric)."""
    import hashlib
    from importlib import resources

    data = resources.files("kibitz.bench").joinpath("prompts", "judge.yaml").read_bytes()
    return hashlib.sha256(data).hexdigest()[:8]


def judge_messages(moment: str, line: str) -> list[Any]:
    from kibitz.brain.prompts import quote_untrusted

    prompts = load_prompts("judge.yaml")
    user = render(prompts["user"], rubric=prompts["rubric"], moment=quote_untrusted(moment), line=quote_untrusted(line))
    return [{"role": "system", "content": prompts["system"].strip()}, {"role": "user", "content": user}]


def parse_grades(text: str) -> dict[str, int]:
    """{"naturalness": n, "usefulness": n} from a judge's reply; a KibitzError when it is not a grade."""
    found: dict[str, int] = {}
    match = re.search(r"\{.*?\}", text, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
            if isinstance(data, dict):
                for scale in SCALES:
                    value = data.get(scale)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        found[scale] = int(value)
        except json.JSONDecodeError:
            pass
    for scale in SCALES:
        if scale not in found:
            m = re.search(rf"{scale}\W{{0,4}}(\d)", text, re.I)
            if m:
                found[scale] = int(m.group(1))
    if set(found) != set(SCALES) or not all(1 <= v <= 5 for v in found.values()):
        raise KibitzError(f"The judge's reply is not a pair of 1-5 grades: {text[:120]!r}.")
    return found


def lines_to_judge(rows: list[dict[str, Any]], items: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(key, moment, line) for every line a stack said in the events and advice tasks."""
    for row in rows:
        if row["status"] != "ok" or row["output"] is None or row["item"] not in items:
            continue
        item = items[row["item"]]
        title = item.get("title", item["game"])
        if row["task"] == "events":
            for n, line in enumerate(row["output"].get("lines", [])):
                if not line.get("text"):
                    continue
                truth = [e for e in item["events"] if e["t"] <= line["t"] + 0.5]
                happened = ", ".join(f"{e['type']} at {e['t']:.1f} s" for e in truth) or "nothing special yet"
                moment = f"{title}. True events so far in this clip: {happened}. The line came at {line['t']:.1f} s."
                yield f"{row['item']}#{n}~{_digest(line['text'])}", moment, line["text"]
        elif row["task"] == "advice" and row["output"].get("text"):
            good = ", ".join(item["good"][:6])
            moment = f"{title}. The player asked: {item['question']} Good answers would name: {good}."
            yield f"{row['item']}~{_digest(row['output']['text'])}", moment, row["output"]["text"]


def _digest(text: str) -> str:
    """A short hash of a line: a grade is kept for that exact line only."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:10]


def line_item(key: str) -> str:
    """The dataset item a judged line's key belongs to."""
    return key.split("~")[0].split("#")[0]


def quadratic_kappa(a: list[int], b: list[int], categories: int = 5) -> float | None:
    """Cohen's kappa with quadratic weights for two raters' 1..categories grades."""
    if len(a) < 2:
        return None
    observed = np.zeros((categories, categories))
    for x, y in zip(a, b, strict=True):
        observed[x - 1, y - 1] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    idx = np.arange(categories)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (categories - 1) ** 2
    den = float((weights * expected).sum())
    return None if den == 0 else 1.0 - float((weights * observed).sum()) / den


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How two judges agree on the lines both graded: quadratic kappa, exact and within-one shares per scale."""
    by_judge: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        if row["status"] != "ok" or not row["scores"]:
            continue
        key, _, judge = row["item"].rpartition("|")
        by_judge.setdefault(judge, {})[f"{row['stack']}/{key}"] = row["scores"]
    judges = sorted(by_judge)
    if len(judges) < 2:
        return {"judges": judges, "pairs": 0}
    first, second = by_judge[judges[0]], by_judge[judges[1]]
    common = sorted(set(first) & set(second))
    out: dict[str, Any] = {"judges": judges[:2], "pairs": len(common)}
    for scale in SCALES:
        a = [first[k][scale] for k in common]
        b = [second[k][scale] for k in common]
        out[scale] = {
            "kappa": quadratic_kappa(a, b),
            "exact": float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if common else None,
            "within_one": float(np.mean([abs(x - y) <= 1 for x, y in zip(a, b, strict=True)])) if common else None,
        }
    return out
