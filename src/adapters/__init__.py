"""Adapters: the storage implementations of the domain's ports (PostgreSQL and in-memory)."""
