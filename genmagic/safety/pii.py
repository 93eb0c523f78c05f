"""PII detection and redaction, validated rather than pattern-only.

``find_pii(text)`` finds e-mail addresses, phone numbers, payment card numbers, IBANs, US social
security numbers and IP addresses. A cheap regular expression proposes candidates and a maintained
validator confirms each one:

- phone: ``phonenumbers`` (``PhoneNumberMatcher`` at ``Leniency.VALID``). Numbers written with
  ``+CC`` (or an international call prefix such as ``0044``) need no region; national formats are
  tried for each of ``DEFAULT_REGIONS``. A national number must also be grouped the way its region
  writes numbers (``Leniency.STRICT_GROUPING``: ``020 7946 0958``, not ``0642 7928 7``), and one
  written as bare digits (no separator, no ``+``) is a phone only after a phone word ("call",
  "tel", "mobile", ...), so order numbers and dates such as ``20240315`` pass. Dates, ZIP+4 codes,
  decimals, dotted quads, hyphenated ISBNs and tab-aligned columns are not phones.
- credit_card: ``stdnum.luhn`` plus a card length and issuer prefix (Visa, Mastercard, Amex,
  Discover, Diners, JCB, UnionPay, Maestro, Mir), bare or printed in groups (a first group of four,
  then groups of 4 to 6: 4-4-4-4, 4-6-5). ISBN-13s (978/979...) and IMEIs (15 digits, 35/86/01...)
  can pass Luhn but carry no issuer prefix of that length, so they are not cards.
- iban: ``stdnum.iban`` (mod-97, the country's length and BBAN structure; not the extra national
  checks, which reject well-known sample IBANs), compact or printed in groups of four, either case.
- us_ssn: ``stdnum.us.ssn`` (area not 000/666/9xx, group not 00, serial not 0000, not the three
  advertised numbers such as 078-05-1120). ``AAA-GG-SSSS`` or ``AAA GG SSSS`` anywhere; nine bare
  digits only after "SSN" / "social security" / "social".
- ip_address: ``ipaddress`` validates IPv4 (no leading zeros) and IPv6 (compressed forms, ``%zone``;
  a lone ``::1`` only outside slice brackets). An IPv4-shaped value is a *version*, not an address,
  when it is prefixed by ``v``/``V``, a version operator (``==``, ``>=``, ``~=``, ``^``) or a
  product token (``Chrome/``); follows a version or section word ("version", "release", "build",
  "firmware", "Python", "section", ... optionally with "is"); is followed by "version"/"release";
  continues with more dotted numbers (``1.3.6.1.4.1``); carries a pre-release suffix (``-rc1``,
  ``-beta``, ``+build``); or sits in a list next to a three-part version ("1.0.0, 1.0.1 and
  1.1.0.0"). Anything else that ``ipaddress`` accepts is an address, private ranges included.
- email: an RFC 5322-ish address with an alphabetic top-level domain (file names such as
  ``icon@2x.png`` are not addresses).

A number right after a label such as "Order #", "Invoice no.", "Tracking", "ISBN", "IMEI", "SKU",
"routing number", "confirmation code is" is an identifier of that kind and is not reported as a
card, phone, SSN or IP address (IBANs identify themselves and are always reported).

Speed: each detector scans with one simple expression (e-mail and IPv6 only in windows around
``@`` and ``:``), validators run only on candidates, and the phone matcher only on runs with a
phone's shape (7 to 17 digits in at most 7 groups), so prose is scanned at several MB/s and dense or
hostile input stays linear.

Overlaps are resolved by type (email, iban, credit_card, us_ssn, ip_address, phone) and then by
length, so a phone-shaped run inside an IBAN or an e-mail address is reported once, as the IBAN or
the address.

``Redactor`` replaces what was found with a typed placeholder (``<EMAIL_1>``), a mask that keeps the
length, separators and last four digits, or a salted hash (``<EMAIL:3f9a1c2b>``); ``mapping`` keeps
what each placeholder or hash stands for, so the user can undo it locally.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as _iban
from stdnum import isbn as _isbn
from stdnum import luhn as _luhn
from stdnum.us import ssn as _ssn

from genmagic.errors import OptionError

PII_TYPES = ("email", "phone", "credit_card", "iban", "us_ssn", "ip_address")
# Regions whose national formats are tried (international +CC numbers need none): the US (and the
# rest of the NANP), the UK, Germany, France, India, Spain, Italy, the Netherlands, Australia,
# Brazil and Japan. Each extra region finds more national numbers and also lets more digit runs
# through (Mexico's, for one, would add a tenth more false alarms on random 3-3-4 digit runs).
DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IN", "ES", "IT", "NL", "AU", "BR", "JP")
MODES = ("placeholder", "mask", "hash")

# Which type wins where two candidates overlap (earlier wins).
_PRIORITY = {"email": 0, "iban": 1, "credit_card": 2, "us_ssn": 3, "ip_address": 4, "phone": 5}


@dataclass(frozen=True)
class PiiMatch:
    """One piece of PII: its type, ``text[start:end]`` and a confidence in 0..1."""

    type: str
    start: int
    end: int
    value: str
    score: float


# ---------------------------------------------------------------- candidates

# Letters may be any script's (RFC 6531 local parts, internationalised domain names).
_EMAIL_RE = re.compile(
    r"[\w!#$%&'*+/=?^`{|}~-][\w.!#$%&'*+/=?^`{|}~-]{0,63}"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
# File extensions that look like top-level domains in "name@2x.png" or "icon@home.svg".
_FILE_SUFFIXES = frozenset(
    ["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "txt", "json", "yaml",
     "yml", "toml", "csv", "tsv", "js", "ts", "css", "html", "htm", "py", "ipynb", "log", "zip", "gz", "tar",
     "mp3", "mp4", "wav"]
)
# Digit groups joined by single spaces or dashes: cards, SSNs.
_DIGIT_RUN_RE = re.compile(r"\d+(?:[ \-]\d+)*")
_IBAN_RE = re.compile(r"[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32}")
_IPV4_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_IPV6_RE = re.compile(
    r"(?:[0-9A-Fa-f]{1,4})?::?(?:[0-9A-Fa-f]{1,4}::?){0,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[0-9A-Za-z_.]+)?"
)
# Runs that could hold a phone number (with a "+" or "(" before them): 7 to 25 digits joined by
# at most two separators at a time, so " / " or " - " between two numbers ends a run, and a long
# table of numbers is cut into short pieces.
_PHONE_RUN_RE = re.compile(r"\d(?:[ \t().\-/]{0,2}\d){6,24}")
_RUN_GOES_ON_RE = re.compile(r"[ \t().\-/]{0,2}\d")
_RUN_WENT_ON_RE = re.compile(r"\d[ \t().\-/]{0,2}$")
_DOTTED_QUAD_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_NOT_PHONE_RUN_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\d+\.\d+")  # dotted quads, decimals

# A label right before a number that says what kind of identifier it is.
_ID_LABEL_RE = re.compile(
    r"(?:\b(?:isbn(?:-?1[03])?|issn|imei|meid|iccid|order|invoice|inv|tracking|track|shipment|parcel|awb|"
    r"po|sku|upc|ean|gtin|part|serial|s/n|sn|ref|reference|ticket|case|claim|policy|model|item|batch|lot|"
    r"transaction|txn|receipt|confirmation|booking|reservation|pnr|doi|arxiv|pmid|patent|asin|vin|"
    r"zip|postcode|postal|routing|aba|swift|bic|sort\s*code)"
    r"(?:\s*(?:no\.?|nr\.?|num\.?|number|#|id|code))?|\b(?:id|code))(?:\s+(?:is|was))?\s*[:#=.-]?\s*$",
    re.IGNORECASE,
)
_VERSION_WORD_RE = re.compile(
    r"(?:\b(?:v|ver|vers|version|versions|release|rel|build|revision|rev|firmware|fw|patch|update|"
    r"upgrade|upgraded|downgrade|tag|sdk|kernel|driver|bios|python|java|chrome|firefox|"
    r"windows|android|ios|macos|section|sec|chapter|clause|figure|fig|table|step|paragraph|"
    r"para|article|art|appendix|annex|oid|snmp|mib)s?\.?(?:\s+(?:is|was|now|number|no\.?|string|id))?\s*[:=]?\s*[\"'(]?"
    r"|(?:==|>=|<=|~=|!=|\^|~|[vV]))$",
    re.IGNORECASE,
)
_VERSION_AFTER_RE = re.compile(r"\s*(?:version|release|build|update|patch|firmware)\b", re.IGNORECASE)
_LIST_SEP = r"(?:\s*,\s*|\s*/\s*|\s+(?:and|or|to|->|→)\s+)"
_SEMVER_BEFORE_RE = re.compile(r"(?<![\d.])\d+\.\d+\.\d+" + _LIST_SEP + "$")
_SEMVER_AFTER_RE = re.compile(_LIST_SEP + r"\d+\.\d+\.\d+(?![\d.])")
_PRERELEASE_RE = re.compile(r"(?:-(?:rc|alpha|beta|dev|pre|post|snapshot|final|ga|lts)|\+[0-9A-Za-z])", re.IGNORECASE)
_PHONE_WORD_RE = re.compile(
    r"\b(?:phone|ph|tel|telephone|call|called|calling|mobile|mob|cell|cellphone|contact|reach|text|sms|"
    r"whatsapp|fax|dial|ring|hotline|number)\b[^\n\d]{0,20}$",
    re.IGNORECASE,
)
_SSN_WORD_RE = re.compile(
    r"\b(?:ssn|ss#|ss no|social security|social|soc\.? sec\.?|ssa|tin|taxpayer)\b[^\n\d]{0,25}$", re.IGNORECASE
)

# Card issuer prefixes (inclusive ranges over the leading digits) and the lengths each issues.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (300, 305, frozenset({14, 16, 17, 18, 19})),  # Diners Club
    (36, 36, frozenset({14, 16, 17, 18, 19})),
    (38, 39, frozenset({14, 16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (50, 50, frozenset({16, 19})),  # Maestro (it issues 12 to 19 digits, but nearly all are 16 or 19)
    (56, 58, frozenset({16, 19})),
    (6304, 6304, frozenset({16, 17, 18, 19})),
    (6759, 6759, frozenset({16, 17, 18, 19})),
    (6761, 6763, frozenset({16, 17, 18, 19})),
    (2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
)


def _is_card(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2 or not _luhn.is_valid(digits):
        return False
    for low, high, lengths in _CARD_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


def _label_before(text: str, start: int) -> bool:
    """Whether an identifier label ("Order #", "ISBN", "IMEI: ") sits right before ``start``."""
    return _ID_LABEL_RE.search(text[max(0, start - 40) : start]) is not None


def _bounded(text: str, start: int, end: int) -> bool:
    """``text[start:end]`` is a whole token: no letter, digit, ``-_/`` next to it, and no ``.`` or
    ``,`` that continues a number (``1.5``) on either side."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or after.isalnum() or before in "-_/" or after in "-_/":
        return False
    if before in ".," and start > 1 and text[start - 2].isdigit():
        return False
    return not (after in ".," and end + 1 < len(text) and text[end + 1].isdigit())


