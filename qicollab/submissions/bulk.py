"""Bulk row loading at database speed, bypassing the ORM for patient-level rows.

Measured on these machines (design/PERFORMANCE.md section 4): SQLAlchemy Core inserts of dicts
load ~42k rows/s on SQLite and ~21k rows/s on PostgreSQL, raw ``sqlite3.executemany`` ~261k
rows/s and PostgreSQL ``COPY`` ~200k rows/s. Patient-level uploads and the demo use this module;
it runs inside the caller's transaction, so an upload stays all-or-nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from qicollab.submissions.models import PatientRecord

PATIENT_COLUMNS = (
    "submission_id",
    "case_key",
    "event_year",
    "event_month",
    "sequence",
    "outcome",
    "risk_factors",
)


def insert_patient_records(connection: sa.Connection, rows: Iterable[Sequence[Any]]) -> int:
    """Insert rows of :data:`PATIENT_COLUMNS` (``risk_factors`` as a dict); returns the count.

    ``connection`` must already be inside the transaction the rows belong to.
    """
    table = PatientRecord.__table__.name
    dbapi_connection = connection.connection.dbapi_connection
    count = 0
    if connection.dialect.name == "postgresql":
        columns = ", ".join(PATIENT_COLUMNS)
        with (
            dbapi_connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((*row[:-1], json.dumps(row[-1], separators=(",", ":"))))
                count += 1
        return count
    placeholders = ", ".join("?" for _ in PATIENT_COLUMNS)
    # Table and column names are module constants, never user input.
    statement = f"INSERT INTO {table} ({', '.join(PATIENT_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608

    def encoded() -> Iterable[tuple[Any, ...]]:
        nonlocal count
        for row in rows:
            count += 1
            yield (*row[:-1], json.dumps(row[-1], separators=(",", ":")))

    cursor = dbapi_connection.cursor()
    try:
        cursor.executemany(statement, encoded())
    finally:
        cursor.close()
    return count


def insert_patient_columns(
    connection: sa.Connection,
    columns: Sequence[Sequence[Any]],
    risk_factors_json: Sequence[str],
) -> int:
    """Insert rows given column-wise: the fast path for validated uploads.

    ``columns`` holds the first six of :data:`PATIENT_COLUMNS` as equal-length sequences and
    ``risk_factors_json`` the already-encoded JSON of the last, so no per-row dict is built or
    encoded. PostgreSQL gets one ``COPY`` in text format, written in large chunks; SQLite a
    single ``executemany``. Values must be validated: case keys cannot hold tabs, newlines or
    backslashes (the JSON's backslashes are escaped here).
    """
    count = len(risk_factors_json)
    if any(len(column) != count for column in columns) or len(columns) != 6:
        msg = "six columns of equal length are expected"
        raise ValueError(msg)
    if not count:
        return 0
    table = PatientRecord.__table__.name
    dbapi_connection = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        names = ", ".join(PATIENT_COLUMNS)
        chunk = 50_000
        with (
            dbapi_connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
        ):
            for start in range(0, count, chunk):
                stop = min(start + chunk, count)
                lines = [
                    "\t".join(_copy_text(value) for value in row)
                    for row in zip(
                        *(column[start:stop] for column in columns),
                        (text.replace("\\", "\\\\") for text in risk_factors_json[start:stop]),
                        strict=True,
                    )
                ]
                copy.write("\n".join(lines) + "\n")
        return count
    placeholders = ", ".join("?" for _ in PATIENT_COLUMNS)
    statement = f"INSERT INTO {table} ({', '.join(PATIENT_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
    cursor = dbapi_connection.cursor()
    try:
        cursor.executemany(statement, zip(*columns, risk_factors_json, strict=True))
    finally:
        cursor.close()
    return count


def _copy_text(value: Any) -> str:
    """One value in PostgreSQL's COPY text format (``\\N`` is NULL)."""
    if value is None:
        return "\\N"
    if isinstance(value, float) and value != value:  # NaN  # noqa: PLR0124
        return "\\N"
    return str(value)
