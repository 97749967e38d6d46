#!/usr/bin/env bash
# Validates the deployment artifacts under deploy/. Run from the repository
# root (it also works from elsewhere: it changes to the repo root itself):
#
#   deploy/check.sh
#
# Needs bash and python3 (>= 3.11 for tomllib). Uses, when present:
# systemd-analyze, systemd-sysusers, kubectl. Installs PyYAML with pip if it
# is missing. Prints one PASS/FAIL/SKIP line per check and ends with
#   deploy checks: N passed, M failed
# exiting 1 if anything failed. Skipped checks are not counted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f deploy/check.sh ] || { echo "cannot find the repository root" >&2; exit 2; }

UNIT=deploy/systemd/sluice.service
SYSUSERS=deploy/systemd/sluice.sysusers.conf
DOCKERFILE=deploy/docker/Dockerfile
K8S_DIR=deploy/k8s
DASHBOARD=deploy/grafana/sluice-dashboard.json

passed=0
failed=0
skipped=0
pass() { printf 'PASS  %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL  %s\n' "$1"; failed=$((failed + 1)); }
skip() { printf 'SKIP  %s\n' "$1"; skipped=$((skipped + 1)); }
section() { printf '\n== %s\n' "$1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Shared python helpers: each python block prints "PASS ...", "FAIL ...",
# "SKIP ..." or "NOTE ..." lines, which run_py turns into counted results.
cat >"$tmp/checklib.py" <<'PY'
import re

METRICS = {
    # counters
    "sluice_files_discovered_total", "sluice_files_done_total",
    "sluice_files_quarantined_total", "sluice_rows_read_total",
    "sluice_bytes_read_total", "sluice_rows_matched_total",
    "sluice_rows_unmatched_total", "sluice_rows_routed_total",
    "sluice_rows_committed_total", "sluice_files_committed_total",
    "sluice_checkpoints_total", "sluice_dimension_fallbacks_total",
    "sluice_rule_reloads_total", "sluice_reader_wait_seconds_total",
    "sluice_partitions_committed_total", "sluice_dimension_rows_unmatched_total",
    "sluice_partition_commit_webhook_failures_total",
    "sluice_rule_error_rows_total", "sluice_error_output_rows_committed_total",
    # gauges
    "sluice_splits_queued", "sluice_splits_in_flight", "sluice_backlog_files",
    "sluice_backlog_bytes", "sluice_lag_seconds",
    "sluice_last_checkpoint_timestamp_seconds",
    "sluice_checkpoint_duration_seconds",
    "sluice_dimension_snapshot_age_seconds", "sluice_ready",
    "sluice_partitions_pending", "sluice_dimension_rows",
}


def check(name, cond, detail=""):
    if cond:
        print(f"PASS {name}")
    else:
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return bool(cond)


def guarded(name, fn):
    """Runs fn(); an exception becomes a FAIL line instead of a crash."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report anything
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def parse_duration(text):
    """Seconds from a humantime-style duration: "30s", "1m 30s", "250ms"."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text.strip())
    if not parts or re.sub(r"[\d.\sa-z]", "", text.strip()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


_TOKEN = re.compile(r"(?P<num>\d[\w.]*)|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
             "bool", "and", "or", "unless", "offset", "inf", "nan"}


def promql_metrics(expr):
    """Metric names referenced by a PromQL expression (best effort, strict
    enough for dashboards: functions, keywords, labels, strings, durations and
    Grafana variables are not metric names)."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]*)"', expr))
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)            # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)           # ranges, subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)    # Grafana variables
    for m in _TOKEN.finditer(s):
        tok = m.group("id")
        if tok is None or tok.lower() in _KEYWORDS:
            continue
        if s[m.end():].lstrip().startswith("("):
            continue                            # function call
        names.add(tok)
    return names
PY

run_py() { # usage: run_py LABEL <<'PY' ... PY
    local label=$1 out rc=0 line
    out=$(PYTHONPATH="$tmp:$tmp/pylib" python3 - 2>&1) || rc=$?
    while IFS= read -r line; do
        case $line in
        "PASS "*) pass "${line#PASS }" ;;
        "FAIL "*) fail "${line#FAIL }" ;;
        "SKIP "*) skip "${line#SKIP }" ;;
        "NOTE "*) printf '      %s\n' "${line#NOTE }" ;;
        "") ;;
        *) printf '      %s\n' "$line" ;;
        esac
    done <<<"$out"
    if [ "$rc" -ne 0 ]; then fail "$label: python exited with status $rc"; fi
}

# ---------------------------------------------------------------- files
section "files"
for f in "$UNIT" "$SYSUSERS" "$DOCKERFILE" deploy/docker/README.md \
    "$K8S_DIR/configmap.yaml" "$K8S_DIR/statefulset.yaml" "$K8S_DIR/service.yaml" \
    "$K8S_DIR/kustomization.yaml" "$DASHBOARD" deploy/README.md; do
    if [ -s "$f" ]; then pass "exists: $f"; else fail "missing or empty: $f"; fi
done

# ---------------------------------------------------------------- systemd
section "systemd"
UNIT="$UNIT" run_py "unit directives" <<'PY'
import os, re
from checklib import check, guarded

path = os.environ["UNIT"]
d = {}
for raw in open(path, encoding="utf-8"):
    line = raw.strip()
    if not line or line[0] in "#;" or line.startswith("["):
        continue
    k, _, v = line.partition("=")
    d.setdefault(k.strip(), []).append(v.strip())

def one(k):
    v = d.get(k, [])
    return v[-1] if v else None

expect = {
    "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "60",
    "Restart": "on-failure", "RestartSec": "5", "TimeoutStopSec": "60",
    "KillSignal": "SIGTERM", "DynamicUser": "no", "User": "sluice",
    "Group": "sluice", "StateDirectory": "sluice", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "LimitNOFILE": "65536",
    "ExecStart": "/usr/local/bin/sluice run --config /etc/sluice/sluice.toml",
    "ExecStartPre": "/usr/local/bin/sluice check --config /etc/sluice/sluice.toml",
}
for k, want in expect.items():
    check(f"unit {k}={want}", one(k) == want, f"found {one(k)!r}")

rw = " ".join(d.get("ReadWritePaths", [])).split()
check("unit ReadWritePaths has /var/lib/sluice and /data/dwd",
      {"/var/lib/sluice", "/data/dwd"} <= set(rw), f"found {rw}")
ro = " ".join(d.get("ReadOnlyPaths", [])).split()
check("unit ReadOnlyPaths covers the source (/data/ods)", "/data/ods" in ro, f"found {ro}")
check("unit source is not also read-write", not set(ro) & set(rw), f"{set(ro) & set(rw)}")
af = " ".join(d.get("RestrictAddressFamilies", [])).split()
check("unit RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
      sorted(af) == sorted(["AF_UNIX", "AF_INET", "AF_INET6"]), f"found {af}")

def grace():
    from checklib import parse_duration
    stop = parse_duration(one("TimeoutStopSec") + ("s" if one("TimeoutStopSec").isdigit() else ""))
    check("unit TimeoutStopSec longer than the 30s default shutdown grace", stop > 30, f"{stop}s")
guarded("unit TimeoutStopSec vs grace", grace)
PY

if command -v systemd-analyze >/dev/null 2>&1; then
    # Verify a copy whose Exec paths point at a stub: the real binary is not
    # installed here, and verify fails on a missing executable.
    mkdir -p "$tmp/unit" "$tmp/bin"
    stub="$tmp/bin/sluice"
    printf '#!/bin/sh\nexit 0\n' >"$stub"
    chmod 0755 "$stub"
    sed -E "s#^(ExecStart(Pre)?=[-@:+!]*)/usr/local/bin/sluice( |\$)#\\1$stub\\3#" \
        "$UNIT" >"$tmp/unit/sluice.service"
    if grep -Eq '^ExecStart(Pre)?=.*/usr/local/bin/sluice' "$tmp/unit/sluice.service" ||
        ! grep -q "^ExecStart=$stub " "$tmp/unit/sluice.service"; then
        fail "systemd-analyze verify: could not rewrite Exec paths to the stub"
    else
        verify_args=(verify)
        if systemd-analyze --help 2>/dev/null | grep -q -- '--recursive-errors'; then
            # Only this unit's problems decide the exit status, not the host's units.
            verify_args+=(--recursive-errors=no)
        fi
        vrc=0
        vout=$(systemd-analyze "${verify_args[@]}" "$tmp/unit/sluice.service" 2>&1) || vrc=$?
        # The one tolerated complaint: the service user does not exist on
        # this machine (only if it really does not), e.g.
        #   sluice.service: Failed to resolve user sluice: No such process
        user_missing=0
        getent passwd sluice >/dev/null 2>&1 || user_missing=1
        user_re='([Uu]ser|[Gg]roup)[^a-zA-Z]*[= '"'"'"]sluice['"'"'"]?([:,. ]|$).*(No such process|not found|does not exist|[Uu]nknown|[Nn]o such (user|group))'
        ours=0 tolerated=0 other=0
        while IFS= read -r line; do
            [ -n "$line" ] || continue
            case $line in
            *"$tmp/unit/sluice.service"* | sluice.service:*)
                if [ "$user_missing" -eq 1 ] && [[ $line =~ $user_re ]]; then
                    tolerated=$((tolerated + 1))
                    printf '      tolerated (user sluice does not exist here): %s\n' "$line"
                else
                    ours=$((ours + 1))
                    printf '      %s\n' "$line"
                fi
                ;;
            *)
                other=$((other + 1))
                printf '      (about another unit, ignored) %s\n' "$line"
                ;;
            esac
        done <<<"$vout"
        if [ "$ours" -eq 0 ] && { [ "$vrc" -eq 0 ] || [ "$tolerated" -gt 0 ]; }; then
            pass "systemd-analyze verify $UNIT (exit $vrc, $tolerated tolerated missing-user line(s))"
        else
            fail "systemd-analyze verify $UNIT (exit $vrc, $ours problem line(s))"
        fi

        # Hardening regression guard: offline exposure score.
        if systemd-analyze --help 2>/dev/null | grep -q -- '--offline' &&
            systemd-analyze --help 2>/dev/null | grep -q -- '--threshold'; then
            srv=0
            sout=$(systemd-analyze security --offline=true --threshold=30 --no-pager \
                "$tmp/unit/sluice.service" 2>&1) || srv=$?
            score=$(printf '%s\n' "$sout" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -n 1)
            if [ "$srv" -eq 0 ] && [ -n "$score" ]; then
                pass "systemd-analyze security exposure $score <= 3.0"
            else
                printf '%s\n' "$sout" | grep -E '^✗' | sed 's/^/      /' || true
                fail "systemd-analyze security exposure ${score:-unknown} > 3.0 (exit $srv)"
            fi
        else
            skip "systemd-analyze security: this systemd has no --offline/--threshold"
        fi
    fi
else
    skip "systemd-analyze verify: systemd-analyze not installed"
fi

if command -v systemd-sysusers >/dev/null 2>&1; then
    mkdir -p "$tmp/sysroot/etc"
    if systemd-sysusers --root="$tmp/sysroot" "$PWD/$SYSUSERS" >"$tmp/sysusers.out" 2>&1 &&
        grep -q '^sluice:' "$tmp/sysroot/etc/passwd" && grep -q '^sluice:' "$tmp/sysroot/etc/group"; then
        pass "systemd-sysusers creates user and group sluice from $SYSUSERS"
    else
        sed 's/^/      /' "$tmp/sysusers.out"
        fail "systemd-sysusers $SYSUSERS"
    fi
else
    skip "systemd-sysusers: not installed"
fi

# ---------------------------------------------------------------- docker
section "docker"
DOCKERFILE="$DOCKERFILE" run_py "Dockerfile" <<'PY'
import json, os, re
from checklib import check

lines, cur = [], ""
for raw in open(os.environ["DOCKERFILE"], encoding="utf-8"):
    s = raw.rstrip("\n")
    if not cur and (not s.strip() or s.lstrip().startswith("#")):
        continue
    if s.rstrip().endswith("\\"):
        cur += s.rstrip()[:-1] + " "
        continue
    cur += s
    lines.append(cur.strip())
    cur = ""
instrs = [(l.split(None, 1)[0].upper(), (l.split(None, 1) + [""])[1].strip()) for l in lines]

froms = [i for i, (k, _) in enumerate(instrs) if k == "FROM"]
check("Dockerfile is multi-stage (FROM count >= 2)", len(froms) >= 2, f"{len(froms)} FROM")
stages = {}
for i in froms:
    m = re.search(r"\bAS\s+(\S+)", instrs[i][1], re.I)
    if m:
        stages[m.group(1).lower()] = i
first = instrs[froms[0]][1] if froms else ""
check("builder stage is rust:<version>-bookworm", re.match(r"rust:\S*bookworm\b", first) is not None, first)
last = instrs[froms[-1]][1] if froms else ""
check("runtime base is debian:bookworm-slim or distroless cc-debian12",
      re.match(r"(debian:bookworm-slim|gcr\.io/distroless/cc-debian12)([:@]\S*)?(\s|$)", last) is not None, last)

runs = " ".join(v for k, v in instrs if k == "RUN")
check("builds with cargo build --release --locked --bin sluice",
      re.search(r"cargo build\b(?=.*--release)(?=.*--locked)(?=.*--bin sluice\b)", runs) is not None)
for k, v in instrs:
    if k == "COPY":
        m = re.search(r"--from=(\S+)", v)
        if m:
            check(f"COPY --from={m.group(1)} names an earlier stage", m.group(1).lower() in stages)

final = instrs[froms[-1]:] if froms else []
users = [v for k, v in final if k == "USER"]
user = users[-1].split(":")[0] if users else ""
check("final stage has a USER line", bool(users))
check("final USER is not root", user not in ("", "root", "0"), f"USER {users[-1] if users else None}")
check("final USER is uid 10001 (matches k8s runAsUser)", user == "10001", f"USER {user}")
exposes = " ".join(v for k, v in final if k == "EXPOSE").split()
check("EXPOSE 9108", any(p.split("/")[0] == "9108" for p in exposes), f"{exposes}")

def jsonform(k):
    vals = [v for kk, v in final if kk == k]
    try:
        return json.loads(vals[-1]) if vals else None
    except json.JSONDecodeError:
        return vals[-1]
check('ENTRYPOINT ["sluice"]', jsonform("ENTRYPOINT") == ["sluice"], f"{jsonform('ENTRYPOINT')}")
check('CMD ["run","--config","/etc/sluice/sluice.toml"]',
      jsonform("CMD") == ["run", "--config", "/etc/sluice/sluice.toml"], f"{jsonform('CMD')}")
PY

if grep -Eq 'docker build -f deploy/docker/Dockerfile( -t [^ ]+)? \.( |$)' deploy/docker/README.md 2>/dev/null; then
    pass "docker README says: docker build -f deploy/docker/Dockerfile ."
else
    fail "docker README lacks the build command from the repo root"
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 &&
    docker build --help 2>/dev/null | grep -q -- '--check'; then
    if docker build --check -f "$DOCKERFILE" . >"$tmp/docker-check.out" 2>&1; then
        pass "docker build --check (BuildKit lint)"
    else
        sed 's/^/      /' "$tmp/docker-check.out"
        fail "docker build --check (BuildKit lint)"
    fi
else
    skip "docker build --check: no docker daemon (or no --check support)"
fi

# ---------------------------------------------------------------- kubernetes
section "kubernetes"
yaml_ok=1
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
    echo "      PyYAML missing; installing it with pip"
    # A distro python (PEP 668 "externally managed") refuses a plain install;
    # then install into the temp dir only, leaving the system untouched.
    if python3 -m pip install --quiet pyyaml ||
        python3 -m pip install --quiet --target "$tmp/pylib" pyyaml; then
        if PYTHONPATH="$tmp/pylib" python3 -c 'import yaml' >/dev/null 2>&1; then
            pass "PyYAML installed with pip"
        else
            fail "PyYAML installed with pip but still not importable"
            yaml_ok=0
        fi
    else
        fail "install PyYAML with pip (or: apt-get install python3-yaml)"
        yaml_ok=0
    fi
fi
if [ "$yaml_ok" -eq 1 ]; then
    K8S_DIR="$K8S_DIR" run_py "kubernetes manifests" <<'PY'
import glob, os, posixpath, re
from checklib import check, guarded, parse_duration
import yaml

kdir = os.environ["K8S_DIR"]
docs = {}  # (kind, name) -> doc
files = sorted(glob.glob(os.path.join(kdir, "*.yaml")) + glob.glob(os.path.join(kdir, "*.yml")))
kustomization = None
for f in files:
    try:
        loaded = [d for d in yaml.safe_load_all(open(f, encoding="utf-8")) if d is not None]
    except yaml.YAMLError as e:
        check(f"YAML parses: {f}", False, str(e).replace("\n", " "))
        continue
    check(f"YAML parses: {f} ({len(loaded)} doc(s))", len(loaded) > 0, "no documents")
    for d in loaded:
        kind, name = d.get("kind"), (d.get("metadata") or {}).get("name")
        if kind == "Kustomization":
            kustomization = (f, d)
            continue
        check(f"{os.path.basename(f)}: {kind}/{name} has apiVersion, kind, metadata.name",
              bool(d.get("apiVersion") and kind and name))
        check(f"{kind}/{name} is namespace-agnostic (no metadata.namespace)",
              "namespace" not in (d.get("metadata") or {}))
        docs[(kind, name)] = d

if check("kustomization.yaml present", kustomization is not None):
    kf, kd = kustomization
    listed = set(kd.get("resources") or [])
    others = {os.path.basename(f) for f in files if f != kf}
    check("kustomization lists every manifest in deploy/k8s", listed == others,
          f"listed {sorted(listed)}, files {sorted(others)}")

def by_kind(kind):
    return [d for (k, _), d in docs.items() if k == kind]

sts_list, cm_list, svc_list = by_kind("StatefulSet"), by_kind("ConfigMap"), by_kind("Service")
check("exactly one StatefulSet", len(sts_list) == 1, f"{len(sts_list)}")
check("exactly one ConfigMap", len(cm_list) == 1, f"{len(cm_list)}")
check("exactly one Service", len(svc_list) == 1, f"{len(svc_list)}")
if not (len(sts_list) == 1 and len(cm_list) == 1 and len(svc_list) == 1):
    raise SystemExit(0)
sts, cm, svc = sts_list[0], cm_list[0], svc_list[0]

# ---- ConfigMap / sluice.toml
conf = {}
def toml_check():
    global conf
    import tomllib
    text = (cm.get("data") or {}).get("sluice.toml")
    if not check("ConfigMap has key sluice.toml", text is not None):
        return
    conf = tomllib.loads(text)
    check("sluice.toml parses with tomllib", True)
guarded("sluice.toml parses with tomllib", toml_check)

def get(*path):
    cur = conf
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur

if conf:
    check("sluice.toml version = 1", get("version") == 1, f"{get('version')!r}")
    for sec in ("source", "state", "sink", "rules"):
        check(f"sluice.toml has [{sec}]", isinstance(get(sec), dict))
    check('sluice.toml [http] listen = "0.0.0.0:9108"', get("http", "listen") == "0.0.0.0:9108",
          f"{get('http', 'listen')!r}")
    check('sluice.toml [state] dir = "/var/lib/sluice"', get("state", "dir") == "/var/lib/sluice",
          f"{get('state', 'dir')!r}")
    rules_dir = posixpath.normpath(posixpath.join("/etc/sluice", get("rules", "dir") or ""))
    check("sluice.toml rules dir resolves to /etc/sluice/rules", rules_dir == "/etc/sluice/rules", rules_dir)

# ---- rules
source_name = get("source", "name") or ""
rule_keys = sorted(k for k in (cm.get("data") or {}) if k.endswith(".sql"))
check("ConfigMap has at least two example rules (*.sql keys)", len(rule_keys) >= 2, f"{rule_keys}")
for k in rule_keys if conf else []:
    body = re.sub(r"--[^\n]*|/\*.*?\*/", " ", cm["data"][k], flags=re.S)
    check(f"rule {k}: CREATE TABLE <name> ... AS SELECT ... FROM {source_name}",
          re.match(r"\s*CREATE\s+TABLE\s+\w+", body, re.I) is not None
          and re.search(r"\bAS\s+SELECT\b", body, re.I) is not None
          and re.search(rf"\bFROM\s+[`\"]?{re.escape(source_name)}\b", body, re.I) is not None)

# ---- StatefulSet
spec = sts.get("spec") or {}
pod = (spec.get("template") or {}).get("spec") or {}
containers = pod.get("containers") or []
check("StatefulSet replicas: 1 (single writer)", spec.get("replicas") == 1, f"{spec.get('replicas')}")
check("StatefulSet serviceName is the Service", spec.get("serviceName") == svc["metadata"]["name"],
      f"{spec.get('serviceName')!r}")
if not check("StatefulSet has one container", len(containers) == 1, f"{len(containers)}"):
    raise SystemExit(0)
c = containers[0]
named_ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
check("container exposes containerPort 9108", 9108 in named_ports.values(), f"{named_ports}")

def probe(kind, path):
    p = (c.get(kind) or {}).get("httpGet") or {}
    port = p.get("port")
    port = named_ports.get(port, port) if isinstance(port, str) else port
    check(f"{kind} httpGet {path} on port 9108", p.get("path") == path and port == 9108,
          f"path={p.get('path')!r} port={p.get('port')!r}")
probe("livenessProbe", "/healthz")
probe("readinessProbe", "/readyz")

res = c.get("resources") or {}
for kind in ("requests", "limits"):
    r = res.get(kind) or {}
    check(f"resources.{kind} cpu 2 / memory 4Gi",
          str(r.get("cpu")) in ("2", "2000m") and r.get("memory") == "4Gi", f"{r}")

psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
def eff(key):
    return csc.get(key, psc.get(key))
check("runAsNonRoot: true", eff("runAsNonRoot") is True, f"{eff('runAsNonRoot')!r}")
check("runAsUser: 10001", eff("runAsUser") == 10001, f"{eff('runAsUser')!r}")
check("readOnlyRootFilesystem: true", csc.get("readOnlyRootFilesystem") is True)
check("allowPrivilegeEscalation: false", csc.get("allowPrivilegeEscalation") is False)

tgp = pod.get("terminationGracePeriodSeconds")
def grace_check():
    grace = parse_duration(get("log", "shutdown_grace") or "30s")
    check(f"terminationGracePeriodSeconds ({tgp}) > shutdown_grace ({grace:g}s)",
          isinstance(tgp, int) and tgp > grace)
guarded("terminationGracePeriodSeconds > shutdown_grace", grace_check)

vcts = spec.get("volumeClaimTemplates") or []
check("StatefulSet has a volumeClaimTemplate", len(vcts) >= 1)
mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
volumes = {v.get("name"): v for v in pod.get("volumes") or []}
vct_names = {(v.get("metadata") or {}).get("name") for v in vcts}
state_mount = mounts.get(get("state", "dir") or "/var/lib/sluice") or {}
check("state dir is mounted from the volumeClaimTemplate", state_mount.get("name") in vct_names,
      f"mount {state_mount.get('name')!r}, templates {sorted(n for n in vct_names if n)}")
for v in vcts:
    storage = ((v.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    check(f"volumeClaimTemplate {(v.get('metadata') or {}).get('name')} requests 10Gi", storage == "10Gi", f"{storage}")

def mount_for(path):
    best = None
    for mp, m in mounts.items():
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, m)
    return best

if conf:  # (a config that does not parse has already failed above)
    src, sink = get("source", "root") or "", get("sink", "root") or ""
    src = src[len("file://"):] if src.startswith("file://") else src
    sink = sink[len("file://"):] if sink.startswith("file://") else sink
    ms, mk = mount_for(src), mount_for(sink)
    check(f"source.root {src!r} is on a read-only volume mount",
          ms is not None and ms[1].get("readOnly") is True, f"{ms}")
    check(f"sink.root {sink!r} is on a writable volume mount",
          mk is not None and not mk[1].get("readOnly"), f"{mk}")
check("/tmp is a writable volume (read-only root fs)", "/tmp" in mounts and not mounts["/tmp"].get("readOnly"))

# config volume: ConfigMap at /etc/sluice, toml + every rule key mapped
cfg_mount = mounts.get("/etc/sluice") or {}
cfg_vol = (volumes.get(cfg_mount.get("name")) or {}).get("configMap")
if check("ConfigMap volume mounted at /etc/sluice (no subPath)",
         cfg_vol is not None and cfg_vol.get("name") == cm["metadata"]["name"] and "subPath" not in cfg_mount):
    items = {i.get("key"): i.get("path") for i in cfg_vol.get("items") or []}
    data_keys = set((cm.get("data") or {}).keys())
    if items:
        check("config item sluice.toml -> sluice.toml", items.get("sluice.toml") == "sluice.toml", f"{items}")
        check("every config item names an existing ConfigMap key", set(items) <= data_keys,
              f"unknown {sorted(set(items) - data_keys)}")
        for k in rule_keys:
            p = items.get(k) or ""
            check(f"rule key {k} is mounted under /etc/sluice/rules/ as *.sql",
                  p.startswith("rules/") and p.endswith(".sql") and "/" not in p[len("rules/"):], f"{p!r}")
    else:
        check("ConfigMap volume has items mapping rules into rules/", False,
              "without items every key lands directly in /etc/sluice")

# ---- Service
sspec = svc.get("spec") or {}
ann = (svc.get("metadata") or {}).get("annotations") or {}
check("Service type ClusterIP", sspec.get("type", "ClusterIP") == "ClusterIP", f"{sspec.get('type')}")
check("Service port 9108", any(p.get("port") == 9108 for p in sspec.get("ports") or []))
for p in sspec.get("ports") or []:
    tp = p.get("targetPort", p.get("port"))
    tp = named_ports.get(tp, tp) if isinstance(tp, str) else tp
    check(f"Service port {p.get('port')} targets container port 9108", tp == 9108, f"{p.get('targetPort')!r}")
pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
sel = sspec.get("selector") or {}
check("Service selector matches the pod labels", bool(sel) and all(pod_labels.get(k) == v for k, v in sel.items()),
      f"selector {sel}, pod labels {pod_labels}")
check("StatefulSet selector matches the pod labels",
      all(pod_labels.get(k) == v for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items()))
check('Service annotations prometheus.io/scrape "true", port "9108", path /metrics',
      ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9108"
      and ann.get("prometheus.io/path", "/metrics") == "/metrics", f"{ann}")
PY
fi

if command -v kubectl >/dev/null 2>&1; then
    if kubectl kustomize "$K8S_DIR" >"$tmp/kustomize.out" 2>&1; then
        pass "kubectl kustomize $K8S_DIR renders"
    else
        sed 's/^/      /' "$tmp/kustomize.out"
        fail "kubectl kustomize $K8S_DIR"
    fi
else
    skip "kubectl kustomize: kubectl not installed"
fi

# ---------------------------------------------------------------- kubernetes, N replicas
section "kubernetes (replicas)"
K8S_REPLICAS_DIR=deploy/k8s-replicas
if [ "$yaml_ok" -eq 1 ]; then
    K8S_DIR="$K8S_REPLICAS_DIR" run_py "kubernetes replicas manifests" <<'PY'
import glob, os, re
from checklib import check, guarded
import yaml

kdir = os.environ["K8S_DIR"]
docs, kust = {}, None
files = sorted(glob.glob(os.path.join(kdir, "*.yaml")))
for f in files:
    try:
        loaded = [d for d in yaml.safe_load_all(open(f, encoding="utf-8")) if d is not None]
    except yaml.YAMLError as e:
        check(f"YAML parses: {f}", False, str(e).replace("\n", " "))
        continue
    check(f"YAML parses: {f}", len(loaded) > 0, "no documents")
    for d in loaded:
        if d.get("kind") == "Kustomization":
            kust = d
            continue
        check(f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')} has no namespace",
              "namespace" not in (d.get("metadata") or {}))
        docs.setdefault(d.get("kind"), []).append(d)
if check("replicas: kustomization.yaml lists every manifest", kust is not None
         and set(kust.get("resources") or []) == {os.path.basename(f) for f in files} - {"kustomization.yaml"}):
    pass
for kind in ("StatefulSet", "ConfigMap", "PodDisruptionBudget", "Service"):
    check(f"replicas: exactly one {kind}", len(docs.get(kind, [])) == 1, f"{len(docs.get(kind, []))}")
if any(len(docs.get(k, [])) != 1 for k in ("StatefulSet", "ConfigMap", "PodDisruptionBudget", "Service")):
    raise SystemExit(0)
sts, cm, pdb, svc = (docs[k][0] for k in ("StatefulSet", "ConfigMap", "PodDisruptionBudget", "Service"))
spec = sts.get("spec") or {}
pod = (spec.get("template") or {}).get("spec") or {}
labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
c = (pod.get("containers") or [{}])[0]
n = spec.get("replicas")
check("replicas: StatefulSet replicas >= 2", isinstance(n, int) and n >= 2, f"{n!r}")
check("replicas: serviceName is the headless Service",
      spec.get("serviceName") == svc["metadata"]["name"] and (svc.get("spec") or {}).get("clusterIP") == "None",
      f"{spec.get('serviceName')!r}, clusterIP {(svc.get('spec') or {}).get('clusterIP')!r}")
check("replicas: Service selector matches the pods",
      all(labels.get(k) == v for k, v in ((svc.get("spec") or {}).get("selector") or {"x": None}).items()))
ann = (svc.get("metadata") or {}).get("annotations") or {}
check("replicas: Service scraped by Prometheus on 9108",
      ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9108")
sel = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
check("replicas: PodDisruptionBudget selects the pods, maxUnavailable 1",
      bool(sel) and all(labels.get(k) == v for k, v in sel.items()) and (pdb.get("spec") or {}).get("maxUnavailable") == 1,
      f"{pdb.get('spec')}")
env = {e.get("name"): e for e in c.get("env") or []}
ref = (((env.get("SLUICE_REPLICA") or {}).get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
check("replicas: SLUICE_REPLICA from the pod-index label (downward API)",
      ref == "metadata.labels['apps.kubernetes.io/pod-index']", f"{ref!r}")
for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    p = (c.get(kind) or {}).get("httpGet") or {}
    check(f"replicas: {kind} {path} on 9108", p.get("path") == path and p.get("port") == 9108, f"{p}")
vcts = {(v.get("metadata") or {}).get("name") for v in spec.get("volumeClaimTemplates") or []}
mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
conf = {}
def toml_check():
    global conf
    import tomllib
    conf = tomllib.loads((cm.get("data") or {}).get("sluice.toml", ""))
guarded("replicas: sluice.toml parses", toml_check)
cluster = conf.get("cluster") or {}
check("replicas: sluice.toml [cluster] replicas equals the StatefulSet's", cluster.get("replicas") == n,
      f"{cluster.get('replicas')!r} vs {n!r}")
check('replicas: sluice.toml [cluster] replica from SLUICE_REPLICA',
      cluster.get("replica", "env:SLUICE_REPLICA") == "env:SLUICE_REPLICA", f"{cluster.get('replica')!r}")
state_dir = (conf.get("state") or {}).get("dir")
check("replicas: state dir on a volumeClaimTemplate (one per replica)",
      (mounts.get(state_dir) or {}).get("name") in vcts, f"{state_dir!r} {sorted(x for x in vcts if x)}")
vols = {v.get("name"): v for v in pod.get("volumes") or []}
cfgv = ((vols.get((mounts.get("/etc/sluice") or {}).get("name")) or {}).get("configMap") or {})
check("replicas: config volume is this ConfigMap", cfgv.get("name") == cm["metadata"]["name"], f"{cfgv.get('name')!r}")
check("replicas: terminationGracePeriodSeconds > 30", (pod.get("terminationGracePeriodSeconds") or 0) > 30)
PY
else
    skip "kubernetes (replicas): PyYAML unavailable"
fi
if command -v kubectl >/dev/null 2>&1; then
    if kubectl kustomize "$K8S_REPLICAS_DIR" >"$tmp/kustomize-replicas.out" 2>&1; then
        pass "kubectl kustomize $K8S_REPLICAS_DIR renders"
    else
        sed 's/^/      /' "$tmp/kustomize-replicas.out"
        fail "kubectl kustomize $K8S_REPLICAS_DIR"
    fi
else
    skip "kubectl kustomize $K8S_REPLICAS_DIR: kubectl not installed"
fi

# ---------------------------------------------------------------- grafana
section "grafana"
DASHBOARD="$DASHBOARD" run_py "grafana dashboard" <<'PY'
import json, os, re
from checklib import check, METRICS, promql_metrics

try:
    dash = json.load(open(os.environ["DASHBOARD"], encoding="utf-8"))
except (OSError, json.JSONDecodeError) as e:
    check("dashboard JSON parses", False, str(e))
    raise SystemExit(0)
check("dashboard JSON parses", True)
check("schemaVersion >= 36", isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
      f"{dash.get('schemaVersion')}")
check("dashboard has title and uid", bool(dash.get("title")) and bool(dash.get("uid")))

tvars = (dash.get("templating") or {}).get("list") or []
dsvar = [v for v in tvars if v.get("name") == "datasource"]
check("template variable ${datasource} of type datasource, query prometheus",
      len(dsvar) == 1 and dsvar[0].get("type") == "datasource" and dsvar[0].get("query") == "prometheus")

def flat(panels):
    for p in panels:
        yield p
        yield from flat(p.get("panels") or [])
panels = list(flat(dash.get("panels") or []))
ids = [p.get("id") for p in panels]
check("panel ids are unique", len(ids) == len(set(ids)))
bad_grid = [p.get("title") for p in panels
            if not (p.get("gridPos") and 0 <= p["gridPos"].get("x", -1) and p["gridPos"].get("x", 0) + p["gridPos"].get("w", 99) <= 24)]
check("every panel has a gridPos within 24 columns", not bad_grid, f"{bad_grid}")

exprs, used = [], set()
bad_ds, bad_metric, no_metric = [], [], []
for p in panels:
    if p.get("type") == "row":
        continue
    if (p.get("datasource") or {}).get("uid") != "${datasource}":
        bad_ds.append(p.get("title"))
    targets = p.get("targets") or []
    if not targets:
        no_metric.append(f"{p.get('title')}: no targets")
    for t in targets:
        if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
            bad_ds.append(f"{p.get('title')}/{t.get('refId')}")
        e = t.get("expr") or ""
        exprs.append(e)
        names = promql_metrics(e)
        if not names:
            no_metric.append(f"{p.get('title')}: {e!r}")
        unknown = names - METRICS
        if unknown:
            bad_metric.append(f"{p.get('title')}: {sorted(unknown)}")
        used |= names & METRICS
for v in tvars:
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    if v.get("type") == "query" and q:
        m = re.match(r"\s*label_values\(\s*([^,)\s]+)", q)
        names = promql_metrics(m.group(1)) if m else promql_metrics(q)
        if names - METRICS:
            bad_metric.append(f"variable {v.get('name')}: {sorted(names - METRICS)}")
        if v.get("datasource", {}).get("uid") != "${datasource}":
            bad_ds.append(f"variable {v.get('name')}")

check("every panel and target uses the ${datasource} variable", not bad_ds, f"{bad_ds}")
check(f"every target expr mentions only sluice metric names ({len(exprs)} exprs)", not bad_metric, "; ".join(bad_metric))
check("every target has an expr with at least one metric", not no_metric, "; ".join(no_metric))
check("every sluice metric appears in some panel", used == METRICS, f"unused {sorted(METRICS - used)}")

def has(pattern, what):
    check(f"panel present: {what}", any(re.search(pattern, e, re.S) for e in exprs))
has(r"sluice_backlog_files", "backlog files")
has(r"sluice_backlog_bytes", "backlog bytes")
has(r"sluice_lag_seconds", "lag")
has(r"rate\(sluice_rows_read_total.*\)\s*-\s*.*rate\(sluice_rows_matched_total.*\)\s*-\s*.*rate\(sluice_rows_unmatched_total",
    "reconciliation rate(read) - rate(matched) - rate(unmatched)")
has(r"topk\(.*sluice_rows_committed_total", "rows committed per table (topk)")
has(r"sluice_checkpoint_duration_seconds", "checkpoint duration")
has(r"time\(\)\s*-.*sluice_last_checkpoint_timestamp_seconds", "time since last checkpoint")
has(r"sluice_files_quarantined_total", "quarantined files")
has(r"sluice_dimension_snapshot_age_seconds", "dimension snapshot age")
has(r"sluice_dimension_fallbacks_total", "dimension fallbacks")
has(r'sluice_rule_reloads_total\{[^}]*result="refused"', "rule reloads refused")
has(r"sluice_splits_queued", "splits queued")
has(r"sluice_splits_in_flight", "splits in flight")
PY

# ---------------------------------------------------------------- README
section "readme"
for topic in systemd Docker Kubernetes Grafana check.sh; do
    if grep -Eq "^#+ .*${topic}" deploy/README.md 2>/dev/null; then
        pass "deploy/README.md has a section on $topic"
    else
        fail "deploy/README.md has no section heading mentioning $topic"
    fi
done

# ---------------------------------------------------------------- summary
echo
if [ "$skipped" -gt 0 ]; then echo "($skipped check(s) skipped)"; fi
echo "deploy checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