# ---------------------------------------------------------------- detectors


def _windows(text: str, char: str, before: int, after: int, inner: str) -> Iterator[tuple[int, int]]:
    """Spans from ``before`` characters before each ``char`` to ``after`` characters after it,
    merged where they overlap; a span never starts inside a token (alphanumerics and ``inner``)."""
    n, pos = len(text), text.find(char)
    while pos != -1:
        lo, hi = max(0, pos - before), min(n, pos + after)
        nxt = text.find(char, pos + 1)
        while nxt != -1 and nxt - before <= hi:
            hi, nxt = min(n, nxt + after), text.find(char, nxt + 1)
        while 0 < lo < pos and (text[lo - 1].isalnum() or text[lo - 1] in inner):
            lo += 1
        yield lo, hi
        pos = nxt


def _emails(text: str) -> Iterator[PiiMatch]:
    for lo, hi in _windows(text, "@", 64, 256, "!#$%&'*+/=?^_`{|}~.-"):
        for m in _EMAIL_RE.finditer(text, lo, hi):
            start, end = m.span()
            at = text.index("@", start)
            while text[start] in ".-+=" and start < at:  # punctuation before a local part is not in it
                start += 1
            local, domain = text[start:at], text[at + 1 : end]
            before = text[start - 1] if start > 0 else " "
            if before.isalnum() or before in "._%+-@" or ".." in local or local.endswith("."):
                continue
            if domain.rsplit(".", 1)[-1].lower() in _FILE_SUFFIXES:
                continue
            if text[end : end + 1] == ":" and text[end + 1 : end + 2] not in ("", " ", "\n"):  # git@host:repo
                continue
            yield PiiMatch("email", start, end, text[start:end], 0.95)


