"""The aiohttp ingress: one module per resource, plus errors, body parsing and auth."""
