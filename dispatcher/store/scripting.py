"""How Python calls the Lua scripts of store/lua: each through a frozen dataclass of its inputs.

A script's dataclass (a subclass of `Script`, named by its `name`) is all Python knows of it:
its fields typed with `Key` (alone, optional, in a list or a dict) are the keys it touches, a
field holding a `Part` (or a dataclass of inputs) brings keys and arguments of its own, and
every other field is an argument. `parts()` turns one instance into KEYS (every key, named
once) and one JSON argument: the arguments, and under `k` the keys' places by field name, which
lib.lua's prologue decodes into `A` (arguments) and `K` (key names by field). Every script
answers one JSON shape, `{"ok": value}` or `{"err": code, ...}`, read in one place
(`Script.decode`): the `ok` value through `result`, an `err` through `refusal` (a domain error,
`Stale`, or `Refused`). The scripts' dataclasses are in store/scripts.py, which registers them."""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import StrEnum
from importlib.resources import files
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson

from dispatcher.domain.campaigns import CampaignAction, CampaignState
from dispatcher.domain.statuses import (
    AgentStatus,
    CallStatus,
    ChatStatus,
    OfferState,
    OfferStep,
)
from dispatcher.store.keys import Key

R = TypeVar("R")
# A script's err codes and the domain errors they raise, each made from the answer's details.
Errors = Mapping[str, Callable[[dict[str, Any]], Exception]]
# Where keys sit in a field's value or a part's: one key, or lists and dicts of them.
KeyTree = Key | list["KeyTree"] | Mapping[str, "KeyTree"] | None

# The enum values the scripts compare and write, as Lua tables named here (`CALL.QUEUED`): no
# status, state or action is typed in a .lua file (tests/dispatcher/store/test_scripts.py).
LUA_ENUMS: dict[str, type[StrEnum]] = {
    "CALL": CallStatus,
    "CHAT": ChatStatus,
    "AGENT": AgentStatus,
    "OFFER": OfferState,
    "OFFER_STEP": OfferStep,
    "CAMPAIGN": CampaignState,
    "CAMPAIGN_ACTION": CampaignAction,
}


class Part(Protocol):
    """A value that brings a script keys and arguments of its own (a bucket, jobs, a change)."""

    def lua(self) -> tuple[KeyTree, Any]:
        """(its keys, as a tree; its argument, JSON-able)."""
        ...


class Stale(Exception):
    """What a script was told of its record (a revision, a counter, the offers so far) changed
    since the caller read it: the script changed nothing, and the caller reads again."""


class Refused(Exception):
    """A script's `{"err": code}` that its dataclass maps to no domain error."""

    def __init__(self, script: str, code: str, detail: dict[str, Any]) -> None:
        super().__init__(f"{script}: {code}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Script(Generic[R]):
    """One call of the Lua script `lua/<name>.lua`."""

    name: ClassVar[str]
    # `stale` is every script's Stale; a code neither here nor `stale` is a Refused.
    errors: ClassVar[Errors] = {}

    def result(self, ok: Any) -> R:
        """The typed result of the script's `ok` value."""
        return typing.cast(R, ok)

    def refusal(self, code: str, detail: dict[str, Any]) -> Exception:
        """The error an `{"err": code, ...}` answer raises."""
        if code == "stale":
            return Stale(self.name)
        if code in self.errors:
            return self.errors[code](detail)
        return Refused(self.name, code, detail)

    def parts(self) -> tuple[list[Key], bytes]:
        """KEYS, and the one JSON argument (arguments, and `k`: key positions by name)."""
        keys: dict[Key, int] = {}
        tree, args = split(self)
        args["k"] = _place(tree, keys)
        return list(keys), orjson.dumps(args)

    def decode(self, raw: bytes | str) -> R:
        answer = orjson.loads(raw)
        if "err" in answer:
            raise self.refusal(answer["err"], answer)
        return self.result(answer.get("ok"))


def split(inputs: Any) -> tuple[dict[str, KeyTree], dict[str, Any]]:
    """A dataclass of inputs as (its keys by name, its arguments by name): fields typed with
    `Key` are keys, a Part brings both, a dataclass within is split the same way, anything
    else is an argument; a None is left out."""
    tree: dict[str, KeyTree] = {}
    args: dict[str, Any] = {}
    for attr, name, is_key in _layout(typing.cast(type, type(inputs))):
        value = getattr(inputs, attr)
        if value is None:
            continue
        if is_key:
            tree[name] = value
        elif type(value) in _PLAIN:  # most arguments: no lookups on them
            args[name] = value
        elif hasattr(value, "lua"):
            subtree, args[name] = value.lua()
            if subtree is not None:
                tree[name] = subtree
        elif is_dataclass(value):
            tree[name], args[name] = split(value)
        else:
            args[name] = value
    return tree, args


# Argument types that are neither a Part nor a dataclass of inputs.
_PLAIN = frozenset({int, str, float, bool, bytes, list, dict})


def _place(tree: KeyTree, keys: dict[Key, int]) -> Any:
    """The tree with each key replaced by its 1-based place in KEYS (a key named twice has
    one place). A key is a str; dicts and lists hold keys (exact types: an ABC's isinstance
    costs more than the rest of a script call's Python)."""
    kind = type(tree)
    if kind is str:
        return keys.setdefault(typing.cast(Key, tree), len(keys) + 1)
    if kind is dict or (kind is not list and isinstance(tree, Mapping)):
        mapping = typing.cast(Mapping[str, KeyTree], tree)
        return {str(name): _place(value, keys) for name, value in mapping.items()}
    assert tree is not None
    return [_place(value, keys) for value in typing.cast(list[KeyTree], tree)]


def lua_name(name: str) -> dict[str, str]:
    """A field's metadata naming it otherwise in Lua (where `name` says the script's name)."""
    return {"lua": name}


@functools.cache
def _layout(cls: type) -> list[tuple[str, str, bool]]:
    """The fields of a script's dataclass: attribute, name in Lua, whether it holds `Key`s."""
    hints = typing.get_type_hints(cls)
    return [(f.name, f.metadata.get("lua", f.name), _holds_key(hints[f.name])) for f in fields(cls)]


def _holds_key(hint: Any) -> bool:
    return hint is Key or any(_holds_key(arg) for arg in typing.get_args(hint))


def list_of(value: Any) -> list[Any]:
    """A JSON list from Lua: cjson writes an empty table as `{}`."""
    return [] if value == {} or value is None else list(value)


def every_script() -> list[type[Script[Any]]]:
    found: list[type[Script[Any]]] = []
    pending = list(Script.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "name" in vars(cls):
            found.append(cls)
    return found


def lua_enums() -> str:
    """The Lua tables of LUA_ENUMS; reading a name they lack is an error, not a nil."""
    missing = "function(_, name) error('no enum value ' .. name) end"
    lines = ["local function enum(t)", f"  return setmetatable(t, {{__index = {missing}}})", "end"]
    for table, values in LUA_ENUMS.items():
        members = ", ".join(f"{m.name} = {json.dumps(m.value)}" for m in values)
        lines.append(f"local {table} = enum({{{members}}})")
    return "\n".join(lines)


def source(name: str) -> str:
    return files("dispatcher.store").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")
