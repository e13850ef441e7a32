"""Bulk row loading at database speed, bypassing the ORM for patient-level rows.

Measured on these machines (design/PERFORMANCE.md section 4): SQLAlchemy Core inserts of dicts
load ~42k rows/s on SQLite and ~21k rows/s on PostgreSQL, raw ``sqlite3.executemany`` ~261k
rows/s and PostgreSQL ``COPY`` ~200k rows/s. Patient-level uploads and the demo use this module;
it runs inside the caller's transaction, so an upload stays all-or-nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
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


#: Rows per COPY slice: large enough to amortise the round trip, small enough to bound memory.
COPY_SLICE_ROWS = 100_000


def insert_patient_table(connection: sa.Connection, table: pa.Table) -> int:
    """Insert an Arrow table with the columns of :data:`PATIENT_COLUMNS`: the fast path.

    ``risk_factors`` holds already-encoded JSON text, so no per-row dict is built or encoded.
    PostgreSQL gets ``COPY ... (FORMAT csv)`` fed by Arrow's C++ CSV writer in slices of
    :data:`COPY_SLICE_ROWS` rows (no Python object per value, bounded memory); SQLite a single
    ``executemany``. Runs in the caller's transaction.
    """
    if list(table.column_names) != list(PATIENT_COLUMNS):
        msg = f"columns must be {PATIENT_COLUMNS}"
        raise ValueError(msg)
    count = table.num_rows
    if not count:
        return 0
    name = PatientRecord.__table__.name
    dbapi_connection = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        columns = ", ".join(PATIENT_COLUMNS)
        options = pa_csv.WriteOptions(include_header=False)
        with (
            dbapi_connection.cursor() as cursor,
            cursor.copy(f"COPY {name} ({columns}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for start in range(0, count, COPY_SLICE_ROWS):
                buffer = io.BytesIO()
                pa_csv.write_csv(table.slice(start, COPY_SLICE_ROWS), buffer, options)
                copy.write(buffer.getvalue())
        return count
    placeholders = ", ".join("?" for _ in PATIENT_COLUMNS)
    statement = f"INSERT INTO {name} ({', '.join(PATIENT_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
    cursor = dbapi_connection.cursor()
    try:
        cursor.executemany(
            statement, zip(*(column.to_pylist() for column in table.columns), strict=True)
        )
    finally:
        cursor.close()
    return count
