"""Checks of the deployment files that no off-the-shelf linter makes.

Run by scripts/check-deploy.sh inside its virtual environment (PyYAML and
kubernetes-validate come from there). Each subcommand prints what it found
and exits non-zero on any problem:

  settings ROOT         every MEDVISION_* variable that the Dockerfiles,
                        deploy/docker-compose.yml and deploy/k8s set is a
                        setting MedVision knows (it refuses to start on an
                        unknown one: serde deny_unknown_fields)
  k8s DIR VERSION...    kustomization.yaml lists every manifest and only
                        existing ones; each document validates strictly
                        against the Kubernetes OpenAPI schemas of VERSION
                        (bundled with kubernetes-validate, no network); the
                        manifests refer to one another consistently
  rendered FILE VERSION...  the same schema validation for the output of
                        `kubectl kustomize`
  compose FILE ENVFILE  cross-references compose's JSON schema cannot see:
                        depends_on targets, profiles, named volumes, every
                        interpolated variable documented in the .env template
  dockerfiles ROOT      the build arguments' defaults match the repository
                        (wasm-bindgen of Cargo.lock, cargo-leptos of
                        scripts/setup.sh) and Dockerfile.cuda's site stage
                        repeats Dockerfile's tool steps exactly (one cached
                        build of the tools serves both images)
  nginx-smoke NGINX CONF  starts nginx on the tested copy of deploy/nginx.conf
                        (ports moved to free ones) against a stub upstream
                        and checks redirect, TLS versions, forwarded headers
                        and the websocket upgrade
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

# Settings being added in the same change as the deployment files (issue 9).
# Accepted before they appear in server/src/settings.rs; a note says so.
PENDING_SETTINGS = {"MEDVISION_METRICS_ADDR", "MEDVISION_ENCRYPTION_KEY"}

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)
    print(f"  problem: {msg}")


def finish(what: str) -> None:
    if problems:
        print(f"{what}: {len(problems)} problem(s)")
        sys.exit(1)
    print(f"{what}: ok")


def load_all(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --------------------------------------------------------------- settings


def known_settings(root: Path) -> set[str]:
    src = (root / "server/src/settings.rs").read_text()
    body = re.search(r"pub struct Settings \{(.*?)\n\}", src, re.S)
    if not body:
        raise SystemExit("settings.rs: struct Settings not found")
    fields = re.findall(r"^\s*pub (\w+):", body.group(1), re.M)
    ignore = re.search(r"\.ignore\(&\[(.*?)\]\)", src, re.S)
    others = re.findall(r'"(\w+)"', ignore.group(1)) if ignore else []
    names = {f"MEDVISION_{f.upper()}" for f in fields}
    names |= {f"MEDVISION_{o}" for o in others}
    if len(fields) < 20:
        raise SystemExit(f"settings.rs: only {len(fields)} fields parsed; the parser needs updating")
    return names


def env_names_compose(path: Path) -> list[tuple[str, str]]:
    doc = yaml.safe_load(path.read_text())
    out = []
    for name, svc in (doc.get("services") or {}).items():
        env = svc.get("environment") or {}
        keys = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        out += [(k, f"{path.name} service {name}") for k in keys]
    return out


def env_names_k8s(directory: Path) -> list[tuple[str, str]]:
    out = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in load_all(path):
            kind = doc.get("kind")
            where = f"{path.name} {kind}/{doc.get('metadata', {}).get('name')}"
            if kind == "ConfigMap":
                out += [(k, where) for k in (doc.get("data") or {})]
            elif kind == "Secret":
                out += [(k, where) for k in (doc.get("stringData") or {})]
                out += [(k, where) for k in (doc.get("data") or {})]
            for pod in pod_specs(doc):
                for c in pod.get("containers", []) + pod.get("initContainers", []):
                    out += [(e["name"], where) for e in c.get("env", [])]
    return out


def env_names_dockerfile(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.startswith("ENV "):
            out += [(k, path.name) for k in re.findall(r"(\w+)=", line)]
    return out


def cmd_settings(root: Path) -> None:
    known = known_settings(root)
    seen = []
    seen += env_names_dockerfile(root / "Dockerfile")
    seen += env_names_dockerfile(root / "Dockerfile.cuda")
    seen += env_names_compose(root / "deploy/docker-compose.yml")
    seen += env_names_k8s(root / "deploy/k8s")
    checked = 0
    for name, where in seen:
        if not name.startswith("MEDVISION_"):
            continue
        checked += 1
        if name in known:
            continue
        if name in PENDING_SETTINGS:
            continue
        problem(f"{where}: {name} is not a MedVision setting (server/src/settings.rs)")
    for name in sorted(PENDING_SETTINGS - known):
        print(f"  note: {name} is used but not yet in server/src/settings.rs (being added)")
    print(f"  {checked} MEDVISION_* variables checked against {len(known)} known names")
    finish("settings")


# ------------------------------------------------------------ dockerfiles


def stage_steps(text: str, header: str) -> list[str]:
    """The instructions of the stage opened by `header`, up to WORKDIR /src."""
    lines = text.replace("\\\n", " ").splitlines()
    start = lines.index(header)
    out = []
    for line in lines[start + 1:]:
        if line.startswith("WORKDIR /src"):
            return out
        if line.strip() and not line.startswith("#"):
            out.append(" ".join(line.split()))
    raise SystemExit(f"no WORKDIR /src after {header!r}")


def cmd_dockerfiles(root: Path) -> None:
    lock = (root / "Cargo.lock").read_text()
    m = re.search(r'^name = "wasm-bindgen"\nversion = "([^"]+)"', lock, re.M)
    wasm_bindgen = m.group(1) if m else None
    setup = (root / "scripts/setup.sh").read_text()
    m = re.search(r"cargo install cargo-leptos@([0-9.]+)", setup)
    leptos = m.group(1) if m else None
    for name in ("Dockerfile", "Dockerfile.cuda"):
        text = (root / name).read_text()
        args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
        if args.get("WASM_BINDGEN_VERSION") != wasm_bindgen:
            problem(f"{name}: ARG WASM_BINDGEN_VERSION={args.get('WASM_BINDGEN_VERSION')}, "
                    f"Cargo.lock has wasm-bindgen {wasm_bindgen}")
        if args.get("CARGO_LEPTOS_VERSION") != leptos:
            problem(f"{name}: ARG CARGO_LEPTOS_VERSION={args.get('CARGO_LEPTOS_VERSION')}, "
                    f"scripts/setup.sh installs {leptos}")
    plain = stage_steps((root / "Dockerfile").read_text(), "FROM rust:1.95-bookworm AS builder")
    cuda = stage_steps((root / "Dockerfile.cuda").read_text(), "FROM rust:1.95-bookworm AS site")
    if plain != cuda:
        problem("Dockerfile.cuda's site stage no longer repeats Dockerfile's builder steps "
                "(the tools would be built twice)")
    print(f"  wasm-bindgen {wasm_bindgen}, cargo-leptos {leptos}; {len(plain)} shared tool steps")
    finish("dockerfiles")


# -------------------------------------------------------------------- k8s


def pod_specs(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return [spec.get("template", {}).get("spec", {})]
    if kind == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    if kind == "Pod":
        return [spec]
    return []


def schema_validate(docs: list[tuple[str, dict]], versions: list[str]) -> None:
    import kubernetes_validate.utils as kv

    for version in versions:
        n = 0
        for where, doc in docs:
            try:
                kv.validate(doc, version, strict=True)
                n += 1
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problem(f"{where}: {path}: {e.message} (Kubernetes {version})")
            except kv.SchemaNotFoundError:
                problem(f"{where}: no {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {version}")
            except kv.VersionNotSupportedError:
                raise SystemExit(f"kubernetes-validate has no schemas for {version}")
        print(f"  {n}/{len(docs)} resources valid against Kubernetes {version} (strict)")


def cmd_k8s(directory: Path, versions: list[str]) -> None:
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = kust.get("resources") or []
    files = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    for r in listed:
        if not (directory / r).is_file():
            problem(f"kustomization.yaml lists {r}, which does not exist")
    for f in files:
        if f not in listed:
            problem(f"{f} is not listed in kustomization.yaml resources")

    docs: list[tuple[str, dict]] = []
    for f in files:
        for doc in load_all(directory / f):
            name = doc.get("metadata", {}).get("name")
            docs.append((f"{f} {doc.get('kind')}/{name}", doc))
    schema_validate(docs, versions)

    namespace = kust.get("namespace")
    by_kind: dict[str, set[str]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc.get("kind"), set()).add(doc["metadata"]["name"])
    image_names = {i["name"] for i in kust.get("images") or []}
    templates = []  # (where, labels) of pod templates

    for where, doc in docs:
        kind = doc.get("kind")
        meta = doc.get("metadata", {})
        if kind != "Namespace" and meta.get("namespace") != namespace:
            problem(f"{where}: namespace {meta.get('namespace')!r}, kustomization says {namespace!r}")
        for pod in pod_specs(doc):
            templates.append((where, doc["spec"].get("template", {}).get("metadata", {}).get("labels", {})))
            # Kubernetes injects <SERVICE>_SERVICE_HOST etc. for every Service;
            # for Services named medvision-* those are MEDVISION_* variables,
            # which MedVision refuses as unknown settings.
            if pod.get("enableServiceLinks") is not False:
                problem(f"{where}: enableServiceLinks must be false (MEDVISION_* service variables)")
            if pod.get("automountServiceAccountToken") is not False:
                problem(f"{where}: automountServiceAccountToken should be false (no API access needed)")
            psc = pod.get("securityContext", {})
            if psc.get("runAsNonRoot") is not True:
                problem(f"{where}: pod securityContext.runAsNonRoot must be true")
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            for v in vols.values():
                pvc = v.get("persistentVolumeClaim", {}).get("claimName")
                if pvc and pvc not in by_kind.get("PersistentVolumeClaim", set()):
                    problem(f"{where}: volume {v['name']} claims {pvc}, which is not defined")
            for c in pod.get("containers", []):
                cw = f"{where} container {c['name']}"
                if c.get("image") not in image_names:
                    problem(f"{cw}: image {c.get('image')!r} has no entry in kustomization images")
                sc = c.get("securityContext", {})
                if sc.get("readOnlyRootFilesystem") is not True:
                    problem(f"{cw}: readOnlyRootFilesystem must be true")
                if sc.get("allowPrivilegeEscalation") is not False:
                    problem(f"{cw}: allowPrivilegeEscalation must be false")
                mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                if "/tmp" not in mounts:
                    problem(f"{cw}: no writable /tmp (the root filesystem is read-only)")
                for m in c.get("volumeMounts", []):
                    if m["name"] not in vols:
                        problem(f"{cw}: mounts undefined volume {m['name']}")
                for src in c.get("envFrom", []):
                    for key, kind_ in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                        ref = src.get(key, {}).get("name")
                        if ref and ref not in by_kind.get(kind_, set()):
                            problem(f"{cw}: {key} {ref} is not defined")
                if "memory" not in c.get("resources", {}).get("limits", {}):
                    problem(f"{cw}: no memory limit")
                ports = {p.get("name") for p in c.get("ports", [])}
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    p = c.get(probe) or {}
                    port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        problem(f"{cw}: {probe} uses port {port!r}, not a named container port")

    def matching(selector: dict) -> list[str]:
        return [w for w, labels in templates if all(labels.get(k) == v for k, v in selector.items())]

    for where, doc in docs:
        kind = doc.get("kind")
        spec = doc.get("spec", {})
        if kind == "Service":
            if not matching(spec.get("selector", {})):
                problem(f"{where}: selector matches no pod template")
        if kind == "PodDisruptionBudget":
            if not matching(spec.get("selector", {}).get("matchLabels", {})):
                problem(f"{where}: selector matches no pod template")
        if kind in ("Deployment",):
            sel = spec["selector"]["matchLabels"]
            labels = spec["template"]["metadata"].get("labels", {})
            if any(labels.get(k) != v for k, v in sel.items()):
                problem(f"{where}: selector does not match its own template labels")
        if kind == "HorizontalPodAutoscaler":
            target = spec["scaleTargetRef"]
            if target["name"] not in by_kind.get(target["kind"], set()):
                problem(f"{where}: scale target {target['kind']}/{target['name']} is not defined")
        if kind == "Ingress":
            services = {d["metadata"]["name"]: d for _, d in docs if d.get("kind") == "Service"}
            for rule in spec.get("rules", []):
                for p in rule.get("http", {}).get("paths", []):
                    svc = p["backend"]["service"]
                    if svc["name"] not in services:
                        problem(f"{where}: backend service {svc['name']} is not defined")
                        continue
                    port_names = {pp.get("name") for pp in services[svc["name"]]["spec"]["ports"]}
                    if "name" in svc["port"] and svc["port"]["name"] not in port_names:
                        problem(f"{where}: backend port {svc['port']['name']} not on {svc['name']}")
    print(f"  {len(docs)} resources in {len(files)} files cross-checked")
    finish("k8s")


def cmd_rendered(path: Path, versions: list[str]) -> None:
    docs = [(f"rendered {d.get('kind')}/{d['metadata']['name']}", d) for d in load_all(path)]
    if not docs:
        problem("kustomize rendered nothing")
    schema_validate(docs, versions)
    finish("rendered")


# ---------------------------------------------------------------- compose

VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([:]?[-?+][^}]*)?\}")


def cmd_compose(path: Path, env_template: Path) -> None:
    text = path.read_text()
    doc = yaml.safe_load(text)
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        profiled = bool(svc.get("profiles"))
        deps = svc.get("depends_on") or {}
        deps = deps if isinstance(deps, dict) else {d: {} for d in deps}
        for dep, cond in deps.items():
            if dep not in services:
                problem(f"service {name} depends on unknown service {dep}")
                continue
            if not profiled and services[dep].get("profiles"):
                problem(f"service {name} (always on) depends on {dep}, which only runs in a profile")
            c = (cond or {}).get("condition")
            if c == "service_healthy":
                hc = services[dep].get("healthcheck") or {}
                image_hc = services[dep].get("build") is not None
                if (not hc or hc.get("disable")) and not image_hc:
                    problem(f"service {name} waits for {dep} to be healthy, but {dep} has no healthcheck")
            if c == "service_completed_successfully" and services[dep].get("restart") not in ("no", None):
                problem(f"service {name} waits for {dep} to complete, but {dep} restarts ({services[dep]['restart']})")
        for v in svc.get("volumes") or []:
            src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if src and not src.startswith((".", "/", "$", "~")) and src not in volumes:
                problem(f"service {name} mounts undeclared volume {src}")
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", env_template.read_text(), re.M))
    used = {}
    for m in VAR.finditer(text):
        used.setdefault(m.group(1), m.group(2) or "")
    for var, mod in sorted(used.items()):
        if var not in documented:
            problem(f"${{{var}}} is not documented in {env_template.name}")
    required = sorted(v for v, mod in used.items() if mod.startswith(":?"))
    print(f"  {len(services)} services, {len(volumes)} volumes; {len(used)} variables, required: {', '.join(required)}")
    finish("compose")


# ------------------------------------------------------------ nginx smoke


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream(http.server.BaseHTTPRequestHandler):
    """Echoes what it received, as MedVision would see it."""

    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Upstream.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.close_connection = True
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def cmd_nginx_smoke(nginx: str, tested_conf: Path) -> None:
    """tested_conf: the copy of deploy/nginx.conf that `nginx -t` passed
    (certificates, logs and upstream already substituted)."""
    work = Path(tempfile.mkdtemp(prefix="nginx-smoke-"))
    up_port, http_port, https_port = free_port(), free_port(), free_port()
    conf = tested_conf.read_text()
    conf = conf.replace("server 127.0.0.1:3000;", f"server 127.0.0.1:{up_port};")
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;", ""),
    ):
        if old not in conf:
            problem(f"nginx.conf no longer has {old!r}; update the smoke test")
        conf = conf.replace(old, new)
    (work / "medvision.conf").write_text(conf)
    (work / "nginx.conf").write_text(
        f"pid {work}/nginx.pid;\nerror_log {work}/error.log warn;\ndaemon off;\nmaster_process off;\n"
        f"events {{}}\nhttp {{\n  client_body_temp_path {work}/body;\n  proxy_temp_path {work}/proxy;\n"
        f"  fastcgi_temp_path {work}/fastcgi;\n  uwsgi_temp_path {work}/uwsgi;\n  scgi_temp_path {work}/scgi;\n"
        f"  include {work}/medvision.conf;\n}}\n"
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", up_port), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc = subprocess.Popen([nginx, "-p", f"{work}/", "-c", f"{work}/nginx.conf", "-e", f"{work}/error.log"])
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            problem("nginx did not start listening: " + (work / "error.log").read_text()[-500:])
            finish("nginx smoke")

        # Plain HTTP redirects to HTTPS, path and query kept.
        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        c.request("GET", "/cases?q=1", headers={"Host": "medvision.test"})
        r = c.getresponse()
        loc = r.getheader("Location")
        if r.status != 301 or loc != "https://medvision.test/cases?q=1":
            problem(f"http: expected 301 to https://medvision.test/cases?q=1, got {r.status} {loc}")

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        # TLS 1.2 and 1.3 accepted, 1.1 refused.
        for version, ok in ((ssl.TLSVersion.TLSv1_3, True), (ssl.TLSVersion.TLSv1_2, True),
                            (ssl.TLSVersion.TLSv1_1, False)):
            vctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            vctx.check_hostname = False
            vctx.verify_mode = ssl.CERT_NONE
            try:
                vctx.minimum_version = version
                vctx.maximum_version = version
                if version == ssl.TLSVersion.TLSv1_1:
                    vctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                with socket.create_connection(("127.0.0.1", https_port), timeout=5) as s:
                    with vctx.wrap_socket(s) as t:
                        got = t.version()
                accepted = True
            except (ssl.SSLError, OSError, ValueError):
                accepted, got = False, None
            if accepted != ok:
                problem(f"TLS {version.name}: {'accepted' if accepted else 'refused'} ({got}), expected the opposite")

        # A request as MedVision receives it.
        Upstream.seen.clear()
        c = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=5, context=ctx)
        c.request("GET", "/healthz", headers={"Host": "medvision.test:8443", "X-Forwarded-For": "6.6.6.6"})
        r = c.getresponse()
        r.read()
        if r.status != 200 or not Upstream.seen:
            problem(f"https GET /healthz: {r.status}, upstream saw {len(Upstream.seen)} request(s)")
        else:
            h = Upstream.seen[-1]
            if h.get("host") != "medvision.test:8443":
                problem(f"Host passed as {h.get('host')!r}, not with its port (websocket origin check)")
            if h.get("x-forwarded-proto") != "https":
                problem(f"X-Forwarded-Proto {h.get('x-forwarded-proto')!r}")
            xff = [p.strip() for p in h.get("x-forwarded-for", "").split(",")]
            if xff[-1] != "127.0.0.1":
                problem(f"right-most X-Forwarded-For is {xff[-1]!r}, not the client (127.0.0.1)")
            if h.get("connection", "").lower() == "close" or "upgrade" in h.get("connection", "").lower():
                problem(f"plain request sent Connection: {h.get('connection')!r} (keep-alive lost)")
            if r.getheader("Strict-Transport-Security"):
                problem("nginx added Strict-Transport-Security (MedVision sends its own)")

        # Websocket upgrade reaches the upstream and comes back as 101.
        Upstream.seen.clear()
        with socket.create_connection(("127.0.0.1", https_port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                t.sendall(
                    b"GET /api/v1/cases/abc/chat HTTP/1.1\r\nHost: medvision.test\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n\r\n"
                )
                status = t.recv(200).split(b"\r\n", 1)[0]
        h = Upstream.seen[-1] if Upstream.seen else {}
        if b" 101 " not in status + b" " or h.get("upgrade", "").lower() != "websocket":
            problem(f"websocket: got {status!r}, upstream saw Upgrade {h.get('upgrade')!r}")
        print(f"  redirect, TLS 1.2/1.3 only, forwarded headers and websocket upgrade checked on ports "
              f"{http_port}/{https_port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()
    finish("nginx smoke")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "settings":
        cmd_settings(Path(args[0]))
    elif cmd == "k8s":
        cmd_k8s(Path(args[0]), args[1:])
    elif cmd == "rendered":
        cmd_rendered(Path(args[0]), args[1:])
    elif cmd == "compose":
        cmd_compose(Path(args[0]), Path(args[1]))
    elif cmd == "dockerfiles":
        cmd_dockerfiles(Path(args[0]))
    elif cmd == "nginx-smoke":
        cmd_nginx_smoke(args[0], Path(args[1]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
