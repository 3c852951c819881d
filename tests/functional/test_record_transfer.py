"""Patient record transfer between two OpenGPs (GP2GP): two real `opengp serve` processes,
the old practice on one database and the new on the other, a synthetic patient with a real
record moved with `opengp transfer pull`.

After a transfer the new practice holds every resource of the patient's `$everything` with
the same clinical content, one Provenance names the source, the patient is registered here
and the old registration is finished there; running it again changes nothing; a failure
halfway (a corrupt resource, the old server stopped mid-pull) leaves the new side as it was,
and running it again then completes it.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
from sqlalchemy import Connection, Engine, func, select, update

from opengp.access.clients import register_client
from opengp.access.principal import Principal
from opengp.cli import main
from opengp.demo.load import seed
from opengp.demo.model import DemoConfig
from opengp.fhir import jsonio
from opengp.fhir.references import iter_references, parse_relative
from opengp.services.fhir import guard
from opengp.services.transfer import records
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.audit import query_audit
from opengp.store.sql.dialects import make_engine
from opengp.store.sql.tables import resource, resource_version
from tests.conftest import _empty
from tests.functional.conftest import NHS_NUMBER, patient
from tests.functional.server import Server, free_port

OLD_PRACTICE = DemoConfig(patients=8, seed=5, as_of=date(2026, 11, 1))
NEW_PRACTICE = DemoConfig(patients=2, seed=6, as_of=date(2026, 11, 1))
MIGRATION_SCOPES = "system/*.rs system/EpisodeOfCare.u"
TRANSFER_POLICY = "https://digital.nhs.uk/services/gp2gp"


@dataclass
class Side:
    database_url: str
    server: Server
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.database_url)

    @property
    def fhir(self) -> str:
        return f"{self.server.url}/fhir"

    def content(self, resource_type: str, id: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            data = conn.scalar(
                select(resource.c.content).where(
                    resource.c.resource_type == resource_type, resource.c.id == id
                )
            )
        return None if data is None else dict(jsonio.loads(data))

    def contents(self, resource_type: str) -> list[dict[str, Any]]:
        with self.connect() as conn:
            rows = conn.scalars(
                select(resource.c.content).where(resource.c.resource_type == resource_type)
            )
            return [dict(jsonio.loads(data)) for data in rows if data is not None]

    def counts(self) -> tuple[int, int]:
        """Resources and versions held: what any write would change."""
        with self.connect() as conn:
            resources = conn.scalar(select(func.count()).select_from(resource))
            versions = conn.scalar(select(func.count()).select_from(resource_version))
        return int(resources or 0), int(versions or 0)

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection to the side's database, committed at the end."""
        return self.engine.begin()


@dataclass
class Transfer:
    old: Side
    new: Side
    client_id: str
    secret: str
    nhs_number: str
    source_id: str  # the Patient's id at the old practice
    episode_id: str  # the old registration
    practice_ods: str  # the new practice

    def argv(self, base: str | None = None, **changed: str) -> list[str]:
        values = {
            "--from": base or self.old.fhir,
            "--client-id": self.client_id,
            "--client-secret": self.secret,
            "--nhs-number": self.nhs_number,
            "--practice": self.practice_ods,
            "--database": self.new.database_url,
            **changed,
        }
        # --name=value: a secret may begin with "-".
        return ["transfer", "pull", *(f"{name}={value}" for name, value in values.items())]

    @property
    def patient_here(self) -> str:
        return records.local_id(self.old.fhir, "Patient", self.source_id)


def _seeded(url: str, config: DemoConfig) -> None:
    store = SqlStore.from_url(url)
    try:
        upgrade(store.engine)
        seed(store, config)
    finally:
        store.dispose()


def _registered_patient(side: Side) -> tuple[str, str, str]:
    """(NHS number, Patient id, registration EpisodeOfCare id) of the living patient with
    the biggest record at the old practice."""
    with side.connect() as conn:
        everything = [bytes(c) for c in conn.scalars(select(resource.c.content)) if c]
    episodes = {
        e["patient"]["reference"]: e["id"]
        for e in side.contents("EpisodeOfCare")
        if e["status"] == "active"
    }
    biggest = max(episodes, key=lambda ref: sum(ref.encode() in c for c in everything))
    id = biggest.removeprefix("Patient/")
    found = side.content("Patient", id)
    assert found is not None
    number = next(i["value"] for i in found["identifier"] if i["system"] == NHS_NUMBER)
    return number, id, episodes[biggest]


