"""Checks docker-compose.yml without a container engine, as `docker compose config -q` would:
the file parses as YAML, `${VAR}` / `${VAR:-default}` interpolations are well formed, the
result validates against the Compose Specification's JSON schema (scripts/compose/compose-spec.json,
compose-spec/compose-spec @ 170098b, Apache-2.0), and what the schema cannot say: services named
in `depends_on` exist, `build` contexts exist, and no port is published on every interface
(ragwall's proxy must not face the network without an API key; see the README).

    .venv/bin/python scripts/compose_check.py docker-compose.yml
"""

import json
import os
import re
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
VAR = re.compile(r"\$\{([^}]*)\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*((:?[-?+]).*)?", re.S)


def interpolate(node, errors, where="$"):
    """Compose's interpolation: `$$` escapes, `${NAME}`, `${NAME:-default}`; anything else is an error."""
    if isinstance(node, dict):
        return {k: interpolate(v, errors, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, errors, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def sub(m):
        body = m.group(1)
        if not NAME.fullmatch(body):
            errors.append(f"{where}: bad interpolation ${{{body}}}")
            return ""
        name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", body).group(0)
        rest = body[len(name):]
        value = os.environ.get(name)
        if rest.startswith((":-", "-")):
            default = rest.split("-", 1)[1]
            return value if value else default
        return value or ""

    return VAR.sub(sub, node.replace("$$", "\0")).replace("\0", "$")


def check(path):
    errors = []
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        return [f"{path}: not a mapping"]
    doc = interpolate(doc, errors)
    with open(os.path.join(HERE, "compose", "compose-spec.json"), encoding="utf-8") as f:
        schema = json.load(f)
    for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str):
        errors.append(f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}")
    services = doc.get("services") or {}
    base = os.path.dirname(os.path.abspath(path))
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                errors.append(f"services.{name}.depends_on: no service {dep!r}")
        build = svc.get("build")
        ctx = build if isinstance(build, str) else (build or {}).get("context") if build else None
        if ctx and not os.path.isdir(os.path.join(base, ctx)):
            errors.append(f"services.{name}.build: context {ctx!r} does not exist")
        for port in svc.get("ports") or []:
            spec = str(port if not isinstance(port, dict) else port.get("host_ip", "") + ":" + str(port.get("published", "")))
            parts = spec.split(":")
            if len(parts) < 3 or parts[0] in ("", "0.0.0.0", "[::]", "::"):
                errors.append(f"services.{name}.ports: {port!r} is published on every interface; bind a host address (127.0.0.1:…)")
    return errors


def main():
    paths = sys.argv[1:] or ["docker-compose.yml"]
    bad = 0
    for p in paths:
        for e in check(p):
            print(f"{p}: {e}", file=sys.stderr)
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
