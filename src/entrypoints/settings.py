"""Settings from the environment (prefix DEPOT_), read when the container builds them, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # hide_input_in_errors: a refused DEPOT_API_KEYS must not print the keys.
    model_config = SettingsConfigDict(env_prefix="DEPOT_", extra="ignore", hide_input_in_errors=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEPOT_DATABASE_URL", "DATABASE_URL"),
        description="An external PostgreSQL (14+). Unset: depot runs its embedded PostgreSQL.",
    )
    read_database_url: str | None = Field(
        default=None,
        description="A streaming replica of the database: GET and HEAD on /api read from it, unless the "
                    "request sends Prefer: read-your-writes. Unset: every read goes to the primary.",
    )
    data_dir: Path = Field(default=Path(".depot"), description="Where the embedded PostgreSQL keeps its data.")
    catalog: str | None = Field(
        default=None,
        description="The catalog to serve: a file (./catalog.py) or a module (shop.catalog[:NAME]). "
                    "Unset: the bundled flights example.",
    )
    migrations_dir: Path | None = Field(
        default=None, description="The catalog's migration history. Unset: migrations/ beside the catalog."
    )
    storage: Literal["postgres", "memory"] = "postgres"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    migrate_on_start: bool = True
    pool_size: int = Field(default=10, ge=1)
    ingest_writers: int = Field(default=2, ge=1, le=16, description=(
        "How many chunks of one batch PostgreSQL writes side by side, each on a connection of its own "
        "(committed in file order). 1: one after another."))
    max_rows: int = Field(default=10_000, ge=1, description="The most rows one JSON response holds.")
    max_body_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    statement_timeout_ms: int = Field(default=30_000, ge=0, description="0 disables the timeout.")
    promote_claims: bool = Field(default=False, description=(
        "When a row is deleted, the strongest claim on its key (from a source that lost on priority) takes its place."))
    history_days: int | None = Field(default=None, ge=0, description=(
        "Days of history `depot history prune` keeps (versions that ended earlier go); unset: keep everything."))
    api_keys: str = Field(default="", repr=False, description="KEY:ROLE,... with roles read, write and metrics.")
    log_level: str = "info"
    start_timeout_seconds: float = Field(
        default=60.0, gt=0,
        description="How long a start waits for an embedded PostgreSQL that is stopping or starting.")
    orphan_sweep_seconds: float = Field(
        default=60.0, ge=0,
        description="How often running batches whose process died are marked failed; 0: at start only.")
    console: bool = Field(default=True, description="Serve the web console at /console (and redirect / there).")

    @field_validator("api_keys")
    @classmethod
    def _api_keys_are_well_formed(cls, value: str) -> str:
        from entrypoints.security import parse_api_keys

        parse_api_keys(value)
        return value
