"""The tenant directory: its file schema, validation, loading and the lookups built from it."""
