from kibitz.brain.postfilter import clean_line, line_complete, truncate


def test_interjections_do_not_use_up_the_sentence_budget() -> None:
    assert clean_line("Oh no! You were so close to that pipe. Try again.", "Kibi", 1) == (
        "Oh no! You were so close to that pipe."
    )


def test_role_prefix_quotes_and_stage_directions_are_removed() -> None:
    assert clean_line('Kibi: "Nice jump *claps* there, champ!"', "Kibi", 1) == "Nice jump there, champ!"
    assert clean_line("Assistant: Go go go, you got this!", "Kibi", 1) == "Go go go, you got this!"
    # A colon inside a sentence is not a role prefix.
    assert clean_line("Tip: hold B to run faster.", "Kibi", 1) == "Tip: hold B to run faster."


def test_word_cap_ends_on_a_sentence_when_it_can() -> None:
    long = "You are doing great out there today. " + "really " * 30 + "great."
    assert truncate(long, 3, 20) == "You are doing great out there today."
    assert len(truncate("word " * 50, 2, 20).split()) == 20


def test_line_complete() -> None:
    assert not line_complete("Oh no!", 1, 20)
    assert line_complete("Oh no! That goomba got you again.", 1, 20)
    assert line_complete("a " * 25, 3, 20)
