"""The chess recorder: games played by python-chess and Stockfish, the board picture and the truth."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import numpy as np
import pytest

from kibitz.bench.recorders import chess as chess_recorder
from kibitz.bench.recorders.base import TrueFrame
from kibitz.bench.recorders.chess import BOARD_SIZE, ChessRecorder, stockfish_path
from kibitz.core.errors import KibitzError

chess = pytest.importorskip("chess")
pytest.importorskip("cairosvg")

needs_stockfish = pytest.mark.skipif(stockfish_path() is None, reason="Stockfish is not installed")

SEED = 0
SECONDS = 130.0  # seed 0's first game ends in checkmate at 124 s (ply 62)


def _run(seed: int, seconds: float) -> list[TrueFrame]:
    recorder = ChessRecorder()
    try:
        return list(recorder.frames(seed, seconds))
    finally:
        recorder.close()


@pytest.fixture(scope="module")
def run() -> list[TrueFrame]:
    if stockfish_path() is None:
        pytest.skip("Stockfish is not installed")
    return _run(SEED, SECONDS)


@pytest.fixture(scope="module")
def recorder() -> Iterator[ChessRecorder]:
    rec = ChessRecorder()
    yield rec
    rec.close()


def _scholars_mate(recorder: ChessRecorder) -> list[TrueFrame]:
    """Frames of a known game, made without the engine."""
    board = chess.Board()
    frames = [recorder._frame(0.0, board, None, None, 0)]
    for i, san in enumerate(["e4", "e5", "Qh5", "Nc6", "Bc4", "Nf6", "Qxf7#"], start=1):
        move = board.parse_san(san)
        last = (san, board.is_capture(move))
        board.push(move)
        frames.append(recorder._frame(i / ChessRecorder.fps, board, last, board.outcome(claim_draw=True), 0))
    return frames


def test_board_picture_and_truth_of_a_known_game(recorder: ChessRecorder) -> None:
    frames = _scholars_mate(recorder)
    for frame in frames:
        assert frame.image.shape == (BOARD_SIZE, BOARD_SIZE, 3) and frame.image.dtype == np.uint8
        assert frame.image.std() > 20, "a board, not a blank picture"
    assert not np.array_equal(frames[0].image, frames[1].image)
    assert not np.shares_memory(frames[0].image, frames[1].image)
    start, mate = frames[0], frames[-1]
    assert start.hud == {"to_move": "white", "move": 1} and start.events == [] and start.scene == "gameplay"
    assert frames[1].hud == {"to_move": "black", "move": 1} and frames[3].hud == {"to_move": "black", "move": 2}
    assert mate.events == ["capture", "check", "game_over"] and mate.scene == "game_over"
    assert mate.facts["result"] == "1-0" and mate.facts["last_move"] == "Qxf7#"
    assert mate.facts["material"]["black"]["pawn"] == 7 and mate.facts["material"]["white"]["queen"] == 1
    # The king in check is marked red on the picture: the mate frame has pixels the quiet start lacks.
    red = (mate.image[..., 0] > 200) & (mate.image[..., 1] < 80) & (mate.image[..., 2] < 80)
    assert red.sum() > 50


def test_questions_are_true_of_the_position(recorder: ChessRecorder) -> None:
    rng = random.Random(1)
    kinds = set()
    for frame in _scholars_mate(recorder) * 4:
        board = ChessRecorder.board_of(frame)
        assert board.fen() == frame.facts["fen"]
        qas = recorder.questions(frame, rng)
        assert 1 <= len(qas) <= 3
        for qa in qas:
            kinds.add(qa.kind)
            if qa.question == "Whose turn is it?":
                assert qa.answers == (frame.hud["to_move"],)
            elif qa.question.startswith("What piece is on "):
                square = chess.parse_square(qa.question.removeprefix("What piece is on ").rstrip("?"))
                piece = board.piece_at(square)
                assert piece is not None and qa.answers == (chess.piece_name(piece.piece_type),)
            elif qa.question.startswith("How many pawns does "):
                colour = qa.question.split()[4] == "white"
                assert qa.answers == (str(len(board.pieces(chess.PAWN, colour))),)
            else:
                assert qa.question == "Am I in check?" and qa.kind == "yes_no"
                assert qa.answers == ("yes" if board.is_check() else "no",)
    assert kinds == {"name", "count", "yes_no"}


@needs_stockfish
def test_same_seed_same_games_other_seed_other_games(run: list[TrueFrame]) -> None:
    again = _run(SEED, 30.0)
    for a, b in zip(run, again, strict=False):
        assert np.array_equal(a.image, b.image)
        assert (a.t, a.scene, a.hud, a.events, a.facts) == (b.t, b.scene, b.hud, b.events, b.facts)
    other = _run(SEED + 1, 30.0)
    assert [f.facts["fen"] for f in other] != [f.facts["fen"] for f in run[: len(other)]]


@needs_stockfish
def test_a_game_has_captures_checks_and_an_end(run: list[TrueFrame]) -> None:
    assert len(run) == int(SECONDS * ChessRecorder.fps) + 1
    assert all(f.t == i / ChessRecorder.fps for i, f in enumerate(run))
    assert any("capture" in f.events for f in run) and any("check" in f.events for f in run)
    ends = [i for i, f in enumerate(run) if "game_over" in f.events]
    assert ends, "the first game ends within the run"
    for prev, frame in itertools.pairwise(run):
        board = ChessRecorder.board_of(frame)
        assert board.fen() == frame.facts["fen"]
        assert frame.hud == {"to_move": "white" if board.turn else "black", "move": board.fullmove_number}
        assert ("check" in frame.events) == board.is_check()
        if board.move_stack:
            move = board.pop()
            assert ("capture" in frame.events) == board.is_capture(move)
            assert board.san(move) == frame.facts["last_move"]
            assert board.fen() == prev.facts["fen"]
    for i in ends:
        final = run[i]
        assert final.scene == "game_over" and ChessRecorder.board_of(final).is_game_over(claim_draw=True)
        assert final.facts["result"] in {"1-0", "0-1", "1/2-1/2"}
        if i + 1 < len(run):
            assert run[i + 1].facts["fen"] == chess.STARTING_FEN and run[i + 1].facts["game"] == final.facts["game"] + 1


@needs_stockfish
def test_advice_is_stockfish_top_moves_legal_and_repeatable(run: list[TrueFrame]) -> None:
    recorder = ChessRecorder()
    try:
        picks = [run[3], run[30], run[50]]
        keys = [recorder.advice(f) for f in picks]
        again = [recorder.advice(f) for f in reversed(picks)][::-1]
        assert keys == again, "the answer key does not depend on earlier searches"
        for frame, key in zip(picks, keys, strict=True):
            assert key is not None and key.kind == "chess_move" and key.question == "What's the best move here?"
            board = ChessRecorder.board_of(frame)
            assert 2 <= len(key.good) <= 6 and len(key.good) == 2 * len(key.facts["scores"])
            for san, uci in zip(key.good[::2], key.good[1::2], strict=True):
                assert (
                    board.parse_san(san) == chess.Move.from_uci(uci) and chess.Move.from_uci(uci) in board.legal_moves
                )
            scores = key.facts["scores"]
            assert scores == sorted(scores, reverse=True)
        final = next(f for f in run if f.scene == "game_over")
        assert recorder.advice(final) is None
    finally:
        recorder.close()


def test_missing_stockfish_is_a_kibitz_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chess_recorder, "stockfish_path", lambda: None)
    with pytest.raises(KibitzError, match="stockfish"):
        ChessRecorder().check_installed()
