# test/lib/promql_series_check.py
# Every PromQL selector of the Grafana dashboard and the alert rules must match at least one series a running
# tenancyd really exported (issue #16: the SLA panel read le="0.2" while the buckets went 0.1 -> 0.25, so its table
# was always empty). Metric names and every label matcher count, `le` values included; `job` and `instance` are
# Prometheus' target labels and `up` its own series, so those are left out.
# Usage: promql_series_check.py DASHBOARD.json ALERTS.yml SCRAPE.txt; exit 1 and a list of selectors that match nothing.
import json
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from promql_lint import (AGGREGATIONS, BINARY_KEYWORDS, DashboardExpressions, FUNCTIONS,  # noqa: E402
                         LABEL_LIST_KEYWORDS, OTHER_KEYWORDS, SubstituteGrafanaVariables, Tokenize)

TARGET_LABELS = {"job", "instance"}
SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def Unescape(s):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), s)


def ParseScrape(text):
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        if not m:
            raise ValueError(f"unparsable exposition line: {line[:120]!r}")
        labels, rest = {}, m.group(2) or ""
        pos = 0
        while pos < len(rest):
            lm = LABEL.match(rest, pos)
            if not lm:
                raise ValueError(f"unparsable labels: {rest[:120]!r}")
            labels[lm.group(1)] = Unescape(lm.group(2))
            pos = lm.end()
        series.setdefault(m.group(1), []).append(labels)
    return series


def Selectors(expr):
    """(metric, [(label, op, value)]) for every vector selector of the expression."""
    tokens = Tokenize(SubstituteGrafanaVariables(expr))
    out, i = [], 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if kind == "ident" and text.lower() in LABEL_LIST_KEYWORDS and nxt == "(":
            while i < len(tokens) and tokens[i][1] != ")":
                i += 1
        elif (kind == "ident" and text.lower() not in BINARY_KEYWORDS | OTHER_KEYWORDS
              and nxt != "(" and not (text in AGGREGATIONS and nxt in ("by", "without"))
              and text not in FUNCTIONS):
            matchers = []
            if nxt == "{":
                j = i + 2
                while j < len(tokens) and tokens[j][1] != "}":
                    if tokens[j][1] == ",":
                        j += 1
                        continue
                    value = tokens[j + 2][1]
                    matchers.append((tokens[j][1], tokens[j + 1][1], Unescape(value[1:-1])))
                    j += 3
                i = j
            out.append((text, matchers))
        i += 1
    return out


def Matches(labels, matchers):
    for name, op, value in matchers:
        have = labels.get(name, "")
        if op == "=" and have != value or op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have) or op == "!~" and re.fullmatch(value, have):
            return False
    return True


def main():
    if len(sys.argv) != 4:
        print("usage: promql_series_check.py DASHBOARD.json ALERTS.yml SCRAPE.txt", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        exprs = DashboardExpressions(json.load(f))
    with open(sys.argv[2]) as f:
        exprs += [(f"rule {r.get('alert') or r.get('record')}", str(r["expr"]))
                  for g in yaml.safe_load(f).get("groups", []) for r in g.get("rules", [])]
    with open(sys.argv[3]) as f:
        series = ParseScrape(f.read())
    # The checker must catch what it is for: a bucket the daemon does not export, a label value never seen.
    for bad in ('tenancy_tenant_response_seconds_bucket{le="0.3"}', 'tenancy_tenant_active_users{plan="gold"}',
                'tenancy_tenant_requests_totals'):
        (metric, matchers), = Selectors(bad)
        if any(Matches(s, matchers) for s in series.get(metric, [])):
            print(f"problem: self-test selector {bad} matched the scrape")
            return 1
    problems, checked = [], 0
    for where, expr in exprs:
        for metric, matchers in Selectors(expr):
            if metric == "up":
                continue
            checked += 1
            matchers = [m for m in matchers if m[0] not in TARGET_LABELS]
            if metric not in series:
                problems.append(f"{where}: {metric} is not in the scrape")
            elif not any(Matches(s, matchers) for s in series[metric]):
                problems.append(f"{where}: {metric}{{{', '.join(n + o + repr(v) for n, o, v in matchers)}}} "
                                "matches no exported series")
    for p in problems:
        print("problem:", p)
    print(f"{checked} selectors of {len(exprs)} expressions checked against {sum(map(len, series.values()))} "
          f"series, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
