"""Run a built-in game on its emulator, driven by its built-in player, and hand out frames with true state."""

from __future__ import annotations

from collections.abc import Iterator

from kibitz.core.config import SourceConfig
from kibitz.core.errors import SourceError
from kibitz.core.records import Frame
from kibitz.games.base import GameAdapter, GameEnv, Player
from kibitz.sources.base import FrameSource, Pacer


class EmulatorSource(FrameSource):
    """Steps the emulator at its native rate and yields every k-th frame (k = native fps / requested fps)."""

    name = "emulator"

    def __init__(
        self,
        game: GameAdapter,
        fps: float = 60.0,
        realtime: bool = True,
        seed: int = 0,
        game_over_hold_s: float = 3.0,
    ) -> None:
        self.game = game
        self.env: GameEnv = game.make_env()
        self.player: Player = game.make_player(seed)
        self.seed = seed
        self.skip = max(1, round(self.env.native_fps / fps))
        self.realtime = realtime
        self.hold_frames = int(game_over_hold_s * self.env.native_fps)
        self.native_frames = 0
        self.pacer: Pacer | None = None
        """The pacing of the frames being played (how late they came: a game starved of CPU falls behind)."""

    @classmethod
    def from_config(cls, config: SourceConfig, game: GameAdapter | None, seed: int) -> EmulatorSource:
        if game is None:
            raise SourceError("The emulator source needs a game; pass --game with an id from `kibitz games`.")
        return cls(game, fps=config.fps, realtime=config.realtime, seed=seed)

    def frames(self) -> Iterator[Frame]:
        env, fps = self.env, self.env.native_fps
        pacer = self.pacer = Pacer(fps, self.realtime)
        image = env.reset(self.seed)
        state = env.state()
        over_since: int | None = None
        i = 0
        while True:
            if i % self.skip == 0:
                yield Frame(t=i / fps, image=image, source=f"emulator:{self.game.id}", index=i, state=state)
            if env.finished:
                over_since = i if over_since is None else over_since
                if i - over_since >= self.hold_frames:  # show the game-over screen a moment, then play again
                    self.seed += 1
                    env.reset(self.seed)
                    over_since = None
            i += 1
            pacer.wait(i / fps)
            image = env.step(self.player.act(state, i))
            state = env.state()
            self.native_frames = i

    def close(self) -> None:
        self.env.close()
