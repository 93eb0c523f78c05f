"""Writes tests/data/pii_eval.jsonl: labelled PII positives and tricky negatives.

Every value is synthetic and valid by the validators' own rules (Luhn cards with real issuer
prefixes, mod-97 IBANs, SSNs in issued ranges, phone numbers ``phonenumbers`` accepts), set in
sentences of the kind people paste into prompts: support tickets, CRM notes, logs, e-mails.
Each line: {"text": ..., "pii": [{"type", "start", "end"}], "split": "dev" | "heldout"}.
The held-out templates were written after the detector, to check it does not fit the dev ones.

Usage: python tests/data/make_pii_eval.py
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import phonenumbers
from stdnum import ean as stdean
from stdnum import iban as stdiban
from stdnum import isbn as stdisbn
from stdnum import luhn

OUT = Path(__file__).with_name("pii_eval.jsonl")
rng = random.Random(20261129)

FIRST = ["anna", "james", "li", "maria", "oluwaseun", "sophie", "rahul", "kenji", "fatima", "lucas", "emma", "noah"]
LAST = ["smith", "muller", "wang", "garcia", "okafor", "dubois", "patel", "tanaka", "haddad", "silva", "brown", "rossi"]
DOMAINS = ["example.com", "mail.example.org", "acme.co.uk", "contoso.de", "startup.io", "uni-bonn.de",
           "corp.example.net", "fastmail.fm", "gmail.com", "outlook.com", "posteo.de", "company.com.au"]


def email() -> str:
    f, la = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{f}.{la}", f"{f}{rng.randint(1, 99)}", f"{f[0]}{la}", f"{f}_{la}", f"{f}+invoices",
                        f"{f}.{la}{rng.randint(70, 99)}", f"{f.capitalize()}.{la.capitalize()}"])
    return f"{local}@{rng.choice(DOMAINS)}"


# ------------------------------------------------------------------ phones
PHONE_REGIONS = ["US", "GB", "DE", "FR", "IN", "ES", "IT", "NL", "AU", "BR", "JP", "MX", "CH", "SE", "ZA", "SG",
                 "IE", "PL", "CA", "NG"]
NATIONAL_OK = {"US", "GB", "DE", "FR", "IN", "ES", "IT", "NL", "AU", "BR", "CA"}


def phone_number(region: str) -> phonenumbers.PhoneNumber:
    kinds = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
    for _ in range(1000):
        ex = phonenumbers.example_number_for_type(region, rng.choice(kinds))
        if ex is None:
            continue
        national = str(ex.national_number)
        keep = max(3, len(national) - 4)
        cand = national[:keep] + "".join(rng.choice(string.digits) for _ in range(len(national) - keep))
        num = phonenumbers.parse("+" + str(ex.country_code) + cand, None)
        if phonenumbers.is_valid_number(num):
            return num
    raise RuntimeError(region)


def phone(region: str | None = None, style: str | None = None) -> str:
    region = region or rng.choice(PHONE_REGIONS)
    num = phone_number(region)
    style = style or rng.choice(["intl", "intl", "e164", "national", "national"])
    if style == "national" and region not in NATIONAL_OK:
        style = "intl"
    if style == "e164":
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    if style == "national":
        text = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
        if region in ("US", "CA") and rng.random() < 0.4:
            d = str(num.national_number)
            text = rng.choice([f"{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}"])
        return text
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


# ------------------------------------------------------------------ cards
CARD_PREFIXES = [("4", 16), ("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
                 ("37", 15), ("6011", 16), ("65", 16), ("3530", 16), ("3566", 16), ("36", 14), ("62", 16),
                 ("4", 19), ("6759", 16)]


def card_digits(prefix: str | None = None, length: int | None = None) -> str:
    if prefix is None:
        prefix, length = rng.choice(CARD_PREFIXES)
    assert length is not None
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for s in sizes:
        out.append(digits[pos : pos + s])
        pos += s
    if pos < len(digits):
        out.append(digits[pos:])
    return sep.join(p for p in out if p)


def card() -> str:
    d = card_digits()
    sep = rng.choice([" ", " ", "-", ""])
    if len(d) == 15:
        return group(d, [4, 6, 5], sep)
    if len(d) == 14:
        return group(d, [4, 6, 4], sep)
    return group(d, [4] * 5, sep)


# ------------------------------------------------------------------ IBANs
IBAN_COUNTRIES = ["DE", "GB", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "PL", "SE", "IE", "PT", "DK", "NO", "FI",
                  "LU", "CZ"]


def _bban(structure: str) -> str:
    import re

    out = []
    for count, kind in re.findall(r"(\d+)!?([nace])", structure):
        pool = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits,
                "e": " "}[kind]
        out.append("".join(rng.choice(pool) for _ in range(int(count))))
    return "".join(out)


def iban(country: str | None = None) -> str:
    country = country or rng.choice(IBAN_COUNTRIES)
    info = stdiban._ibandb.info(country + "00")
    structure = info[0][1]["bban"]
    for _ in range(100000):
        bban = _bban(structure)
        check = stdiban.calc_check_digits(country + "00" + bban)
        number = country + check + bban
        if stdiban.is_valid(number):
            return stdiban.format(number) if rng.random() < 0.6 else number
    raise RuntimeError(country)


def ssn(sep: str | None = None) -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    sep = rng.choice(["-", "-", "-", " "]) if sep is None else sep
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def ipv4() -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind < 0.45:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6() -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    form = rng.random()
    if form < 0.3:
        return ":".join(groups)
    if form < 0.6:
        return f"2001:db8:{groups[2]}::{groups[7]}"
    if form < 0.8:
        return f"fe80::{groups[4]}:{groups[5]}:{groups[6]}:{groups[7]}"
    return f"2a02:{groups[1]}:{groups[2]}:{groups[3]}::{rng.randint(1, 99)}"


GEN = {"email": email, "phone": phone, "credit_card": card, "iban": iban, "us_ssn": ssn}


def ip() -> str:
    return ipv4() if rng.random() < 0.65 else ipv6()


GEN["ip_address"] = ip

# ------------------------------------------------------------------ templates
# {email} {phone} {credit_card} {iban} {us_ssn} {ip_address}: each slot is filled with a fresh value.
DEV_POS = [
    "Ticket #4821: customer {email} says the reset link never arrives. Please reply within 24h.",
    "CRM note 2024-03-15: spoke to Mrs. Okafor on {phone}, she wants the invoice resent.",
    "Hi team, the refund went to card {credit_card} but the customer says it never arrived.",
    "Please wire the deposit (EUR 1,250.00) to IBAN {iban} before Friday.",
    "Applicant SSN: {us_ssn}, DOB 04/12/1985, status pending review.",
    "2024-03-15T10:22:31Z WARN auth failed for user admin from {ip_address} (attempt 3 of 5)",
    "Contact: {email} | Tel: {phone}",
    "He paid with {credit_card} (exp 09/27, CVV withheld) and asked us to keep it on file.",
    "Beneficiary: Jane Roe, account {iban}, reference INV-2024-0042.",
    "nginx: 2024/03/15 10:30:01 [error] 311#311: *7 connect() failed, client: {ip_address}, server: api",
    "Forwarding to {email}; cc {email}.",
    "Call me back on {phone} after 6pm, or email {email}.",
    "Social security number {us_ssn} was entered in the wrong field of form W-4.",
    "Our office in Lyon can be reached at {phone} (Mon-Fri, 9:00-17:00).",
    "Customer changed billing card from {credit_card} to {credit_card} on 3 May.",
    "Salary account changed to {iban}; effective next payroll (April 2024).",
    "ssh login accepted for deploy@web-3 from {ip_address} port 52144",
    "Dear support, my number is {phone} and my mail is {email}. Thanks, Ravi",
    "The SSN on file ({us_ssn}) does not match the one on the W-2.",
    "Blocked {ip_address} after 120 requests in 60 s (rate limit 100/min).",
    "Send the contract to {email} and the IBAN {iban} for the first payment.",
    "Emergency contact: Paul Dubois, {phone}.",
    "card: {credit_card}\nname: L. Silva\namount: 49.90 EUR",
    "Fraud team flagged transaction 88231 on card ending {credit_card}.",
    "WhatsApp {phone} if the courier cannot find the building.",
]
HELDOUT_POS = [
    "Re: order 5512 - hi, you can text me at {phone}, I'm not reading {email} this week.",
    "Lead imported from webinar: {email}, phone {phone}, company Contoso GmbH, 250 employees.",
    "Please charge the remaining $320.50 to {credit_card} and email the receipt to {email}.",
    "Zahlung bitte auf {iban} (Kontoinhaber: M. Müller), Verwendungszweck Rechnung 2024-117.",
    "[2024-03-16 08:01:12] INFO request id=9f1c status=200 remote_addr={ip_address} path=/api/v1/users",
    "Employee record: name=J. Brown; ssn={us_ssn}; start=2022-09-01; grade=7",
    "Firewall rule added: allow tcp from {ip_address} to any port 443",
    "Votre conseiller est joignable au {phone} ou par mail à {email}.",
    "I've updated the vendor's bank details to {iban}, can someone double-check before the run?",
    "Card on file: {credit_card}. Billing zip 94107. Do not store the CVV.",
    "From: {email}\nTo: {email}\nSubject: Q3 forecast (v2.1)",
    "His SSN is {us_ssn} and his employee id is E-10442.",
    "Peer {ip_address} disconnected after 3 keepalive failures (timeout 30s).",
    "Ping {phone} for the on-call rota; backup is {phone}.",
    "Refund of 75,00 € to {iban} confirmed, see ticket 48213.",
    "Customer read out {credit_card} over the phone, agent 7731 typed it into the notes field.",
    "DNS lookup for mail.example.com returned {ip_address}.",
    "Patient callback number {phone}; appointment moved to 14:30 on 3/22.",
    "Unsubscribe {email} from all 12 lists please.",
    "Mailing address on file, SSN {us_ssn} verified by agent on 2024-02-02.",
    "Wire details — IBAN: {iban}, BIC: DEUTDEFF, amount 12.500,00 EUR",
    "Received 3 failed logins for admin (source {ip_address}, 2024-03-15 22:10 UTC).",
    "Our Sydney office: {phone}; Singapore: {phone}.",
    "Payment via {credit_card} declined (code 05), retried with {credit_card}.",
]

DEV_NEG = [
    "Upgraded the cluster to version 1.2.3.4 last night, rollback plan is in the wiki.",
    "Requires Python 3.11.4 or later; tested on v1.2.3 and 2.0.0-rc1.",
    "Windows build version 10.0.19041.1 shows the bug, 10.0.22631.3296 does not.",
    "The meeting moved from 2024-03-15 to 15/03/2024 (same day, different format), file 20240315_notes.md.",
    "Deadline: 03/04/2025 at 17:30; the backup ran at 02:15:33.",
    "ISBN 978-3-16-148410-0 is out of print; try ISBN-10 0-306-40615-2 instead.",
    "Your order #1234567890123456 has shipped, tracking 1Z999AA10123456784.",
    "Invoice no. 2024-000123 for 1,299.99 USD is due on 30 April.",
    "request_id=123e4567-e89b-12d3-a456-426614174000 latency=120ms",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixes the parser",
    "The office is at 40.7128, -74.0060 (New York) and the other at 51°30′N 0°7′W.",
    "Revenue grew 12.5% to $4,512,000.00 in Q3; margin was 23.75%.",
    "Replacement part SKU 555-0123-44 and model number 800-555-12 are on backorder.",
    "Ship to 10115 Berlin or ZIP 94107-1234, San Francisco.",
    "Random sample ids: 483920174, 9928374651, 1029384756 and 5647382910.",
    "The docs are in section 4.2.1.3 and the changelog for release 2.4.1.0.",
    "pip install numpy==1.26.4 pandas>=2.2.0.1 ; torch~=2.3.0",
    "MAC 00:1A:2B:3C:4D:5E on port 8080, timestamps 12:30:45 and 23:59:59.",
    "Use a[::2] in Python and std::vector in C++; see localhost:8888.",
    "The image is in assets/logo@2x.png and icon@3x.svg.",
    "SHA-256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "Population 8,336,817 (2022 est.), area 783.8 km²",
    "Phone-like product code 212-555-01 and batch 0049-2231-77.",
    "Use colour #FF5733 and font-size 1.125rem; z-index 9999.",
    "Flight LH 400 departs 13:45, gate B42, booking ref X7K9QZ.",
    "Avogadro's number is 6.022e23 and pi is 3.14159265358979.",
    "The 3 files total 1,048,576 bytes (1.0 MiB) after 42 retries.",
    "Chrome 120.0.6099.109 and Firefox 121.0.1 both crash on the page.",
    "OID 1.3.6.1.4.1.311 belongs to Microsoft.",
    "Article 12.3.4.5 of the regulation applies to 2024-2025 contracts.",
]
HELDOUT_NEG = [
    "Released v2.10.4.1 today; see the notes for firmware 3.2.1.0 too.",
    "kernel 5.15.0.91 is affected, patched in release 5.15.0.92",
    "Build 4.1.2.7 passed all 1,204 tests in 3m12s.",
    "Invoice INV-20240315-0042 issued 2024/03/15 for €2.450,00.",
    "Tracking number 9400 1000 0000 0000 0000 00 (USPS), parcel weight 2.3 kg.",
    "ISBN 9780306406157 and ISBN 978-1-86197-876-9 were ordered.",
    "IMEI 490154203237518 registered on 2023-11-02.",
    "Meeting on 12.03.2024 at 14.30, room 3.14.",
    "Lat/long: -33.8688, 151.2093; elevation 58 m.",
    "Temperature rose 2.5°C, from 18.25 to 20.75 between 06:00 and 14:00.",
    "The UUID f47ac10b-58cc-4372-a567-0e02b2c3d479 identifies the job.",
    "md5 d41d8cd98f00b204e9800998ecf8427e, crc 0x1A2B3C4D",
    "Account balance 12,345.67; 3 pending transactions totalling 1,002.50.",
    "Case 2024-CV-001234 was filed on March 15, 2024.",
    "Postcode SW1A 1AA and ZIP 10001; PO Box 1234.",
    "We sold 1,234,567 units at 19.99 each in 2023.",
    "Version string: 3.4.5.6-beta+build.789",
    "See figure 2.1.3.4 and table 3.2.",
    "Serial number SN-4532-8812-0091-3376 on the back label.",
    "Order 4539 1488 0343 6467 shipped (order numbers are 16 digits).",
    "Ticket 1000234 escalated to tier 2 after 48 h.",
    "The run took 00:03:41.27 and used 12.4 GB.",
    "Score: 98.6% on split 0.8/0.1/0.1 with seed 42.",
    "Call stack depth 256, frame 0x7ffe5c3b1a40.",
    "ISO week 2024-W11, day 075, timestamp 1710498000.",
    "Between 1999 and 2024 the index went from 1,200.5 to 4,780.25.",
    "Route 66, exit 123, mile marker 45.6.",
    "Use semantic versioning: 1.0.0, 1.0.1, 1.1.0.0 are examples.",
    "The recipe needs 2 1/2 cups flour, 3/4 cup sugar and 1 tsp salt.",
    "Our support hours are 9-17 CET, phone lines close at 16:30.",
]


# Hand-labelled rows written after the detector (text, [(type, value), ...]): formats and
# contexts the generators above do not make.
HAND_POS = [
    ("Hey, it's Tom - my cell is 917-555-0198 and work is 646.555.0123 x204",
     [("phone", "917-555-0198"), ("phone", "646.555.0123")]),
    ("Customer: Maria Gonzalez, maria.gonzalez@hotmail.es, +34 91 123 45 67",
     [("email", "maria.gonzalez@hotmail.es"), ("phone", "+34 91 123 45 67")]),
    ("Callback requested: 0161 496 0000 (Manchester)", [("phone", "0161 496 0000")]),
    ("Her Aadhaar-linked mobile is +91-9876543210.", [("phone", "+91-9876543210")]),
    ("Tel: +33 (0)1 42 68 53 00", [("phone", "+33 (0)1 42 68 53 00")]),
    ("Tel.: +49 (0) 30 12345678", [("phone", "+49 (0) 30 12345678")]),
    ("phone: +1 416 555 0199 (Toronto)", [("phone", "+1 416 555 0199")]),
    ("Ring me: +353 1 234 5678", [("phone", "+353 1 234 5678")]),
    ("+48 22 123 45 67 is the Warsaw office", [("phone", "+48 22 123 45 67")]),
    ("Contact +86 138 0013 8000 for China sales", [("phone", "+86 138 0013 8000")]),
    ("Kenya line +254 712 345678", [("phone", "+254 712 345678")]),
    ("Dial 0044 20 7946 0958 from abroad", [("phone", "0044 20 7946 0958")]),
    ("tel:+14155552671", [("phone", "+14155552671")]),
    ("(+44) 20 7946 0958 is the switchboard", [("phone", "(+44) 20 7946 0958")]),
    ("German Handy 0151 23456789, Festnetz 089 1234567", [("phone", "0151 23456789"), ("phone", "089 1234567")]),
    ("France 06 12 34 56 78 ou 01 42 68 53 00", [("phone", "06 12 34 56 78"), ("phone", "01 42 68 53 00")]),
    ("call me on 2025550173 tonight", [("phone", "2025550173")]),
    ("card=4916338506082832&exp=0127", [("credit_card", "4916338506082832")]),
    ('{"cc": "5425233430109903", "name": "J Smith"}', [("credit_card", "5425233430109903")]),
    ("Payment: VISA ****-****-****-1111 and full 4012 8888 8888 1881", [("credit_card", "4012 8888 8888 1881")]),
    ("Discover 6011111111111117, JCB 3530111333300000, MC 5105105105105100",
     [("credit_card", "6011111111111117"), ("credit_card", "3530111333300000"), ("credit_card", "5105105105105100")]),
    ("Diners 30569309025904, UnionPay 6200000000000005", [("credit_card", "30569309025904"),
                                                         ("credit_card", "6200000000000005")]),
    ("Pay to: ES91 2100 0418 4502 0005 1332", [("iban", "ES91 2100 0418 4502 0005 1332")]),
    ("IT60 X054 2811 1010 0000 0123 456 is the Italian account", [("iban", "IT60 X054 2811 1010 0000 0123 456")]),
    ("AT61 1904 3002 3457 3201, PL61 1090 1014 0000 0712 1981 2874",
     [("iban", "AT61 1904 3002 3457 3201"), ("iban", "PL61 1090 1014 0000 0712 1981 2874")]),
    ("NO93 8601 1117 947, FI21 1234 5600 0007 85", [("iban", "NO93 8601 1117 947"), ("iban", "FI21 1234 5600 0007 85")]),
    ("iban=IE29AIBK93115212345678;", [("iban", "IE29AIBK93115212345678")]),
    ("NL91ABNA0417164300 and BE68539007547034", [("iban", "NL91ABNA0417164300"), ("iban", "BE68539007547034")]),
    ("iban: gb82west12345698765432", [("iban", "gb82west12345698765432")]),
    ("ssn 536 22 8726 / social security number: 536228726", [("us_ssn", "536 22 8726"), ("us_ssn", "536228726")]),
    ("Server IPs: 10.0.0.1, 10.0.0.2 and 10.0.0.3",
     [("ip_address", "10.0.0.1"), ("ip_address", "10.0.0.2"), ("ip_address", "10.0.0.3")]),
    ('"remote_ip": "52.14.200.7"', [("ip_address", "52.14.200.7")]),
    ("X-Forwarded-For: 203.0.113.195, 70.41.3.18", [("ip_address", "203.0.113.195"), ("ip_address", "70.41.3.18")]),
    ("inet6 fe80::a00:27ff:fe4e:66a1/64 scope link", [("ip_address", "fe80::a00:27ff:fe4e:66a1")]),
    ("ping6 2606:4700:4700::1111", [("ip_address", "2606:4700:4700::1111")]),
    ("Connect to [2001:db8::1]:8080 or 192.168.1.1:8080", [("ip_address", "2001:db8::1"), ("ip_address", "192.168.1.1")]),
    ("Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36 from 198.51.100.7", [("ip_address", "198.51.100.7")]),
    ("user john_smith@company.io logged in from 172.16.254.1",
     [("email", "john_smith@company.io"), ("ip_address", "172.16.254.1")]),
    ("mailto:support@example.com?subject=help", [("email", "support@example.com")]),
    ("Email: o'connor@example.ie", [("email", "o'connor@example.ie")]),
    ("name,email,phone\nAnn,ann@example.com,+14155552671", [("email", "ann@example.com"), ("phone", "+14155552671")]),
]
HAND_NEG = [
    "Released on 2023-12-01; next release 2024.1.0", "Angular 17.0.8.1 fixes the regression",
    "node-v20.11.0.1-linux-x64", "Timestamp 1700000000123 (ms since epoch)", "Use port 5432 and 6379",
    "Flight UA1234 from SFO at 08:45, seat 12A", "PO-2024-00571 approved by finance", "Lot 23-1145-88, expiry 2026-01",
    "Bank routing number 021000021 (not personal)", "EAN 4006381333931 barcode", "UPC 036000291452",
    "CAS 7732-18-5 (water)", "DOI 10.1000/182 and arXiv:2401.12345", "Patent US 7,654,321 B2",
    "git sha 9fceb02 and 1a2b3c4d5e6f7a8b9c0d", "GPS: 48.8566 N, 2.3522 E", "Lat 37.7749, Lon -122.4194",
    "Amount: 1 234 567,89 EUR", "Phone model SM-G991B, firmware G991BXXU5CVF1", "ISBN-13: 978-1-4028-9462-6",
    "ISBN 1-4028-9462-7", "Part no. 4111-1111-1111-1111", "Call stack: frame #12 at 0x0040F3A2",
    "The 2nd edition (ISBN 0-19-852663-6) is cheaper.", "uuid: 6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "Order ID 1234567890, total $123.45", "ref 20240315-001", "Fibonacci: 1 1 2 3 5 8 13 21 34 55 89 144",
    "Serial 4532015112830366", "2001:db8 is a documentation prefix", "Ratio 16:9:4:3",
    "CVE-2024-3094 affects xz 5.6.0 and 5.6.1", "Kernel 6.1.0.17 on Debian",
    "see https://example.com/users/12345678/orders/987654321", "Your confirmation code is 4556 7375 8689 9855",
    "Python 3.12.0 (main, Oct  2 2023, 13:45:54) [GCC 11.4.0]", "2024-03-15 10:30:45,123 INFO started pid 12345",
    "pip install package==1.2.3.4", "the 10.0.0.1 version of the spec", "USB VID:PID 046d:c52b",
    "Docker image sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
    "Temperature 98.6 F, BP 120/80, pulse 72", "Error code 0x80070005, HRESULT 2147942405",
]


def hand_row(text: str, values: list[tuple[str, str]]) -> dict:
    pii, pos = [], 0
    for kind, value in values:
        start = text.index(value, pos)
        pii.append({"type": kind, "start": start, "end": start + len(value)})
        pos = start + len(value)
    return {"text": text, "pii": pii, "split": "heldout"}


def fill(template: str) -> dict:
    text, pii, pos = "", [], 0
    import re

    for m in re.finditer(r"\{(\w+)\}", template):
        text += template[pos : m.start()]
        value = GEN[m.group(1)]()
        pii.append({"type": m.group(1), "start": len(text), "end": len(text) + len(value)})
        text += value
        pos = m.end()
    text += template[pos:]
    return {"text": text, "pii": pii}


def single(kind: str, template: str, value: str) -> dict:
    start = template.index("{}")
    return {"text": template.format(value), "pii": [{"type": kind, "start": start, "end": start + len(value)}]}


def negatives(templates: list[str], split: str, copies: int) -> list[dict]:
    out = []
    for t in templates:
        out.append({"text": t, "pii": [], "split": split})
    # Generated tricky negatives: valid ISBNs, Luhn-failing card-shaped runs, bad-checksum IBANs,
    # out-of-range SSNs, invalid IPs, version strings, dates.
    for _ in range(copies):
        kind = rng.randrange(9)
        if kind == 0:
            body = "978" + "".join(rng.choice(string.digits) for _ in range(9))
            isbn = stdisbn.format(body + stdean.calc_check_digit(body))
            text = rng.choice([f"Book ISBN {isbn} is back in stock.", f"Cite as {isbn} (2nd ed.).",
                               f"ISBN: {isbn.replace('-', '')}"])
        elif kind == 1:
            d = card_digits()
            bad = d[:-1] + str((int(d[-1]) + rng.randint(1, 9)) % 10)
            text = rng.choice([f"Reference {group(bad, [4] * 5, ' ')} in the ledger.",
                               f"Batch {bad} imported with 0 errors."])
        elif kind == 2:
            c = rng.choice(IBAN_COUNTRIES)
            good = iban(c).replace(" ", "")
            bad = good[:2] + f"{(int(good[2:4]) + rng.randint(1, 50)) % 98 + 1:02d}"[-2:] + good[4:]
            if stdiban.is_valid(bad):
                continue
            text = f"Placeholder account {bad} from the docs example."
        elif kind == 3:
            area = rng.choice(["000", "666", f"9{rng.randint(0, 99):02d}"])
            text = f"Test fixture id {area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d} is not real."
        elif kind == 4:
            text = f"Bad host {rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.1 rejected by the parser."
        elif kind == 5:
            text = rng.choice([
                f"Upgrade to version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
                f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 99)} is the new LTS.",
                f"release {rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)} notes",
            ])
        elif kind == 6:
            y, mo, da = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
            text = rng.choice([f"Due {y}-{mo:02d}-{da:02d}, paid {da:02d}/{mo:02d}/{y}.",
                               f"Snapshot {y}{mo:02d}{da:02d} restored.", f"Logged {da}.{mo}.{y} {mo:02d}:{da:02d}:11"])
        elif kind == 7:
            text = rng.choice([
                f"Order number {rng.randint(10**9, 10**10 - 1)} was split into 2 parcels.",
                f"Invoice #{rng.randint(10**5, 10**6)}-{rng.randint(100, 999)} sent.",
                f"Tracking: {rng.randint(10**11, 10**12 - 1)} (FedEx).",
            ])
        else:
            text = rng.choice([
                f"Total {rng.randint(1, 999)},{rng.randint(100, 999)}.{rng.randint(10, 99)} USD, up {rng.randint(1, 99)}.{rng.randint(0, 9)}%.",
                f"Point at {rng.uniform(-80, 80):.4f}, {rng.uniform(-170, 170):.4f} on the map.",
                f"Checksum {''.join(rng.choice('0123456789abcdef') for _ in range(40))}",
            ])
        out.append({"text": text, "pii": [], "split": split})
    return out


def main() -> None:
    rows: list[dict] = []
    for split, templates, negs, neg_copies in (("dev", DEV_POS, DEV_NEG, 80), ("heldout", HELDOUT_POS, HELDOUT_NEG, 80)):
        for _ in range(5):
            rows.extend({**fill(t), "split": split} for t in templates)
        # Phones from every region and style, and IBANs from every country.
        for region in PHONE_REGIONS:
            for style in ("intl", "national", "e164"):
                rows.append({**single("phone", f"Reach the {region} desk on {{}} today.", phone(region, style)),
                             "split": split})
        for country in IBAN_COUNTRIES:
            rows.append({**single("iban", "Transfer to {}, thanks.", iban(country)), "split": split})
        rows.extend(negatives(negs, split, neg_copies))
    rows.extend(hand_row(text, values) for text, values in HAND_POS)
    rows.extend({"text": text, "pii": [], "split": "heldout"} for text in HAND_NEG)
    for row in rows:
        for p in row["pii"]:
            assert p["end"] <= len(row["text"])
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
