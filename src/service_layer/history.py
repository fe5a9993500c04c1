"""The history use cases: what one batch changed, and its undo (revert)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from domain.errors import BadRequest, Conflict, DuplicateKey, NotFound
from domain.ports import AbstractUnitOfWork, Row
from domain.query import Condition, OrderBy, Query, conjunction, key_condition
from domain.schema import CLAIMED_AT, GONE, HISTORY_ID, HISTORY_OPERATION, HISTORY_VALID_TO, Table
from service_layer.claims import keys_condition
from service_layer.ingest import IngestRequest, Listing, _BatchRun, check_request, get_batch
from service_layer.services import Clock, get_row, parse_key, table_of, utcnow

# A batch's change as /ingest/batches/{id}/changes tells it: the operation as the batch saw it.
_KIND = {"insert": "inserted", "update": "updated", "delete": "deleted", "retire": "retired", "revert": "reverted"}


def history_of(uow: AbstractUnitOfWork, table: Table) -> Table:
    if not table.history:
        raise BadRequest(f"The table '{table.name}' keeps no history",
                         hint="Declare it with history=True (the default for its data tables).")
    return uow.catalog[table.history_name]


def batch_changes(uow: AbstractUnitOfWork, batch_id: int, *, limit: int, offset: int) -> Listing:
    """What one batch did, row by row, in the order it did it: each change with the row's key, what
    kind it was, and its values (for an update, each column that changed with its old and new value,
    from the version before)."""
    batch = get_batch(uow, batch_id)
    table = uow.catalog[batch["table"]] if batch["table"] in uow.catalog else None
    if table is None or not table.history:
        return Listing([], offset, 0)
    history = uow.catalog[table.history_name]
    where = Condition(table.system.batch_id, "eq", batch_id)
    with uow.reading():
        repo = uow.repository(history.name)
        entries = repo.list(Query(where=where, order=(OrderBy(HISTORY_ID),), limit=limit, offset=offset))
        total = repo.count(where)
        before = _versions_before(repo, table, entries)
    # On a soft-delete table a row deleted or retired stays, as an update of its deleted_at: told as such.
    gone = "retired" if batch.get("disposition") == "replace_partition" else "deleted"
    return Listing([_change(table, e, before.get(e[HISTORY_ID]), gone) for e in entries], offset, total)


def _versions_before(repo, table: Table, entries: list[Row]) -> dict[int, Row]:
    """Each entry's previous version of its row (by history id), read in one statement: every version
    of the entries' keys older than the newest entry, grouped by key."""
    if not entries:
        return {}
    keys = list(dict.fromkeys(table.key_of(e) for e in entries))
    newest = max(e[HISTORY_ID] for e in entries)
    where = conjunction([keys_condition(table.primary_key, keys), Condition(HISTORY_ID, "lt", newest)])
    by_key: dict[tuple, list[Row]] = defaultdict(list)
    for version in repo.list(Query(where=where, order=(OrderBy(HISTORY_ID),))):
        by_key[table.key_of(version)].append(version)
    found = {}
    for entry in entries:
        older = [v for v in by_key[table.key_of(entry)] if v[HISTORY_ID] < entry[HISTORY_ID]]
        if older:
            found[entry[HISTORY_ID]] = older[-1]
    return found


def _change(table: Table, entry: Row, before: Row | None, gone: str = "deleted") -> Row:
    data = [c.name for c in table.writable_columns]
    change: Row = {
        HISTORY_ID: entry[HISTORY_ID],
        "key": {k: entry[k] for k in table.primary_key},
        "change": _KIND.get(entry[HISTORY_OPERATION], entry[HISTORY_OPERATION]),
        "at": entry[table.system.updated_at],
        "version": entry[table.system.version],
    }
    if table.has_provenance:
        change["source"] = entry[table.system.source]
    if entry[HISTORY_OPERATION] in GONE:
        change["old"] = {c: entry[c] for c in data}
    elif before is None or before[HISTORY_OPERATION] in GONE:
        change["new"] = {c: entry[c] for c in data}
    else:
        change["columns"] = {c: {"old": before[c], "new": entry[c]} for c in data if before[c] != entry[c]}
        if table.soft_delete and entry[HISTORY_OPERATION] == "update":
            deleted_at = table.system.deleted_at
            if before[deleted_at] is None and entry[deleted_at] is not None:
                change["change"] = gone
            elif before[deleted_at] is not None and entry[deleted_at] is None:
                change["change"] = "revived"
    change["current"] = entry[HISTORY_VALID_TO] is None
    return change


