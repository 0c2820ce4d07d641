"""Open WebUI on the all-in-one test host (role `openwebui`, the real Open WebUI): admin sign-in, the models it
gets from LiteLLM, a chat through them to the vLLM stand-in, sign-up refused, recovery by systemd alone.

Runs after converge and the idempotence check (a second converge changed nothing, secrets included).
Requests go from the test host to the published address, as a user's browser would.
"""

from __future__ import annotations

import time

import pytest
from conftest import ROOT, env_file, http, inspect, secret

NAME = "solv-openwebui"
ENV_FILE = f"{ROOT}/openwebui/env"
PROMPT = "Say hello to the SOLV stack"


@pytest.fixture(scope="module")
def env(host):
    return env_file(host, ENV_FILE)


@pytest.fixture(scope="module")
def base(entry):
    """Open WebUI as users reach it: through the entry point (its own port is not published)."""
    return entry


def sign_in(host, base, email, password):
    return http(host, "POST", f"{base}/api/v1/auths/signin", payload={"email": email, "password": password})


def admin_token(host, base, env):
    r = sign_in(host, base, env["WEBUI_ADMIN_EMAIL"], secret(host, "openwebui_admin_password"))
    assert r["status"] == 200, r
    assert r["json"]["role"] == "admin"
    return r["json"]["token"]


@pytest.fixture(scope="module")
def admin(host, base, env):
    """One admin session for the tests that only need one (Open WebUI allows 15 sign-ins per 3 minutes per user)."""
    return admin_token(host, base, env)


def test_unit_active_and_enabled(host):
    unit = host.service(NAME)
    assert unit.is_running and unit.is_enabled


def test_env_file_is_private_and_wired(host, env, address):
    f = host.file(ENV_FILE)
    assert f.user == "root" and f.group == "root" and f.mode == 0o600
    assert env["OPENAI_API_BASE_URL"] == "http://solv-litellm:4000/v1"
    assert env["ENABLE_OLLAMA_API"] == "False"
    assert env["ENABLE_PERSISTENT_CONFIG"] == "False"
    assert env["WEBUI_AUTH"] == "True" and env["ENABLE_SIGNUP"] == "False"
    assert env["ENABLE_WEB_SEARCH"] == "True" and env["WEB_SEARCH_ENGINE"] == "searxng"
    assert env["SEARXNG_QUERY_URL"] == "http://solv-searxng:8080/search?q=<query>"
    # Secrets: generated once on this host; LiteLLM's master key is LiteLLM's own.
    assert env["WEBUI_SECRET_KEY"] == secret(host, "openwebui_secret_key")
    assert env["WEBUI_ADMIN_PASSWORD"] == secret(host, "openwebui_admin_password")
    assert env["OPENAI_API_KEY"] == secret(host, "litellm_master_key")
    assert env["OPENAI_API_KEY"].startswith("sk-")
    assert host.file(f"{ROOT}/secrets/openwebui_secret_key").mode == 0o600


def test_container_network_port_and_data(host, address):
    info = inspect(host, NAME)
    assert "solv" in info["NetworkSettings"]["Networks"]
    assert info["HostConfig"]["PortBindings"] in ({}, None)
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/app/backend/data"]["Source"] == f"{ROOT}/data/openwebui"
    data = host.file(f"{ROOT}/data/openwebui")
    assert data.user == "root" and data.mode == 0o700
    assert host.file(f"{ROOT}/data/openwebui/webui.db").exists


def test_health(host, base):
    r = http(host, "GET", f"{base}/health")
    assert r["status"] == 200 and r["json"] == {"status": True}


def test_admin_signs_in_and_a_wrong_password_does_not(host, base, env):
    assert admin_token(host, base, env)
    r = sign_in(host, base, env["WEBUI_ADMIN_EMAIL"], "not-the-password")
    assert r["status"] in (400, 401, 403), r


def test_signup_is_refused(host, base):
    r = http(host, "POST", f"{base}/api/v1/auths/signup",
             payload={"name": "Mallory", "email": "mallory@example.org", "password": "S3cret-enough!"})
    assert r["status"] == 403, r


def test_models_from_litellm_and_a_chat_through_them(host, base, env, admin, models, chat_models):
    token = admin
    r = http(host, "GET", f"{base}/api/models", token)
    assert r["status"] == 200, r
    listed = {m["id"] for m in r["json"]["data"]}
    served = {m["served_model_name"] for m in models.values()}
    assert served <= listed, f"Open WebUI lists {sorted(listed)}, LiteLLM serves {sorted(served)}"
    for model in sorted(m["served_model_name"] for m in chat_models.values()):
        chat = http(host, "POST", f"{base}/api/chat/completions", token,
                    {"model": model, "stream": False, "messages": [{"role": "user", "content": PROMPT}]})
        assert chat["status"] == 200, chat
        answer = chat["json"]["choices"][0]["message"]["content"]
        # The vLLM stand-in's deterministic answer: "[<served name>@<identity>:<port> v<version>] echo: <prompt>".
        assert answer.startswith(f"[{model}@"), answer
        assert answer.endswith(f"] echo: {PROMPT}"), answer


