"""The pairwise judge: for the same moment, kibitz's line against the baseline's, asked in both orders (A/B, then
B/A) so a judge that always picks the first line counts as no preference; ties allowed. With two judges, how often
they agree on the moments both judged, and Cohen's kappa over the three verdicts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from kibitz.bench.stacks import load_prompts, render
from kibitz.bench.stats import wilson
from kibitz.brain.llm.base import LLMBackend, Message
from kibitz.brain.prompts import quote_untrusted

VERDICTS = ("first", "second", "tie")


def messages(moment: str, a: str, b: str) -> list[Message]:
    prompts = load_prompts("judge.yaml")
    user = render(prompts["pairwise_user"], moment=quote_untrusted(moment), a=quote_untrusted(a), b=quote_untrusted(b))
    return [{"role": "system", "content": prompts["pairwise_system"].strip()}, {"role": "user", "content": user}]


def parse(text: str) -> str | None:
    """ "A", "B" or "tie" from a judge's reply (its first such word); None when it gave none."""
    match = re.search(r"\b(A|B|tie|TIE|Tie)\b", text)
    if match is None:
        return None
    word = match.group(1).lower()
    return {"a": "A", "b": "B"}.get(word, "tie")


def ask(judge: LLMBackend, moment: str, a: str, b: str) -> str | None:
    reply = "".join(judge.stream(messages(moment, a, b), max_tokens=4, temperature=0.0))
    return parse(reply)


def compare(judge: LLMBackend, moment: str, mine: str, theirs: str) -> dict[str, Any]:
    """One judge on one moment, both orders: "first" (kibitz's line wins), "second" (the baseline's), or "tie"; a
    judge whose two answers contradict each other (it picked whichever came first) counts as a tie, marked."""
    one = ask(judge, moment, mine, theirs)  # kibitz's line is A
    two = ask(judge, moment, theirs, mine)  # kibitz's line is B
    votes = [{"A": "first", "B": "second"}.get(one or "", "tie"), {"A": "second", "B": "first"}.get(two or "", "tie")]
    decided = [v for v in votes if v != "tie"]
    if not decided:
        verdict = "tie"
    elif len(set(decided)) == 1:
        verdict = decided[0]
    else:
        verdict = "tie"
    return {
        "verdict": verdict,
        "orders": [one, two],
        "inconsistent": len(set(decided)) > 1,
        "unparsed": (one is None) + (two is None),
    }


def kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two judges' verdicts on the same moments."""
    if len(a) < 2:
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[v] * cb[v] for v in VERDICTS) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def judge_pairs(
    pairs: list[tuple[str, str, str]],
    judges: dict[str, LLMBackend],
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """`pairs`: (moment, kibitz's line, the baseline's line). Per judge: wins, losses and ties with 95 % Wilson
    intervals, the share of moments whose two orders contradicted each other; and the judges' agreement."""
    verdicts: dict[str, list[str]] = {}
    out: dict[str, Any] = {"pairs": len(pairs), "judges": {}}
    for label, judge in judges.items():
        results = []
        for moment, mine, theirs in pairs:
            results.append(compare(judge, moment, mine, theirs))
            if progress:
                progress()
        verdicts[label] = [r["verdict"] for r in results]
        n = len(results)
        figures: dict[str, Any] = {"n": n}
        for v in VERDICTS:
            k = sum(r["verdict"] == v for r in results)
            figures[v] = {"k": k, "rate": k / n if n else None, "ci95": list(wilson(k, n))}
        figures["inconsistent"] = sum(r["inconsistent"] for r in results)
        figures["unparsed"] = sum(r["unparsed"] for r in results)
        out["judges"][label] = figures
    labels = list(verdicts)
    if len(labels) >= 2:
        a, b = verdicts[labels[0]], verdicts[labels[1]]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        out["agreement"] = {"judges": labels[:2], "same": same, "n": len(a), "kappa": kappa(a, b)}
    return out