def revert_batch(uow: AbstractUnitOfWork, batch_id: int, *, force: bool = False, clock: Clock = utcnow) -> Row:
    """Undo one batch: every row it inserted, updated, retired or deleted is set back to its version
    before it (AbstractIngestRepository.revert), in one transaction. The revert is a batch itself
    (same table and source, idempotency key `revert:<id>`), so its changes have history and can be
    reverted in turn. A row changed again since is a `conflict`, left as it is unless `force`.
    The answer: the revert batch's report, with `reverts`, `deleted` and the `conflicts`."""
    original = get_batch(uow, batch_id)
    if original["table"] not in uow.catalog:
        raise BadRequest(f"The batch {batch_id} wrote to '{original['table']}', which the catalog no longer has")
    table = uow.catalog[original["table"]]
    history_of(uow, table)
    if not table.has_provenance:  # its history has no batch_id to find the batch's rows by
        raise BadRequest(f"The table '{table.name}' keeps no provenance: its batches cannot be reverted")
    if original["status"] == "running":
        raise Conflict(f"The batch {batch_id} is still running", hint="Revert it once it has finished.")
    now = clock()
    # The key makes a second plain revert of one batch a 409; a forced one may follow a plain one.
    key = f"revert:{batch_id}" + (f":force:{now.isoformat()}" if force else "")
    # (no disposition: the table's own, append where the natural key may repeat, else upsert)
    request = IngestRequest(table.name, original["source"], "atomic", "update", key)
    run = _BatchRun(uow, request, check_request(uow, request), clock)
    try:
        run.begin()
    except DuplicateKey:
        raise Conflict(f"The batch {batch_id} was reverted already",
                       hint="Add ?force=true to revert it again over the changes made since.") from None
    try:
        with uow:
            ingestion = uow.ingestion()
            done = ingestion.revert(table, batch_id, revert_batch=run.report.batch_id, now=now, force=force)
            run.report.received = done.restored + done.reinserted + done.deleted + done.conflicted
            run.report.updated = done.restored
            run.report.inserted = done.reinserted
            run.report.superseded = 0 if force else done.conflicted
            run._finish(ingestion, "completed", None)
            uow.commit()
    except BaseException:
        run._fail()
        raise
    finally:
        if run.lease is not None:
            run.lease.release()
    return {**run.report.as_dict(), "reverts": batch_id, "deleted": done.deleted,
            "conflicted": done.conflicted, "conflicts": done.conflicts}


# --- claims: what each source says about a row ----------------------------------------------------


def _claims_table(uow: AbstractUnitOfWork, table: Table) -> Table:
    if not table.keeps_claims:
        raise BadRequest(f"The table '{table.name}' keeps no claims",
                         hint="Claims are kept on tables with history and provenance.")
    return uow.catalog[table.claims_name]


def _claim_view(table: Table, values: Row, priority: int | None, *, stored: bool) -> Row:
    system = table.system
    return {
        "source": values[system.source], "priority": priority, "stored": stored,
        "batch_id": values[system.batch_id],
        "at": values[system.updated_at] if stored else values[CLAIMED_AT],
        "values": {c.name: values[c.name] for c in table.writable_columns},
    }


def list_claims(uow: AbstractUnitOfWork, table_name: str, key_text: str) -> list[Row]:
    """Every source's current claim on one row, strongest first: the stored row's (stored: true),
    then each source that lost on priority, with the values it last sent."""
    table = uow.catalog[table_name] if table_name in uow.catalog else None
    row = get_row(uow, table_name, key_text)  # 404s first
    assert table is not None
    claims = _claims_table(uow, table)
    with uow.reading():
        others = uow.repository(claims.name).list(Query(where=key_condition(
            table.natural_key, tuple(row[k] for k in table.natural_key))))
        priorities = {s["code"]: s["priority"] for s in uow.repository("sources").list(Query())}
    views = [_claim_view(table, row, priorities.get(row[table.system.source]), stored=True)]
    views += [_claim_view(table, c, priorities.get(c[table.system.source]), stored=False) for c in others]
    return sorted(views, key=lambda v: (-(v["priority"] or 0), not v["stored"], v["source"]))


def promote_claim(uow: AbstractUnitOfWork, table_name: str, key_text: str, source: str, *,
                  clock: Clock = utcnow) -> Row:
    """Make a source's claim the stored row (whatever the priorities: this is a person's decision).
    The values it replaces become their source's claim in turn; the change is in the row's history
    as an update. Returns the row as stored."""
    table = table_of(uow, table_name, writing=True)
    claims = _claims_table(uow, table)
    key = parse_key(table, key_text)
    system = table.system
    with uow:
        repo = uow.repository(table.name)
        row = repo.get(key)
        if row is None:
            raise NotFound(f"No row of '{table.name}' has {table.key_column} = {key_text!r}")
        natural = tuple(row[k] for k in table.natural_key)
        claim_key = key_condition(claims.primary_key, (*natural, source))
        claim_repo = uow.repository(claims.name)
        found = claim_repo.list(Query(where=claim_key))
        if not found:
            raise NotFound(f"The source {source!r} has no claim on this row of '{table.name}'",
                           hint=f"GET /api/{table.name}/{key_text}/claims lists them.")
        (claim,) = found
        now = clock()
        claim_repo.delete(claim_key, now)
        displaced = {c.name: row[c.name] for c in claims.columns if c.name != CLAIMED_AT}
        claim_repo.add([{**displaced, CLAIMED_AT: row[system.updated_at]}])
        changes = {c.name: claim[c.name] for c in table.writable_columns if c.name not in table.natural_key}
        changes |= {system.source: claim[system.source], system.batch_id: claim[system.batch_id]}
        (promoted,) = repo.update(key_condition(table.primary_key, key), changes, now)
        uow.commit()
    return promoted


# --- retention -------------------------------------------------------------------------------------

PRUNE_CHUNK = 10_000


def prune_history(uow: AbstractUnitOfWork, days: int, *, clock: Clock = utcnow,
                  chunk: int = PRUNE_CHUNK) -> dict[str, int]:
    """Delete the history versions that ended more than `days` ago, in every table, a chunk per
    transaction (no long locks; a concurrent write waits for one chunk at most). Current versions
    stay. Returns how many rows went, by history table."""
    if days < 0:
        raise BadRequest("The days of history to keep are 0 or more")
    before = clock() - dt.timedelta(days=days)
    pruned: dict[str, int] = {}
    for table in [t for t in uow.catalog if t.history]:
        pruned[table.history_name] = 0
        while True:
            with uow:
                gone = uow.ingestion().prune_history(table, before, chunk)
                uow.commit()
            pruned[table.history_name] += gone
            if gone < chunk:
                break
    return pruned
