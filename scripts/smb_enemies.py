"""Measure which enemies Super Mario Bros.' levels hold: play the built-in player and record, per level, the enemy
object ids in the active enemy slots (RAM $0F-$13 active flags, $16-$1A ids), named as in the SMB disassembly.

    .venv/bin/python scripts/smb_enemies.py [--seeds 101,102,...] [--minutes 5]

The `present` table in src/kibitz/games/data/smb.knowledge.yaml (a tip about an enemy is not offered in a measured
level without it) comes from this script, on seeds 101-108 (never the bench's or kibitz's learning seeds: 0-11).
Only the part of a level the player reached is seen; the furthest x per level is printed beside it.
"""

from __future__ import annotations

import argparse

from smb_flags import play

from kibitz.games.smb import knowledge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="101,102,103,104,105,106,107,108")
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    names: dict[int, str] = knowledge()["enemies"]
    seen: dict[str, set[str]] = {}
    furthest: dict[str, int] = {}
    last_seed = None
    for seed, level, state in play(args.seeds, args.minutes):
        if seed != last_seed and last_seed is not None:
            print(f"seed {last_seed}: levels {sorted(seen)}", flush=True)
        last_seed = seed
        furthest[level] = max(furthest.get(level, 0), state["x"])
        seen.setdefault(level, set()).update(names[k] for k in state["enemy_ids"] if k in names)
    print("present:")
    for level in sorted(seen):
        print(f'  "{level}": [{", ".join(sorted(seen[level]))}]    # up to x={furthest[level]}')


if __name__ == "__main__":
    main()