def _groups(run: str) -> list[tuple[int, int, str]]:
    """(start, end, separator before) of each digit group in a run."""
    out, pos = [], 0
    for piece in re.finditer(r"\d+", run):
        out.append((piece.start(), piece.end(), run[pos : piece.start()]))
        pos = piece.end()
    return out


def _cards_and_ssns(text: str, types: Collection[str]) -> Iterator[PiiMatch]:
    want_card, want_ssn = "credit_card" in types, "us_ssn" in types
    for run in _DIGIT_RUN_RE.finditer(text):
        s = run.group()
        if len(s) < 9:
            continue
        base = run.start()
        groups = _groups(s)
        if len(groups) > 12:
            continue
        found: list[tuple[int, int]] = []
        if want_card:
            found = list(_card_spans(text, base, groups))
            for a, b in found:
                yield PiiMatch("credit_card", a, b, text[a:b], 0.95)
        if want_ssn:
            for a, b, score in _ssn_spans(text, base, groups):
                if not any(a < fb and fa < b for fa, fb in found):
                    yield PiiMatch("us_ssn", a, b, text[a:b], score)


def _card_spans(text: str, base: int, groups: list[tuple[int, int, str]]) -> Iterator[tuple[int, int]]:
    """Card numbers among consecutive groups joined by one separator (longest first)."""
    n = len(groups)
    used = -1
    for i in range(n):
        for j in range(n - 1, i - 1, -1):
            if base + groups[i][0] < used:
                break
            seps = {groups[k][2] for k in range(i + 1, j + 1)}
            if len(seps) > 1:
                continue
            # A printed card starts with four digits, then groups of 4 to 6 (4-4-4-4, Amex 4-6-5,
            # Diners 4-6-4, 13 digits 4-4-4-1, 19 digits 4-4-4-4-3).
            sizes = [groups[k][1] - groups[k][0] for k in range(i, j + 1)]
            if j > i and (sizes[0] != 4 or any(not 4 <= size <= 6 for size in sizes[1:-1]) or sizes[-1] > 6):
                continue
            a, b = base + groups[i][0], base + groups[j][1]
            digits = re.sub(r"\D", "", text[a:b])
            if len(digits) > 19:
                continue
            if len(digits) < 13:
                break
            if _is_card(digits) and _bounded(text, a, b) and not _label_before(text, a):
                used = b
                yield a, b
                break


