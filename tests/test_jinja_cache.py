"""Compiled Jinja templates kept on disk for solv-provision's plays (solv_provision/jinja_cache.py): a template
compiled in one process is read back in the next, and whatever shapes the compiled code (a filter's arguments, the
syntax, escape_backslashes) keeps a cached template from standing in for a different one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

# Each case runs in a fresh process, as a play's workers do: it counts Jinja's own compiles under the cache.
_PROCESS = textwrap.dedent("""
    import json, sys
    import jinja2
    import ansible._internal._templating._engine  # Ansible's configuration, templated once it is imported
    import functools
    compiled = []
    _compile = jinja2.Environment.compile
    @functools.wraps(_compile)  # Jinja's signature, as the cache checks it
    def counting(self, *args, **kwargs):
        compiled.append(1)
        return _compile(self, *args, **kwargs)
    jinja2.Environment.compile = counting
    from solv_provision import jinja_cache
    installed = jinja_cache.install(sys.argv[1])
    results = {}
    exec(sys.argv[2])
    print(json.dumps({"installed": installed, "compiled": len(compiled), "results": results}))
""")


def _run(folder, code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROCESS, str(folder), textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


_ANSIBLE_TEMPLATES = """
    from ansible._internal._templating._engine import TemplateEngine
    from ansible._internal._datatag._tags import TrustedAsTemplate
    engine = TemplateEngine(variables={"names": ["a", "b"], "hosts": {"h1": {"port": 8000}}, "text": "x\\\\ny"})
    for template in ["{{ names | map('upper') | join(',') }}", "{{ names | select('equalto', 'b') | list }}",
                     "{% for h, v in hosts.items() %}{{ h }}:{{ v.port }} {% endfor %}", "{{ names is defined }}",
                     "{{ text | replace('\\\\n', '-') }}", "{{ 'a\\\\b' }}"]:
        results[template] = engine.template(TrustedAsTemplate().tag(template))
