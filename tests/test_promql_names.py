"""solv_provision.promql_names: the metric names a PromQL expression or a Grafana variable query reads (what the
dashboard test compares with what the exporters serve)."""

from __future__ import annotations

import pytest

from solv_provision.promql_names import PromQLError, dashboard_metric_names, metric_names, variable_query_names


@pytest.mark.parametrize(("expr", "names"), [
    # Functions and aggregations are not metrics; label names in {...} and by (...) neither; strings, numbers
    # and the range (with a Grafana variable in it) are skipped.
    ('sum by (model) (rate(vllm:request_success_total{host=~"$host", model=~"$model"}[$__rate_interval]))',
     ["vllm:request_success_total"]),
    ("histogram_quantile(0.95, sum by (le, model) (rate(vllm:time_to_first_token_seconds_bucket[5m])))",
     ["vllm:time_to_first_token_seconds_bucket"]),
    ("100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
     ["node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"]),
    # Vector matching, offset, bool, set operators; group_left's label list is not a metric.
    ("a * on (host) group_left (gpu, modelName) b offset 5m > bool 3 unless ignoring (job) c or d and e",
     ["a", "b", "c", "d", "e"]),
    ("sum without (instance) (x) + max(y) by (host)", ["x", "y"]),
    # Keywords and aggregations in any case, numbers in every form, @ modifiers and subqueries.
    ("SUM BY (a) (z) + 1e3 - 0x1f * .5 + Inf - NaN", ["z"]),
    ("rate(y[1h30m:30s] @ start()) offset -1d", ["y"]),
    # A metric named by __name__; a string holding braces or a keyword is no metric.
    ('{__name__="up", job="by (x) {"} == 0', ["up"]),
    ("x{a='sum(b)'} / `raw`", ["x"]),
    # Comments, Grafana's ${var} and [[var]] forms.
    ("q # a comment naming notametric\n * ${factor} + [[legacy]]", ["q"]),
    # Each name once, in order of appearance.
    ("b + a + b", ["b", "a"]),
])
def test_metric_names_are_the_identifiers_that_name_series(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ["x{a=\"b\"", "sum by (a (x)", "x ; y"])
def test_an_unreadable_expression_is_an_error_not_an_empty_list(expr):
    with pytest.raises(PromQLError):
        metric_names(expr)


@pytest.mark.parametrize(("query", "names"), [
    ('label_values(DCGM_FI_DEV_GPU_UTIL{host=~"$host"}, gpu)', ["DCGM_FI_DEV_GPU_UTIL"]),  # gpu is a label
    ("label_values(node_load1, host)", ["node_load1"]),
    ("label_values(host)", []),
    ("metrics(node_.*)", []),
    ("query_result(topk(5, sum by (model) (vllm:num_requests_waiting)))", ["vllm:num_requests_waiting"]),
    ("up", ["up"]),
])
def test_grafana_variable_queries(query, names):
    assert variable_query_names(query) == names


def test_a_dashboard_s_names_with_where_each_is_read_rows_and_variables_included():
    dashboard = {
        "panels": [
            {"type": "timeseries", "title": "A", "targets": [{"refId": "A", "expr": "rate(x[5m])"}]},
            {"type": "row", "title": "collapsed", "panels": [
                {"type": "stat", "title": "B", "targets": [{"refId": "A", "expr": "x + y"}, {"refId": "B"}]}]},
        ],
        "templating": {"list": [
            {"type": "query", "name": "host", "query": "label_values(z, host)"},
            {"type": "query", "name": "gpu", "query": {"query": "label_values(w{host=~\"$host\"}, gpu)"}},
            {"type": "custom", "name": "window", "query": "1m,5m"},
        ]},
    }
    assert dashboard_metric_names(dashboard) == {
        "x": ["panel 'A' target A", "panel 'B' target A"],
        "y": ["panel 'B' target A"],
        "z": ["variable 'host'"],
        "w": ["variable 'gpu'"],
    }
