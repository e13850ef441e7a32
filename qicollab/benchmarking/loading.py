"""Read a snapshot's aggregate values and patient records into data frames, fast.

Reading 1M rows through ``pandas.read_sql`` takes ~10 s (design/PERFORMANCE.md section 4); this
module bypasses the ORM: on PostgreSQL one ``COPY (SELECT ...) TO STDOUT`` in CSV, with the
risk factors extracted from the JSONB by the server, parsed by pyarrow; on SQLite the raw
``sqlite3`` cursor, with SQLite itself writing each submission's records as JSON lines (one
BLOB per submission: no Python object per row) that pyarrow parses in large batches. The batches
are joined and sorted as Arrow/numpy columns, strings dictionary-encoded, so no Python object
is made per value either (1M rows x 20 covariates: ~4 s of CPU, of which SQLite ~1.8 s and the
JSON parse ~2 s; joining pandas frames and object strings made it 7-11 s).
Categorical covariates come back as pandas categoricals with the specification's levels
(unknown values become missing), binary and numeric ones as float64.

The snapshot's ids are sent as a single parameter (a JSON array on SQLite, an integer array
literal built from validated integers on PostgreSQL), so a snapshot of any size is one query.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from qicollab.measures.spec import CovariateType

if TYPE_CHECKING:
    import sqlalchemy as sa

    from qicollab.measures.spec import RiskModelSpec

AGGREGATE_COLUMNS = (
    "submission_id",
    "member_id",
    "measure_id",
    "period_id",
    "period_start",
    "granularity",
    "numerator",
    "denominator",
    "value",
)
PATIENT_COLUMNS = ("member_id", "period_id", "event_year", "event_month", "sequence", "outcome")

#: Arrow's default allocator (mimalloc) spent ~2 s of system time (page faults) per million-row
#: table on the project's machine, the system allocator ~0.1 s: parse + sort + convert took
#: ~2.3 s of CPU instead of ~5 s.
_POOL = pa.system_memory_pool()


def _ids_literal(ids: Sequence[int]) -> str:
    """A PostgreSQL integer array literal; every element is forced through ``int``."""
    return "'{" + ",".join(str(int(i)) for i in ids) + "}'::bigint[]"


def _dbapi(connection: sa.Connection) -> Any:
    return connection.connection.dbapi_connection


def _copy_csv(connection: sa.Connection, query: str) -> bytes:
    """Run ``COPY (query) TO STDOUT`` as CSV with a header and return the bytes."""
    buffer = io.BytesIO()
    with (
        _dbapi(connection).cursor() as cursor,
        cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy,
    ):
        for data in copy:
            buffer.write(data)
    return buffer.getvalue()


def load_aggregate(
    connection: sa.Connection, submission_ids: Sequence[int], measure_ids: Sequence[int]
) -> pd.DataFrame:
    """Aggregate values of the snapshot for these measures, one row per submission.

    Columns: :data:`AGGREGATE_COLUMNS`; ``period_start`` is datetime64, missing counts are NaN.
    """
    select = (
        "SELECT s.id AS submission_id, s.member_id, s.measure_id, s.period_id, "
        "p.start_date AS period_start, p.granularity, "
        "a.numerator, a.denominator, a.value "
        "FROM submissions s "
        "JOIN aggregate_values a ON a.submission_id = s.id "
        "JOIN reporting_periods p ON p.id = s.period_id "
    )
    measures = [int(m) for m in measure_ids]
    if not submission_ids or not measures:
        return _empty_aggregate()
    if connection.dialect.name == "postgresql":
        query = (
            select
            + f"WHERE s.id = ANY({_ids_literal(submission_ids)}) "
            + f"AND s.measure_id = ANY({_ids_literal(measures)}) ORDER BY s.id"
        )
        table = pa_csv.read_csv(
            pa.BufferReader(_copy_csv(connection, query)),
            convert_options=pa_csv.ConvertOptions(
                column_types={
                    "numerator": pa.float64(),
                    "denominator": pa.float64(),
                    "value": pa.float64(),
                    "period_start": pa.date32(),
                }
            ),
        )
        frame = table.to_pandas()
    else:
        # Constant SQL; the ids travel as bound parameters (JSON arrays).
        query = (
            select  # noqa: S608
            + "WHERE s.id IN (SELECT value FROM json_each(?)) "
            + "AND s.measure_id IN (SELECT value FROM json_each(?)) ORDER BY s.id"
        )
        ids_json = json.dumps([int(i) for i in submission_ids])
        cursor = _dbapi(connection).cursor()
        try:
            cursor.execute(query, (ids_json, json.dumps(measures)))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if not rows:
            return _empty_aggregate()
        frame = pd.DataFrame.from_records(rows, columns=list(AGGREGATE_COLUMNS))
    if frame.empty:
        return _empty_aggregate()
    for column in ("numerator", "denominator", "value"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["period_start"] = pd.to_datetime(frame["period_start"])
    frame["granularity"] = frame["granularity"].astype(str)
    for column in ("submission_id", "member_id", "measure_id", "period_id"):
        frame[column] = frame[column].astype(np.int64)
    return frame[list(AGGREGATE_COLUMNS)].reset_index(drop=True)


def _empty_aggregate() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=float) for column in AGGREGATE_COLUMNS})
    frame["period_start"] = pd.Series(dtype="datetime64[ns]")
    frame["granularity"] = pd.Series(dtype=object)
    for column in ("submission_id", "member_id", "measure_id", "period_id"):
        frame[column] = frame[column].astype(np.int64)
    return frame


def _covariate_schema(spec: RiskModelSpec) -> pa.Schema:
    return pa.schema(
        [
            (c.name, pa.string() if c.type is CovariateType.CATEGORICAL else pa.float64())
            for c in spec.covariates
        ]
    )


def _finish_patients(frame: pd.DataFrame, spec: RiskModelSpec) -> pd.DataFrame:
    """Types: ints for ids, float outcome, categoricals with the spec's levels."""
    for column in ("member_id", "period_id", "event_year", "sequence"):
        frame[column] = pd.to_numeric(frame[column]).astype(np.int64)
    frame["event_month"] = pd.to_numeric(frame["event_month"]).astype(float)
    frame["outcome"] = pd.to_numeric(frame["outcome"]).astype(float)
    for covariate in spec.covariates:
        name = covariate.name
        if name not in frame:
            frame[name] = np.nan
        if covariate.type is CovariateType.CATEGORICAL:
            values = frame[name]
            if isinstance(values.dtype, pd.CategoricalDtype):
                # Arrow's dictionary-encoded strings: recode the few categories, not the rows.
                labels = values.cat.categories.astype(str)
                values = values.cat.rename_categories(labels)
                frame[name] = values.cat.set_categories(list(covariate.levels))
                continue
            if not (isinstance(values.dtype, pd.StringDtype) or values.dtype == object):
                values = values.astype(object).where(values.isna(), values.astype(str))
            frame[name] = pd.Categorical(values, categories=list(covariate.levels))
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def load_patients(
    connection: sa.Connection, submission_ids: Sequence[int], spec: RiskModelSpec
) -> pd.DataFrame:
    """Patient records of these submissions: :data:`PATIENT_COLUMNS` plus one column per
    covariate of ``spec``, ordered by member, period and sequence (a stable order, so refits
    give identical numbers)."""
    if not submission_ids:
        return _finish_patients(pd.DataFrame(columns=list(PATIENT_COLUMNS)), spec)
    if connection.dialect.name == "postgresql":
        extracted = ", ".join(
            f"r.risk_factors->>'{c.name}' AS \"{c.name}\"" for c in spec.covariates
        )
        # Covariate names are identifiers (checked by the spec) and the ids are integers.
        query = (
            "SELECT s.member_id, s.period_id, r.event_year, r.event_month, r.sequence, r.outcome"  # noqa: S608
            + (", " + extracted if extracted else "")
            + " FROM patient_records r JOIN submissions s ON s.id = r.submission_id"
            + f" WHERE r.submission_id = ANY({_ids_literal(submission_ids)})"
            + " ORDER BY s.member_id, s.period_id, r.sequence, r.id"
        )
        types: dict[str, pa.DataType] = {
            c.name: pa.string() if c.type is CovariateType.CATEGORICAL else pa.float64()
            for c in spec.covariates
        }
        types |= {"event_month": pa.float64(), "outcome": pa.float64()}
        table = pa_csv.read_csv(
            pa.BufferReader(_copy_csv(connection, query)),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
            memory_pool=_POOL,
        )
        return _finish_patients(_to_frame(table), spec)

    return _load_patients_sqlite(connection, submission_ids, spec)


