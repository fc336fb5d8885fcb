"""deploy/k8s, checked offline: every overlay renders with kustomize, every object validates
against the Kubernetes schemas (kubernetes-validate, strict) and every Strimzi custom resource
against Strimzi's own schemas (npm @kubernetes-models/strimzi-kafka-operator, installed by these
tests into .cache/npm/strimzi-schemas), every Keycloak Operator resource against the subset of its
CRDs in keycloak_crds.yaml, the Kafka topics and users follow the topic registry, the realm follows
the development realm, and the rules the runbook promises hold (one active relay and its standby, workers bounded by
partitions, hardened pods, deny-all network policies, no committed secrets, phased apply, every
token checker reads the issuer from the config, no dev identity provider or password in prod).

Needs kubectl (with `kubectl kustomize`), node and npm; a missing tool is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from refnet_platform.topics import OPS_CONSOLE, TOPICS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
# The oldest Kubernetes minor refnet supports and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.31.0", "1.37.0")
# The services with a gRPC API (the api role), by its port.
SERVICES = {"intake": 50051, "referral": 50052, "shelter": 50053, "notifications": 50054}
# ops has none: its console (HTTP) and trace receiver (OTLP gRPC) run instead of an api and a relay.
OPS_ROLES = ("console", "collector", "worker")
CONSOLE_PORT = 8080
OTLP_PORT = 4317
DEPLOYED = (*SERVICES, "ops")
# The web front door: one process named after its service (no api, worker or relay), HTTP 8080, reached
# from the internet through an Ingress; it calls the four apis as the signed-in person.
WEB = "web"
WEB_PORT = 8080
WEB_OIDC_SECRET = "web-oidc"
WEB_GATEWAY_SECRET = "web-gateway-client"
# The namespace people's browsers arrive from: the ingress controller's (the web app; in dev, Keycloak).
PEOPLE_GATEWAY = {"refnet.vn/identity-gateway": "true"}
# notifications' SMS door: its own process (role sms), HTTP 8680, reached by the SMS gateway through an Ingress
# for its one POST path, from the namespace labelled SMS_GATEWAY; it asks shelter, referral and intake (their
# apis) as service "notifications", with its own client certificate, and answers through the gateway (HTTPS).
SMS_DOOR = "notifications-sms"
SMS_DOOR_PORT = 8680
SMS_PATH = "/sms/inbound"
SMS_GATEWAY = {"refnet.vn/sms-gateway": "true"}
SMS_OWNERS = ("intake", "referral", "shelter")
# One client certificate for refnet service "notifications" (OU=service, CN=notifications): the door and the worker.
SMS_CLIENT_SECRET = "notifications-service-client"
SMS_DOOR_SECRET = "notifications-sms-door"
SMS_GATEWAY_SECRET = "notifications-sms-gateway"
HTTPS_PORT = 443
# notifications-worker sends every e-mail, text and webhook: its channels' settings (shared with the door), their
# secrets, the directory of who is told where, and intake's contact API (GetCaseContact) with the client above.
NOTIFICATIONS_WORKER = "notifications-worker"
CHANNELS_CONFIG = "notifications-channels"
DIRECTORY_CONFIG = "refnet-directory"
SMTP_SECRET = "notifications-smtp"
WEBHOOKS_SECRET = "notifications-webhooks"
SMTP_PORTS = {465, 587}
# Prometheus's namespace, whatever its name, and the front doors' outside the namespace: labels you set.
MONITORING = {"refnet.vn/monitoring": "true"}
HOTLINE_GATEWAY = {"refnet.vn/hotline-gateway": "true"}
NODELOCAL_DNS = "169.254.20.10/32"
METRICS_PORT = 9100
PHASES = ("platform", "migrate", "app")
NPM_DIR = ROOT / ".cache" / "npm" / "strimzi-schemas"
STRIMZI_PACKAGE = "@kubernetes-models/strimzi-kafka-operator"
STRIMZI_API = "kafka.strimzi.io/v1"
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
CNPG_API = "postgresql.cnpg.io/v1"
CNPG_KINDS = {"Cluster", "Database"}
KAFKA_CLUSTER = "refnet-kafka"
DB_SECRET = "refnet-db-app"
KEYCLOAK_API = "k8s.keycloak.org/v2alpha1"
KEYCLOAK_KINDS = {"Keycloak", "KeycloakRealmImport"}
MONITORING_API = "monitoring.coreos.com/v1"
MONITORING_KINDS = {"PodMonitor", "PrometheusRule"}
DEV_REALM = ROOT / "deploy" / "keycloak" / "refnet-realm.json"
PRODUCTION_REALM = ROOT / "deploy" / "keycloak" / "refnet-realm-production.json"
OIDC_CONFIG = "refnet-oidc"
CONSOLE_OIDC_SECRET = "ops-console-oidc"
# The processes that check people's tokens: every gRPC api, the console and the web app (they sign people in).
OIDC_CLIENTS = {f"{s}-api" for s in SERVICES} | {OPS_CONSOLE, WEB}

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------- helpers


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(
            f"`{name}` is not on PATH: tests/k8s needs kubectl, node and npm (they are on "
            f"every refnet developer machine and in CI)"
        )
    return path


def load_generator(name: str = "gen_k8s_kafka") -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def kind(objs: Iterable[Obj], k: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == k]


def by_name(objs: Iterable[Obj], k: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == k}


def pod_templates(objs: Iterable[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod template) for every Deployment and Job."""
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            yield o, o["spec"]["template"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def pod_env(objs: list[Obj], container: Obj, secrets: dict[tuple[str, str], str],
            prefix: str = "NOTIFICATIONS_") -> dict[str, str]:
    """The environment the container starts with: its ConfigMaps' data (envFrom), then its own env, each
    secretKeyRef read from `secrets` ((Secret, key) -> value). A <prefix>* variable from a Secret must be given
    unless optional (then, left out, it is not set); the others (DATABASE_URL, ...) are left out."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in kind(objs, "ConfigMap")}
    values: dict[str, str] = {}
    for src in container.get("envFrom", []):
        values |= configmaps[src["configMapRef"]["name"]]
    for e in container.get("env", []):
        if "value" in e:
            values[e["name"]] = e["value"]
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets:
                values[e["name"]] = secrets[(ref["name"], ref["key"])]
            elif e["name"].startswith(prefix):
                assert ref.get("optional"), f"{e['name']}: no value for Secret {ref['name']}, key {ref['key']}"
    return values


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels + matchExpressions) against a label set."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def registry_processes() -> set[str]:
    names: set[str] = {OPS_CONSOLE}
    for t in TOPICS:
        names.add(t.writer)
        names.update(t.readers)
    return names


def referenced_secrets(objs: Iterable[Obj]) -> set[str]:
    names: set[str] = set()
    for _, tpl in pod_templates(objs):
        spec = tpl["spec"]
        for v in spec.get("volumes", []):
            if "secret" in v:
                names.add(v["secret"]["secretName"])
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
            for src in c.get("envFrom", []):
                if "secretRef" in src:
                    names.add(src["secretRef"]["name"])
    return names


def custom_resource_secrets(objs: Iterable[Obj]) -> set[str]:
    """Secrets the operators' resources read on refnet's behalf: Keycloak's database credentials,
    the realm import's placeholders and the PostgreSQL roles' passwords."""
    names: set[str] = set()
    for kc in kind(objs, "Keycloak"):
        names |= {kc["spec"]["db"][ref]["name"] for ref in ("usernameSecret", "passwordSecret")}
    for ri in kind(objs, "KeycloakRealmImport"):
        names |= {p["secret"]["name"] for p in (ri["spec"].get("placeholders") or {}).values()}
    for cluster in kind(objs, "Cluster"):  # its managed roles' passwords
        names |= {r["passwordSecret"]["name"] for r in (cluster["spec"].get("managed") or {}).get("roles", [])}
    return names


def operator_pods(objs: Iterable[Obj]) -> dict[str, dict[str, str]]:
    """The labels of the pods the Keycloak Operator makes from a Keycloak: its server (StatefulSet)
    and the realm import Job, both from the same template (the operator's labels over ours from
    spec.unsupported.podTemplate; the Job's `app` is keycloak-realm-import)."""
    pods = {}
    for kc in kind(objs, "Keycloak"):
        name = kc["metadata"]["name"]
        ours = ((kc["spec"].get("unsupported") or {}).get("podTemplate") or {}).get("metadata", {}).get("labels", {})
        operator = {
            "app.kubernetes.io/managed-by": "keycloak-operator",
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/component": "server",
        }
        pods[f"Keycloak/{name}"] = {**ours, **operator, "app": "keycloak"}
        if [ri for ri in kind(objs, "KeycloakRealmImport") if ri["spec"]["keycloakCRName"] == name]:
            pods[f"KeycloakRealmImport-Job/{name}"] = {**ours, **operator, "app": "keycloak-realm-import"}
    return pods


def configmap(objs: Iterable[Obj], name: str) -> Obj:
    """A generated ConfigMap (name-<hash>) by its name."""
    [cm] = [c for c in kind(objs, "ConfigMap") if c["metadata"]["name"].rsplit("-", 1)[0] == name]
    return cm


def issuer_of(objs: Iterable[Obj]) -> str:
    issuer: str = configmap(objs, OIDC_CONFIG)["data"]["OIDC_ISSUER"]
    return issuer


def issuer_port(objs: Iterable[Obj]) -> int:
    parts = urlsplit(issuer_of(objs))
    return parts.port or {"https": 443, "http": 80}[parts.scheme]


def dev_realm() -> dict[str, Any]:
    realm: dict[str, Any] = json.loads(DEV_REALM.read_text())
    return realm


def dev_secrets() -> set[str]:
    """What the development realm publishes and no other environment may contain: the demo people's
    passwords and the clients' development secrets."""
    realm = dev_realm()
    found = {c["value"] for u in realm.get("users", []) for c in u.get("credentials", []) if c.get("value")}
    found |= {c["secret"] for c in realm["clients"] if c.get("secret")}
    assert found, "the development realm has no dev password any more: revisit this test"
    return found


def is_strimzi_overlay(objs: list[Obj]) -> bool:
    return any(o["apiVersion"].startswith("kafka.strimzi.io/") for o in objs)


def repository_services() -> set[str]:
    return {p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists()}


def service_processes(objs: Iterable[Obj]) -> Iterator[tuple[str, Obj, Obj]]:
    """(service, workload, pod template) for every Deployment and Job of a refnet service."""
    for workload, tpl in pod_templates(objs):
        service = tpl["metadata"]["labels"].get("app.kubernetes.io/name")
        if service in repository_services():
            yield service, workload, tpl


def granted(user: Obj) -> set[tuple[str, str, str]]:
    """A KafkaUser's ACLs as (resource type, resource name, operation)."""
    return {
        (acl["resource"]["type"], acl["resource"]["name"], op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
    }


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    """Every overlay, rendered by `kubectl kustomize`."""
    kubectl = tool("kubectl")
    out = {}
    for overlay in OVERLAYS:
        proc = subprocess.run(
            [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"kustomize {overlay} failed:\n{proc.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return out


@pytest.fixture(scope="session")
def strimzi_schemas() -> Path:
    """The pinned npm package with Strimzi's schemas, installed with `npm ci` from tests/k8s's lock file."""
    npm, _ = tool("npm"), tool("node")
    package = NPM_DIR / "node_modules" / STRIMZI_PACKAGE
    lock = HERE / "package-lock.json"
    installed_lock = NPM_DIR / "package-lock.json"
    if (
        not (package / "package.json").exists()
        or not installed_lock.exists()
        or installed_lock.read_bytes() != lock.read_bytes()
    ):
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "package.json", NPM_DIR / "package.json")
        shutil.copyfile(lock, installed_lock)
        proc = subprocess.run(
            [npm, "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"npm ci of {STRIMZI_PACKAGE} failed:\n{proc.stdout}\n{proc.stderr}"
    pinned = json.loads((HERE / "package.json").read_text())["dependencies"][STRIMZI_PACKAGE]
    assert json.loads((package / "package.json").read_text())["version"] == pinned
    return package


def strimzi_validate(package: Path, objs: list[Obj]) -> list[Obj]:
    proc = subprocess.run(
        [tool("node"), str(HERE / "validate_strimzi.mjs"), str(package)],
        input=json.dumps(objs),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[Obj] = json.loads(proc.stdout)
    assert len(results) == len(objs)
    return results


ANY = "*"


@cache
def strimzi_fields(package: Path, api_version: str, k: str) -> dict[str, Any]:
    """The property tree of a Strimzi kind, read from the package's TypeScript declaration of it
    (generated from the same CRD as the validator). The CRDs let unknown fields through and the
    API server silently prunes them, so a misspelt field would be lost without this check."""
    text = re.sub(r"/\*.*?\*/", "", (package / api_version / f"{k}.d.ts").read_text(), flags=re.S)
    body = text[text.index("export interface") : text.index("export declare class")]
    root: dict[str, Any] = {}
    stack = [root]
    for raw in body.splitlines()[1:]:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("}"):
            if line not in ("} & ({", "} | {"):  # allOf / oneOf branches add to the same object
                stack.pop()
            continue
        m = re.match(r'^(?:"([^"]+)"|\[key: string\])\??:\s*(.*)$', line)
        assert m, f"cannot read {k}.d.ts line {line!r}"
        name, rest = m.group(1) or ANY, m.group(2)
        if rest.endswith("{"):
            child: dict[str, Any] = {}
            stack[-1][name] = child
            stack.append(child)
        elif rest.rstrip(";") == "{}":
            stack[-1][name] = {ANY: None}  # free-form (x-kubernetes-preserve-unknown-fields)
        else:
            stack[-1][name] = None
    return root


def unknown_fields(value: Any, tree: dict[str, Any] | None, path: str = "") -> list[str]:
    if tree is None:
        return []
    if isinstance(value, list):
        return [u for i, item in enumerate(value) for u in unknown_fields(item, tree, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    out = []
    for key, sub in value.items():
        if key in tree:
            out += unknown_fields(sub, tree[key], f"{path}.{key}")
        elif ANY in tree:
            out += unknown_fields(sub, tree[ANY], f"{path}.{key}")
        else:
            out.append(f"{path}.{key}")
    return out


# ------------------------------------------------------------------------------ schema validation


def test_the_overlays_are_there() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[Obj]], overlay: str, version: str
) -> None:
    errors = []
    checked = 0
    for obj in rendered[overlay]:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if obj["apiVersion"] == STRIMZI_API and obj["kind"] in STRIMZI_KINDS:
            continue  # test_strimzi_resources_validate_against_strimzi_schemas
        if obj["apiVersion"] == CNPG_API and obj["kind"] in CNPG_KINDS:
            continue  # test_the_postgres_cluster_is_consistent (no registry package has its schema)
        if obj["apiVersion"] == KEYCLOAK_API and obj["kind"] in KEYCLOAK_KINDS:
            continue  # test_keycloak_resources_validate_against_the_keycloak_crds
        if obj["apiVersion"] == MONITORING_API and obj["kind"] in MONITORING_KINDS:
            continue  # test_monitoring_resources_validate_against_the_prometheus_operator_crds
        assert "." not in group or group.endswith(".k8s.io"), (
            f"{obj['kind']} {obj['apiVersion']} has no schema to be validated against"
        )
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}")
    assert not errors, "\n".join(errors)
    assert checked >= 60


def test_the_kubernetes_validator_rejects_what_the_api_server_would() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "app", "image": "x:1", "imagePullPolice": "Always"}]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_strimzi_resources_validate_against_strimzi_schemas(
    rendered: dict[str, list[Obj]], overlay: str, strimzi_schemas: Path
) -> None:
    crs = [o for o in rendered[overlay] if o["apiVersion"].startswith("kafka.strimzi.io/")]
    if not is_strimzi_overlay(rendered[overlay]):
        assert not crs
        return
    assert {o["apiVersion"] for o in crs} == {STRIMZI_API}, "use Strimzi's v1 API (Strimzi >= 1.0 serves no other)"
    assert {o["kind"] for o in crs} == STRIMZI_KINDS
    problems = [
        f"{r['kind']}/{r['name']} {e['path']}: {e['message']}"
        for r in strimzi_validate(strimzi_schemas, crs)
        for e in r["errors"]
    ]
    for obj in crs:
        problems += [
            f"{obj['kind']}/{obj['metadata']['name']}: unknown field {u}"
            for u in unknown_fields(obj, strimzi_fields(strimzi_schemas, STRIMZI_API, obj["kind"]))
        ]
    assert not problems, "\n".join(problems)


def test_the_strimzi_validation_catches_bad_values_and_unknown_fields(strimzi_schemas: Path) -> None:
    user = {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaUser",
        "metadata": {"name": "x", "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
        "spec": {
            "authentication": {"type": "tls"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "t", "patternType": "literal"},
                        "operations": ["Read", "Wrtie"],
                    }
                ],
            },
        },
    }
    [result] = strimzi_validate(strimzi_schemas, [user])
    assert [e["path"] for e in result["errors"]] == ["/spec/authorization/acls/0/operations/1"]
    kafka = {
        "apiVersion": STRIMZI_API,
        "kind": "Kafka",
        "metadata": {"name": "x"},
        "spec": {
            "kafka": {
                "listeners": [{"name": "tls", "port": 9093, "type": "internal", "tls": True, "networkPolicyPeer": []}],
                "config": {"any.broker.setting": 1},
            },
            "entityOperator": {"topicOperator": {}},
        },
    }
    assert unknown_fields(kafka, strimzi_fields(strimzi_schemas, STRIMZI_API, "Kafka")) == [
        ".spec.kafka.listeners[0].networkPolicyPeer"
    ]


# ---------------------------------------------------------------------- the topic registry, Kafka


def test_generated_files_match_the_topic_registry() -> None:
    gen = load_generator()
    for path, text in gen.render().items():
        assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make k8s-gen`"
        assert path.read_text() == text, f"{path.relative_to(ROOT)} drifted from the topic registry: run `make k8s-gen`"


def test_the_generator_notices_a_registry_change() -> None:
    gen = load_generator()
    from dataclasses import replace

    changed = tuple(replace(t, partitions=t.partitions * 2) if t.name == "intake.cases.v1" else t for t in TOPICS)
    before, after = gen.render(), gen.render(changed)
    assert before[gen.TOPICS_FILE] != after[gen.TOPICS_FILE]
    assert before[gen.HPA_FILE] != after[gen.HPA_FILE]  # referral-worker reads it: its bound doubles
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_are_the_registry(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    if not is_strimzi_overlay(objs):
        [job] = [o for o in kind(objs, "Job") if o["metadata"]["name"] == "kafka-topics"]
        assert job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "refnet-topics"
        return
    assert not [o for o in kind(objs, "Job") if o["metadata"]["name"] == "kafka-topics"], (
        "with Strimzi the KafkaTopics are the source of topics, not a Job"
    )
    topics = by_name(objs, "KafkaTopic")
    assert set(topics) == {t.name for t in TOPICS}
    for t in TOPICS:
        spec = topics[t.name]["spec"]
        assert spec["partitions"] == t.partitions, t.name
        assert int(spec["config"]["retention.ms"]) == t.retention_ms, t.name
        assert "topicName" not in spec and "replicas" not in spec
        assert topics[t.name]["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_user_acls_are_exactly_what_the_registry_allows(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    if not is_strimzi_overlay(objs):
        return
    users = by_name(objs, "KafkaUser")
    assert set(users) == registry_processes()
    dead_lettering = {t.writer for t in TOPICS if t.dead_letter}
    for process, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER
        assert user["spec"]["authentication"] == {"type": "tls"}
        assert user["spec"]["authorization"]["type"] == "simple"
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"].get("patternType", "literal") == "literal", f"{process}: no prefix or wildcard ACLs"
            assert acl.get("type", "allow") == "allow"
            assert acl.get("host", "*") == "*"
        # Derived here independently of scripts/gen_k8s_kafka.py.
        expected = set()
        for t in TOPICS:
            if t.writer == process:
                expected |= {("topic", t.name, "Write"), ("topic", t.name, "Describe")}
            if process in t.readers:
                expected |= {("topic", t.name, "Read"), ("topic", t.name, "Describe"), ("group", process, "Read")}
            if process == OPS_CONSOLE:  # sizes and lag of everything; a dead letter goes back where it came from
                expected |= {("topic", t.name, "Describe")} | {("group", r, "Describe") for r in t.readers}
                if not t.dead_letter and dead_lettering & set(t.readers):
                    expected.add(("topic", t.name, "Write"))
        got = granted(user)
        assert got == expected, f"{process}: extra {got - expected}, missing {expected - got}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ops_kafka_users_allow_what_ops_does_and_nothing_more(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Checked against ops' own code: what its worker subscribes to and reads by position, and which
    topics the console's replay accepts."""
    from ops.adapters.kafka import DLQ_TOPICS
    from ops.entrypoints.worker import TOPICS as WORKER_TOPICS

    users = by_name(rendered[overlay], "KafkaUser")
    if not users:
        return
    worker = granted(users["ops-worker"])
    assert {n for k, n, op in worker if (k, op) == ("topic", "Read")} == set(WORKER_TOPICS) | set(DLQ_TOPICS)
    # Its own dead letters are its only write.
    assert {(k, n) for k, n, op in worker if op == "Write"} == {("topic", "ops.dlq.v1")}
    assert {(n, op) for k, n, op in worker if k == "group"} == {("ops-worker", "Read")}
    console = granted(users["ops-console"])
    assert not [g for g in console if g[2] == "Read"], "the console reads no records"
    # The replay refuses dead-letter topics and topics outside the registry, and accepts the rest.
    assert {n for k, n, op in console if op == "Write"} == {t.name for t in TOPICS if not t.dead_letter}
    assert {n for k, n, op in console if (k, op) == ("topic", "Describe")} == {t.name for t in TOPICS}
    assert {op for k, n, op in console if k == "group"} == {"Describe"}
    assert {n for k, n, op in console if k == "group"} >= {"ops-worker", *(f"{s}-worker" for s in SERVICES)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_cluster_is_kraft_tls_and_consistently_replicated(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    if not is_strimzi_overlay(objs):
        return
    [kafka] = kind(objs, "Kafka")
    assert kafka["metadata"]["name"] == KAFKA_CLUSTER
    spec = kafka["spec"]["kafka"]
    assert "zookeeper" not in kafka["spec"]
    [listener] = spec["listeners"]
    assert (listener["port"], listener["tls"], listener["authentication"]["type"]) == (9093, True, "tls")
    assert spec["authorization"]["type"] == "simple"
    config = spec["config"]
    assert config["auto.create.topics.enable"] is False
    pools = [p for p in kind(objs, "KafkaNodePool") if p["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER]
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert controllers % 2 == 1, "a KRaft quorum needs an odd number of controllers"
    rf = config["default.replication.factor"]
    assert 1 <= config["min.insync.replicas"] <= rf <= brokers
    assert config["offsets.topic.replication.factor"] <= brokers
    if overlay == "prod":
        assert controllers == 3 and brokers >= 3 and rf == 3 and config["min.insync.replicas"] == 2
        assert all(v["type"] == "persistent-claim" for p in pools for v in p["spec"]["storage"]["volumes"])
    [bootstrap] = {
        c["data"]["KAFKA_BOOTSTRAP_SERVERS"]
        for c in kind(objs, "ConfigMap")
        if c["metadata"]["name"].startswith("refnet-kafka-")
    }
    assert bootstrap == f"{KAFKA_CLUSTER}-kafka-bootstrap:9093"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_clients_connect_with_their_own_certificate(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    deployments = by_name(objs, "Deployment")
    clients = {
        n
        for n, d in deployments.items()
        if d["spec"]["template"]["metadata"]["labels"].get("refnet.vn/kafka-client") == "true"
    }
    # Every deployed worker and relay, any api the registry names as a reader, the operations console,
    # and only those, is a Kafka client, and each is in the registry.
    reading_apis = {n for n in deployments if n.endswith("-api") and n in registry_processes()}
    assert clients == {n for n in deployments if n.endswith(("-worker", "-relay"))} | reading_apis | {OPS_CONSOLE}
    assert clients <= registry_processes(), f"not in the topic registry: {clients - registry_processes()}"
    assert {p for p in registry_processes() if p.split("-")[0] in SERVICES} <= clients
    users = by_name(objs, "KafkaUser")
    for name in clients:
        spec = deployments[name]["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert secrets["kafka-user"] == name
        if users:
            assert name in users
            assert secrets["kafka-ca"] == f"{KAFKA_CLUSTER}-cluster-ca-cert"
        [container] = spec["containers"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["kafka-user"] == "/etc/refnet/kafka/user" and mounts["kafka-ca"] == "/etc/refnet/kafka/ca"
        assert any(e.get("configMapRef", {}).get("name", "").startswith("refnet-kafka") for e in container["envFrom"])
    kafka_cm = next(c for c in kind(objs, "ConfigMap") if c["metadata"]["name"].startswith("refnet-kafka-"))
    data = kafka_cm["data"]
    assert data["KAFKA_SECURITY_PROTOCOL"] == "SSL" and data["KAFKA_BOOTSTRAP_SERVERS"]
    assert data["KAFKA_SSL_CERTFILE"].startswith("/etc/refnet/kafka/user/")
    assert data["KAFKA_SSL_CAFILE"].startswith("/etc/refnet/kafka/ca/")
    for name, d in deployments.items():
        if name not in clients:
            spec = d["spec"]["template"]["spec"]
            assert not {"kafka-user", "kafka-ca"} & {v["name"] for v in spec.get("volumes", [])}, name


# ------------------------------------------------------------------------------ scaling, rollouts


def worker_bound(process: str) -> int:
    counts = [t.partitions for t in TOPICS if process in t.readers]
    assert counts, f"{process} reads nothing in the registry"
    return int(max(counts))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_autoscaling_never_passes_the_partition_count(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in kind(objs, "HorizontalPodAutoscaler")}
    workers = [n for n in by_name(objs, "Deployment") if n.endswith("-worker")]
    assert len(workers) == len(DEPLOYED)
    for worker in workers:
        hpa = hpas[worker]["spec"]
        assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= worker_bound(worker), worker
        if overlay == "prod":
            assert hpa["maxReplicas"] == worker_bound(worker), worker
        assert "replicas" not in by_name(objs, "Deployment")[worker]["spec"], "the autoscaler owns replicas"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_relays_run_one_active_replica_and_a_hot_standby(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Two relays per service, no autoscaler: the relay lease (refnet_platform/relay_lease.py) lets one publish
    and keeps the other on standby, so a rolling update (never a third pod: maxSurge 0) and a drain (the budget
    lets one go at a time) leave a relay that takes over within REFNET_RELAY_LEASE_S."""
    from refnet_platform import runtime

    objs = rendered[overlay]
    relays = {n: d for n, d in by_name(objs, "Deployment").items() if n.endswith("-relay")}
    assert len(relays) == len(SERVICES)
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in kind(objs, "HorizontalPodAutoscaler")}
    for name, relay in relays.items():
        assert relay["spec"]["replicas"] == 2, name
        strategy = relay["spec"]["strategy"]
        assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}, name
        assert name not in targets, f"{name} must not autoscale"
        labels = relay["spec"]["template"]["metadata"]["labels"]
        [pdb] = [p for p in kind(objs, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
        assert pdb["spec"] == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                               "selector": pdb["spec"]["selector"]}, name
    # What makes the second replica safe: every relay process publishes only under the service's lease.
    assert "RelayLease(" in inspect.getsource(runtime.run_relay)
    # An alert for relays that are up while none holds the lease, reading the gauge the lease sets.
    alerts = [r for g in by_name(objs, "PrometheusRule")["refnet-alerts"]["spec"]["groups"] for r in g["rules"]]
    [none_active] = [a for a in alerts if a["alert"] == "RefnetRelayNoneActive"]
    assert metrics_in(none_active["expr"]) == {"refnet_relay_active"}
    downs = [a for a in alerts if a["alert"] == "RefnetRelayDown"]
    assert downs and all("exactly one" not in a["annotations"]["description"] for a in downs)
    readme = (K8S / "README.md").read_text()
    assert "exactly one replica" not in readme and "REFNET_RELAY_LEASE_S" in readme
    assert "hot standby" in (K8S / "base/service-template/relay/relay.yaml").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_budgets_and_autoscalers_find_their_pods(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    deployments = by_name(objs, "Deployment")
    labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    for d in deployments.values():
        assert selects(d["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    for svc in kind(objs, "Service"):
        matched = [n for n, lab in labels.items() if selects({"matchLabels": svc["spec"]["selector"]}, lab)]
        assert len(matched) == 1, f"Service {svc['metadata']['name']} selects {matched}"
    for pdb in kind(objs, "PodDisruptionBudget"):
        matched = [n for n, lab in labels.items() if selects(pdb["spec"]["selector"], lab)]
        assert len(matched) == 1, f"PDB {pdb['metadata']['name']} selects {matched}"
        assert "maxUnavailable" in pdb["spec"], "maxUnavailable never blocks a drain"
    for hpa in kind(objs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in kind(objs, "HorizontalPodAutoscaler")}
    for service in SERVICES:
        assert f"{service}-api" in autoscaled


# ------------------------------------------------------------------------------- pods and probes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_hardened(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for workload, tpl in pod_templates(rendered[overlay]):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = tpl["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod.get("runAsUser", 1) != 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), where
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], where
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
            assert not sc.get("privileged"), where
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"], where
            if c["image"].startswith("refnet/"):
                tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
                assert tmp and tmp[0]["name"] in empty_dirs, f"{where}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_processes_listen_and_are_probed_where_the_code_expects(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    deployments = by_name(objs, "Deployment")
    services = by_name(objs, "Service")
    for svc, port in SERVICES.items():
        prefix = svc.upper()
        for role in ("api", "worker", "relay"):
            [c] = deployments[f"{svc}-{role}"]["spec"]["template"]["spec"]["containers"]
            env = env_of(c)
            assert c["args"] == [role]
            assert env[f"{prefix}_METRICS_PORT"]["value"] == str(METRICS_PORT)
            assert env[f"{prefix}_METRICS_HOST"]["value"] == "0.0.0.0", "probes and scrapes come from outside"
            # The gRPC port demands a client certificate, which a kubelet probe cannot present.
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert not [k for k in env if k.startswith("SERVICE_")]
            expected_ports = {"grpc": port, "metrics": METRICS_PORT} if role == "api" else {"metrics": METRICS_PORT}
            assert {p["name"]: p["containerPort"] for p in c["ports"]} == expected_ports
        [c] = deployments[f"{svc}-api"]["spec"]["template"]["spec"]["containers"]
        env = env_of(c)
        assert env[f"{prefix}_GRPC_PORT"]["value"] == str(port)
        assert env[f"{prefix}_GRPC_HOST"]["value"] == "0.0.0.0"
        assert env[f"{prefix}_TLS_CERT_DIR"]["value"] == "/etc/refnet/tls"
        assert f"{prefix}_ALLOW_PLAINTEXT" not in env
        [sp] = services[f"{svc}-api"]["spec"]["ports"]
        assert (sp["port"], sp["targetPort"]) == (port, "grpc")
    # ops: the console serves its pages, API and side door on one HTTP port; the trace receiver takes
    # OTLP on its gRPC port; the worker and the receiver have the side door on the metrics port.
    for role in OPS_ROLES:
        [c] = deployments[f"ops-{role}"]["spec"]["template"]["spec"]["containers"]
        env = env_of(c)
        assert c["args"] == [role]
        assert not [k for k in env if k.startswith("SERVICE_")]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if role == "console":
            assert ports == {"http": CONSOLE_PORT}
            assert (env["OPS_CONSOLE_HOST"]["value"], env["OPS_CONSOLE_PORT"]["value"]) == (
                "0.0.0.0",
                str(CONSOLE_PORT),
            )
            door = "http"
        else:
            assert ports == {"metrics": METRICS_PORT, **({"otlp-grpc": OTLP_PORT} if role == "collector" else {})}
            assert (env["OPS_METRICS_HOST"]["value"], env["OPS_METRICS_PORT"]["value"]) == (
                "0.0.0.0",
                str(METRICS_PORT),
            )
            door = "metrics"
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": door}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": door}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": door}
    [c] = deployments["ops-collector"]["spec"]["template"]["spec"]["containers"]
    env = env_of(c)
    assert (env["OPS_OTLP_HOST"]["value"], env["OPS_OTLP_PORT"]["value"]) == ("0.0.0.0", str(OTLP_PORT))
    for name, port, target in (("ops-console", CONSOLE_PORT, "http"), ("ops-collector", OTLP_PORT, "otlp-grpc")):
        [sp] = services[name]["spec"]["ports"]
        assert (sp["port"], sp["targetPort"]) == (port, target)
    # web: pages, side door and live streams on one HTTP port.
    [c] = deployments[WEB]["spec"]["template"]["spec"]["containers"]
    env = env_of(c)
    assert c["args"] == [WEB]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": WEB_PORT}
    assert (env["WEB_HOST"]["value"], env["WEB_PORT"]["value"]) == ("0.0.0.0", str(WEB_PORT))
    assert "WEB_ALLOW_PLAINTEXT" not in env
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    [sp] = services[WEB]["spec"]["ports"]
    assert (sp["port"], sp["targetPort"]) == (WEB_PORT, "http")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_process_listens_where_its_ports_and_probes_point(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """The ports as the service's own code reads them from the pod's env: its Settings for the gRPC API,
    the console and the trace receiver, refnet_platform.health_http for the side door."""
    from refnet_platform.health_http import metrics_port

    objs = rendered[overlay]
    configmaps = by_name(objs, "ConfigMap")
    listens = {
        "api": ("grpc", "grpc_host", "grpc_port"),
        "console": ("http", "console_host", "console_port"),
        "collector": ("otlp-grpc", "otlp_host", "otlp_port"),
        "web": ("http", "host", "port"),
        "sms": ("http", "sms_door_host", "sms_door_port"),
    }
    for service, workload, tpl in service_processes(objs):
        if workload["kind"] != "Deployment":
            continue
        [c] = tpl["spec"]["containers"]
        role = c["args"][0]
        env = {
            k: v for src in c.get("envFrom", []) for k, v in configmaps[src["configMapRef"]["name"]]["data"].items()
        } | {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        probed = {c[probe]["httpGet"]["port"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert len(probed) == 1 and probed <= set(ports), f"{workload['metadata']['name']}: probes on {probed}"
        with mock.patch.dict(os.environ, env, clear=True):
            settings = importlib.import_module(f"{service}.config").Settings()
            if role in listens:
                name, host, port = listens[role]
                assert (getattr(settings, host), getattr(settings, port)) == ("0.0.0.0", ports[name]), role
            if "metrics" in ports:
                assert metrics_port(service, role) == ports["metrics"], workload["metadata"]["name"]
                assert env[f"{service.upper()}_METRICS_HOST"] == "0.0.0.0"
            else:  # the console's, the web app's and the SMS door's own port serves /metrics, /healthz, /readyz
                assert probed == {"http"} and role in ("console", "web", "sms")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_specific_secrets_go_only_where_needed(rendered: dict[str, list[Obj]], overlay: str) -> None:
    deployments = by_name(rendered[overlay], "Deployment")
    for name, d in deployments.items():
        spec = d["spec"]["template"]["spec"]
        secrets = {v["secret"]["secretName"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}
        env = env_of(spec["containers"][0])
        if name == "intake-api":
            assert "intake-master-key" in secrets
            assert env["INTAKE_MASTER_KEY_FILE"]["value"].startswith("/etc/refnet/intake/master-key/")
            # Every other key of the Secret still unwraps what it wrapped: how the master key is rotated.
            assert env["INTAKE_PREVIOUS_MASTER_KEYS_DIR"]["value"] == "/etc/refnet/intake/master-key"
        else:
            assert "intake-master-key" not in secrets, name
        if name == "referral-api":  # reads contact details from intake over mutual TLS
            assert "referral-intake-client" in secrets
            assert env["REFERRAL_INTAKE_ADDRESS"]["value"] == f"intake-api:{SERVICES['intake']}"
            for var in ("CLIENT_CERT", "CLIENT_KEY", "CA_FILE"):
                assert env[f"REFERRAL_INTAKE_{var}"]["value"].startswith("/etc/refnet/referral/intake-client/")
            assert d["spec"]["template"]["metadata"]["labels"]["refnet.vn/calls-intake"] == "true"
        else:
            assert "referral-intake-client" not in secrets, name
        tls = {s for s in secrets if s.endswith("-api-tls")}
        if name.endswith("-api"):
            # The server reads ca.pem, server.pem and server.key from <SVC>_TLS_CERT_DIR.
            assert tls == {f"{name}-tls"}
            items = {i["key"]: i["path"] for i in secrets[f"{name}-tls"]["items"]}
            assert items == {"tls.crt": "server.pem", "tls.key": "server.key", "ca.crt": "ca.pem"}
        else:
            assert not tls, name


# ----------------------------------------------------------------------------- network policies


def policy_rules(policy: Obj, direction: str) -> list[Obj]:
    rules: list[Obj] = policy["spec"].get(direction, [])
    return rules


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_each_flow(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    policies = kind(objs, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no namespace-wide deny-all NetworkPolicy"
    pods = {f"{w['kind']}/{w['metadata']['name']}": tpl["metadata"]["labels"] for w, tpl in pod_templates(objs)}
    pods |= operator_pods(objs)
    issuer = issuer_port(objs)

    def egress_ports(labels: dict[str, str]) -> set[int]:
        return {
            port["port"]
            for p in policies
            if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
            for rule in policy_rules(p, "egress")
            for port in rule.get("ports", [])
        }

    def ingress_ports(labels: dict[str, str]) -> set[int]:
        return {
            port["port"]
            for p in policies
            if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
            for rule in policy_rules(p, "ingress")
            for port in rule.get("ports", [])
        }

    def ingress_peers(labels: dict[str, str], port: int) -> list[Obj]:
        return [
            peer
            for p in policies
            if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
            for rule in policy_rules(p, "ingress")
            if port in {q["port"] for q in rule.get("ports", [])}
            for peer in rule.get("from", [{}])
        ]

    for where, labels in pods.items():
        out = egress_ports(labels)
        assert 53 in out, f"{where}: no DNS"
        if labels.get("app.kubernetes.io/component") in ("api", "worker", "relay", "migrate", "console"):
            assert 4317 in out, f"{where}: cannot reach the collector"
        if labels.get("refnet.vn/db-client") == "true":
            assert 5432 in out, f"{where}: cannot reach PostgreSQL"
        for service, port in SERVICES.items():
            if labels.get(f"refnet.vn/calls-{service}") == "true":
                assert port in out, f"{where}: cannot reach {service}-api"
                target = {"app.kubernetes.io/name": service, "app.kubernetes.io/component": "api"}
                assert port in ingress_ports(target), f"{service}-api does not admit its callers"
        if labels.get("refnet.vn/kafka-client") == "true":
            assert 9093 in out, f"{where}: cannot reach the brokers"
        else:
            assert 9093 not in out, f"{where} is not a Kafka client"
        if labels.get("refnet.vn/oidc-client") == "true":
            assert issuer in out, f"{where}: cannot reach the identity provider's keys (port {issuer})"
        component, service = labels.get("app.kubernetes.io/component"), labels.get("app.kubernetes.io/name")
        if component == "api":
            assert ingress_ports(labels) == {SERVICES[service], METRICS_PORT}, where
        elif component in ("worker", "relay"):
            assert ingress_ports(labels) == {METRICS_PORT}, where
        elif component == "migrate":
            assert ingress_ports(labels) == set(), where
        elif service == "ops" and component == "console":
            # Operators through their authenticating proxy's namespace, and Prometheus; nobody else.
            assert ingress_ports(labels) == {CONSOLE_PORT}, where
            assert {json.dumps(peer, sort_keys=True) for peer in ingress_peers(labels, CONSOLE_PORT)} == {
                json.dumps({"namespaceSelector": {"matchLabels": match}}, sort_keys=True)
                for match in ({"refnet.vn/operator-gateway": "true"}, MONITORING)
            }, where
            assert out == {53, 4317, 5432, 9093, issuer}, f"{where}: calls no gRPC API, scrapes nothing"
        elif service == WEB and component == WEB:
            # People through the ingress controller's namespace, and Prometheus; nobody else. Out: the
            # four apis, its sessions database, the identity provider, DNS; no Kafka, no traces.
            assert ingress_ports(labels) == {WEB_PORT}, where
            assert {json.dumps(peer, sort_keys=True) for peer in ingress_peers(labels, WEB_PORT)} == {
                json.dumps({"namespaceSelector": {"matchLabels": match}}, sort_keys=True)
                for match in (PEOPLE_GATEWAY, MONITORING)
            }, where
            assert out == {53, 5432, issuer, *SERVICES.values()}, where
        elif service == "notifications" and component == "sms":
            # The SMS gateway through its ingress controller's namespace, and Prometheus; nobody else. Out: the
            # three apis that own what a text changes (not notifications-api), its database, the gateway's
            # HTTPS API for the replies, DNS; no Kafka, no traces, no identity provider.
            assert ingress_ports(labels) == {SMS_DOOR_PORT}, where
            assert {json.dumps(peer, sort_keys=True) for peer in ingress_peers(labels, SMS_DOOR_PORT)} == {
                json.dumps({"namespaceSelector": {"matchLabels": match}}, sort_keys=True)
                for match in (SMS_GATEWAY, MONITORING)
            }, where
            assert out == {53, 5432, HTTPS_PORT, *(SERVICES[s] for s in SMS_OWNERS)}, where
        elif service == "ops" and component == "collector":
            # Spans from the OpenTelemetry Collector only; its own go nowhere.
            assert ingress_ports(labels) == {OTLP_PORT, METRICS_PORT}, where
            assert ingress_peers(labels, OTLP_PORT) == [
                {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "otel-collector"}}}
            ]
            assert out == {53, 5432}, where
        elif labels.get("app.kubernetes.io/managed-by") == "keycloak-operator":
            # The token checkers and people's browsers (through the ingress controller's namespace);
            # its peers; out to its database and its peers only.
            if labels["app"] == "keycloak":
                assert out == {53, 5432, 7800, 57800}, where
                assert ingress_ports(labels) == {issuer, 7800, 57800}, where
                assert {json.dumps(peer, sort_keys=True) for peer in ingress_peers(labels, issuer)} == {
                    json.dumps({"podSelector": {"matchLabels": {"refnet.vn/oidc-client": "true"}}}, sort_keys=True),
                    json.dumps(
                        {"namespaceSelector": {"matchLabels": {"refnet.vn/identity-gateway": "true"}}}, sort_keys=True
                    ),
                }, where
            else:  # the realm import Job: its database, and nothing reaches it
                assert out == {53, 5432} and ingress_ports(labels) == set(), where
    # The OpenTelemetry Collector may reach ops' trace receiver.
    [collector] = [labels for where, labels in pods.items() if where == "Deployment/otel-collector"]
    assert OTLP_PORT in egress_ports(collector)
    # Every policy's pod selector matches pods we deploy or pods an operator we use makes, or
    # is the callers' side of a gRPC API (refnet.vn/calls-<svc>) that only outside callers use today.
    operator_labels = ("strimzi.io/cluster", "cnpg.io/cluster")
    for p in policies:
        sel = p["spec"]["podSelector"]
        keys = set(sel.get("matchLabels") or {})
        if keys & set(operator_labels) or (keys and all(k.startswith("refnet.vn/calls-") for k in keys)):
            continue
        assert any(selects(sel, labels) for labels in pods.values()), f"{p['metadata']['name']} selects nothing"


# ------------------------------------------------------------------------------ secrets, config


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    assert not kind(objs, "Secret")
    text = yaml.safe_dump_all(objs)
    assert "-----BEGIN" not in text and "postgresql://" not in text
    for _, tpl in pod_templates(objs):
        for c in tpl["spec"]["containers"]:
            for name, e in env_of(c).items():
                if name == "DATABASE_URL":  # the service's own role (test_each_process_connects_as_...)
                    assert e["valueFrom"]["secretKeyRef"]["key"] == "uri"
                    assert e["valueFrom"]["secretKeyRef"]["name"].startswith("refnet-db-")
                elif re.search(r"PASSWORD|SECRET|TOKEN|KEY", name) and "value" in e:
                    # a literal may only name a file (a mounted Secret), never be the secret itself
                    assert e["value"].startswith("/etc/refnet/"), f"{name} must come from a Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_a_pod_needs_is_made_by_an_operator_or_documented(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    readme = (K8S / "README.md").read_text()
    made_by_operators = set(by_name(objs, "KafkaUser"))
    if kind(objs, "Kafka"):
        made_by_operators.add(f"{KAFKA_CLUSTER}-cluster-ca-cert")
    made_by_operators |= {f"{c['metadata']['name']}-app" for c in kind(objs, "Cluster")}
    kafka_client_secrets = {n for n in by_name(objs, "Deployment") if n.endswith(("-worker", "-relay"))}
    needed = referenced_secrets(objs) | custom_resource_secrets(objs)
    for secret in needed - made_by_operators - kafka_client_secrets:
        assert f"`{secret}`" in readme, f"Secret {secret} is not documented in deploy/k8s/README.md"
    assert DB_SECRET in referenced_secrets(objs)
    if kind(objs, "Cluster"):
        assert DB_SECRET in made_by_operators, "DATABASE_URL must read the Secret CloudNativePG makes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_postgres_cluster_is_consistent(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """CloudNativePG's schema is in no registry package, so it is checked here by hand (and was
    checked against the v1.30 CRD when written; see README.md)."""
    clusters = kind(rendered[overlay], "Cluster")
    if not clusters:  # an external database: pods may reach PostgreSQL's port, anywhere
        policy = by_name(rendered[overlay], "NetworkPolicy")["db-clients-to-postgres"]
        assert [p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]] == [5432]
        return
    [cluster] = clusters
    assert cluster["apiVersion"] == CNPG_API
    spec = cluster["spec"]
    assert set(spec) <= {
        "instances",
        "imageName",
        "primaryUpdateStrategy",
        "enableSuperuserAccess",
        "bootstrap",
        "postgresql",
        "storage",
        "resources",
        "affinity",
        "managed",
    }
    assert spec["instances"] == (3 if overlay == "prod" else 1)
    assert spec["bootstrap"]["initdb"] == {"database": "refnet", "owner": "refnet"}
    assert re.fullmatch(r"\d+Gi", spec["storage"]["size"])
    assert re.fullmatch(r"ghcr\.io/cloudnative-pg/postgresql:\d+\.\d+-[a-z-]+", spec["imageName"])
    assert spec["enableSuperuserAccess"] is False
    # More databases in the same cluster (Keycloak's, in dev): CloudNativePG's Database, checked by
    # hand against its v1.30 CRD, owned by the cluster's application role.
    for database in kind(rendered[overlay], "Database"):
        assert database["apiVersion"] == CNPG_API
        dspec = database["spec"]
        assert set(dspec) <= {"cluster", "name", "owner", "ensure", "databaseReclaimPolicy", "encoding", "template"}
        assert dspec["cluster"] == {"name": cluster["metadata"]["name"]}
        assert dspec["owner"] == spec["bootstrap"]["initdb"]["owner"]
        assert dspec["name"] != spec["bootstrap"]["initdb"]["database"], "refnet's own database is the Cluster's"
        assert dspec.get("databaseReclaimPolicy", "retain") == "retain" and dspec.get("ensure", "present") == "present"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_collector_receives_otlp_and_exports_to_the_configured_backend(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    cms = {c["metadata"]["name"].rsplit("-", 1)[0]: c for c in kind(objs, "ConfigMap")}
    config = yaml.safe_load(cms["otel-collector-config"]["data"]["collector.yaml"])
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    for name, pipeline in config["service"]["pipelines"].items():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part]), f"{name} {part}"
    backend, ops = config["exporters"].values()
    assert backend["endpoint"] == "${env:OTEL_BACKEND_ENDPOINT}"
    assert cms["otel-backend"]["data"]["OTEL_BACKEND_ENDPOINT"]
    # Traces go to ops' trace receiver too, for the console's trace view.
    assert ops["endpoint"] == f"ops-collector:{OTLP_PORT}" and ops["tls"] == {"insecure": True}
    assert set(config["exporters"]) <= set(config["service"]["pipelines"]["traces"]["exporters"])
    [receiver] = by_name(objs, "Service")["ops-collector"]["spec"]["ports"]
    assert receiver["port"] == OTLP_PORT
    assert cms["refnet-config"]["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    collector = by_name(objs, "Service")["otel-collector"]
    assert 4317 in {p["port"] for p in collector["spec"]["ports"]}
    [deployment] = [d for d in kind(objs, "Deployment") if d["metadata"]["name"] == "otel-collector"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == cms["otel-collector-config"]["metadata"]["name"]


# ---------------------------------------------------------------- migrations, phases, images


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_migrates_in_a_job(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    jobs = by_name(objs, "Job")
    deployments = by_name(objs, "Deployment")
    for svc in DEPLOYED:
        job = jobs[f"{svc}-migrate"]
        spec = job["spec"]["template"]["spec"]
        [c] = spec["containers"]
        # ops has no api: its console migrates, as itself.
        runs = "api" if svc in SERVICES else "console"
        assert c["args"] == [runs, "--migrate-only"]
        migrator = deployments[f"{svc}-{runs}"]["spec"]["template"]["spec"]
        assert c["image"] == migrator["containers"][0]["image"]
        assert spec["serviceAccountName"] == migrator["serviceAccountName"]
        assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
        assert env_of(c)["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": DB_SECRET, "key": "uri"}
    # web has no api either: its one program migrates (its sessions table), as itself.
    spec = jobs[f"{WEB}-migrate"]["spec"]["template"]["spec"]
    [c] = spec["containers"]
    assert c["args"] == [WEB, "--migrate-only"]
    web = deployments[WEB]["spec"]["template"]["spec"]
    assert c["image"] == web["containers"][0]["image"] and spec["serviceAccountName"] == web["serviceAccountName"]
    assert env_of(c)["MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": DB_SECRET, "key": "uri"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_belongs_to_one_apply_phase(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    for o in objs:
        phase = o["metadata"].get("labels", {}).get("refnet.vn/phase")
        where = f"{o['kind']}/{o['metadata']['name']}"
        assert phase in PHASES, f"{where} has no refnet.vn/phase label"
        if o["kind"] == "Job":
            assert phase == "migrate", where
        elif o["kind"] in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service") and not o[
            "metadata"
        ]["name"].startswith("otel-collector"):
            assert phase == "app", where
        elif o["kind"] not in ("Deployment", "Service", "PodDisruptionBudget"):
            assert phase == "platform", where  # namespace, config, identities, policies, Kafka, PostgreSQL
    script = (K8S / "apply.sh").read_text()
    order = [script.index(f"apply_phase {p}\n") for p in PHASES]
    assert order == sorted(order), "apply.sh must apply platform, then migrate, then app"
    proc = subprocess.run(["bash", "-n", str(K8S / "apply.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.stat(K8S / "apply.sh").st_mode & stat.S_IXUSR


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_and_per_service(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for workload, tpl in pod_templates(rendered[overlay]):
        for c in tpl["spec"]["containers"]:
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image.split("/")[-1]), image
            assert not image.endswith(":latest"), image
            name = workload["metadata"]["name"]
            service = name.split("-")[0]
            if service in repository_services():
                assert image.split(":")[0].split("@")[0].endswith(f"refnet/{service}"), f"{name}: {image}"


# ----------------------------------------------------------------------------------- Dockerfiles


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_one_dockerfile_builds_every_service_image() -> None:
    text = dockerfile()
    assert "ARG SERVICE\n" in text and "ARG SERVICE=" not in text  # no silent default service
    assert not list((ROOT / "services").glob("*/Dockerfile"))
    makefile = (ROOT / "Makefile").read_text()
    assert "--build-arg SERVICE=$$svc" in makefile
    assert set(makefile.split("IMAGE_SERVICES :=")[1].splitlines()[0].split()) == repository_services()


def test_the_dockerfile_builds_small_and_runs_unprivileged() -> None:
    text = dockerfile()
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, flags=re.M)
    assert [s for _, s in stages] == ["build", "runtime"]
    assert {image for image, _ in stages} == {"${PYTHON_IMAGE}"}
    assert "ARG PYTHON_IMAGE=python:3.11-slim\n" in text
    build, runtime = text.split("AS runtime", 1)
    assert "scripts/gen_proto.sh" in build and "grpcio-tools" in build and "grpcio-tools" not in runtime
    installs = re.findall(r"pip\b[^\n]*\binstall\b[^\n]*", text)
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    assert re.findall(r"^COPY --from=build (\S+)", runtime, flags=re.M) == ["/opt/venv"]
    [user] = re.findall(r"^USER (\d+):(\d+)$", runtime, flags=re.M)
    assert int(user[0]) != 0
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/refnet-entrypoint"\]$', runtime, flags=re.M)
    pod_user = (K8S / "base/service-template/defaults/process-defaults.yaml").read_text()
    assert f"runAsUser: {user[0]}" in pod_user
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore must exclude everything, then let in what the build copies"
    for needed in ("!constraints.txt", "!scripts/gen_proto.sh", "!proto/", "!libs/", "!services/"):
        assert needed in rules
    for copied in re.findall(r"^COPY (?!--)(\S+)", build, flags=re.M):
        assert any(
            copied.replace("${SERVICE}", "intake").startswith(r[1:].rstrip("/")) for r in rules if r.startswith("!")
        ), f"{copied} is excluded by .dockerignore"
    assert "proto/gen/" in ignore and "**/__pycache__/" in ignore


def entrypoint_script() -> str:
    script = re.search(r"<<'SH' /usr/local/bin/refnet-entrypoint\n(.*?)\nSH\n", dockerfile(), flags=re.S)
    assert script
    return script.group(1) + "\n"


def entrypoint_roles() -> set[str]:
    """The commands the image's entrypoint runs as "$REFNET_SERVICE-<role>"."""
    found = re.search(r"^  ([a-z|]+)\) \[", entrypoint_script(), flags=re.M)
    assert found
    return set(found.group(1).split("|"))


def console_scripts(service: str) -> set[str]:
    return set(tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"]["scripts"])


def run_entrypoint(tmp_path: Path, service: str, *args: str) -> str:
    """What the image's entrypoint runs, with every console script the service's image has faked."""
    entry = tmp_path / "refnet-entrypoint"
    entry.write_text(entrypoint_script())
    bindir = tmp_path / f"bin-{service}"
    bindir.mkdir(exist_ok=True)
    for cmd in console_scripts(service) | {"refnet-topics"}:
        fake = bindir / cmd
        fake.write_text(f'#!/bin/sh\necho {cmd} "$@"\n')
        fake.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "REFNET_SERVICE": service}
    proc = subprocess.run(["sh", str(entry), *args], env=env, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_entrypoint_chooses_the_role(tmp_path: Path) -> None:
    assert run_entrypoint(tmp_path, "intake") == "intake-api"
    assert run_entrypoint(tmp_path, "intake", "api", "--migrate-only") == "intake-api --migrate-only"
    assert run_entrypoint(tmp_path, "intake", "worker") == "intake-worker"
    assert run_entrypoint(tmp_path, "intake", "relay") == "intake-relay"
    assert run_entrypoint(tmp_path, "intake", "refnet-topics", "--list") == "refnet-topics --list"
    assert run_entrypoint(tmp_path, "ops", "console", "--migrate-only") == "ops-console --migrate-only"
    assert run_entrypoint(tmp_path, "ops", "collector") == "ops-collector"
    assert run_entrypoint(tmp_path, "ops", "refnet", "status") == "refnet status"
    assert run_entrypoint(tmp_path, "ops") == "ops-console"
    assert run_entrypoint(tmp_path, "web") == "web"
    assert run_entrypoint(tmp_path, "web", "web", "--migrate-only") == "web --migrate-only"
    assert run_entrypoint(tmp_path, "notifications", "sms") == SMS_DOOR


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_runs_each_of_its_processes_once(
    rendered: dict[str, list[Obj]], overlay: str, tmp_path: Path
) -> None:
    """Every service of the repository is deployed, and each Deployment (and Job) runs, through the
    image's entrypoint, a console script of its own service; each process the image can run is a
    Deployment named after it."""
    objs = rendered[overlay]
    deployed: dict[str, set[str]] = {s: set() for s in repository_services()}
    for service, workload, tpl in service_processes(objs):
        [c] = tpl["spec"]["containers"]
        program = run_entrypoint(tmp_path, service, *c["args"]).split()[0]
        name = workload["metadata"]["name"]
        assert program in console_scripts(service), f"{name} runs {program}, not a program of {service}"
        if workload["kind"] == "Deployment":
            assert name == program
            deployed[service].add(name)
    for service, names in deployed.items():
        # "<service>-<role>" for a role of the entrypoint, or the one program named after its service (web).
        runnable = {
            s for s in console_scripts(service) if s == service or s.removeprefix(f"{service}-") in entrypoint_roles()
        }
        assert names == runnable, f"{service}: deployed {sorted(names)}, its processes {sorted(runnable)}"
    # What the image build checks it installed is what runs.
    build: dict[str, str] = dict(re.findall(r'(\w+|\*)\) programs="([^"]+)"', dockerfile()))
    for service, names in deployed.items():
        programs = build.get(service, build["*"]).replace("${SERVICE}", service)
        assert set(programs.split()) == names, service
    base = (K8S / "base" / "kustomization.yaml").read_text()
    assert not re.search(r"^#\s*- services/", base, flags=re.M), "a service is commented out of base/"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_has_its_own_identity_and_an_ingress_policy(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    accounts = by_name(objs, "ServiceAccount")
    policies = [p for p in kind(objs, "NetworkPolicy") if "Ingress" in p["spec"]["policyTypes"]]
    deployments = by_name(objs, "Deployment")
    for service, workload, tpl in service_processes(objs):
        name, spec = workload["metadata"]["name"], tpl["spec"]
        account = accounts[spec["serviceAccountName"]]
        assert account["automountServiceAccountToken"] is False
        if workload["kind"] == "Deployment":
            assert spec["serviceAccountName"] == name, f"{name} runs as {spec['serviceAccountName']}"
            # Beyond the namespace's deny-all: a policy names this process and what may reach it.
            labels = tpl["metadata"]["labels"]
            assert [
                p
                for p in policies
                if p["spec"]["podSelector"] and p["spec"].get("ingress") and selects(p["spec"]["podSelector"], labels)
            ], f"{name}: no NetworkPolicy admits anything to it"
        else:  # a migration Job runs as one of its service's processes
            assert spec["serviceAccountName"] in deployments
            assert spec["serviceAccountName"].split("-")[0] == service
    assert {n for n in accounts if n != "default"} <= set(deployments), "a ServiceAccount nothing runs as"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rules_the_api_server_checks_beyond_the_schemas(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Cross-field rules the JSON schemas cannot express, which would fail only at apply time
    or when the process starts."""
    configmaps = by_name(rendered[overlay], "ConfigMap")
    for workload, tpl in pod_templates(rendered[overlay]):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = tpl["spec"]
        for tsc in spec.get("topologySpreadConstraints", []):
            selector_keys = set((tsc.get("labelSelector") or {}).get("matchLabels") or {})
            assert not selector_keys & set(tsc.get("matchLabelKeys", [])), f"{where}: key in both"
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            ports = {p["name"] for p in c.get("ports", [])}
            assert all(len(p) <= 15 for p in ports), where
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = (c.get(probe, {}).get("httpGet") or {}).get("port")
                assert port is None or isinstance(port, int) or port in ports, f"{where} {probe}: {port}"
            defined: set[str] = set()
            for e in c.get("env", []):
                for ref in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                    assert ref in defined, f"{where}: {e['name']} uses $({ref}) before it is defined"
                defined.add(e["name"])
            assert len(defined) == len(c.get("env", [])), f"{where}: duplicate env names"
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes, where
            # Every file a setting names (/etc/refnet/...) is on a mounted volume.
            values = [e["value"] for e in c.get("env", []) if "value" in e]
            for src in c.get("envFrom", []):
                ref = src.get("configMapRef", {}).get("name")
                if ref:
                    assert ref in configmaps, f"{where}: ConfigMap {ref} is not in the overlay"
                    values += list(configmaps[ref]["data"].values())
            mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
            for value in values:
                if value.startswith("/etc/refnet/"):
                    assert any(value == m or value.startswith(m + "/") for m in mounts), f"{where}: {value} not mounted"
    deployments = by_name(rendered[overlay], "Deployment")
    for svc in kind(rendered[overlay], "Service"):
        [pod] = [
            d["spec"]["template"]
            for d in deployments.values()
            if selects({"matchLabels": svc["spec"]["selector"]}, d["spec"]["template"]["metadata"]["labels"])
        ]
        names = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, f"Service {svc['metadata']['name']}: no port {port['targetPort']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_one_namespace(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    [namespace] = [o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"]
    stray = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objs
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != namespace
    ]
    assert not stray, f"not in namespace {namespace}: {stray}"
    labels = next(o for o in objs if o["kind"] == "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --------------------------------------------------------------------------------- people sign in


@cache
def keycloak_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = yaml.safe_load((HERE / "keycloak_crds.yaml").read_text())
    return schemas


def keycloak_errors(obj: Obj) -> list[str]:
    """Where a Keycloak Operator resource breaks the subset of its CRD in keycloak_crds.yaml."""
    schemas = keycloak_schemas()
    validator = jsonschema.Draft202012Validator({**schemas[obj["kind"]], "$defs": schemas["$defs"]})
    return sorted(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj))


def keycloak_of(objs: list[Obj]) -> tuple[Obj, Obj] | None:
    """The overlay's in-cluster Keycloak and its realm import, if it runs one."""
    keycloaks, imports = kind(objs, "Keycloak"), kind(objs, "KeycloakRealmImport")
    if not keycloaks and not imports:
        return None
    [kc], [realm_import] = keycloaks, imports
    return kc, realm_import


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keycloak_resources_validate_against_the_keycloak_crds(
    rendered: dict[str, list[Obj]], overlay: str, version: str
) -> None:
    crs = [o for o in rendered[overlay] if o["apiVersion"].startswith("k8s.keycloak.org/")]
    assert {o["apiVersion"] for o in crs} <= {KEYCLOAK_API}
    assert {o["kind"] for o in crs} <= KEYCLOAK_KINDS
    problems = [f"{o['kind']}/{o['metadata']['name']}{e}" for o in crs for e in keycloak_errors(o)]
    for kc in kind(crs, "Keycloak"):
        # The operator builds its pods over this template: it must be a valid Kubernetes PodTemplateSpec.
        template = kc["spec"]["unsupported"]["podTemplate"]
        try:
            kubernetes_validate.validate(
                {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "keycloak"}, "template": template},
                version,
                strict=True,
            )
        except kubernetes_validate.ValidationError as e:
            problems.append(f"Keycloak/{kc['metadata']['name']} podTemplate {'.'.join(map(str, e.path))}: {e.message}")
    assert not problems, "\n".join(problems)


def test_the_keycloak_validation_catches_bad_values_and_unknown_fields() -> None:
    keycloak = {
        "apiVersion": KEYCLOAK_API,
        "kind": "Keycloak",
        "metadata": {"name": "x"},
        "spec": {"instances": "1", "hostname": {"hostnme": "http://x"}, "http": {"httpEnabled": True}},
    }
    assert keycloak_errors(keycloak) == [
        "/spec/hostname: Additional properties are not allowed ('hostnme' was unexpected)",
        "/spec/instances: '1' is not of type 'integer'",
    ]
    realm = json.loads(PRODUCTION_REALM.read_text())
    realm["clients"][0]["redirectUri"] = ["https://x/*"]
    realm["users"] = []
    realm_import = {
        "apiVersion": KEYCLOAK_API,
        "kind": "KeycloakRealmImport",
        "metadata": {"name": "x"},
        "spec": {"keycloakCRName": "keycloak", "realm": realm},
    }
    assert keycloak_errors(realm_import) == [
        "/spec/realm/clients/0: Additional properties are not allowed ('redirectUri' was unexpected)",
        "/spec/realm: Additional properties are not allowed ('users' was unexpected)",
    ]


def test_the_production_realm_is_the_development_realm_without_its_dev_parts() -> None:
    """The generated files are what scripts/gen_keycloak_realm.py makes of the development realm now,
    and that is the development realm less its people, its test client and its secrets (derived here
    independently of the script)."""
    gen = load_generator("gen_keycloak_realm")
    for path, text in gen.render().items():
        rel = path.relative_to(ROOT)
        assert path.exists(), f"{rel} is missing: run `python scripts/gen_keycloak_realm.py`"
        assert path.read_text() == text, (
            f"{rel} drifted from deploy/keycloak/refnet-realm.json: run `python scripts/gen_keycloak_realm.py`"
        )
    dev, prod = dev_realm(), json.loads(PRODUCTION_REALM.read_text())
    assert "users" in dev and "users" not in prod
    assert {k: v for k, v in prod.items() if k != "clients"} == {
        k: v for k, v in dev.items() if k not in ("users", "clients")
    }, "roles, user profile, lifetimes: as in development"
    dev_clients = {c["clientId"]: c for c in dev["clients"]}
    assert [c["clientId"] for c in prod["clients"]] == ["refnet-web", "refnet-console", "refnet-cli"]
    assert set(dev_clients) == {c["clientId"] for c in prod["clients"]} | {"refnet-cli-short-lived"}
    for client in prod["clients"]:
        expected = {k: v for k, v in dev_clients[client["clientId"]].items() if k != "secret"}
        if client["clientId"] == "refnet-cli":  # `refnet login` uses the device grant; no passwords
            expected["directAccessGrantsEnabled"] = False
        assert client == expected, client["clientId"]
    # What refnet reads from a token is put there by every client, for the audience the apis check.
    from refnet_platform.caller import PERSON_ROLES
    from refnet_platform.identity import AGENCY_CLAIM, PROVINCES_CLAIM, SHELTER_CLAIM

    assert {r["name"] for r in prod["roles"]["realm"]} >= {str(r) for r in PERSON_ROLES}
    for client in prod["clients"]:
        mappers: dict[str, list[dict[str, str]]] = {m["protocolMapper"]: [] for m in client["protocolMappers"]}
        for m in client["protocolMappers"]:
            mappers[m["protocolMapper"]].append(m["config"])
        [audience] = mappers["oidc-audience-mapper"]
        assert audience["included.custom.audience"] == "refnet-api" and audience["access.token.claim"] == "true"
        claims = {c["claim.name"]: c for c in mappers["oidc-usermodel-attribute-mapper"]}
        assert set(claims) == {PROVINCES_CLAIM, AGENCY_CLAIM, SHELTER_CLAIM}, client["clientId"]
        assert all(c["user.attribute"] == name and c["access.token.claim"] == "true" for name, c in claims.items())
    [profile] = prod["components"]["org.keycloak.userprofile.UserProfileProvider"]
    [config] = profile["config"]["kc.user.profile.config"]
    declared = {a["name"]: a for a in json.loads(config)["attributes"]}
    for attribute in (PROVINCES_CLAIM, AGENCY_CLAIM, SHELTER_CLAIM):
        assert declared[attribute]["permissions"]["edit"] == ["admin"], f"only an administrator sets {attribute}"


def test_the_realm_generator_notices_a_development_realm_change() -> None:
    gen = load_generator("gen_keycloak_realm")
    changed = dev_realm()
    changed["roles"]["realm"].append({"name": "auditor", "description": "new"})
    before, after = gen.render(), gen.render(changed)
    assert before[gen.PRODUCTION_REALM] != after[gen.PRODUCTION_REALM]
    assert before[gen.REALM_IMPORT] != after[gen.REALM_IMPORT]
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_api_and_the_console_read_the_issuer_from_the_config(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """Every process that checks people's tokens, and only those, loads refnet-oidc; its own Settings
    read the issuer and audience from there; the audience is the one the realm's tokens carry."""
    objs = rendered[overlay]
    cm = configmap(objs, OIDC_CONFIG)
    issuer = issuer_of(objs)
    assert cm["data"]["OIDC_AUDIENCE"] == "refnet-api"
    assert set(cm["data"]) <= {"OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL", "OIDC_LEEWAY_S"}
    assert urlsplit(issuer).path.rstrip("/") == "/realms/refnet"
    configmaps = by_name(objs, "ConfigMap")
    readers = set()
    for service, workload, tpl in service_processes(objs):
        [c] = tpl["spec"]["containers"]
        name = workload["metadata"]["name"]
        loaded = [src["configMapRef"]["name"] for src in c.get("envFrom", []) if "configMapRef" in src]
        if cm["metadata"]["name"] in loaded:
            readers.add(name)
            assert tpl["metadata"]["labels"].get("refnet.vn/oidc-client") == "true", f"{name}: no way to the issuer"
        assert not [e for e in c.get("env", []) if e["name"].startswith("OIDC_")], (
            f"{name}: OIDC_* only from the config"
        )
        env = {k: v for ref in loaded for k, v in configmaps[ref]["data"].items()}
        env |= {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
        if workload["kind"] == "Deployment" and name in OIDC_CLIENTS:
            with mock.patch.dict(os.environ, env, clear=True):
                settings = importlib.import_module(f"{service}.config").Settings()
            assert (settings.oidc_issuer, settings.oidc_audience) == (issuer, "refnet-api"), name
    assert readers == OIDC_CLIENTS
    labelled = {
        w["metadata"]["name"]
        for w, tpl in pod_templates(objs)
        if tpl["metadata"]["labels"].get("refnet.vn/oidc-client") == "true"
    }
    assert labelled == OIDC_CLIENTS
    if keycloak_of(objs) is None:
        # An identity provider run elsewhere, over HTTPS: the placeholder until the operator sets it.
        assert issuer.startswith("https://"), issuer


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_signs_people_in_as_its_client_with_secrets_from_a_secret(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    [c] = by_name(objs, "Deployment")[OPS_CONSOLE]["spec"]["template"]["spec"]["containers"]
    env = env_of(c)
    client_id = env["OPS_CONSOLE_OIDC_CLIENT_ID"]["value"]
    assert env["OPS_CONSOLE_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": CONSOLE_OIDC_SECRET,
        "key": "client-secret",
    }
    assert env["OPS_CONSOLE_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": CONSOLE_OIDC_SECRET,
        "key": "session-secret",
    }
    [client] = [cl for cl in json.loads(PRODUCTION_REALM.read_text())["clients"] if cl["clientId"] == client_id]
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    readme = (K8S / "README.md").read_text()
    assert f"`{CONSOLE_OIDC_SECRET}`" in readme and "`client-secret`" in readme and "`session-secret`" in readme
    found = keycloak_of(objs)
    if found:  # the in-cluster realm gives the console's client the secret the console reads
        _, realm_import = found
        [imported] = [cl for cl in realm_import["spec"]["realm"]["clients"] if cl["clientId"] == client_id]
        placeholder = re.fullmatch(r"\$\{(\w+)\}", imported["secret"])
        assert placeholder, "the console's secret must come from its Secret, not the realm file"
        assert realm_import["spec"]["placeholders"][placeholder.group(1)]["secret"] == {
            "name": CONSOLE_OIDC_SECRET,
            "key": "client-secret",
        }


# -------------------------------------------------------------------------------- the web front door


def web_pod(objs: list[Obj]) -> Obj:
    template: Obj = by_name(objs, "Deployment")[WEB]["spec"]["template"]
    return template


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_signs_people_in_as_its_client_with_secrets_from_a_secret(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """web reads the issuer from refnet-oidc (and nothing OIDC_* of its own), signs people in as the
    confidential client refnet-web with the client and session secrets of Secret web-oidc, and in dev
    the realm import gives refnet-web that same secret."""
    objs = rendered[overlay]
    pod = web_pod(objs)
    [c] = pod["spec"]["containers"]
    env = env_of(c)
    loaded = [src["configMapRef"]["name"] for src in c["envFrom"] if "configMapRef" in src]
    assert configmap(objs, OIDC_CONFIG)["metadata"]["name"] in loaded
    assert pod["metadata"]["labels"]["refnet.vn/oidc-client"] == "true"
    configmaps = by_name(objs, "ConfigMap")
    values = {k: v for ref in loaded for k, v in configmaps[ref]["data"].items()}
    values |= {e["name"]: e["value"] for e in c["env"] if "value" in e}
    values["WEB_OIDC_CLIENT_SECRET"] = "from-the-secret"
    with mock.patch.dict(os.environ, values, clear=True):
        settings = importlib.import_module("web.config").Settings()
    assert settings.oidc_issuer == issuer_of(objs) and settings.oidc_audience == "refnet-api"
    assert settings.oidc_client_id == "refnet-web"
    assert env["WEB_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": WEB_OIDC_SECRET,
        "key": "client-secret",
    }
    assert env["WEB_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": WEB_OIDC_SECRET, "key": "session-secret"}
    [client] = [cl for cl in json.loads(PRODUCTION_REALM.read_text())["clients"] if cl["clientId"] == "refnet-web"]
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    found = keycloak_of(objs)
    if found:
        _, realm_import = found
        [imported] = [cl for cl in realm_import["spec"]["realm"]["clients"] if cl["clientId"] == "refnet-web"]
        placeholder = re.fullmatch(r"\$\{(\w+)\}", imported["secret"])
        assert placeholder, "the web's client secret must come from its Secret, not the realm file"
        assert realm_import["spec"]["placeholders"][placeholder.group(1)]["secret"] == {
            "name": WEB_OIDC_SECRET,
            "key": "client-secret",
        }
    readme = (K8S / "README.md").read_text()
    section = readme.split("## People sign in", 1)[1].split("\n## ", 1)[0]
    assert f"`{WEB_OIDC_SECRET}`" in section and "refnet-web" in section


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_calls_the_apis_with_its_gateway_certificate_and_no_ca_key(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """Its one Secret volume is its gateway client certificate, its key and the CA certificate the
    apis' certificates chain to (never a CA's key); the settings name those files; each api by the
    name and port of its Service; its sessions in its own schema of the shared database."""
    objs = rendered[overlay]
    spec = web_pod(objs)["spec"]
    [c] = spec["containers"]
    env = env_of(c)
    secrets = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
    assert [s["secretName"] for s in secrets.values()] == [WEB_GATEWAY_SECRET]
    [(volume, secret)] = secrets.items()
    assert {i["key"]: i["path"] for i in secret["items"]} == {
        "tls.crt": "tls.crt",
        "tls.key": "tls.key",
        "ca.crt": "ca.crt",
    }
    assert not [i for i in secret["items"] if re.match(r"^ca[._-]?(key|private)", i["key"], re.I)]
    [mount] = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == volume]
    assert {k: env[k]["value"] for k in ("WEB_TLS_CA", "WEB_TLS_CERT", "WEB_TLS_KEY")} == {
        "WEB_TLS_CA": f"{mount}/ca.crt",
        "WEB_TLS_CERT": f"{mount}/tls.crt",
        "WEB_TLS_KEY": f"{mount}/tls.key",
    }
    services = by_name(objs, "Service")
    for api, port in SERVICES.items():
        assert env[f"WEB_{api.upper()}_ADDRESS"]["value"] == f"{api}-api:{port}"
        assert port in {p["port"] for p in services[f"{api}-api"]["spec"]["ports"]}
    # Only sessions, in schema "web" of DATABASE_URL (refnet_platform.settings), never a SQLite file.
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"refnet-db-{WEB}", "key": "uri"}
    values = {e["name"]: e["value"] for e in c["env"] if "value" in e} | {"DATABASE_URL": "postgresql://x/y"}
    with mock.patch.dict(os.environ, values, clear=True):
        settings = importlib.import_module("web.config").Settings()
    assert settings.database == ("postgresql://x/y", WEB)
    # The gateway certificate goes to the web app only.
    for workload, tpl in pod_templates(objs):
        if workload["metadata"]["name"] not in (WEB,):
            names = {v["secret"]["secretName"] for v in tpl["spec"].get("volumes", []) if "secret" in v}
            assert WEB_GATEWAY_SECRET not in names, workload["metadata"]["name"]
    readme = (K8S / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith(f"| `{WEB_GATEWAY_SECRET}`")]
    assert "OU=gateway, CN=refnet-web" in row


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_people_to_the_web_service(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    ingress = by_name(objs, "Ingress")[WEB]
    spec = ingress["spec"]
    [rule] = spec["rules"]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = by_name(objs, "Service")[backend["name"]]
    assert backend["name"] == WEB
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert selects({"matchLabels": service["spec"]["selector"]}, web_pod(objs)["metadata"]["labels"])
    # TLS for the same host, the address the app builds its sign-in callback from.
    [tls] = spec["tls"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"]
    [c] = web_pod(objs)["spec"]["containers"]
    public = urlsplit(env_of(c)["WEB_PUBLIC_URL"]["value"])
    assert (public.scheme, public.hostname) == ("https", rule["host"])
    assert f"`{tls['secretName']}`" in (K8S / "README.md").read_text(), "the Ingress's TLS Secret is not documented"
    # Live pages are server-sent event streams: the controller must not buffer them.
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_api_admits_the_web_pods(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Each api's ingress policy has a rule whose peer selects the web's pods on the api's port (a bare
    podSelector: same namespace), and the web's egress reaches that api's pods on that port."""
    objs = rendered[overlay]
    policies = kind(objs, "NetworkPolicy")
    web = web_pod(objs)["metadata"]["labels"]
    pods = {
        tpl["metadata"]["labels"].get("app.kubernetes.io/name"): tpl["metadata"]["labels"]
        for w, tpl in pod_templates(objs)
        if w["kind"] == "Deployment" and w["metadata"]["name"].endswith("-api")
    }
    for api, port in SERVICES.items():
        target = pods[api]
        admitted = [
            peer
            for p in policies
            if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], target)
            for rule in p["spec"].get("ingress", [])
            if port in {q["port"] for q in rule.get("ports", [])}
            for peer in rule.get("from", [])
            if set(peer) == {"podSelector"} and selects(peer["podSelector"], web)
        ]
        assert admitted, f"{api}-api does not admit the web's pods"
        reaches = [
            peer
            for p in policies
            if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], web)
            for rule in p["spec"].get("egress", [])
            if port in {q["port"] for q in rule.get("ports", [])}
            for peer in rule.get("to", [])
            if set(peer) == {"podSelector"} and selects(peer["podSelector"], target)
        ]
        assert reaches, f"the web's pods cannot reach {api}-api"


def test_the_web_package_ships_every_template_and_static_file(tmp_path: Path) -> None:
    """The image installs services/web as a wheel (not in place): every file under its templates/ and
    static/, in any folder (the pages' templates/operator/, ...), must be in it."""
    import zipfile

    # Built from a copy: a build in place would leave build/ in the working tree.
    web = shutil.copytree(
        ROOT / "services" / WEB, tmp_path / WEB, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(web),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    [wheel] = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = web / "src" / WEB
    needed = {
        f"{WEB}/{p.relative_to(package).as_posix()}"
        for folder in ("templates", "static")
        for p in (package / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert needed and not needed - shipped, f"not in the wheel: {sorted(needed - shipped)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_in_cluster_keycloak_is_the_issuer_the_processes_check(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    found = keycloak_of(objs)
    if found is None:
        return
    kc, realm_import = found
    spec, name = kc["spec"], kc["metadata"]["name"]
    realm = realm_import["spec"]["realm"]
    assert realm_import["spec"]["keycloakCRName"] == name
    # Tokens name the hostname as their issuer; the processes reach it there: the operator's Service.
    hostname = spec["hostname"]["hostname"]
    assert issuer_of(objs) == f"{hostname}/realms/{realm['realm']}"
    parts = urlsplit(hostname)
    assert (parts.scheme, parts.hostname, parts.port) == ("http", f"{name}-service", 8080)
    assert spec["http"]["httpEnabled"] is True and not spec["http"].get("httpPort")
    assert spec["hostname"].get("strict", True) is True and not spec["hostname"].get("backchannelDynamic")
    # Our NetworkPolicies decide who reaches it: the operator's own would admit everybody.
    assert spec["networkPolicy"]["enabled"] is False and spec["ingress"]["enabled"] is False
    # The database: a CloudNativePG Database in the overlay's cluster, with the credentials it writes.
    [cluster] = kind(objs, "Cluster")
    database = by_name(objs, "Database")[spec["db"]["database"]]
    assert (spec["db"]["vendor"], spec["db"]["host"], spec["db"]["port"]) == (
        "postgres",
        f"{cluster['metadata']['name']}-rw",
        5432,
    )
    assert database["spec"]["name"] == spec["db"]["database"] and "schema" not in spec["db"]
    assert spec["db"]["usernameSecret"] == {"name": f"{cluster['metadata']['name']}-app", "key": "username"}
    assert spec["db"]["passwordSecret"] == {"name": f"{cluster['metadata']['name']}-app", "key": "password"}
    # The namespace enforces the restricted Pod Security Standard on the operator's pods too.
    template = spec["unsupported"]["podTemplate"]
    assert template["metadata"]["labels"]["refnet.vn/db-client"] == "true"
    pod = template["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = template["spec"]["containers"]
    assert container["name"] == "keycloak"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"] and not sc["privileged"]
    # The Keycloak the development realm is tested against; the stock image is not pre-built.
    version = re.search(
        r'^KEYCLOAK_VERSION = "([\d.]+)"$', (ROOT / "tools/dev/src/refnet_dev/keycloak.py").read_text(), re.M
    )
    assert version and spec["image"] == f"quay.io/keycloak/keycloak:{version.group(1)}", (
        "components/keycloak/keycloak.yaml must run the Keycloak the development realm is tested against "
        "(KEYCLOAK_VERSION in tools/dev/src/refnet_dev/keycloak.py), and the operator of that version"
    )
    assert spec["startOptimized"] is False
    res = spec["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
    # The realm is the production-shaped one: nobody in it.
    expected = json.loads(PRODUCTION_REALM.read_text())
    assert {**realm, "clients": [{k: v for k, v in c.items() if k != "secret"} for c in realm["clients"]]} == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_dev_identity_provider_or_dev_password_outside_development(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    text = yaml.safe_dump_all(objs, allow_unicode=True)
    leaked = {s for s in dev_secrets() if s in text}
    assert not leaked, f"{overlay} carries the development realm's passwords or secrets: {sorted(leaked)}"
    for ri in kind(objs, "KeycloakRealmImport"):
        realm = ri["spec"]["realm"]
        assert "users" not in realm and "credentials" not in json.dumps(realm)
        assert "refnet-cli-short-lived" not in {c["clientId"] for c in realm["clients"]}
    if overlay == "dev":
        return
    assert not [o for o in objs if o["apiVersion"].startswith("k8s.keycloak.org/")], f"{overlay} runs the dev Keycloak"
    kustomization = (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
    assert not re.search(r"^\s*-\s*\S*components/keycloak\b", kustomization, flags=re.M)


def test_apply_refuses_the_placeholder_issuer(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    """apply.sh stops before sending anything when OIDC_ISSUER is still the .invalid placeholder, and
    goes on with a real one (a stand-in kubectl renders the overlay and records every other call)."""
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ "$1" = kustomize ]; then cat "$MANIFEST"; else echo "$@" >> "$CALLS"; fi\n')
    fake.chmod(0o755)
    results = {}
    for overlay in ("dev", "prod"):
        manifest, log = tmp_path / f"{overlay}.yaml", tmp_path / f"{overlay}.calls"
        manifest.write_text(yaml.safe_dump_all(rendered[overlay], sort_keys=False))
        env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "MANIFEST": str(manifest), "CALLS": str(log)}
        proc = subprocess.run(
            ["bash", str(K8S / "apply.sh"), overlay, "--dry-run"], env=env, capture_output=True, text=True, timeout=30
        )
        results[overlay] = (proc.returncode, proc.stderr, log.read_text() if log.exists() else "")
    code, stderr, calls = results["prod"]
    assert code == 2 and "OIDC_ISSUER" in stderr and "People sign in" in stderr and not calls
    code, stderr, calls = results["dev"]
    assert code == 0, stderr
    assert calls.count("apply --server-side") == len(PHASES) and "--dry-run=server" in calls


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_server_holds_a_ca_private_key(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """A server gets its own certificate and key and the CA *certificates* it trusts, never a CA's
    key: no mounted Secret item is a CA key, a Secret named like a CA (Strimzi's <cluster>-cluster-ca
    and -clients-ca hold the CA keys) is mounted only for its ca.crt, and the runbook says so."""
    ca_key = re.compile(r"^ca[._-]?(key|private)", re.I)
    for workload, tpl in pod_templates(rendered[overlay]):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        for v in tpl["spec"].get("volumes", []):
            if "secret" not in v:
                continue
            secret, items = v["secret"]["secretName"], v["secret"].get("items")
            keys = {i["key"] for i in items or []} | {i["path"] for i in items or []}
            assert not [k for k in keys if ca_key.match(k)], f"{where} mounts a CA key from {secret}"
            if secret.endswith("-ca") or secret.endswith("-ca-cert"):
                assert items and {i["key"] for i in items} == {"ca.crt"}, f"{where}: only ca.crt of {secret}"
    readme = (K8S / "README.md").read_text()
    assert re.search(r"never (holds|hold|gets|mounts) a CA'?s? private key", readme), (
        "README.md 'Secrets' must say that no server holds a CA's private key"
    )


def test_the_runbook_says_how_people_sign_in() -> None:
    readme = (K8S / "README.md").read_text()
    section = readme.split("## People sign in", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "OIDC_ISSUER",
        "OIDC_AUDIENCE",
        "OIDC_JWKS_URL",
        "https://id.example.invalid/realms/refnet",
        "refnet-realm-production.json",
        "KeycloakRealmImport",
        "scripts/gen_keycloak_realm.py",
        "`ops-console-oidc`",
        "`web-oidc`",
        "provinces",
        "agency_id",
        "shelter_id",
        "keycloak-initial-admin",
        "refnet.vn/identity-gateway",
    ):
        assert needed in section, f"README.md 'People sign in' does not mention {needed}"


# ------------------------------------------------------------------------- PostgreSQL roles and pools

DB_SERVICES = (*DEPLOYED, WEB)
# Connections kept free of refnet's pools: superuser_reserved_connections, CloudNativePG's instance
# manager and monitoring, a person with psql.
DB_HEADROOM = 30


def db_service_of(workload: Obj) -> str:
    return str(workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"])


def secret_of(env: Obj) -> str | None:
    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
    return str(ref["name"]) if ref else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_process_connects_as_its_services_own_role(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """DATABASE_URL is the service's own role (refnet-db-<service>); only the migration Jobs hold the schema
    owner's (refnet-db-app, as MIGRATION_DATABASE_URL)."""
    objs = rendered[overlay]
    seen = set()
    for workload, tpl in pod_templates(objs):
        [container] = tpl["spec"]["containers"]
        env = env_of(container)
        if "DATABASE_URL" not in env:
            assert workload["metadata"]["name"] in ("otel-collector", "kafka-topics")  # no database
            continue
        service = db_service_of(workload)
        seen.add(service)
        assert secret_of(env["DATABASE_URL"]) == f"refnet-db-{service}", workload["metadata"]["name"]
        migrates = workload["kind"] == "Job"
        assert ("MIGRATION_DATABASE_URL" in env) == migrates, workload["metadata"]["name"]
        if migrates:
            assert secret_of(env["MIGRATION_DATABASE_URL"]) == DB_SECRET
    assert seen == set(DB_SERVICES)
    for cluster in kind(objs, "Cluster"):
        roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
        assert set(roles) == {f"refnet_{s}" for s in DB_SERVICES}
        for service in DB_SERVICES:
            role = roles[f"refnet_{service}"]
            assert role["passwordSecret"] == {"name": f"refnet-db-{service}"}
            assert role["login"] is True and role["ensure"] == "present"
            assert not role.get("superuser") and not role.get("createdb") and not role.get("createrole")
            assert not role.get("inRoles"), "a service role is a member of nothing (the owner's least of all)"


def db_connections(objs: list[Obj]) -> dict[str, int]:
    """The most connections each role may open: every process at its autoscaler's maxReplicas (or its
    replicas), each with its pool and as many again in overflow (refnet_platform.engine.make_engine)."""
    autoscaled = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
                  for h in kind(objs, "HorizontalPodAutoscaler")}
    per_role: dict[str, int] = {}
    for workload, tpl in pod_templates(objs):
        env = env_of(tpl["spec"]["containers"][0])
        if "DATABASE_URL" not in env:
            continue
        pool = int(env["REFNET_DB_POOL_SIZE"]["value"])
        name = workload["metadata"]["name"]
        pods = autoscaled.get(name, workload["spec"].get("replicas", 1)) if workload["kind"] == "Deployment" else 1
        role = "refnet" if workload["kind"] == "Job" else f"refnet_{db_service_of(workload)}"
        per_role[role] = per_role.get(role, 0) + pods * 2 * pool
    return per_role


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_connection_pools_fit_the_database_at_the_autoscalers_maximums(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objs = rendered[overlay]
    clusters = kind(objs, "Cluster")
    if not clusters:
        return  # an external database: its max_connections is yours (README, "Connections")
    [cluster] = clusters
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    used = db_connections(objs)
    limits = {r["name"]: r["connectionLimit"] for r in cluster["spec"]["managed"]["roles"]}
    for role, most in used.items():
        if role != "refnet":
            assert most <= limits[role], f"{role} may open {most} connections, its connectionLimit is {limits[role]}"
    assert sum(used.values()) + DB_HEADROOM <= max_connections, (used, max_connections)
    assert sum(limits.values()) + used["refnet"] + DB_HEADROOM <= max_connections
    if overlay == "prod":
        assert sum(used.values()) > 200, "the prod sizing was meant to use the database, not starve the pools"


# ------------------------------------------------------------------ network: front doors, DNS, Prometheus


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_front_doors_outside_the_namespace_reach_intake_and_notifications(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    policies = by_name(rendered[overlay], "NetworkPolicy")
    for service in ("intake", "notifications"):
        [rule] = policies[f"{service}-api-ingress"]["spec"]["ingress"]
        assert {"namespaceSelector": {"matchLabels": HOTLINE_GATEWAY}} in rule["from"]
        assert [p["port"] for p in rule["ports"]] == [SERVICES[service]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dns_egress_works_with_nodelocal_dnscache(rendered: dict[str, list[Obj]], overlay: str) -> None:
    [rule] = by_name(rendered[overlay], "NetworkPolicy")["allow-dns"]["spec"]["egress"]
    assert {"ipBlock": {"cidr": NODELOCAL_DNS}} in rule["to"]
    assert any((peer.get("podSelector") or {}).get("matchLabels") == {"k8s-app": "kube-dns"} for peer in rule["to"])
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_policy_assumes_the_monitoring_namespaces_name(rendered: dict[str, list[Obj]], overlay: str) -> None:
    scraped = 0
    for policy in kind(rendered[overlay], "NetworkPolicy"):
        for rule in policy_rules(policy, "ingress"):
            for peer in rule.get("from", []):
                names = (peer.get("namespaceSelector") or {}).get("matchLabels", {})
                assert names.get("kubernetes.io/metadata.name") != "monitoring", policy["metadata"]["name"]
                scraped += names == MONITORING
    assert scraped >= 5



# ------------------------------------------------------------------------------ monitoring

# Metric names in PromQL: identifiers not followed by "(" (a function) nor inside {...} or "..." (labels),
# and not PromQL's own words.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "group"}


@cache
def monitoring_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = yaml.safe_load((HERE / "monitoring_crds.yaml").read_text())
    return schemas


def monitoring_errors(obj: Obj) -> list[str]:
    schemas = monitoring_schemas()
    validator = jsonschema.Draft202012Validator({**schemas[obj["kind"]], "$defs": schemas["$defs"]})
    return sorted(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj))


@cache
def exported_metrics() -> frozenset[str]:
    """Every metric refnet's code exports, as Prometheus reads it (a histogram's _bucket, _sum, _count), found in
    the source: prometheus_client's Counter/Gauge/Histogram and the console's GaugeMetricFamily."""
    names: set[str] = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|GaugeMetricFamily|CounterMetricFamily)\(\s*\"(refnet_[a-z_]+)\"")
    for source in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for kind_, name in pattern.findall(source.read_text(encoding="utf-8")):
            names.add(name)
            if kind_ == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return frozenset(names)


def metrics_in(expr: str) -> set[str]:
    bare = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        word, rest = match.group(0), bare[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or word.startswith("$"):
            continue
        names.add(word)
    # labels named in by (...) / without (...) / on (...) clauses
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", bare):
        names -= {label.strip() for label in clause.split(",")}
    return names


def test_the_metric_finder_reads_promql() -> None:
    assert metrics_in('sum by (service) (rate(refnet_grpc_requests_total{code=~"INTERNAL"}[5m])) > 0.05') == {
        "refnet_grpc_requests_total"}
    assert metrics_in('absent(up{component="relay", service="intake"} == 1)') == {"up"}
    assert metrics_in("histogram_quantile(0.95, sum by (le) (rate(refnet_event_handling_seconds_bucket[5m])))") == {
        "refnet_event_handling_seconds_bucket"}
    assert "refnet_outbox_oldest_age_seconds" in exported_metrics()
    assert "refnet_dead_letters_pending" in exported_metrics()  # the console's, computed at scrape time
    assert "refnet_grpc_request_seconds_bucket" in exported_metrics()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_resources_validate_against_the_prometheus_operator_crds(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    crs = [o for o in rendered[overlay] if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {o["kind"] for o in crs} == MONITORING_KINDS
    assert {o["apiVersion"] for o in crs} == {MONITORING_API}
    problems = [f"{o['kind']}/{o['metadata']['name']}{e}" for o in crs for e in monitoring_errors(o)]
    assert not problems, "\n".join(problems)
    for o in crs:  # Prometheus selects them by this label (README, "Monitoring")
        assert o["metadata"]["labels"]["refnet.vn/monitoring"] == "true"


def test_the_monitoring_validation_catches_bad_values_and_unknown_fields() -> None:
    monitor = {"apiVersion": MONITORING_API, "kind": "PodMonitor", "metadata": {"name": "x"},
               "spec": {"selector": {"matchLabels": {"a": "b"}}, "podMetricsEndpoints": [{"port": "metrics"}]}}
    assert monitoring_errors(monitor) == []
    assert monitoring_errors({**monitor, "spec": {**monitor["spec"], "podMetricEndpoints": []}})
    assert monitoring_errors({**monitor, "spec": {"selector": {}, "podMetricsEndpoints": [{"interval": "30 s"}]}})
    rule = {"apiVersion": MONITORING_API, "kind": "PrometheusRule", "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5m"}]}]}}
    assert monitoring_errors(rule) == []
    assert monitoring_errors({**rule, "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "exp": "up"}]}]}})
    assert monitoring_errors({**rule, "spec": {"groups": [{"name": "g", "rules": [{"expr": "up"}]}]}})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_alert_reads_metrics_the_code_exports(rendered: dict[str, list[Obj]], overlay: str) -> None:
    [rules] = kind(rendered[overlay], "PrometheusRule")
    alerts = [r for g in rules["spec"]["groups"] for r in g["rules"]]
    exported = exported_metrics() | {"up"}
    for alert in alerts:
        used = metrics_in(str(alert["expr"]))
        assert used, f"{alert['alert']} reads no metric"
        assert used <= exported, f"{alert['alert']} reads {sorted(used - exported)}, which refnet does not export"
        assert alert["labels"]["severity"] in ("critical", "warning", "info")
        assert alert["annotations"]["summary"] and alert["annotations"]["runbook"].startswith("deploy/k8s/README.md")
    read = set().union(*(metrics_in(str(a["expr"])) for a in alerts))
    # What the issue asks an operations team to be told: outbox age, dead letters pending, consumer lag,
    # SLA breaches, escalations, a relay down.
    assert {"refnet_outbox_oldest_age_seconds", "refnet_dead_letters_pending", "refnet_consumer_lag",
            "refnet_sla_breaches_total", "refnet_escalations_total", "up"} <= read
    relays = {re.search(r'service="(\w+)"', str(a["expr"])).group(1)  # type: ignore[union-attr]
              for a in alerts if a["alert"] == "RefnetRelayDown"}
    assert relays == set(SERVICES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboards_are_grafana_json_reading_exported_metrics(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    configmaps = kind(rendered[overlay], "ConfigMap")
    [dashboards] = [c for c in configmaps if c["metadata"]["name"] == "refnet-grafana-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert len(dashboards["data"]) >= 2
    exported = exported_metrics() | {"up"}
    uids = set()
    for name, text in dashboards["data"].items():
        board = json.loads(text)
        assert name.endswith(".json") and board["title"].startswith("refnet") and board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        for panel in board["panels"]:
            assert panel["targets"], f"{name}: {panel['title']} shows nothing"
            for target in panel["targets"]:
                used = metrics_in(target["expr"])
                assert used and used <= exported, f"{name}: {panel['title']} reads {sorted(used - exported)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_monitors_scrape_every_process_on_a_port_it_has(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    monitors = kind(objs, "PodMonitor")
    scraped = set()
    for workload, tpl in pod_templates(objs):
        if workload["kind"] != "Deployment":
            continue
        labels = tpl["metadata"]["labels"]
        ports = {p.get("name") for c in tpl["spec"]["containers"] for p in c.get("ports", [])}
        for monitor in monitors:
            if selects(monitor["spec"]["selector"], labels):
                for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                    assert endpoint["port"] in ports, f"{monitor['metadata']['name']}: {workload['metadata']['name']}"
                scraped.add(workload["metadata"]["name"])
    deployments = set(by_name(objs, "Deployment"))
    assert scraped == deployments, f"not scraped: {sorted(deployments - scraped)}"
    if kind(objs, "Kafka"):
        [kafka_monitor] = [m for m in monitors if m["metadata"]["name"] == "refnet-kafka"]
        assert [e["port"] for e in kafka_monitor["spec"]["podMetricsEndpoints"]] == ["tcp-prometheus"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_exports_its_metrics(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    for kafka in kind(objs, "Kafka"):
        config = kafka["spec"]["kafka"]["metricsConfig"]
        assert config["type"] == "jmxPrometheusExporter"
        ref = config["valueFrom"]["configMapKeyRef"]
        [cm] = [c for c in kind(objs, "ConfigMap") if c["metadata"]["name"] == ref["name"]]
        rules = yaml.safe_load(cm["data"][ref["key"]])
        assert rules["rules"] and all("pattern" in r for r in rules["rules"])
        assert kafka["spec"]["kafkaExporter"]  # consumer-group lag


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_collectors_own_metrics_are_reachable(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    config = yaml.safe_load(configmap(objs, "otel-collector-config")["data"]["collector.yaml"])
    [reader] = config["service"]["telemetry"]["metrics"]["readers"]
    exporter = reader["pull"]["exporter"]["prometheus"]
    assert exporter["host"] == "0.0.0.0", "on localhost only, no scrape reaches it"
    deployment = by_name(objs, "Deployment")["otel-collector"]
    ports = {p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports["metrics"] == exporter["port"]
    policy = by_name(objs, "NetworkPolicy")["otel-collector"]
    assert any(
        {"namespaceSelector": {"matchLabels": MONITORING}} in rule.get("from", [])
        and exporter["port"] in {p["port"] for p in rule["ports"]}
        for rule in policy["spec"]["ingress"]
    )


# ------------------------------------------------------------------------------- image tags, buf


def test_make_images_and_every_overlay_share_one_tag_scheme(rendered: dict[str, list[Obj]]) -> None:
    """`make images` tags refnet/<svc>:$(cat VERSION); every overlay runs that tag, or pins a digest."""
    version = (ROOT / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    makefile = (ROOT / "Makefile").read_text()
    assert "IMAGE_TAG ?= $(shell cat VERSION)" in makefile
    assert "$(IMAGE_REPO)/$$svc:$(IMAGE_TAG)" in makefile
    for overlay, objs in rendered.items():
        for workload, tpl in pod_templates(objs):
            for c in tpl["spec"]["containers"]:
                image = c["image"]
                if image.split("@")[0].split(":")[0].split("/")[-1] not in repository_services():
                    continue
                where = f"{overlay}: {workload['metadata']['name']}"
                assert "@sha256:" in image or image.endswith(f":{version}"), where


def test_lint_runs_buf_breaking_against_main() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "./scripts/buf_breaking.sh" in lint
    script = (ROOT / "scripts" / "buf_breaking.sh").read_text()
    assert "git archive" in script and "main origin/main" in script and "skipped" in script


# ------------------------------------------------------------------------------- the SMS door


def sms_door_pod(objs: list[Obj]) -> Obj:
    template: Obj = by_name(objs, "Deployment")[SMS_DOOR]["spec"]["template"]
    return template


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sms_door_runs_as_its_own_process_behind_a_service(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """notifications-sms: the image's `sms` role, its own service account, a Service on its HTTP port, an
    autoscaler bounded low (its rate limit is per replica), a disruption budget, probes on its own /healthz and
    /readyz, and the notifications image at the release's tag, like every other process."""
    objs = rendered[overlay]
    deployment = by_name(objs, "Deployment")[SMS_DOOR]
    pod = sms_door_pod(objs)
    [c] = pod["spec"]["containers"]
    assert c["args"] == ["sms"]
    assert c["image"].split(":")[0].split("@")[0].endswith("refnet/notifications")
    assert pod["spec"]["serviceAccountName"] == SMS_DOOR
    assert by_name(objs, "ServiceAccount")[SMS_DOOR]["automountServiceAccountToken"] is False
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": SMS_DOOR_PORT}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    [sp] = by_name(objs, "Service")[SMS_DOOR]["spec"]["ports"]
    assert (sp["port"], sp["targetPort"]) == (SMS_DOOR_PORT, "http")
    [hpa] = [h for h in kind(objs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == SMS_DOOR]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= 3
    assert "replicas" not in deployment["spec"], "the autoscaler owns replicas"
    [pdb] = [p for p in kind(objs, "PodDisruptionBudget") if selects(p["spec"]["selector"], pod["metadata"]["labels"])]
    assert pdb["spec"]["maxUnavailable"] == 1
    # Not a Kafka client, checks no person's token, exports no spans (README, "The SMS door").
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "notifications" and labels["app.kubernetes.io/component"] == "sms"
    assert "refnet.vn/kafka-client" not in labels and "refnet.vn/oidc-client" not in labels
    assert [src["configMapRef"]["name"].rsplit("-", 1)[0] for src in c["envFrom"]] == ["refnet-config", CHANNELS_CONFIG]
    assert env_of(c)["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == ""
    # Scraped by Prometheus on the port that serves its /metrics.
    monitors = [m for m in kind(objs, "PodMonitor") if selects(m["spec"]["selector"], labels)]
    assert [e["port"] for m in monitors for e in m["spec"]["podMetricsEndpoints"]] == ["http"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sms_doors_env_is_its_settings(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Every NOTIFICATIONS_* variable the door gets is a field of notifications.config.Settings (the shared
    defaults' METRICS_* aside, which the door does not read), every setting the door needs is given, secrets
    come from Secrets, and the door's own Settings read them as the pod's env gives them."""
    from notifications.config import Settings

    objs = rendered[overlay]
    [c] = sms_door_pod(objs)["spec"]["containers"]
    env = env_of(c)
    prefix = "NOTIFICATIONS_"
    fields = {f"{prefix}{name.upper()}" for name in Settings.model_fields}
    shared_defaults = {f"{prefix}METRICS_PORT", f"{prefix}METRICS_HOST"}  # ../service-template/defaults
    given = set(env) | set(configmap(objs, CHANNELS_CONFIG)["data"])  # its own env, and the channels' ConfigMap
    ours = {n for n in given if n.startswith(prefix)} - shared_defaults
    assert ours <= fields, f"not a setting of notifications.config: {sorted(ours - fields)}"
    needed = {
        "sms_door_host", "sms_door_port", "sms_inbound_secret", "sms_sender_hash_key",
        "sms_gateway_url", "sms_api_key", "sms_sender_id", "sms_survivor_sender_id",
        "intake_address", "referral_address", "shelter_address",
        "intake_client_cert", "intake_client_key", "intake_ca_file",
    }
    assert {f"{prefix}{n.upper()}" for n in needed} <= ours
    # The signing secret (comma-separated while rotating), the sender hash key and the gateway's API key: Secrets.
    from_secrets = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "valueFrom" in e and
                    "secretKeyRef" in e["valueFrom"] and n.startswith(prefix)}
    assert from_secrets == {
        f"{prefix}SMS_INBOUND_SECRET": {"name": SMS_DOOR_SECRET, "key": "inbound-secret"},
        f"{prefix}SMS_SENDER_HASH_KEY": {"name": SMS_DOOR_SECRET, "key": "sender-hash-key"},
        f"{prefix}SMS_API_KEY": {"name": SMS_GATEWAY_SECRET, "key": "api-key"},
    }
    values = pod_env(objs, c, {(SMS_DOOR_SECRET, "inbound-secret"): "new,old",
                               (SMS_DOOR_SECRET, "sender-hash-key"): "k", (SMS_GATEWAY_SECRET, "api-key"): "a"})
    with mock.patch.dict(os.environ, values, clear=True):
        settings = Settings()
    assert (settings.sms_door_host, settings.sms_door_port) == ("0.0.0.0", SMS_DOOR_PORT)
    assert settings.sms_inbound_secret == "new,old" and settings.sms_api_key == "a"
    # The gateway's URL and sender ids: the worker's, from the one ConfigMap (empty in dev: no gateway, no reply).
    assert settings.sms_gateway_url == configmap(objs, CHANNELS_CONFIG)["data"][f"{prefix}SMS_GATEWAY_URL"]
    assert settings.sms_gateway_url.startswith("https://") or (overlay == "dev" and not settings.sms_gateway_url)
    # Each owner by its Service's name and port (their certificates carry these names).
    services = by_name(objs, "Service")
    for owner in SMS_OWNERS:
        address = getattr(settings, f"{owner}_address")
        assert address == f"{owner}-api:{SERVICES[owner]}", owner
        assert SERVICES[owner] in {p["port"] for p in services[f"{owner}-api"]["spec"]["ports"]}
    # Its client certificate: one Secret, mounted where the settings point, certificate, key and the apis' CA only.
    volumes = {v["name"]: v["secret"] for v in sms_door_pod(objs)["spec"]["volumes"] if "secret" in v}
    assert [s["secretName"] for s in volumes.values()] == [SMS_CLIENT_SECRET]
    [(volume, secret)] = volumes.items()
    assert {i["key"]: i["path"] for i in secret["items"]} == {"tls.crt": "tls.crt", "tls.key": "tls.key",
                                                              "ca.crt": "ca.crt"}
    [mount] = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == volume]
    assert (settings.intake_client_cert, settings.intake_client_key, settings.intake_ca_file) == (
        Path(f"{mount}/tls.crt"), Path(f"{mount}/tls.key"), Path(f"{mount}/ca.crt"))
    # The door's own Secret goes to the door only; its client certificate and the gateway's key to the door and
    # the notifications worker only (one caller, "notifications"; one gateway).
    for workload, _ in pod_templates(objs):
        name = workload["metadata"]["name"]
        if name != SMS_DOOR:
            assert SMS_DOOR_SECRET not in referenced_secrets([workload]), name
        if name not in (SMS_DOOR, NOTIFICATIONS_WORKER):
            assert not {SMS_CLIENT_SECRET, SMS_GATEWAY_SECRET} & referenced_secrets([workload]), name
    readme = (K8S / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith(f"| `{SMS_CLIENT_SECRET}`")]
    assert "OU=service, CN=notifications" in row
    for secret_name in (SMS_DOOR_SECRET, SMS_GATEWAY_SECRET):
        assert f"| `{secret_name}`" in readme, f"Secret {secret_name} has no row in README 'Secrets'"


def reachable_from(objs: list[Obj], source: dict[str, str]) -> dict[str, set[int]]:
    """Which Deployments' pods a pod with these labels may open a connection to, and on which ports: an egress
    rule of the source's policies lets it out towards the target (a podSelector peer that selects it, no `to`,
    or the whole internet as an ipBlock) and an ingress rule of the target's policies admits it (a bare
    podSelector peer that selects the source, or no `from`)."""
    policies = kind(objs, "NetworkPolicy")
    out: dict[str, set[int]] = {}
    for workload, tpl in pod_templates(objs):
        if workload["kind"] != "Deployment":
            continue
        target = tpl["metadata"]["labels"]
        leaves = {
            q["port"]
            for p in policies
            if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], source)
            for rule in p["spec"].get("egress", [])
            if "to" not in rule
            or any(
                (set(peer) == {"podSelector"} and selects(peer["podSelector"], target))
                or peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
                for peer in rule["to"]
            )
            for q in rule.get("ports", [])
        }
        admitted = {
            q["port"]
            for p in policies
            if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], target)
            for rule in p["spec"].get("ingress", [])
            if "from" not in rule
            or any(set(peer) == {"podSelector"} and selects(peer["podSelector"], source) for peer in rule["from"])
            for q in rule.get("ports", [])
        }
        if leaves & admitted:
            out[workload["metadata"]["name"]] = leaves & admitted
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sms_door_reaches_exactly_the_three_owners_and_nothing_reaches_it(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """Inside the namespace the door reaches shelter-api, referral-api and intake-api on their gRPC ports and
    no other process (not notifications-api, not the web, not the collector); each of the three admits it.
    No refnet process reaches the door: only the SMS gateway's namespace and Prometheus's do."""
    objs = rendered[overlay]
    door = sms_door_pod(objs)["metadata"]["labels"]
    assert reachable_from(objs, door) == {f"{s}-api": {SERVICES[s]} for s in SMS_OWNERS}
    for workload, tpl in pod_templates(objs):
        if workload["kind"] == "Deployment" and workload["metadata"]["name"] != SMS_DOOR:
            reached = reachable_from(objs, tpl["metadata"]["labels"])
            assert SMS_DOOR not in reached, f"{workload['metadata']['name']} reaches the SMS door"
    # The way out for the replies: HTTPS to the gateway, and nothing else towards the internet.
    internet = {
        q["port"]
        for p in kind(objs, "NetworkPolicy")
        if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], door)
        for rule in p["spec"].get("egress", [])
        if any("ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0" for peer in rule.get("to", []))
        for q in rule.get("ports", [])
    }
    extra = {5432} if not kind(objs, "Cluster") else set()  # an external database: anywhere on its port
    assert internet == {HTTPS_PORT} | extra


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_sms_ingress_routes_only_the_gateways_post_path(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    ingresses = by_name(objs, "Ingress")
    assert set(ingresses) == {WEB, SMS_DOOR}
    spec = ingresses[SMS_DOOR]["spec"]
    [rule] = spec["rules"]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == (SMS_PATH, "Exact"), "only the gateway's path: not /metrics"
    backend = path["backend"]["service"]
    service = by_name(objs, "Service")[backend["name"]]
    assert backend["name"] == SMS_DOOR
    [port] = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
    assert port["port"] == SMS_DOOR_PORT
    assert selects({"matchLabels": service["spec"]["selector"]}, sms_door_pod(objs)["metadata"]["labels"])
    [tls] = spec["tls"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"]
    assert rule["host"] != by_name(objs, "Ingress")[WEB]["spec"]["rules"][0]["host"]
    assert f"`{tls['secretName']}`" in (K8S / "README.md").read_text(), "the Ingress's TLS Secret is not documented"
    # The path the door serves is the one routed, POST only (its route in the code).
    from notifications.entrypoints.sms_door import create_app

    app = create_app(mock.Mock(), None, [b"s"], 300.0)
    [route] = [r for r in app.routes if getattr(r, "path", None) == SMS_PATH]
    assert getattr(route, "methods", None) == {"POST"}
    # At most a text: the door refuses bodies over 16 KiB itself; the controller need not take more.
    assert ingresses[SMS_DOOR]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "16k"


# ------------------------------------------------------------------------------- settings, the worker's channels


def settings_class(service: str) -> Any:
    """<service>.config.Settings, or None for a process refnet's repository does not configure (Kafka, ...)."""
    if service not in repository_services():
        return None
    return importlib.import_module(f"{service}.config").Settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_env_name_a_process_gets_is_a_setting_of_its_service(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """A misspelt name is silently ignored (extra="ignore"): for every Deployment and Job of a refnet service,
    each <SVC>_* variable it gets, from its env or its ConfigMaps, is a field of <service>.config.Settings, or
    one of the health door's own (<SVC>_[<ROLE>_]METRICS_PORT, <SVC>_METRICS_HOST: refnet_platform.health_http)."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in kind(rendered[overlay], "ConfigMap")}
    checked = set()
    for workload, tpl in pod_templates(rendered[overlay]):
        service = tpl["metadata"]["labels"].get("app.kubernetes.io/name", "")
        settings = settings_class(service)
        if settings is None:
            continue
        prefix = settings.model_config["env_prefix"]
        fields = {f"{prefix}{name.upper()}" for name in settings.model_fields}
        health = {f"{prefix}METRICS_PORT", f"{prefix}METRICS_HOST"}
        roles = ("api", "worker", "relay", "console", "collector")
        health |= {f"{prefix}{role.upper()}_METRICS_PORT" for role in roles}
        for c in tpl["spec"]["containers"] + tpl["spec"].get("initContainers", []):
            names = {e["name"] for e in c.get("env", [])}
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    names |= set(configmaps[src["configMapRef"]["name"]])
            ours = {n for n in names if n.startswith(prefix)}
            unknown = ours - fields - health
            assert not unknown, f"{workload['metadata']['name']}: not settings of {service}.config: {sorted(unknown)}"
            checked.add(workload["metadata"]["name"])
    assert {NOTIFICATIONS_WORKER, SMS_DOOR, WEB} | {f"{s}-api" for s in SERVICES} <= checked


def test_the_settings_check_catches_a_misspelt_name() -> None:
    from notifications.config import Settings

    fields = {f"NOTIFICATIONS_{name.upper()}" for name in Settings.model_fields}
    assert "NOTIFICATIONS_SMTP_HOST" in fields and "NOTIFICATIONS_SMTP_SERVER" not in fields
    assert "NOTIFICATIONS_SMS_API_KEY" in fields and "NOTIFICATIONS_SMS_GATEWAY_KEY" not in fields


def notifications_worker(objs: list[Obj]) -> tuple[Obj, Obj]:
    template: Obj = by_name(objs, "Deployment")[NOTIFICATIONS_WORKER]["spec"]["template"]
    [c] = template["spec"]["containers"]
    return template, c


WORKER_SECRETS = {
    (SMS_GATEWAY_SECRET, "api-key"): "gateway-key",
    (SMTP_SECRET, "username"): "refnet",
    (SMTP_SECRET, "password"): "smtp-password",
    (WEBHOOKS_SECRET, "secret"): "new,old",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_notifications_worker_has_every_channel(
    rendered: dict[str, list[Obj]], overlay: str, tmp_path: Path
) -> None:
    """The worker's Settings, read from the pod's env as Kubernetes gives it (its ConfigMaps, its env, its Secrets
    with test values), turn on e-mail, SMS and webhooks (in dev SMS and e-mail are off on purpose), point at the
    mounted directory (which the worker's own loader reads) and at intake's contact API with the client
    certificate the SMS door uses; every secret comes from a Secret, documented, and goes to no other process."""
    from notifications.adapters.directory_file import load_directory_file
    from notifications.bootstrap import staff_adapters
    from notifications.config import Settings
    from notifications.domain.messages import Channel

    objs = rendered[overlay]
    pod, c = notifications_worker(objs)
    assert [src["configMapRef"]["name"].rsplit("-", 1)[0] for src in c["envFrom"]] == [
        "refnet-config", "refnet-kafka", CHANNELS_CONFIG]
    env = env_of(c)
    refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
    from_secrets = {n: (ref["name"], ref["key"]) for n, ref in refs.items() if n.startswith("NOTIFICATIONS_")}
    assert from_secrets == {
        "NOTIFICATIONS_SMS_API_KEY": (SMS_GATEWAY_SECRET, "api-key"),
        "NOTIFICATIONS_SMTP_USERNAME": (SMTP_SECRET, "username"),
        "NOTIFICATIONS_SMTP_PASSWORD": (SMTP_SECRET, "password"),
        "NOTIFICATIONS_WEBHOOK_SECRET": (WEBHOOKS_SECRET, "secret"),
        "NOTIFICATIONS_WEBHOOK_SECRETS": (WEBHOOKS_SECRET, "secrets"),
    }
    # The webhook keys may be left out (a partner without a secret gets no webhook; an empty JSON would not parse).
    assert env["NOTIFICATIONS_WEBHOOK_SECRETS"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["NOTIFICATIONS_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is True
    # No secret among the ConfigMap's settings.
    channels = configmap(objs, CHANNELS_CONFIG)["data"]
    assert not {n for n in channels if re.search(r"KEY|PASSWORD|USERNAME|SECRET", n)}

    values = pod_env(objs, c, WORKER_SECRETS)
    with mock.patch.dict(os.environ, values, clear=True):
        settings = Settings()
    adapters = staff_adapters(settings)
    if overlay == "dev":
        assert (settings.sms_gateway_url, settings.smtp_host) == ("", "")  # a developer's cluster sends nothing
        assert set(adapters) == {Channel.WEBHOOK}
    else:
        assert set(adapters) == {Channel.EMAIL, Channel.SMS, Channel.WEBHOOK}
        assert urlsplit(settings.sms_gateway_url).scheme == "https"
        # The placeholders that apply.sh refuses (test_apply_refuses_placeholder_channels).
        assert urlsplit(settings.sms_gateway_url).hostname.endswith(".invalid")  # type: ignore[union-attr]
        assert settings.smtp_host.endswith(".invalid")
    # SMTP submission with STARTTLS on a port the delivery policy opens; the login from the Secret.
    assert settings.smtp_port in SMTP_PORTS and settings.smtp_starttls != settings.smtp_ssl
    assert (settings.smtp_port == 465) == settings.smtp_ssl
    assert (settings.smtp_username, settings.smtp_password, settings.sms_api_key) == (
        "refnet", "smtp-password", "gateway-key")
    assert settings.webhook_secret == "new,old" and settings.webhook_secrets == {}
    # A survivor is never named by the sender: empty (nobody reached) unless the operator sets a neutral one.
    assert settings.sms_survivor_sender_id == "" and settings.smtp_survivor_sender == ""
    # Who is told where: the mounted ConfigMap's file, which the worker's own loader reads.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert settings.directory_file is not None
    directory_volume = volumes[mounts[str(settings.directory_file.parent)]]["configMap"]
    assert directory_volume["name"].rsplit("-", 1)[0] == DIRECTORY_CONFIG
    [item] = directory_volume["items"]
    assert item["path"] == settings.directory_file.name
    shipped = tmp_path / "directory.json"
    shipped.write_text(configmap(objs, DIRECTORY_CONFIG)["data"][item["key"]])
    assert load_directory_file(shipped).recipients == ()  # the placeholder names nobody
    demo = load_directory_file(ROOT / "demo" / "directory.json")  # the shape an overlay replaces it with
    assert demo.recipients
    # Intake's contact API by its Service's name and port, with the one notifications client certificate.
    assert settings.intake_address == f"intake-api:{SERVICES['intake']}"
    client = volumes[mounts[str(settings.intake_client_cert.parent)]]["secret"]  # type: ignore[union-attr]
    assert client["secretName"] == SMS_CLIENT_SECRET
    assert {i["key"] for i in client["items"]} == {"tls.crt", "tls.key", "ca.crt"}
    mount = str(settings.intake_client_cert.parent)  # type: ignore[union-attr]
    assert (settings.intake_client_cert, settings.intake_client_key, settings.intake_ca_file) == (
        Path(f"{mount}/tls.crt"), Path(f"{mount}/tls.key"), Path(f"{mount}/ca.crt"))
    door_volumes = [v["secret"]["secretName"] for v in sms_door_pod(objs)["spec"]["volumes"] if "secret" in v]
    assert door_volumes == [SMS_CLIENT_SECRET], "one notifications identity, one Secret"
    # The worker's own Secrets go nowhere else; every one has its row in the README, with its keys.
    for workload, _ in pod_templates(objs):
        if workload["metadata"]["name"] != NOTIFICATIONS_WORKER:
            assert not {SMTP_SECRET, WEBHOOKS_SECRET} & referenced_secrets([workload]), workload["metadata"]["name"]
    readme = (K8S / "README.md").read_text()
    for (secret, key) in (*WORKER_SECRETS, (WEBHOOKS_SECRET, "secrets")):
        [row] = [line for line in readme.splitlines() if line.startswith(f"| `{secret}`")]
        assert f"`{key}`" in row and (NOTIFICATIONS_WORKER in row), secret
    [row] = [line for line in readme.splitlines() if line.startswith(f"| `{SMS_CLIENT_SECRET}`")]
    assert NOTIFICATIONS_WORKER in row and SMS_DOOR in row and "OU=service, CN=notifications" in row
    # The README's per-overlay list names every setting of the ConfigMap.
    section = readme.split("### Notifications' channels", 1)[1].split("\n## ", 1)[0]
    for name in channels:
        assert f"`{name}`" in section or f"`_{name.removeprefix('NOTIFICATIONS_')}`" in section, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_notifications_worker_reaches_intake_and_its_gateways_only(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """In the namespace the worker reaches intake-api's gRPC port (intake-api admits it by refnet.vn/calls-intake)
    and no other refnet process; towards the internet, the SMS gateway and webhooks (443) and SMTP submission
    (465, 587), nothing else."""
    objs = rendered[overlay]
    pod, _ = notifications_worker(objs)
    labels = pod["metadata"]["labels"]
    reached = {name: ports for name, ports in reachable_from(objs, labels).items()
               if name in {n for n in by_name(objs, "Deployment") if n.split("-")[0] in repository_services()}}
    assert reached == {"intake-api": {SERVICES["intake"]}}
    internet = {
        q["port"]
        for p in kind(objs, "NetworkPolicy")
        if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)
        for rule in p["spec"].get("egress", [])
        if any("ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0" for peer in rule.get("to", []))
        for q in rule.get("ports", [])
    }
    # An external database or Kafka: anywhere on its port.
    extra = ({5432} if not kind(objs, "Cluster") else set()) | ({9093} if not kind(objs, "Kafka") else set())
    assert internet == {HTTPS_PORT, *SMTP_PORTS} | extra
    # Of every process, only these send anything outside on SMTP ports.
    for workload, tpl in pod_templates(objs):
        if workload["metadata"]["name"] == NOTIFICATIONS_WORKER:
            continue
        out = {q["port"] for p in kind(objs, "NetworkPolicy")
               if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], tpl["metadata"]["labels"])
               for rule in p["spec"].get("egress", []) for q in rule.get("ports", [])}
        assert not out & SMTP_PORTS, workload["metadata"]["name"]


def test_apply_refuses_placeholder_channels(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    """With its issuer set, prod is still refused while its SMS gateway or SMTP host is the .invalid placeholder,
    before anything is sent; set (or empty: the channel off) it goes on. dev empties both and goes on."""
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ "$1" = kustomize ]; then cat "$MANIFEST"; else echo "$@" >> "$CALLS"; fi\n')
    fake.chmod(0o755)

    def apply(name: str, objs: list[Obj]) -> tuple[int, str, str]:
        manifest, log = tmp_path / f"{name}.yaml", tmp_path / f"{name}.calls"
        manifest.write_text(yaml.safe_dump_all(objs, sort_keys=False))
        env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "MANIFEST": str(manifest), "CALLS": str(log)}
        proc = subprocess.run(
            ["bash", str(K8S / "apply.sh"), "prod", "--dry-run"], env=env, capture_output=True, text=True, timeout=30
        )
        return proc.returncode, proc.stderr, log.read_text() if log.exists() else ""

    def prod_with(**channels: str) -> list[Obj]:
        objs = json.loads(json.dumps(rendered["prod"]))
        configmap(objs, OIDC_CONFIG)["data"]["OIDC_ISSUER"] = "https://id.refnet.example.org/realms/refnet"
        configmap(objs, CHANNELS_CONFIG)["data"].update(channels)
        return objs

    code, stderr, calls = apply("placeholders", prod_with())
    assert code == 2 and "NOTIFICATIONS_SMS_GATEWAY_URL" in stderr and "Notifications' channels" in stderr
    assert not calls
    code, _, calls = apply("gateway-only", prod_with(NOTIFICATIONS_SMS_GATEWAY_URL="https://api.sms.example.org"))
    assert code == 2 and not calls, "the SMTP host is still the placeholder"
    code, stderr, calls = apply("set", prod_with(NOTIFICATIONS_SMS_GATEWAY_URL="https://api.sms.example.org",
                                                 NOTIFICATIONS_SMTP_HOST=""))
    assert code == 0, stderr
    assert calls.count("apply --server-side") == len(PHASES)
