"""What the ingest tests of every layer share: a batch run straight through the service."""

from __future__ import annotations

from service_layer import ingest
from service_layer.ingest import Chunk, IngestRequest


def run(uow, table, rows, **kwargs):
    """Ingest `rows` (one chunk, or the `chunks=` given) into `table` with IngestRequest's `kwargs`."""
    chunks = kwargs.pop("chunks", None) or [Chunk(rows)]
    return ingest.ingest_batch(uow, IngestRequest(table, **kwargs), chunks)
