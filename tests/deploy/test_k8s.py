"""The Kubernetes manifests (deploy/k8s): every overlay renders with `kubectl kustomize` (Kustomize v5), every
object is valid for the Kubernetes version below (offline schemas of `kubernetes-validate`, strict: no unknown
field), and the wiring agrees with compose.yaml and the settings classes: ports, probe paths, addresses,
variable names, model names, stop grace periods.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from docengine.settings import EngineSettings
from gateway.settings import Settings as GatewaySettings
from jobs.settings import JobSettings
from tests.deploy.test_env_example import listed

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"   # the oldest release the manifests are checked against (and documented)
OVERLAYS = ["gpu", "cpu"]
COMPONENT = "in-flight-autoscaling"
GATEWAY, TRITON, VLM, REDIS = ("paddleocr-vl-api", "paddleocr-vl-tritonserver", "paddleocr-vlm-server",
                               "paddleocr-vl-redis")
INTERNAL = {"HF_HOME"}   # fixed for the weights Job, not a user setting


def kubectl() -> str:
    binary = shutil.which("kubectl")
    assert binary, "kubectl is needed (Kustomize v5 inside): .ci/debian-packages lists it"
    version = subprocess.run([binary, "version", "--client"], capture_output=True, text=True).stdout
    assert re.search(r"Kustomize Version: v[5-9]\.", version), f"Kustomize v5 is needed:\n{version}"
    return binary


def render_dir(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr   # no deprecated field, no warning
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def render(overlay: str, component: bool = False) -> tuple[dict[str, Any], ...]:
    if not component:
        return tuple(render_dir(K8S / "overlays" / overlay))
    with_component = Path(os.environ.get("TMPDIR", "/tmp")) / f"k8s-{overlay}-{os.getpid()}"
    with_component.mkdir(exist_ok=True)
    up = os.path.relpath(K8S, with_component)
    (with_component / "kustomization.yaml").write_text(
        f"resources: [{up}/overlays/{overlay}]\ncomponents: [{up}/components/{COMPONENT}]\n")
    try:
        return tuple(render_dir(with_component))
    finally:
        shutil.rmtree(with_component)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def container(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    containers = find(docs, kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def settings(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    return dict(find(docs, "ConfigMap", "paddleocr-vl-settings")["data"])


def env_of(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, str]:
    """What the container sees: the settings ConfigMap, then its own `env` (which wins)."""
    own = {e["name"]: e["value"] for e in container(docs, kind, name).get("env", [])}
    return settings(docs) | own


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text())["services"])


def compose_probe(service: str) -> tuple[int, str]:
    """(port, path) of a compose service's health check URL."""
    url = urlsplit(compose()[service]["healthcheck"]["test"][-1])
    assert url.port is not None
    return url.port, url.path


def probe(spec: dict[str, Any], kind: str) -> tuple[int, str]:
    """(container port, path) of one of a container's HTTP probes."""
    get = spec[kind]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    return ports.get(get["port"], get["port"]), get["path"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", [False, True], ids=["plain", COMPONENT])
def test_every_object_is_valid_for_the_pinned_kubernetes(overlay: str, component: bool) -> None:
    docs = render(overlay, component)
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "ConfigMap", "PersistentVolumeClaim"} <= {d["kind"] for d in docs}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validation_can_fail() -> None:
    service = dict(find(render("cpu"), "Service", GATEWAY))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service | {"spec": {"ports": [{"port": "eighty"}]}}, KUBERNETES_VERSION,
                                     strict=True)


