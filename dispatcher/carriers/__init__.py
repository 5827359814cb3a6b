"""Carriers: one interface, an adapter per provider, chosen by the tenant's `carrier` setting."""
