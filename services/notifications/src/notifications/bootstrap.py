"""Composition root: wires notifications' handlers to real adapters (tests pass their own)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine

from notifications.adapters.channels import ChannelAdapter, SmsGatewayChannel, SmsGatewayConfig, WebhookChannel
from notifications.adapters.dead_letters import KafkaDeadLetters
from notifications.adapters.directory import DirectoryCache
from notifications.adapters.intake_contacts import IntakeContacts
from notifications.adapters.sms_owners import GrpcSmsOwners
from notifications.adapters.smtp import EmailChannel, SmtpConfig
from notifications.config import Settings
from notifications.domain import commands
from notifications.domain.inbound_sms import SenderLimit
from notifications.domain.messages import Channel, Language
from notifications.domain.rendering import Links, OutboundMessage
from notifications.domain.retry import RetryPolicy
from notifications.domain.safe_contact import ContactWindow
from notifications.service_layer import dispatch, handlers, inbound
from notifications.service_layer.handlers import (
    DeadLetterSink,
    DueNow,
    Outlets,
    Policy,
    SurvivorContacts,
    Wakeup,
)
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet_platform.bus import MessageBus
from refnet_platform.clock import Clock, system_clock
from refnet_platform.identity import ServiceChannel, channel_credentials
from refnet_platform.unit_of_work import BatchTransaction


def policy_from(settings: Settings, clock: Clock = system_clock) -> Policy:
    try:
        windows = tuple(ContactWindow.parse(w) for w in settings.survivor_windows.split(",") if w.strip())
    except ValueError as exc:
        raise SystemExit(f"notifications: NOTIFICATIONS_SURVIVOR_WINDOWS: {exc}") from None
    try:
        retry = {Channel(name): RetryPolicy(*values) for name, values in settings.retry.items()}
    except ValueError as exc:
        raise SystemExit(f"notifications: NOTIFICATIONS_RETRY: {exc} (channels: email, sms, webhook; "
                         "values: [base_s, cap_s, max_attempts])") from None
    try:
        links = Links(settings.partner_portal_url, settings.operator_console_url)
    except ValueError as exc:
        raise SystemExit(f"notifications: {exc}") from None
    return Policy(links=links, windows=windows, survivor_language=Language.parse(settings.survivor_language),
                  retry=retry, lease=timedelta(seconds=settings.delivery_lease_s), batch=settings.dispatch_batch,
                  concurrency=settings.dispatch_concurrency, clock=clock)


def webhook_secrets(settings: Settings) -> Callable[[OutboundMessage], list[bytes] | None]:
    default = [s.strip().encode() for s in settings.webhook_secret.split(",") if s.strip()]
    own = {k: [s.strip().encode() for s in v.split(",") if s.strip()] for k, v in settings.webhook_secrets.items()}
    return lambda message: own.get(message.recipient_id) or default or None


def staff_adapters(settings: Settings) -> dict[Channel, ChannelAdapter]:
    """The external channels whose settings are given (the in-app feed needs none: it is the database)."""
    adapters: dict[Channel, ChannelAdapter] = {}
    if settings.smtp_host:
        adapters[Channel.EMAIL] = EmailChannel(SmtpConfig(
            settings.smtp_host, settings.smtp_port, settings.smtp_sender, settings.smtp_survivor_sender,
            settings.smtp_username, settings.smtp_password, settings.smtp_starttls, settings.smtp_ssl,
            settings.smtp_timeout_s))
    if settings.sms_gateway_url:
        adapters[Channel.SMS] = SmsGatewayChannel(SmsGatewayConfig(
            settings.sms_gateway_url, settings.sms_api_key, settings.sms_path, settings.sms_timeout_s,
            settings.sms_sender_id, settings.sms_survivor_sender_id))
    if settings.webhook_secret or settings.webhook_secrets:
        adapters[Channel.WEBHOOK] = WebhookChannel(webhook_secrets(settings), timeout=settings.webhook_timeout_s)
    return adapters


def survivor_contacts(settings: Settings) -> SurvivorContacts | None:
    if not (settings.intake_client_cert and settings.intake_client_key):
        return IntakeContacts(settings.intake_address, None) if settings.allow_plaintext else None
    ca = settings.intake_ca_file or (settings.tls_cert_dir / "ca.pem" if settings.tls_cert_dir else None)
    if ca is None:
        raise SystemExit("notifications: set NOTIFICATIONS_INTAKE_CA_FILE or NOTIFICATIONS_TLS_CERT_DIR "
                         "to reach intake")
    return IntakeContacts.from_files(settings.intake_address, ca, settings.intake_client_cert,
                                     settings.intake_client_key)


def bootstrap(settings: Settings, engine: Engine, *, policy: Policy | None = None,
              adapters: dict[Channel, ChannelAdapter] | None = None, contacts: SurvivorContacts | None = None,
              dead_letters: DeadLetterSink | None = None, wakeup: Wakeup | None = None,
              clock: Clock = system_clock, door: inbound.SmsDoor | None = None) -> MessageBus:
    """wakeup: the worker's dispatch timer, set when an event has made deliveries due. clock: what the handlers
    take as now (the policy's own when a policy is given)."""
    schema = settings.database[1]
    policy = policy or policy_from(settings, clock)

    directory = DirectoryCache()  # the process's copy of the directory's recipients, shared by its units of work

    def uow() -> NotificationsUnitOfWork:
        return NotificationsUnitOfWork(engine, schema, directory)

    outlets = Outlets(
        adapters=staff_adapters(settings) if adapters is None else adapters,
        contacts=contacts if contacts is not None else survivor_contacts(settings),
        dead_letters=dead_letters or KafkaDeadLetters(settings.kafka_bootstrap_servers),
        due=DueNow(wakeup),
    )
    sending: dict[type, Callable[..., Any]] = {
        commands.Notify: handlers.notify,
        commands.NoteCase: handlers.note_case,
        commands.DispatchDue: partial(dispatch.dispatch_due, together=partial(BatchTransaction, engine)),
    }
    timed: dict[type, Callable[..., Any]] = {
        commands.WithdrawConsent: handlers.withdraw_consent,
        commands.EraseCase: handlers.erase_case,
    }
    plain: dict[type, Callable[..., Any]] = {
        commands.NoteConsent: handlers.note_consent,
        commands.LoadDirectory: handlers.load_directory,
        commands.ListNotices: handlers.list_notices,
        commands.NoticesAfter: handlers.notices_after,
    }
    doors: dict[type, Callable[..., Any]] = {} if door is None else {
        commands.ReceiveSms: partial(inbound.receive_sms, uow=uow, door=door, clock=policy.clock),
        commands.RecordSmsReply: partial(inbound.record_reply, uow=uow),
    }
    return MessageBus({
        **doors,
        **{c: partial(h, uow=uow, policy=policy, outlets=outlets) for c, h in sending.items()},
        **{c: partial(h, uow=uow, policy=policy) for c, h in timed.items()},
        **{c: partial(h, uow=uow) for c, h in plain.items()},
    })


def owner_channels(settings: Settings) -> tuple[ServiceChannel | None, ServiceChannel | None, ServiceChannel | None]:
    """Channels to shelter, referral and intake as refnet service "notifications" (the SMS door)."""
    if not (settings.intake_client_cert and settings.intake_client_key):
        if not settings.allow_plaintext:
            return None, None, None
        credentials = None
    else:
        ca = settings.intake_ca_file or (settings.tls_cert_dir / "ca.pem" if settings.tls_cert_dir else None)
        if ca is None:
            raise SystemExit("notifications: set NOTIFICATIONS_INTAKE_CA_FILE or NOTIFICATIONS_TLS_CERT_DIR")
        credentials = channel_credentials(ca, settings.intake_client_cert, settings.intake_client_key)
    return tuple(ServiceChannel(address, credentials, "notifications")  # type: ignore[return-value]
                 for address in (settings.shelter_address, settings.referral_address, settings.intake_address))


def sms_door(settings: Settings) -> tuple[inbound.SmsDoor, GrpcSmsOwners]:
    shelter, referral, intake = owner_channels(settings)
    owners = GrpcSmsOwners(shelter, referral, intake)
    key = settings.sms_sender_hash_key.encode() or os.urandom(32)
    return inbound.SmsDoor(owners, inbound.sender_hasher(key),
                           SenderLimit(settings.sms_rate_limit, settings.sms_rate_window_s),
                           Language.parse(settings.survivor_language)), owners
