"""Search index tables: one per parameter kind, typed, each with the composite index its
queries use. Change them only together with a new Alembic migration.

Every row names its resource (resource_type, resource_id) and the parameter (`param`, the
search parameter's code; composite parameters fold their leading components into it, see
opengp.search.model). Ranges are half-open [low, high). Why this layout rather than one
generic table or a column per parameter: docs/architecture.md, "Search indexes".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import orjson
from psycopg import abc
from psycopg._copy_base import format_row_binary as _encode  # Copy.write_row's own, in C
from psycopg.adapt import Transformer
from psycopg.postgres import types as pg_types
from psycopg.pq import Format
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.schema import Column as ColumnType

from opengp.search import fulltext
from opengp.search.extract import index_rows
from opengp.search.model import (
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)
from opengp.store.sql.indexing import identifier_rows
from opengp.store.sql.tables import (
    UtcDateTime,
    identifier_index,
    metadata,
    resource,
    resource_version,
)

# SQLite inserts a table's rows in one statement from this many bytes of them: it then works
# without Python's lock, but a statement costs ~30 µs more than `executemany` of a few rows
# (measured: single-resource writes 19% slower when every statement took that way).
JSON_EACH_FROM = 16 * 1024
# Index columns hold this many characters; longer values are indexed (and queried, see
# `fit`) by their first WIDTH characters. Real codes, names and identifiers are far shorter.
WIDTH = 255


def fit(value: str) -> str:
    return value[:WIDTH]


def _owner() -> list[ColumnType[Any]]:
    return [
        Column("resource_type", String(64), nullable=False),
        Column("resource_id", String(64), nullable=False),
        Column("param", TEXT, nullable=False),
    ]


# Byte order on PostgreSQL (as SQLite's BINARY): prefix matches are index range scans
# (value >= 'smi' AND value < 'smi' || U+10FFFF) whatever the database's locale.
TEXT = String(WIDTH).with_variant(String(WIDTH, collation="C"), "postgresql")


def _text(name: str, nullable: bool = True) -> ColumnType[str]:
    return Column(name, TEXT, nullable=nullable)


search_string = Table(
    "search_string",
    metadata,
    # (resource_type, resource_id, param): one resource's values of one parameter, for
    # sorting (a correlated min/max) and for replacing a resource's rows.
    *_owner(),
    _text("value", False),
    _text("exact", False),
    Index("ix_search_string_value", "resource_type", "param", "value"),
    Index("ix_search_string_resource", "resource_type", "resource_id", "param"),
)
search_token = Table(
    "search_token",
    metadata,
    *_owner(),
    _text("system"),
    _text("code"),
    _text("text"),
    Index("ix_search_token_code", "resource_type", "param", "code", "system"),
    Index("ix_search_token_resource", "resource_type", "resource_id", "param"),
)
search_date = Table(
    "search_date",
    metadata,
    *_owner(),
    Column("low", UtcDateTime, nullable=False),
    Column("high", UtcDateTime, nullable=False),
    Index("ix_search_date_low", "resource_type", "param", "low", "high"),
    Index("ix_search_date_resource", "resource_type", "resource_id", "param"),
)
search_number = Table(
    "search_number",
    metadata,
    *_owner(),
    Column("value", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    Index("ix_search_number_low", "resource_type", "param", "low", "high"),
    Index("ix_search_number_resource", "resource_type", "resource_id", "param"),
)
search_quantity = Table(
    "search_quantity",
    metadata,
    *_owner(),
    Column("value", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    _text("system"),
    _text("code"),
    _text("unit"),
    Index("ix_search_quantity_low", "resource_type", "param", "low", "high"),
    Index("ix_search_quantity_resource", "resource_type", "resource_id", "param"),
)
search_reference = Table(
    "search_reference",
    metadata,
    *_owner(),
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    _text("url"),
    _text("version"),
    # Forward (Observation?patient=123) and reverse (_revinclude, _has, compartments).
    Index("ix_search_reference_target", "resource_type", "param", "target_id", "target_type"),
    Index("ix_search_reference_reverse", "target_id", "target_type", "resource_type"),
    Index("ix_search_reference_url", "resource_type", "param", "url"),
    Index("ix_search_reference_resource", "resource_type", "resource_id", "param"),
)
search_uri = Table(
    "search_uri",
    metadata,
    *_owner(),
    _text("uri", False),
    Index("ix_search_uri_value", "resource_type", "param", "uri"),
    Index("ix_search_uri_resource", "resource_type", "resource_id", "param"),
)

# Words for _text (the narrative) and _content (all of the resource's text). The word index
# is the database's own, made by the migration: an FTS5 table kept in step by triggers on
# SQLite (search_text_fts), GIN indexes of to_tsvector('english', ...) on PostgreSQL.
search_text = Table(
    "search_text",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("narrative", Text, nullable=False),
    Column("content", Text, nullable=False),
    Index("ix_search_text_resource", "resource_type", "resource_id"),
)
FULL_TEXT_CONFIGURATION = "english"  # PostgreSQL; SQLite's tokenizer is porter unicode61

# Which search definitions the rows were built from (see reindex.py).
search_state = Table(
    "search_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

# Results of a search that has more than one page, kept in order so that following the
# next/previous links never skips or repeats a result, however the data changes meanwhile.
search_snapshot = Table(
    "search_snapshot",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(255), nullable=False),  # who searched: no one else may page it
    Column("query", String(64), nullable=False),  # digest of the search it answers
    Column("created", UtcDateTime, nullable=False),
    Column("total", Integer, nullable=False),
    Index("ix_search_snapshot_created", "created"),
)
search_snapshot_entry = Table(
    "search_snapshot_entry",
    metadata,
    Column("snapshot_id", String(36), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
)

SEARCH_TABLES: tuple[Table, ...] = (
    search_string,
    search_token,
    search_date,
    search_number,
    search_quantity,
    search_reference,
    search_uri,
    search_text,
)
TABLE_OF: dict[type[Any], Table] = {
    StringRow: search_string,
    TokenRow: search_token,
    DateRow: search_date,
    NumberRow: search_number,
    QuantityRow: search_quantity,
    ReferenceRow: search_reference,
    UriRow: search_uri,
}
# A row (a named tuple) holds its table's columns after resource_type and resource_id.
_TABLE_NAME = {kind: table.name for kind, table in TABLE_OF.items()}


@lru_cache(maxsize=65536)  # the same few instants recur: period ends, whole days
def sqlite_time(value: datetime) -> str:
    """How SQLAlchemy's SQLite DATETIME stores UtcDateTime (naive UTC), so that the bound
    parameters of queries compare with these rows exactly."""
    utc = value.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y: unpadded on Linux (glibc), e.g. MIN_INSTANT
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    # The same text, a third of the cost: isoformat, without the "+00:00" it ends with.
    return utc.isoformat(" ", "microseconds")[:26]


class RowWriter:
    """Index rows written through the database driver: the bulk path inserts millions of
    rows, and per-row parameter processing by SQLAlchemy cost as much as the inserts
    themselves (docs/benchmarks.md, "Bulk import"). Rows are gathered per table (by name, so
    that rows made in another process travel cheaply) across all the resources added, then
    each table's rows go in one statement (`write`).

    Rows are encoded as they are gathered, into bytes that `write` sends as they are: on
    SQLite a JSON array (orjson), which one INSERT ... SELECT FROM json_each takes apart
    inside SQLite; on PostgreSQL the binary COPY format (psycopg's own encoder, in C). Rows
    made in another process travel as bytes, not as tuples of strings and datetimes, which
    cost several times more to pickle and unpickle than to encode; and the writing thread
    holds Python's lock for one statement per table, not for every row, so that other
    threads run while the database works (docs/benchmarks.md, "Rows encoded where they are
    made")."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.rows: dict[str, bytearray] = {}  # encoded rows, by table

    def add_resource(self, body: dict[str, Any]) -> None:
        """All the index rows of one resource (as stored: with resourceType and id)."""
        resource_type, id = body["resourceType"], body["id"]
        self.add(resource_type, id, index_rows(body))
        content = fulltext.content(body)
        if content:
            self.append(search_text.name, (resource_type, id, fulltext.narrative(body), content))
        # Kept for the previous release until a contract migration drops the table.
        for system, value in identifier_rows(body):
            self.append(identifier_index.name, (resource_type, id, system, value))

    def append(self, name: str, values: Sequence[Any]) -> None:
        """One row of table `name`: its values in column order (`_columns`)."""
        found = self.rows.get(name)
        if found is None:
            found = self.rows[name] = bytearray()
        if self.sqlite:
            blobs = _BLOBS.get(name)
            if blobs:
                values = [
                    v.decode() if i in blobs and v is not None else v for i, v in enumerate(values)
                ]
            found += orjson.dumps(values)
            found += b","
        else:
            _encode(values, _transformer(name), found)

    def add(self, resource_type: str, resource_id: str, rows: Iterable[IndexRow]) -> None:
        # Hot path (tens of rows a resource): exact type checks, a row's values as they are.
        sqlite, append = self.sqlite, self.append
        value: Any
        for row in rows:
            values: list[Any] = [resource_type, resource_id]
            for value in row:
                cls = type(value)
                if cls is str:
                    if len(value) > WIDTH:
                        value = value[:WIDTH]
                elif cls is Decimal:
                    value = float(value)
                elif cls is datetime and sqlite:
                    value = sqlite_time(value)
                values.append(value)
            append(_TABLE_NAME[type(row)], values)

    def encoded(self) -> dict[str, bytes]:
        """The rows gathered, to send to another process (bytes: pickled as they are)."""
        return {name: bytes(found) for name, found in self.rows.items()}

    def extend(self, rows: dict[str, bytes]) -> None:
        """Rows another writer of the same dialect gathered (`encoded`, in another process)."""
        for name, more in rows.items():
            found = self.rows.get(name)
            if found is None:
                self.rows[name] = bytearray(more)
            else:
                found += more

    def write(self, conn: Connection) -> None:
        """Every table's rows, in the connection's transaction, through the driver itself:
        one statement per table (`_insert`) on SQLite, one binary COPY per table on
        PostgreSQL (measured: even for a single resource's twenty-odd rows, COPY costs a
        third less than psycopg's executemany, whose pipeline handles each row in Python;
        and the binary format half the text format, which spells out the content bytes in
        hex)."""
        rows = [(name, found) for name, found in self.rows.items() if found]
        self.rows = {}
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            if self.sqlite:
                cursor = driver.cursor()
                for name, found in rows:
                    data = "[" + found[:-1].decode() + "]"
                    if len(found) < JSON_EACH_FROM:
                        cursor.executemany(_INSERTS[name], orjson.loads(data))
                    else:
                        cursor.execute(_INSERTS_JSON[name], (data,))
                cursor.close()
                return
            with driver.cursor() as cursor:
                for name, found in rows:
                    with cursor.copy(_COPIES[name]) as copy:
                        copy.write(_COPY_HEADER + found + _COPY_TRAILER)
        except conn.dialect.loaded_dbapi.IntegrityError as exc:
            # As SQLAlchemy reports it, which callers handle (e.g. a concurrent create).
            raise IntegrityError("insert of new rows", None, exc) from exc


def _columns(table: Table) -> list[ColumnType[Any]]:
    """The columns a row of `table` gives values for (all but an auto-incremented `seq`)."""
    return [c for c in table.columns if c.name != "seq"]


def _insert(table: Table, *, json_each: bool) -> str:
    """SQLite's insert of `table`'s rows, each an array of its values (a BLOB column's, sent
    as text, is cast back to its bytes): one row a time (`executemany`), or a JSON array of
    them all in one statement (`->>` gives each value as SQL text, integer, real or NULL)."""
    columns = _columns(table)
    values = [f"value->>{i}" if json_each else "?" for i in range(len(columns))]
    values = [
        f"CAST({v} AS BLOB)" if isinstance(c.type, LargeBinary) else v
        for v, c in zip(values, columns, strict=True)
    ]
    names = ", ".join(c.name for c in columns)
    if json_each:
        return f"INSERT INTO {table.name} ({names}) SELECT {', '.join(values)} FROM json_each(?)"
    return f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(values)})"