def test_the_base_renders_on_its_own_and_everything_lives_in_one_namespace() -> None:
    docs = render_dir(K8S / "base")
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"paddleocr-vl"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_wired_to_the_endpoints_compose_checks(overlay: str) -> None:
    docs = render(overlay)
    suffix = "" if overlay == "gpu" else "-cpu"
    gateway = container(docs, "Deployment", GATEWAY)
    health_port, health = compose_probe(GATEWAY + suffix)
    assert probe(gateway, "livenessProbe") == probe(gateway, "startupProbe") == (health_port, health)
    assert probe(gateway, "readinessProbe") == (health_port, "/health/ready")
    triton = container(docs, "StatefulSet", TRITON)
    assert probe(triton, "readinessProbe") == probe(triton, "startupProbe") == compose_probe(TRITON + suffix)
    assert probe(triton, "livenessProbe") == (compose_probe(TRITON + suffix)[0], "/v2/health/live")
    vlm = container(docs, "StatefulSet", VLM)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe(vlm, kind) == compose_probe(VLM + suffix), kind
    # A readiness answer takes up to HPS_HEALTH_CHECK_TIMEOUT: the probe waits longer than that.
    timeout = GatewaySettings(health_check_timeout=settings(docs)["HPS_HEALTH_CHECK_TIMEOUT"])
    assert gateway["readinessProbe"]["timeoutSeconds"] > timeout.health_check_timeout


