"""Game adapters: how to run each game, read its true state, and which events matter in it."""

from kibitz.games.base import GAMES, GameAdapter, get_game

GAMES.register("smb", "kibitz.games.smb:SuperMarioBros", "Super Mario Bros. (NES, cynes emulator)")
GAMES.register("breakout", "kibitz.games.atari:Breakout", "Breakout (Atari 2600, ale-py)")
GAMES.register("space_invaders", "kibitz.games.atari:SpaceInvaders", "Space Invaders (Atari 2600, ale-py)")
GAMES.register("seaquest", "kibitz.games.atari:Seaquest", "Seaquest (Atari 2600, ale-py)")
GAMES.register("ms_pacman", "kibitz.games.atari:MsPacman", "Ms. Pac-Man (Atari 2600, ale-py)")
GAMES.register("freeway", "kibitz.games.atari:Freeway", "Freeway (Atari 2600, ale-py)")
GAMES.register("riverraid", "kibitz.games.atari:Riverraid", "River Raid (Atari 2600, ale-py)")
GAMES.register("asteroids", "kibitz.games.atari:Asteroids", "Asteroids (Atari 2600, ale-py)")

__all__ = ["GAMES", "GameAdapter", "get_game"]
