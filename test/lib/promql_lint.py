# test/lib/promql_lint.py
# Checks the Grafana dashboard and Prometheus alert rules shipped in packaging/: files parse, every PromQL expression is
# well formed and names only metrics and labels tenancyd exports (SPEC.md "/metrics"), and the required panels and
# alerts exist. Usage: promql_lint.py DASHBOARD.json ALERTS.yml [DAEMON_SOURCE_DIR]; exit 1 and a list of problems.
import json
import os
import re
import sys

import yaml

# What tenancyd exports (SPEC.md, "GET /metrics"), plus Prometheus' own per-target `up`.
HISTOGRAMS = {"tenancy_tenant_response_seconds"}
METRICS = {"tenancy_tenant_requests_total", "tenancy_tenant_active_users", "tenancy_tenant_quota_utilization_percent",
           "up"} | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
LABELS = {"tenant_id", "endpoint", "method", "status", "plan", "quota_type", "le", "job", "instance"}

AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "group", "quantile", "stddev", "stdvar",
                "count_values"}
FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "absent",
             "absent_over_time", "vector", "scalar", "time", "timestamp", "round", "abs", "ceil", "floor", "clamp",
             "clamp_max", "clamp_min", "label_replace", "label_join", "sort", "sort_desc", "sum_over_time",
             "avg_over_time", "max_over_time", "min_over_time", "count_over_time", "last_over_time", "changes",
             "resets", "predict_linear"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
