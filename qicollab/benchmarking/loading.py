"""Read a snapshot's aggregate values and patient records into data frames, fast.

Reading 1M rows through ``pandas.read_sql`` takes ~10 s (design/PERFORMANCE.md section 4); this
module bypasses the ORM: on PostgreSQL one ``COPY (SELECT ...) TO STDOUT`` in CSV, with the
risk factors extracted from the JSONB by the server, parsed by pyarrow; on SQLite the raw
``sqlite3`` cursor, with SQLite itself joining each submission's values column by column and
its risk factors as JSON lines (a few texts per submission: no Python object per row), which
pyarrow parses in large batches. The batches
are joined and sorted as Arrow/numpy columns, strings dictionary-encoded, so no Python object
is made per value either. On SQLite, 2M records x 20 covariates took ~11 s of CPU when SQLite
wrote a whole JSON line per record and take ~8 s column by column, of which ~5.5 s is
pyarrow's parse of the risk factors' JSON (joining pandas frames and object strings had made
1M rows alone take 7-11 s).
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


#: SQLite hands back each submission's records as one text per column (``group_concat``, one
#: value per line) and its risk factors as JSON lines: building a line per record with ``||``
#: cost SQLite three times as much CPU (2M records: ~3.9 s against ~1.2 s). All aggregates of a
#: group step through its rows together, so the columns line up; the counts are checked.
#: Months are never 0 (a check constraint keeps them in 1..12), so 0 stands for a missing one.
_SQLITE_COLUMNS = (
    "SELECT r.submission_id, count(*), group_concat(r.id, char(10)),"
    " group_concat(r.event_year, char(10)), group_concat(coalesce(r.event_month, 0), char(10)),"
    " group_concat(r.sequence, char(10)), group_concat(coalesce(r.outcome, 'nan'), char(10))"
    "{risk_factors} "
    "FROM patient_records r WHERE r.submission_id IN (SELECT value FROM json_each(?)) "
    "GROUP BY r.submission_id"
)
_SQLITE_RISK_FACTORS = ", CAST(group_concat(r.risk_factors, char(10)) || char(10) AS BLOB)"
#: The per-record columns, as the query returns them after the submission id and count.
_SQLITE_FIXED = {
    "_id": pa.int64(),
    "_year": pa.int64(),
    "_month": pa.float64(),
    "_seq": pa.int64(),
    "_y": pa.float64(),
}
_BATCH_BYTES = 32 << 20


def _parse_lines(data: bytes, spec: RiskModelSpec) -> pa.Table | pd.DataFrame:
    """One batch of risk-factor JSON lines: an Arrow table with one column per covariate, or
    a data frame from the tolerant path."""
    try:
        return pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(block_size=4 << 20),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_covariate_schema(spec), unexpected_field_behavior="ignore"
            ),
            memory_pool=_POOL,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Non-standard JSON (NaN) or a categorical stored as a number: slower, tolerant path.
        records = [json.loads(line) for line in data.decode().splitlines() if line]
        frame = pd.DataFrame.from_records(records, columns=list(spec.covariate_names))
        for covariate in spec.covariates:
            if covariate.type is CovariateType.CATEGORICAL:
                column = frame[covariate.name]
                frame[covariate.name] = column.astype(object).where(
                    column.isna(), column.astype(str)
                )
        return frame


def _numbers(parts: list[str], kind: pa.DataType) -> np.ndarray:
    """One column's values (one per line; ``nan`` for a missing float), parsed by pyarrow."""
    table = pa_csv.read_csv(
        io.BytesIO("\n".join(parts).encode()),
        read_options=pa_csv.ReadOptions(column_names=["v"]),
        convert_options=pa_csv.ConvertOptions(column_types={"v": kind}),
        memory_pool=_POOL,
    )
    return table.column(0).to_numpy()


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
    query = _SQLITE_COLUMNS.format(risk_factors=_SQLITE_RISK_FACTORS if spec.covariates else "")
    cursor = _dbapi(connection).cursor()
    subs: list[int] = []
    counts: list[int] = []
    columns: list[list[str]] = [[] for _ in _SQLITE_FIXED]
    parts: list[pa.Table | pd.DataFrame] = []
    try:
        owners = cursor.execute(
            "SELECT id, member_id, period_id FROM submissions "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (ids_json,),
        ).fetchall()
        batch: list[bytes] = []
        size = 0
        for row in cursor.execute(query, (ids_json,)):
            subs.append(row[0])
            counts.append(row[1])
            for values, text in zip(columns, row[2:7], strict=True):
                values.append(text)
            if spec.covariates:
                batch.append(row[7])
                size += len(row[7])
                if size >= _BATCH_BYTES:
                    parts.append(_parse_lines(b"".join(batch), spec))
                    batch, size = [], 0
        if batch:
            parts.append(_parse_lines(b"".join(batch), spec))
    finally:
        cursor.close()
    if not subs:
        return _finish_patients(pd.DataFrame(columns=list(PATIENT_COLUMNS)), spec)
    total = sum(counts)
    fixed = {
        name: _numbers(values, kind)
        for (name, kind), values in zip(_SQLITE_FIXED.items(), columns, strict=True)
    }
    if all(isinstance(part, pa.Table) for part in parts):
        lines = _to_frame(pa.concat_tables(parts)) if parts else pd.DataFrame(index=range(total))
    else:  # a batch took the tolerant path
        frames = [part.to_pandas() if isinstance(part, pa.Table) else part for part in parts]
        lines = pd.concat(frames, ignore_index=True)
    del parts
    if len(lines) != total or any(len(values) != total for values in fixed.values()):
        msg = f"patient records of {len(subs)} submissions did not line up ({total} records)"
        raise RuntimeError(msg)
    owner = np.array(owners, dtype=np.int64).reshape(-1, 3)
    at = np.searchsorted(owner[:, 0], np.repeat(np.array(subs, dtype=np.int64), counts))
    member = owner[at, 1]
    period = owner[at, 2]
    # The same order as on PostgreSQL: member, period, case sequence, then row id.
    order = np.lexsort((fixed["_id"], fixed["_seq"], period, member))
    month = fixed["_month"]
    lines.insert(0, "event_year", fixed["_year"])
    lines.insert(1, "event_month", np.where(month == 0, np.nan, month))
    lines.insert(2, "sequence", fixed["_seq"])
    lines.insert(3, "outcome", fixed["_y"])
    lines.insert(0, "member_id", member)
    lines.insert(1, "period_id", period)
    frame = lines.take(order).reset_index(drop=True)
    return _finish_patients(frame, spec)
