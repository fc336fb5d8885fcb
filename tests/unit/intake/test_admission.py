"""intake-api's admission: under a flood of normal calls an emergency registration is served first, on a thread kept
for emergencies, while the normal calls queue; within each lane, first come first served. Normal registrations that
queue are handled together (Batches), in their order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from intake.domain import commands
from intake.entrypoints.admission import Admission, Batches, is_emergency
from refnet_platform.caller import Caller, Role
from refnet_platform.engine import make_engine
from refnet_platform.vocabulary import RiskLevel

OPERATOR = Caller("qn-operator-1", Role.OPERATOR, provinces=frozenset({"22"}), person=True)


def registration(name: str, risk: RiskLevel = RiskLevel.MEDIUM, danger: bool = False) -> commands.RegisterCase:
    return commands.RegisterCase(
        caller=OPERATOR, client_request_id=name, occurred_in=None, recorded_at=None, reported_in=None,  # type: ignore[arg-type]
        case_types=[], survivor=None, needs=[], risk_level=risk, immediate_danger=danger,  # type: ignore[arg-type]
        case_worker_id="", contact=None, narrative="")  # type: ignore[arg-type]


class Database:
    """Stands in for the handlers: records the order calls start in; each holds its thread until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def handle(self, command: Any) -> str:
        name = command.client_request_id
        with self.lock:
            self.started.append(name)
            gate = self.release.setdefault(name, threading.Event())
        gate.wait(10)
        return name

    def let_go(self, name: str) -> None:
        with self.lock:
            self.release.setdefault(name, threading.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_emergency_means_immediate_danger_or_high_risk() -> None:
    assert is_emergency(registration("a", danger=True))
    assert is_emergency(registration("b", RiskLevel.HIGH))
    assert not is_emergency(registration("c"))
    assert is_emergency(commands.UpdateRisk(OPERATOR, "r", "case-1", RiskLevel.LOW, True))
    assert not is_emergency(commands.GetCase(OPERATOR, "case-1"))


def test_an_emergency_is_served_at_once_while_a_flood_of_normal_calls_queues() -> None:
    async def scenario() -> None:
        db, admission = Database(), Admission(slots=2, reserved=1)
        flood = [asyncio.create_task(admission.run(db.handle, registration(f"normal-{i}"))) for i in range(6)]
        await settle()
        assert db.started == ["normal-0", "normal-1"]  # the others queue for the database

        emergency = asyncio.create_task(admission.run(db.handle, registration("emergency", danger=True)))
        await settle()
        assert db.started[-1] == "emergency"  # no normal call finished, and none went before it
        db.let_go("emergency")
        assert await emergency == "emergency"

        for i in range(6):
            db.let_go(f"normal-{i}")
        assert await asyncio.gather(*flood) == [f"normal-{i}" for i in range(6)]
        assert db.started == ["normal-0", "normal-1", "emergency", *(f"normal-{i}" for i in range(2, 6))]

    asyncio.run(scenario())


def test_queued_emergencies_go_before_every_queued_normal_call() -> None:
    async def scenario() -> None:
        db, admission = Database(), Admission(slots=1, reserved=1)
        running = [asyncio.create_task(admission.run(db.handle, registration("normal-0"))),
                   asyncio.create_task(admission.run(db.handle, registration("emergency-0", RiskLevel.HIGH)))]
        await settle()
        queued = [asyncio.create_task(admission.run(db.handle, registration(name, danger=name.startswith("e"))))
                  for name in ("normal-1", "normal-2", "emergency-1", "emergency-2")]
        await settle()
        assert db.started == ["normal-0", "emergency-0"]  # every thread busy: all four queue

        db.let_go("normal-0")  # a normal call's thread frees: the first emergency waiting takes it
        await settle()
        assert db.started[-1] == "emergency-1"
        for name in ("emergency-0", "emergency-1", "emergency-2", "normal-1", "normal-2"):
            db.let_go(name)
        await asyncio.gather(*running, *queued)
        assert db.started == ["normal-0", "emergency-0", "emergency-1", "emergency-2", "normal-1", "normal-2"]

    asyncio.run(scenario())


def test_a_caller_that_gives_up_frees_its_place_only_when_its_handler_ends() -> None:
    async def scenario() -> None:
        db, admission = Database(), Admission(slots=1, reserved=0)
        first = asyncio.create_task(admission.run(db.handle, registration("normal-0")))
        gone = asyncio.create_task(admission.run(db.handle, registration("gone")))
        last = asyncio.create_task(admission.run(db.handle, registration("normal-1")))
        await settle()
        gone.cancel()  # gave up while queued: never runs
        first.cancel()  # gave up while running: its handler still holds the database
        await settle()
        assert db.started == ["normal-0"]
        db.let_go("normal-0")
        db.let_go("normal-1")
        assert await last == "normal-1"
        assert db.started == ["normal-0", "normal-1"]

    asyncio.run(scenario())


class Recording(Admission):
    """Records what each turn on a handler thread was given: a batch of (command, context)."""

    def __init__(self) -> None:
        super().__init__(slots=1, reserved=1)
        self.turns: list[list[str]] = []

    async def run(self, handle: Any, command: Any) -> Any:
        batch = command if isinstance(command, list) else [(command, None)]
        self.turns.append([c.client_request_id for c, _ in batch])
        return await super().run(handle, command)


def test_registrations_that_queue_are_handled_together_and_a_caller_that_gave_up_is_left_out() -> None:
    async def scenario() -> None:
        db, admission, engine = Database(), Recording(), make_engine("sqlite://")
        batches = Batches(admission, engine, db.handle, most=3)
        first = asyncio.create_task(batches.run(registration("normal-0")))
        await settle()
        queued = {name: asyncio.create_task(batches.run(registration(name))) for name in ("a", "gone", "b", "c", "d")}
        await settle()
        queued["gone"].cancel()
        assert db.started == ["normal-0"]
        for name in ("normal-0", "a", "b", "c", "d"):
            db.let_go(name)
        assert await first == "normal-0"
        assert [await queued[name] for name in ("a", "b", "c", "d")] == ["a", "b", "c", "d"]
        assert db.started == ["normal-0", "a", "b", "c", "d"]  # "gone" never ran
        assert admission.turns == [["normal-0"], ["a", "b"], ["c", "d"]]  # at most 3 taken at once, gone's left empty
        engine.dispose()

    asyncio.run(scenario())


def test_a_batch_ends_early_for_an_emergency_and_its_rest_goes_first_after_it() -> None:
    async def scenario() -> None:
        db, admission, engine = Database(), Recording(), make_engine("sqlite://")
        batches = Batches(admission, engine, db.handle, most=3)
        first = asyncio.create_task(batches.run(registration("a")))
        await settle()
        rest = [asyncio.create_task(batches.run(registration(name))) for name in ("b", "c", "d")]
        db.let_go("a")
        await settle()
        assert db.started == ["a", "b"]  # the batch b, c, d has begun

        emergency = asyncio.create_task(admission.run(db.handle, registration("e", danger=True)))
        await settle()
        db.let_go("b")  # the batch ends after b: c and d wait for the emergency, then go first
        await settle()
        db.let_go("e")
        assert await emergency == "e"
        await settle()
        db.let_go("c")
        db.let_go("d")
        assert [await first, *[await r for r in rest]] == ["a", "b", "c", "d"]
        assert db.started == ["a", "b", "e", "c", "d"]
        assert admission.turns == [["a"], ["b", "c", "d"], ["e"], ["c", "d"]]
        assert admission.emergencies == 0
        engine.dispose()

    asyncio.run(scenario())
