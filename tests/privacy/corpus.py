"""A planted corpus of identifiers over the 18 HIPAA Safe Harbor categories, and a clean one.

Planted identifiers are written as careless users write them (in sentences, in upper or lower
case, with labels or without) and then disguised as an attacker would (full-width and
Arabic-Indic digits, zero-width spaces). Each one is placed in every channel a person types
into. The clean corpus is what QI teams really write: comments with month names, unit names,
counts and rates, and the UUID and random case keys they generate.

Used by the tests in this folder and by ``benchmarks/bench_identifiers.py``.
"""

from __future__ import annotations

import random
import uuid

#: Safe Harbor category -> identifiers as typed (the part a screen must refuse).
PLANTED: dict[str, list[str]] = {
    "01 names": [
        "John Smith",
        "Mary Johnson",
        "JAMES WILLIAMS",
        "Patricia Brown",
        "Robert Jones",
        "pt linda garcia",
        "Mrs Patel",
        "Mr. Nguyen",
        "Dr Kowalski",
        "patient Hernandez",
        "daughter Maria",
        "Smith, John",
        "Garcia, Elena",
        "J. Rodriguez",
        "Michael Martinez",
        "Barbara Anderson",
        "william taylor",
        "Elizabeth Thomas",
        "Jennifer Moore",
        "David Jackson",
        "Susan Martin",
        "Richard Lee",
        "JohnSmith",
        "MariaGonzalez",
        "husband Kevin",
    ],
    "02 geography": [
        "123 Main Street",
        "4500 N Lake Shore Dr",
        "77 Massachusetts Ave",
        "1600 Pennsylvania Ave NW",
        "PO Box 1234",
        "P.O. Box 77",
        "22 Elm St apt 4",
        "9 Oak Lane",
        "300 Maple Road",
        "1208 Cedar Blvd",
        "lives in Springfield, IL",
        "from Cook County",
        "Boston, MA 02115",
        "moved to Cleveland",
        "ZIP 60614",
        "zip code 021",
        "02139",
        "41.8781, -87.6298",
        "resides in Harris County",
        "from Tucson, AZ",
    ],
    "03 dates and ages": [
        "DOB 03/14/1950",
        "born 1950-03-14",
        "admitted 14 Mar 2026",
        "admitted March 14, 2026",
        "discharged on 3/2",
        "died 2026-02-11",
        "dob: 14.03.50",
        "date of birth 19500314",
        "seen June 3rd",
        "fell on 3 May",
        "surgery Jan 9",
        "aged 94",
        "a 102 yo man",
        "97 years old",
        "age: 91",
        "the 7th of August",
    ],
    "04 telephone": [
        "call (312) 555-0188",
        "phone 312-555-0188",
        "tel: 312.555.0188",
        "+1 312 555 0188",
        "+44 20 7946 0958",
        "cell 3125550188",
        "ring 555-0188",
        "mobile: 773 555 0142",
        "0 1 2 3 4 5 6 7 8 9",
        "3 1 2 5 5 5 0 1 8 8",
        "phone 312 555 0188",
        "call 1-800-555-0199",
    ],
    "05 fax": [
        "fax:3125550188",
        "fax (312) 555-0123",
        "fax 312 555 0123",
        "faxed to 312-555-0177",
        "fax # 773.555.0101",
        "FAX 2125550100",
        "fax+1 415 555 0132",
        "fax no. 617-555-0111",
    ],
    "06 e-mail": [
        "jane.doe@example.org",
        "JDOE@HOSPITAL.ORG",
        "john_smith42@mail.example.com",
        "j.doe (at) example.org",
        "reach me at pt123@clinic.example.net",
        "m.garcia+qi@example.co.uk",
        "a@b.io",
        "nurse.lee@health.example.gov",
    ],
    "07 social security": [
        "123-45-6789",
        "SSN 078-05-1120",
        "ssn: 219 09 9999",
        "social security 078.05.1120",
        "SSN078051120",
        "ssn#078051120",
        "219/09/9999",
        "SS# 123-45-6789",
        "sin 046-454-286",
        "social security number 123456789",
    ],
    "08 medical record": [
        "MRN 00123456",
        "MRN: A1234567",
        "mrn#7788991",
        "medical record 4456789",
        "chart #88123456",
        "record no. 5512345",
        "MR 0098765",
        "NHS 943 476 5919",
        "hospital number 1234567",
        "chart no 9981234",
    ],
    "09 health plan": [
        "member ID XJH123456789",
        "medicare 1EG4-TE5-MK73",
        "medicaid 99887766",
        "beneficiary 123456789A",
        "insurance policy W123456789",
        "subscriber 887766554",
        "health plan 99-8877-66",
        "policy # AB12345678",
    ],
    "10 account": [
        "account 4532015112830366",
        "acct 12345678",
        "acct #: 00998877",
        "account no. 778899001",
        "a/c 55443322",
        "billing account 12345-67890",
        "claim 2026123456",
        "account 99-001122",
    ],
    "11 certificate and licence": [
        "licence D1234-56789",
        "license 123456789",
        "DL A1234567",
        "driver's license B9876543",
        "certificate 12-345678",
        "cert 5566778899",
        "passport 123456789",
        "NPI 1234567893",
    ],
    "12 vehicle": [
        "VIN 1HGCM82633A004352",
        "1HGCM82633A004352",
        "plate 7XYZ123",
        "plate ABC-1234",
        "vehicle tag 8KDL221",
        "vin: 2T1BURHE0JC043821",
        "licence plate 4GHT219",
        "car JH4KA7561PC008269",
    ],
    "13 device": [
        "serial SN8F3K29XQ",
        "pump serial 12A34B56",
        "device 00643169007222",
        "UDI (01)00884838039505",
        "IMEI 490154203237518",
        "s/n 4429-XK-2291",
        "pacemaker serial PJN123456R",
        "device id AX99-3321-77",
        "MAC 00:1B:44:11:3A:B7",
        "implant lot 21K0455",
    ],
    "14 URL": [
        "https://portal.example/chart/77",
        "www.example.com",
        "see facebook.com/jane.doe",
        "http://10.0.0.5/pt",
        "ftp://files.example.org/x",
        "myname.me",
        "linkedin.com/in/johnsmith",
        "bit.ly/3xYz",
    ],
    "15 IP address": [
        "192.168.10.44",
        "host 10.0.0.5",
        "fe80::1ff:fe23",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "from 172.16.254.1",
        "ip 8.8.8.8",
    ],
    "16 biometric": [
        "fingerprint on file",
        "voiceprint id 77",
        "retinal scan stored",
        "iris scan 4451",
        "palm print taken",
        "biometric template",
    ],
    "17 photo": [
        "photo attached: IMG_2041.jpg",
        "see face.png",
        "photo of patient",
        "headshot: jd.heic",
        "selfie attached",
        "scan_0042.tiff",
    ],
    "18 other unique codes": [
        "badge 77812345",
        "employee 00443322",
        "study id QX7R2P9K4L",
        "case code 8F3K29XQ7Z",
        "ref A7B8C9D0E1",
        "patient 2291847",
        "pt #48213",
        "4532015112830366",
        "kiosk code 9XK2L7M4Q8",
        "wristband 1122334455",
    ],
}

