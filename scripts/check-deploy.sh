#!/usr/bin/env bash
# Checks deploy/ as CI runs it (called by .ci/run):
#   - the alert rules with promtool (check + unit tests) and the Compose Prometheus config;
#   - every YAML file with yamllint, and the Kubernetes manifests against the API schemas
#     (kubernetes-validate; the PrometheusRule is a CRD and is checked by promtool instead);
#   - the generated Kubernetes objects are up to date (deploy/generate-k8s.py --check);
#   - every BQAI__ variable of docker-compose.yml and k8s/ is loaded by `bqai config check`
#     (secrets referenced in k8s/ get placeholder values);
#   - `docker compose config` where Docker Compose exists.
# The Grafana dashboard's and the alert rules' metric names are checked against a running
# server by the API tests (bins/bqai/tests/api/metrics.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${HOME}/.cache/bqai/tools"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/bqai/target}"

if ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
promtool check config deploy/prometheus/prometheus.yml
# (prometheus-k8s.yml uses kubernetes_sd_configs, which Debian's promtool is built without:
# yamllint and the ConfigMap check below cover it.)

venv="${TOOLS}/deploy-venv"
if [[ ! -x "${venv}/bin/kubernetes-validate" || ! -x "${venv}/bin/yamllint" ]]; then
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install -q yamllint==1.38.0 kubernetes-validate==1.37.0 PyYAML==6.0.3
fi
"${venv}/bin/yamllint" -c deploy/.yamllint --strict deploy/
python3 deploy/generate-k8s.py --check
# Kubernetes 1.31's schemas; the PrometheusRule (a CRD) has none there.
manifests=()
for f in deploy/k8s/*.yaml; do
  [[ "${f}" == deploy/k8s/prometheus.yaml ]] && continue
  manifests+=("${f}")
done
"${venv}/bin/kubernetes-validate" --strict -k 1.31.0 "${manifests[@]}"
"${venv}/bin/python" - deploy/k8s/prometheus.yaml <<'PY'
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
rule, config = docs
assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"], "no rules in the PrometheusRule"
assert config["kind"] == "ConfigMap" and {"prometheus.yml", "alerts.yml"} <= config["data"].keys()
print(f"{sys.argv[1]}: PrometheusRule with {sum(len(g['rules']) for g in rule['spec']['groups'])} rules")
PY

bqai="${CARGO_TARGET_DIR}/debug/bqai"
if [[ ! -x "${bqai}" ]]; then
  cargo build --locked -q -p bqai
fi
"${venv}/bin/python" - "${bqai}" <<'PY'
import glob, os, subprocess, sys, tempfile, yaml

bqai = sys.argv[1]
# Placeholder values for what the manifests take from secrets.
SECRETS = {
    "pepper": "placeholder-pepper-0123456789abcdef",
    "store-url": "postgres://bqai:secret@postgres:5432/bqai",
    "llm-api-key": "sk-placeholder",
    "postgres-password": "secret",
}

def check(name, env):
    bqai_vars = {k: str(v) for k, v in env.items() if k.startswith("BQAI__")}
    assert bqai_vars, f"{name}: no BQAI__ variables"
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run([bqai, "config", "check"], env={"PATH": "/usr/bin:/bin", **bqai_vars},
                             cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{name}: bqai config check refused its BQAI__ variables:\n{out.stdout}{out.stderr}")
    print(f"{name}: {len(bqai_vars)} BQAI__ variables — {out.stdout.strip()}")

compose = yaml.safe_load(open("deploy/docker-compose.yml"))
env = dict(compose["services"]["bqai"]["environment"])
env = {k: ("placeholder-pepper-0123456789abcdef" if v.startswith("${BQAI_PEPPER") else v) for k, v in env.items()}
check("deploy/docker-compose.yml", env)

configmaps, deployments = {}, []
for f in glob.glob("deploy/k8s/*.yaml"):
    for doc in yaml.safe_load_all(open(f)):
        if doc and doc["kind"] == "ConfigMap":
            configmaps[doc["metadata"]["name"]] = doc.get("data", {})
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == "bqai":
            deployments.append(doc)
for d in deployments:
    for c in d["spec"]["template"]["spec"]["containers"]:
        env = {}
        for src in c.get("envFrom", []):
            env.update(configmaps[src["configMapRef"]["name"]])
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            else:
                env[e["name"]] = SECRETS[e["valueFrom"]["secretKeyRef"]["key"]]
        check(f"deploy/k8s/deployment.yaml ({c['name']})", env)
PY

if docker compose version >/dev/null 2>&1; then
  BQAI_PEPPER=placeholder-pepper-0123456789abcdef docker compose -f deploy/docker-compose.yml config -q
  echo "docker compose config: ok"
else
  echo "docker compose config: skipped (no Docker Compose plugin here); the file passed yamllint and bqai config check"
fi
echo "deploy/: ok"
