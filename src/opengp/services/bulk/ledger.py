"""What an import or a verification has seen of its input, kept in a scratch SQLite file.

A practice can hold a million resources; their ids, the references between them and the
problems found are kept on disk here rather than in memory, so memory stays flat however
large the practice. The file is private to one run and thrown away after it (no journal,
no fsync: if the run dies, it starts again from the input).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from opengp.services.bulk.ndjson import Problem

_SCHEMA = """
CREATE TABLE item (
    type TEXT NOT NULL, id TEXT NOT NULL, file INTEGER NOT NULL, line INTEGER NOT NULL,
    ok INTEGER NOT NULL, hash TEXT, PRIMARY KEY (type, id)
) WITHOUT ROWID;
CREATE INDEX item_line ON item (file, line);
CREATE TABLE ref (file INTEGER NOT NULL, line INTEGER NOT NULL, type TEXT NOT NULL,
                  id TEXT NOT NULL);
CREATE TABLE missing (type TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (type, id))
    WITHOUT ROWID;
CREATE TABLE problem (file INTEGER NOT NULL, line INTEGER NOT NULL, code TEXT NOT NULL,
                      message TEXT NOT NULL, expression TEXT NOT NULL);
"""

# References from accepted lines to targets that are missing or were not accepted.
_BROKEN = """
SELECT r.file, r.line, r.type, r.id, t.file, t.line
FROM ref r
JOIN item s ON s.file = r.file AND s.line = r.line AND s.ok = 1
LEFT JOIN item t ON t.type = r.type AND t.id = r.id
WHERE (t.type IS NULL AND EXISTS (SELECT 1 FROM missing m WHERE m.type = r.type AND m.id = r.id))
   OR t.ok = 0