def _ssn_spans(text: str, base: int, groups: list[tuple[int, int, str]]) -> Iterator[tuple[int, int, float]]:
    n = len(groups)
    for i in range(n):
        a = base + groups[i][0]
        if i + 2 < n and [g[1] - g[0] for g in groups[i : i + 3]] == [3, 2, 4]:
            sep = groups[i + 1][2]
            joined_left = i > 0 and groups[i][2] == sep
            joined_right = i + 3 < n and groups[i + 3][2] == sep
            b = base + groups[i + 2][1]
            if sep == groups[i + 2][2] and not joined_left and not joined_right and _valid_ssn(text, a, b):
                context = _SSN_WORD_RE.search(text[max(0, a - 60) : a]) is not None
                yield a, b, 0.95 if context else 0.85
        if groups[i][1] - groups[i][0] == 9 and n == 1:
            b = base + groups[i][1]
            if _SSN_WORD_RE.search(text[max(0, a - 60) : a]) and _valid_ssn(text, a, b):
                yield a, b, 0.8


def _valid_ssn(text: str, a: int, b: int) -> bool:
    digits = re.sub(r"\D", "", text[a:b])
    return _bounded(text, a, b) and _ssn.is_valid(digits) and not _label_before(text, a)


def _valid_iban(candidate: str) -> bool:
    """mod-97, the country's length and BBAN layout. The national checks some countries add
    (a Belgian account's own mod-97, bank registries) are left out: they reject real test IBANs."""
    try:
        _iban.validate(candidate, check_country=False)
    except ValueError:
        return False
    return True


