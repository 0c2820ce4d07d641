"""The lab's stand-ins (lab/doubles/) as local processes on free loopback ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DOUBLES = Path(__file__).resolve().parents[1] / "lab" / "doubles"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "SEARXNG_", "SOLV_STANDIN_", "DCGM_"))}
    env["PYTHONPATH"] = str(DOUBLES)
    env.update(extra)
    return env


def _run(module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a stand-in that is expected to exit by itself (refusals)."""
    return subprocess.run([sys.executable, "-m", module, *args], env=_env(**env),
                          capture_output=True, text=True, timeout=30, check=False)


class Proc:
    """A stand-in serving on a loopback port until stopped."""

    def __init__(self, module: str, port: int, *args: str, **env: str) -> None:
        self.port = port
        self.p = subprocess.Popen([sys.executable, "-m", module, *args], env=_env(**env),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"{module} exited {self.p.returncode}: {self.p.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{module} did not listen on {port}")

    def request(self, method: str, path: str, body: dict | None = None, key: str | None = None,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if own:
            conn.close()
        return resp.status, data

    def stop(self) -> str:
        self.p.terminate()
        out, _ = self.p.communicate(timeout=10)
        return out


# --- vLLM stand-in ------------------------------------------------------------------------------

KEY = "sk-lab-test"


@pytest.fixture(scope="module")
def vllm():
    port = _free_port()
    proc = Proc("vllm_standin", port, "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--served-model-name",
                "qwen-0.5b", "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY,
                "--max-model-len", "8k", "--enable-prefix-caching", "--kv-cache-dtype", "fp8",
                SOLV_STANDIN_IDENTITY="replica-a")
    yield proc
    proc.stop()


@pytest.mark.parametrize("args, code, message", [
    (["--model", "m", "--gpu-memory-utilization", "1.5"], 1, "gpu_memory_utilization"),
    (["--model", "m", "--gpu-memory-utilization", "0"], 1, "gpu_memory_utilization"),
    (["--model", "m", "--gpu-memory-utilization", "lots"], 2, "invalid float value"),
    (["--model", "m", "--tensor-parallel-size", "0"], 2, "must be >= 1"),
    (["--model", "m", "--max-num-seqs", "x"], 2, "--max-num-seqs"),
    (["--model", "m", "--max-model-len", "big"], 2, "invalid length"),
    (["--model", "m", "--quantization", "int3"], 2, "invalid choice"),
    (["--served-model-name", "x"], 1, "no model"),
    (["a/b", "--model", "c/d"], 1, "model given twice"),
    (["--model", "m", "--runner", "embed"], 2, "invalid choice"),
    (["--model", "m", "--runner", "generate", "--convert", "embed"], 1, "needs the pooling runner"),
])
def test_vllm_refuses_malformed_flags(args, code, message):
    r = _run("vllm_standin", *args, "--port", str(_free_port()))
    assert r.returncode == code, r.stderr
    assert message in r.stderr


def test_vllm_broken_fails_at_start():
    r = _run("vllm_standin", "--model", "m", "--broken", "--port", str(_free_port()))
    assert r.returncode == 1
    assert "Engine core initialization failed" in r.stderr


def test_vllm_open_routes_need_no_key(vllm):
    assert vllm.request("GET", "/health")[0] == 200
    status, body = vllm.request("GET", "/version")
    assert status == 200 and "version" in json.loads(body)
    assert vllm.request("GET", "/metrics")[0] == 200


def test_vllm_checks_key_on_v1(vllm):
    assert vllm.request("GET", "/v1/models") == (401, b'{"error": "Unauthorized"}')
    assert vllm.request("GET", "/v1/models", key="wrong")[0] == 401
    status, body = vllm.request("GET", "/v1/models", key=KEY)
    assert status == 200
    model = json.loads(body)["data"][0]
    assert (model["id"], model["root"], model["max_model_len"]) == ("qwen-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", 8000)


def test_vllm_chat_names_model_and_replica(vllm):
    req = {"model": "qwen-0.5b", "messages": [{"role": "user", "content": "hello lab"}]}
    status, body = vllm.request("POST", "/v1/chat/completions", req, key=KEY)
    assert status == 200
    answer = json.loads(body)
    assert answer["choices"][0]["message"]["content"] == f"[qwen-0.5b@replica-a:{vllm.port} vdev] echo: hello lab"
    assert answer["usage"]["prompt_tokens"] == 2
    assert vllm.request("POST", "/v1/chat/completions", req, key=KEY)[1].count(b"replica-a") == 1


def test_vllm_unknown_model_is_404(vllm):
    status, body = vllm.request("POST", "/v1/chat/completions", {"model": "gpt-4", "messages": []}, key=KEY)
    assert status == 404
    assert json.loads(body)["error"]["type"] == "NotFoundError"


def test_vllm_stream_is_sse_ending_with_done(vllm):
    req = {"model": "qwen-0.5b", "stream": True, "stream_options": {"include_usage": True},
           "messages": [{"role": "user", "content": "stream me"}]}
    status, body = vllm.request("POST", "/v1/chat/completions", req, key=KEY)
    assert status == 200
    events = [line[len("data: "):] for line in body.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == f"[qwen-0.5b@replica-a:{vllm.port} vdev] echo: stream me"
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_vllm_completions(vllm):
    status, body = vllm.request("POST", "/v1/completions", {"model": "qwen-0.5b", "prompt": "once"}, key=KEY)
    assert status == 200
    assert json.loads(body)["choices"][0]["text"].endswith("echo: once")


def test_vllm_metrics_count_requests(vllm):
    def successes() -> int:
        text = vllm.request("GET", "/metrics")[1].decode()
        line = next(ln for ln in text.splitlines() if ln.startswith("vllm:request_success_total{"))
        return int(line.rsplit(" ", 1)[1])

    before = successes()
    vllm.request("POST", "/v1/completions", {"prompt": "count"}, key=KEY)
    assert successes() == before + 1


def test_vllm_metrics_are_vllm_s_families_with_a_time_to_first_token_histogram(vllm):
    def metrics() -> dict[str, float]:
        text = vllm.request("GET", "/metrics")[1].decode()
        return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln and ln[0] != "#"}

    label = 'model_name="qwen-0.5b",engine="0"'
    before = metrics()
    vllm.request("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "time me"}]}, key=KEY)
    after = metrics()
    ttft = "vllm:time_to_first_token_seconds"
    assert after[f"{ttft}_count{{{label}}}"] == before[f"{ttft}_count{{{label}}}"] + 1
    assert after[f'{ttft}_bucket{{{label},le="+Inf"}}'] == after[f"{ttft}_count{{{label}}}"]
    assert after[f'{ttft}_bucket{{{label},le="2560.0"}}'] == after[f"{ttft}_count{{{label}}}"]  # vLLM's last bucket
    assert after[f"vllm:e2e_request_latency_seconds_count{{{label}}}"] >= 1
    assert after[f"vllm:num_requests_running{{{label}}}"] == 0  # none in flight once answered
    assert f"vllm:kv_cache_usage_perc{{{label}}}" in after
    # Each family's samples together, after its TYPE line (Prometheus's text format).
    text = vllm.request("GET", "/metrics")[1].decode()
    families = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")]
    assert len(families) == len(set(families))


def test_vllm_keepalive_is_not_delayed(vllm):
    # Without TCP_NODELAY each keep-alive response waits ~40 ms (Nagle + delayed ACK): 20 take >= 0.8 s.
    conn = http.client.HTTPConnection("127.0.0.1", vllm.port, timeout=10)
    vllm.request("GET", "/v1/models", key=KEY, conn=conn)
    start = time.monotonic()
    for _ in range(20):
        assert vllm.request("POST", "/v1/completions", {"prompt": "x"}, key=KEY, conn=conn)[0] == 200
    conn.close()
    assert time.monotonic() - start < 0.5


def test_vllm_takes_a_burst_of_connections_while_busy(vllm):
    # While the server accepts nothing (stopped), the kernel completes only as many connections as its listen
    # backlog holds; the rest wait on dropped SYNs or are reset. vLLM's uvicorn holds 2048.
    vllm.p.send_signal(signal.SIGSTOP)
    try:
        conns = [socket.create_connection(("127.0.0.1", vllm.port), timeout=0.5) for _ in range(40)]
    finally:
        vllm.p.send_signal(signal.SIGCONT)
    for sock in conns:
        conn = http.client.HTTPConnection("127.0.0.1", vllm.port, timeout=10)
        conn.sock = sock
        assert vllm.request("POST", "/v1/completions", {"prompt": "x"}, key=KEY, conn=conn)[0] == 200
        conn.close()


@pytest.fixture(scope="module")
def embedder():
    port = _free_port()
    proc = Proc("vllm_standin", port, "--model", "BAAI/bge-small-en-v1.5", "--served-model-name", "bge-small",
                "--runner", "pooling", "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY)
    yield proc
    proc.stop()


def _vectors(proc: Proc, inputs, **extra) -> list[list[float]]:
    status, body = proc.request("POST", "/v1/embeddings", {"model": "bge-small", "input": inputs, **extra}, key=KEY)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["object"] == "list" and answer["model"] == "bge-small"
    assert [d["index"] for d in answer["data"]] == list(range(len(answer["data"])))
    return [d["embedding"] for d in answer["data"]]


def test_pooling_model_embeds_deterministically_and_texts_sharing_words_are_nearest(embedder):
    query, near, far = _vectors(embedder, ["where do the backups go", "the backups go to the NAS at night",
                                           "GPU temperature alerts fire above 85 degrees"])
    assert len(query) == 256 and abs(sum(x * x for x in query) - 1) < 1e-9
    assert _vectors(embedder, "where do the backups go") == [query]

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cosine(query, near) > cosine(query, far) + 0.2


def test_pooling_model_answers_base64_as_openai_clients_ask(embedder):
    import base64
    import struct

    (plain,) = _vectors(embedder, "one text")
    (packed,) = _vectors(embedder, "one text", encoding_format="base64")
    assert list(struct.unpack("<256f", base64.b64decode(packed))) == pytest.approx(plain, abs=1e-6)


def test_pooling_model_has_no_completion_routes_and_chat_model_no_embeddings(embedder, vllm):
    assert embedder.request("POST", "/v1/chat/completions", {"messages": []}, key=KEY)[0] == 404
    assert embedder.request("POST", "/v1/embeddings", {"model": "bge-small", "input": []}, key=KEY)[0] == 400
    assert embedder.request("POST", "/v1/embeddings", {"model": "bge-small", "input": "x"})[0] == 401
    assert vllm.request("POST", "/v1/embeddings", {"model": "qwen-0.5b", "input": "x"}, key=KEY)[0] == 404


def test_vllm_key_from_env_and_unknown_flags_logged():
    port = _free_port()
    proc = Proc("vllm_standin", port, "--model", "m", "--port", str(port), "--host", "127.0.0.1",
                "--some-future-flag", "7", VLLM_API_KEY="env-key")
    try:
        assert proc.request("GET", "/v1/models")[0] == 401
        assert proc.request("GET", "/v1/models", key="env-key")[0] == 200
    finally:
        out = proc.stop()
    assert "ignores these arguments: --some-future-flag 7" in out


def _model_dir(root: Path) -> Path:
    from fake_hub import tiny_model

    root.mkdir(parents=True)
    for name, data in tiny_model().items():
        (root / name).write_bytes(data)
    return root


def test_vllm_serves_a_staged_model_directory_offline(tmp_path):
    model = _model_dir(tmp_path / "org--tiny" / "main")
    port = _free_port()
    proc = Proc("vllm_standin", port, "--model", str(model), "--served-model-name", "tiny", "--port", str(port),
                "--host", "127.0.0.1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-cache"))
    try:
        status, body = proc.request("GET", "/v1/models")
        assert status == 200 and json.loads(body)["data"][0]["root"] == str(model)
    finally:
        out = proc.stop()
    assert f"2 tensors from 1 safetensors file(s) in {model}" in out


@pytest.mark.parametrize("damage, message", [
    ("gone", "is not a model directory: no config.json"),
    ("no-weights", "Cannot find any model weights"),
    ("bad-header", "safetensors header is not valid JSON"),
])
def test_vllm_refuses_a_missing_or_broken_model_directory(tmp_path, damage, message):
    model = _model_dir(tmp_path / "m")
    if damage == "gone":
        model = tmp_path / "absent"
    elif damage == "no-weights":
        (model / "model.safetensors").unlink()
    else:
        (model / "model.safetensors").write_bytes((20).to_bytes(8, "little") + b"not json at all here")
    r = _run("vllm_standin", "--model", str(model), "--port", str(_free_port()), HF_HUB_OFFLINE="1")
    assert r.returncode == 1, r.stderr
    assert message in r.stderr


def test_vllm_offline_needs_a_repository_in_the_hf_cache(tmp_path):
    r = _run("vllm_standin", "--model", "org/tiny", "--port", str(_free_port()), HF_HUB_OFFLINE="1",
             HF_HOME=str(tmp_path))
    assert r.returncode == 1 and "couldn't find them in the cached files" in r.stderr
    _model_dir(tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123")
    port = _free_port()
    Proc("vllm_standin", port, "--model", "org/tiny", "--port", str(port), "--host", "127.0.0.1",
         HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path)).stop()


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vllm_standin", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_a_model_across_two_hosts_serves_once_both_ranks_joined_and_a_lost_rank_stops_the_group():
    """The head listens for its followers and serves the API only with every rank; a follower serves nothing and
    waits for the head; a follower that goes stops the head, a head that goes stops its followers."""
    port, master = _free_port(), _free_port()
    group = ["--nnodes", "2", "--master-addr", "127.0.0.1", "--master-port", str(master)]
    follower_args = ["--model", "m", "--port", str(_free_port()), *group, "--node-rank", "1", "--headless"]
    head = Proc.__new__(Proc)
    head.port, head.p = port, _spawn("--model", "m", "--host", "127.0.0.1", "--port", str(port), *group)
    follower = _spawn(*follower_args)
    deadline = time.monotonic() + 15
    while not _listening(port) and time.monotonic() < deadline:
        assert head.p.poll() is None and follower.poll() is None
        time.sleep(0.1)
    assert head.request("GET", "/health")[0] == 200
    follower.kill()
    assert head.p.wait(timeout=15) == 1
    assert "rank 1 left the group" in head.p.stdout.read()
    follower.communicate()
    # Rank 1 waits for a head that is not up yet, joins when it comes, and goes when it goes.
    follower = _spawn(*follower_args)
    time.sleep(1.5)
    assert follower.poll() is None and not _listening(port)
    head.p = _spawn("--model", "m", "--host", "127.0.0.1", "--port", str(port), *group)
    deadline = time.monotonic() + 15
    while not _listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    head.p.kill()
    assert follower.wait(timeout=15) == 1
    out = follower.stdout.read()
    assert "waiting for the head" in out and "left the group" in out
    head.p.communicate()


@pytest.mark.parametrize("args, message", [
    (["--nnodes", "2", "--node-rank", "2", "--headless"], "node_rank 2 must be in [0, nnodes=2)"),
    (["--nnodes", "2", "--node-rank", "1"], "--headless is for the followers"),
    (["--headless"], "--headless is for the followers"),
])
def test_vllm_refuses_inconsistent_multi_node_flags(args, message):
    r = _run("vllm_standin", "--model", "m", "--port", str(_free_port()), *args)
    assert r.returncode == 1 and message in r.stderr


# --- SearXNG stand-in ---------------------------------------------------------------------------


def _settings(tmp_path: Path, text: str) -> str:
    path = tmp_path / "settings.yml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text", [
    "use_default_settings: true\n",
    "use_default_settings: true\nserver:\n  secret_key: ultrasecretkey\n",
    "server:\n  secret_key: ''\n",
    "server:\n  secret_key: s3cret\n  public_instance: true\n",
])
def test_searxng_refuses_default_secret_and_public_without_valkey(tmp_path, text):
    r = _run("searxng_standin", SEARXNG_SETTINGS_PATH=_settings(tmp_path, text), SEARXNG_PORT=str(_free_port()))
    assert r.returncode == 1, r.stderr


def test_searxng_missing_settings_file_means_defaults_and_refusal(tmp_path):
    r = _run("searxng_standin", SEARXNG_SETTINGS_PATH=str(tmp_path / "none.yml"), SEARXNG_PORT=str(_free_port()))
    assert r.returncode == 1
    assert "ultrasecretkey" in r.stderr


def test_searxng_json_refused_unless_enabled(tmp_path):
    port = _free_port()
    path = _settings(tmp_path, "use_default_settings: true\nserver:\n  secret_key: abc123\n")
    proc = Proc("searxng_standin", port, SEARXNG_SETTINGS_PATH=path, SEARXNG_PORT=str(port))
    try:
        assert proc.request("GET", "/healthz") == (200, b"OK")
        assert proc.request("GET", "/search?q=lab&format=json")[0] == 403
        status, body = proc.request("GET", "/search?q=lab")
        assert status == 200 and b"<article>" in body
    finally:
        proc.stop()


def test_searxng_json_results_when_enabled(tmp_path):
    port = _free_port()
    path = _settings(tmp_path, "search:\n  formats: [html, json]\nserver:\n  limiter: true\n")
    proc = Proc("searxng_standin", port, SEARXNG_SETTINGS_PATH=path, SEARXNG_PORT=str(port),
                SEARXNG_SECRET="from-env", SOLV_STANDIN_IDENTITY="lab-aio")
    try:
        status, body = proc.request("GET", "/search?q=solv+stack&format=json")
        assert status == 200
        data = json.loads(body)
        assert data["query"] == "solv stack"
        assert len(data["results"]) == 3
        assert all({"url", "title", "content"} <= r.keys() for r in data["results"])
        assert "lab-aio" in data["results"][0]["content"]
        assert proc.request("GET", "/search?q=solv+stack&format=json")[1] == body
        assert proc.request("GET", "/search?format=json")[0] == 400
    finally:
        out = proc.stop()
    assert "The limiter requires Valkey" in out


# --- DCGM exporter stand-in ---------------------------------------------------------------------

COUNTERS = Path(__file__).resolve().parents[1] / "roles" / "dcgm_exporter" / "files" / "counters.csv"


def _counter_fields() -> list[str]:
    return [line.split(",")[0].strip() for line in COUNTERS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_dcgm_standin_serves_every_field_of_the_role_s_counters_file_per_gpu():
    port = _free_port()
    proc = Proc("dcgm_standin", port, "-f", str(COUNTERS), "-a", f"127.0.0.1:{port}", SOLV_STANDIN_GPUS="2")
    try:
        status, body = proc.request("GET", "/metrics")
    finally:
        proc.stop()
    assert status == 200
    text = body.decode()
    for field in _counter_fields():
        assert f"# TYPE {field} " in text
        samples = [line for line in text.splitlines() if line.startswith(field + "{")]
        assert [s.split('gpu="')[1][0] for s in samples] == ["0", "1"], field
    used = next(line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_FB_USED{"))
    assert 'modelName="NVIDIA H100 80GB HBM3"' in used and 'hostname="' in used and 'UUID="GPU-' in used
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter" in text


@pytest.mark.parametrize("line", ["DCGM_FI_DEV_GPU_UTIL, histogram, no such type.", "gpu_util, gauge, not a field",
                                  "DCGM_FI_DEV_GPU_UTIL gauge"])
def test_dcgm_standin_refuses_a_counters_file_dcgm_exporter_refuses(tmp_path, line):
    bad = tmp_path / "counters.csv"
    bad.write_text(f"# a comment\nDCGM_FI_DEV_FB_USED, gauge, used.\n{line}\n")
    r = _run("dcgm_standin", "-f", str(bad), "-a", f"127.0.0.1:{_free_port()}")
    assert r.returncode == 1
    assert f"{bad}:3" in r.stderr


def test_dcgm_standin_without_its_counters_file_exits():
    r = _run("dcgm_standin", "-a", f"127.0.0.1:{_free_port()}", DCGM_EXPORTER_COLLECTORS="/nonexistent.csv")
    assert r.returncode == 1 and "could not read collectors file /nonexistent.csv" in r.stderr
