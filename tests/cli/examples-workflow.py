#!/usr/bin/python3
"""Check a GitHub Actions workflow's structure, and run it locally as a runner would.

    examples-workflow.py check WORKFLOW
    examples-workflow.py run WORKFLOW --event push|pull_request --ref REF --workspace DIR
        --artifacts DIR [--secret NAME=VALUE]... [--env NAME=VALUE]...

check: the workflow parses (PyYAML), has its triggers, jobs and steps with the keys GitHub
accepts, every step a run or a uses of a known action at a pinned major version, needs and
steps.ID references that exist, every ${{ }} expression in the subset evaluated here, and
every run script valid bash.

run: the jobs in the order of their needs, each step's if evaluated (success() implied, as
GitHub does), its ${{ }} expressions substituted, run with bash -eo pipefail in the workspace
with GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY files read back as a runner
does.  Steps whose script says "examples-test: skip" are not run (they need the network).  The
actions are played by local stand-ins: checkout and cache do nothing (the test made the
workspace), upload-artifact and download-artifact copy through --artifacts, and the JUnit
reporter parses its report.  One line per step on stdout; exit 1 when a job failed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import yaml

SKIP_MARK = "examples-test: skip"
ACTIONS = {
    "actions/checkout": "v4",
    "actions/cache": "v4",
    "actions/upload-artifact": "v4",
    "actions/download-artifact": "v4",
    "mikepenz/action-junit-report": "v4",
}
STEP_KEYS = {"name", "id", "if", "uses", "with", "run", "env", "shell",
             "working-directory", "continue-on-error", "timeout-minutes"}
JOB_KEYS = {"name", "runs-on", "needs", "if", "steps", "permissions", "timeout-minutes", "env",
            "outputs", "strategy", "services", "container", "concurrency", "defaults",
            "environment", "continue-on-error"}
TOP_KEYS = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
CONTEXTS = {"github", "env", "secrets", "steps", "runner", "needs", "job", "inputs", "vars"}
FUNCS = {"success", "failure", "always", "cancelled", "startsWith", "endsWith", "contains",
         "format", "toJSON", "fromJSON", "hashFiles"}
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


class Bad(Exception):
    pass


# --- expressions -------------------------------------------------------------------------------
TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|"
                   r"(?P<op>==|!=|&&|\|\||<=|>=|[!()<>,\[\]])|"
                   r"(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_*][A-Za-z0-9_-]*)*))")


def tokenize(text):
    out, i = [], 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = TOKEN.match(text, i)
        if not m:
            raise Bad(f"expression '{text}': cannot read '{text[i:]}'")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        i = m.end()
    return out


class Expr:
    """GitHub's expression syntax, the part workflows use: literals, contexts, ! && || == !=,
    and the status and string functions.  ctx None: only check that it parses."""

    def __init__(self, text, ctx):
        self.toks, self.i, self.ctx, self.text = tokenize(text), 0, ctx, text
        self.status_funcs = set()

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, want=None):
        t = self.peek()
        if t[0] is None or (want and t[1] != want):
            raise Bad(f"expression '{self.text}': expected {want or 'more'}")
        self.i += 1
        return t

    def parse(self):
        v = self.or_()
        if self.i != len(self.toks):
            raise Bad(f"expression '{self.text}': unexpected '{self.peek()[1]}'")
        return v

    def or_(self):
        v = self.and_()
        while self.peek()[1] == "||":
            self.take()
            w = self.and_()
            v = v if truthy(v) else w
        return v

    def and_(self):
        v = self.unary()
        while self.peek()[1] == "&&":
            self.take()
            w = self.unary()
            v = w if truthy(v) else v
        return v

    def unary(self):
        if self.peek()[1] == "!":
            self.take()
            return not truthy(self.unary())
        v = self.primary()
        if self.peek()[1] in ("==", "!="):
            op = self.take()[1]
            w = self.primary()
            eq = norm(v) == norm(w)
            return eq if op == "==" else not eq
        return v

    def primary(self):
        kind, val = self.take()
        if kind == "str":
            return val[1:-1].replace("''", "'")
        if kind == "num":
            return float(val)
        if val == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind != "name":
            raise Bad(f"expression '{self.text}': unexpected '{val}'")
        if val in ("true", "false"):
            return val == "true"
        if val == "null":
            return None
        if self.peek()[1] == "(":
            self.take()
            args = []
            while self.peek()[1] != ")":
                args.append(self.or_())
                if self.peek()[1] == ",":
                    self.take()
            self.take(")")
            return self.call(val, args)
        parts = val.split(".")
        if parts[0] not in CONTEXTS:
            raise Bad(f"expression '{self.text}': unknown context '{parts[0]}'")
        if self.ctx is None:
            return ""
        v = self.ctx.get(parts[0], {})
        for p in parts[1:]:
            v = v.get(p) if isinstance(v, dict) else None
        return v

    def call(self, f, args):
        if f not in FUNCS:
            raise Bad(f"expression '{self.text}': unknown function '{f}'")
        if f in ("success", "failure", "always", "cancelled"):
            self.status_funcs.add(f)
            if self.ctx is None:
                return True
            failed = self.ctx["job"]["status"] == "failure"
            return {"success": not failed, "failure": failed, "always": True,
                    "cancelled": False}[f]
        s = [str(a if a is not None else "") for a in args]
        if f == "startsWith":
            return s[0].lower().startswith(s[1].lower())
        if f == "endsWith":
            return s[0].lower().endswith(s[1].lower())
        if f == "contains":
            return s[1].lower() in s[0].lower()
        if f == "format":
            return re.sub(r"\{(\d+)\}", lambda m: s[int(m.group(1)) + 1], s[0])
        if f == "toJSON":
            return json.dumps(args[0])
        if f == "fromJSON":
            return json.loads(s[0])
        return "0" * 64  # hashFiles: a stand-in digest


def truthy(v):
    return v not in (None, False, 0, 0.0, "")


def norm(v):
    return v.lower() if isinstance(v, str) else v


def text_of(v):
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def substitute(s, ctx):
    return EXPR.sub(lambda m: text_of(Expr(m.group(1), ctx).parse()), str(s))


def condition(cond, ctx):
    """A job's or step's if: true when it should run."""
    if cond is None or cond == "":
        return ctx["job"]["status"] != "failure"
    if isinstance(cond, bool):
        return cond and ctx["job"]["status"] != "failure"
    text = str(cond).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    if m:
        text = m.group(1)
    e = Expr(text, ctx)
    v = truthy(e.parse())
    if not e.status_funcs:  # GitHub adds success() && ...
        v = v and ctx["job"]["status"] != "failure"
    return v


# --- structure ---------------------------------------------------------------------------------
def expressions_in(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from expressions_in(x)
    elif isinstance(v, list):
        for x in v:
            yield from expressions_in(x)
    elif isinstance(v, str):
        for m in EXPR.finditer(v):
            yield m.group(1)


def load(path):
    with open(path, encoding="utf-8") as f:
        wf = yaml.safe_load(f)
    if not isinstance(wf, dict):
        raise Bad("the workflow is not a mapping")
    if True in wf:  # YAML 1.1 reads the key on as true
        wf["on"] = wf.pop(True)
    return wf


def check(path):
    wf = load(path)
    problems = []
    for k in wf:
        if k not in TOP_KEYS:
            problems.append(f"unknown top-level key '{k}'")
    for k in ("name", "on", "jobs"):
        if k not in wf:
            problems.append(f"no '{k}'")
    on = wf.get("on") or {}
    for ev in ("push", "pull_request"):
        if ev not in on:
            problems.append(f"not run on {ev}")
    if not any(str(t).startswith("v") for t in ((on.get("push") or {}).get("tags") or [])):
        problems.append("not run on a version tag")
    jobs = wf.get("jobs") or {}
    if not jobs:
        problems.append("no jobs")
    nsteps = 0
    for jname, job in jobs.items():
        for k in job:
            if k not in JOB_KEYS:
                problems.append(f"job {jname}: unknown key '{k}'")
        if "runs-on" not in job:
            problems.append(f"job {jname}: no runs-on")
        needs = job.get("needs") or []
        for n in [needs] if isinstance(needs, str) else needs:
            if n not in jobs:
                problems.append(f"job {jname}: needs unknown job '{n}'")
        ids = []
        steps = job.get("steps") or []
        if not steps:
            problems.append(f"job {jname}: no steps")
        for i, st in enumerate(steps):
            where = f"job {jname} step {i + 1} ({st.get('name', st.get('uses', ''))})"
            nsteps += 1
            for k in st:
                if k not in STEP_KEYS:
                    problems.append(f"{where}: unknown key '{k}'")
            if ("run" in st) == ("uses" in st):
                problems.append(f"{where}: needs exactly one of run and uses")
            if "uses" in st:
                action, _, version = st["uses"].partition("@")
                if ACTIONS.get(action) != version:
                    problems.append(f"{where}: unknown action or version '{st['uses']}'")
            if "with" in st and "uses" not in st:
                problems.append(f"{where}: with but no uses")
            if "run" in st:
                r = subprocess.run(["bash", "-n"], input=st["run"], text=True,
                                   capture_output=True)
                if r.returncode:
                    problems.append(f"{where}: bash -n: {r.stderr.strip()}")
                if EXPR.search(st["run"]):
                    problems.append(f"{where}: ${{{{ }}}} inside a script (pass it in env)")
            for e in expressions_in(st):
                for ref in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", e):
                    if ref not in ids:
                        problems.append(f"{where}: steps.{ref} is not an earlier step")
            if "if" in st:
                for ref in re.findall(r"steps\.([A-Za-z0-9_-]+)\.", str(st["if"])):
                    if ref not in ids:
                        problems.append(f"{where}: steps.{ref} is not an earlier step")
            if "id" in st:
                if st["id"] in ids:
                    problems.append(f"{where}: id '{st['id']}' twice")
                ids.append(st["id"])
    for e in list(expressions_in(wf)) + [str(j.get("if", "")) for j in jobs.values()] + \
            [str(s.get("if", "")) for j in jobs.values() for s in j.get("steps") or []]:
        e = re.sub(r"^\s*\$\{\{(.*)\}\}\s*$", r"\1", e, flags=re.S)
        if e.strip():
            try:
                Expr(e, None).parse()
            except Bad as why:
                problems.append(str(why))
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"ok: {len(jobs)} jobs, {nsteps} steps")
    return 0


# --- running -----------------------------------------------------------------------------------
def read_kv_file(path):
    """GITHUB_OUTPUT / GITHUB_ENV: NAME=VALUE lines and NAME<<DELIM heredocs."""
    out = {}
    if not os.path.exists(path):
        return out
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            val = []
            while i < len(lines) and lines[i] != delim:
                val.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(val)
        elif "=" in line:
            name, val = line.split("=", 1)
            out[name] = val
    return out


def copy_into(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        shutil.copy2(src, dst)


def run_action(st, w, ws, artifacts):
    """The stand-ins for the actions; returns (ok, outputs, note)."""
    action = st["uses"].partition("@")[0]
    if action == "actions/checkout":
        return True, {}, "the test made the workspace"
    if action == "actions/cache":
        return True, {"cache-hit": "false"}, "no cache"
    if action == "actions/upload-artifact":
        # As the action does: the paths are stored relative to their least common ancestor.
        dest = os.path.join(artifacts, w["name"])
        srcs = [os.path.join(ws, p.strip()) for p in str(w["path"]).split("\n") if p.strip()]
        srcs = [p for p in srcs if os.path.exists(p)]
        if not srcs:
            ok = w.get("if-no-files-found", "warn") != "error"
            return ok, {}, "no files to upload"
        root = os.path.commonpath([p if os.path.isdir(p) else os.path.dirname(p)
                                   for p in srcs])
        for p in srcs:
            copy_into(p, os.path.join(dest, os.path.relpath(p, root)))
        return True, {}, f"{len(srcs)} paths as {w['name']}"
    if action == "actions/download-artifact":
        src = os.path.join(artifacts, w["name"])
        if not os.path.isdir(src):
            return False, {}, f"no artifact {w['name']}"
        copy_into(src, os.path.join(ws, w.get("path", ".")))
        return True, {}, f"{w['name']} into {w.get('path', '.')}"
    if action == "mikepenz/action-junit-report":
        n = 0
        for p in str(w["report_paths"]).split(","):
            f = os.path.join(ws, p.strip())
            root = ET.parse(f).getroot()
            n += len(list(root.iter("testcase")))
        if n == 0:
            return False, {}, "no test cases in the report"
        return True, {}, f"{n} test cases"
    return False, {}, f"no stand-in for {action}"


def run(args):
    wf = load(args.workflow)
    ws = os.path.abspath(args.workspace)
    artifacts = os.path.abspath(args.artifacts)
    os.makedirs(artifacts, exist_ok=True)
    ref = args.ref
    ref_name = ref.split("/", 2)[2] if ref.count("/") >= 2 else ref
    github = {
        "event_name": args.event, "ref": ref, "ref_name": ref_name, "sha": "0" * 40,
        "workspace": ws, "repository": "example/support-bot",
        "repository_owner": "example", "actor": "octocat", "token": "ghs_local",
        "workflow_ref": "example/support-bot/.github/workflows/llmops-eval.yml@" + ref,
    }
    secrets = dict(s.split("=", 1) for s in args.secret)
    overrides = dict(s.split("=", 1) for s in args.env)
    base_ctx = {"github": github, "secrets": secrets, "runner": {"os": "Linux"},
                "job": {"status": "success"}, "steps": {}, "env": {}, "needs": {},
                "vars": {}, "inputs": {}}
    wenv = {}
    for k, v in (wf.get("env") or {}).items():
        wenv[k] = overrides[k] if k in overrides else substitute(v, base_ctx)
    results, failed = {}, False
    jobs = wf["jobs"]
    order, pending = [], list(jobs)
    while pending:
        for j in pending:
            needs = jobs[j].get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if all(n in order for n in needs):
                order.append(j)
                pending.remove(j)
                break
        else:
            raise Bad("needs form a cycle")
    for jname in order:
        job = jobs[jname]
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        temp = tempfile.mkdtemp(prefix=f"runner-{jname}-", dir=args.artifacts)
        summary = os.path.join(temp, "step-summary.md")
        open(summary, "w").close()
        ctx = dict(base_ctx, job={"status": "success"}, steps={}, env=dict(wenv),
                   runner={"os": "Linux", "temp": temp},
                   needs={n: {"result": results[n]} for n in needs})
        if any(results[n] != "success" for n in needs):
            ctx["job"]["status"] = "failure"
        if not condition(job.get("if"), ctx):
            results[jname] = "skipped"
            print(f"job {jname}: skipped")
            continue
        jenv = dict(wenv)
        for k, v in (job.get("env") or {}).items():
            jenv[k] = substitute(v, dict(ctx, env=jenv))
        path_add, extra_env = [], {}
        for i, st in enumerate(job["steps"]):
            name = st.get("name") or st.get("uses") or f"step {i + 1}"
            senv = dict(jenv, **extra_env)
            sctx = dict(ctx, env=senv)
            if not condition(st.get("if"), sctx):
                print(f"job {jname}: {name}: skipped (if)")
                continue
            for k, v in (st.get("env") or {}).items():
                senv[k] = substitute(v, dict(ctx, env=senv))
            outputs, ok, note = {}, True, ""
            if "uses" in st:
                w = {k: substitute(v, sctx) for k, v in (st.get("with") or {}).items()}
                ok, outputs, note = run_action(st, w, ws, artifacts)
                print(f"job {jname}: {name}: action, {'ok' if ok else 'failed'}: {note}")
            elif SKIP_MARK in st["run"]:
                print(f"job {jname}: {name}: not run ({SKIP_MARK})")
                continue
            else:
                out_f = os.path.join(temp, f"output-{i}")
                env_f = os.path.join(temp, f"env-{i}")
                path_f = os.path.join(temp, f"path-{i}")
                for f in (out_f, env_f, path_f):
                    open(f, "w").close()
                env = dict(os.environ)
                env.update(senv)
                env["PATH"] = ":".join(path_add[::-1] + [os.environ["PATH"]])
                env.update({
                    "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws,
                    "GITHUB_REF": ref, "GITHUB_REF_NAME": ref_name,
                    "GITHUB_EVENT_NAME": args.event, "GITHUB_SHA": github["sha"],
                    "GITHUB_REPOSITORY": github["repository"],
                    "GITHUB_WORKFLOW_REF": github["workflow_ref"],
                    "GITHUB_OUTPUT": out_f, "GITHUB_ENV": env_f, "GITHUB_PATH": path_f,
                    "GITHUB_STEP_SUMMARY": summary, "RUNNER_TEMP": temp,
                    "RUNNER_OS": "Linux"})
                cwd = os.path.join(ws, st.get("working-directory", "."))
                script = os.path.join(temp, f"step-{i}.sh")
                with open(script, "w") as f:
                    f.write(st["run"])
                r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script],
                                   cwd=cwd, env=env)
                ok = r.returncode == 0
                outputs = read_kv_file(out_f)
                extra_env.update(read_kv_file(env_f))
                path_add += [p for p in open(path_f).read().split("\n") if p]
                print(f"job {jname}: {name}: ran, exit {r.returncode}")
            if "id" in st:
                ctx["steps"][st["id"]] = {"outputs": outputs,
                                          "outcome": "success" if ok else "failure"}
            if not ok and not st.get("continue-on-error"):
                ctx["job"]["status"] = "failure"
        results[jname] = ctx["job"]["status"]
        failed |= results[jname] == "failure"
        shutil.copy(summary, os.path.join(artifacts, f"{jname}-step-summary.md"))
        print(f"job {jname}: {results[jname]}")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("workflow")
    r = sub.add_parser("run")
    r.add_argument("workflow")
    r.add_argument("--event", required=True)
    r.add_argument("--ref", required=True)
    r.add_argument("--workspace", required=True)
    r.add_argument("--artifacts", required=True)
    r.add_argument("--secret", action="append", default=[])
    r.add_argument("--env", action="append", default=[])
    a = ap.parse_args()
    try:
        return check(a.workflow) if a.cmd == "check" else run(a)
    except (Bad, yaml.YAMLError, OSError, KeyError, ET.ParseError) as why:
        print(f"examples-workflow: {why}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
