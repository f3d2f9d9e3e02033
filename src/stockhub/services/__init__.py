"""The use cases: each is one transaction, called by the faces (API, CLI, workers)."""
