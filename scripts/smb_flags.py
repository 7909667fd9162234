"""Measure where Super Mario Bros.' flagpoles stand: play the built-in player and print Mario's x (pixels from the
level's start) when he grabs each level's flag, and the furthest x reached in each level.

    .venv/bin/python scripts/smb_flags.py [--seeds 1,2,3] [--minutes 25]

The flag positions in src/kibitz/games/data/smb.knowledge.yaml (`flag_x`, what "how far through the level" is
measured against) come from this script.
"""

from __future__ import annotations

import argparse

from kibitz.games import get_game
from kibitz.games.smb import PSTATE_FLAGPOLE

MODE_PLAY = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--minutes", type=float, default=25.0)
    args = parser.parse_args()
    game = get_game("smb")
    flags: dict[str, int] = {}
    furthest: dict[str, int] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        env, player = game.make_env(), game.make_player(seed)
        env.reset(seed)
        for i in range(int(args.minutes * 60 * 60)):
            state = env.state()
            if state["mode"] == MODE_PLAY:
                level = f"{state['world']}-{state['stage']}"
                furthest[level] = max(furthest.get(level, 0), state["x"])
                if state["player_state"] == PSTATE_FLAGPOLE and level not in flags:
                    flags[level] = state["x"]
                    print(f"flag of {level} at x={state['x']} (seed {seed})", flush=True)
            env.step(player.act(state, i))
        env.close()
    print("flags:", flags)
    print("furthest:", furthest)


if __name__ == "__main__":
    main()
