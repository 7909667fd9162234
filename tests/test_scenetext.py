"""Scenes named by the screen's text: short banners in English and Korean, never sentences or help bars; through
the real OCR on drawn cards, and only until the picture cuts away."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kibitz.core.records import Frame
from kibitz.perception.ocr import TextBox
from kibitz.perception.scenetext import is_card, scene_in_text


@pytest.mark.parametrize(
    ("lines", "scene"),
    [
        (["GAME OVER", "SCORE 1200"], "game_over"),
        (["Game  Over"], "game_over"),
        (["YOU DIED"], "death"),
        (["PAUSED"], "pause"),
        (["NOW LOADING..."], "loading"),
        (["PRESS START", "© 1985"], "menu"),
        (["게임 오버"], "game_over"),
        (["사망했습니다"], "death"),
        (["일시정지"], "pause"),
        (["I paused for a second before the door"], None),  # a sentence, not a banner
        (["P: pause  M: map  Esc: menu  F5: save"], None),  # a help bar
        (["Overgame", "Pausebreak"], None),  # not whole words
        ([], None),
    ],
)
def test_banners_name_scenes(lines: list[str], scene: str | None) -> None:
    assert scene_in_text(lines) == scene


@pytest.mark.parametrize(
    ("lines", "card", "scene"),
    [
        (["MARIO", "WORLD", "TIME", "WORLD 1-1", "x 3"], True, "loading"),  # a level card: a screen of text
        (["WORLD1-1"], True, "loading"),  # OCR dropped the space
        (["STAGE 2"], True, "loading"),
        (["스테이지 3"], True, "loading"),
        (["WORLD 1-1"], False, None),  # the same words over the play: a HUD, not a card
        (["LEVEL 3"], False, None),
        (["LEVEL 3 SCORE 1200"], True, None),  # not the whole line
        (["MARIO", "WORLD", "TIME", "1-1"], True, None),  # a HUD's caption and value on two lines
        (["SUPER MARIO BROS.", "1 PLAYER GAME", "2 PLAYER GAME"], False, "menu"),
        (["CONTINUE? 9"], False, "game_over"),
        (["Continue", "New Game"], False, "menu"),  # a title menu's items, no question
    ],
)
def test_level_cards_name_their_scene_only_on_a_screen_of_text(lines: list[str], card: bool, scene: str | None) -> None:
    assert scene_in_text(lines, card) == scene


def _card(text: str, background: np.ndarray | None = None, sprite: bool = False) -> tuple[np.ndarray, TextBox]:
    """The text drawn on black (or on `background`), a little sprite beside it with `sprite`; and the text's box."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (640, 360), (0, 0, 0)) if background is None else Image.fromarray(background)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=48)
    draw.text((150, 150), text, font=font, fill=(255, 255, 255))
    if sprite:  # the player's little figure beside "× 3" on a level card
        draw.rectangle((60, 150, 91, 181), fill=(200, 60, 20))
    x0, y0, x1, y1 = (round(v) for v in draw.textbbox((150, 150), text, font=font))
    return np.asarray(canvas), TextBox(text, (x0, y0, x1, y1), 1.0)


def test_a_card_is_text_and_little_else() -> None:
    card, box = _card("WORLD 1-1", sprite=True)
    assert is_card(card, [box])
    assert not is_card(card, [])  # no text read: nothing says it is a card
    pictured = card.copy()
    pictured[200:320, 400:520] = (90, 140, 30)  # a picture beside the line (a boss's portrait, a map): not a card
    assert not is_card(pictured, [box])
    play = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    over_play, box = _card("WORLD 1-1", background=play)
    assert not is_card(over_play, [box])  # the same line over the play: a HUD, not a card
    white, box = _card("STAGE 2", background=np.full((360, 640, 3), 255, np.uint8))
    assert is_card(white, [box])  # any background colour


def _reader() -> Any:
    """Generic perception with no prototypes (the text alone names scenes), reading the text on the frame it is due."""
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.core.config import PerceptionConfig
    from kibitz.perception.classifier import PrototypeBank, ThumbnailEmbedder
    from kibitz.perception.pixels import GenericPerceiver

    embedder = ThumbnailEmbedder()
    bank = PrototypeBank.empty(embedder.name, embedder.dim)
    return GenericPerceiver(None, PerceptionConfig(ocr_inline=True), embedder=embedder, bank=bank)


def test_a_game_over_card_is_the_game_over_scene_until_the_picture_cuts_away() -> None:
    perceiver = _reader()
    rng = np.random.default_rng(0)
    play = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    assert perceiver.perceive(Frame(0.0, play, "test", 0)).scene != "game_over"
    card = perceiver.perceive(Frame(1.0, _card("GAME OVER")[0], "test", 1))  # a cut: read at once
    assert card.scene == "game_over" and "GAME OVER" in card.text
    # The player presses on: a new picture (a cut) whose text is read again and says nothing of a scene.
    again = perceiver.perceive(Frame(2.0, play, "test", 2))
    perceiver.close()
    assert again.scene != "game_over"


def test_a_level_card_on_a_screen_of_text_names_the_loading_scene() -> None:
    """Through the real OCR: "WORLD 1-1" on black with the player's figure beside it is a level card (loading), as
    the screen is text and little else, whatever the prototypes make of it; the same line over the play names no
    scene."""
    perceiver = _reader()
    play = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    try:
        assert perceiver.perceive(Frame(0.0, play, "test", 0)).scene != "loading"
        card = perceiver.perceive(Frame(1.0, _card("WORLD 1-1", sprite=True)[0], "test", 1))
        assert card.scene == "loading" and "WORLD 1-1" in card.text
        over = perceiver.perceive(Frame(2.0, _card("WORLD 1-1", background=play)[0], "test", 2))
        assert over.scene != "loading" and "WORLD 1-1" in over.text
    finally:
        perceiver.close()