def _ibans(text: str) -> Iterator[PiiMatch]:
    pos = 0
    while (m := _IBAN_RE.search(text, pos)) is not None:
        start, pos = m.start(), m.start() + 1
        if start > 0 and text[start - 1].isalnum():
            continue
        chunks = m.group().split(" ")
        # The run may swallow following words ("... 0130 00 EUR"): try shorter runs of chunks.
        for k in range(len(chunks), 0, -1):
            candidate = " ".join(chunks[:k])
            end = start + len(candidate)
            if end < len(text) and text[end].isalnum():
                continue
            if len(candidate.replace(" ", "")) < 15:
                break
            if _valid_iban(candidate):
                yield PiiMatch("iban", start, end, candidate, 0.99)
                pos = end
                break


def _is_version(text: str, start: int, end: int, nearby: bool = True) -> bool:
    """An IPv4-shaped value that is a version or section number (see the module docstring)."""
    before = text[max(0, start - 30) : start]
    if _VERSION_WORD_RE.search(before):
        return True
    if before.endswith(("v.", "V.")) or re.search(r"[A-Za-z]/$", before):  # "Chrome/120.0.0.0"
        return True
    after = text[end : end + 10]
    if re.match(r"\.\d", after) or _PRERELEASE_RE.match(after):
        return True
    if _VERSION_AFTER_RE.match(text, end):
        return True
    # In a list of versions ("1.0.0, 1.0.1 and 1.1.0.0"): a three-part version is its neighbour.
    if not nearby:
        return False
    return bool(_SEMVER_BEFORE_RE.search(text, max(0, start - 40), start) or _SEMVER_AFTER_RE.match(text, end))


def _ipv4s(text: str) -> Iterator[PiiMatch]:
    for m in _IPV4_RE.finditer(text):
        start, end = m.span()
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        if before.isalnum() or before in "._" or after.isalnum() or after == "_":
            continue
        if before == "-" and not text[start - 2 : start - 1].isdigit():  # "-1.2.3.4", but a range "a-b" is fine
            continue
        if after == "." and end + 1 < len(text) and text[end + 1].isdigit():
            continue
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if _is_version(text, start, end) or _label_before(text, start):
            continue
        yield PiiMatch("ip_address", start, end, m.group(), 0.85)


