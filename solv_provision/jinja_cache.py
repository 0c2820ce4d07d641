"""Compiled Jinja templates kept on disk for solv-provision's own plays (apply, check, render).

ansible-core 2.19 keeps no compiled template: each worker process (one per task and host) compiles every template
string it meets, and a no-op run of the lab compiles about 1,600 of them (550 distinct), about 0.5 ms each. The held
play (solv_provision.held_play) installs this cache when the CLI names its folder in SOLV_JINJA_CACHE: a template
compiled once, in any run, is read back as its code object (marshal) instead.

What Jinja's compiler turns a template into depends on the template's text, the environment's syntax and code
generation settings, Ansible's escape_backslashes at compile time, and, of each filter and test the template names,
whether it exists and what it is passed (context, environment): all of it is the key, so a changed plugin or
setting compiles anew. A template that fails to compile is never kept; one from a vault is never written to disk.
The folder is the user's own (0700, files 0600); it is not used when anyone else may write to it. Deleting it is
always safe. Plain ansible-playbook never loads this module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import marshal
import os
import shutil
import stat
import time
import types
from pathlib import Path

from solv_provision import paths

ENV = "SOLV_JINJA_CACHE"  # the play's environment: the cache's folder ('' for none)
MAX_ENTRIES = 20_000  # about 80 MB; beyond it the folder starts again empty
UNUSED_DAYS = 30  # a folder of other versions no play used for this long is removed
_COMPILE_PARAMETERS = ["self", "source", "name", "filename", "raw", "defer_init"]  # Jinja 3.1's Environment.compile


def environment() -> dict[str, str]:
    """The play's SOLV_JINJA_CACHE, as the CLI passes it: the user's own setting ('' turns the cache off), else
    `jinja` in solv-provision's cache folder."""
    return {ENV: os.environ.get(ENV, str(paths.cache_dir() / "jinja"))}


def install(folder: str) -> bool:
    """Compile Jinja templates through the cache in FOLDER (a subfolder per Python, Jinja and Ansible version);
    False, and nothing changed, where the folder is unusable, this Ansible lacks what the key needs or Jinja's
    compile is not the one this module wraps."""
    if not folder:
        return False
    try:
        import jinja2
        from ansible import release
        from ansible._internal._datatag._tags import VaultedValue
        from ansible._internal._templating._jinja_bits import _TemplateCompileContext
    except ImportError:
        return False
    if list(inspect.signature(jinja2.Environment.compile).parameters) != _COMPILE_PARAMETERS:
        return False  # not the Jinja this module wraps
    versions = f"py{importlib.util.MAGIC_NUMBER.hex()}-jinja{jinja2.__version__}-ansible{release.__version__}"
    place = _private_folder(Path(folder), versions)
    if place is None:
        return False
    jinja2.Environment.compile = _cached_compile(jinja2.Environment.compile, place, VaultedValue,
                                                 _TemplateCompileContext)
    return True


def _private_folder(base: Path, versions: str) -> Path | None:
    """BASE/VERSIONS, made 0700 where missing and marked used now; None where BASE or it is not this user's alone.
    Folders of other versions unused for UNUSED_DAYS are removed, and this one emptied beyond MAX_ENTRIES."""
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _owned_alone(base):
            return None
        place = base / versions
        place.mkdir(mode=0o700, exist_ok=True)
        if not _owned_alone(place):
            return None
        os.utime(place)
        unused_since = time.time() - UNUSED_DAYS * 86400
        with os.scandir(base) as entries:
            for entry in entries:
                if entry.name != versions and entry.is_dir(follow_symlinks=False) and \
                        entry.stat(follow_symlinks=False).st_mtime < unused_since:
                    shutil.rmtree(entry.path, ignore_errors=True)
        with os.scandir(place) as entries:
            if sum(1 for _ in entries) > MAX_ENTRIES:
                shutil.rmtree(place, ignore_errors=True)
                place.mkdir(mode=0o700, exist_ok=True)
        return place
    except OSError:
        return None


def _owned_alone(path: Path) -> bool:
    """A folder of this user's that no one else may write to (what it holds is code this process runs)."""
    info = os.lstat(path)
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _settings(env) -> str:
    """The environment's settings that shape the compiled code (its class fixes the rest: Ansible's code generator,
    sandbox, intercepted operators, finalize)."""
    return repr((type(env).__module__, type(env).__qualname__, env.block_start_string, env.block_end_string,
                 env.variable_start_string, env.variable_end_string, env.comment_start_string, env.comment_end_string,
                 env.line_statement_prefix, env.line_comment_prefix, env.trim_blocks, env.lstrip_blocks,
                 env.newline_sequence, env.keep_trailing_newline, env.optimized, env.is_async,
                 getattr(env.finalize, "__qualname__", env.finalize), getattr(env.autoescape, "__qualname__",
                                                                              env.autoescape),
                 sorted(env.extensions)))


def _plugins_named(tree) -> list[tuple[str, str]]:
    """Each filter and test the parsed template TREE names."""
    from jinja2 import nodes

    return sorted({("filter" if isinstance(node, nodes.Filter) else "test", node.name)
                   for node in tree.find_all((nodes.Filter, nodes.Test))})


def _plugin_state(env, kind: str, name: str) -> str:
    """What Jinja's compiler reads of a filter or test: whether it exists, and what it passes it."""
    try:
        func = (env.filters if kind == "filter" else env.tests).get(name)
    except Exception:  # it fails to load: a template naming it fails to compile, and was never kept
        return "unloadable"
    return "missing" if func is None else repr(getattr(func, "jinja_pass_arg", None))


def _cached_compile(compile_, place: Path, vaulted, compile_context):
    """Jinja's Environment.compile through the cache: an entry is the code, and the state of each filter and test
    the template names when it was compiled; a plugin's state that differs now compiles it anew."""

    def compile_through_cache(self, source, name=None, filename=None, raw=False, defer_init=False):
        if raw or not isinstance(source, str) or vaulted.is_tagged_on(source) or getattr(
                self, "_debuggable_template_source", False):
            return compile_(self, source, name, filename, raw, defer_init)
        context = compile_context.current(optional=True)
        key = hashlib.sha256(repr((_settings(self), bool(context and context.escape_backslashes), name, filename,
                                   defer_init, str(source))).encode()).hexdigest()
        path = place / key
        try:
            plugins, code = marshal.loads(path.read_bytes())
            if isinstance(code, types.CodeType) and all(_plugin_state(self, kind, plugin) == state
                                                        for kind, plugin, state in plugins):
                return code
        except (OSError, ValueError, EOFError, TypeError):  # none yet, or not an entry this module wrote
            pass
        code = compile_(self, source, name, filename, raw, defer_init)  # what fails to compile is never kept
        plugins = [(kind, plugin, _plugin_state(self, kind, plugin))
                   for kind, plugin in _plugins_named(self._parse(source, name, filename))]
        _keep(path, marshal.dumps((plugins, code)))
        return code

    return compile_through_cache


def _keep(path: Path, data: bytes) -> None:
    """Write PATH (0600) whole or not at all: workers of the same run may write the same key at once."""
    part = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)
