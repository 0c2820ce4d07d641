"""One model across both inference hosts (vLLM's multi-node mode): inf1 runs its head, inf2 its follower, with
matching ranks and the head's address; LiteLLM routes to the head; a follower that dies takes the group down and
systemd brings it back whole (after converge only)."""

from __future__ import annotations

import json
import time

import pytest
from test_multinode import GW, INF1, INF2, ROOT, base, hostvars, http, master_key, other, phase  # noqa: F401

testinfra_hosts = [f"ansible://{GW}"]

UNIT = "solv-vllm-big"


def _ask(host, base, master_key):
    return http(host, "POST", f"{base}/v1/chat/completions", master_key,
                {"model": "big-model", "messages": [{"role": "user", "content": "across"}], "max_tokens": 4})


def _restarts(h):
    return int(h.check_output("systemctl show %s.service --property=NRestarts --value", UNIT))


def test_head_and_follower_run_one_group_with_matching_ranks(hostvars):
    head_address = hostvars[INF1]["solv_internal_address"]
    for name, rank in ((INF1, 0), (INF2, 1)):
        h = other(name)
        inspect = json.loads(h.check_output("docker inspect %s", UNIT))[0]
        args = inspect["Args"]
        assert [args[args.index(flag) + 1] for flag in ("--nnodes", "--node-rank", "--master-addr")] == \
            ["2", str(rank), head_address]
        assert ("--headless" in args) == (rank > 0)
        assert (inspect["HostConfig"]["NetworkMode"], inspect["HostConfig"]["IpcMode"]) == ("host", "host")
        own = hostvars[name]["solv_internal_address"]
        assert f"VLLM_HOST_IP='{own}'" in h.file(f"{ROOT}/vllm/big/env").content_string


def test_litellm_routes_to_the_head(host, base, master_key):
    answer = _ask(host, base, master_key)
    assert answer["status"] == 200, answer
    assert f"[big-model@{INF1}:8004 " in answer["json"]["choices"][0]["message"]["content"]


def test_a_lost_follower_stops_the_group_and_systemd_makes_it_whole_again(host, base, master_key, phase):
    if phase != "full":
        pytest.skip("runs once (CI time)")
    head, follower = other(INF1), other(INF2)
    before = _restarts(head)
    follower.check_output("docker kill %s", UNIT)
    end = time.monotonic() + 60
    while _restarts(head) == before:  # the head loses rank 1 and exits; systemd restarts it
        assert time.monotonic() < end, "the head did not notice its follower was gone"
        time.sleep(1)
    end = time.monotonic() + 180
    while True:
        answer = _ask(host, base, master_key)
        if answer["status"] == 200:
            break
        assert time.monotonic() < end, f"the group did not come back: {answer}"
        time.sleep(2)
    log = head.check_output("journalctl -u %s.service --no-pager -n 200", UNIT)
    assert "rank 1 left the group" in log and "all 2 ranks joined" in log
