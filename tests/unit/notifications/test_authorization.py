"""Notifications' one authorization table: every RPC has a row, and the README shows the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifications.domain.messages import Role as Addressee
from notifications.service_layer.authorization import AUTHORIZATION, Feed, Scope, authorization_table_markdown
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.errors import PermissionDenied

README = Path(__file__).resolve().parents[3] / "services" / "notifications" / "README.md"


def test_the_table_covers_every_rpc_and_the_readme_shows_it() -> None:
    assert set(AUTHORIZATION) == set(pb.DESCRIPTOR.services_by_name["NotificationsService"].methods_by_name)
    assert authorization_table_markdown() in README.read_text(encoding="utf-8")


def test_each_scope_names_the_callers_feeds() -> None:
    shelter_person = Caller("qn-spc-staff", Role.SHELTER, organisation_id="qn-shelter-spc", person=True)
    assert Scope.OWN_ORGANISATION.feed(shelter_person) == Scope.OWN_ORGANISATION.feed(
        machine("qn-shelter-spc", Role.SHELTER)) == Feed(Addressee.PROVIDER, ("qn-shelter-spc",))
    assert Scope.OWN.feed(Caller("cw-1", Role.OPERATOR, provinces=frozenset({"22"}), person=True)) == Feed(
        Addressee.CASE_WORKER, ("cw-1",))
    two = Caller("sup", Role.SUPERVISOR, provinces=frozenset({"42", "22"}), person=True)
    assert Scope.PROVINCES.feed(two) == Feed(Addressee.SUPERVISOR, ("22", "42"))
    assert Scope.PROVINCES.feed(two, "42") == Feed(Addressee.SUPERVISOR, ("42",))
    national = Caller("nat", Role.SUPERVISOR, provinces=frozenset({"*"}), person=True)
    assert Scope.PROVINCES.feed(national) == Feed(Addressee.SUPERVISOR, None)
    assert Scope.PROVINCES.feed(national, "92") == Feed(Addressee.SUPERVISOR, ("92",))
    with pytest.raises(PermissionDenied):
        Scope.PROVINCES.feed(two, "92")
    with pytest.raises(PermissionDenied):
        Scope.OWN_ORGANISATION.feed(Caller("nobody", Role.AGENCY, person=True))