def pod_names(docs: tuple[dict[str, Any], ...], name: str, port_name: str) -> list[str]:
    """host:port of each pod of a StatefulSet, through its headless Service."""
    stateful = find(docs, "StatefulSet", name)
    service = find(docs, "Service", stateful["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == port_name)
    return [f"{name}-{i}.{service['metadata']['name']}:{port}" for i in range(stateful["spec"]["replicas"])]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_addresses_name_every_pod_on_the_ports_compose_uses(overlay: str) -> None:
    docs = render(overlay)
    suffix = "" if overlay == "gpu" else "-cpu"
    gateway_env = env_of(docs, "Deployment", GATEWAY)
    parsed = GatewaySettings(triton_url=gateway_env["HPS_TRITON_URL"], vlm_urls=gateway_env["HPS_VLM_URL"])
    assert list(parsed.triton_urls) == pod_names(docs, TRITON, "grpc")
    compose_triton = compose()[GATEWAY + suffix]["environment"]["HPS_TRITON_URL"]
    assert {u.rpartition(":")[2] for u in parsed.triton_urls} == {compose_triton.rpartition(":")[2]}
    engine = EngineSettings(vlm_url=env_of(docs, "StatefulSet", TRITON)["HPS_VLM_URL"])
    expected = [f"http://{host}" for host in pod_names(docs, VLM, "http")]
    assert list(engine.vlm_urls) == list(parsed.vlm_urls) == expected
    assert {urlsplit(u).port for u in expected} == {compose_probe(VLM + suffix)[0]}
    assert container(docs, "StatefulSet", VLM)["ports"][0]["containerPort"] == compose_probe(VLM + suffix)[0]
    gateway = container(docs, "Deployment", GATEWAY)
    assert gateway_env["HPS_GATEWAY_PORT"] == compose()[GATEWAY + suffix]["environment"]["HPS_GATEWAY_PORT"]
    assert gateway["ports"][0]["containerPort"] == int(gateway_env["HPS_GATEWAY_PORT"])
    redis = find(docs, "Service", REDIS)
    for name in ("HPS_JOB_STORE", "HPS_RATE_LIMIT_STORAGE"):
        url = urlsplit(gateway_env[name])
        assert (url.scheme, url.hostname, url.port) == ("redis", REDIS, redis["spec"]["ports"][0]["port"])
    assert gateway_env["HPS_JOB_STORE"] != gateway_env["HPS_RATE_LIMIT_STORAGE"]   # one database each


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_set_is_one_the_project_reads(overlay: str) -> None:
    docs = render(overlay)
    known = listed() | INTERNAL
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            assert {e["name"] for e in c.get("env", [])} <= known, doc["metadata"]["name"]
    assert set(settings(docs)) <= known


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_names_and_cpu_defaults_agree_with_compose_and_the_settings(overlay: str) -> None:
    docs = render(overlay)
    values = settings(docs)
    release = JobSettings(_env_file=None).pipeline_name   # type: ignore[call-arg]
    assert values["HPS_PIPELINE_NAME"] == release
    for service in compose().values():
        pipeline = service.get("environment", {}).get("HPS_PIPELINE_NAME")
        if pipeline:
            assert pipeline == f"${{HPS_PIPELINE_NAME:-{release}}}"
    triton = compose()[TRITON + ("" if overlay == "gpu" else "-cpu")]["environment"]
    assert values["HPS_PROFILE"] == triton["HPS_PROFILE"]
    if overlay == "cpu":   # the CPU recogniser's limits, as compose sets them
        for name in ("HPS_VLM_MAX_CONCURRENCY", "HPS_LAYOUT_BATCH_SIZE"):
            assert f"${{{name}:-{values[name]}}}" == triton[name], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_given_longer_to_stop_than_they_take_to_drain(overlay: str) -> None:
    docs = render(overlay)
    drain = GatewaySettings(drain_timeout=settings(docs)["HPS_DRAIN_TIMEOUT"]).drain_timeout
    gateway = find(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    pause = int(gateway["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert gateway["terminationGracePeriodSeconds"] > pause + drain
    for service in (TRITON, VLM):
        pod = find(docs, "StatefulSet", service)["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= int(compose()[TRITON]["stop_grace_period"][:-1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keys_come_from_the_secret_the_gateway_mounts(overlay: str) -> None:
    docs = render(overlay)
    pod = find(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    path = Path(env_of(docs, "Deployment", GATEWAY)["HPS_API_KEYS_FILE"])
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == str(path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "paddleocr-vl-api-keys" and mount["readOnly"]
    assert not any(d["kind"] == "Secret" for d in docs)   # never a key in the repository


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_resources_and_disruption_budgets(overlay: str) -> None:
    docs = render(overlay)
    for kind, name in (("Deployment", GATEWAY), ("StatefulSet", TRITON), ("StatefulSet", VLM),
                       ("StatefulSet", REDIS)):
        resources = container(docs, kind, name)["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
        assert resources["limits"]["memory"], name
        gpus = resources["limits"].get("nvidia.com/gpu")
        assert gpus == (1 if overlay == "gpu" and name in (TRITON, VLM) else None), name
    budgets = [d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert sorted(budgets) == sorted([GATEWAY, TRITON, VLM])
    images = {c["image"].partition(":")[0] for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")
              for c in d["spec"]["template"]["spec"]["containers"]}
    compose_images = {s["image"].partition(":")[0] for s in compose().values()}
    assert images - {"redis"} <= compose_images and images - {"redis"}
    assert (find(docs, "Job", "paddleocr-vl-models") is not None) if overlay == "gpu" else \
        not any(d["kind"] == "Job" for d in docs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_open_to_the_outside(overlay: str) -> None:
    docs = render(overlay)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and deny[0]["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny[0]["spec"]
    for policy in policies:
        target = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for rule in policy["spec"].get("ingress", []):
            if target == GATEWAY:
                continue
            assert rule.get("from"), policy["metadata"]["name"]   # never open to any source
            for source in rule["from"]:
                names = source.get("podSelector", {}).get("matchLabels", {})
                assert names or source.get("namespaceSelector"), policy["metadata"]["name"]
    gateway = next(p for p in policies if p["metadata"]["name"] == GATEWAY)
    assert gateway["spec"]["ingress"] == [{"ports": [{"port": 8080}]}]
    assert find(docs, "Service", GATEWAY)["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_the_autoscaling_component_adds_requests_in_flight_to_cpu() -> None:
    hpa = find(render("gpu", True), "HorizontalPodAutoscaler", GATEWAY)
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "gateway_requests_in_flight"
    rules = yaml.safe_load((K8S / "components" / COMPONENT / "adapter-rules.yaml").read_text())
    assert rules["rules"]["custom"][0]["name"]["as"] == "gateway_requests_in_flight"
    gauge = (ROOT / "gateway" / "metrics.py").read_text()
    assert 'Gauge("gateway_requests_in_flight"' in gauge
