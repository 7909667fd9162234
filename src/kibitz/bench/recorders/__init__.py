"""Real games with ground truth for the bench, by id (imported lazily: each needs its own game package)."""

from kibitz.bench.recorders.base import EVENT_TYPES, QA, RECORDERS, SCORED_EVENTS, AdviceKey, Recorder, TrueFrame

RECORDERS.register("smb", "kibitz.bench.recorders.emulated:SMBRecorder", "Super Mario Bros. (NES platformer)")
for _atari in ("breakout", "space_invaders", "seaquest", "ms_pacman", "riverraid", "asteroids", "freeway"):
    RECORDERS.register(_atari, f"kibitz.bench.recorders.emulated:atari_recorder_{_atari}", "Atari 2600 arcade")
RECORDERS.register("pong", "kibitz.bench.recorders.emulated:PongRecorder", "Pong (Atari 2600; no kibitz assets)")
RECORDERS.register(
    "doom", "kibitz.bench.recorders.doom:DoomRecorder", "Freedoom through ViZDoom (first-person shooter)"
)
RECORDERS.register("crafter", "kibitz.bench.recorders.crafter:CrafterRecorder", "Crafter (survival/crafting)")
RECORDERS.register("nethack", "kibitz.bench.recorders.nethack:NetHackRecorder", "NetHack through MiniHack (roguelike)")
RECORDERS.register("chess", "kibitz.bench.recorders.chess:ChessRecorder", "Chess with Stockfish as the answer key")

__all__ = ["EVENT_TYPES", "QA", "RECORDERS", "SCORED_EVENTS", "AdviceKey", "Recorder", "TrueFrame"]
