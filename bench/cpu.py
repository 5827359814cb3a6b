"""CPU per call, the figure that drifts least: the CPU the processes under test spent in a
window, divided by the calls they handled, and divided again by a calibration loop timed in the
same run. Single-core speed here swings by up to 60 % from one run to the next; lateness and
throughput swing with it, the normalised CPU per call much less."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from bench.system import cpu_seconds

# The calibration's work: pure-Python dict, string and integer operations, as an ARQ job's or
# a handler's own code does them. One unit is 20,000 rounds.
_ROUNDS = 20_000


def _calibration_round() -> None:
    record: dict[str, int] = {}
    for i in range(_ROUNDS):
        key = f"call:{i % 97}"
        record[key] = record.get(key, 0) + i * 3 + len(key)


def calibration_ms(repeats: int = 7) -> float:
    """CPU milliseconds of one calibration unit on this process's core now (the fastest of
    `repeats`: a run interrupted by another process only counts as slower)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        _calibration_round()
        best = min(best, time.process_time() - started)
    return best * 1000


async def redis_commands(redis: Redis) -> dict[str, int]:
    """Commands Redis has run since its start, by name (INFO commandstats; a script's own
    commands are counted under their names as well as its EVALSHA)."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


@dataclass
class Window:
    """CPU of some processes and commands of Redis, from `start` to `stop`, and the
    calibration unit on this core: the faster of one taken at each end (a slow minute on a
    shared machine shows in one of them)."""

    pids: Sequence[int]
    cpu_s: float = 0.0
    by_command: dict[str, int] = field(default_factory=dict)
    unit_ms: float = 0.0

    @property
    def commands(self) -> int:
        return sum(self.by_command.values())

    async def start(self, redis: Redis) -> None:
        self.unit_ms = calibration_ms()
        self.cpu_s = -sum(cpu_seconds(pid) for pid in self.pids)
        self.by_command = {name: -calls for name, calls in (await redis_commands(redis)).items()}

    async def stop(self, redis: Redis) -> None:
        self.cpu_s += sum(cpu_seconds(pid) for pid in self.pids)
        for name, calls in (await redis_commands(redis)).items():
            self.by_command[name] = self.by_command.get(name, 0) + calls
        # INFO itself, twice, is the window's own.
        self.by_command["info"] = self.by_command.get("info", 0) - 2
        self.by_command = {name: calls for name, calls in self.by_command.items() if calls > 0}
        self.unit_ms = min(self.unit_ms, calibration_ms())


@dataclass(frozen=True)
class PerCall:
    """What one call cost the processes measured."""

    cpu_ms: float
    calibrated: float  # cpu_ms in calibration units
    commands: float
    by_command: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, window: Window, calls: int) -> PerCall:
        calls = max(1, calls)
        cpu_ms = window.cpu_s * 1000 / calls
        by_command = {name: count / calls for name, count in window.by_command.items()}
        return cls(cpu_ms, cpu_ms / window.unit_ms, window.commands / calls, by_command)

    def text(self) -> str:
        return (
            f"{self.cpu_ms:.2f} ms CPU ({self.calibrated:.2f} calibration units),"
            f" {self.commands:.1f} Redis commands"
        )

    def breakdown(self, most: int = 10) -> str:
        """The commands that make up `commands`, most run first (a script's own commands
        appear under their names beside its evalsha)."""
        ranked = sorted(self.by_command.items(), key=lambda item: -item[1])[:most]
        return ", ".join(f"{name} {count:.1f}" for name, count in ranked)