#: SQLite builds each submission's rows as JSON lines itself (one BLOB per submission), so
#: Python never creates per-row objects; pyarrow parses the lines in ~32 MB batches.
_SQLITE_LINES = (
    "SELECT CAST(group_concat("
    """'{"_id":' || r.id || ',"_sub":' || r.submission_id || ',"_year":' || r.event_year"""
    """ || ',"_month":' || coalesce(r.event_month, 'null') || ',"_seq":' || r.sequence"""
    """ || ',"_y":' || coalesce(r.outcome, 'null')"""
    " || CASE WHEN r.risk_factors = '{}' THEN '}' ELSE ',' || substr(r.risk_factors, 2) END,"
    " char(10)) || char(10) AS BLOB) "
    "FROM patient_records r WHERE r.submission_id IN (SELECT value FROM json_each(?)) "
    "GROUP BY r.submission_id"
)
_BATCH_BYTES = 32 << 20


def _lines_schema(spec: RiskModelSpec) -> pa.Schema:
    fixed = [
        ("_id", pa.int64()),
        ("_sub", pa.int64()),
        ("_year", pa.int64()),
        ("_month", pa.float64()),
        ("_seq", pa.int64()),
        ("_y", pa.float64()),
    ]
    return pa.schema(
        fixed + list(zip(_covariate_schema(spec).names, _covariate_schema(spec).types, strict=True))
    )


