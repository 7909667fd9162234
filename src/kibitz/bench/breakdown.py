"""Figures broken down the way a reader checks them: events by type, recognition by the true scene.

Both are computed from the stored outputs and the items' truth (matching as the events task does, by type within
its window), so they hold for any results database. A failed item counts as an empty output: its true events are
missed, its frame's game and scene wrong.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kibitz.bench.recorders.base import SCORED_EVENTS
from kibitz.bench.tasks import match_events, same_scene

SPLITS = ("all", "seen", "unseen")
NO_PICTURE = "(not recorded)"
"""The scene row of items whose game could not be recorded (they count as failures)."""


def _f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return precision, recall, f1


def per_event_type(rows: list[dict[str, Any]], items: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stack, split and scored event type: true events, reported, matched, precision, recall, F1."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        item = items.get(row["item"])
        if item is None:
            continue
        said = (row.get("output") or {}).get("events", []) if row["status"] == "ok" else []
        truth = [e for e in item.get("events", []) if e["type"] in SCORED_EVENTS]
        for kind in sorted({e["type"] for e in truth} | {e["type"] for e in said if e["type"] in SCORED_EVENTS}):
            tp, fp, fn, _ = match_events(
                [e for e in truth if e["type"] == kind], [e for e in said if e["type"] == kind]
            )
            for split in ("all", item.get("split", "unseen")):
                c = counts[(row["stack"], split, kind)]
                c[0], c[1], c[2] = c[0] + tp, c[1] + fp, c[2] + fn
    out = []
    for (stack, split, kind), (tp, fp, fn) in sorted(counts.items()):
        precision, recall, f1 = _f1(tp, fp, fn)
        out.append(
            {
                "stack": stack,
                "split": split,
                "type": kind,
                "true": tp + fn,
                "reported": tp + fp,
                "matched": tp,
                "precision": precision,
                "recall": recall,
                "f1": f1,
            }
        )
    return out


def per_scene(rows: list[dict[str, Any]], items: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stack, split and true scene of the recognition frames: frames, scene named right, game named right."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        item = items.get(row["item"])
        if item is None:
            continue
        output = (row.get("output") or {}) if row["status"] == "ok" else {}
        truth = str(item.get("scene", NO_PICTURE))  # a game that could not be recorded has no picture, only a failure
        scene_ok = truth != NO_PICTURE and same_scene(str(output.get("scene", "")), truth)
        game_ok = output.get("game") == item.get("game")
        for split in ("all", item.get("split", "unseen")):
            c = counts[(row["stack"], split, truth)]
            c[0], c[1], c[2] = c[0] + 1, c[1] + scene_ok, c[2] + game_ok
    return [
        {"stack": stack, "split": split, "scene": scene, "frames": n, "scene_right": s, "game_right": g}
        for (stack, split, scene), (n, s, g) in sorted(counts.items())
    ]
