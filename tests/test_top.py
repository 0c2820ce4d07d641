"""`solv-provision top`: where it asks Prometheus, what it asks (metric names the exporters serve), and the rows it
prints from the answers; a Prometheus it cannot reach is one line, exit 1."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner
from rich.console import Console

from conftest import REPO
from solv_provision import top
from solv_provision.cli import main
from solv_provision.inventory import Inventory

STANDIN = REPO / "lab" / "doubles" / "vllm_standin" / "server.py"


def _inventory(gw_vars, monitoring=("gw-1",)):
    groups = {"all": ["gpu-1", "gw-1"], "inference": ["gpu-1"], "gateway": ["gw-1"], "monitoring": list(monitoring)}
    return Inventory(sources=[], groups=groups, hosts={"gpu-1": {}, "gw-1": gw_vars})


def test_prometheus_is_asked_where_the_inventory_publishes_it():
    assert top.prometheus_url(_inventory({"solv_internal_address": "10.0.0.5"})) == "http://10.0.0.5:9090"
    assert top.prometheus_url(_inventory({"ansible_host": "gw-1.example", "prometheus_port": 9191})) == \
        "http://gw-1.example:9191"
    assert top.prometheus_url(_inventory({"solv_internal_address": "10.0.0.5", "prometheus_bind_address": "fd00::5"})) \
        == "http://[fd00::5]:9090"
    # A wildcard bind: the host's internal address.
    assert top.prometheus_url(_inventory({"solv_internal_address": "10.0.0.5", "prometheus_bind_address": "0.0.0.0"})) \
        == "http://10.0.0.5:9090"
    with pytest.raises(top.TopError, match="monitoring is off in this inventory"):
        top.prometheus_url(_inventory({}, monitoring=()))


def test_every_vllm_metric_it_asks_for_is_one_the_vllm_stand_in_serves():
    """The stand-in serves vLLM's names (tests/test_standins.py): `top` must not ask for a name nothing serves."""
    served = set(re.findall(r'"(vllm:[a-z_]+)"', STANDIN.read_text()))
    asked = {m.removesuffix("_bucket") for q in top.MODEL_QUERIES.values() for m in re.findall(r"vllm:[a-z_]+", q)}
    assert asked and asked <= served, asked - served


class FakePrometheus:
    """Answers /api/v1/query from {promql: [(labels, value)]}; records the queries."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def __call__(self, url):
        from urllib.parse import parse_qs, urlsplit

        promql = parse_qs(urlsplit(url).query)["query"][0]
        self.asked.append(promql)
        result = [{"metric": labels, "value": [0, str(v)]} for labels, v in self.answers.get(promql, [])]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_the_view_has_a_row_per_model_gpu_and_team():
    q = {**{f"m.{k}": v for k, v in top.MODEL_QUERIES.items()}, **{f"g.{k}": v for k, v in top.GPU_QUERIES.items()},
         **{f"t.{k}": v for k, v in top.TEAM_QUERIES.items()}}
    fake = FakePrometheus({
        q["m.requests"]: [({"model": "qwen-0.5b"}, 42), ({"model": "llama-8b"}, 7)],
        q["m.requests_per_s"]: [({"model": "qwen-0.5b"}, 1.5)],
        q["m.running"]: [({"model": "qwen-0.5b"}, 3)],
        q["m.ttft_p50"]: [({"model": "qwen-0.5b"}, 0.012), ({"model": "llama-8b"}, float("nan"))],
        q["m.ttft_p95"]: [({"model": "qwen-0.5b"}, 0.25)],
        q["m.tokens_per_s"]: [({"model": "qwen-0.5b"}, 88.25)],
        q["g.memory_used_mib"]: [({"host": "gpu-1", "gpu": "0"}, 61440)],
        q["g.memory_free_mib"]: [({"host": "gpu-1", "gpu": "0"}, 20480)],
        q["g.utilisation"]: [({"host": "gpu-1", "gpu": "0"}, 97)],
        q["t.requests"]: [({"team_alias": "devs"}, 40), ({}, 9)],
        q["t.spend"]: [({"team_alias": "devs"}, 0.125)],
    })
    snap = top.snapshot("http://prom:9090", fake)
    assert sorted(fake.asked) == sorted(q.values())
    assert snap.models["qwen-0.5b"] == {"requests": 42, "requests_per_s": 1.5, "running": 3, "ttft_p50": 0.012,
                                        "ttft_p95": 0.25, "tokens_per_s": 88.25}
    assert snap.models["llama-8b"] == {"requests": 7}  # a quantile of no requests (NaN) is no value
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)
    for table in top.tables(snap):
        console.print(table)
    text = out.getvalue()
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows["qwen-0.5b"] == ["42", "1.50", "3", "-", "12 ms", "250 ms", "88.2"]
    assert rows["llama-8b"] == ["7", "-", "-", "-", "-", "-", "-"]
    assert rows["gpu-1"] == ["0", "75 %", "80 GiB", "97 %"]
    assert rows["devs"] == ["40", "-", "$0.1250"] and rows["(no team)"] == ["9", "-", "-"]


def test_an_error_answer_names_the_query():
    def refusing(url):
        return {"status": "error", "error": "parse error at char 3"}

    with pytest.raises(top.TopError, match=r"answered 'sum by .*' with parse error at char 3"):
        top.snapshot("http://prom:9090", refusing)


def test_a_prometheus_it_cannot_reach_is_one_line_and_exit_1():
    example = REPO / "inventories" / "example"  # monitoring on (gw-1)
    result = CliRunner().invoke(main, ["top", "-i", str(example), "--vault-password-file",
                                       str(example / "vault-password.txt"), "--once", "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.search(r"error: cannot reach Prometheus at http://127.0.0.1:1 \(.*\); from another network, tunnel",
                     result.output), result.output

