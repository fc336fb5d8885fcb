"""A real Keycloak (refnet's identity provider) from its Maven Central distribution, no Docker.

Keycloak 26 needs Java 21+; the machine's default is Java 17, so it runs with the newer JDK found
beside it (KEYCLOAK_JAVA_HOME, else the newest /usr/lib/jvm/*-25*/ or *-21*). Dev mode, an in-memory
database, the realm in deploy/keycloak/refnet-realm.json imported at every start: the demo people,
their provinces, agency or shelter as attributes carried into their tokens.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from refnet_dev.util import free_port, repo_root, tail

KEYCLOAK_VERSION = "26.5.6"
REALM = "refnet"
DEV_PASSWORD = "refnet-dev"  # every demo person's password, in the development realm only
CLI_CLIENT = "refnet-cli"
SHORT_LIVED_CLIENT = "refnet-cli-short-lived"  # tokens that expire after 5 s, for the expiry tests
# Small heap: it shares a 2-core laptop with Kafka and a dozen refnet processes.
HEAP = "-Xms64m -Xmx512m -XX:TieredStopAtLevel=1"


def realm_file() -> Path:
    return repo_root() / "deploy" / "keycloak" / "refnet-realm.json"


def dist_dir() -> Path:
    return repo_root() / ".cache" / "keycloak" / f"keycloak-{KEYCLOAK_VERSION}"


def java_home() -> Path:
    """A JDK that can run Keycloak (21 or newer)."""
    if os.environ.get("KEYCLOAK_JAVA_HOME"):
        return Path(os.environ["KEYCLOAK_JAVA_HOME"])
    jvms = sorted(Path("/usr/lib/jvm").glob("*"), reverse=True)
    for wanted in ("-25", "-21"):
        for jvm in jvms:
            if wanted in jvm.name and (jvm / "bin" / "java").exists():
                return jvm
    raise RuntimeError("Keycloak needs Java 21+: set KEYCLOAK_JAVA_HOME to such a JDK (none found in /usr/lib/jvm)")


def ensure_dist() -> Path:
    """Fetch and unpack the distribution into .cache/keycloak once; later calls reuse it."""
    home = dist_dir()
    marker = home / ".refnet-unpacked"
    if marker.exists():
        return home
    print(f"fetching Keycloak {KEYCLOAK_VERSION} from Maven Central...", file=sys.stderr, flush=True)
    download = home.parent / "download"
    pom = repo_root() / "tools" / "keycloak" / "pom.xml"
    goal = ["dependency:copy-dependencies", f"-DoutputDirectory={download}", "-DexcludeTransitive=true",
            "-DincludeTypes=zip"]
    done = subprocess.run(["mvn", "-q", "-B", "-f", str(pom), *goal], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mvn could not fetch Keycloak:\n{done.stdout}{done.stderr}")
    if home.exists():  # a partial copy: start clean
        shutil.rmtree(home)
    with zipfile.ZipFile(download / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip") as archive:
        archive.extractall(home.parent)
    for script in (home / "bin").glob("*.sh"):
        script.chmod(0o755)
    shutil.rmtree(download, ignore_errors=True)
    marker.touch()
    return home


@dataclass
class _Token:
    value: str
    expires_at: float


class Keycloak:
    """Start with `with Keycloak() as idp:`; people's tokens from `idp.token("qn-operator")`."""

    def __init__(self, port: int | None = None, startup_timeout: float = 180.0) -> None:
        self.port = port or free_port()
        self.management_port = free_port()
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self.workdir = Path(tempfile.gettempdir()) / f"refnet-keycloak-{uuid.uuid4().hex[:12]}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "keycloak.log"

    def env(self) -> dict[str, str]:
        """What a refnet api needs to verify this provider's tokens."""
        return {"OIDC_ISSUER": self.issuer, "OIDC_AUDIENCE": "refnet-api"}

    def start(self) -> Keycloak:
        home = ensure_dist()
        started = time.monotonic()
        atexit.register(self.stop)  # an interrupted run must not leave a JVM behind
        try:
            self.workdir.mkdir(parents=True)
            # --import-realm reads <home>/data/import; every instance imports the same file.
            imports = home / "data" / "import"
            imports.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(realm_file(), imports / "refnet-realm.json")
            self._launch(home)
            self._wait_ready(started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        print(f"keycloak: {self.issuer} ready, start took {self.startup_seconds:.1f}s", file=sys.stderr)
        return self

    def _launch(self, home: Path) -> None:
        env = {**os.environ, "JAVA_HOME": str(java_home()), "JAVA_OPTS_KC_HEAP": HEAP,
               # The master realm's admin, for the development console only.
               "KC_BOOTSTRAP_ADMIN_USERNAME": "admin", "KC_BOOTSTRAP_ADMIN_PASSWORD": DEV_PASSWORD}
        command = ["bash", str(home / "bin" / "kc.sh"), "start-dev", "--http-host=127.0.0.1",
                   f"--http-port={self.port}", f"--http-management-port={self.management_port}",
                   "--import-realm", "--db=dev-mem", "--hostname-strict=false", "--log-level=WARN"]
        with self.log_file.open("ab") as sink:
            # Own session: Ctrl-C in the terminal reaches the harness, which stops Keycloak in order.
            self._proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        discovery = f"{self.issuer}/.well-known/openid-configuration"
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"keycloak exited with {self._proc.returncode}:\n{tail(self.log_file)}")
            try:
                with urllib.request.urlopen(discovery, timeout=2) as reply:
                    if reply.status == 200 and json.load(reply).get("issuer") == self.issuer:
                        return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"keycloak not ready after {self.startup_timeout:.0f}s:\n{tail(self.log_file)}")
            time.sleep(0.5)

    def token(self, username: str, client_id: str = CLI_CLIENT, password: str = DEV_PASSWORD) -> str:
        """A person's access token (the password grant of the development realm), cached until a
        minute before it expires."""
        key = (username, client_id)
        # One sign-in at a time: with brute-force protection on, Keycloak refuses a user's concurrent logins.
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached.expires_at - 60 > time.time():
                return cached.value
            reply = self.password_grant(username, client_id, password)
            token = _Token(str(reply["access_token"]), time.time() + float(reply["expires_in"]))
            if client_id != SHORT_LIVED_CLIENT:
                self._tokens[key] = token
        return token.value

    def password_grant(self, username: str, client_id: str = CLI_CLIENT,
                       password: str = DEV_PASSWORD) -> dict[str, object]:
        form = urllib.parse.urlencode({"grant_type": "password", "client_id": client_id, "username": username,
                                       "password": password, "scope": "openid"}).encode()
        try:
            with urllib.request.urlopen(self.token_endpoint, data=form, timeout=30) as reply:
                return dict(json.load(reply))
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"keycloak refused a token for {username}: {exc.code} {exc.read()[:200]!r}") from None

    def stop(self) -> None:
        """Idempotent: SIGTERM, then SIGKILL after 20 s; removes its work dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        atexit.unregister(self.stop)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Keycloak:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
