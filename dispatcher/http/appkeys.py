"""Typed keys of the objects shared on the aiohttp application."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
SCRIPTS = web.AppKey("scripts", Scripts)
DIRECTORY = web.AppKey("directory", DirectoryCache)
