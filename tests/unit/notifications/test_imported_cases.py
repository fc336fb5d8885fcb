"""A case imported from before refnet (intake's ImportHistory) tells nobody anything: no emergency notice, no
case-worker message."""

from __future__ import annotations

from notifications.adapters import proto_mapping
from notifications.domain import commands
from refnet.intake.v1 import events_pb2 as intake_events


def test_an_imported_case_is_not_noted_and_a_live_one_is() -> None:
    past = intake_events.CaseRegistered(case_id="c1", province_code="22", emergency=True, case_worker_id="w1",
                                        imported=True)
    assert proto_mapping.command_for(past) is None
    past.imported = False
    assert isinstance(proto_mapping.command_for(past), commands.NoteCase)
