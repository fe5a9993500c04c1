"""The in-memory adapter: the unit tests' fake and `--storage memory`, kept honest by the contract suite."""
