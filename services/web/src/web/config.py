from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"
APIS = ("intake", "referral", "shelter", "notifications")


class Settings(ServiceSettings):
    """Env prefix WEB_ (and the shared OIDC_ISSUER, OIDC_AUDIENCE, DATABASE_URL, REFNET_DATA_DIR...)."""

    model_config = SettingsConfigDict(env_prefix="WEB_", extra="ignore")
    service_name: ClassVar[str] = "web"

    host: str = "127.0.0.1"
    port: int = 8580
    # Where people reach the app (e.g. https://refnet.example), when a proxy sits in front: the sign-in
    # callback and the post-sign-out address are built from it; an https URL makes the cookies Secure.
    public_url: str | None = None

    # Signing in: the confidential client `refnet-web` (authorization code flow with PKCE); the app keeps the
    # person's tokens server-side (its sessions table) to call the apis as them. No secret: it does not start.
    oidc_client_id: str = "refnet-web"
    oidc_client_secret: str | None = None
    # Signs the session cookie (the session id); unset, a random one per process start (everyone signs in
    # again after a restart; set it when more than one replica serves the same people).
    session_secret: str | None = None
    # A session ends this long after sign-in, whatever happens in between (a shift).
    session_max_s: float = 8 * 3600

    # The apis, over mutual TLS with the web's gateway certificate (OU=gateway): every call carries the
    # signed-in person's access token and is theirs.
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    intake_address: str = "127.0.0.1:50051"
    referral_address: str = "127.0.0.1:50052"
    shelter_address: str = "127.0.0.1:50053"
    notifications_address: str = "127.0.0.1:50054"
    # A unary call's deadline.
    api_timeout_s: float = 10.0

    def api_addresses(self) -> dict[str, str]:
        return {api: str(getattr(self, f"{api}_address")) for api in APIS}
