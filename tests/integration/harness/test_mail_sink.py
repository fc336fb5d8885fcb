"""The bench's mail server (`make bench --email`): the notifications worker's settings point at it, and it takes
and counts every e-mail sent to it over SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from bench.stack import MailSink

pytestmark = pytest.mark.integration


def test_the_mail_sink_takes_and_counts_what_is_sent_to_the_address_it_gives_the_worker() -> None:
    sink = MailSink()
    sink.start()
    try:
        host, port = sink.env["NOTIFICATIONS_SMTP_HOST"], int(sink.env["NOTIFICATIONS_SMTP_PORT"])
        assert host == "127.0.0.1"
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "n@refnet.test", "duty@police.test", "referral"
        message.set_content("a referral is waiting")
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(message)
            smtp.send_message(message)
        assert sink.count == 2
    finally:
        sink.stop()
