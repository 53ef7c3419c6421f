"""Installs the chart into a real API server with Helm's own install action (helm-python-sdk
wraps Helm's Go SDK) and prints the objects of the release as JSON: {"objects": [...]}.

    helm_install.py KUBECONFIG CHART RELEASE NAMESPACE VALUES_JSON
"""

import json
import sys

import helm_python as helm
import yaml


def main() -> None:
    kubeconfig, chart, release, namespace, values = sys.argv[1:]
    with helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
        installed = config.install(
            chart,
            release,
            json.loads(values),
            namespace=namespace,
            create_namespace=True,
            timeout=120,
        )
    objects = [doc for doc in yaml.safe_load_all(installed.get("manifest") or "") if doc]
    json.dump({"objects": objects}, sys.stdout)


if __name__ == "__main__":
    main()
