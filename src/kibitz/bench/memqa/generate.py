"""Seeded synthetic players for the memory benchmark: who they are, their sessions (games, events, what they
said, with explicit times) and the questions they ask after the last one.

The truth is decided here, from the generator's own draws and its own simulation of the games (deaths per
level, the furthest level, game overs, kills, the last session, the latest preference); it never looks at what
kibitz wrote. A question's `support` names what the memory holding the answer says (e.g. "Deaths in level 1-2
of Super Mario Bros.: 7"): a fact kibitz failed to extract or to tally has no such memory, and recall misses.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kibitz.bench.memqa.score import count_keys, date_keys, level_keys
from kibitz.bench.memqa.world import fill, paraphrases, question_data, world

TYPES = ("single-fact", "multi-session", "temporal", "preference")
LANGUAGES = ("en", "ko")
QUOTA = {"single-fact": 5, "multi-session": 4, "temporal": 4, "preference": 3}
"""Questions per player of each type, for 16 a player (scaled for other sizes)."""
KOREAN_SHARE = 0.43
"""At least this share of players speak Korean (14 of 32)."""
OTHER_LANGUAGE_ASKS = 0.35
"""A bilingual player asks this share of their questions in their other language."""
FIRST_DAY = datetime(2026, 1, 5)
PREFERENCES = {"spoilers": ("none", "hints", "full"), "talk": ("less", "more"), "tone": ("jokes", "serious")}
LIFE_COUNTER = {"age": "살"}


@dataclass(slots=True)
class Step:
    """One moment of a session: an event of the game, or something the player said."""

    t: float
    kind: str
    """event | say"""
    text: str = ""
    type: str = ""
    """The event type (death, game_over, level_change, kill)."""
    level: str | None = None
    """The level being played (an event's, after a level change the new one)."""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Session:
    game: str
    start: float
    end: float
    start_level: str | None
    steps: list[Step] = field(default_factory=list)

    @property
    def title(self) -> str:
        return str(world()["games"][self.game]["title"])

    @property
    def day(self) -> str:
        """The day the session ended (as kibitz's session summary dates it)."""
        return datetime.fromtimestamp(self.end).strftime("%Y-%m-%d")


@dataclass(slots=True)
class Question:
    id: str
    user: str
    lang: str
    type: str
    kind: str
    text: str
    game: str | None
    """The game the question is about (searched with it), None for life facts, preferences, the last session."""
    support: list[str]
    """Substrings the supporting memory's text must all contain."""
    accept: list[str]
    """An answer is correct when it holds one of these (before any of `reject`)."""
    reject: list[str]
    truth: str
    reworded: dict[str, str] = field(default_factory=dict)
    """The same question in held-out words, per set of memory_qa_paraphrases.yaml (dev, test), with the same
    support and answers."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Fact:
    """Something the player says once: the utterance's values, the question's values per language, the truth."""

    kind: str
    game: str | None
    values: dict[str, str]
    ask: dict[str, dict[str, str]]
    support: list[str]
    accept: list[str]
    truth: str
    session: int = 0


@dataclass
class Player:
    user: str
    name: str
    lang: str
    bilingual: bool
    sessions: list[Session]
    now: float
    """When the questions are asked: a day after the last session."""
    questions: list[Question] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    preferences: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """topic → (session index, value) in the order said; the last one holds."""


@dataclass
class _Ask:
    type: str
    kind: str
    game: str | None
    values: dict[str, dict[str, str]]
    support: list[str]
    accept: list[str]
    truth: str
    reject: list[str] = field(default_factory=list)
    fact: Fact | None = None
    rank: int = 0
    """Asked before asks of a higher rank (the best of several similar ones first)."""


@dataclass
class _Tally:
    """The truth about a player's games, from the generator's own simulation."""

    deaths: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    death_sessions: dict[tuple[str, str | None], set[int]] = field(default_factory=dict)
    game_overs: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    furthest: dict[str, int] = field(default_factory=dict)
    """game → index of the furthest level reached by a level change."""


def generate(players: int = 32, seed: int = 0, per_player: int = 16) -> list[Player]:
    """`players` players (at least KOREAN_SHARE of them Korean-speaking, a few bilingual), each with 3-6 sessions
    and about `per_player` questions. The same arguments give the same players and questions."""
    rng = random.Random(f"memqa:{seed}")
    korean = math.ceil(players * KOREAN_SHARE)
    langs = ["ko"] * korean + ["en"] * (players - korean)
    rng.shuffle(langs)
    bilingual: set[int] = set()
    for lang in LANGUAGES:
        speakers = [i for i, x in enumerate(langs) if x == lang]
        bilingual.update(rng.sample(speakers, min(len(speakers), max(1, players // 12))))
    return [_player(i, langs[i], i in bilingual, seed, per_player) for i in range(players)]


def _pair(rng: random.Random, values: list[list[str]]) -> list[str]:
    return [str(v) for v in rng.choice(values)]


def _player(index: int, lang: str, bilingual: bool, seed: int, per_player: int) -> Player:
    rng = random.Random(f"memqa:{seed}:{index}")
    games = world()["games"]
    name = _pair(rng, world()["people"]["names"][lang])
    count = rng.randint(3, 6)
    liked = rng.sample(sorted(games), rng.choice((1, 2, 2, 3, 3)))
    plan = [rng.choice(liked) for _ in range(count)]
    day = FIRST_DAY + timedelta(days=rng.randint(0, 40))
    times = []
    for k in range(count):
        if k:
            day += timedelta(days=rng.randint(1, 9))
        start = day.replace(hour=rng.randint(18, 21), minute=rng.randint(0, 59))
        times.append((start, start + timedelta(minutes=rng.randint(25, 100))))
    player = Player(
        user=f"memqa-{seed}-{index:02d}",
        name=name[0],
        lang=lang,
        bilingual=bilingual,
        sessions=[],
        now=(times[-1][1] + timedelta(days=1)).timestamp(),
    )
    player.facts = _life_facts(rng, lang, name, count) + _game_facts(rng, lang, plan)
    player.preferences = _preferences(rng, lang, bilingual, count)
    tally = _Tally()
    progress: dict[str, int] = {}
    for k, (game, (start, end)) in enumerate(zip(plan, times, strict=True)):
        session = Session(game, start.timestamp(), end.timestamp(), None)
        _play(session, k, progress, tally, rng)
        _talk(session, k, player, rng)
        player.sessions.append(session)
    player.questions = _questions(player, tally, rng, per_player)
    return player


# --- who they are and what they say ----------------------------------------------------------------------


def _early(rng: random.Random, count: int) -> int:
    """A session index, the early ones likelier (people introduce themselves first)."""
    return rng.choices(range(count), weights=[1 / (k + 1) for k in range(count)])[0]


def _life_facts(rng: random.Random, lang: str, name: list[str], count: int) -> list[Fact]:
    people = world()["people"]
    facts = [Fact("name", None, {"name": name[0]}, {}, [name[0]], name, name[0], session=min(_early(rng, count), 1))]
    if rng.random() < 0.5:
        age = rng.randint(16, 45)
        support = f"{age} years old" if lang == "en" else f"{age}살"
        facts.append(Fact("age", None, {"age": str(age)}, {}, [support], count_keys(age, "살"), str(age)))
    if rng.random() < 0.85:
        city = _pair(rng, people["cities"][lang])
        facts.append(Fact("home", None, {"city": city[0]}, {}, [city[0]], city, city[0]))
    if rng.random() < 0.8:
        kinds = rng.sample(people["pets"], 2 if rng.random() < 0.2 else 1)
        names = rng.sample(people["pet_names"][lang], len(kinds))
        for kind, pet in zip(kinds, names, strict=True):
            mine = kind[0] if lang == "en" else kind[1]
            ask = {"en": {"pet": kind[0]}, "ko": {"pet": kind[1]}}
            facts.append(Fact("pet", None, {"pet": mine, "pname": pet[0]}, ask, [pet[0]], pet, f"{kind[0]} {pet[0]}"))
    if rng.random() < 0.75:
        job = _pair(rng, people["jobs"])
        article = "an" if job[0][0] in "aeiou" else "a"
        mine = job[0] if lang == "en" else job[1]
        values = {"job": mine, "job_a": f"{article} {job[0]}"}
        facts.append(Fact("work", None, values, {}, [mine], job, job[0]))
    for item in rng.sample(people["favourites"], rng.choice((1, 2, 2))):
        value = _pair(rng, item[lang])
        thing = item["thing"]
        ask = {"en": {"thing": thing["en"]}, "ko": {"thing": thing["ko"]}}
        facts.append(
            Fact("favourite", None, {"thing": thing[lang], "value": value[0]}, ask, [value[0]], value, value[0])
        )
    for kind, key in (("likes", "like"), ("dislikes", "dislike")):
        if rng.random() < 0.7:
            value = _pair(rng, people[kind][lang])
            facts.append(Fact(kind, None, {key: value[0]}, {}, [value[0]], value, value[0]))
    for fact in facts[1:]:
        fact.session = _early(rng, count)
    return facts


def _titles(game: str) -> dict[str, dict[str, str]]:
    spec = world()["games"][game]
    return {"en": {"title": spec["title"]}, "ko": {"title": spec["ko"]}}


def _game_facts(rng: random.Random, lang: str, plan: list[str]) -> list[Fact]:
    facts = []
    for game in sorted(set(plan)):
        spec = world()["games"][game]
        sessions = [k for k, g in enumerate(plan) if g == game]
        if rng.random() < 0.9:
            x = rng.choice(spec["nemesis"])
            facts.append(Fact("nemesis", game, {"x": x[lang]}, _titles(game), [x[lang]], [*x["keys"]], x["en"]))
        if rng.random() < 0.6:
            b = rng.choice(spec["beaten"])
            ask = {la: {"target": b["target"][la]} for la in LANGUAGES}
            values = {"target": b["target"][lang], "how": b["how"][lang]}
            facts.append(Fact("beaten", game, values, ask, [b["how"][lang]], [*b["keys"]], b["how"]["en"]))
        if rng.random() < 0.6:
            p = rng.choice(spec["plans"])
            facts.append(Fact("plans", game, {"plan": p[lang]}, _titles(game), [p[lang]], [*p["keys"]], p["en"]))
        for fact in facts:
            if fact.game == game:
                fact.session = rng.choice(sessions)
    return facts


def _preferences(rng: random.Random, lang: str, bilingual: bool, count: int) -> dict[str, list[tuple[int, str]]]:
    """What the player says about how kibitz should talk, session by session; a later statement may change an
    earlier one ("talk more", then "talk less")."""
    wanted = {"spoilers": rng.choice((1, 2, 2, 3)), "talk": rng.choice((1, 2, 2))}
    if rng.random() < 0.5:
        wanted["tone"] = rng.choice((1, 2))
    if bilingual and rng.random() < 0.6:
        wanted["language"] = rng.choice((1, 1, 2))
    out: dict[str, list[tuple[int, str]]] = {}
    for topic, statements in wanted.items():
        values = LANGUAGES if topic == "language" else PREFERENCES[topic]
        previous = lang if topic == "language" else None
        said = []
        for k in sorted(rng.sample(range(count), min(statements, count))):
            value = rng.choice([v for v in values if v != previous])
            said.append((k, value))
            previous = value
        out[topic] = said
    return out


def _sayable(templates: list[str], values: dict[str, str]) -> list[str]:
    """The templates kibitz's rules read right for these values: not "{x/이야/야}" after a value ending in 이
    (the rules take its 이 for the copula: "떡볶이야" → "떡볶")."""
    ok = [t for t in templates if not any(f"{{{k}/이야/야}}" in t and v.endswith("이") for k, v in values.items())]
    return ok or templates


def _talk(session: Session, k: int, player: Player, rng: random.Random) -> None:
    """Put what the player says in session k at random moments of it, between the game's events."""
    data = world()
    lang = player.lang
    lines = []
    for fact in player.facts:
        if fact.session == k:
            own = data["games"][fact.game].get("say", {}) if fact.game else {}
            templates = own.get(fact.kind, data["say"][fact.kind])[lang]
            lines.append(fill(rng.choice(_sayable(templates, fact.values)), fact.values))
    for topic, said in player.preferences.items():
        for when, value in said:
            if when == k:
                lines.append(rng.choice(data["commands"][topic][value][lang]))
    lines += rng.sample(data["noise"][lang], rng.randint(1, 3))
    if rng.random() < 0.5:
        lines.append(rng.choice(data["asks"][lang]))
    low, high = session.start + 60, session.end - 60
    session.steps += [Step(rng.uniform(low, high), "say", text) for text in lines]
    session.steps.sort(key=lambda s: s.t)


# --- the games ---------------------------------------------------------------------------------------------


def _play(session: Session, k: int, progress: dict[str, int], tally: _Tally, rng: random.Random) -> None:
    """Simulate one session of its game: stretches of play in a level (deaths, kills, game overs), each maybe
    ending with the next level. The level carries over to the game's next session (not after a permadeath)."""
    spec = world()["games"][session.game]
    levels: list[str] = [str(v) for v in spec["levels"]]
    index = progress.get(session.game, 0)
    session.start_level = levels[index] if levels else None
    events: list[tuple[str, str | None, dict[str, Any]]] = []
    if "games_per_session" in spec:
        events += [("game_over", None, {})] * rng.randint(*spec["games_per_session"])
    else:
        lost = 0
        for _ in range(rng.randint(2, 5)):
            level = levels[index] if levels else None
            stretch = ["death"] * rng.randint(*spec["deaths"]) + ["kill"] * rng.randint(*spec["kills"])
            rng.shuffle(stretch)
            over = False
            for kind in stretch:
                events.append((kind, level, {}))
                if kind != "death":
                    continue
                lost += 1
                if spec["permadeath"] or (spec["lives"] and lost % spec["lives"] == 0):
                    events.append(("game_over", level, {}))
                if spec["permadeath"]:
                    over = True
                    break
            if over:
                index = 0
                break
            if levels and index + 1 < len(levels) and rng.random() < spec["advance"]:
                events.append(("level_change", levels[index + 1], {"level": levels[index + 1], "previous": level}))
                index += 1
        if not events:  # every session has something happen (kibitz writes a summary of a session with events)
            events.append(("death", levels[index] if levels else None, {}))
            if spec["permadeath"] or spec["lives"] == 1:
                events.append(("game_over", levels[index] if levels else None, {}))
            if spec["permadeath"]:
                index = 0
    progress[session.game] = index
    low, high = session.start + 60, session.end - 60
    for t, (kind, level, data) in zip(sorted(rng.uniform(low, high) for _ in events), events, strict=True):
        session.steps.append(Step(t, "event", type=kind, level=level, data=data))
        if kind == "death":
            tally.deaths[(session.game, level)] += 1
            tally.death_sessions.setdefault((session.game, level), set()).add(k)
        elif kind == "game_over":
            tally.game_overs[session.game] += 1
        elif kind == "kill":
            tally.kills[session.game] += 1
        elif kind == "level_change":
            reached = levels.index(str(data["level"]))
            tally.furthest[session.game] = max(tally.furthest.get(session.game, 0), reached)


# --- the questions -------------------------------------------------------------------------------------------


def _game_asks(player: Player, tally: _Tally) -> list[_Ask]:
    asks = []
    for (game, level), n in sorted(tally.deaths.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        title = world()["games"][game]["title"]
        if level is None:
            support = [f"Deaths in {title}: {n}"]
            asks.append(_Ask("multi-session", "deaths_game", game, _titles(game), support, count_keys(n), str(n)))
        else:
            values = {la: {**v, "level": level} for la, v in _titles(game).items()}
            support = [f"Deaths in level {level} of {title}: {n}"]
            asks.append(_Ask("multi-session", "deaths_level", game, values, support, count_keys(n), str(n)))
    # Per game, the level whose deaths span the most sessions (then the most deaths) is asked about first.
    best: dict[str, tuple[tuple[int, int], _Ask]] = {}
    for ask in asks:
        assert ask.game is not None
        span = (len(tally.death_sessions[(ask.game, ask.values["en"].get("level"))]), int(ask.truth))
        ask.rank = 1
        if ask.game not in best or span > best[ask.game][0]:
            best[ask.game] = (span, ask)
    for _, ask in best.values():
        ask.rank = 0
    out = list(asks)
    for game, index in sorted(tally.furthest.items()):
        spec = world()["games"][game]
        level = str(spec["levels"][index])
        support = [f"Furthest level reached in {spec['title']}: {level}"]
        out.append(_Ask("multi-session", "furthest", game, _titles(game), support, level_keys(level), level))
    for game, n in sorted(tally.game_overs.items()):
        # kibitz counts a finished chess game as a game over: to the player, it is a game played to the end.
        kind, counter = (
            ("games_finished", "판") if "games_per_session" in world()["games"][game] else ("game_overs", "번")
        )
        support = [f"Game overs in {world()['games'][game]['title']}: {n}"]
        out.append(_Ask("multi-session", kind, game, _titles(game), support, count_keys(n, counter), str(n)))
    for game, n in sorted(tally.kills.items()):
        support = [f"Enemies defeated in {world()['games'][game]['title']}: {n}"]
        out.append(_Ask("multi-session", "kills", game, _titles(game), support, count_keys(n, "마리"), str(n)))
    return out


def _session_asks(player: Player) -> list[_Ask]:
    last = player.sessions[-1]
    spec = world()["games"][last.game]
    when = [f"Session on {last.day}", f"played {last.title}"]
    names = list(dict.fromkeys([spec["title"], spec["ko"], *spec["aliases"]]))
    none: dict[str, dict[str, str]] = {"en": {}, "ko": {}}
    out = [
        _Ask("temporal", "last_what", None, none, when, names, spec["title"]),
        _Ask("temporal", "last_game", None, none, when, names, spec["title"]),
    ]
    levels = [s.level for s in last.steps if s.kind == "event" and s.type == "level_change" and s.level]
    if levels:
        support = [*when, f"reached level {levels[-1]}"]
        out.append(_Ask("temporal", "last_level", None, none, support, level_keys(levels[-1]), levels[-1]))
    deaths = sum(1 for s in last.steps if s.kind == "event" and s.type == "death")
    if deaths:
        support = [*when, f"died {deaths} time"]
        out.append(_Ask("temporal", "last_deaths", None, none, support, count_keys(deaths), str(deaths)))
    for game in sorted({s.game for s in player.sessions}):
        final = [s for s in player.sessions if s.game == game][-1]
        day = datetime.fromtimestamp(final.end).date()
        support = [f"Session on {final.day}", f"played {final.title}"]
        ask = _Ask("temporal", "last_date", game, _titles(game), support, date_keys(day), final.day)
        ask.rank = int(game == last.game)  # the last game's date is also the last session's: ask others first
        out.append(ask)
    return out


def _preference_asks(player: Player) -> list[_Ask]:
    answers = question_data()["preference_answers"]
    out = []
    for topic, said in player.preferences.items():
        value = said[-1][1]
        keys = answers[topic][value]
        none: dict[str, dict[str, str]] = {"en": {}, "ko": {}}
        ask = _Ask("preference", topic, None, none, [keys["support"]], list(keys["accept"]), value)
        ask.reject = list(keys["reject"])
        out.append(ask)
    return out


def _fact_ask(fact: Fact, type_: str, kind: str) -> _Ask:
    values = {la: fact.ask.get(la, {}) for la in LANGUAGES}
    return _Ask(type_, kind, fact.game, values, fact.support, fact.accept, fact.truth, fact=fact)


def _quotas(per_player: int) -> dict[str, int]:
    total = sum(QUOTA.values())
    quotas = {t: int(per_player * q / total) for t, q in QUOTA.items()}
    for t in list(QUOTA)[: per_player - sum(quotas.values())]:
        quotas[t] += 1
    return quotas


def _questions(player: Player, tally: _Tally, rng: random.Random, per_player: int) -> list[Question]:
    count = len(player.sessions)
    old = [f for f in player.facts if f.game is None and f.session == 0 and count >= 4]
    pools = {
        "multi-session": _game_asks(player, tally) + [_fact_ask(f, "multi-session", f"old_{f.kind}") for f in old],
        "temporal": _session_asks(player),
        "preference": _preference_asks(player),
        "single-fact": [_fact_ask(f, "single-fact", f.kind) for f in player.facts],
    }
    for type_, pool in pools.items():
        order = {id(a): (a.rank, rng.random()) for a in pool}
        pools[type_] = sorted(pool, key=lambda a: order[id(a)], reverse=True)  # popped from the end
    quotas = _quotas(per_player)
    chosen: list[_Ask] = []
    used: set[int] = set()

    def take(type_: str, n: int) -> None:
        pool = pools[type_]
        while n > 0 and pool:
            ask = pool.pop()
            if ask.fact is not None and id(ask.fact) in used:
                continue
            if ask.fact is not None:
                used.add(id(ask.fact))
            chosen.append(ask)
            n -= 1

    for type_ in ("multi-session", "temporal", "preference", "single-fact"):
        take(type_, quotas[type_])
    for type_ in TYPES:  # a player short of one type asks more of the others
        take(type_, per_player - len(chosen))
    templates = question_data()["questions"]
    held_out = paraphrases()
    other_rng = random.Random(f"memqa-paraphrase:{player.user}")  # the main questions' draws stay as they were
    out = []
    for n, ask in enumerate(sorted(chosen, key=lambda a: TYPES.index(a.type))):
        other = "en" if player.lang == "ko" else "ko"
        lang = other if player.bilingual and rng.random() < OTHER_LANGUAGE_ASKS else player.lang
        base = ask.kind.removeprefix("old_")
        text = fill(rng.choice(templates[base][lang]), ask.values[lang])
        reworded = {
            name: fill(other_rng.choice(words[base][lang]), ask.values[lang]) for name, words in held_out.items()
        }
        out.append(
            Question(
                id=f"{player.user}-{n:02d}",
                user=player.user,
                lang=lang,
                type=ask.type,
                kind=ask.kind,
                text=text,
                game=ask.game,
                support=ask.support,
                accept=ask.accept,
                reject=ask.reject,
                truth=ask.truth,
                reworded=reworded,
            )
        )
    return out