#: Case keys as careless users make them (each must be refused as a key).
PLANTED_KEYS: list[str] = [
    "JohnSmith",
    "SSN078051120",
    "fax:3125550188",
    "fax-3125550188",
    "jsmith",
    "smithj",
    "MaryJones",
    "mrn0012345",
    "MRN-7788991",
    "1234567",
    "02139",
    "123-45-6789",
    "312-555-0188",
    "2026-03-14",
    "1950_03_14",
    "jane.doe@example.org",
    "Garcia01",
    "PatelR",
    "WILLIAMS-42",
    "dob19500314",
    "phone3125550188",
    "john smith",
    "K Smith",
    "LindaG",
    "acct12345678",
]

_FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
_ARABIC_INDIC = {str(d): chr(0x0660 + d) for d in range(10)}


def disguises(text: str) -> list[str]:
    """The attacker's variants of ``text``: full-width, Arabic-Indic digits, zero-width spaces."""
    out = []
    if any(char.isdigit() for char in text):
        out.append("".join(_FULLWIDTH.get(char, char) for char in text))
        out.append("".join(_ARABIC_INDIC.get(char, char) for char in text))
    out.append("\u200b".join(text[i : i + 2] for i in range(0, len(text), 2)))
    out.append(text.replace(" ", "\u00a0").replace("-", "\u2011"))
    return out


#: Sentences a planted identifier is put into, one per free-text channel.
CHANNELS: dict[str, str] = {
    "comment": "Fall on 4 West, {}. Reviewed at huddle.",
    "correction reason": "Corrected numerator after chart review of {}",
    "warning justification": "Spike explained: outbreak linked to {}",
    "PDSA text": "Test the new checklist with {} on nights",
    "narrative": "{}",
    "file name": "{}",
}


def planted() -> list[tuple[str, str, str]]:
    """(category, channel, text) for every planted identifier in every free-text channel."""
    return [
        (category, channel, sentence.format(identifier))
        for category, identifiers in PLANTED.items()
        for identifier in identifiers
        for channel, sentence in CHANNELS.items()
    ]