"""


def test_a_template_compiled_in_one_play_process_is_read_back_in_the_next(tmp_path):
    uncached = _run("", _ANSIBLE_TEMPLATES)
    first = _run(tmp_path, _ANSIBLE_TEMPLATES)
    second = _run(tmp_path, _ANSIBLE_TEMPLATES)
    assert (uncached["installed"], first["installed"], second["installed"]) == (False, True, True)
    assert first["results"] == second["results"] == uncached["results"]
    assert first["compiled"] == uncached["compiled"] > 0
    assert second["compiled"] == 0
    (entries,) = [list(folder.iterdir()) for folder in tmp_path.iterdir()]
    assert entries and all(entry.stat().st_mode & 0o777 == 0o600 for entry in entries)
    assert all(folder.stat().st_mode & 0o777 == 0o700 for folder in [tmp_path / f for f in os.listdir(tmp_path)])


def test_a_filter_now_passed_the_context_compiles_anew_and_works(tmp_path):
    """The compiled code calls a filter with or without the context as the filter asks: a cached template that
    called it the old way would fail or give the wrong answer."""
    plain = """
        import jinja2
        env = jinja2.Environment()
        env.filters["where"] = lambda value: f"{value} (plain)"
        results["out"] = env.from_string("{{ 'x' | where }}").render(site="lab")
    """
    with_context = """
        import jinja2
        env = jinja2.Environment()
        env.filters["where"] = jinja2.pass_context(lambda context, value: f"{value} at {context['site']}")
        results["out"] = env.from_string("{{ 'x' | where }}").render(site="lab")
    """
    assert _run(tmp_path, plain)["results"]["out"] == "x (plain)"
    again = _run(tmp_path, with_context)
    assert (again["results"]["out"], again["compiled"]) == ("x at lab", 1)
    assert _run(tmp_path, with_context)["compiled"] == 0


def test_other_syntax_settings_and_escape_backslashes_are_other_entries(tmp_path):
    code = """
        import jinja2
        results["braces"] = jinja2.Environment().from_string("[[ 1 + 1 ]] {{ 2 + 2 }}").render()
        results["brackets"] = jinja2.Environment(variable_start_string="[[", variable_end_string="]]").from_string(
            "[[ 1 + 1 ]] {{ 2 + 2 }}").render()
        from ansible._internal._templating._engine import TemplateEngine, TemplateOptions
        from ansible._internal._datatag._tags import TrustedAsTemplate
        for escape in (True, False):
            results[str(escape)] = TemplateEngine().template(TrustedAsTemplate().tag("{{ 'a\\\\tb' }}"),
                                                             options=TemplateOptions(escape_backslashes=escape))
    """
    uncached, first, second = _run("", code), _run(tmp_path, code), _run(tmp_path, code)
    assert uncached["results"] == first["results"] == second["results"]
    assert uncached["results"]["braces"] != uncached["results"]["brackets"]
    assert uncached["results"]["True"] != uncached["results"]["False"]
    assert first["compiled"] == 4 and second["compiled"] == 0


def test_a_template_that_fails_to_compile_fails_as_before_and_is_not_kept(tmp_path):
    code = """
        import jinja2
        try:
            jinja2.Environment().from_string("{{ 1 + }}")
        except jinja2.TemplateSyntaxError as error:
            results["error"] = str(error)
    """
    uncached = _run("", code)["results"]
    assert _run(tmp_path, code)["results"] == uncached and "unexpected" in uncached["error"]
    assert not any(any(folder.iterdir()) for folder in tmp_path.iterdir())


def test_a_damaged_entry_is_compiled_anew(tmp_path):
    code = """
        import jinja2
        results["out"] = jinja2.Environment().from_string("{{ 6 * 7 }}").render()
    """
    _run(tmp_path, code)
    (entry,) = [e for folder in tmp_path.iterdir() for e in folder.iterdir()]
    entry.write_bytes(entry.read_bytes()[:20])
    again = _run(tmp_path, code)
    assert (again["results"]["out"], again["compiled"]) == ("42", 1)
    assert _run(tmp_path, code)["compiled"] == 0


def test_a_vaulted_template_is_never_written_to_disk(tmp_path):
    code = """
        import jinja2
        from ansible._internal._datatag._tags import VaultedValue
        source = VaultedValue(ciphertext="$ANSIBLE_VAULT;1.1;AES256").tag("secret-{{ 1 }}")
        results["out"] = jinja2.Environment().from_string(source).render()
    """
    assert _run(tmp_path, code)["results"]["out"] == "secret-1"
    assert not any(any(folder.iterdir()) for folder in tmp_path.iterdir())


@pytest.mark.parametrize("mode", [0o770, 0o707])
def test_a_folder_others_may_write_to_is_not_used(tmp_path, mode):
    folder = tmp_path / "jinja"
    folder.mkdir()
    folder.chmod(mode)
    code = """
        import jinja2
        results["out"] = jinja2.Environment().from_string("{{ 6 * 7 }}").render()
    """
    done = _run(folder, code)
    assert (done["installed"], done["results"]["out"]) == (False, "42")
    assert not any(folder.iterdir())


def test_the_play_gets_the_cache_unless_the_user_turns_it_off(monkeypatch, tmp_path):
    from solv_provision import jinja_cache

    monkeypatch.delenv(jinja_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jinja_cache.environment() == {jinja_cache.ENV: str(tmp_path / "solv-provision" / "jinja")}
    monkeypatch.setenv(jinja_cache.ENV, "")
    assert jinja_cache.environment() == {jinja_cache.ENV: ""}


def test_render_gives_the_same_files_with_the_cache_off_cold_and_warm(cli, monkeypatch, tmp_path):
    """The roles' own templates, through the cache or not: byte-identical files."""
    outputs = []
    for folder in ("", tmp_path / "jinja", tmp_path / "jinja"):
        monkeypatch.setenv("SOLV_JINJA_CACHE", str(folder))
        result = cli("render", "all", "-i", REPO / "inventories" / "example", "--host", "gw-1")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].count("# --- ") > 10
    assert any((tmp_path / "jinja").iterdir())


def test_folders_of_other_versions_go_once_unused_for_a_month(tmp_path):
    old, recent = tmp_path / "py0000-jinja0-ansible0", tmp_path / "py0001-jinja0-ansible0"
    for folder in (old, recent):
        folder.mkdir(mode=0o700)
        (folder / "entry").write_bytes(b"")
    month_ago = os.stat(old).st_mtime - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    assert _run(tmp_path, "pass")["installed"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("py000")) == [recent.name]


def test_a_jinja_whose_compile_takes_other_arguments_is_left_alone(tmp_path):
    code = """
        results["out"] = jinja2.Environment().from_string("{{ 6 * 7 }}").render()
    """
    other = _PROCESS.replace("@functools.wraps(_compile)", "").replace("def counting(self, *args, **kwargs):",
                                                                         "def counting(self, source, *, name=None):")
    other = other.replace("return _compile(self, *args, **kwargs)", "return _compile(self, source, name)")
    done = subprocess.run([sys.executable, "-c", other, str(tmp_path), textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["installed"] is False
    assert json.loads(done.stdout)["results"] == {"out": "42"}
    assert not any(tmp_path.iterdir())
