"""Measure where Super Mario Bros.' flagpoles stand: play the built-in player and print Mario's x (pixels from the
level's start) when he grabs each level's flag, and the furthest x reached in each level.

    .venv/bin/python scripts/smb_flags.py [--seeds 1,2,3] [--minutes 25]

The flag positions in src/kibitz/games/data/smb.knowledge.yaml (`flag_x`, what "how far through the level" is
measured against) come from this script.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from kibitz.games import get_game
from kibitz.games.smb import PSTATE_FLAGPOLE

MODE_PLAY = 1


def play(seeds: str, minutes: float) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(seed, level, RAM state) of every frame of play (not the title or transitions) of the built-in player's runs."""
    game = get_game("smb")
    for seed in (int(s) for s in seeds.split(",")):
        env, player = game.make_env(), game.make_player(seed)
        env.reset(seed)
        try:
            for i in range(int(minutes * 60 * 60)):
                state = env.state()
                if state["mode"] == MODE_PLAY:
                    yield seed, f"{state['world']}-{state['stage']}", state
                env.step(player.act(state, i))
        finally:
            env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--minutes", type=float, default=25.0)
    args = parser.parse_args()
    flags: dict[str, int] = {}
    furthest: dict[str, int] = {}
    for seed, level, state in play(args.seeds, args.minutes):
        furthest[level] = max(furthest.get(level, 0), state["x"])
        if state["player_state"] == PSTATE_FLAGPOLE and level not in flags:
            flags[level] = state["x"]
            print(f"flag of {level} at x={state['x']} (seed {seed})", flush=True)
    print("flags:", flags)
    print("furthest:", furthest)


if __name__ == "__main__":
    main()
