"""Use cases: each takes plain values and a unit of work, and commits explicitly."""
