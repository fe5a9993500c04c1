"""The PostgreSQL adapter: SQLAlchemy Core tables derived from the catalog, repository, unit of work."""