ORDER BY r.file, r.line
"""
# Built once every reference is recorded (by the first look-up by target): cheaper than
# keeping it up to date through hundreds of thousands of inserts.
_REF_TARGET = "CREATE INDEX IF NOT EXISTS ref_target ON ref (type, id)"


class Ledger:
    def __init__(self, path: Path, files: list[str]) -> None:
        self.files = files  # names, by the number the tables use
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(_SCHEMA)
        self.db.execute("BEGIN")

    def close(self) -> None:
        self.db.close()

    # ---- recording ----------------------------------------------------------------------

    def add(
        self, resource_type: str, id: str, file: int, line: int, *, ok: bool, hash: str = ""
    ) -> tuple[int, int] | None:
        """Record a resource; if its id was already seen, (file, line) of the first."""
        return self.add_many([(resource_type, id, file, line, ok, hash)]).get(0)

    def add_many(
        self, items: list[tuple[str, str, int, int, bool, str]]
    ) -> dict[int, tuple[int, int]]:
        """Record resources (type, id, file, line, ok, hash); for those whose id was seen
        before (here or earlier in `items`), by position: (file, line) of the first."""
        before = self.db.total_changes
        self.db.executemany("INSERT OR IGNORE INTO item VALUES (?, ?, ?, ?, ?, ?)", items)
        if self.db.total_changes - before == len(items):
            return {}
        seen = {}
        for position, (resource_type, id, file, line, _, _) in enumerate(items):
            first = self.db.execute(
                "SELECT file, line FROM item WHERE type = ? AND id = ?", (resource_type, id)
            ).fetchone()
            if (first[0], first[1]) != (file, line):
                seen[position] = (int(first[0]), int(first[1]))
        return seen

    def reject(self, file: int, line: int) -> None:
        self.db.execute("UPDATE item SET ok = 0 WHERE file = ? AND line = ?", (file, line))

    def add_refs(self, rows: Iterable[tuple[int, int, str, str]]) -> None:
        """Record references: (file, line) of the referring line, type and id referred to."""
        self.db.executemany("INSERT INTO ref VALUES (?, ?, ?, ?)", rows)

    def problem(self, problem: Problem, file: int) -> None:
        self.db.execute(
            "INSERT INTO problem VALUES (?, ?, ?, ?, ?)",
            (file, problem.line, problem.code, problem.message, "\x1f".join(problem.expression)),
        )

    # ---- references ---------------------------------------------------------------------

    def unknown_targets(self, batch: int = 1000) -> Iterator[list[tuple[str, str]]]:
        """Distinct targets of references that no input line holds, `batch` at a time."""
        self.db.execute(_REF_TARGET)
        cursor = self.db.execute(
            "SELECT DISTINCT r.type, r.id FROM ref r"
            " WHERE NOT EXISTS (SELECT 1 FROM item t WHERE t.type = r.type AND t.id = r.id)"
            " ORDER BY r.type, r.id"
        )
        while rows := cursor.fetchmany(batch):
            yield [(str(t), str(i)) for t, i in rows]

    def mark_missing(self, targets: Iterable[tuple[str, str]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO missing VALUES (?, ?)", list(targets))

    def find_missing(self, live: Callable[[str, list[str]], set[str]]) -> None:
        """Mark missing the referenced resources that no line holds and that `live` (which
        of these ids of a type the database holds) does not find."""
        for targets in self.unknown_targets():
            by_type: dict[str, list[str]] = {}
            for resource_type, id in targets:
                by_type.setdefault(resource_type, []).append(id)
            for resource_type, ids in by_type.items():
                found = live(resource_type, ids)
                self.mark_missing((resource_type, i) for i in ids if i not in found)

    def references_to_missing(self) -> Iterator[tuple[str, str, str, str]]:
        """(source type, source id, target type, target id) of references to missing targets."""
        self.db.execute(_REF_TARGET)
        cursor = self.db.execute(
            "SELECT s.type, s.id, r.type, r.id FROM ref r"
            " JOIN missing m ON m.type = r.type AND m.id = r.id"
            " JOIN item s ON s.file = r.file AND s.line = r.line"
            " ORDER BY s.type, s.id, r.type, r.id"
        )
        for row in cursor:
            yield str(row[0]), str(row[1]), str(row[2]), str(row[3])

    def reference_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM ref").fetchone()[0])

    def reject_broken_references(self) -> None:
        """Reject accepted lines referring to a missing or rejected resource, and then the
        lines referring to those, until every accepted line's references resolve."""
        may_break = (
            "SELECT EXISTS (SELECT 1 FROM missing) OR EXISTS (SELECT 1 FROM item WHERE ok = 0)"
        )
        if not self.db.execute(may_break).fetchone()[0]:
            return  # every target is in the input, accepted, or in the database
        while True:
            rejected: dict[tuple[int, int], Problem] = {}
            for file, line, rtype, rid, tfile, tline in self.db.execute(_BROKEN).fetchall():
                if (file, line) in rejected:
                    continue
                if tfile is None:
                    why = "which is neither in the input nor in the database"
                else:
                    why = f"which is not imported ({self.where(tfile, tline)} has a problem)"
                message = f"refers to {rtype}/{rid}, {why}"
                rejected[(file, line)] = Problem(self.files[file], line, message, "not-found")
            if not rejected:
                return
            for (file, line), problem in rejected.items():
                self.reject(file, line)
                self.problem(problem, file)

    def where(self, file: int, line: int) -> str:
        return f"{self.files[file]} line {line}"

    # ---- reading back -------------------------------------------------------------------

    def accepted_lines(self, file: int) -> Iterator[tuple[int, str]]:
        """(line, hash) of the accepted lines of a file, in order."""
        cursor = self.db.execute(
            "SELECT line, hash FROM item WHERE file = ? AND ok = 1 ORDER BY line", (file,)
        )
        for line, hash in cursor:
            yield int(line), str(hash)

    def count(self, *, ok: bool | None = None) -> int:
        query = "SELECT count(*) FROM item" + ("" if ok is None else " WHERE ok = ?")
        row = self.db.execute(query, () if ok is None else (int(ok),)).fetchone()
        return int(row[0])

    def problems(self) -> Iterator[Problem]:
        cursor = self.db.execute(
            "SELECT file, line, code, message, expression FROM problem ORDER BY file, line, rowid"
        )
        for file, line, code, message, expression in cursor:
            where = tuple(expression.split("\x1f")) if expression else ()
            yield Problem(self.files[file], int(line), str(message), str(code), where)

    def problem_counts(self) -> tuple[int, int]:
        """(problems, distinct lines with a problem)."""
        row = self.db.execute(
            "SELECT count(*), count(DISTINCT file || ':' || line) FROM problem"
        ).fetchone()
        return int(row[0]), int(row[1])

    def types(self) -> list[str]:
        return [str(t) for (t,) in self.db.execute("SELECT DISTINCT type FROM item ORDER BY type")]

    def items(self, resource_type: str, batch: int = 1000) -> Iterator[list[tuple[str, str]]]:
        """(id, hash) of the resources of a type, in id order, `batch` at a time."""
        cursor = self.db.execute(
            "SELECT id, hash FROM item WHERE type = ? ORDER BY id", (resource_type,)
        )
        while rows := cursor.fetchmany(batch):
            yield [(str(i), str(h)) for i, h in rows]

    def known(self, resource_type: str, ids: list[str]) -> set[str]:
        marks = ",".join("?" * len(ids))
        query = f"SELECT id FROM item WHERE type = ? AND id IN ({marks})"
        return {str(i) for (i,) in self.db.execute(query, (resource_type, *ids))}