def _ipv6_shaped(text: str, start: int, end: int) -> bool:
    """At least two groups, a digit among them, and not only short decimal groups around ``::``,
    so slices (``a[::2]``, ``a[1::2]``) and words (``a::bc``) are not addresses; the loopback ``::1`` on its own, or in brackets with a port
    (``[::1]:8080``)."""
    value = text[start:end]
    groups = [g for g in value.split("%")[0].split(":") if g]
    if not any(ch.isdigit() for g in groups for ch in g):  # words: "a::bc", "dead::beef"
        return False
    if "::" in value and all(len(g) <= 2 and g.isdigit() for g in groups):  # a slice "[1::2]", "12::30"
        return value == "::1" and (text[start - 1 : start] != "[" or text[end : end + 2] == "]:")
    return len(groups) >= 2


def _ipv6s(text: str) -> Iterator[PiiMatch]:
    for lo, hi in _windows(text, ":", 40, 80, ":.%_"):
        for m in _IPV6_RE.finditer(text, lo, hi):
            start, end = m.span()
            value = m.group()
            before = text[start - 1] if start > 0 else " "
            after = text[end] if end < len(text) else " "
            if before.isalnum() or before in ":_." or after.isalnum() or after in ":_":
                continue
            if value.count(":") < 2 or not _ipv6_shaped(text, start, end):
                continue
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                continue
            yield PiiMatch("ip_address", start, end, value, 0.9)


def _phones(text: str, regions: Sequence[str], taken: Sequence[PiiMatch]) -> Iterator[PiiMatch]:
    """Phone numbers in runs of digits and phone separators, skipping runs that ``taken`` (what the
    other detectors found) covers."""
    last_end = -1
    kept = _resolve(list(taken))  # sorted, not overlapping
    starts = [m.start for m in kept]
    for run in _PHONE_RUN_RE.finditer(text):
        r0, r1 = run.span()
        if r0 > 0 and text[r0 - 1] in "+(":
            r0 -= 1
        if r0 < last_end or not _phone_shaped(run.group()):
            continue
        before, after = text[r0 - 1 : r0], text[r1 : r1 + 1]
        if before.isalpha() or before == "_" or after.isalpha() or after == "_":
            continue  # part of a word, a hex string or a hash
        if re.match(r"\d:", text[r0 - 2 : r0]) or re.match(r":\d", text[r1 : r1 + 2]):
            continue  # part of a time ("04:05:06.111111-04:00")
        if _RUN_GOES_ON_RE.match(text, r1) or _RUN_WENT_ON_RE.search(text, max(0, r0 - 3), r0):
            continue  # a piece of a longer sequence of numbers (a table, a list of integers)
        i = bisect.bisect_right(starts, r0 + (text[r0] in "+(")) - 1
        if i >= 0 and r1 <= kept[i].end:  # inside an IBAN, a card, an address...
            continue
        # Give the matcher a little context on each side; it checks the characters around a number.
        lo, hi = max(0, r0 - 8), min(len(text), r1 + 8)
        window = text[lo:hi]
        found: dict[tuple[int, int], float] = {}
        for region in regions or ("ZZ",):  # ZZ: no region, +CC numbers only
            for pm in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID):
                a, b = lo + pm.start, min(lo + pm.end, r1)  # without an extension ("ext. 123") after the run
                if (a, b) in found or b <= r0 or a >= r1:
                    continue
                raw = pm.raw_string
                international = raw.startswith(("+", "00")) or pm.number.country_code_source in (
                    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
                    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
                )
                if not _phone_ok(text, a, b, raw, international):
                    continue
                # Valid digits in an odd grouping ("0642 7928 7"): a phone only after a phone word.
                odd = not international and not _bare(raw) and not _grouped(window, region, pm.start)
                if odd and not _PHONE_WORD_RE.search(text[max(0, a - 40) : a]):
                    continue
                found[(a, b)] = 0.9 if international else 0.75
            # An international number reads the same in every region: one pass is enough.
            if text[r0] == "+" and any(a <= r0 and r1 <= b for a, b in found):
                break
        for (a, b), score in sorted(found.items()):
            last_end = max(last_end, b)
            yield PiiMatch("phone", a, b, text[a:b], score)


