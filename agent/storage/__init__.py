"""The durable outbox between the sampler and the publishers."""

from agent.storage.outbox import Outbox, OutboxStats

__all__ = ["Outbox", "OutboxStats"]
