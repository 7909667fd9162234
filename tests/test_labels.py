"""Numbers read by their on-screen labels: word boundaries, cur(max) and cur/max, captions above or under, glued
numbers split by where their captions sit; on boxes, and through the real OCR on drawn status bars."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from kibitz.core.config import PerceptionConfig
from kibitz.perception.labels import Label, char_centres, read_labelled
from kibitz.perception.ocr import TextBox


def box(text: str, x0: int, y0: int, x1: int, y1: int) -> TextBox:
    return TextBox(text, (x0, y0, x1, y1), 0.9)


def test_labels_match_whole_words_only() -> None:
    status = [
        box("St:18 Dx:12 Co:16 In:9 Wi:10 Ch:7 Neutral", 0, 0, 600, 16),
        box("Dlvl:2 $:0 HP:9(14) T:1042", 0, 20, 600, 36),
    ]
    assert read_labelled(status, {"turn": ["T"], "strength": ["St"], "depth": ["Dlvl"], "gold": ["$"]}) == {
        "turn": 1042,  # not the 18 of "St:18"
        "strength": 18,
        "depth": 2,
        "gold": 0,
    }
    assert read_labelled([box("Turn 5", 0, 0, 80, 16)], {"turn": ["T"]}) == {}  # "T" is not inside "Turn"
    assert read_labelled([box("hp 7", 0, 0, 80, 16)], {"hp": ["HP"]}) == {"hp": 7}  # case does not matter
    assert read_labelled([box("SHIP3", 0, 0, 80, 16)], {"hp": ["HP"]}) == {}


def test_current_and_maximum_and_percentages() -> None:
    line = [box("HP:12(15) Pw: 3/7 Armor 50%", 0, 0, 500, 16)]
    labels = {"hp": ["HP"], "hp_max": ["HP@max"], "pw": ["Pw"], "pw_max": ["Pw@max"], "armor": ["Armor"]}
    assert read_labelled(line, labels) == {"hp": 12, "hp_max": 15, "pw": 3, "pw_max": 7, "armor": 50}
    assert read_labelled([box("HP:12", 0, 0, 100, 16)], {"hp_max": ["HP@max"]}) == {}  # no pair, no maximum


def test_captions_above_and_under_their_numbers() -> None:
    bar = [
        box("87%", 100, 300, 150, 330),
        box("HEALTH", 90, 335, 160, 350),
        box("12", 300, 300, 330, 330),
        box("ARMS", 290, 335, 340, 350),
        box("LEVEL", 500, 300, 560, 315),
        box("4", 520, 320, 540, 345),
    ]
    labels = {"health": ["HEALTH@above"], "level": ["LEVEL@under"], "arms": ["ARMS@above"]}
    assert read_labelled(bar, labels) == {"health": 87, "level": 4, "arms": 12}
    assert read_labelled(bar, {"health": ["HEALTH@under"]}) == {}  # nothing under HEALTH
    with pytest.raises(ValueError, match="@left"):
        Label.parse("HP@left")
    with pytest.raises(ValidationError, match="LABEL@HOW"):
        PerceptionConfig(labels={"hp": ["HP@left"]})


def test_numbers_glued_by_ocr_are_split_by_their_captions() -> None:
    glued = [box("24100%", 40, 300, 260, 340), box("AMMO", 40, 345, 100, 360), box("HEALTH", 160, 345, 250, 360)]
    # The frame: dark, with the six characters drawn at their real places (two digits over AMMO, 100% over HEALTH).
    frame = np.zeros((400, 300, 3), np.uint8)
    for x0, x1 in ((50, 62), (68, 80), (165, 177), (185, 197), (205, 217), (225, 245)):
        frame[305:335, x0:x1] = 255
    assert [round(x) for x in char_centres(glued[0], frame)] == [56, 74, 171, 191, 211, 235]
    labels = {"ammo": ["AMMO@above"], "health": ["HEALTH@above"]}
    assert read_labelled(glued, labels, frame) == {"ammo": 24, "health": 100}
    # Without the frame each character takes an equal share of the box: here that gives the 1 to AMMO.
    assert read_labelled(glued, labels) == {"ammo": 241, "health": 0}


def _status_bar(values: dict[str, str], gap: int) -> np.ndarray:
    """A shooter-style status bar drawn with Pillow: big numbers over small captions."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (640, 120), (60, 60, 60))
    draw = ImageDraw.Draw(canvas)
    big, small = ImageFont.load_default(size=44), ImageFont.load_default(size=16)
    x = 20
    for caption, value in values.items():
        draw.text((x, 15), value, font=big, fill=(220, 30, 30))
        draw.text((x + 4, 80), caption, font=small, fill=(230, 230, 230))
        x += max(int(draw.textlength(value, font=big)), int(draw.textlength(caption, font=small))) + gap
    return np.asarray(canvas)


