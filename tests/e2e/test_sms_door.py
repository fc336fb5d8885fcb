"""SMS as a door, in the real network: a local HTTP server plays the SMS gateway both ways (it POSTs signed texts
to notifications-sms over real HTTP and receives refnet's replies), the real processes on a real broker, gRPC over
mutual TLS. A shelter's texts change its beds where a WatchAvailability stream sees them and occupy the bed held for
a referral; a provider answers a new referral; a survivor's STOP stops her SMS at once. A duplicate delivery, an
unknown number, a bad signature and a replayed request change nothing and get no reply; every reply is in the
sender's language."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from sqlalchemy import select

from notifications.adapters.channels import sign_webhook
from notifications.adapters.tables import deliveries, notices
from notifications.service_layer.inbound import REPLY_NAMESPACE
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as it
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import shelter_service_pb2 as shelter_pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as shelter_grpc
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.util import eventually as wait_until
from refnet_dev.util import repo_root
from refnet_platform.engine import make_engine

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HOST = "127.0.0.1"
SECRET, OLD_SECRET = "sms-door-new-secret", "sms-door-old-secret"  # rotating: both are accepted
QN, CAMPHA_COMMUNE = "22", "06793"
COMMUNITY, SPC = "qn-campha-temp", "qn-spc"
SHELTER_PHONE = "0977 100 200"  # a village head's basic phone: the community shelter's staff record, Vietnamese
SHELTER_PHONE_EN = "+84 977 100 300"  # another of its staff, English on her record
SPC_PHONE = "0977 100 400"
UNKNOWN_PHONE = "0977 999 999"
POLICE_PHONE = "0903 000 003"  # the Bãi Cháy police's duty phone (Vietnamese)
HOSPITAL_PHONE = "0904 000 004"  # the hospital's duty phone (English on its record)
eventually = partial(wait_until, timeout=60)
TEXTED: list[str] = []  # every gateway message id this module delivered: the door's replies are keyed by them


@dataclass
class Gateway:
    """Records every SMS refnet sends; a repeated Idempotency-Key is one SMS, as gateways do."""

    url: str = ""
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, headers: dict[str, str], body: bytes) -> None:
        message = json.loads(body)
        with self.lock:
            self.sent.setdefault(headers.get("Idempotency-Key", str(uuid.uuid4())), message)

    def texts_to(self, number: str) -> list[str]:
        """The door's replies to a number (its notices, e.g. a provider's new-referral SMS, left out)."""
        replies = {str(uuid.uuid5(REPLY_NAMESPACE, message_id)) for message_id in TEXTED}
        with self.lock:
            return [m["text"] for m in self.sent.values() if m["to"] == number and m["reference"] in replies]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    found = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            found.receive(dict(self.headers.items()), self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            body = b'{"id": "gw"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    found.url = f"http://{HOST}:{server.server_address[1]}"
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def directory_file(path: Path) -> Path:
    """The demo directory, with the staff phones this test texts from."""
    data = json.loads((repo_root() / "demo" / "directory.json").read_text(encoding="utf-8"))
    for provider in data["providers"]:
        shelter = provider.get("shelter") or {}
        if shelter.get("shelter_id") == COMMUNITY:
            shelter["sms_staff"] = [{"phone": SHELTER_PHONE, "language": "vi"},
                                    {"phone": SHELTER_PHONE_EN, "language": "en"}]
        if shelter.get("shelter_id") == SPC:
            shelter["sms_staff"] = [{"phone": SPC_PHONE, "language": "vi"}]
        if provider["provider_id"] == "qn-police-baichay":
            provider["duty_contact"] = {"phone": POLICE_PHONE, "language": "vi"}
        if provider["provider_id"] == "qn-hospital":
            provider["duty_contact"] = {"phone": HOSPITAL_PHONE, "language": "en"}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, gateway: Gateway,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("sms-door-e2e")
    net = Network(kafka_broker.bootstrap, root / "var", directory_file=directory_file(root / "directory.json"),
                  keycloak=keycloak, sms=True,
                  extra_env={"NOTIFICATIONS_SMS_GATEWAY_URL": gateway.url, "NOTIFICATIONS_SMS_API_KEY": "e2e",
                             "NOTIFICATIONS_SMS_TIMEOUT_S": "2",
                             "NOTIFICATIONS_SMS_INBOUND_SECRET": f"{SECRET},{OLD_SECRET}",
                             "NOTIFICATIONS_SURVIVOR_WINDOWS": "00:00-24:00"})
    try:
        net.start()
        yield net
    finally:
        net.stop()


# --- the gateway's side: signed POSTs over real HTTP -------------------------------------------


@dataclass(frozen=True)
class Posted:
    status: int
    body: dict[str, Any]
    raw: tuple[bytes, dict[str, str]]


def post(network: Network, body: bytes, headers: dict[str, str]) -> Posted:
    request = urllib.request.Request(network.sms_url + "/sms/inbound", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as reply:
            return Posted(reply.status, json.loads(reply.read() or b"{}"), (body, headers))
    except urllib.error.HTTPError as exc:
        with exc:
            return Posted(exc.code, json.loads(exc.read() or b"{}"), (body, headers))


def text(network: Network, sender: str, words: str, message_id: str | None = None, secret: str = SECRET,
         timestamp: int | None = None) -> Posted:
    """The gateway delivering one text, signed."""
    message_id = message_id or f"gw-{uuid.uuid4()}"
    TEXTED.append(message_id)
    body = json.dumps({"message_id": message_id, "from": sender, "text": words,
                       "received_at": "2026-12-06T07:00:00+07:00"}, ensure_ascii=False).encode()
    return post(network, body, sign_webhook(secret.encode(), body, timestamp or int(time.time())))


def reply_to(gateway: Gateway, number: str, count: int = 1) -> list[str]:
    """The replies a number got, once there are `count` of them."""
    return eventually(lambda: (lambda found: found if len(found) >= count else None)(gateway.texts_to(number)),
                      f"{count} replies")


def pool(network: Network, shelter_id: str) -> Any:
    with network.channel("shelter", "referral", "service") as channel:
        found = shelter_grpc.ShelterServiceStub(channel).GetShelter(
            shelter_pb.GetShelterRequest(shelter_id=shelter_id), timeout=10).shelter.pools
    assert len(found) == 1
    return found[0]


def held_at(network: Network, case_id: str) -> tuple[str, Any] | None:
    for shelter_id in (COMMUNITY, SPC):
        with network.channel("shelter", shelter_id, "shelter") as channel:
            found = shelter_grpc.ShelterServiceStub(channel).ListReservations(
                shelter_pb.ListReservationsRequest(), timeout=10).reservations
        for r in found:
            if r.case_id == case_id:
                return shelter_id, r
    return None


# --- shelters ----------------------------------------------------------------------------------


def test_a_shelter_texts_giuong_2_and_a_watcher_sees_it_at_once_and_a_duplicate_changes_nothing(
    network: Network, gateway: Gateway,
) -> None:
    changes: queue.Queue[Any] = queue.Queue()
    with network.channel("shelter", "referral", "service") as channel:
        stream = shelter_grpc.ShelterServiceStub(channel).WatchAvailability(
            shelter_pb.WatchAvailabilityRequest(province_code=QN), timeout=60)

        def watch() -> None:
            try:
                for update in stream:
                    changes.put(update)
            except grpc.RpcError:
                pass

        threading.Thread(target=watch, daemon=True).start()
        snapshot = changes.get(timeout=30)
        assert snapshot.snapshot
        before = next(a for a in snapshot.availability if a.shelter_id == COMMUNITY)
        target = 2 if before.reported_free != 2 else 1
        message_id = f"gw-{uuid.uuid4()}"
        started = time.monotonic()
        assert text(network, SHELTER_PHONE, f"  giuong   {target} ", message_id).status == 200
        answered = time.monotonic() - started  # the reply is handed to the gateway before the door answers
        seen = None
        while seen is None:
            update = changes.get(timeout=30)
            seen = next((a for a in update.availability if a.shelter_id == COMMUNITY), None)
        watched_after = time.monotonic() - started
        stream.cancel()
    assert (seen.reported_free, seen.capacity - seen.reserved - seen.occupied) == (target, target)
    assert seen.version > before.version
    assert reply_to(gateway, SHELTER_PHONE) == [f"Đã cập nhật giường trống: {target}."]
    assert watched_after < 10 and answered < 10
    print(f"GIUONG {target}: answered (reply handed over) in {answered * 1000:.0f} ms, "
          f"watcher saw it after {watched_after * 1000:.0f} ms")

    # The gateway delivers the same message again (signed afresh): nothing changes, nobody is answered again.
    again = text(network, SHELTER_PHONE, "GIUONG 5", message_id)
    assert again.status == 200
    time.sleep(1.5)
    assert pool(network, COMMUNITY).reported_free == target
    assert gateway.texts_to(SHELTER_PHONE) == [f"Đã cập nhật giường trống: {target}."]


def test_an_arrival_by_text_occupies_the_held_bed_and_every_reply_is_in_the_senders_language(
    network: Network, gateway: Gateway,
) -> None:
    text(network, SHELTER_PHONE_EN, "GIUONG 2")  # English on her record: answered in English
    assert reply_to(gateway, SHELTER_PHONE_EN) == ["Free beds updated: 2."]
    text(network, SPC_PHONE, "GIUONG 0")  # the provincial centre is full tonight: the bed goes to the community
    assert reply_to(gateway, SPC_PHONE) == ["Đã cập nhật giường trống: 0."]
    time.sleep(2)  # routing learns the counts from shelter's events
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"sms-e2e-{uuid.uuid4()}", province_code=QN, commune_code=CAMPHA_COMMUNE,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_HIGH,
        survivor=intake_pb.Survivor(is_child=False, age=29, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True)], case_worker_id="qn-worker-7")
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch:
        case_id = intake_grpc.IntakeServiceStub(intake_ch).RegisterCase(request, timeout=15).case.case_id
    held = eventually(lambda: held_at(network, case_id), "a bed held for the case")
    assert held[0] == COMMUNITY, held
    held = held[1]
    assert held.status == shelter_pb.RESERVATION_STATUS_HELD
    ref = "RF-" + held.referral_id.replace("-", "")[-8:].upper()
    in_use = pool(network, COMMUNITY)
    assert (in_use.reserved, in_use.occupied) == (1, 0)

    # Not understood, from a known phone: the right form, in her language (a Vietnamese keyword, a vi record).
    text(network, SHELTER_PHONE, "DEN 12345")
    assert reply_to(gateway, SHELTER_PHONE, 2)[-1] == ("Không hiểu mã. Gửi: DEN RF-xxxxxxxx "
                                                      "(mã trong tin nhắn đã nhận).")
    # An English keyword from a Vietnamese record is answered in English.
    text(network, SHELTER_PHONE, f"arrived {ref.lower()}")
    assert reply_to(gateway, SHELTER_PHONE, 3)[-1] == f"{ref} arrived: recorded. Free beds: 1."
    occupied = pool(network, COMMUNITY)
    assert (occupied.reserved, occupied.occupied, occupied.reported_free) == (0, 1, 1)
    text(network, SHELTER_PHONE, f"DI {ref}")
    assert reply_to(gateway, SHELTER_PHONE, 4)[-1] == f"Đã ghi nhận {ref} đã rời đi. Giường trống: 2."
    assert pool(network, COMMUNITY).occupied == 0


def test_an_unknown_number_a_bad_signature_and_a_replay_change_nothing_and_get_no_reply(
    network: Network, gateway: Gateway,
) -> None:
    replies = len(gateway.texts_to(SPC_PHONE))
    target = pool(network, SPC).reported_free + 3
    # An unknown number: accepted like any text (the gateway learns nothing), no change, no reply, one count.
    assert text(network, UNKNOWN_PHONE, f"GIUONG {target}").status == 200
    # A bad signature, a stale timestamp and a signature of another body: refused before anything is read.
    assert text(network, SPC_PHONE, f"GIUONG {target}", secret="not-the-secret").status == 401
    assert text(network, SPC_PHONE, f"GIUONG {target}", timestamp=int(time.time()) - 3600).status == 401
    signed = text(network, SPC_PHONE, "GIUONG 0", secret=OLD_SECRET)  # the old secret still works while rotating
    assert signed.status == 200
    body, headers = signed.raw
    assert post(network, body.replace(b"GIUONG 0", f"GIUONG {target}".encode()), headers).status == 401
    # The same signed request again (a replay): refused, so nothing is done twice.
    assert post(network, body, headers).status == 401
    assert reply_to(gateway, SPC_PHONE, replies + 1)[-1] == "Đã cập nhật giường trống: 0."
    time.sleep(1.5)
    assert pool(network, SPC).reported_free == 0
    assert gateway.texts_to(UNKNOWN_PHONE) == []
    assert len(gateway.texts_to(SPC_PHONE)) == replies + 1
    metrics = urllib.request.urlopen(network.sms_url + "/metrics", timeout=5).read().decode()
    assert _count(metrics, "unknown_sender") >= 1 and _count(metrics, "rejected_replay") == 1
    assert _count(metrics, "rejected_bad_signature") == 2 and _count(metrics, "rejected_stale") == 1
    # No number and no text in the door's database or its log: hashes and ids only.
    for path in [network.data_dir / "notifications.db", network.data_dir / "logs" / "notifications-sms.log"]:
        content = path.read_bytes()
        for number in (UNKNOWN_PHONE, SPC_PHONE, "977999999", "977100400"):
            assert number.encode() not in content, path.name
        assert b"GIUONG" not in content, path.name


def _count(metrics: str, outcome: str) -> float:
    line = f'refnet_sms_inbound_total{{outcome="{outcome}"}}'
    return sum(float(row.rsplit(" ", 1)[1]) for row in metrics.splitlines() if row.startswith(line))





# --- survivors ---------------------------------------------------------------------------------

SURVIVOR_PHONE = "0912 777 888"  # as she gave it at intake
SURVIVOR_TEXTS_FROM = "+84912777888"  # as the gateway gives it
STOPPED_VI = "Bạn sẽ không nhận thêm tin nhắn nào. Trả lời BAT DAU để nhận lại."
STARTED_VI = "Bạn sẽ nhận lại tin nhắn. Trả lời DUNG để ngừng."


def survivor_deliveries(network: Network, case_id: str) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{network.data_dir / 'notifications.db'}")
    try:
        with engine.connect() as conn:
            query = select(deliveries.c.notice_id, deliveries.c.status, deliveries.c.detail, notices.c.referral_id)
            rows = conn.execute(query.join(notices, notices.c.notice_id == deliveries.c.notice_id).where(
                deliveries.c.lane == "survivor", notices.c.case_id == case_id)).mappings().all()
        return [dict(r) for r in rows]
    finally:
        engine.dispose()


def test_a_survivors_stop_withholds_her_due_sms_and_the_next_notice_goes_by_no_sms(
    network: Network, gateway: Gateway,
) -> None:
    # Her only safe hour starts in three hours: her first notice is due, and waits (deferred) for it.
    opens = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(hours=3)).replace(second=0, microsecond=0)
    safe = it.SafeContactTime(start=opens.strftime("%H:%M"), end=(opens + timedelta(hours=1)).strftime("%H:%M"))
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"sms-e2e-{uuid.uuid4()}", province_code=QN, commune_code="06673",
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=36, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_MEDICAL, consented=True)],
        contact=intake_pb.Contact(phone=SURVIVOR_PHONE, phone_is_safe=True, safe_times=[safe]),
        case_worker_id="qn-worker-7")
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch, \
            network.channel("referral", "qn-hospital", "agency") as hospital_ch:
        case_id = intake_grpc.IntakeServiceStub(intake_ch).RegisterCase(request, timeout=15).case.case_id
        police, hospital = referral_grpc.ReferralServiceStub(police_ch), referral_grpc.ReferralServiceStub(hospital_ch)
        first = eventually(lambda: list(police.ListReferrals(referral_pb.ListReferralsRequest(case_id=case_id))
                                        .referrals), "the police referral")[0]
        second = eventually(lambda: list(hospital.ListReferrals(referral_pb.ListReferralsRequest(case_id=case_id))
                                         .referrals), "the hospital referral")[0]
        police.AcceptReferral(referral_pb.AcceptReferralRequest(referral_id=first.referral_id,
                                                                client_request_id=str(uuid.uuid4())), timeout=10)
        eventually(lambda: [d for d in survivor_deliveries(network, case_id) if d["status"] == "deferred"],
                   "her first notice deferred to her safe hour")

        # STOP from her number (as the gateway writes it): confirmed once, neutrally, in her notices' language.
        assert text(network, SURVIVOR_TEXTS_FROM, "STOP").status == 200
        assert reply_to(gateway, SURVIVOR_TEXTS_FROM) == [STOPPED_VI]
        [due] = survivor_deliveries(network, case_id)
        assert (due["status"], due["detail"]) == ("cancelled", "sms_stopped")
        assert text(network, SURVIVOR_TEXTS_FROM, "  dung ").status == 200  # again: nothing to confirm
        # A text that is not STOP or START from her number is never answered.
        assert text(network, SURVIVOR_TEXTS_FROM, "GIUONG 2").status == 200

        # The next notice (the hospital accepts) goes by no SMS.
        hospital.AcceptReferral(referral_pb.AcceptReferralRequest(referral_id=second.referral_id,
                                                                  client_request_id=str(uuid.uuid4())), timeout=10)
        withheld = eventually(lambda: [d for d in survivor_deliveries(network, case_id)
                                       if d["referral_id"] == second.referral_id and d["status"] == "cancelled"],
                              "her next notice withheld")
        assert withheld[0]["detail"] == "sms_stopped"

    time.sleep(1.5)
    assert gateway.texts_to(SURVIVOR_TEXTS_FROM) == [STOPPED_VI]
    assert gateway.texts_to(SURVIVOR_PHONE) == []
    # START resumes, confirmed once.
    text(network, SURVIVOR_TEXTS_FROM, "Bắt đầu")
    assert reply_to(gateway, SURVIVOR_TEXTS_FROM, 2) == [STOPPED_VI, STARTED_VI]


# --- providers ---------------------------------------------------------------------------------


def test_a_provider_accepts_and_declines_from_its_duty_phone_with_the_apis_rules(
    network: Network, gateway: Gateway,
) -> None:
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"sms-e2e-{uuid.uuid4()}", province_code=QN, commune_code="06673",
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=44, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_MEDICAL, consented=True)],
        case_worker_id="qn-worker-7")
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch, \
            network.channel("referral", "qn-hospital", "agency") as hospital_ch:
        case_id = intake_grpc.IntakeServiceStub(intake_ch).RegisterCase(request, timeout=15).case.case_id
        police, hospital = referral_grpc.ReferralServiceStub(police_ch), referral_grpc.ReferralServiceStub(hospital_ch)
        mine = eventually(lambda: list(police.ListReferrals(referral_pb.ListReferralsRequest(case_id=case_id))
                                       .referrals), "the police referral")[0]
        theirs = eventually(lambda: list(hospital.ListReferrals(referral_pb.ListReferralsRequest(case_id=case_id))
                                         .referrals), "the hospital referral")[0]
        ref = "RF-" + mine.referral_id[-8:].upper()
        other_ref = "RF-" + theirs.referral_id[-8:].upper()

        # Another provider's reference is unknown to the police phone: nothing changes.
        text(network, POLICE_PHONE, f"NHAN {other_ref}")
        assert reply_to(gateway, POLICE_PHONE)[-1] == f"Không tìm thấy mã {other_ref}. Gửi: NHAN RF-xxxxxxxx " \
                                                      "(mã trong tin nhắn đã nhận)."
        message_id = f"gw-{uuid.uuid4()}"
        text(network, POLICE_PHONE, f"nhan {ref.lower()}", message_id)
        assert reply_to(gateway, POLICE_PHONE, 2)[-1] == f"Đã nhận chuyển gửi {ref}."
        accepted = police.GetReferral(referral_pb.GetReferralRequest(referral_id=mine.referral_id), timeout=10)
        assert accepted.referral.status == referral_pb.REFERRAL_STATUS_ACCEPTED
        text(network, POLICE_PHONE, f"NHAN {ref}", message_id)  # the same delivery again: nothing
        text(network, POLICE_PHONE, f"TU CHOI {ref} HETCHO")  # the lifecycle's rules: accepted is not declined
        assert reply_to(gateway, POLICE_PHONE, 3)[-1] == f"Chuyển gửi {ref} không còn chờ trả lời."

        # An unknown reason: the valid ones, in the record's language; then a decline with a coded reason.
        text(network, HOSPITAL_PHONE, f"TU CHOI {other_ref} vi sao")
        assert reply_to(gateway, HOSPITAL_PHONE)[-1] == (
            f"The reason was not understood. Send: DECLINE {other_ref} <reason>. Reasons: FULL, INELIGIBLE, "
            "OUTOFAREA, SURVIVORDECLINED, DUPLICATE.")
        text(network, HOSPITAL_PHONE, f"decline {other_ref} full")
        assert reply_to(gateway, HOSPITAL_PHONE, 2)[-1] == f"Referral {other_ref} declined (FULL)."
        declined = hospital.GetReferral(referral_pb.GetReferralRequest(referral_id=theirs.referral_id), timeout=10)
        assert declined.referral.status == referral_pb.REFERRAL_STATUS_REJECTED
        assert declined.referral.reason == "no_capacity"
    time.sleep(1)
    assert len(gateway.texts_to(POLICE_PHONE)) == 3


def test_no_number_and_no_text_in_any_process_log_or_the_door_rows(network: Network) -> None:
    """Whatever came before in this module (shelters, providers, a survivor, unknown numbers): the numbers texts
    came from, and the texts, are in no process's log; the door's rows hold hashes and ids only."""
    numbers = [SHELTER_PHONE, SHELTER_PHONE_EN, SPC_PHONE, UNKNOWN_PHONE, SURVIVOR_PHONE, SURVIVOR_TEXTS_FROM]
    digits = {"".join(c for c in n if c.isdigit())[-9:] for n in numbers}
    for log in sorted((network.data_dir / "logs").glob("*.log")):
        content = log.read_text(encoding="utf-8", errors="replace")
        runs = {re.sub(r"\D", "", run) for run in re.findall(r"\d[\d \-.]{7,}\d", content)}
        for d in digits:
            assert not any(d in run for run in runs), f"{log.name} holds a number a text came from"
        for word in ("GIUONG", "ARRIVED", "TU CHOI", "decline RF"):
            assert word not in content, f"{log.name} holds a text"
