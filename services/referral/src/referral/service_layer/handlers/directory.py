"""The directory: providers loaded from HSDS, and the bed figures a shelter's listed capacity stands for until
shelter reports its pools. What reads the directory is in referral.service_layer.queries."""

from __future__ import annotations

import logging

from referral.domain import commands
from referral.service_layer.handlers.common import Policy, UowFactory

log = logging.getLogger(__name__)


def load_directory(cmd: commands.LoadDirectory, uow: UowFactory, policy: Policy) -> int:
    now = policy.clock()
    with uow() as work:
        written = 0
        for duty in cmd.duty_phones:
            work.directory.save_duty_phone(duty)
        for provider in cmd.providers:
            written += work.directory.save(provider, cmd.update_existing)
            # The directory's capacity names no pool: it stands for the one group a shelter takes. A shelter
            # listed for several groups (or none) has no figure until shelter reports its pools.
            if provider.is_shelter and provider.beds_capacity is not None and len(provider.target_groups) == 1:
                [group] = provider.target_groups
                work.beds.seed(provider.shelter_id, group, provider.beds_capacity, now)
        work.commit()
    log.info("directory loaded", extra={"fields": {"providers": len(cmd.providers), "written": written}})
    return written
