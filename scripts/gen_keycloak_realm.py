#!/usr/bin/env python3
"""Write the production-shaped refnet realm, derived from the development realm.

    python scripts/gen_keycloak_realm.py           # (re)write the files below
    python scripts/gen_keycloak_realm.py --check   # exit 1 if any of them drifted

Source: deploy/keycloak/refnet-realm.json, the development realm (`make run`, the tests): the realm
roles, the clients refnet-web, refnet-console and refnet-cli with their protocol mappers (the
refnet-api audience; provinces, agency_id, shelter_id from the person's attributes), the declarative
user profile that declares those attributes, and the demo people with their dev passwords.

The production-shaped realm is that realm without what only development may have:
  - no users: the demo people and their published password stay in development;
  - no client refnet-cli-short-lived: the expiry tests' 5-second tokens;
  - no client secrets: the development ones are in this repository. On import Keycloak makes a
    random secret for each confidential client that has none (refnet-web, refnet-console);
  - refnet-cli without the password grant (directAccessGrantsEnabled false): only the test harness
    uses it; `refnet login` signs in with the device authorization grant.
Everything else (roles, clients, mappers, user profile, token and session lifetimes) is the same.

Outputs (never edit them by hand; tests/k8s fails when they drift from the development realm):

  deploy/keycloak/refnet-realm-production.json
      the realm, for a Keycloak run elsewhere: import it once (admin console "Create realm" with
      the file, or `kc.sh import --file`), see deploy/k8s/README.md, "People sign in".
  deploy/k8s/components/keycloak/generated/realm-import.yaml
      a KeycloakRealmImport of the same realm for the operator-managed Keycloak (the dev overlay),
      with one difference: the confidential clients' secrets are placeholders the import Job fills
      from the Secrets their front doors read, so the two always agree: refnet-console's
      ${REFNET_CONSOLE_CLIENT_SECRET} from Secret ops-console-oidc, refnet-web's
      ${REFNET_WEB_CLIENT_SECRET} from Secret web-oidc (key client-secret of each).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
try:
    from refnet_dev.generated import write_or_check
except ImportError:  # running from a checkout without `pip install -e tools/dev`
    sys.path.insert(0, str(ROOT / "tools" / "dev" / "src"))
    from refnet_dev.generated import write_or_check
DEV_REALM = ROOT / "deploy/keycloak/refnet-realm.json"
PRODUCTION_REALM = ROOT / "deploy/keycloak/refnet-realm-production.json"
REALM_IMPORT = ROOT / "deploy/k8s/components/keycloak/generated/realm-import.yaml"

DEV_ONLY_CLIENTS = frozenset({"refnet-cli-short-lived"})
NO_PASSWORD_GRANT = frozenset({"refnet-cli"})
KEYCLOAK_CR = "keycloak"  # the Keycloak in deploy/k8s/components/keycloak/keycloak.yaml
API_VERSION = "k8s.keycloak.org/v2alpha1"
# Each confidential client's secret in the realm import: (placeholder, the Secret its front door reads too).
CLIENT_SECRETS = {
    "refnet-console": ("REFNET_CONSOLE_CLIENT_SECRET", {"name": "ops-console-oidc", "key": "client-secret"}),
    "refnet-web": ("REFNET_WEB_CLIENT_SECRET", {"name": "web-oidc", "key": "client-secret"}),
}


def production_realm(dev: dict[str, Any]) -> dict[str, Any]:
    """The development realm without users, dev-only clients, client secrets and the CLI's password grant."""
    realm = copy.deepcopy(dev)
    realm.pop("users", None)
    clients = []
    for client in realm.get("clients", []):
        if client["clientId"] in DEV_ONLY_CLIENTS:
            continue
        client.pop("secret", None)
        if client["clientId"] in NO_PASSWORD_GRANT:
            client["directAccessGrantsEnabled"] = False
        clients.append(client)
    realm["clients"] = clients
    return realm


def realm_import(realm: dict[str, Any]) -> dict[str, Any]:
    """The KeycloakRealmImport of `realm` for the operator-managed Keycloak, each confidential client's secret
    from the Secret its front door reads."""
    realm = copy.deepcopy(realm)
    placeholders = {}
    for client_id, (placeholder, secret) in CLIENT_SECRETS.items():
        [client] = [c for c in realm["clients"] if c["clientId"] == client_id]
        client["secret"] = "${" + placeholder + "}"
        placeholders[placeholder] = {"secret": dict(secret)}
    return {
        "apiVersion": API_VERSION,
        "kind": "KeycloakRealmImport",
        "metadata": {"name": f"{realm['realm']}-realm", "labels": {"refnet.vn/phase": "platform"}},
        "spec": {
            "keycloakCRName": KEYCLOAK_CR,
            "placeholders": placeholders,
            "realm": realm,
        },
    }


def render(dev: dict[str, Any] | None = None) -> dict[Path, str]:
    dev = json.loads(DEV_REALM.read_text()) if dev is None else dev
    realm = production_realm(dev)
    header = (
        "# GENERATED by scripts/gen_keycloak_realm.py from deploy/keycloak/refnet-realm.json, without its\n"
        "# users (dev passwords), its test client, its client secrets and the CLI's password grant.\n"
        "# Do not edit: change the development realm, then run the script (tests/k8s fails on drift).\n"
        '# Keycloak imports a realm only if it does not exist yet: see deploy/k8s/README.md, "People sign in".\n'
    )
    body = yaml.safe_dump(realm_import(realm), sort_keys=False, allow_unicode=True, width=100_000)
    return {
        PRODUCTION_REALM: json.dumps(realm, indent=2, ensure_ascii=False) + "\n",
        REALM_IMPORT: header + "---\n" + body,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift and exit 1 instead of writing")
    args = parser.parse_args(argv)
    return write_or_check(render(), ROOT, args.check, "deploy/keycloak/refnet-realm.json",
                          "python scripts/gen_keycloak_realm.py")


if __name__ == "__main__":
    sys.exit(main())