BINARY_KEYWORDS = {"and", "or", "unless"}
OTHER_KEYWORDS = {"offset", "bool", "inf", "nan"}
DURATION = re.compile(r"^([0-9]+(ms|[smhdwy]))+$")
TOKEN = re.compile(r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>[0-9]+(?:ms|[smhdwy])(?:[0-9]+(?:ms|[smhdwy]))*)(?![A-Za-z0-9_])
  | (?P<number>(?:[0-9]*\.[0-9]+|[0-9]+\.?)(?:[eE][-+]?[0-9]+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,()\[\]{}:])
)""", re.VERBOSE)
# Grafana's template variables become values PromQL accepts, so the expression can be checked as Prometheus sees it.
GRAFANA_VARS = [(re.compile(r"\$__(rate_interval|interval|range)\b"), "5m"),
                (re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?"), ".*")]


def Tokenize(expr):
    pos, tokens = 0, []
    expr = expr.rstrip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unexpected character at offset {pos}: {expr[pos:pos + 20]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def SubstituteGrafanaVariables(expr):
    for pattern, value in GRAFANA_VARS:
        expr = pattern.sub(value, expr)
    return expr


def Lint(expr):
    """Returns (metric names used, label names used, problems) for one PromQL expression."""
    expr = SubstituteGrafanaVariables(expr)
    problems, metrics, labels = [], set(), set()
    try:
        tokens = Tokenize(expr)
    except ValueError as e:
        return metrics, labels, [str(e)]
    stack = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if text in "([{" and kind == "op":
            stack.append(text)
            if text == "{":  # label matchers: name op "string" [, ...]
                j = i + 1
                while j < len(tokens) and tokens[j][1] != "}":
                    if tokens[j][1] == ",":
                        j += 1
                        continue
                    if (j + 2 >= len(tokens) or tokens[j][0] != "ident" or tokens[j + 1][1] not in ("=", "!=", "=~", "!~")
                            or tokens[j + 2][0] != "string"):
                        problems.append(f"malformed label matcher near {' '.join(t for _, t in tokens[j:j + 3])!r}")
                        break
                    if tokens[j][1] == "__name__":
                        problems.append("metric selected through __name__: name the metric instead")
                    labels.add(tokens[j][1])
                    j += 3
                i = j
                continue
            if text == "[":  # range or subquery: duration [: duration]
                inner = []
                j = i + 1
                while j < len(tokens) and tokens[j][1] != "]":
                    inner.append(tokens[j])
                    j += 1
                parts = [t for k, t in inner if t != ":"]
                if not parts or any(not DURATION.match(p) for p in parts):
                    problems.append(f"bad range {''.join(t for _, t in inner)!r}")
                i = j
                continue
        elif kind == "op" and text in ")]}":
            want = {")": "(", "]": "[", "}": "{"}[text]
            if not stack or stack.pop() != want:
                problems.append(f"unbalanced {text!r}")
        elif kind == "ident":
            low = text.lower()
            if low in LABEL_LIST_KEYWORDS:
                if nxt != "(":
                    problems.append(f"{text} must be followed by a label list")
                else:
                    j = i + 2
                    while j < len(tokens) and tokens[j][1] != ")":
                        if tokens[j][0] == "ident":
                            labels.add(tokens[j][1])
                        elif tokens[j][1] != ",":
                            problems.append(f"bad label list after {text}")
                        j += 1
                    i = j + 1
                    continue
            elif low in BINARY_KEYWORDS or low in OTHER_KEYWORDS:
                pass
            elif nxt == "(" or (text in AGGREGATIONS and nxt in ("by", "without")):
                if text not in FUNCTIONS and text not in AGGREGATIONS:
                    problems.append(f"unknown function {text}")
            else:
                metrics.add(text)
                if text not in METRICS:
                    problems.append(f"metric {text} is not exported by tenancyd")
        i += 1
    if stack:
        problems.append(f"unclosed {''.join(stack)!r}")
    for label in labels - LABELS:
        problems.append(f"label {label} is not exported by tenancyd")
    return metrics, labels, problems


def DashboardExpressions(dash):
    found = []

    def Walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if "expr" in t:
                    found.append((f"panel {p.get('title')!r} target {t.get('refId')}", t["expr"]))
            Walk(p.get("panels", []))

    Walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q or "")
        if var.get("type") == "query":
            if not m:
                found.append((f"variable {var.get('name')}", q or "<missing query>"))
            else:
                found.append((f"variable {var.get('name')}", m.group(1)))
                found.append((f"variable {var.get('name')} label", f"count by ({m.group(2)}) ({m.group(1)})"))
    return found


def CheckDashboard(path, problems):
    with open(path) as f:
        dash = json.load(f)
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in dash:
            problems.append(f"{path}: no {key!r}")
    exprs = DashboardExpressions(dash)
    if not exprs:
        problems.append(f"{path}: no PromQL expression found")
    used = set()
    for where, expr in exprs:
        metrics, _, errs = Lint(expr)
        used |= metrics
        problems.extend(f"{path}: {where}: {e}" for e in errs)
    # The four things the dashboard is for: requests, latency, quota utilization, SLA.
    for family in ("tenancy_tenant_requests_total", "tenancy_tenant_response_seconds_bucket",
                   "tenancy_tenant_quota_utilization_percent", "tenancy_tenant_active_users"):
        if family not in used:
            problems.append(f"{path}: no panel uses {family}")
    titles = " | ".join(p.get("title", "") for p in dash.get("panels", [])).lower()
    for topic in ("latency", "quota utilization", "top", "sla"):
        if topic not in titles:
            problems.append(f"{path}: no panel about {topic!r}")
    if os.environ.get("PROMQL_EMIT_RULES"):
        rules = [{"record": f"tenancy:dashboard_expr_{i}", "expr": SubstituteGrafanaVariables(e)}
                 for i, (_, e) in enumerate(exprs)]
        with open(os.environ["PROMQL_EMIT_RULES"], "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append(f"{path}: duplicate panel ids")
    return len(exprs)


def CheckAlerts(path, problems):
    with open(path) as f:
        doc = yaml.safe_load(f)
    rules = [r for g in doc.get("groups", []) for r in g.get("rules", [])]
    if not rules:
        problems.append(f"{path}: no rules")
    names = set()
    for r in rules:
        name = r.get("alert") or r.get("record") or "<unnamed>"
        names.add(name)
        for key in ("expr",) + (("labels", "annotations") if "alert" in r else ()):
            if key not in r:
                problems.append(f"{path}: {name}: no {key}")
        if "for" in r and not DURATION.match(str(r["for"])):
            problems.append(f"{path}: {name}: bad for: {r['for']!r}")
        if "alert" in r:
            if r.get("labels", {}).get("severity") not in ("warning", "critical"):
                problems.append(f"{path}: {name}: severity must be warning or critical")
            if "summary" not in r.get("annotations", {}):
                problems.append(f"{path}: {name}: no summary annotation")
        _, _, errs = Lint(str(r.get("expr", "")))
        problems.extend(f"{path}: {name}: {e}" for e in errs)
    exprs = {r.get("alert"): str(r.get("expr", "")) for r in rules}
    if not any("tenancy_tenant_quota_utilization_percent" in e and re.search(r">\s*90\b", e) for e in exprs.values()):
        problems.append(f"{path}: no alert for quota utilization over 90 %")
    if not any("sla" in (n or "").lower() for n in exprs):
        problems.append(f"{path}: no SLA breach alert")
    if not any(re.search(r"\bup\{job=\"tenancyd\"\}\s*==\s*0", e) for e in exprs.values()):
        problems.append(f"{path}: no daemon-down alert (up{{job=\"tenancyd\"}} == 0)")
    return len(rules)


def CheckDaemonExports(src_dir, problems):
    """The metric names above must be the daemon's: each exported base name appears in its sources."""
    text = ""
    for root, _, files in os.walk(src_dir):
        for name in files:
            if name.endswith((".cpp", ".hpp", ".h")):
                with open(os.path.join(root, name), errors="replace") as f:
                    text += f.read()
    bases = {m for m in METRICS if m != "up" and not any(m.startswith(h + "_") for h in HISTOGRAMS)} | HISTOGRAMS
    for m in sorted(bases):
        if m not in text:
            problems.append(f"{src_dir}: the daemon does not export {m}")


