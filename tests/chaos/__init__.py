"""Faults injected into a running system: killed processes, a restarted Redis, rolling restarts."""
