"""Offline checks of the deployment files (no Docker daemon, no cluster needed).

* k8s/: each kustomize target is rendered with `kubectl kustomize` (skipped when
  kubectl is missing) and every object is validated against the Kubernetes
  OpenAPI schemas bundled with kubernetes-validate (strict: unknown fields fail),
  then checked for the hardening, probes, autoscaling and network rules we rely on.
* compose.yaml, ui/Dockerfile, bentofile.yaml: parsed and checked for the
  contract the rest of the project expects (ports, URLs, non-root, contents).

Nothing here builds a bento or an image.
"""
from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "prod")
# Oldest Kubernetes minor we support; kubernetes-validate bundles its schemas.
K8S_VERSION = "1.30"

API = "skinscan-api"
UI = "skinscan-ui"
NAMESPACE = "skinscan"
API_PORT = 3000
UI_PORT = 8501
INGRESS_NAMESPACE = "ingress-nginx"

MODEL_PATH = "models/skinscan-effnet-lite0"

# bentoml 1.4 builds its path matcher with pathspec's deprecated 'gitwildmatch'
pytestmark = pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _kustomize_cmd(target: Path) -> list[str]:
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize", str(target)]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build", str(target)]
    why = ("kubectl (or kustomize) not found on PATH: cannot render k8s/ overlays; "
           "install kubectl >= 1.27 (it has kustomize built in) to run these checks")
    if os.environ.get("CI"):  # a CI run must check the manifests, not skip them
        pytest.fail(why)
    pytest.skip(why)


@functools.lru_cache(maxsize=None)
def _render_cached(target: str) -> tuple:
    cmd = _kustomize_cmd(K8S / target)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{shlex.join(cmd)} failed:\n{proc.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert docs, f"{target} rendered no objects"
    return docs


def render(target: str) -> tuple:
    return _render_cached(target)


def objs(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def obj(docs, kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels + matchExpressions)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(deploy: dict) -> dict:
    return deploy["spec"]["template"]["metadata"]["labels"]


def all_containers(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("initContainers") or []) + list(pod_spec["containers"])


def container_port(container: dict, port) -> int:
    """Resolve a probe/service port (number or name) against the container's ports."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"port {port!r} is not declared by container {container['name']}")


def workloads(docs) -> list[dict]:
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
    return [d for d in docs if d["kind"] in kinds]


# --------------------------------------------------------------------------
# (a) render + schema validation
# --------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_kustomize_renders_and_objects_match_k8s_schema(target):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render(target)
    errors = []
    for d in docs:
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{name}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    assert not errors, f"{target} does not validate against Kubernetes {K8S_VERSION}:\n" + "\n".join(errors)


def test_schema_validation_is_strict():
    """Guard: a misspelt field must fail validation (so the test above means something)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80}], "selectr": {"a": "b"}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------
