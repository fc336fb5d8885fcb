"""How refnet's Kafka clients authenticate: plain text locally, mutual TLS to a Strimzi cluster.

KAFKA_SECURITY_PROTOCOL (PLAINTEXT or SSL), KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSecurity(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")
    protocol: Literal["PLAINTEXT", "SSL"] = Field("PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL")
    cafile: Path | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")
    certfile: Path | None = Field(None, validation_alias="KAFKA_SSL_CERTFILE")
    keyfile: Path | None = Field(None, validation_alias="KAFKA_SSL_KEYFILE")


@lru_cache(maxsize=1)
def _security() -> KafkaSecurity:
    return KafkaSecurity()


def kafka_python_options() -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client."""
    s = _security()
    if s.protocol == "PLAINTEXT":
        return {}
    return {"security_protocol": "SSL", "ssl_cafile": str(s.cafile) if s.cafile else None,
            "ssl_certfile": str(s.certfile) if s.certfile else None,
            "ssl_keyfile": str(s.keyfile) if s.keyfile else None}


def librdkafka_options() -> dict[str, str]:
    """Configuration entries for confluent-kafka's (librdkafka's) clients."""
    s = _security()
    if s.protocol == "PLAINTEXT":
        return {}
    options = {"security.protocol": "SSL"}
    for key, path in (("ssl.ca.location", s.cafile), ("ssl.certificate.location", s.certfile),
                      ("ssl.key.location", s.keyfile)):
        if path:
            options[key] = str(path)
    return options


def aiokafka_options() -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer and consumer."""
    s = _security()
    if s.protocol == "PLAINTEXT":
        return {}
    from aiokafka.helpers import create_ssl_context

    context = create_ssl_context(cafile=str(s.cafile) if s.cafile else None,
                                 certfile=str(s.certfile) if s.certfile else None,
                                 keyfile=str(s.keyfile) if s.keyfile else None)
    return {"security_protocol": "SSL", "ssl_context": context}
