"""Scenes named by the screen's text: short banners in English and Korean, never sentences or help bars; through
the real OCR on drawn cards, and only until the picture cuts away."""

from __future__ import annotations

import numpy as np
import pytest

from kibitz.perception.scenetext import scene_in_text


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


def _card(text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (640, 360), (0, 0, 0))
    ImageDraw.Draw(canvas).text((150, 150), text, font=ImageFont.load_default(size=48), fill=(255, 255, 255))
    return np.asarray(canvas)


def test_a_game_over_card_is_the_game_over_scene_until_the_picture_cuts_away() -> None:
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.core.config import PerceptionConfig
    from kibitz.core.records import Frame
    from kibitz.perception.classifier import PrototypeBank, ThumbnailEmbedder
    from kibitz.perception.pixels import GenericPerceiver

    embedder = ThumbnailEmbedder()
    perceiver = GenericPerceiver(
        None,
        PerceptionConfig(ocr_inline=True),
        embedder=embedder,
        bank=PrototypeBank.empty(embedder.name, embedder.dim),
    )
    rng = np.random.default_rng(0)
    play = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    assert perceiver.perceive(Frame(0.0, play, "test", 0)).scene != "game_over"
    card = perceiver.perceive(Frame(1.0, _card("GAME OVER"), "test", 1))  # a cut: read at once
    assert card.scene == "game_over" and "GAME OVER" in card.text
    # The player presses on: a new picture (a cut) whose text is read again and says nothing of a scene.
    again = perceiver.perceive(Frame(2.0, play, "test", 2))
    perceiver.close()
    assert again.scene != "game_over"