def _copy(table: Table) -> str:
    names = ", ".join(c.name for c in _columns(table))
    return f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)"


@cache
def _transformer(name: str) -> abc.Transformer:
    """psycopg's encoder of a row of table `name`, to PostgreSQL's binary format."""
    transformer = Transformer()
    oids = [pg_types[_PG_TYPES.get(type(c.type), "text")].oid for c in _columns(_TABLES[name])]
    transformer.set_dumper_types(oids, Format.BINARY)
    return transformer


# PostgreSQL's binary COPY format (documented with COPY): a signature, flags and header
# extension length (both 0) before the rows; -1 as the field count after them.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_PG_TYPES = {
    UtcDateTime: "timestamptz",
    Float: "float8",
    Integer: "int4",
    Boolean: "bool",
    LargeBinary: "bytea",
}  # the rest are strings
_WRITTEN = (*TABLE_OF.values(), search_text, identifier_index, resource, resource_version)
_TABLES = {t.name: t for t in _WRITTEN}
_INSERTS = {t.name: _insert(t, json_each=False) for t in _WRITTEN}
_INSERTS_JSON = {t.name: _insert(t, json_each=True) for t in _WRITTEN}
_BLOBS = {
    t.name: {i for i, c in enumerate(_columns(t)) if isinstance(c.type, LargeBinary)}
    for t in _WRITTEN
}
_COPIES = {t.name: _copy(t) for t in _WRITTEN}
