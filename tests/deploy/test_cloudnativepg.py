"""deploy/k8s/postgres/cluster.yaml, the CloudNativePG Cluster of the history: kubernetes-validate
has no schema for it (the operator's CRD is referenced, not vendored), so its fields are checked
here; and it agrees with the pods that use it, the HPAs that size them, Compose's PostgreSQL and
the operator version deploy/README.md installs."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.deploy.files import (
    K8S_ENV_FILE,
    POSTGRES_CLUSTER,
    compose,
    env_file,
    k8s_containers,
    k8s_raw_documents,
    load_yaml_documents,
    one_shot,
    readme_commands,
)

# The fields of a Cluster's spec in CloudNativePG CLUSTER_FIELDS_OF (spec.properties of its
# CRD, config/crd/bases/postgresql.cnpg.io_clusters.yaml): the API server refuses any other.
# Installing another minor release of the operator means reading its CRD again.
CLUSTER_FIELDS_OF = "1.30"
CLUSTER_SPEC_FIELDS = {
    *("affinity", "backup", "bootstrap", "certificates", "description", "enablePDB"),
    *("enableSuperuserAccess", "env", "envFrom", "ephemeralVolumeSource"),
    *("ephemeralVolumesSizeLimit", "externalClusters", "failoverDelay", "imageCatalogRef"),
    *("imageName", "imagePullPolicy", "imagePullSecrets", "inheritedMetadata", "instances"),
    *("livenessProbeTimeout", "logLevel", "managed", "maxSyncReplicas", "minSyncReplicas"),
    *("monitoring", "nodeMaintenanceWindow", "plugins", "podSecurityContext", "podSelectorRefs"),
    *("postgresGID", "postgresUID", "postgresql", "primaryLease", "primaryUpdateMethod"),
    *("primaryUpdateStrategy", "priorityClassName", "probes", "projectedVolumeTemplate"),
    *("replica", "replicationSlots", "resources", "schedulerName", "seccompProfile"),
    *("securityContext", "serviceAccountName", "serviceAccountTemplate", "smartShutdownTimeout"),
    *("startDelay", "stopDelay", "storage", "superuserSecret", "switchoverDelay", "tablespaces"),
    *("topologySpreadConstraints", "walStorage"),
}
# Connections a pool never gets: superuser_reserved_connections (3) and room for the
# operator's own sessions and for a person with psql.
RESERVED_CONNECTIONS = 10
OPERATOR_MANIFEST = re.compile(
    r"https://raw\.githubusercontent\.com/cloudnative-pg/cloudnative-pg/"
    r"release-(?P<branch>\d+\.\d+)/releases/cnpg-(?P<version>(?P<minor>\d+\.\d+)\.\d+)\.yaml"
)


def _cluster() -> dict[str, Any]:
    (cluster,) = load_yaml_documents(POSTGRES_CLUSTER)
    return cluster


def _problems(cluster: dict[str, Any]) -> list[str]:
    """What is wrong with the Cluster for dispatcher: empty when it is right."""
    spec = cluster["spec"]
    problems = [f"spec.{field}: not a Cluster field" for field in set(spec) - CLUSTER_SPEC_FIELDS]
    if (cluster["apiVersion"], cluster["kind"]) != ("postgresql.cnpg.io/v1", "Cluster"):
        problems.append("not a CloudNativePG v1 Cluster")
    if spec.get("instances") != 3:
        problems.append("spec.instances: a primary and 2 replicas, 3")
    if not re.fullmatch(r"[1-9]\d*[GT]i", spec.get("storage", {}).get("size", "")):
        problems.append("spec.storage.size: a size in Gi or Ti")
    initdb = spec.get("bootstrap", {}).get("initdb", {})
    if (initdb.get("database"), initdb.get("owner")) != ("dispatcher", "dispatcher"):
        problems.append("spec.bootstrap.initdb: database and owner dispatcher")
    if spec.get("enableSuperuserAccess") is not False:
        problems.append("spec.enableSuperuserAccess: false (dispatcher owns its database)")
    if "backup" in spec:  # in-tree Barman Cloud: deprecated, removed in CloudNativePG 1.31
        problems.append("spec.backup: use the Barman Cloud Plugin (spec.plugins)")
    return problems


def test_the_cluster_has_what_dispatcher_needs() -> None:
    assert _problems(_cluster()) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (["spec", "instance"], 3, "spec.instance: not a Cluster field"),
        (["spec", "instances"], 1, "spec.instances: a primary and 2 replicas, 3"),
        (["spec", "storage", "size"], "20G", "spec.storage.size: a size in Gi or Ti"),
        (["spec", "bootstrap", "initdb", "owner"], "app", "spec.bootstrap.initdb: database"),
        (["spec", "backup"], {}, "spec.backup: use the Barman Cloud Plugin"),
        (["apiVersion"], "postgresql.cnpg.io/v2", "not a CloudNativePG v1 Cluster"),
    ],
    ids=["misspelt", "one-instance", "size-in-G", "owner", "in-tree-backup", "api-version"],
)
def test_the_cluster_check_catches(path: list[str], value: Any, problem: str) -> None:
    broken = copy.deepcopy(_cluster())
    *parents, field = path
    place = broken
    for parent in parents:
        place = place[parent]
    place[field] = value
    (found,) = _problems(broken)
    assert found.startswith(problem)


def test_the_pods_take_database_url_from_the_secret_the_operator_makes() -> None:
    """CloudNativePG names the application's Secret after the Cluster (`<name>-app`); its key
    `uri` is a complete URL to the read-write Service, the password URL-encoded."""
    secret = {"name": f"{_cluster()['metadata']['name']}-app", "key": "uri"}
    takers = _database_users()
    assert set(takers) == {"dispatcher-ingress", "dispatcher-worker", "dispatcher-migrate"}
    for name, container in takers.items():
        (url,) = [e["valueFrom"] for e in container["env"] if e["name"] == "DATABASE_URL"]
        assert url == {"secretKeyRef": secret}, name


def _database_users() -> dict[str, dict[str, Any]]:
    """The containers given DATABASE_URL, by workload."""
    return {
        name: container
        for name, container in k8s_containers(k8s_raw_documents())
        if "DATABASE_URL" in {e["name"] for e in container.get("env", [])}
    }


def _processes_per_pod(args: list[str]) -> int:
    return int(args[args.index("--workers") + 1]) if "--workers" in args else 1


def test_max_connections_covers_every_pool_at_the_hpas_maxima() -> None:
    pool = int(env_file(K8S_ENV_FILE)["DISPATCHER_PG_POOL_MAX"])
    hpas = {d["metadata"]["name"]: d for d in k8s_raw_documents() if d["kind"].startswith("Horiz")}
    processes = 0
    for name, container in _database_users().items():
        pods = 1 if one_shot(name) else hpas[name]["spec"]["maxReplicas"]
        processes += pods * _processes_per_pod(container["args"])
    parameters = _cluster()["spec"]["postgresql"]["parameters"]
    assert int(parameters["max_connections"]) - RESERVED_CONNECTIONS >= processes * pool


def test_the_same_postgresql_release_runs_in_compose_and_in_the_cluster() -> None:
    compose_image = compose()["services"]["postgres"]["image"]
    in_compose = re.fullmatch(r"postgres:(\d+\.\d+)-(\w+)", compose_image)
    cluster_image = _cluster()["spec"]["imageName"]
    in_cluster = re.fullmatch(
        r"ghcr\.io/cloudnative-pg/postgresql:(\d+\.\d+)-\w+-(\w+)", cluster_image
    )
    assert in_compose and in_cluster
    assert in_compose.groups() == in_cluster.groups()  # release and Debian suite


def test_the_operator_is_installed_at_a_pinned_version_the_cluster_names() -> None:
    manifests = [
        match
        for words in readme_commands()
        if words[:3] == ["kubectl", "apply", "--server-side"]
        for match in map(OPERATOR_MANIFEST.fullmatch, words)
        if match
    ]
    (manifest,) = manifests
    assert manifest["branch"] == manifest["minor"] == CLUSTER_FIELDS_OF
    assert f"CloudNativePG operator {manifest['version']}" in POSTGRES_CLUSTER.read_text()
