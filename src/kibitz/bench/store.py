"""Bench results in SQLite (WAL): one row per (task, item, stack), so an interrupted run resumes where it
stopped and a report can put stacks from several runs side by side."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from kibitz.core.errors import KibitzError

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    task TEXT NOT NULL,
    item TEXT NOT NULL,
    stack TEXT NOT NULL,
    game TEXT NOT NULL,
    split TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    output TEXT,
    scores TEXT,
    error TEXT,
    seconds REAL,
    created REAL NOT NULL,
    key TEXT,
    PRIMARY KEY (task, item, stack)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=10.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(results)")}
            if "key" not in columns:  # a results file from before results were keyed: its rows match no key
                self.db.execute("ALTER TABLE results ADD COLUMN key TEXT")
        except sqlite3.DatabaseError as exc:
            raise KibitzError(
                f"The bench results file {path} cannot be used ({exc}); move it away or pass another --results."
            ) from exc
        self.db.row_factory = sqlite3.Row

    def get(self, task: str, item: str, stack: str, key: str | None = None) -> dict[str, Any] | None:
        """The stored result, if any (with `key`: only one stored for that dataset, item content and stack)."""
        row = self.db.execute(
            "SELECT * FROM results WHERE task = ? AND item = ? AND stack = ?", (task, item, stack)
        ).fetchone()
        if row is None or (key is not None and row["key"] != key):
            return None
        return _row(row)

    def put(
        self,
        task: str,
        item: dict[str, Any],
        stack: str,
        *,
        output: dict[str, Any] | None = None,
        scores: dict[str, Any] | None = None,
        error: str | None = None,
        seconds: float | None = None,
        item_id: str | None = None,
        key: str | None = None,
    ) -> None:
        with self.db:  # one transaction per result: a killed run keeps every finished item
            self.db.execute(
                "INSERT OR REPLACE INTO results (task, item, stack, game, split, status, output, scores, error, "
                "seconds, created, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task,
                    item_id or item["id"],
                    stack,
                    item.get("game", ""),
                    item.get("split", ""),
                    "failed" if error is not None else "ok",
                    None if output is None else json.dumps(output, default=str),
                    None if scores is None else json.dumps(scores),
                    error,
                    seconds,
                    time.time(),
                    key,
                ),
            )

    def rows(self, task: str | None = None, stack: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM results WHERE 1=1", []
        if task is not None:
            sql += " AND task = ?"
            args.append(task)
        if stack is not None:
            sql += " AND stack = ?"
            args.append(stack)
        return [_row(r) for r in self.db.execute(sql + " ORDER BY task, stack, item", args)]

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def close(self) -> None:
        self.db.close()


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("output", "scores"):
        out[key] = json.loads(out[key]) if out[key] else None
    return out