# Three topics, one chunk each (Open WebUI splits at 1,000 characters): the stand-in's embeddings (hashed words)
# make the chunk that shares the question's words the nearest one.
RUNBOOK = "\n\n".join(topic + " " + sentence * 8 for topic, sentence in [
    ("Backups.", "The nightly backups of the gateway go to the NAS in rack seven at two in the morning. "),
    ("GPU alerts.", "GPU temperature alerts fire above eighty five degrees and page the engineer on call. "),
    ("Onboarding.", "New developers get their coding assistant key from the platform team on day one. "),
])


def upload(host, base, token, name, text):
    boundary = "solv-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n{text}\r\n--{boundary}--\r\n")
    # Processed (split, embedded, stored) before the answer comes back.
    return http(host, "POST", f"{base}/api/v1/files/?process=true&process_in_background=false", token, raw=body,
                content_type=f"multipart/form-data; boundary={boundary}")


def test_documents_are_embedded_through_the_gateway_and_retrieved(host, base, env, admin, embedding_models, chat_models):
    """RAG with the inventory's embedding model (engine auto): an uploaded document is embedded through LiteLLM by
    the vLLM stand-in, a question finds the chunk it is about, and a chat with the file gets that chunk as context."""
    [embedder] = [m["served_model_name"] for m in embedding_models.values()]
    assert env["RAG_EMBEDDING_ENGINE"] == "openai" and env["RAG_EMBEDDING_MODEL"] == embedder
    assert env["BYPASS_EMBEDDING_AND_RETRIEVAL"] == "False"
    assert env["RAG_OPENAI_API_BASE_URL"] == env["OPENAI_API_BASE_URL"]
    token = admin
    embedded_before = _embedding_requests(host, embedding_models)
    r = upload(host, base, token, "runbook.txt", RUNBOOK)
    assert r["status"] == 200, r
    file_id = r["json"]["id"]
    assert _embedding_requests(host, embedding_models) > embedded_before, "the document was not embedded by vLLM"

    question = "which temperature makes the GPU alerts fire"
    found = http(host, "POST", f"{base}/api/v1/retrieval/query/doc", token,
                 {"collection_name": f"file-{file_id}", "query": question, "k": 1})
    assert found["status"] == 200, found
    [[chunk]] = found["json"]["documents"]
    assert chunk.startswith("GPU alerts."), chunk

    chat = http(host, "POST", f"{base}/api/chat/completions", token,
                {"model": next(iter(chat_models.values()))["served_model_name"], "stream": False,
                 "messages": [{"role": "user", "content": question}], "files": [{"type": "file", "id": file_id}]})
    assert chat["status"] == 200, chat
    # The stand-in echoes the prompt Open WebUI built: the retrieved context, then the question.
    answer = chat["json"]["choices"][0]["message"]["content"]
    assert "GPU temperature alerts fire above eighty five degrees" in answer and answer.endswith(question), answer
    # No embedding model of its own on the gateway host: sentence-transformers never ran.
    assert not host.file(f"{ROOT}/data/openwebui/cache/embedding").exists


def _embedding_requests(host, embedding_models):
    """Requests the embedding instances answered, from their logs (the stand-in logs each request)."""
    return sum(host.check_output("journalctl -u solv-vllm-%s --no-pager -o cat", name).count("POST /v1/embeddings")
               for name in embedding_models)


def test_web_search_through_searxng(host, base, env, admin):
    # Open WebUI's own web search: it queries SearXNG (format=json, on the Docker network) and returns the results.
    # The lab cannot reach the web, so the scenario passes snippets on instead of fetching pages
    # (openwebui_web_search_fetch_pages: false); otherwise Open WebUI refuses the unresolvable result URLs.
    assert env.get("BYPASS_WEB_SEARCH_WEB_LOADER") == "True", "set openwebui_web_search_fetch_pages: false in the scenario"
    token = admin
    query = f"solv web search {time.time_ns()}"
    r = http(host, "POST", f"{base}/api/v1/retrieval/process/web/search", token, {"queries": [query]})
    assert r["status"] == 200, r
    items = r["json"]["items"]
    assert items, r["json"]
    assert all(query in item["title"] for item in items), items  # the SearXNG stand-in echoes the query


def test_back_by_systemd_after_kill(host, base, env):
    # RestartSec (5 s) plus a start: 40-115 s measured on 2 shared cores (Python imports dominate), well inside
    # the unit's TimeoutStartSec (openwebui_start_timeout, 300 s).
    bound_s = 240
    before = host.check_output("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
    host.check_output("docker kill %s", NAME)
    deadline = time.monotonic() + bound_s
    while True:
        started = host.run("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
        if started.rc == 0 and started.stdout.strip() != before and http(host, "GET", f"{base}/health")["status"] == 200:
            break
        assert time.monotonic() < deadline, f"{NAME} not healthy again {bound_s}s after docker kill"
        time.sleep(2)
    # The data survived: the admin still signs in.
    assert admin_token(host, base, env)
