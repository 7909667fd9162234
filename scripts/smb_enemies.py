"""Measure which enemies Super Mario Bros.' levels hold: play the built-in player and record, per level, the enemy
object ids in the active enemy slots (RAM $0F-$13 active flags, $16-$1A ids), named as in the SMB disassembly.

    .venv/bin/python scripts/smb_enemies.py [--seeds 101,102,...] [--minutes 5]

The `present` table in src/kibitz/games/data/smb.knowledge.yaml (a tip about an enemy is not offered in a measured
level without it) comes from this script, on seeds 101-108 (never the bench's or kibitz's learning seeds: 0-11).
Only the part of a level the player reached is seen; the furthest x per level is printed beside it.
"""

from __future__ import annotations

import argparse

from kibitz.games import get_game
from kibitz.games.smb import knowledge

MODE_PLAY = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="101,102,103,104,105,106,107,108")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    game = get_game("smb")
    names: dict[int, str] = knowledge()["enemies"]
    seen: dict[str, set[str]] = {}
    furthest: dict[str, int] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        env, player = game.make_env(), game.make_player(seed)
        env.reset(seed)
        for i in range(int(args.minutes * 60 * 60)):
            state = env.state()
            if state["mode"] == MODE_PLAY:
                level = f"{state['world']}-{state['stage']}"
                furthest[level] = max(furthest.get(level, 0), state["x"])
                seen.setdefault(level, set()).update(names[k] for k in state["enemy_ids"] if k in names)
            env.step(player.act(state, i))
        env.close()
        print(f"seed {seed}: levels {sorted(seen)}", flush=True)
    print("present:")
    for level in sorted(seen):
        print(f'  "{level}": [{", ".join(sorted(seen[level]))}]    # up to x={furthest[level]}')


if __name__ == "__main__":
    main()
