"""A player's own guides for a game (`kibitz games guide NAME FILE...`): Markdown, text or HTML files read as text,
cut into sections of a few sentences, each rated for spoilers (core.spoiler, and its heading: "Secrets",
"Walkthrough"...), embedded with the multilingual embedder and kept in a SQLite file on this machine, so that a
question in any language finds the passage that answers it.

A guide is data: lines in it that give orders to an AI are replaced by a placeholder when it is indexed
(core.injection), and what is retrieved reaches the model quoted, as the game state does. A file that cannot be
read as a guide (binary, empty, too big, not found) gets one sentence saying why; the others are indexed."""

from __future__ import annotations

import hashlib
import html.parser
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kibitz.core.errors import KibitzError
from kibitz.core.injection import gives_orders
from kibitz.core.knowledge import Tip
from kibitz.core.spoiler import NONE, SOLUTION, rate
from kibitz.memory.embed import TextEmbedder, Vectors
from kibitz.memory.sqlite import immediate

MAX_BYTES = 8 << 20
"""A guide file larger than this is refused (8 MiB of text is a book; split it or keep the parts you need)."""
SECTION_CHARS = 700
"""A section holds whole sentences up to about this many characters (what one retrieved passage costs a prompt)."""
EMBED_BATCH = 16
SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
}
SPOILER_HEADINGS = re.compile(
    r"\b(spoilers?|secrets?|walkthrough|solutions?|answers?|ending|boss(?:es)? strateg\w*)\b|스포일러|공략|비밀",
    re.IGNORECASE,
)
"""A section under a heading like these gives the game away, whatever its sentences say."""
PLACEHOLDER = "[a line that gave orders to an AI was left out]"