def _parse_lines(data: bytes, spec: RiskModelSpec) -> pa.Table | pd.DataFrame:
    """One batch of JSON lines: an Arrow table, or a data frame from the tolerant path."""
    try:
        return pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(block_size=4 << 20),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_lines_schema(spec), unexpected_field_behavior="ignore"
            ),
            memory_pool=_POOL,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Non-standard JSON (NaN) or a categorical stored as a number: slower, tolerant path.
        names = ["_id", "_sub", "_year", "_month", "_seq", "_y", *spec.covariate_names]
        records = [json.loads(line) for line in data.decode().splitlines() if line]
        frame = pd.DataFrame.from_records(records, columns=names)
        for covariate in spec.covariates:
            if covariate.type is CovariateType.CATEGORICAL:
                column = frame[covariate.name]
                frame[covariate.name] = column.astype(object).where(
                    column.isna(), column.astype(str)
                )
        return frame


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas without per-value Python objects: strings (categorical covariates)
    arrive dictionary-encoded, i.e. as pandas categoricals, and numeric columns are not
    consolidated into one block (no copy)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            encoded = pc.dictionary_encode(table.column(index), memory_pool=_POOL)
            table = table.set_column(index, field.name, encoded)
    return table.to_pandas(split_blocks=True, memory_pool=_POOL)


def _load_patients_sqlite(
    connection: sa.Connection, submission_ids: Sequence[int], spec: RiskModelSpec
) -> pd.DataFrame:
    ids_json = json.dumps([int(i) for i in submission_ids])
    cursor = _dbapi(connection).cursor()
    parts: list[pa.Table | pd.DataFrame] = []
    try:
        owners = cursor.execute(
            "SELECT id, member_id, period_id FROM submissions "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (ids_json,),
        ).fetchall()
        batch: list[bytes] = []
        size = 0
        for (blob,) in cursor.execute(_SQLITE_LINES, (ids_json,)):
            batch.append(blob)
            size += len(blob)
            if size >= _BATCH_BYTES:
                parts.append(_parse_lines(b"".join(batch), spec))
                batch, size = [], 0
        if batch:
            parts.append(_parse_lines(b"".join(batch), spec))
    finally:
        cursor.close()
    if not parts:
        return _finish_patients(pd.DataFrame(columns=list(PATIENT_COLUMNS)), spec)
    if all(isinstance(part, pa.Table) for part in parts):
        lines = _to_frame(pa.concat_tables(parts))
    else:  # a batch took the tolerant path
        frames = [part.to_pandas() if isinstance(part, pa.Table) else part for part in parts]
        lines = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    del parts
    owner = np.array(owners, dtype=np.int64).reshape(-1, 3)
    at = np.searchsorted(owner[:, 0], lines["_sub"].to_numpy())
    member = owner[at, 1]
    period = owner[at, 2]
    # The same order as on PostgreSQL: member, period, case sequence, then row id.
    order = np.lexsort((lines["_id"].to_numpy(), lines["_seq"].to_numpy(), period, member))
    lines = lines.drop(columns=["_id", "_sub"]).rename(
        columns={
            "_year": "event_year",
            "_month": "event_month",
            "_seq": "sequence",
            "_y": "outcome",
        }
    )
    lines.insert(0, "member_id", member)
    lines.insert(1, "period_id", period)
    frame = lines.take(order).reset_index(drop=True)
    return _finish_patients(frame, spec)
