"""Typed keys of the objects shared on the aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from redis.asyncio import Redis

from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts

if TYPE_CHECKING:  # sse.py reads these keys itself
    from dispatcher.http.sse import EventStreams

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
SCRIPTS = web.AppKey("scripts", Scripts)
DIRECTORY = web.AppKey("directory", DirectoryCache)
EVENT_STREAMS: web.AppKey[EventStreams] = web.AppKey("event_streams")
