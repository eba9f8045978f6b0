"""Flat files of assignments (and census), CSV with a configurable column map.

The feed's ``column_map`` names, for each of our fields, the file's column (default: the field's own
name): ``person`` (matched on the feed's ``id_field``, e.g. unique_id), ``unit``, ``room``, ``bed``,
``role`` (through the feed's ``role_map``, then our names and aliases), ``start`` and ``end`` (local
wall-clock time in the unit's zone unless they carry an offset; ``datetime_format`` for other
layouts; empty: the unit's current shift) and ``mrn`` (the census: checked against ADT, which stays
the source of truth, and reported when they differ). Other columns are ignored.

A header without a mapped required column, an unreadable file or a row that fails (unknown bed or
person, an end before its start, two primary nurses for one bed…) is reported by row and column;
nothing from the file is applied unless the feed applies valid rows (``feeds.apply_items``).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session

from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.scheduling.timeline import to_utc, zone
from carerelay.staffing import feeds
from carerelay.staffing.feeds import REQUIRED_FIELDS, FeedItem, RunReport
from carerelay.staffing.models import StaffingFeed, StaffingFeedRun
from carerelay.staffing.service import get_unit, settings_of

MAX_ROWS = 20_000
MAX_BYTES = 20 * 1024 * 1024


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _decode(content: bytes, encoding: str) -> str:
    text = content.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def _instant(text: str, unit_zone: str, fmt: str | None, column: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise Invalid(f"{text!r} is not a date and time ({fmt or 'YYYY-MM-DD HH:MM'})", field=column) from None
    if value.tzinfo is not None:
        return value.astimezone(zone("UTC"))
    return to_utc(value, zone(unit_zone), field=column)


def parse(session: Session, feed: StaffingFeed, content: bytes) -> tuple[list[FeedItem], list[dict[str, object]]]:
    """The file's rows as feed items, or the header's problems (row 1) when it cannot be read."""
    columns = feed.column_map
    names = {ours: theirs for ours, theirs in columns.items()}
    try:
        text = _decode(content, feed.config.get("encoding", "utf-8"))
    except (UnicodeDecodeError, LookupError):
        return [], [{"row": 1, "where": "file", "field": "file",
                     "message": f"not {feed.config.get('encoding', 'utf-8')} text"}]
    reader = csv.DictReader(io.StringIO(text), delimiter=feed.config.get("delimiter", ","))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        return [], [{"row": 1, "where": "header", "field": "header", "message": "the file is empty: expected a "
                     f"header row with {', '.join(names[f] for f in REQUIRED_FIELDS)}"}]
    lowered = [h.lower() for h in header]
    problems: list[dict[str, object]] = [
        {"row": 1, "where": "header", "field": names[f], "message": f"missing column {names[f]!r} (the {f})"}
        for f in REQUIRED_FIELDS if names[f].lower() not in lowered]
    problems += [{"row": 1, "where": "header", "field": h, "message": f"column {h!r} appears twice"}
                 for h in sorted(set(header)) if header.count(h) > 1]
    if problems:
        return [], problems
    position = {ours: lowered.index(theirs.lower()) for ours, theirs in names.items() if theirs.lower() in lowered}
    zones: dict[str, str] = {}
    items: list[FeedItem] = []
    raw_reader = csv.reader(io.StringIO(text), delimiter=feed.config.get("delimiter", ","))
    next(raw_reader, None)
    for row_no, values in enumerate(raw_reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(items) >= MAX_ROWS:
            return [], [{"row": row_no, "where": "file", "field": "file", "message": f"more than {MAX_ROWS} rows"}]

        def get(ours: str, values: list[str] = values) -> str:
            index = position.get(ours)
            return values[index].strip() if index is not None and index < len(values) else ""

        item = FeedItem(where=f"row {row_no}", row=row_no, person=get("person"), unit=get("unit"), role=get("role"),
                        room=get("room"), bed=get("bed"), mrn=get("mrn"), fields=dict(names))
        if len(values) > len(header):
            items.append(replace(item, problem=("row", f"{len(values)} values for {len(header)} columns")))
            continue
        try:
            if item.unit not in zones:
                zones[item.unit] = settings_of(session, get_unit(session, item.unit)).timezone
            fmt = feed.config.get("datetime_format")
            item = replace(item, starts_at=_instant(get("start"), zones[item.unit], fmt, "start"),
                           ends_at=_instant(get("end"), zones[item.unit], fmt, "end"))
        except Invalid as exc:
            items.append(replace(item, problem=(exc.field or "row", exc.message)))
            continue
        items.append(item)
    return items, []


def import_file(*, session: Session, clock: Clock, feed: StaffingFeed, name: str, content: bytes, trigger: str,
                on_row: Callable[[int], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> RunReport:
    """One file through the pipeline, recorded as a run of the feed (even when refused whole)."""
    run: StaffingFeedRun = feeds.start_run(session, clock, feed, trigger, file_name=name[:300],
                                           file_sha256=sha256(content))
    if len(content) > MAX_BYTES:
        run.errors = [{"row": None, "where": "file", "field": "file",
                       "message": f"larger than {MAX_BYTES // (1024 * 1024)} MB"}]
        feeds.finish_rejected(session, clock, feed, run)
        return RunReport(run)
    items, header_problems = parse(session, feed, content)
    if header_problems:
        run.errors = header_problems
        feeds.finish_rejected(session, clock, feed, run)
        return RunReport(run)
    if on_total is not None:
        on_total(len(items))
    snapshot = feed.config.get("mode", "snapshot") == "snapshot"
    units = (list(feed.config.get("units") or sorted({i.unit for i in items if i.unit})) if snapshot else [])
    return feeds.apply_items(session=session, clock=clock, feed=feed, run=run, items=items,
                             source=feeds.feed_source(feed),
                             describe=lambda item: f"from file {name} {item.where}", snapshot_units=units,
                             on_item=on_row)