CLEAN_COMMENTS: list[str] = [
    "June: new ICU opened with 12 beds",
    "March: hand hygiene audits moved to weekly",
    "New central line bundle introduced in January",
    "Staff may have missed two audits over the holidays",
    "MAR audit completed; 3 omissions found",
    "Denominator 12,345 patient-days (bed census corrected)",
    "Rate 1.5 per 1,000 line-days, down from 2.1",
    "New unit opened in week 3",
    "Falls prevention week ran 2nd to 6th shift rota",
    "December figures include the winter surge ward",
    "Agency staffing high in August; two new starters in September",
    "COVID-19 outbreak on 5 North closed beds for 10 days",
    "Q3 data delayed: EHR upgrade in October",
    "Chief Nursing Officer reviewed the sepsis bundle results",
    "Rapid Response Team calls rose after the new escalation policy",
    "Hand Hygiene Champion training for 14 staff",
    "Will Hall ward be included next cycle?",
    "Infection Prevention team completed 40 observations",
    "Charge nurse huddles at 07:30 and 19:30",
    "Two HAIs reviewed at the May M&M meeting",
    "Numerator excludes 3 transfers from other hospitals",
    "Bed days fell because 6 beds were closed for refurbishment",
    "PDSA cycle 2: checklist adopted by night shift",
    "April: switched to chlorhexidine wipes",
    "Audit sample of 30 charts per month since February",
    "Theatre 4 closed for 2 weeks in July",
    "Data validated by the quality team on 2 occasions",
    "HbA1c testing rate improved after the reminder",
    "Vancomycin dosing protocol updated",
    "No falls with harm this month",
    "Census lower over Easter and Thanksgiving",
    "Temporary 8-bed surge area on Level 3",
    "Grace period for late entries ended",
    "Mark the outliers for the next huddle",
    "Dean's list of QI projects presented at grand rounds",
    "Rose from 12 to 18 after case-mix change",
    "Sepsis screening now in the ED triage note",
    "Lean Six Sigma training completed by 5 team members",
    "Moved to Ward 7 after the refurbishment",
    "New infusion pumps rolled out across 3 units",
    "Long-stay patients excluded per measure definition",
    "CLABSI count includes one MBI-LCBI event",
    "Young adult unit merged with adolescent unit",
    "The King's Fund framework used for the driver diagram",
    "Denominator from the Trust's bed management system",
    "Fewer agency nurses since the new rota in November",
    "ICU capacity rose to 24 beds; occupancy 85%",
    "VAP bundle compliance 92% (46 of 50)",
    "Missed doses down to 1.2% after the pharmacy round",
    "Reported late because of the September IT outage",
    "June and July combined because of the migration",
    "Two reviewers agreed on 48 of 50 cases (kappa 0.9)",
    "Paediatric ward now on the same EHR",
    "Catheter days estimated from the 6 a.m. census",
    "Pressure ulcer stage 2 or above only",
    "Step-down unit added in Q2 2026",
    "Winter pressures: 3 escalation beds open",
    "Discharge lounge opened in March 2026",
    "Surgical site infection surveillance extended to 90 days",
    "Hospital at Home pilot started",
    "Data lead changed; new lead trained",
    "Falls rate per 1,000 occupied bed days",
    "Target of 95% met for the third month",
    "Observation audits done by Matron on each ward",
    "Board paper to the Quality Committee in August",
    "Mortality review found no avoidable deaths",
    "Run chart shows 6 points above the median",
    "Shift change moved to 8 p.m.",
    "Ward 4B and 4C combined for the summer",
    "Reduced antibiotic use after stewardship rounds",
    "Handover tool piloted on two wards",
    "North and South units reported separately",
    "Delayed: awaiting lab results for 2 cases",
    "Same as last month",
    "Nurse-led extubation protocol introduced",
    "Scores from the staff survey in May",
    "7-day services rota started in October",
    "No change",
    "Weekend audits introduced",
]


def clean_keys(count: int, seed: int = 1) -> list[str]:
    """Opaque case keys as teams generate them: UUIDs (both cases) and random base-32 codes."""
    rng = random.Random(seed)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    keys: list[str] = []
    for index in range(count):
        if index % 3 == 0:
            keys.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        elif index % 3 == 1:
            keys.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper())
        else:
            code = "".join(rng.choice(alphabet) for _ in range(8))
            keys.append(f"{code[:4]}-{code[4:]}")
    return keys


def planted_with_disguises() -> list[tuple[str, str, str]]:
    """:func:`planted` with every identifier also in each of its :func:`disguises`."""
    return [
        (category, channel, sentence.format(variant))
        for category, identifiers in PLANTED.items()
        for identifier in identifiers
        for variant in (identifier, *disguises(identifier))
        for channel, sentence in CHANNELS.items()
    ]
