"""Sends checked history to intake's ImportHistory over mutual TLS, as the person signed in: the CLI is a front
door (a gateway certificate) and every call carries the person's access token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from ops.adapters.proto_mapping import import_request
from ops.domain.history import HistoryCall, HistoryCase
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_platform.identity import bearer, channel_credentials


class IntakeImporter:
    def __init__(self, address: str, ca: Path, cert: Path, key: Path, token: Callable[[], str],
                 timeout: float = 60) -> None:
        def add_token(context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
            try:
                callback(bearer(token()), None)
            except Exception as exc:  # gRPC fails the call with it
                callback((), exc)

        credentials = grpc.composite_channel_credentials(channel_credentials(ca, cert, key),
                                                         grpc.metadata_call_credentials(add_token))
        self.channel = grpc.secure_channel(address, credentials)
        self.stub = intake_grpc.IntakeServiceStub(self.channel)
        self.timeout = timeout

    def send(self, cases: list[HistoryCase], calls: list[HistoryCall]) -> tuple[int, int]:
        """(new, already imported) rows of this batch."""
        reply = self.stub.ImportHistory(import_request(cases, calls), timeout=self.timeout)
        rows = [*reply.cases, *reply.calls]
        new = sum(1 for r in rows if r.created)
        return new, len(rows) - new

    def close(self) -> None:
        self.channel.close()
