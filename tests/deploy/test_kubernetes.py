"""deploy/k8s: every manifest valid against the Kubernetes JSON schemas of K8S_VERSION (strict:
no unknown field), rendered by kustomize as `kubectl apply -k` would, and wired together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

import dispatcher.metrics
from dispatcher.directory import loader
from tests.deploy.files import (
    ADAPTER_VALUES,
    DEPLOY,
    K8S_BASE,
    K8S_ENV_FILE,
    K8S_OVERLAYS,
    K8S_VERSION,
    REDIS_VALUES,
    env_file,
    k8s_containers,
    k8s_raw_documents,
    kubectl,
    kustomize,
    load_yaml,
    pod_specs,
    readme_commands,
)

needs_kubectl = pytest.mark.skipif(
    kubectl() is None,
    reason="NOT VALIDATED: kubectl (its built-in kustomize) is not on PATH, so the rendered "
    "manifests (generators, patches, name hashes) are not checked; the files are, one by one",
)


# Custom resources kubernetes-validate has no schema for, by (apiVersion, kind): the schema
# check skips exactly these, and tests/deploy/test_cloudnativepg.py checks their fields.
WITHOUT_SCHEMA = {("postgresql.cnpg.io/v1", "Cluster")}


def _name(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _valid(doc: dict[str, Any]) -> bool:
    """Validates doc against its schema; False for a resource of WITHOUT_SCHEMA, which has
    none here. Any other resource without a schema fails."""
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{_name(doc)}: {exc.message} at {'.'.join(map(str, exc.path))}")
    except kubernetes_validate.SchemaNotFoundError:
        if (doc["apiVersion"], doc["kind"]) not in WITHOUT_SCHEMA:
            pytest.fail(f"{_name(doc)}: no schema for {doc['apiVersion']} {doc['kind']}")
        return False
    return True


@pytest.mark.parametrize("doc", k8s_raw_documents(), ids=_name)
def test_each_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    if not _valid(doc):
        pytest.skip(
            f"NOT VALIDATED against a schema: kubernetes-validate has none for "
            f"{doc['apiVersion']} {doc['kind']}; test_cloudnativepg.py checks its fields"
        )


def test_only_the_listed_custom_resources_go_without_a_schema() -> None:
    written = {(doc["apiVersion"], doc["kind"]) for doc in k8s_raw_documents()}
    assert WITHOUT_SCHEMA <= written  # no entry for a resource the files no longer hold
    for api_version, kind in WITHOUT_SCHEMA:  # once kubernetes-validate has one, use it
        bare = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(bare, K8S_VERSION, strict=True)
    unlisted = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    with pytest.raises(pytest.fail.Exception, match="no schema for example.com/v1 Widget"):
        _valid(unlisted)


def test_the_schema_check_catches_a_wrong_field() -> None:
    deployment = next(d for d in k8s_raw_documents() if d["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("directory", [K8S_BASE, *K8S_OVERLAYS], ids=lambda p: p.name)
def test_kustomize_renders_valid_manifests(directory: Path) -> None:
    rendered = kustomize(directory)
    for doc in rendered:
        assert _valid(doc), _name(doc)
    kinds = sorted(_name(doc).split("-")[0] for doc in rendered)
    assert kinds == sorted(
        ["ConfigMap/dispatcher"] * 2
        + ["Deployment/dispatcher"] * 2
        + ["HorizontalPodAutoscaler/dispatcher"] * 2
        + ["PodDisruptionBudget/dispatcher"] * 2
        + ["Job/dispatcher"] * 2
        + ["Service/dispatcher"]
    )


@needs_kubectl
def test_generated_config_maps_are_referenced_by_their_hashed_names() -> None:
    rendered = kustomize(K8S_BASE)
    config_maps = {d["metadata"]["name"] for d in rendered if d["kind"] == "ConfigMap"}
    referenced = {
        ref["configMapRef"]["name"]
        for _, container in k8s_containers(list(rendered))
        for ref in container["envFrom"]
    }
    referenced |= {
        volume["configMap"]["name"]
        for _, spec in pod_specs(list(rendered))
        for volume in spec.get("volumes", [])
    }
    assert referenced == config_maps
    assert {name.rsplit("-", 1)[0] for name in config_maps} == {
        "dispatcher-env",
        "dispatcher-directory",
    }


@needs_kubectl
def test_the_queue_overlay_adds_the_external_metric_to_the_workers_hpa() -> None:
    (overlay,) = [path for path in K8S_OVERLAYS if path.name == "queue-autoscaling"]
    hpas = {d["metadata"]["name"]: d for d in kustomize(overlay) if d["kind"].startswith("Horiz")}
    metrics = hpas["dispatcher-worker"]["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "External"]
    assert metrics[1]["external"]["metric"]["name"] == "dispatcher_arq_queue_due_jobs"
    adapter = load_yaml(ADAPTER_VALUES)["rules"]["external"]
    assert [rule["name"]["as"] for rule in adapter] == ["dispatcher_arq_queue_due_jobs"]
    assert hpas["dispatcher-ingress"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_the_autoscaling_metric_is_one_dispatcher_exports() -> None:
    exported = (Path(dispatcher.metrics.__file__)).read_text()
    (rule,) = load_yaml(ADAPTER_VALUES)["rules"]["external"]
    assert f'"{rule["name"]["as"]}"' in exported
    assert rule["seriesQuery"].startswith(rule["name"]["as"] + "{")


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_raw_documents() if d["kind"] == kind}


def test_every_deployment_has_an_hpa_and_a_pdb_that_select_it() -> None:
    deployments, hpas, pdbs = map(
        _by_kind, ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    )
    assert set(deployments) == {"dispatcher-ingress", "dispatcher-worker"}
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        assert hpas[name]["apiVersion"] == "autoscaling/v2"
        assert hpas[name]["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpas[name]["spec"]["minReplicas"] == deployment["spec"]["replicas"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == labels
        assert pdbs[name]["spec"]["maxUnavailable"] == 1


def test_the_service_sends_to_the_ingress_pods_on_their_http_port() -> None:
    (service,) = _by_kind("Service").values()
    ingress = _by_kind("Deployment")["dispatcher-ingress"]["spec"]["template"]
    assert service["spec"]["selector"] == ingress["metadata"]["labels"]
    ports = {p["name"] for c in ingress["spec"]["containers"] for p in c["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert "http" in ports


def _probe(container: dict[str, Any], kind: str) -> tuple[str, str]:
    probe = container[kind]["httpGet"]
    return probe["path"], probe["port"]


def test_probes() -> None:
    containers = dict(k8s_containers(k8s_raw_documents()))
    ingress, worker = containers["dispatcher-ingress"], containers["dispatcher-worker"]
    assert _probe(ingress, "readinessProbe") == ("/readyz?exclude=workers", "http")
    assert _probe(ingress, "livenessProbe") == ("/healthz", "http")
    assert _probe(worker, "readinessProbe") == ("/readyz", "metrics")
    assert _probe(worker, "livenessProbe") == ("/healthz", "metrics")
    metrics_port = worker["args"][worker["args"].index("--metrics-port") + 1]
    assert worker["ports"] == [{"name": "metrics", "containerPort": int(metrics_port)}]


def test_every_container_is_locked_down_and_sized() -> None:
    for name, spec in pod_specs(k8s_raw_documents()):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name


def test_passwords_come_from_secrets_not_from_the_config_map() -> None:
    secret_names = ("PASSWORD", "TOKEN", "DATABASE_URL")  # a database URL holds a password
    assert not [key for key in env_file(K8S_ENV_FILE) if any(n in key for n in secret_names)]
    for _, container in k8s_containers(k8s_raw_documents()):
        secret_vars = {e["name"] for e in container["env"] if "secretKeyRef" in e["valueFrom"]}
        assert {"DISPATCHER_REDIS_PASSWORD", "DISPATCHER_REDIS_SENTINEL_PASSWORD"} <= secret_vars
    secrets = {d["metadata"]["name"]: d for d in k8s_raw_documents() if d["kind"] == "Secret"}
    assert all(
        "replace-me" in value for s in secrets.values() for value in s["stringData"].values()
    )


def test_the_directory_config_map_is_the_demo_directory_and_valid() -> None:
    copy = K8S_BASE / "directory.yaml"
    assert copy.read_text() == (DEPLOY / "demo.yaml").read_text()
    loader.read_file(copy)  # raises on an invalid directory


def test_the_migrate_job_migrates_with_both_stores_at_hand() -> None:
    job = _by_kind("Job")["dispatcher-migrate"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["migrate"]
    assert spec["restartPolicy"] == "OnFailure" and job["spec"]["backoffLimit"] > 0
    environment = {e["name"] for e in container["env"]}
    assert {"DISPATCHER_REDIS_PASSWORD", "DATABASE_URL"} <= environment
    assert container["envFrom"] == [{"configMapRef": {"name": "dispatcher-env"}}]


def test_the_load_config_job_loads_the_mounted_directory() -> None:
    job = _by_kind("Job")["dispatcher-load-config"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    command, path = container["args"]
    (mount,) = container["volumeMounts"]
    assert command == "load-config"
    assert Path(path).parent == Path(mount["mountPath"])
    (volume,) = spec["volumes"]
    assert volume["name"] == mount["name"]
    generator = load_yaml(K8S_BASE / "kustomization.yaml")["configMapGenerator"]
    files = {g["name"]: g.get("files", []) for g in generator}
    assert files[volume["configMap"]["name"]] == [Path(path).name]


def test_redis_chart_values_match_what_dispatcher_asks_for() -> None:
    values = load_yaml(REDIS_VALUES)
    env = env_file(K8S_ENV_FILE)
    assert values["redis"]["masterGroupName"] == env["DISPATCHER_REDIS_SENTINEL_MASTER"]
    sentinels = [address.split(":") for address in env["DISPATCHER_REDIS_SENTINELS"].split(",")]
    release = _helm_install("dandydev/redis-ha")["release"]
    assert sentinels == [
        [f"{release}-announce-{index}", str(values["sentinel"].get("port", 26379))]
        for index in range(values["replicas"])
    ]
    assert values["redis"]["config"]["appendonly"] == "yes"
    assert values["redis"]["config"]["maxmemory-policy"] == "noeviction"
    assert (values["auth"], values["sentinel"]["auth"]) == (True, True)
    assert values["existingSecret"] == values["sentinel"]["existingSecret"] == "redis-auth"
    for _, container in k8s_containers(k8s_raw_documents()):
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"]]
        assert {"name": "redis-auth", "key": values["authKey"]} in refs


def _helm_install(chart: str) -> dict[str, str]:
    """The `helm install` of `chart` in deploy/README.md: release, version, values file."""
    for words in readme_commands():
        if words[:2] == ["helm", "install"] and chart in words:
            return {
                "release": words[2],
                "version": words[words.index("--version") + 1],
                "values": words[words.index("-f") + 1],
            }
    raise AssertionError(f"no `helm install ... {chart}` line in deploy/README.md")


@pytest.mark.parametrize(
    ("chart", "values"),
    [
        ("dandydev/redis-ha", REDIS_VALUES),
        ("prometheus-community/prometheus-adapter", ADAPTER_VALUES),
    ],
)
def test_charts_are_installed_with_a_pinned_version_and_our_values(
    chart: str, values: Path
) -> None:
    install = _helm_install(chart)
    assert install["version"].count(".") == 2 and install["version"][0].isdigit()
    assert (DEPLOY.parent / install["values"]) == values
    assert f"--version {install['version']}" in values.read_text()  # the file's header agrees