# (b) policy checks on the rendered overlays
# --------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_expected_objects_in_namespace(overlay):
    docs = render(f"overlays/{overlay}")
    ns = obj(docs, "Namespace", NAMESPACE)
    assert ns["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted"
    for kind, name in [("Deployment", API), ("Service", API), ("Deployment", UI), ("Service", UI),
                       ("HorizontalPodAutoscaler", API), ("PodDisruptionBudget", API)]:
        obj(docs, kind, name)
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == NAMESPACE, f"{d['kind']}/{d['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_hardened_and_sized(overlay):
    docs = render(f"overlays/{overlay}")
    ws = workloads(docs)
    assert {w["metadata"]["name"] for w in ws} >= {API, UI}
    for w in ws:
        pod = w["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        assert psc.get("runAsNonRoot") is True, w["metadata"]["name"]
        assert psc.get("runAsUser", 1) != 0
        assert (psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault"
        assert pod.get("automountServiceAccountToken") is False
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        tmp_volumes = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        for c in all_containers(pod):
            where = f"{overlay}: {w['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext") or {}
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert "ALL" in ((sc.get("capabilities") or {}).get("drop") or []), where
            assert not (sc.get("capabilities") or {}).get("add"), where
            res = c.get("resources") or {}
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert (res.get(section) or {}).get(resource), f"{where}: no {section}.{resource}"
            # a read-only root fs needs a writable /tmp
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
            assert mounts.get("/tmp") in tmp_volumes, f"{where}: no emptyDir at /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_probes_and_port(overlay):
    docs = render(f"overlays/{overlay}")
    (c,) = obj(docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
    assert c["image"].split(":")[0].endswith(API)
    assert API_PORT in [p["containerPort"] for p in c["ports"]]
    probes = {k: c.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert all(probes.values()), f"missing probe(s): {[k for k, v in probes.items() if not v]}"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert probes["startupProbe"]["httpGet"]["path"] in ("/readyz", "/livez")
    for p in probes.values():
        assert container_port(c, p["httpGet"]["port"]) == API_PORT
    # the startup probe must allow for the model load (~10-20 s) with margin
    sp = probes["startupProbe"]
    assert sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) >= 60
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    assert env.get("BENTOML_HOME", "").startswith("/tmp"), "BentoML needs a writable home"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ui_probes_port_and_api_url(overlay):
    docs = render(f"overlays/{overlay}")
    (c,) = obj(docs, "Deployment", UI)["spec"]["template"]["spec"]["containers"]
    assert c["image"].split(":")[0].endswith(UI)
    assert UI_PORT in [p["containerPort"] for p in c["ports"]]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/_stcore/health"
        assert container_port(c, c[probe]["httpGet"]["port"]) == UI_PORT
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    assert env.get("SKINSCAN_API_URL") == f"http://{API}:{API_PORT}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_their_pods(overlay):
    docs = render(f"overlays/{overlay}")
    for name, port in [(API, API_PORT), (UI, UI_PORT)]:
        svc = obj(docs, "Service", name)
        deploy = obj(docs, "Deployment", name)
        assert selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(deploy))
        (c,) = deploy["spec"]["template"]["spec"]["containers"]
        (sp,) = svc["spec"]["ports"]
        assert sp["port"] == port
        assert container_port(c, sp.get("targetPort", sp["port"])) == port
        # the Deployment's own selector must match its template (immutable later)
        assert selector_matches(deploy["spec"]["selector"], pod_labels(deploy))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_scales_api_on_cpu(overlay):
    docs = render(f"overlays/{overlay}")
    hpas = [h for h in objs(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": API}]
    assert len(hpas) == 1, "exactly one HPA must target the API Deployment"
    hpa = hpas[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    cpu = [m for m in hpa["spec"]["metrics"]
           if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"
    assert 0 < cpu[0]["resource"]["target"]["averageUtilization"] <= 100
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # CPU utilization is relative to the request: the API must request CPU
    (c,) = obj(docs, "Deployment", API)["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdb_covers_api(overlay):
    docs = render(f"overlays/{overlay}")
    api_labels = pod_labels(obj(docs, "Deployment", API))
    pdbs = [p for p in objs(docs, "PodDisruptionBudget") if selector_matches(p["spec"]["selector"], api_labels)]
    assert len(pdbs) == 1
    spec = pdbs[0]["spec"]
    assert ("minAvailable" in spec) != ("maxUnavailable" in spec)
    replicas = obj(docs, "Deployment", API)["spec"].get("replicas", 1)
    assert pdb_allows_a_drain(spec, replicas), f"{overlay}: the PDB {spec} blocks every voluntary eviction"
    assert pdb_keeps_one(spec, replicas), f"{overlay}: the PDB {spec} lets every API pod go at once"


def _pdb_count(value, replicas: int) -> int:
    """An int or a percentage of replicas (Kubernetes rounds percentages up)."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-int(value[:-1]) * replicas // 100)
    return int(value)


def pdb_allows_a_drain(spec: dict, replicas: int) -> bool:
    """At least one API pod may be evicted (otherwise no node could ever be drained)."""
    if "maxUnavailable" in spec:
        return _pdb_count(spec["maxUnavailable"], replicas) >= 1
    return replicas - _pdb_count(spec["minAvailable"], replicas) >= 1


def pdb_keeps_one(spec: dict, replicas: int) -> bool:
    """With more than one replica, an eviction never takes every API pod down."""
    if replicas <= 1:
        return True
    if "maxUnavailable" in spec:
        return _pdb_count(spec["maxUnavailable"], replicas) < replicas
    return _pdb_count(spec["minAvailable"], replicas) >= 1


@pytest.mark.parametrize("spec,replicas,drain,keeps", [
    ({"maxUnavailable": 0}, 3, False, True), ({"maxUnavailable": "0%"}, 3, False, True),
    ({"minAvailable": 3}, 3, False, True), ({"minAvailable": "100%"}, 3, False, True),
    ({"maxUnavailable": 3}, 3, True, False), ({"minAvailable": 0}, 3, True, False),
    ({"maxUnavailable": 1}, 3, True, True), ({"minAvailable": 1}, 2, True, True),
])
def test_pdb_checks_catch_bad_budgets(spec, replicas, drain, keeps):
    """Guard: the PDB checks above fail on budgets that block drains or allow a full outage."""
    assert pdb_allows_a_drain(spec, replicas) is drain
    assert pdb_keeps_one(spec, replicas) is keeps


def open_peer(peer: dict) -> bool:
    """An ingress peer that admits too much: an IP block, every namespace, or every pod of the namespace."""
    if "ipBlock" in peer:
        return True
    if "namespaceSelector" in peer and not (peer["namespaceSelector"] or {}).get("matchLabels") \
            and not (peer["namespaceSelector"] or {}).get("matchExpressions"):
        return True  # {}: every namespace (with or without a podSelector: those pods in every namespace)
    if "podSelector" in peer and "namespaceSelector" not in peer and not (peer["podSelector"] or {}).get("matchLabels") \
            and not (peer["podSelector"] or {}).get("matchExpressions"):
        return True  # {}: every pod of the namespace
    return False


@pytest.mark.parametrize("peer,is_open", [
    ({"namespaceSelector": {}, "podSelector": {}}, True),
    ({"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "skinscan-ui"}}}, True),
    ({"namespaceSelector": {}}, True),
    ({"podSelector": {}}, True),
    ({"ipBlock": {"cidr": "0.0.0.0/0"}}, True),
    ({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "skinscan-ui"}}}, False),
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}}, False),
])
def test_open_peer_check(peer, is_open):
    """Guard: the NetworkPolicy check below fails on a peer open to every pod in every namespace."""
    assert open_peer(peer) is is_open


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(overlay):
    docs = render(f"overlays/{overlay}")
    api_labels = pod_labels(obj(docs, "Deployment", API))
    ui_labels = pod_labels(obj(docs, "Deployment", UI))
    policies = objs(docs, "NetworkPolicy")

    def peers_allowed(labels, port):
        """(pod selectors, namespace selectors) allowed to reach pods with `labels` on `port`."""
        pods, namespaces, selected = [], [], False
        for np in policies:
            if not selector_matches(np["spec"]["podSelector"], labels) and np["spec"]["podSelector"] != {}:
                continue
            if "Ingress" not in np["spec"].get("policyTypes", ["Ingress"]):
                continue
            selected = True
            for rule in np["spec"].get("ingress") or []:
                ports = [p.get("port") for p in rule.get("ports") or []]
                if ports and port not in ports:
                    continue
                assert rule.get("from"), f"{np['metadata']['name']}: ingress rule open to all sources"
                for peer in rule["from"]:
                    assert not open_peer(peer), f"{np['metadata']['name']}: peer {peer} is open to too much"
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        pods.append(peer["podSelector"])
                    elif "namespaceSelector" in peer and "podSelector" not in peer:
                        namespaces.append(peer["namespaceSelector"])
        assert selected, f"no NetworkPolicy selects pods {labels}"
        return pods, namespaces

    ingress_ns = {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}
    other_ns = {"kubernetes.io/metadata.name": "default"}

    # API: from UI pods and from the ingress controller namespace only
    pods, namespaces = peers_allowed(api_labels, API_PORT)
    assert any(selector_matches(s, ui_labels) for s in pods), "UI pods cannot reach the API"
    assert any(selector_matches(s, ingress_ns) for s in namespaces), "ingress controller cannot reach the API"
    assert not any(selector_matches(s, other_ns) for s in namespaces)
    assert not any(selector_matches(s, {"app.kubernetes.io/name": "something-else"}) for s in pods)

    # UI: from the ingress controller namespace
    _, namespaces = peers_allowed(ui_labels, UI_PORT)
    assert any(selector_matches(s, ingress_ns) for s in namespaces), "ingress controller cannot reach the UI"
    assert not any(selector_matches(s, other_ns) for s in namespaces)

    # and a default deny for everything else in the namespace
    assert any(np["spec"]["podSelector"] == {} and not np["spec"].get("ingress")
               and "Ingress" in np["spec"]["policyTypes"] for np in policies)


def test_prod_scales_beyond_dev():
    dev, prod = render("overlays/dev"), render("overlays/prod")

    def replicas(docs):
        return obj(docs, "Deployment", API)["spec"]["replicas"]

    def hpa(docs):
        return obj(docs, "HorizontalPodAutoscaler", API)["spec"]

    assert replicas(prod) > replicas(dev)
    assert replicas(dev) == 1
    assert hpa(prod)["minReplicas"] > hpa(dev)["minReplicas"]
    assert hpa(prod)["maxReplicas"] > hpa(dev)["maxReplicas"]
    # Deployment replicas stay inside the HPA's range (kubectl apply resets it)
    for docs in (dev, prod):
        assert hpa(docs)["minReplicas"] <= replicas(docs) <= hpa(docs)["maxReplicas"]


def test_image_tags_per_overlay():
    def images(docs):
        return {c["image"] for w in workloads(docs) for c in all_containers(w["spec"]["template"]["spec"])}

    dev, prod = images(render("overlays/dev")), images(render("overlays/prod"))
    assert dev == {f"{API}:dev", f"{UI}:dev"}
    for image in prod:
        name, _, tag = image.rpartition(":")
        digest = "@sha256:" in image
        assert digest or (name and tag and tag not in ("latest", "dev")), f"prod image not pinned: {image}"


def test_prod_ingress_routes_to_services():
    docs = render("overlays/prod")
    (ing,) = objs(docs, "Ingress")
    rules = ing["spec"]["rules"]
    assert [r["host"] for r in rules] == ["skinscan.example.org"]
    services = {s["metadata"]["name"]: s for s in objs(docs, "Service")}
    backends = {}
    for p in rules[0]["http"]["paths"]:
        svc = p["backend"]["service"]
        assert svc["name"] in services, f"Ingress points at missing Service {svc['name']}"
        port_names = {sp.get("name") for sp in services[svc["name"]]["spec"]["ports"]}
        port_numbers = {sp["port"] for sp in services[svc["name"]]["spec"]["ports"]}
        assert svc["port"].get("name") in port_names or svc["port"].get("number") in port_numbers
        backends[p["path"]] = svc["name"]
    assert backends.get("/") == UI
    assert backends.get("/predict") == API
    # internal endpoints stay internal
    assert not {"/metrics", "/readyz", "/livez"} & set(backends)
    # dev has no Ingress
    assert not objs(render("overlays/dev"), "Ingress")


# --------------------------------------------------------------------------
# (c) compose.yaml
# --------------------------------------------------------------------------
def _env_dict(env) -> dict:
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return dict(env or {})


def _published(ports) -> set[tuple[str, str]]:
    out = set()
    for p in ports or []:
        if isinstance(p, dict):
            out.add((str(p.get("published")), str(p["target"])))
        else:
            host, _, container = str(p).rpartition(":")
            out.add((host.rpartition(":")[2], container.split("/")[0]))
    return out


def _non_root_user(user) -> bool:
    return user is not None and str(user).split(":")[0] not in ("", "0", "root")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_api(compose):
    api = compose["services"]["api"]
    assert api["image"] == "skinscan-api:latest"
    assert ("3000", "3000") in _published(api["ports"])
    assert " ".join(map(str, api["healthcheck"]["test"])).find("/readyz") >= 0
    assert api.get("read_only") is True
    tmpfs = api.get("tmpfs")
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs or []
    assert any(t.split(":")[0] == "/tmp" for t in tmpfs)
    assert _non_root_user(api.get("user"))
    assert _env_dict(api.get("environment")).get("BENTOML_HOME", "").startswith("/tmp")


def test_compose_ui(compose):
    ui = compose["services"]["ui"]
    assert ui["build"]["dockerfile"] == "ui/Dockerfile"
    assert (REPO / ui["build"].get("context", ".") / ui["build"]["dockerfile"]).is_file()
    assert ("8501", "8501") in _published(ui["ports"])
    assert _env_dict(ui.get("environment"))["SKINSCAN_API_URL"] == "http://api:3000"
    assert ui["depends_on"]["api"]["condition"] == "service_healthy"
    assert ui.get("read_only") is True
    assert _non_root_user(ui.get("user"))


# --------------------------------------------------------------------------
# (d) ui/Dockerfile
# --------------------------------------------------------------------------
def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    lines, buf = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        instr, _, args = buf.partition(" ")
        lines.append((instr.upper(), args.strip()))
        buf = ""
    return lines


def test_ui_dockerfile():
    instrs = _dockerfile_instructions(REPO / "ui" / "Dockerfile")
    by = lambda name: [a for i, a in instrs if i == name]  # noqa: E731
    base = by("FROM")[0]
    if base == "${BASE_IMAGE}":  # overridable (deploy/images.py builds it FROM a local base); the default:
        base = next(a for i, a in instrs if i == "ARG" and a.startswith("BASE_IMAGE=")).split("=", 1)[1]
    assert base.startswith("python:3.11-slim")
    users = by("USER")
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), "use a numeric uid so runAsNonRoot can verify it"
    assert any("8501" in e.split() for e in by("EXPOSE"))
    assert any("/_stcore/health" in h for h in by("HEALTHCHECK"))
    (cmd,) = by("CMD")
    for token in ("streamlit", "run", "ui/app.py", "0.0.0.0", "--server.headless"):
        assert token in cmd
    assert any("--no-deps" in r for r in by("RUN")), "skinscan must be installed without its heavy deps"


def test_ui_requirements_pinned_like_main():
    def pins(path):
        out = {}
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                out[name.strip().lower().replace("_", "-")] = version.strip()
        return out

    ui, main = pins(REPO / "ui" / "requirements.txt"), pins(REPO / "requirements.txt")
    assert {"streamlit", "requests"} <= set(ui)
    for name, version in ui.items():
        assert main.get(name) == version, f"{name}: ui pins {version}, requirements.txt has {main.get(name)}"


# --------------------------------------------------------------------------
# (e) bentofile.yaml
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bentofile():
    return yaml.safe_load((REPO / "bentofile.yaml").read_text())


def test_bentofile_contents(bentofile):
    assert bentofile["service"] == "service.service:SkinScan"
    include = bentofile["include"]
    assert any(i.rstrip("/*").startswith("models") for i in include)
    assert any(i.rstrip("/*") == "skinscan" for i in include)
    assert any(i.rstrip("/*") == "service" for i in include)
    assert (REPO / bentofile["python"]["requirements_txt"]).is_file()
    docker = bentofile["docker"]
    assert docker["distro"] == "debian"
    assert {"libgl1", "libglib2.0-0"} <= set(docker["system_packages"])
    assert docker["env"]["SKINSCAN_MODEL_DIR"].rstrip("/").endswith(MODEL_PATH)


def test_bentofile_schema_and_paths():
    """BentoML's own parser (rejects unknown keys) and its include/exclude matcher."""
    pytest.importorskip("bentoml")
    from bentoml._internal.bento.build_config import BentoBuildConfig, BentoPathSpec
    from bentoml._internal.container.generate import BENTO_PATH

    with open(REPO / "bentofile.yaml") as f:
        cfg = BentoBuildConfig.from_yaml(f).with_defaults()
    assert cfg.service == "service.service:SkinScan"
    # the bento's src/ is the service's working dir inside the container
    assert cfg.docker.env["SKINSCAN_MODEL_DIR"] in (MODEL_PATH, f"{BENTO_PATH}/src/{MODEL_PATH}")

    spec = BentoPathSpec(cfg.include, cfg.exclude, str(REPO))
    included = [
        "service/service.py",
        "skinscan/config.py",
        "skinscan/knowledge.json",
        f"{MODEL_PATH}/model.tflite",
        f"{MODEL_PATH}/MODEL_CARD.md",
        "third_party/LICENSE",
    ]
    excluded = [
        "tests/test_deploy.py",
        f"{MODEL_PATH}/model.keras",  # the API serves model.tflite
        "models/backbone/efficientnet_lite0_imagenet.weights.h5",
        ".venv/lib/python3.11/site-packages/x.py",
        "skinscan/__pycache__/config.cpython-311.pyc",
        "training/train.py",
        "ui/app.py",
        ".git/config",
    ]
    assert [p for p in included if not spec.includes(p)] == []
    assert [p for p in excluded if spec.includes(p)] == []
    # every file actually in skinscan/ (the package and its data) ships
    for f in (REPO / "skinscan").rglob("*"):
        rel = f.relative_to(REPO).as_posix()
        if f.is_file() and "__pycache__" not in rel:
            assert spec.includes(rel), rel


def test_bento_dockerfile_runs_non_root(tmp_path):
    """Render the Dockerfile `bentoml containerize` would use (no build, no daemon)."""
    pytest.importorskip("bentoml")
    from bentoml._internal.bento.build_config import BentoBuildConfig
    from bentoml._internal.container.generate import generate_containerfile

    with open(REPO / "bentofile.yaml") as f:
        cfg = BentoBuildConfig.from_yaml(f).with_defaults()
    dockerfile = generate_containerfile(cfg.docker, str(REPO), conda=cfg.conda,
                                        bento_fs=tmp_path, enable_buildkit=False)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    uid = re.search(r"^ARG BENTO_USER_UID=(\d+)", dockerfile, flags=re.M)
    assert uid, "cannot find the bento user's uid"
    # compose and k8s run the API with that uid
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert str(compose["services"]["api"]["user"]).split(":")[0] == uid.group(1)
    pod = obj(render("base"), "Deployment", API)["spec"]["template"]["spec"]  # skips (visibly) without kubectl
    assert str(pod["securityContext"]["runAsUser"]) == uid.group(1)
    assert "libgl1" in dockerfile and "libglib2.0-0" in dockerfile
    assert "ENV SKINSCAN_MODEL_DIR=" in dockerfile
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, flags=re.M)
