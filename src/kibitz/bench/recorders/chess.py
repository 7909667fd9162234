"""Chess, with python-chess as the truth and Stockfish as the answer key for "what's the best move?".

python-chess and Stockfish are GPL-3: kibitz imports python-chess only inside these methods (it is an optional
package the user installs) and runs Stockfish as a separate program over UCI. Both sides are played by a
seeded mix of random moves (biased to captures, checks and mates, so games hold them) and shallow Stockfish
moves; the picture is python-chess's SVG board drawn by cairosvg.
"""

from __future__ import annotations

import importlib.util
import io
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kibitz.bench.recorders.base import QA, AdviceKey, Recorder, TrueFrame
from kibitz.core.errors import KibitzError
from kibitz.core.records import RGBImage

INSTALL_HINT = "pip install chess==1.11.2 cairosvg==2.9.1 and apt-get install stockfish"

BOARD_SIZE = 360
"""The picture is BOARD_SIZE × BOARD_SIZE pixels (coordinates in the margin)."""
MAX_PLIES = 120
"""A game still running after this many half-moves is abandoned for a new one."""
ENGINE_MOVE_SHARE = (0.5, 0.1)
"""How often the stronger and the weaker side of a game play Stockfish's move (at a shallow depth) instead of
a biased random one: the stronger side usually wins, so games end in mate, not only at MAX_PLIES."""
PLAY_DEPTHS = (2, 4, 6)
ADVICE_DEPTH, ADVICE_MOVES = 12, 3
MATE_SCORE = 100_000
"""Centipawns given to a forced mate (less the moves to it)."""

PIECE_NAMES = ("pawn", "knight", "bishop", "rook", "queen", "king")
"""By python-chess piece type (1-6)."""
PIECE_VALUES = (1, 3, 3, 5, 9, 0)


def stockfish_path() -> str | None:
    """The Stockfish program: on PATH, or where Debian installs it."""
    found = shutil.which("stockfish")
    if found:
        return found
    debian = Path("/usr/games/stockfish")
    return str(debian) if debian.is_file() else None


def material(board: Any) -> dict[str, dict[str, int]]:
    """Pieces of each kind on the board, per side."""
    import chess

    return {
        side: {name: len(board.pieces(kind, colour)) for kind, name in enumerate(PIECE_NAMES, start=1)}
        for side, colour in (("white", chess.WHITE), ("black", chess.BLACK))
    }


def render_board(board: Any) -> RGBImage:
    """The board as a player sees it: python-chess's SVG (last move and check marked) drawn to RGB pixels."""
    import cairosvg
    import chess.svg
    from PIL import Image

    lastmove = board.move_stack[-1] if board.move_stack else None
    check = board.king(board.turn) if board.is_check() else None
    svg = chess.svg.board(board, size=BOARD_SIZE, lastmove=lastmove, check=check, coordinates=True)
    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=BOARD_SIZE, output_height=BOARD_SIZE)
    with Image.open(io.BytesIO(png)) as picture:
        image: RGBImage = np.array(picture.convert("RGB"), dtype=np.uint8)
    return image


