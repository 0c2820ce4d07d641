"""The metric names a PromQL expression (or a Grafana dashboard's queries) reads: what the dashboard test and the
multi-node verifier compare with what the exporters produce.

A small tokenizer, not a parser: it skips strings, numbers and durations, range and subquery brackets,
comments, Grafana variables (`$host`, `${host}`, `[[host]]`), label matchers inside `{...}` (a `__name__`
equality counts as a name), the label lists of `by`, `without`, `on`, `ignoring`, `group_left` and
`group_right`, keywords, aggregation operators and function calls. Every other identifier is a metric name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
  | (?P<range>\[[^\]]*\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:ms|[smhdwy]))+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>[({])
  | (?P<close>[)}])
  | (?P<other>=~|!~|!=|==|<=|>=|[-+*/%^<>=,@])
""", re.VERBOSE)

# Words that are never metric names where they stand (PromQL's keywords and literals).
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and",
                      "or", "unless", "atan2", "inf", "nan"})
# Keywords followed by a parenthesised list of label names.
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Aggregation operators: a clause (`sum by (x) (...)`) may stand between them and their parenthesis.
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile", "limitk", "limit_ratio"})
# Grafana's variable queries that name a metric (label_values(metric, label)) or a whole expression.
_LABEL_VALUES = re.compile(r"\s*label_values\(\s*(?P<metric>.*?)\s*,\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*", re.DOTALL)
_QUERY_RESULT = re.compile(r"\s*query_result\((?P<expr>.*)\)\s*", re.DOTALL)


class PromQLError(ValueError):
    """An expression the tokenizer cannot read (an unknown character, an unbalanced brace)."""


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise PromQLError(f"unexpected {expr[pos]!r} at {pos} in {expr!r}")
        if match.lastgroup not in ("space", "variable", "range", "number"):
            out.append((match.lastgroup, match.group()))
        pos = match.end()
    return out


def metric_names(expr: str) -> list[str]:
    """The metric names `expr` reads, each once, in order of appearance."""
    tokens = _tokens(expr)
    names: dict[str, None] = {}
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "open" and text == "{":
            i = _skip_matchers(tokens, i, expr, names)
            continue
        if kind == "name":
            word = text.lower()  # PromQL's keywords and operators are case-insensitive, metric names are not
            if word in _LABEL_LISTS and following == ("open", "("):
                i = _skip_group(tokens, i + 1, expr)
                continue
            if word not in KEYWORDS and word not in AGGREGATIONS and following != ("open", "("):
                names.setdefault(text, None)
        i += 1
    return list(names)


def _skip_group(tokens: list[tuple[str, str]], start: int, expr: str) -> int:
    """The index after the `(...)` that starts at `start` (a label list: nothing in it is a metric)."""
    for end in range(start + 1, len(tokens)):
        if tokens[end] == ("close", ")"):
            return end + 1
        if tokens[end][0] == "open":
            break
    raise PromQLError(f"unclosed label list in {expr!r}")


def _skip_matchers(tokens: list[tuple[str, str]], start: int, expr: str, names: dict[str, None]) -> int:
    """The index after the `{...}` that starts at `start`; a `__name__="x"` matcher adds x."""
    for end in range(start + 1, len(tokens)):
        if tokens[end] == ("close", "}"):
            return end + 1
        label, operator, value = (tokens[end:end + 3] + [("", "")] * 2)[:3]
        if label == ("name", "__name__") and operator == ("other", "=") and value[0] == "string":
            names.setdefault(value[1][1:-1], None)
    raise PromQLError(f"unclosed label matchers in {expr!r}")


def variable_query_names(query: str) -> list[str]:
    """The metric names of a Grafana Prometheus variable query: `label_values(metric, label)` (the label is
    not a metric), `label_values(label)` (none), `query_result(expr)` or `metrics(regex)` (none: a pattern)."""
    label_values = _LABEL_VALUES.fullmatch(query)
    if label_values:
        return metric_names(label_values.group("metric"))
    if re.fullmatch(r"\s*(label_values|label_names|metrics)\(.*\)\s*", query, re.DOTALL):
        return []
    result = _QUERY_RESULT.fullmatch(query)
    return metric_names(result.group("expr") if result else query)


def panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel of a dashboard, rows' nested panels (a collapsed row keeps them) included."""
    stack = list(reversed(dashboard.get("panels") or []))
    while stack:
        panel = stack.pop()
        yield panel
        stack.extend(reversed(panel.get("panels") or []))


def queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, kind, text) of every query: kind `expr` (a panel target) or `variable` (a templating query)."""
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield f"panel {panel.get('title')!r} target {target.get('refId')}", "expr", target["expr"]
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query") if isinstance(query, Mapping) else query
            if text:
                yield f"variable {variable.get('name')!r}", "variable", str(text)


def dashboard_metric_names(dashboard: Mapping[str, Any]) -> dict[str, list[str]]:
    """Metric name -> where the dashboard reads it (panel targets and templating queries)."""
    found: dict[str, list[str]] = {}
    for where, kind, text in queries(dashboard):
        for name in metric_names(text) if kind == "expr" else variable_query_names(text):
            found.setdefault(name, []).append(where)
    return found
