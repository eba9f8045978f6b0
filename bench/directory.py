"""Directory search with 50,000 people: p99 < 20 ms (issue: foundation).

Measures ``directory.service.search_people`` for name prefixes, role and department filters and
external-id lookups on SQLite (and PostgreSQL when reachable), against a floor measured in the same
run: fetching one person by primary key.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError

from bench.common import report, summarize_ms
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.directory.models import Department, Person, PersonRole, Site
from carerelay.directory.service import PersonQuery, search_people

GIVEN = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ian", "Jo", "Kai", "Lea", "Max", "Nia", "Oto"]
SYLLABLES = ["ba", "ko", "ri", "tan", "mel", "sor", "vi", "den", "lu", "gar", "pe", "zu", "ham", "nor", "che"]


def populate(db: Database, people: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
        site = Site(code="B", name="Bench", timezone="America/Chicago")
        session.add(site)
        session.flush()
        depts = [Department(site_id=site.id, code=f"D{i}", name=f"Dept {i}") for i in range(40)]
        session.add_all(depts)
        session.flush()
        dept_ids = [d.id for d in depts]
    families = []
    batch: list[dict[str, object]] = []
    roles: list[dict[str, object]] = []
    for n in range(1, people + 1):
        family = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        given = rng.choice(GIVEN)
        families.append(family)
        batch.append({"id": n, "username": f"u{n}", "given_name": given, "family_name": family,
                      "display_name": f"{given} {family}", "profession": "nurse",
                      "department_id": rng.choice(dept_ids), "active": True, "family_key": family.lower(),
                      "given_key": given.lower(), "npi": f"{1000000000 + n}", "created_at": now, "updated_at": now})
        roles.append({"person_id": n, "role": rng.choice(["clinician", "nurse", "operator"])})
        if len(batch) == 5000:
            with db.unit_of_work() as session:
                session.execute(insert(Person), batch)
                session.execute(insert(PersonRole), roles)
            batch, roles = [], []
    if batch:
        with db.unit_of_work() as session:
            session.execute(insert(Person), batch)
            session.execute(insert(PersonRole), roles)
    return families


def run(url: str, label: str, people: int, queries: int) -> None:
    db = Database(make_engine(url, sqlite_synchronous="NORMAL"))
    upgrade(db.engine)
    families = populate(db, people)
    rng = random.Random(11)
    kinds: dict[str, Callable[[], PersonQuery]] = {
        "prefix": lambda: PersonQuery(q=rng.choice(families)[:3]),
        "two_words": lambda: PersonQuery(q=f"{rng.choice(families)[:4]} {rng.choice(GIVEN)[:1]}"),
        "role_dept": lambda: PersonQuery(role="operator", department_id=rng.randint(1, 40)),
        "external_id": lambda: PersonQuery(id_field="npi", id_value=str(1000000000 + rng.randint(1, people))),
    }
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    floor: list[float] = []
    with db.unit_of_work() as session:
        for _ in range(queries):
            for kind, make in kinds.items():
                query = make()
                started = time.perf_counter()
                search_people(session=session, query=query, limit=50)
                samples[kind].append(time.perf_counter() - started)
            pid = rng.randint(1, people)
            started = time.perf_counter()
            session.execute(select(Person).where(Person.id == pid)).scalar_one()
            floor.append(time.perf_counter() - started)
            session.expunge_all()
    metrics: dict[str, float] = {}
    floors: dict[str, float] = {}
    targets: dict[str, str] = {}
    floor_stats = summarize_ms(floor, "x")
    for kind, values in samples.items():
        stats = summarize_ms(values, f"search_{kind}")
        metrics.update(stats)
        floors[f"search_{kind}_p50_ms"] = floor_stats["x_p50_ms"]
        floors[f"search_{kind}_p99_ms"] = floor_stats["x_p99_ms"]
        targets[f"search_{kind}_p99_ms"] = "< 20"
    metrics["people"] = people
    report(f"directory-{label}", database=label, metrics=metrics, floor=floors, targets=targets,
           notes="floor: one person fetched by primary key in the same session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args.people, args.queries)
    try:
        import secrets

        from sqlalchemy import text

        schema = f"bench_{secrets.token_hex(3)}"
        admin = make_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            url = f"{args.postgres}?options=-csearch_path%3D{schema}"
            run(url, "postgresql", args.people, args.queries)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    except OperationalError as exc:
        print(f"PostgreSQL leg skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")


if __name__ == "__main__":
    main()
