"""Entry points: HTTP (FastAPI), the CLI, settings and the composition root."""