class ChessRecorder(Recorder):
    """A stream of chess games, one frame per position (a half-move every two seconds)."""

    game = "chess"
    title = "Chess"
    genre = "chess"
    fps = 0.5
    clip_fps = 0.5
    install_hint = INSTALL_HINT
    hud_labels: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self) -> None:
        self._engine: Any = None

    def check_installed(self) -> None:
        if importlib.util.find_spec("chess") is None:
            raise KibitzError(f"Chess needs the python-chess package, which is missing: {INSTALL_HINT}")
        try:
            import cairosvg  # noqa: F401 - it loads the cairo library, which may be missing too
        except (ImportError, OSError) as exc:
            raise KibitzError(f"Chess pictures need cairosvg and the cairo library ({exc}): {INSTALL_HINT}") from exc
        if stockfish_path() is None:
            raise KibitzError(f"Chess needs the Stockfish program, which is not installed: {INSTALL_HINT}")

    # -- the engine -----------------------------------------------------------------------------------------

    def engine(self) -> Any:
        """The recorder's one Stockfish process (started on first use, ended by close())."""
        if self._engine is None:
            import chess.engine

            path = stockfish_path()
            if path is None:
                raise KibitzError(f"Chess needs the Stockfish program, which is not installed: {INSTALL_HINT}")
            self._engine = chess.engine.SimpleEngine.popen_uci(path)
            # One thread and a small hash: with a fixed depth, the same position always gives the same answer.
            self._engine.configure({"Threads": 1, "Hash": 16})
        return self._engine

    def _search(self, board: Any, depth: int, multipv: int) -> list[Any]:
        import chess.engine

        # A new "game" for every search clears Stockfish's hash table, so no answer depends on earlier ones.
        infos = self.engine().analyse(board, chess.engine.Limit(depth=depth), multipv=multipv, game=object())
        return list(infos)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.quit()
            self._engine = None

    # -- play -----------------------------------------------------------------------------------------------

    def _choose(self, board: Any, rng: random.Random, strong: bool) -> Any:
        """A side's move: sometimes Stockfish's at a shallow depth (more often for the stronger side), else a
        random one that favours mates, captures (of more valuable pieces), checks and promotions."""
        if rng.random() < ENGINE_MOVE_SHARE[0 if board.turn == strong else 1]:
            infos = self._search(board, rng.choice(PLAY_DEPTHS), 1)
            if infos and infos[0].get("pv"):
                return infos[0]["pv"][0]
        moves = list(board.legal_moves)
        weights = []
        for move in moves:
            weight = 1.0
            if board.is_capture(move):
                captured = board.piece_type_at(move.to_square) or 1  # en passant takes a pawn
                weight += 2 + PIECE_VALUES[captured - 1]
            if board.gives_check(move):
                weight += 3
                board.push(move)
                if board.is_checkmate():
                    weight += 50
                board.pop()
            if move.promotion:
                weight += 5
            weights.append(weight)
        return rng.choices(moves, weights=weights)[0]

    def frames(self, seed: int, seconds: float) -> Iterator[TrueFrame]:
        self.check_installed()
        import chess

        rng = random.Random(f"chess:{seed}")
        board = chess.Board()
        last: tuple[str, bool] | None = None  # the last move in SAN, and whether it captured
        number = index = 0
        strong = rng.random() < 0.5  # the side (True: white) that plays the engine's moves more often
        while index / self.fps <= seconds:
            outcome = board.outcome(claim_draw=True)
            yield self._frame(index / self.fps, board, last, outcome, number)
            index += 1
            if outcome is not None or board.ply() >= MAX_PLIES:
                board, last, number = chess.Board(), None, number + 1
                strong = rng.random() < 0.5
                continue
            move = self._choose(board, rng, strong)
            last = (board.san(move), board.is_capture(move))
            board.push(move)

    def _frame(self, t: float, board: Any, last: tuple[str, bool] | None, outcome: Any, number: int) -> TrueFrame:
        events = []
        if last is not None and last[1]:
            events.append("capture")
        if board.is_check():
            events.append("check")
        if outcome is not None:
            events.append("game_over")
        facts: dict[str, Any] = {
            "fen": board.fen(),
            "last_move": last[0] if last else None,
            "moves": " ".join(move.uci() for move in board.move_stack),
            "material": material(board),
            "game": number,
        }
        if outcome is not None:
            facts["result"] = outcome.result()
            facts["termination"] = outcome.termination.name.lower()
        hud = {"to_move": "white" if board.turn else "black", "move": board.fullmove_number}
        scene = "game_over" if outcome is not None else "gameplay"
        return TrueFrame(t, render_board(board), scene, hud, events, facts)

    # -- questions and advice -------------------------------------------------------------------------------

    @staticmethod
    def board_of(frame: TrueFrame) -> Any:
        """The position of a frame, with its move history (for repetitions) where the facts have it."""
        import chess

        board = chess.Board()
        moves = frame.facts.get("moves", "")
        for uci in moves.split():
            board.push_uci(uci)
        if not moves and frame.facts.get("fen"):
            board = chess.Board(frame.facts["fen"])
        return board

    def questions(self, frame: TrueFrame, rng: random.Random) -> list[QA]:
        import chess

        board = self.board_of(frame)
        side = rng.choice(("white", "black"))
        pawns = len(board.pieces(chess.PAWN, side == "white"))
        square = rng.choice(sorted(board.piece_map()))
        piece = board.piece_at(square)
        assert piece is not None
        qas = [
            QA("Whose turn is it?", ("white" if board.turn else "black",), "name", ("white", "black")),
            QA(
                f"What piece is on {chess.square_name(square)}?",
                (PIECE_NAMES[piece.piece_type - 1],),
                "name",
                PIECE_NAMES,
            ),
            QA(f"How many pawns does {side} have?", (str(pawns),), "count"),
            QA("Am I in check?", ("yes" if board.is_check() else "no",), "yes_no", ("yes", "no")),
        ]
        rng.shuffle(qas)
        return qas[:3]

    def advice(self, frame: TrueFrame) -> AdviceKey | None:
        board = self.board_of(frame)
        if board.is_game_over(claim_draw=True):
            return None
        good: list[str] = []
        scores: list[int] = []
        best: list[str] = []
        for info in self._search(board, ADVICE_DEPTH, ADVICE_MOVES):
            pv = info.get("pv")
            if not pv:
                continue
            move = pv[0]
            san = board.san(move)
            good += [san, move.uci()]
            best.append(san)
            scores.append(int(info["score"].relative.score(mate_score=MATE_SCORE)))
        if not good:
            return None
        facts = {"scores": scores, "top_moves": best, "fen": board.fen(), "depth": ADVICE_DEPTH}
        return AdviceKey("chess_move", tuple(good), "What's the best move here?", facts)
