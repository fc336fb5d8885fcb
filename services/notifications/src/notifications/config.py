from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    """Env prefix NOTIFICATIONS_. A channel without its settings is off: nobody is sent anything on it
    (the in-app feed is always on), so a development network without an SMTP server still works."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")
    service_name: ClassVar[str] = "notifications"
    grpc_port: int = 50054

    # Who is told where: demo/directory.json's shape (providers' "duty_contact", "supervisors",
    # "case_workers"), loaded into the recipients table when the api and the worker start.
    directory_file: Path | None = None
    # Where staff act: plain http(s) URLs named in every staff message.
    partner_portal_url: str = "https://partners.refnet.example"
    operator_console_url: str = "https://console.refnet.example"

    # E-mail over SMTP (off while smtp_host is empty). survivor_sender must name nothing (no refnet, no
    # hotline): without it no survivor is e-mailed.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_sender: str = "refnet <no-reply@refnet.example>"
    smtp_survivor_sender: str = ""
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = 10.0

    # SMS through an HTTP gateway (off while sms_gateway_url is empty).
    sms_gateway_url: str = ""
    sms_api_key: str = ""
    sms_path: str = "/v1/messages"
    sms_sender_id: str = ""
    sms_survivor_sender_id: str = ""
    sms_timeout_s: float = 10.0

    # Signed webhooks: the secret for every partner (comma-separated while rotating), and/or one per
    # provider id as JSON ({"qn-hospital": "s1,s2"}). A partner without a secret gets no webhook.
    webhook_secret: str = ""
    webhook_secrets: dict[str, str] = {}
    webhook_timeout_s: float = 10.0

    # Survivors: the daily windows (Asia/Ho_Chi_Minh) in which a survivor who gave intake no safe times of
    # her own may be contacted (her own times, when she gave some, replace them), and her language.
    survivor_windows: str = "08:00-20:00"
    survivor_language: str = "vi"

    # Dispatch: the worker sends what is due as soon as an event makes it due, and every interval (for
    # retries and deferred notices); each channel's lane claims up to `batch` deliveries in one transaction
    # and sends up to `concurrency` of them at once. A claimed delivery is left alone for the lease before
    # another round may take it over: it must outlast a whole batch's sends (batch / concurrency waves of
    # the longest send, e.g. 4 x SMTP_TIMEOUT_S with the defaults).
    dispatch_interval_s: PositiveFloat = 0.5
    dispatch_batch: PositiveInt = 50
    dispatch_concurrency: PositiveInt = 16
    delivery_lease_s: PositiveFloat = 60.0
    # Retry policies per channel, overriding retry.DEFAULT_POLICIES: {"sms": [base_s, cap_s, max_attempts]}.
    retry: dict[str, tuple[float, float, int]] = {}

    # Intake's internal CaseContactService, called as role "service" with this client certificate (the CA
    # defaults to ca.pem in NOTIFICATIONS_TLS_CERT_DIR). Unset: no survivor is ever contacted.
    intake_address: str = "127.0.0.1:50051"
    intake_client_cert: Path | None = None
    intake_client_key: Path | None = None
    intake_ca_file: Path | None = None

    # The SMS door (notifications-sms): the gateway POSTs each text it receives to http://HOST:PORT/sms/inbound,
    # signed as refnet's webhooks are (HMAC-SHA256 over "<timestamp>.<body>"), with this secret (comma-separated
    # while rotating). Without a secret the door does not start.
    sms_door_host: str = "127.0.0.1"
    sms_door_port: int = 8680
    sms_inbound_secret: str = ""
    sms_inbound_tolerance_s: PositiveFloat = 300.0
    # The key of the hash that stands for a sender's number in the door's rows and its rate limit (empty: a random
    # key per process start, so the hashes of one run match only each other).
    sms_sender_hash_key: str = ""
    # Per sender number: at most this many texts in the window; more are ignored (no reply).
    sms_rate_limit: PositiveInt = 10
    sms_rate_window_s: PositiveFloat = 600.0
    # Who a number is, asked of its owners with the client certificate above (NOTIFICATIONS_INTAKE_CLIENT_CERT).
    shelter_address: str = "127.0.0.1:50053"
    referral_address: str = "127.0.0.1:50052"

    # WatchNotices: how often each stream looks for new notices.
    watch_poll_interval_s: float = 0.5
