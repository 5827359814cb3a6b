"""Dispatcher: the ingress and the domain shared with the workers."""