def SelfTest():
    """The linter must reject what it is meant to reject, or the checks above prove nothing."""
    bad = {
        "sum(rate(tenancy_tenant_request_total[5m]))": "not exported",
        "rate(tenancy_tenant_requests_total[5m]": "unclosed",
        "rate(tenancy_tenant_requests_total[5x])": "bad range",
        "rates(tenancy_tenant_requests_total[5m])": "unknown function",
        "sum by (tenant) (tenancy_tenant_active_users)": "label tenant",
        'tenancy_tenant_active_users{plan=team}': "malformed label matcher",
        'tenancy_tenant_active_users{plan~"team"}': "unexpected character",
        '{__name__="tenancy_tenant_active_users"}': "__name__",
        "tenancy_tenant_response_seconds": "not exported",
    }
    for expr, want in bad.items():
        _, _, errs = Lint(expr)
        if not any(want in e for e in errs):
            return [f"self-test: {expr!r} not rejected with {want!r} (got {errs})"]
    good = 'histogram_quantile(0.95, sum by (tenant_id, le) (rate(tenancy_tenant_response_seconds_bucket{tenant_id=~"$tenant"}[$__rate_interval])))'
    _, _, errs = Lint(good)
    return [f"self-test: valid expression rejected: {errs}"] if errs else []


def main():
    if len(sys.argv) < 3:
        print(__doc__ or "usage: promql_lint.py DASHBOARD.json ALERTS.yml [DAEMON_SOURCE_DIR]", file=sys.stderr)
        return 2
    problems = SelfTest()
    n_exprs = CheckDashboard(sys.argv[1], problems)
    n_rules = CheckAlerts(sys.argv[2], problems)
    if len(sys.argv) > 3:
        CheckDaemonExports(sys.argv[3], problems)
    for p in problems:
        print("problem:", p)
    print(f"{n_exprs} dashboard expressions, {n_rules} alert rules, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
