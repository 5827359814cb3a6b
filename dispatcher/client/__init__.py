"""Clients of the public HTTP API: the operators' commands (`calls`, `agents simulate`)."""