class GuideError(KibitzError):
    """A guide file that cannot be indexed (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    text: str
    spoiler: int


@dataclass(frozen=True, slots=True)
class Indexed:
    """What `kibitz games guide` did with one file."""

    name: str
    sections: int
    chars: int
    orders_removed: int
    replaced: bool
    """The file had been indexed before (its old sections were replaced)."""


# --- reading -------------------------------------------------------------------------------------------------


class _Text(html.parser.HTMLParser):
    """An HTML page's visible text, headings marked as Markdown headings, scripts and styles left out."""

    BLOCKS = frozenset({"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol", "pre", "blockquote"})
    HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
    HIDDEN = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.HEADINGS:
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(self._hidden - 1, 0)
        elif tag in self.HEADINGS or tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def read_guide(path: Path) -> str:
    """A guide file's text (Markdown and text as they are, HTML's visible text), or a GuideError saying why not."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise GuideError(
            f"{path.name}: kibitz reads guides in Markdown (.md), text (.txt) or HTML (.html); save it as one of those."
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise GuideError(f"{path}: there is no such file.") from None
    except OSError as exc:
        raise GuideError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if not path.is_file():
        raise GuideError(f"{path}: is not a file.")
    if size > MAX_BYTES:
        raise GuideError(
            f"{path.name} is {size / (1 << 20):.0f} MiB; a guide may be {MAX_BYTES >> 20} MiB at most: split it, or "
            "keep the chapters you need."
        )
    raw = path.read_bytes()
    text = _decode(raw, path.name)
    if kind == "html":
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text).strip()
    if not re.search(r"[^\W\d_]{2}", text):
        raise GuideError(f"{path.name} has no text in it to learn from.")
    return text


def _decode(raw: bytes, name: str) -> str:
    """Text from a file's bytes (UTF-8, UTF-16 with its mark, else Windows-1252), or a GuideError for binary data."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    head = raw[:8192]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in head or controls > len(head) // 20:
        raise GuideError(
            f"{name} looks like a binary file, not text; export the guide as Markdown, text or HTML first."
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


# --- sections --------------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$|^(.+)\n(?:=+|-+)\s*$", re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def sections(text: str) -> tuple[list[Section], int]:
    """The guide cut at its headings and, within a heading, into runs of whole sentences of about SECTION_CHARS;
    each rated for spoilers. Returns them and how many lines giving orders to an AI were left out."""
    removed = 0
    kept: list[str] = []
    for line in text.split("\n"):
        if gives_orders(line):
            removed += 1
            kept.append(PLACEHOLDER)
        else:
            kept.append(line)
    text = "\n".join(kept)
    out: list[Section] = []
    for heading, body in _by_heading(text):
        spoils = SOLUTION if SPOILER_HEADINGS.search(heading) else NONE
        for chunk in _runs(body):
            if chunk == PLACEHOLDER:
                continue
            out.append(Section(heading, chunk, max(spoils, rate(chunk))))
    return out, removed


def _by_heading(text: str) -> Iterator[tuple[str, str]]:
    heading, start = "", 0
    for m in _HEADING.finditer(text):
        yield heading, text[start : m.start()]
        heading, start = (m.group(2) or m.group(3) or "").strip()[:120], m.end()
    yield heading, text[start:]


def _runs(body: str) -> Iterator[str]:
    run = ""
    for piece in _SENTENCE.split(body):
        piece = piece.strip()
        if not piece:
            continue
        while len(piece) > SECTION_CHARS:  # one endless "sentence" (a table, a list without stops)
            cut = piece.rfind(" ", 0, SECTION_CHARS)
            cut = cut if cut > SECTION_CHARS // 2 else SECTION_CHARS
            if run:
                yield run
                run = ""
            yield piece[:cut].strip()
            piece = piece[cut:].strip()
        if run and len(run) + 1 + len(piece) > SECTION_CHARS:
            yield run
            run = ""
        run = f"{run} {piece}".strip()
    if run:
        yield run


# --- the store --------------------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS guides (
    id INTEGER PRIMARY KEY, game TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL, added REAL NOT NULL,
    UNIQUE (game, name)
);
CREATE TABLE IF NOT EXISTS sections (
    id INTEGER PRIMARY KEY, guide INTEGER NOT NULL REFERENCES guides(id) ON DELETE CASCADE,
    heading TEXT NOT NULL, text TEXT NOT NULL, spoiler INTEGER NOT NULL, vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sections_guide ON sections(guide);
"""


def game_name(game: str) -> str:
    """A game name as guides are filed under it: lower case, spaces as underscores ("Super Mario Bros" is not smb:
    use the id `kibitz games` lists)."""
    name = game.strip().lower().replace(" ", "_")
    if not re.fullmatch(r"[\w.-]{1,64}", name) or name.strip(".") == "":
        raise GuideError(f"{game!r} is not a game name: use letters, digits, _ and - (the id `kibitz games` lists).")
    return name


class GuideStore:
    """The guides indexed on this machine, by game (SQLite in WAL mode; every change one transaction)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise KibitzError(
                f"The guides file {path} cannot be opened ({exc}); move it away and add the guides again."
            ) from None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, list[Tip], Vectors]] = {}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock, immediate(self.db):
            yield

    def add(
        self,
        game: str,
        path: Path,
        embedder: TextEmbedder,
        progress: Callable[[int, int], None] | None = None,
    ) -> Indexed:
        """Index one guide file for a game (replacing an earlier copy of the same name); nothing is written unless
        the whole file was indexed."""
        game = game_name(game)
        text = read_guide(path)
        found, removed = sections(text)
        if not found:
            raise GuideError(f"{path.name} has no passages left to learn from.")
        passages = [f"{s.heading}: {s.text}" if s.heading else s.text for s in found]
        vectors: list[Vectors] = []
        for start in range(0, len(passages), EMBED_BATCH):
            vectors.append(embedder.passages(passages[start : start + EMBED_BATCH]))
            if progress is not None:
                progress(min(start + EMBED_BATCH, len(passages)), len(passages))
        matrix = np.concatenate(vectors).astype(np.float32)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self._transaction():
            old = self.db.execute("SELECT id FROM guides WHERE game=? AND name=?", (game, path.name)).fetchone()
            if old is not None:
                self.db.execute("DELETE FROM guides WHERE id=?", (old[0],))
            guide = self.db.execute(
                "INSERT INTO guides (game, name, sha256, added) VALUES (?, ?, ?, ?)",
                (game, path.name, digest, time.time()),
            ).lastrowid
            self.db.executemany(
                "INSERT INTO sections (guide, heading, text, spoiler, vector) VALUES (?, ?, ?, ?, ?)",
                [(guide, s.heading, s.text, s.spoiler, v.tobytes()) for s, v in zip(found, matrix, strict=True)],
            )
        self._cache.pop(game, None)
        return Indexed(path.name, len(found), len(text), removed, old is not None)

    def guides(self, game: str | None = None) -> list[tuple[str, str, int, float]]:
        """(game, file name, sections, when added) for every guide, or one game's."""
        query = (
            "SELECT g.game, g.name, COUNT(s.id), g.added FROM guides g LEFT JOIN sections s ON s.guide = g.id"
            + (" WHERE g.game=?" if game else "")
            + " GROUP BY g.id ORDER BY g.game, g.name"
        )
        with self._lock:
            return [tuple(r) for r in self.db.execute(query, (game_name(game),) if game else ())]

    def remove(self, game: str, name: str | None = None) -> int:
        """Forget one guide of a game (by file name), or all of them; returns how many were removed."""
        game = game_name(game)
        with self._transaction():
            if name is None:
                count = self.db.execute("DELETE FROM guides WHERE game=?", (game,)).rowcount
            else:
                count = self.db.execute("DELETE FROM guides WHERE game=? AND name=?", (game, name)).rowcount
        self._cache.pop(game, None)
        return int(count)

    def sections_of(self, game: str) -> tuple[list[Tip], Vectors]:
        """A game's guide passages as tips (source: the file and its heading) and their vectors (cached until the
        game's guides change)."""
        game = game_name(game)
        with self._lock:
            version = self.db.execute("SELECT COALESCE(MAX(id), 0) + COUNT(*) FROM guides WHERE game=?", (game,))
            stamp = int(version.fetchone()[0])
            cached = self._cache.get(game)
            if cached is not None and cached[0] == stamp:
                return cached[1], cached[2]
            rows = self.db.execute(
                "SELECT g.name, s.heading, s.text, s.spoiler, s.vector FROM sections s JOIN guides g ON g.id = s.guide"
                " WHERE g.game=? ORDER BY s.id",
                (game,),
            ).fetchall()
        tips = [
            Tip(text, spoiler, f"{name}{' › ' + heading if heading else ''}")
            for name, heading, text, spoiler, _ in rows
        ]
        vectors = np.stack([np.frombuffer(r[4], np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        self._cache[game] = (stamp, tips, vectors)
        return tips, vectors

    def close(self) -> None:
        with self._lock:
            self.db.close()


def guides_path() -> Path:
    """Where guides are kept: guides/guides.sqlite in kibitz's folder ($KIBITZ_HOME or ~/.cache/kibitz)."""
    from kibitz.models.store import cache_dir

    return cache_dir() / "guides" / "guides.sqlite"


def add_guides(
    store: GuideStore,
    game: str,
    paths: Sequence[Path],
    embedder: TextEmbedder,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[list[Indexed], list[str]]:
    """Index each file; a file that cannot be indexed is reported (one sentence) and the others go on."""
    done: list[Indexed] = []
    problems: list[str] = []
    for path in paths:
        try:
            done.append(store.add(game, path, embedder, None if progress is None else _named(progress, path.name)))
        except GuideError as exc:
            problems.append(exc.message)
    return done, problems


def _named(progress: Callable[[str, int, int], None], name: str) -> Callable[[int, int], None]:
    return lambda done, total: progress(name, done, total)