def _token(side: Side, scopes: str = "system/*.rs") -> dict[str, str]:
    return side.server.authorization(scopes)


def _everything(side: Side, patient_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The patient's $everything at `side`, every page."""
    headers = _token(side)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    url: str | None = f"{side.fhir}/Patient/{patient_id}/$everything?_count=50"
    while url:
        page = httpx.get(url, headers=headers, timeout=30)
        assert page.status_code == 200, page.text
        bundle = jsonio.loads(page.content)
        for entry in bundle.get("entry", ()):
            body = entry["resource"]
            found.setdefault((body["resourceType"], body["id"]), body)
        url = next((x["url"] for x in bundle.get("link", ()) if x["relation"] == "next"), None)
    return found


@pytest.fixture
def transfer(
    request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path, key_file: Path
) -> Iterator[Transfer]:
    """The old practice and the new, one on SQLite and the other on PostgreSQL (old on
    SQLite unless the test asks for "postgres-to-sqlite"), each served by `opengp serve`,
    and a migration client the old practice registered for the new one."""
    engine = make_engine(postgres_url)
    _empty(engine)
    engine.dispose()
    sqlite_url = f"sqlite:///{tmp_path / 'practice.db'}"
    old_url, new_url = sqlite_url, postgres_url
    if getattr(request, "param", "sqlite-to-postgres") == "postgres-to-sqlite":
        old_url, new_url = postgres_url, sqlite_url
    _seeded(old_url, OLD_PRACTICE)
    _seeded(new_url, NEW_PRACTICE)
    servers = [
        Server(old_url, tmp_path / "old.log", key_file),
        Server(new_url, tmp_path / "new.log", key_file),
    ]
    with ThreadPoolExecutor(2) as starting:  # each waits for its server to be ready
        list(starting.map(Server.start, servers))
    old, new = Side(old_url, servers[0]), Side(new_url, servers[1])
    try:
        store = SqlStore.from_url(old_url)
        try:
            with store.writing() as tx:
                client_id, secret = register_client(
                    tx.conn, "Riverside Surgery", MIGRATION_SCOPES, purpose="migration"
                )
        finally:
            store.dispose()
        assert secret is not None
        number, source_id, episode_id = _registered_patient(old)
        ods = _practice(new)["identifier"][0]["value"]
        yield Transfer(old, new, client_id, secret, number, source_id, episode_id, ods)
    finally:
        old.server.stop()
        new.server.stop()
        old.engine.dispose()
        new.engine.dispose()


def _practice(side: Side) -> dict[str, Any]:
    """The practice's Organization (the synthetic practice has one healthcare provider)."""
    return next(
        o for o in side.contents("Organization") if o["type"][0]["coding"][0]["code"] == "prov"
    )


def _mapped(base: str, reference: str) -> set[str]:
    """What a reference at the old practice may become here: the id here of what it names
    (pulled with the record), or its absolute URL there (not pulled)."""
    literal = parse_relative(reference)
    if literal is None:
        return {reference}
    absolute = f"{base}/{reference}"
    if literal.version_id is not None:
        return {absolute}
    here = uuid.uuid5(uuid.NAMESPACE_URL, absolute)
    return {f"{literal.resource_type}/{here}", absolute}


def _same_content(base: str, there: Any, here: Any, path: str = "") -> list[str]:
    """Where `here` differs from `there` other than in ids, references and server meta."""
    if isinstance(there, dict) and isinstance(here, dict):
        keys = (set(there) | set(here)) - {"id"}
        if path.endswith("meta"):
            keys -= {"versionId", "lastUpdated"}
        differences = []
        for key in sorted(keys):
            if key == "reference" and isinstance(there.get(key), str):
                if here.get(key) not in _mapped(base, there[key]):
                    differences.append(f"{path}.reference")
                continue
            differences += _same_content(base, there.get(key), here.get(key), f"{path}.{key}")
        return differences
    if isinstance(there, list) and isinstance(here, list) and len(there) == len(here):
        return [
            d for a, b in zip(there, here, strict=True) for d in _same_content(base, a, b, path)
        ]
    return [] if there == here else [path]


def _today() -> str:
    return datetime.now(ZoneInfo("Europe/London")).date().isoformat()


@pytest.mark.parametrize("transfer", ["sqlite-to-postgres", "postgres-to-sqlite"], indirect=True)
def test_a_record_moves_whole_with_provenance_and_the_registration_moves_with_it(
    transfer: Transfer, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = transfer.old, transfer.new
    source = _everything(old, transfer.source_id)
    assert len(source) > 20  # a real record: consultations, problems, medicines, results

    assert main(transfer.argv()) == 0
    out = capsys.readouterr().out
    assert f"as Patient/{transfer.patient_here}" in out
    assert "Ended the registration at the old practice" in out

    # Every resource of the old $everything is here, its clinical content unchanged.
    base = old.fhir
    for (kind, id), there in source.items():
        here = new.content(kind, records.local_id(base, kind, id))
        assert here is not None, f"{kind}/{id} was not transferred"
        differences = _same_content(base, there, here)
        if kind == "Patient":
            # Registered here now: the new practice is their GP and manages the record.
            changed = {d.split(".")[1] for d in differences}
            assert changed == {"generalPractitioner", "managingOrganization"}
            practice = here["managingOrganization"]["reference"]
            assert here["generalPractitioner"] == [here["managingOrganization"]]
            assert new.content(*practice.split("/")) is not None
        elif (kind, id) == ("EpisodeOfCare", transfer.episode_id):
            # The old registration, as it now stands: finished the day the new one began.
            assert sorted(differences) == [".period.end", ".status"], differences
            assert (here["status"], here["period"]["end"]) == ("finished", _today())
        else:
            assert differences == [], f"{kind}/{id} changed: {differences}"

    # Every reference of the record here resolves here (or names the old server).
    held = _everything(new, transfer.patient_here)
    assert len(held) >= len(source)
    for body in held.values():
        for _, ref in iter_references(body):
            literal = parse_relative(ref["reference"])
            if literal is not None:
                target = new.content(literal.resource_type, literal.id)
                assert target is not None, f"{ref['reference']} does not resolve here"

    # One registration here, active, at the new practice.
    registrations = [
        e
        for e in new.contents("EpisodeOfCare")
        if e["patient"]["reference"] == f"Patient/{transfer.patient_here}"
        and e["status"] == "active"
    ]
    assert len(registrations) == 1
    assert registrations[0]["period"] == {"start": _today()}
    assert registrations[0]["managingOrganization"]["reference"] == practice

    # One Provenance names the source, the policy and every resource written.
    provenances = [p for p in new.contents("Provenance") if p.get("policy") == [TRANSFER_POLICY]]
    assert len(provenances) == 1
    provenance = provenances[0]
    targets = {t["reference"].split("/_history/")[0] for t in provenance["target"]}
    assert f"Patient/{transfer.patient_here}" in targets
    assert f"EpisodeOfCare/{registrations[0]['id']}" in targets
    assert len(targets) == len(provenance["target"]) >= len(source)
    source_url = f"{base}/Patient/{transfer.source_id}"
    assert provenance["entity"] == [
        {"role": "source", "what": {"reference": source_url, "display": "the record transferred"}}
    ]
    custodian = next(
        a for a in provenance["agent"] if a["type"]["coding"][0]["code"] == "custodian"
    )
    assert custodian["who"]["identifier"] == _practice(old)["identifier"][0]
    assert "GP2GP" in provenance["activity"]["text"]

    # At the old practice: the registration is finished, the record is kept, all audited.
    episode = old.content("EpisodeOfCare", transfer.episode_id)
    assert episode is not None
    assert (episode["status"], episode["period"]["end"]) == ("finished", _today())
    assert old.content("Patient", transfer.source_id) is not None
    with old.connect() as conn:
        trail = query_audit(conn, principal=f"system/{transfer.client_id}", count=500)
    actions = {(row.action, row.outcome) for row in trail}
    assert {("search", "success"), ("patch", "success")} <= actions
    assert {row.purpose for row in trail if row.action in ("search", "read", "patch")} == {
        "migration"
    }
    written_there = [
        p
        for p in old.contents("Provenance")
        if p["target"][0]["reference"].startswith(f"EpisodeOfCare/{transfer.episode_id}/")
    ]
    assert len(written_there) == 1  # the old server's own record of who ended it

    # Run again: nothing changes on either side.
    before_here, before_there = new.counts(), old.counts()
    assert main(transfer.argv()) == 0
    out = capsys.readouterr().out
    assert "already received: nothing to add" in out
    assert "already ended" in out
    assert new.counts() == before_here
    assert old.counts() == before_there


class _Proxy:
    """A loopback HTTP relay to the old server that can call `after` once a request whose
    path contains `trigger` has been answered (to stop the old server mid-pull)."""

    def __init__(self, target: str, trigger: str, after: Callable[[], None]) -> None:
        self.target = urlsplit(target)
        self.trigger, self.after = trigger, after
        self.armed = True
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(
                    relay.target.hostname, relay.target.port, timeout=30
                )
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                except OSError:
                    self.close_connection = True
                    return
                finally:
                    conn.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if relay.armed and relay.trigger in self.path:
                    relay.armed = False
                    relay.after()

            do_GET = do_POST = do_PATCH = _relay

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_the_old_server_stopping_mid_pull_leaves_nothing_here_and_a_rerun_completes(
    transfer: Transfer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "PAGE_SIZE", 5)  # several pages: stop between them
    proxy = _Proxy(transfer.old.server.url, "$everything", transfer.old.server.kill_hard)
    try:
        before = transfer.new.counts()
        assert main(transfer.argv(f"{proxy.url}/fhir")) == 1
        assert "cannot be reached" in capsys.readouterr().err
        assert transfer.new.counts() == before  # nothing half-imported
        episode = transfer.old.content("EpisodeOfCare", transfer.episode_id)
        assert episode is not None and episode["status"] == "active"

        transfer.old.server.start()  # back again, on the same port
        assert main(transfer.argv(f"{proxy.url}/fhir")) == 0
        assert "Ended the registration" in capsys.readouterr().out
    finally:
        proxy.close()
    ended = transfer.old.content("EpisodeOfCare", transfer.episode_id)
    assert ended is not None and ended["status"] == "finished"
    base = f"{proxy.url}/fhir"
    here = transfer.new.content("Patient", records.local_id(base, "Patient", transfer.source_id))
    assert here is not None


def test_a_corrupt_resource_stops_the_transfer_before_anything_is_written(
    transfer: Transfer, capsys: pytest.CaptureFixture[str]
) -> None:
    everything = _everything(transfer.old, transfer.source_id)
    broken_id = next(id for kind, id in everything if kind == "Observation")
    good = transfer.old.content("Observation", broken_id)
    assert good is not None
    corrupt = {**good, "status": "not-a-status"}
    with transfer.old.connect() as conn:
        stored = resource.c
        conn.execute(
            update(resource)
            .where(stored.resource_type == "Observation", stored.id == broken_id)
            .values(content=jsonio.dumps(corrupt))
        )
    before = transfer.new.counts()
    assert main(transfer.argv()) == 1
    err = capsys.readouterr().err
    assert f"Observation/{broken_id} from the old practice is not valid here" in err
    assert transfer.new.counts() == before
    episode = transfer.old.content("EpisodeOfCare", transfer.episode_id)
    assert episode is not None and episode["status"] == "active"

    with transfer.old.connect() as conn:
        conn.execute(
            update(resource)
            .where(stored.resource_type == "Observation", stored.id == broken_id)
            .values(content=jsonio.dumps(good))
        )
    assert main(transfer.argv()) == 0
    copy = transfer.new.content(
        "Observation", records.local_id(transfer.old.fhir, "Observation", broken_id)
    )
    assert copy is not None and copy["status"] == good["status"]


def test_bad_input_and_the_wrong_patient_are_plain_errors(
    transfer: Transfer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for changed, message in (
        ({"--nhs-number": "9434765918"}, "not a valid NHS number"),
        ({"--nhs-number": "12345"}, "not a valid NHS number"),
        ({"--from": "ftp://old.example/fhir"}, "must be https"),
        ({"--from": "http://old.example.org/fhir"}, "must be https"),
        ({"--from": "not a url"}, "is not a URL"),
        ({"--practice": "!!"}, "is not an ODS code"),
    ):
        with pytest.raises(SystemExit) as exit:
            main(transfer.argv(**changed))
        assert exit.value.code == 2
        assert message in capsys.readouterr().err

    monkeypatch.delenv("OPENGP_TRANSFER_CLIENT_SECRET", raising=False)
    no_secret = [a for a in transfer.argv() if not a.startswith("--client-secret")]
    with pytest.raises(SystemExit) as exit:
        main(no_secret)
    assert exit.value.code == 2
    assert "give the client secret" in capsys.readouterr().err

    before = transfer.new.counts()
    for changed, message in (
        ({"--client-secret": "wrong"}, "refused the client id and secret"),
        ({"--nhs-number": "9434765919"}, "no patient with NHS number 9434765919"),
        ({"--practice": "ZZZ99"}, "no organisation here has ODS code ZZZ99"),
    ):
        assert main(transfer.argv(**changed)) == 1
        assert message in capsys.readouterr().err
    assert transfer.new.counts() == before

    # A client the old practice registered for direct care, not for migration.
    store = SqlStore.from_url(transfer.old.database_url)
    try:
        with store.writing() as tx:
            other, other_secret = register_client(tx.conn, "Clinic", MIGRATION_SCOPES)
    finally:
        store.dispose()
    direct = {"--client-id": other, "--client-secret": other_secret or ""}
    assert main(transfer.argv(**direct)) == 1
    assert "needs a client registered there with --purpose migration" in capsys.readouterr().err
    assert transfer.new.counts() == before

    # Two patients with the number at the old practice: which record is theirs is unknown.
    twin = patient(transfer.nhs_number)
    headers = _token(transfer.old, "system/Patient.cruds")
    created = httpx.post(f"{transfer.old.fhir}/Patient", json=twin, headers=headers)
    assert created.status_code == 201, created.text
    assert main(transfer.argv()) == 1
    assert "more than one patient has NHS number" in capsys.readouterr().err
    httpx.delete(f"{transfer.old.fhir}/Patient/{created.json()['id']}", headers=headers)

    # Someone with the number is already registered here.
    headers = _token(transfer.new, "system/Patient.cruds")
    here = httpx.post(f"{transfer.new.fhir}/Patient", json=twin, headers=headers)
    assert here.status_code == 201, here.text
    assert main(transfer.argv()) == 1
    assert "is already registered here" in capsys.readouterr().err
    assert transfer.new.counts() == (before[0] + 2, before[1] + 2)  # that Patient, its Provenance
    episode = transfer.old.content("EpisodeOfCare", transfer.episode_id)
    assert episode is not None and episode["status"] == "active"


def test_the_capability_statement_names_bulk_export(transfer: Transfer) -> None:
    statement = httpx.get(f"{transfer.new.fhir}/metadata").json()
    rest = statement["rest"][0]
    bulk = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
    assert {"name": "export", "definition": f"{bulk}/export"} in rest["operation"]
    by_type = {r["type"]: r.get("operation", []) for r in rest["resource"]}
    assert {"name": "export", "definition": f"{bulk}/patient-export"} in by_type["Patient"]
    assert {"name": "export", "definition": f"{bulk}/group-export"} in by_type["Group"]
    assert any(o["name"] == "everything" for o in by_type["Patient"])
    assert by_type["Observation"] == []


def test_ending_the_old_registration_failing_is_reported_and_a_rerun_ends_it(
    transfer: Transfer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The old server stops just after it has said which registration is open.
    proxy = _Proxy(transfer.old.server.url, "EpisodeOfCare?patient", transfer.old.server.kill_hard)
    base = f"{proxy.url}/fhir"
    try:
        assert main(transfer.argv(base)) == 1
        err = capsys.readouterr().err
        assert "the registration at the old practice is still open" in err
        assert "run the transfer again" in err
        here = records.local_id(base, "Patient", transfer.source_id)
        assert transfer.new.content("Patient", here) is not None  # the record arrived
        before = transfer.new.counts()

        transfer.old.server.start()
        assert main(transfer.argv(base)) == 0
        out = capsys.readouterr().out
        assert "already received: nothing to add" in out
        assert "Ended the registration at the old practice" in out
    finally:
        proxy.close()
    assert transfer.new.counts() == before
    ended = transfer.old.content("EpisodeOfCare", transfer.episode_id)
    assert ended is not None and ended["status"] == "finished"


def test_after_the_transfer_the_old_practice_has_no_relationship_through_the_registration(
    transfer: Transfer,
) -> None:
    organization = _practice(transfer.old)["id"]
    staff = Principal("staff", "gp", "GP", organization_id=organization, roles=frozenset({"R8000"}))
    store = SqlStore.from_url(transfer.old.database_url)
    try:
        with store.reading() as tx:
            assert guard.relationships(tx)(staff, transfer.source_id) is True
        assert main(transfer.argv()) == 0
        with store.reading() as tx:
            assert guard.relationships(tx)(staff, transfer.source_id) is False
    finally:
        store.dispose()
    # The old Patient no longer names the practice; the record itself is kept there.
    patient = transfer.old.content("Patient", transfer.source_id)
    assert patient is not None and "managingOrganization" not in patient
    assert f"Organization/{organization}" not in str(patient.get("generalPractitioner"))