def test_a_drawn_status_bar_through_the_real_ocr() -> None:
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.perception.ocr import OCREngine

    engine = OCREngine()
    labels = {"ammo": ["AMMO@above"], "health": ["HEALTH@above"], "armor": ["ARMOR@above"]}
    for gap in (60, 12):  # well apart, then close enough that OCR may glue the numbers together
        image = _status_bar({"AMMO": "24", "HEALTH": "100%", "ARMOR": "7%"}, gap)
        assert read_labelled(engine.read(image), labels, image) == {"ammo": 24, "health": 100, "armor": 7}, gap


def test_captions_glued_together_are_taken_apart() -> None:
    # OCR read the bar's captions as one word with a stray letter between them, and one caption with a letter after it.
    bar = [box("20046%", 10, 0, 100, 20), box("AMMOOHEALTH", 5, 22, 115, 30), box("0%", 190, 0, 220, 20)]
    bar.append(box("ARMORO", 185, 22, 245, 30))
    labels = PerceptionConfig(layout="shooter").label_specs()
    assert read_labelled(bar, labels) == {"ammo": 200, "health": 46, "armor": 0}
    assert read_labelled([box("AMMOOHEALTH 12", 0, 0, 200, 16)], {"gold": ["MOO"]}) == {}  # short or not a caption


def test_a_caption_whose_number_detection_missed_gets_its_strip_read() -> None:
    pytest.importorskip("rapidocr", reason="install kibitz[vision] for OCR")
    from kibitz.perception.ocr import OCREngine

    engine = OCREngine()
    labels = {"ammo": ["AMMO@above"], "armor": ["ARMOR@above"]}
    image = _status_bar({"AMMO": "24", "ARMOR": "0%"}, 60)
    captions = [b for b in engine.read(image) if not any(ch.isdigit() for ch in b.text)]  # as if no number was found
    assert {b.text for b in captions} == {"AMMO", "ARMOR"}
    assert read_labelled(captions, labels, image) == {}
    assert read_labelled(captions, labels, image, engine.recognize) == {"ammo": 24, "armor": 0}


def test_built_in_layouts_read_a_roguelike_and_a_shooter() -> None:
    from kibitz.core.errors import ConfigError
    from kibitz.core.layouts import combine_labels, label_layouts

    for layout in label_layouts().values():  # every label of every layout is one the reader takes
        assert layout.about and all(Label.parse(spec) for specs in layout.labels.values() for spec in specs)
    rogue = PerceptionConfig(layout="roguelike").label_specs()
    lines = [
        box("Agent the Stripling St:16 Dx:14 Co:17 In:8 Wi:11 Ch:9 Lawful", 0, 0, 700, 16),
        box("Dlvl:3 $:41 HP:9(14) Pw:2(5) AC:6 Xp:2/27 T:1042", 0, 20, 700, 36),
    ]
    assert read_labelled(lines, rogue) == {
        "depth": 3,  # a level field: level changes come with it
        "gold": 41,
        "hp": 9,
        "max_hp": 14,
        "power": 2,
        "max_power": 5,
        "ac": 6,
        "level": 2,
        "turn": 1042,
    }
    misread = [box("Divl:4 $:0 HP:3(14)", 0, 0, 300, 16)]  # OCR took Dlvl's l for an i
    assert read_labelled(misread, rogue)["depth"] == 4
    assert read_labelled([box("AMM0 12", 0, 0, 90, 16)], {"ammo": ["AMMO"]}) == {"ammo": 12}
    bar = [box("24", 40, 300, 80, 330), box("87%", 160, 300, 220, 330), box("12%", 400, 300, 450, 330)]
    bar += [box("AMMO", 30, 335, 90, 350), box("HEALTH", 150, 335, 230, 350), box("ARMOR", 390, 335, 460, 350)]
    assert read_labelled(bar, PerceptionConfig(layout="shooter").label_specs()) == {
        "ammo": 24,
        "health": 87,
        "armor": 12,
    }
    # A field of the player's own replaces the layout's; more labels (an added game's) come last.
    mine = PerceptionConfig(layout="shooter", labels={"health": ["HP"]}).label_specs({"keys": ["KEYS@above"]})
    assert mine["health"] == ["HP"] and mine["keys"] == ["KEYS@above"] and mine["ammo"] == ["AMMO@above"]
    with pytest.raises(ValidationError, match=r"no label layout 'rpg'.*roguelike, shooter"):
        PerceptionConfig(layout="rpg")
    with pytest.raises(ConfigError, match="roguelike, shooter"):
        combine_labels("rpg")