def _bare(raw: str) -> bool:
    """Digits with no separator inside (brackets or a sign around them do not count)."""
    return raw.strip("()[]-. ").isdigit()


def _phone_shaped(run: str) -> bool:
    """7 to 17 digits in at most 7 groups, at most two of them single digits, not a decimal or
    a dotted quad: a cheap test before the matcher reads the run once per region."""
    groups = re.findall(r"\d+", run)
    digits = sum(len(g) for g in groups)
    if not 7 <= digits <= 17 or len(groups) > 7 or sum(len(g) == 1 for g in groups) > 2:
        return False
    return _NOT_PHONE_RUN_RE.fullmatch(run) is None


def _grouped(window: str, region: str, start: int) -> bool:
    """Whether the number at ``start`` is grouped the way ``region`` writes its numbers (digits of
    a group may be run together, a group is never split)."""
    strict = phonenumbers.Leniency.STRICT_GROUPING
    return any(pm.start == start for pm in phonenumbers.PhoneNumberMatcher(window, region, leniency=strict))


def _phone_ok(text: str, a: int, b: int, raw: str, international: bool) -> bool:
    if _label_before(text, a) or _is_version(text, a, b, nearby=False) or _DOTTED_QUAD_RE.fullmatch(raw):
        return False
    if re.search(r"\s\s|\t", raw):  # tab-aligned columns of numbers
        return False
    if _bare(raw):  # bare digits: only after a phone word
        return _PHONE_WORD_RE.search(text[max(0, a - 40) : a]) is not None
    if not international and re.fullmatch(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}|\d{5}-\d{4}", raw):  # a date, a ZIP+4
        return False
    # A hyphenated ISBN ("0-306-40615-2") is a book, not a phone.
    return international or raw.count("-") < 3 or not _isbn.is_valid(raw)


def find_pii(
    text: str, *, types: Collection[str] = PII_TYPES, regions: Sequence[str] = DEFAULT_REGIONS
) -> list[PiiMatch]:
    """The PII in ``text``, sorted by start and non-overlapping.

    ``types`` limits the search to some of ``PII_TYPES``; ``regions`` are the ``phonenumbers``
    regions (ISO 3166 codes) whose national formats are tried.
    """
    if isinstance(types, str):
        types = (types,)
    unknown = [t for t in types if t not in PII_TYPES]
    if unknown:
        raise OptionError(f"unknown PII type {unknown[0]!r}: use some of {', '.join(PII_TYPES)}")
    bad = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if bad:
        raise OptionError(f"unknown phone region {bad[0]!r}: use ISO 3166 codes such as 'US', 'GB', 'DE'")
    candidates: list[PiiMatch] = []
    if "email" in types and "@" in text:
        candidates.extend(_emails(text))
    if "iban" in types:
        candidates.extend(_ibans(text))
    if "credit_card" in types or "us_ssn" in types:
        candidates.extend(_cards_and_ssns(text, types))
    if "ip_address" in types:
        candidates.extend(_ipv4s(text))
        if "::" in text or text.count(":") >= 2:
            candidates.extend(_ipv6s(text))
    if "phone" in types:
        candidates.extend(_phones(text, regions, candidates))
    return _resolve(candidates)


def _resolve(candidates: list[PiiMatch]) -> list[PiiMatch]:
    """Keep the higher-priority (then the longer) of overlapping candidates."""
    starts: list[int] = []  # of the kept matches, which never overlap: sorted by start and by end
    kept: list[PiiMatch] = []
    for c in sorted(candidates, key=lambda m: (_PRIORITY[m.type], m.start - m.end, m.start)):
        i = bisect.bisect_right(starts, c.start)
        if (i > 0 and kept[i - 1].end > c.start) or (i < len(kept) and kept[i].start < c.end):
            continue
        starts.insert(i, c.start)
        kept.insert(i, c)
    return kept


