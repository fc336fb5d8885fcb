"""Referral's client for intake's contact API when nothing answers at intake's address."""

from __future__ import annotations

import pytest

from referral.adapters.intake_client import IntakeContacts
from refnet_dev.util import free_port
from refnet_platform import errors
from refnet_platform.vocabulary import ServiceType

pytestmark = pytest.mark.integration


def test_an_unreachable_intake_is_unavailable_not_a_refusal() -> None:
    contacts = IntakeContacts(f"127.0.0.1:{free_port()}", None)  # a port nobody listens on
    try:
        with pytest.raises(errors.Unavailable, match="try again shortly"):
            contacts.read(case_id="c-1", referral_id="r-1", recipient_id="qn-police-baichay",
                          recipient_sector="police", service_type=ServiceType.POLICE_PROTECTION,
                          purpose="provider_accepted_referral")
    finally:
        contacts.intake.close()
