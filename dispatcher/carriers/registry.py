"""The carrier adapters by name: the names a tenant's `carrier` and `carriers` settings may give
(the directory loader checks them), and the adapters a worker builds from them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

import structlog

from dispatcher.carriers.base import Carrier, CarrierError, Resources
from dispatcher.carriers.simulated import SimulatedCarrier
from dispatcher.carriers.twilio import TwilioCarrier
from dispatcher.directory.tenant import Tenant

log = structlog.get_logger("dispatcher.carriers")

# Written out rather than filled in as modules are imported: what is registered does not
# depend on what happened to be imported first. An adapter is one module and one entry here.
ADAPTERS: Mapping[str, type[Carrier]] = MappingProxyType(
    {adapter.name: adapter for adapter in (SimulatedCarrier, TwilioCarrier)}
)
NAMES = tuple(ADAPTERS)


class Carriers(Mapping[str, Carrier]):
    """The adapters one worker can use, by name: those whose `create` found what they need."""

    def __init__(self, adapters: Mapping[str, Carrier]) -> None:
        self._adapters = dict(adapters)

    @classmethod
    def build(cls, resources: Resources) -> Carriers:
        built = {name: adapter.create(resources) for name, adapter in ADAPTERS.items()}
        return cls({name: carrier for name, carrier in built.items() if carrier is not None})

    def of(self, tenant: Tenant) -> Carrier:
        """The adapter of the tenant's first carrier (its SMS go through it)."""
        return self.named(tenant.doc.settings.carriers[0])

    def named(self, name: str) -> Carrier:
        """The adapter `name`; CarrierError (not worth retrying, nor the carrier's fault: the
        configuration's) when this worker has not set it up."""
        carrier = self._adapters.get(name)
        if carrier is None:
            log.error("the tenant's carrier is not set up in this worker", carrier=name)
            raise CarrierError(f"the {name} carrier is not set up (its credentials are not set)")
        return carrier

    def __getitem__(self, name: str) -> Carrier:
        return self._adapters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapters)

    def __len__(self) -> int:
        return len(self._adapters)