# ---------------------------------------------------------------- redaction


def _normalise(kind: str, value: str) -> str:
    if kind in ("phone", "credit_card", "us_ssn"):
        return re.sub(r"\D", "", value)
    if kind == "iban":
        return value.replace(" ", "").upper()
    return value.lower()


def _mask(kind: str, value: str) -> str:
    """``value`` with its letters and digits starred, keeping length and separators.

    Cards, phones, IBANs and SSNs keep their last four digits (``**** **** **** 1111``), an IBAN
    also its country code (``DE** **** **** **** **30 00``); an e-mail address keeps the first
    letter of the local part and of each domain label, and the top-level domain
    (``j***@e******.com``); an IP address is starred whole (``***.***.*.**``).
    """
    if kind == "email":
        local, _, domain = value.partition("@")
        labels = domain.split(".")
        starred = [label[:1] + "*" * (len(label) - 1) for label in labels[:-1]]
        return local[:1] + "*" * (len(local) - 1) + "@" + ".".join([*starred, labels[-1]])
    keep = 4 if kind in ("credit_card", "phone", "iban", "us_ssn") else 0
    if kind == "iban":  # and its country code
        return value[:2] + _mask("us_ssn", value[2:])
    out, kept = [], 0
    for ch in reversed(value):
        if ch.isalnum():
            out.append(ch if kept < keep else "*")
            kept += 1
        else:
            out.append(ch)
    return "".join(reversed(out))


class Redactor:
    """Replaces PII with placeholders, masks or salted hashes; the same value gets the same
    replacement for the life of the redactor.

    ``mode`` is ``"placeholder"`` (``<EMAIL_1>``, ``<PHONE_2>``), ``"mask"`` (see :func:`_mask`)
    or ``"hash"`` (``<EMAIL:3f9a1c2b>``, the first 8 hex digits of a salted SHA-256; the salt is
    random per redactor unless given). ``mapping`` maps each placeholder or hash back to the value
    it first stood for (masks are not recorded: two values can share one).
    """

    def __init__(self, mode: str = "placeholder", salt: bytes | None = None) -> None:
        if mode not in MODES:
            raise OptionError(f"redaction mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.salt = secrets.token_bytes(16) if salt is None else salt
        self.mapping: dict[str, str] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def token(self, match: PiiMatch) -> str:
        """What replaces ``match``."""
        if self.mode == "mask":
            return _mask(match.type, match.value)
        key = (match.type, _normalise(match.type, match.value))
        token = self._tokens.get(key)
        if token is None:
            label = match.type.upper()
            if self.mode == "placeholder":
                self._counts[match.type] = self._counts.get(match.type, 0) + 1
                token = f"<{label}_{self._counts[match.type]}>"
            else:
                digest = hashlib.sha256(self.salt + f"{key[0]}:{key[1]}".encode()).hexdigest()
                token = f"<{label}:{digest[:8]}>"
            self._tokens[key] = token
            self.mapping[token] = match.value
        return token

    def redact(self, text: str, matches: Sequence[PiiMatch] | None = None) -> str:
        """``text`` with each match replaced (``None``: what :func:`find_pii` finds)."""
        if matches is None:
            matches = find_pii(text)
        out, pos = [], 0
        for m in sorted(matches, key=lambda m: m.start):
            if m.start < pos:  # overlaps one already replaced
                continue
            out.append(text[pos : m.start])
            out.append(self.token(m))
            pos = m.end
        out.append(text[pos:])
        return "".join(out)


def redact(text: str, mode: str = "placeholder", salt: bytes | None = None) -> str:
    """``text`` with its PII replaced, by a fresh :class:`Redactor`."""
    return Redactor(mode, salt).redact(text)
