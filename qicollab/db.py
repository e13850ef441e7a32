"""Database plumbing shared by every domain: the declarative base, engines, sessions.

SQLite is the embedded default and PostgreSQL the production database; both run the same
models and the same Alembic history. On SQLite every connection turns on foreign keys and WAL,
and a writing transaction starts with ``BEGIN IMMEDIATE``: with the default deferred ``BEGIN``
two writers both start as readers and one of them fails with "database is locked" when it tries
to upgrade its lock, whereas ``BEGIN IMMEDIATE`` makes the second writer wait (busy timeout).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import zope.sqlalchemy
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

if TYPE_CHECKING:
    import transaction as transaction_module
    from pyramid.config import Configurator
    from pyramid.request import Request
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import SessionTransaction

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
#: Python ``None`` is stored as SQL NULL, never as the JSON literal ``null``.
JSONDocument = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

#: SQLite waits this long (ms) for a competing writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option that marks a connection as read-only, so SQLite starts it deferred.
READ_ONLY_OPTION = "qicollab_read_only"


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timestamps are stored as UTC and always come back timezone-aware.

    SQLite has no timezone type; storing naive UTC and re-attaching the zone on the way out
    keeps both databases returning the same values.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetimes are ambiguous; pass a timezone-aware UTC datetime"
            raise ValueError(msg)
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base for every model; constraint names follow :data:`NAMING_CONVENTION`."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
        list[Any]: JSONDocument,
    }

    def __repr__(self) -> str:
        ident = sa.inspect(self).identity
        return f"<{type(self).__name__} {ident[0] if ident else 'transient'}>"


class CreatedAtMixin:
    """When the row was created (UTC)."""

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def enum_column(enum_cls: type, *, name: str) -> sa.Enum:
    """A portable enum: a VARCHAR with a named CHECK constraint, stored by value."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine_from_settings(settings: dict[str, Any], **kwargs: Any) -> Engine:
    """The engine for ``sqlalchemy.url``, with the SQLite hooks when it is SQLite."""
    url = sa.make_url(settings["sqlalchemy.url"])
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    options: dict[str, Any] = {"pool_pre_ping": True, **kwargs}
    if url.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {})["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # SQLite creates the file but not its folder (the storage folder on a first run).
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(
    session_factory: sessionmaker[Session],
    transaction_manager: transaction_module.TransactionManager,
    *,
    read_only: bool = False,
) -> Session:
    """A session joined to a ``transaction`` manager: commit and abort follow the manager."""
    if read_only:
        bind = session_factory.kw["bind"].execution_options(**{READ_ONLY_OPTION: True})
        session = session_factory(bind=bind)
    else:
        session = session_factory()
    zope.sqlalchemy.register(session, transaction_manager=transaction_manager)
    return session


@contextlib.contextmanager
def session_scope(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction for CLI commands and jobs: commit on success, roll back on error."""
    session = session_factory()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def after_outcome(
    session: Session, *, committed: Callable[[], None], rolled_back: Callable[[], None]
) -> None:
    """Call ``committed`` once the session's current outermost transaction commits, or
    ``rolled_back`` once it ends without committing (savepoints inside it do not count): for
    work outside the database that must follow the transaction's outcome."""
    root = session.get_transaction()
    if root is None:
        msg = "after_outcome needs a transaction in progress"
        raise RuntimeError(msg)
    outcome = {"committed": False}

    def on_commit(ending: Session) -> None:
        if ending.get_nested_transaction() is None and ending.get_transaction() is root:
            outcome["committed"] = True

    def on_end(_ending: Session, transaction: SessionTransaction) -> None:
        if transaction is root:
            (committed if outcome["committed"] else rolled_back)()

    event.listen(session, "after_commit", on_commit)
    event.listen(session, "after_transaction_end", on_end)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _request_db(request: Request) -> Session:
    session_factory = request.registry["db.session_factory"]
    return get_tm_session(session_factory, request.tm, read_only=request.method in _READ_METHODS)


def includeme(config: Configurator) -> None:
    """Register the engine, the session factory and ``request.db`` (one per request)."""
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    engine = settings.get("db.engine") or create_engine_from_settings(settings)
    config.registry["db.engine"] = engine
    config.registry["db.session_factory"] = get_session_factory(engine)
    config.add_request_method(_request_db, "db", reify=True)
