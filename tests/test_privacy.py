"""Personal data never reaches a memory or a log: 60 cases in English and Korean, and game text that must survive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kibitz.core.privacy import luhn, scrub, scrub_json

# (text the player typed or the screen showed, the secret that must not survive it)
PERSONAL = [
    ("my email is jane.doe@example.com", "jane.doe@example.com"),
    ("write to kim_minsu+games@mail.co.kr if you get stuck", "kim_minsu+games@mail.co.kr"),
    ("contact: bob (at) gmail.com", "bob (at) gmail.com"),
    ("Send it to ALICE.SMITH@WORK.ORG please", "ALICE.SMITH@WORK.ORG"),
    ("제 이메일은 minji.park@naver.com 이에요", "minji.park@naver.com"),
    ("연락은 hong-gildong@daum.net 으로", "hong-gildong@daum.net"),
    ("call me at 555-867-5309", "555-867-5309"),
    ("my number is (415) 555-2671", "(415) 555-2671"),
    ("text +1 415 555 2671 when you're online", "+1 415 555 2671"),
    ("phone: 020 7946 0958", "020 7946 0958"),
    ("UK mobile +44 7700 900123", "+44 7700 900123"),
    ("reach me on 555.123.4567", "555.123.4567"),
    ("my cell is 4155552671", "4155552671"),
    ("제 전화번호는 010-1234-5678이에요", "010-1234-5678"),
    ("핸드폰 010 9876 5432로 연락해", "010 9876 5432"),
    ("집 전화 02-312-4567", "02-312-4567"),
    ("+82 10-2345-6789로 문자 줘", "+82 10-2345-6789"),
    ("번호는 01055556666", "01055556666"),
    ("I live at 742 Evergreen Terrace", "742 Evergreen Terrace"),
    ("ship it to 1600 Pennsylvania Avenue", "1600 Pennsylvania Avenue"),
    ("my address is 221B Baker Street", "221B Baker Street"),
    ("we moved to 42 Wallaby Way, Apt 3", "42 Wallaby Way"),
    ("office at 350 Fifth Ave", "350 Fifth Ave"),
    ("my place is 12 Grimmauld Place", "12 Grimmauld Place"),
    ("1 Infinite Loop Dr. is where I work", "1 Infinite Loop Dr"),
    ("저는 서울특별시 강남구 테헤란로 152에 살아요", "테헤란로 152"),
    ("주소는 부산광역시 해운대구 해운대로 264", "해운대로 264"),
    ("성남시 분당구 판교역로 235로 와", "판교역로 235"),
    ("우리 집은 마포구 월드컵북로 396", "월드컵북로 396"),
    ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
    ("my visa is 4012888888881881", "4012888888881881"),
    ("mastercard 5555-5555-5555-4444", "5555-5555-5555-4444"),
    ("amex 3782 822463 10005", "3782 822463 10005"),
    ("카드번호 4111-1111-1111-1111 맞아?", "4111-1111-1111-1111"),
    ("제 카드 5105 1051 0510 5100 로 결제했어", "5105 1051 0510 5100"),
    ("account number 12345678", "12345678"),
    ("my bank account is 0123-456-789", "0123-456-789"),
    ("routing 021000021", "021000021"),
    ("IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
    ("pay to GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("my SSN is 078-05-1120", "078-05-1120"),
    ("계좌번호 110-123-456789 로 보내", "110-123-456789"),
    ("국민은행 계좌 123456-78-901234", "123456-78-901234"),
    ("주민번호 900101-1234567", "900101-1234567"),
    ("내 주민등록번호는 851203-2345678", "851203-2345678"),
    ("my password is hunter2", "hunter2"),
    ("Password: Tr0ub4dor&3", "Tr0ub4dor&3"),
    ("the wifi password is 'correct-horse-battery'", "correct-horse-battery"),
    ("login = xXgamerXx99", "xXgamerXx99"),
    ("my PIN is 4821", "4821"),
    ("passcode 778899 for the safe", "778899"),
    ("pwd: s3cr3t!", "s3cr3t!"),
    ("비밀번호는 qwer1234야", "qwer1234"),
    ("비번 dragon77 이야", "dragon77"),
    ("패스워드: P@ssw0rd!", "P@ssw0rd!"),
    ("암호는 사과나무123 입니다", "사과나무123"),
    ("email me at a.b@c.io or call 555-222-3333", "a.b@c.io"),
    ("email me at a.b@c.io or call 555-222-3333", "555-222-3333"),
    ("My steam login is ninja_kid and password is dr4gonSl4yer", "dr4gonSl4yer"),
    ("연락처 010-2222-3333, 메일 test@test.com", "010-2222-3333"),
]

# Text a game shows or a player says about a game: nothing in it is personal, and every number must survive.
GAME_TEXT = [
    "SCORE 123456 HI 987654",
    "WORLD 4-1 TIME 321",
    "level 2-2 again, I died 5 times",
    "HP:15(15) Pw:7(7) AC:4 Xp:1/20 T:1234",
    "Dlvl:3 $:120",
    "It's 12:30 and I'm on stage 3",
    "I got 99 coins and 3 lives",
    "Freedoom: ammo 50 health 100% armor 24",
    "My cat is called Nabi and I work as a nurse",
    "Defeated Bowser at 8-4 on 2024-11-30",
    "쿠파한테 자꾸 죽는다, 4-1에서 세 번",
    "점수 125000점, 남은 목숨 2개",
    "Press START 2 play",
    "The boss has 1200 HP and drops 500 gold",
    "x 1024 y 768, seed 20241130",
    "Bob's bank PIN is his cat's birthday.",
    "Wrong password, try again",
]


@pytest.mark.parametrize(("text", "secret"), PERSONAL)
def test_personal_data_is_removed(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned, cleaned
    assert "[" in cleaned  # a placeholder says something was there


def test_enough_cases_in_both_languages() -> None:
    korean = [t for t, _ in PERSONAL if any("\uac00" <= c <= "\ud7a3" for c in t)]
    assert len(PERSONAL) >= 50 and len(korean) >= 20


@pytest.mark.parametrize("text", GAME_TEXT)
def test_game_text_survives(text: str) -> None:
    assert scrub(text) == text


def test_luhn() -> None:
    assert luhn("4111 1111 1111 1111") and luhn("378282246310005")
    assert not luhn("4111 1111 1111 1112") and not luhn("1234")


def test_scrub_json_reaches_nested_strings() -> None:
    obj = {"kind": "event", "summary": "The player asked: my email is x@y.com", "data": {"text": ["call 555-867-5309"]}}
    assert "x@y.com" not in json.dumps(scrub_json(obj)) and "555-867-5309" not in json.dumps(scrub_json(obj))
    assert scrub_json({"t": 1.5, "n": None})["t"] == 1.5


def test_the_session_log_on_disk_keeps_no_personal_data(tmp_path: Path) -> None:
    from kibitz.core.records import Event, Utterance
    from kibitz.outputs.sinks import FileLog

    log = FileLog(tmp_path / "session.jsonl")
    log.event(Event(1.0, "question", 9, "The player asked: card 4111 1111 1111 1111 ok?", {"text": "pwd: s3cr3t!"}))
    log.done(Utterance(t=1.0, event_ids=[], trigger="question", text="Mail me at kim@naver.com"))
    log.close()
    written = (tmp_path / "session.jsonl").read_text(encoding="utf-8")
    assert "4111" not in written and "s3cr3t" not in written and "kim@naver.com" not in written
    assert "[card number]" in written and len(written.splitlines()) == 2
