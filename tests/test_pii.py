"""PII detection and redaction (genmagic.safety.pii): each type found and validated, tricky
negatives left alone, redaction modes, offsets, and the labelled evaluation set."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from genmagic.errors import GenmagicError
from genmagic.safety.pii import PII_TYPES, PiiMatch, Redactor, find_pii, redact


def _load_bench() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "pii_eval.py"
    spec = importlib.util.spec_from_file_location("pii_eval", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pii_eval = _load_bench()


def found(text: str) -> list[tuple[str, str]]:
    return [(m.type, m.value) for m in find_pii(text)]


POSITIVES = [
    ("email", "Write to Jane.Doe+billing@mail.example.co.uk today.", "Jane.Doe+billing@mail.example.co.uk"),
    ("email", "<ops_team99@example.org>", "ops_team99@example.org"),
    ("phone", "Call +44 20 7946 0958 after six.", "+44 20 7946 0958"),
    ("phone", "US office (415) 555-2671, ask for Sam.", "(415) 555-2671"),
    ("phone", "Festnetz 089 1234567 (Mo-Fr).", "089 1234567"),
    ("phone", "Mumbai desk +91 98765 43210.", "+91 98765 43210"),
    ("phone", "Tokyo +81 3-1234-5678 or", "+81 3-1234-5678"),
    ("phone", "São Paulo +55 11 91234-5678.", "+55 11 91234-5678"),
    ("phone", "From abroad dial 0044 20 7946 0958.", "0044 20 7946 0958"),
    ("phone", "call me on 2025550173", "2025550173"),
    ("credit_card", "Visa 4111 1111 1111 1111 exp 12/26", "4111 1111 1111 1111"),
    ("credit_card", "Amex 3782 822463 10005, thanks", "3782 822463 10005"),
    ("credit_card", "MC 5555-5555-5555-4444.", "5555-5555-5555-4444"),
    ("credit_card", "Discover 6011111111111117 on file", "6011111111111117"),
    ("credit_card", "JCB 3530111333300000", "3530111333300000"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 EUR", "DE89 3704 0044 0532 0130 00"),
    ("iban", "pay GB82WEST12345698765432.", "GB82WEST12345698765432"),
    ("iban", "compte FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "rekening NL91ABNA0417164300", "NL91ABNA0417164300"),
    ("us_ssn", "SSN 536-22-8726 on the W-2", "536-22-8726"),
    ("us_ssn", "ssn 536 22 8726", "536 22 8726"),
    ("us_ssn", "Social security number: 536228726.", "536228726"),
    ("ip_address", "login from 203.0.113.42 failed", "203.0.113.42"),
    ("ip_address", "client=192.168.1.10:8080", "192.168.1.10"),
    ("ip_address", "peer 2001:db8::1 up", "2001:db8::1"),
    ("ip_address", "link-local fe80::1%eth0 and", "fe80::1%eth0"),
    ("ip_address", "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ip_address", "loopback ::1 only", "::1"),
]


@pytest.mark.parametrize(("kind", "text", "value"), POSITIVES)
def test_each_type_is_found_with_its_span(kind: str, text: str, value: str) -> None:
    assert found(text) == [(kind, value)]
    (m,) = find_pii(text)
    assert text[m.start : m.end] == value and 0 < m.score <= 1


NEGATIVES = [
    "Upgraded to version 1.2.3.4 last night.",
    "Requires v1.2.3 or Python 3.11.4; v2.0.1.3 is next.",
    "Windows build version 10.0.19041.1 has the bug.",
    "pip install pkg==1.2.3.4 and firmware 2.1.0.3",
    "Release 1.0.0.0 candidate; the 10.0.0.1 version of the spec",
    "Git tag v1.2.3.4-rc1 and 3.4.5.6-beta",
    "Versions 1.0.0, 1.0.1 and 1.1.0.0 are examples.",
    "See section 4.2.1.3 and article 12.3.4.5; OID 1.3.6.1.4.1.311",
    "Due 2024-03-15, paid 15/03/2024, file 20240315_notes.md, 12.03.2024",
    "Backups at 02:15:33 and 23:59:59.999, meeting 14:45",
    "ISBN 978-3-16-148410-0, ISBN-10 0-306-40615-2, 9780596520687",
    "Cite 0-306-40615-2 (2nd ed.)",
    "Your order #4111111111111111 has shipped.",
    "Your confirmation code is 4556 7375 8689 9855",
    "tracking 1Z999AA10123456784, USPS 9400111899223856928499",
    "Invoice no. 2024-000123 for 1,299.99 USD",
    "request_id=123e4567-e89b-12d3-a456-426614174000",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "Office at 40.7128, -74.0060 and 51°30′N 0°7′W",
    "Revenue $4,512,000.00, up 12.5%; €1.234.567,89",
    "SKU 555-0123-44 and model 800-555-12",
    "ZIP 94107-1234, PLZ 80331, 10115 Berlin",
    "Ids 483920174, 9928374651, 1029384756",
    "Card-shaped but not Luhn: 4111 1111 1111 1112",
    "IBAN-shaped with a bad checksum: DE88 3704 0044 0532 0130 00",
    "Not issued: 000-12-3456, 666-12-3456, 912-34-5678",
    "Nine digits without context 536228726",
    "Bad host 300.1.2.3 and 1.2.3.4.5",
    "MAC 00:1A:2B:3C:4D:5E; a[::2]; std::vector; localhost:8888",
    "assets/logo@2x.png and icon@home.svg",
    "IMEI 490154203237518 and 35-209900-176148-1",
    "Population 8,336,817 (2022 est.); 6.022e23",
    "Bank routing number 021000021; the version is 1.2.3.4",
    ">>> '{:,}'.format(1234567890)",
    "'01      012     0123    01234'",
    "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36",
    'the HTML5 spec sections "8.2.4.44 Bogus comment state"',
    "zip(indexes[::2], indexes[1::2]); x[0::2]; a[::1]; re.split(':+', 'a::bc')",
    "git clone git@github.com:org/repo.git",
    "hashes = [-678966196, -1745215313, 811136751]; f(-2147483646)",
    "('2020-06-01T04:05:06.111111-04:00', 0x3ff0000000000000, 1b68144734c4b)",
    "67 -18 -83 -61 -86 28 37 -44 7 -1 64 -51 10 16 -58 54 -10 49 62 7 88 -17 -37 -85 91 4 36 -77",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_tricky_negatives_are_not_pii(text: str) -> None:
    assert found(text) == []


def test_ip_lists_and_ranges_are_addresses_but_version_lists_are_not() -> None:
    assert found("hosts 10.0.0.1, 10.0.0.2") == [("ip_address", "10.0.0.1"), ("ip_address", "10.0.0.2")]
    assert found("scan 10.0.0.1-10.0.0.254") == [("ip_address", "10.0.0.1"), ("ip_address", "10.0.0.254")]
    assert found("Safari/537.36 from 198.51.100.7, nginx/1.25.3") == [("ip_address", "198.51.100.7")]
    assert found("upgraded 2.3.4 to 2.3.4.5; tested 1.0.0, 1.0.1 and 1.1.0.0") == []


def test_odd_groupings_and_number_tables_are_not_phones_or_cards() -> None:
    # Valid German digits in a grouping nobody writes, without a phone word before them.
    assert found("values 0642 7928 7 and") == []
    assert found("call 0642 7928 7") == [("phone", "0642 7928 7")]
    # Luhn-valid with a Visa prefix, but no card is printed 3-3-7.
    assert found("values 429-170-3896184 in the table") == []
    assert found("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 " * 50) == []


def test_phone_spans_stop_before_an_extension_and_between_numbers() -> None:
    assert found("+1 415-555-2671 ext. 123") == [("phone", "+1 415-555-2671")]
    assert found("+44 7911 123456 / +44 20 7946 0958") == [("phone", "+44 7911 123456"), ("phone", "+44 20 7946 0958")]
    assert found("020 7946 0958 - 020 7946 0959") == [("phone", "020 7946 0958"), ("phone", "020 7946 0959")]


def test_many_values_in_one_text_are_all_found() -> None:
    text = "a@example.com, +44 20 7946 0958, 10.0.0.1; " * 300
    counts = {t: sum(m.type == t for m in find_pii(text)) for t in ("email", "phone", "ip_address")}
    assert counts == {"email": 300, "phone": 300, "ip_address": 300}


def test_pure_documentation_prose_has_no_pii() -> None:
    from pydoc_data.topics import topics

    prose = "\n\n".join(topics[k] for k in sorted(topics))
    assert find_pii(prose) == []


def test_luhn_valid_isbn13_is_not_a_card() -> None:
    # This ISBN-13 passes Luhn, but no card issuer uses 978.
    from stdnum import isbn, luhn

    assert luhn.is_valid("9788124158685") and isbn.is_valid("9788124158685")
    assert found("ISBN 9788124158685") == [] and found("Book 9788124158685 and 978-81-241-5868-5") == []


def test_adjacent_and_overlapping_values_are_reported_once_each() -> None:
    text = "jane@example.com,+44 20 7946 0958;4111111111111111 DE89370400440532013000"
    assert found(text) == [
        ("email", "jane@example.com"),
        ("phone", "+44 20 7946 0958"),
        ("credit_card", "4111111111111111"),
        ("iban", "DE89370400440532013000"),
    ]
    # Digits inside an e-mail address or an IBAN are not a second phone number.
    assert found("mail 4155552671@example.com") == [("email", "4155552671@example.com")]
    spans = [(m.start, m.end) for m in find_pii(text)]
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_offsets_are_character_offsets_in_unicode_text() -> None:
    text = "Grüße 👋🏽 von Zoë — Tel. +49 30 901820, E-Mail zoë.x@exämple.de? nein: иван@пример.рф ✓"
    matches = find_pii(text)
    assert [(m.type, m.value) for m in matches] == [
        ("phone", "+49 30 901820"),
        ("email", "zoë.x@exämple.de"),
        ("email", "иван@пример.рф"),
    ]
    for m in matches:
        assert text[m.start : m.end] == m.value


def test_types_and_regions_narrow_the_search() -> None:
    text = "jane@example.com or 089 1234567"
    assert found(text) == [("email", "jane@example.com"), ("phone", "089 1234567")]
    assert [m.type for m in find_pii(text, types=["email"])] == ["email"]
    # A German national number needs the DE region; +CC numbers need none.
    assert find_pii(text, types=["phone"], regions=["US"]) == []
    assert len(find_pii("+49 89 1234567", types=["phone"], regions=[])) == 1


def test_unknown_type_or_region_is_a_one_line_error() -> None:
    with pytest.raises(GenmagicError, match=r"'passport'.*email, phone"):
        find_pii("x", types=["passport"])
    with pytest.raises(ValueError, match="'XX'"):
        find_pii("x", regions=["XX"])


TEXT = "Ask jane@example.com or JANE@EXAMPLE.COM; call +44 20 7946 0958 or +442079460958; bob@example.org"


def test_placeholders_are_stable_per_value_across_calls() -> None:
    r = Redactor()
    assert r.redact(TEXT) == "Ask <EMAIL_1> or <EMAIL_1>; call <PHONE_1> or <PHONE_1>; <EMAIL_2>"
    assert r.redact("later: bob@example.org, +44 20 7946 0958, ann@example.net") == (
        "later: <EMAIL_2>, <PHONE_1>, <EMAIL_3>"
    )
    assert r.mapping == {
        "<EMAIL_1>": "jane@example.com",
        "<PHONE_1>": "+44 20 7946 0958",
        "<EMAIL_2>": "bob@example.org",
        "<EMAIL_3>": "ann@example.net",
    }
    # A fresh redactor numbers from 1 again.
    assert Redactor().redact("ann@example.net") == "<EMAIL_1>"


def test_placeholders_can_be_undone_with_the_mapping() -> None:
    text = "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-8726, host 10.0.0.7"
    r = Redactor()
    out = r.redact(text)
    assert out == "Card <CREDIT_CARD_1>, IBAN <IBAN_1>, SSN <US_SSN_1>, host <IP_ADDRESS_1>"
    assert re.sub(r"<[A-Z_]+_\d+>", lambda m: r.mapping[m.group()], out) == text


def test_mask_keeps_length_separators_and_last_four() -> None:
    text = "Card 4111-1111-1111-1111, mail jane.doe@example.com, tel +44 20 7946 0958, ip 10.0.0.7"
    out = redact(text, "mask")
    assert out == "Card ****-****-****-1111, mail j*******@e******.com, tel +** ** **** 0958, ip **.*.*.*"
    assert len(out) == len(text)
    assert redact("IBAN DE89 3704 0044 0532 0130 00", "mask") == "IBAN DE** **** **** **** **30 00"
    assert redact("SSN 536-22-8726", "mask") == "SSN ***-**-8726"


def test_hash_is_salted_and_stable() -> None:
    a = Redactor("hash", salt=b"s1")
    out = a.redact(TEXT)
    tokens = re.findall(r"<([A-Z_]+):([0-9a-f]{8})>", out)
    assert [t for t, _ in tokens] == ["EMAIL", "EMAIL", "PHONE", "PHONE", "EMAIL"]
    assert tokens[0] == tokens[1] and tokens[2] == tokens[3] and tokens[0] != tokens[4]
    assert Redactor("hash", salt=b"s1").redact(TEXT) == out
    assert Redactor("hash", salt=b"s2").redact(TEXT) != out
    assert Redactor("hash").redact(TEXT) != Redactor("hash").redact(TEXT)  # a random salt each
    assert a.mapping[f"<EMAIL:{tokens[0][1]}>"] == "jane@example.com"


def test_redact_uses_the_matches_given() -> None:
    text = "jane@example.com and 10.0.0.7"
    only_ip = [m for m in find_pii(text) if m.type == "ip_address"]
    assert Redactor().redact(text, only_ip) == "jane@example.com and <IP_ADDRESS_1>"
    assert Redactor().redact(text, []) == text
    handmade = PiiMatch("email", 0, 4, "jane", 1.0)
    assert Redactor().redact(text, [handmade]) == "<EMAIL_1>@example.com and 10.0.0.7"


def test_bad_mode_names_the_value_and_the_valid_modes() -> None:
    with pytest.raises(ValueError, match=r"'blur'.*placeholder, mask, hash"):
        Redactor("blur")
    with pytest.raises(GenmagicError):
        redact("x", mode="Mask")


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_eval_set_meets_the_targets(split: str) -> None:
    result = pii_eval.evaluate(split=split)
    assert result["overall"]["precision"] >= 0.95, result["errors"][:5]
    assert result["overall"]["recall"] >= 0.95, result["errors"][:5]
    for kind in PII_TYPES:
        assert result["types"][kind]["labelled"] > 0


def test_eval_set_has_enough_rows_of_each_kind() -> None:
    import json

    rows = [json.loads(line) for line in pii_eval.DEFAULT_SET.read_text(encoding="utf-8").splitlines()]
    positives = [r for r in rows if r["pii"]]
    assert len(positives) >= 200 and len(rows) - len(positives) >= 200
    for r in positives:
        for p in r["pii"]:
            assert p["type"] in PII_TYPES and 0 <= p["start"] < p["end"] <= len(r["text"])


def test_evaluate_counts_misses_and_false_alarms(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(
        '{"text": "mail jane@example.com", "pii": [{"type": "email", "start": 5, "end": 21}]}\n'
        '{"text": "version 1.2.3.4", "pii": [{"type": "ip_address", "start": 8, "end": 15}]}\n'
        '{"text": "host 10.0.0.7", "pii": []}\n',
        encoding="utf-8",
    )
    result = pii_eval.evaluate(path)
    assert result["types"]["email"] == {"precision": 1.0, "recall": 1.0, "found": 1, "labelled": 1}
    assert result["types"]["ip_address"] == {"precision": 0.0, "recall": 0.0, "found": 1, "labelled": 1}
    assert result["overall"]["precision"] == 0.5 and len(result["errors"]) == 2


def test_throughput_is_measured_on_a_corpus_with_pii() -> None:
    text = pii_eval._corpus(0.05)
    assert len(text) >= 50_000 and find_pii(text)
    assert pii_eval.throughput_mb_s(text=text) > 0


def test_importing_pii_imports_no_ml_framework() -> None:
    code = "import sys, genmagic.safety.pii; print([m for m in ('torch', 'transformers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
