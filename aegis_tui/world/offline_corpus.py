"""The offline corpus: documentation that ships with every Python, gathered without imports.

Two sources, both present on any CPython install:

- ``pydoc_data.topics.topics``: the language reference topics ``help()`` shows
  ("The assert statement", "Mutable Sequence Types", ...), split at their section headings.
- Standard-library docstrings: for every public name in ``sys.stdlib_module_names`` (and
  its public submodules), the source file is found with ``importlib.util.find_spec`` (which
  does not import a top-level module) and parsed with ``ast``; the module docstring and
  the docstrings of public top-level functions, classes and their public methods become
  documents. Nothing is imported, so modules with import-time side effects
  (``antigravity``, ``this``, ``tkinter``...) are harmless. Modules compiled into the
  interpreter have no source; a short allow-list of them with no import-time side effects
  (``gc``, ``sys``, ``math``, ``itertools``...) is read from ``__doc__`` instead.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import itertools
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DOCS_URL = "https://docs.python.org/3/library/"
MAX_BODY_CHARS = 4000  # indexed text per document; the snippet shown is much shorter
MAX_METHODS_PER_CLASS = 40
MAX_SOURCE_BYTES = 2_000_000
MAX_PACKAGE_DEPTH = 3

# Never documents: private helpers, tests, demos, the corpus itself, joke modules.
SKIP_MODULES: frozenset[str] = frozenset({
    "test", "tests", "idlelib", "turtledemo", "pydoc_data", "lib2to3", "ensurepip", "this",
    "antigravity", "__phello__", "ntpath", "genericpath", "nturl2path", "sre_compile",
    "sre_constants", "sre_parse", "msilib", "msvcrt", "nt", "winreg", "winsound",
})
# Compiled modules whose import has no side effects; their docs come from ``__doc__``.
SAFE_COMPILED: frozenset[str] = frozenset({
    "array", "atexit", "binascii", "builtins", "cmath", "errno", "faulthandler", "gc",
    "itertools", "marshal", "math", "mmap", "select", "sys", "time", "unicodedata", "zlib",
})
# Modules documented on another module's page.
PAGE_ALIASES: dict[str, str] = {"posixpath": "os.path"}
# Dotted modules with a docs page of their own (most submodules are documented on their
# package's page or not at all).
DOTTED_PAGES: frozenset[str] = frozenset({
    "collections.abc", "concurrent.futures", "email.message", "email.parser", "email.policy",
    "email.utils", "http.client", "http.cookies", "http.server", "importlib.metadata",
    "importlib.resources", "logging.config", "logging.handlers",
    "multiprocessing.shared_memory", "os.path", "unittest.mock", "urllib.error",
    "urllib.parse", "urllib.request", "urllib.robotparser", "xml.dom.minidom",
    "xml.dom.pulldom", "xml.etree.ElementTree", "xml.sax.handler", "xml.sax.saxutils",
    "xml.sax.xmlreader", "xmlrpc.client", "xmlrpc.server", "dbm", "curses.ascii",
    "curses.panel", "tkinter.ttk", "tkinter.messagebox", "tkinter.font",
})

_HEADING_RULE = re.compile(r"^([*=\-~^\"+])\1{2,}\s*$")
_TABLE_RULE = re.compile(r"[+|]?(?:[-=]{3,}[+|])+[-=]*|[-=+|]{4,}")
# "json.dumps", "the pickle module", "module copyreg": how docstrings cite other modules.
_MODULE_REF = re.compile(
    r"\b([a-z][a-z0-9_]*)(?:\.[A-Za-z_]|\s+module\b)|\bmodule\s+([a-z][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class CorpusDoc:
    """One searchable document."""

    name: str  # dotted name ("json.dumps") or "topic:<key>" for a reference topic
    title: str  # shown as the result's title
    module: str  # the top-level module (or "reference"): results are diversified per module
    body: str
    url: str
    hints: tuple[str, ...]  # related module names, offered as curiosity topics
    kind: str = "definition"  # "module" (a module's own docstring), "topic" or "definition"


def _public(name: str) -> bool:
    return not name.startswith("_") and name not in SKIP_MODULES


def _tidy_body(text: str) -> str:
    """Docstring text for indexing: tables' rule lines removed, bounded."""
    text = inspect.cleandoc(text)
    text = _TABLE_RULE.sub(" ", text)
    return text[:MAX_BODY_CHARS].strip()


def _summary(doc: str, limit: int = 80) -> str:
    """The first sentence (or line) of a docstring, for a title."""
    para = inspect.cleandoc(doc).split("\n\n", 1)[0]
    para = " ".join(para.split())
    match = re.match(r"(.+?[.!?])(\s|$)", para)
    line = match.group(1) if match else para
    if len(line) > limit:
        line = line[: limit - 1].rsplit(" ", 1)[0] + "…"
    return line


def docs_url(module: str, name: str | None = None) -> str:
    """The docs.python.org page (and anchor) for a module or one of its names."""
    if module == "builtins":
        return f"{DOCS_URL}functions.html" + (f"#{name}" if name else "")
    if "." in module and module not in DOTTED_PAGES:
        # Documented (if at all) on the package's page under names we cannot know, so a
        # ``pydoc:`` reference (it also keeps every document's URL distinct).
        return f"pydoc:{module}" + (f".{name}" if name else "")
    page = PAGE_ALIASES.get(module, module)
    anchor = f"#{page}.{name}" if name else f"#module-{page}"
    return f"{DOCS_URL}{page}.html{anchor}"


def _hints(module: str, body: str, stdlib: frozenset[str], *, overview: bool = False,
           limit: int = 3) -> tuple[str, ...]:
    """Module names worth exploring next: the document's own, then modules its text cites.

    A submodule's overview also names the submodule itself ("json.decoder"), which leads
    curiosity one level deeper than the package.
    """
    found = [module.split(".")[0]]
    if overview and "." in module:
        found.append(module)
    for match in _MODULE_REF.finditer(body):
        name = match.group(1) or match.group(2)
        if name in stdlib and name not in found and _public(name):
            found.append(name)
            if len(found) >= limit:
                break
    return tuple(found)


# -- reference topics ------------------------------------------------------------------------
def topic_documents() -> Iterator[CorpusDoc]:
    """``pydoc_data`` reference topics, one document per section."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip it; the docstrings still make a corpus
        return
    for key, text in sorted(topics.items()):
        if not isinstance(text, str) or not text.strip():
            continue
        lines = text.splitlines()
        title = lines[0].strip() if lines else key
        sections: list[tuple[str, list[str]]] = [(title, [])]
        for i, line in enumerate(lines[1:], start=1):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if _HEADING_RULE.match(line):
                continue
            if line.strip() and _HEADING_RULE.match(following) and i > 1:
                sections.append((line.strip(), []))
            else:
                sections[-1][1].append(line)
        for index, (heading, body_lines) in enumerate(sections):
            body = _tidy_body("\n".join(body_lines))
            if len(body) < 40:
                continue
            full_title = title if index == 0 else f"{title}: {heading}"
            anchor = f"#{index}" if index else ""
            yield CorpusDoc(name=f"topic:{key}{anchor}", title=full_title[:120],
                            module="reference", body=body, url=f"pydoc:{key}{anchor}", hints=(),
                            kind="topic")


# -- module docstrings -----------------------------------------------------------------------
def _source_path(name: str) -> Path | None:
    """The ``.py`` source of a top-level stdlib module, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    origin = spec.origin or ""
    if spec.submodule_search_locations:
        init = Path(next(iter(spec.submodule_search_locations), "")) / "__init__.py"
        return init if init.is_file() else None
    if origin.endswith(".py"):
        return Path(origin)
    if origin == "frozen":  # os, io, codecs...: frozen, but the source is still on disk
        filename = getattr(spec.loader_state, "filename", None)
        if filename and str(filename).endswith(".py"):
            return Path(filename)
        candidate = Path(os.path.dirname(os.__file__)) / f"{name}.py"
        return candidate if candidate.is_file() else None
    return None


def _package_modules(name: str, init: Path, depth: int = 1) -> Iterator[tuple[str, Path]]:
    """Public submodules of a package, by walking its directory (no imports)."""
    if depth > MAX_PACKAGE_DEPTH:
        return
    try:
        entries = sorted(init.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        stem = entry.name[:-3] if entry.name.endswith(".py") else entry.name
        if not _public(stem) or stem == "__init__" or not stem.isidentifier():
            continue
        if entry.is_file() and entry.suffix == ".py":
            yield f"{name}.{stem}", entry
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            yield f"{name}.{stem}", entry / "__init__.py"
            yield from _package_modules(f"{name}.{stem}", entry / "__init__.py", depth + 1)


def _literal_all(tree: ast.Module) -> set[str] | None:
    """A module's ``__all__`` when it is a plain list/tuple of strings, else None."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            with contextlib.suppress(ValueError, TypeError, SyntaxError, MemoryError):
                value = ast.literal_eval(node.value)
                if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                    return set(value)
    return None


def _source_documents(module: str, path: Path, stdlib: frozenset[str]) -> Iterator[CorpusDoc]:
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError, MemoryError, RecursionError):
        return
    top = module.split(".")[0]
    shown = PAGE_ALIASES.get(module, module)  # posixpath is what people call os.path
    doc = ast.get_docstring(tree)
    if doc:
        body = _tidy_body(doc)
        yield CorpusDoc(shown, f"{shown} — {_summary(doc)}", top, body, docs_url(module),
                        _hints(shown, body, stdlib, overview=True), kind="module")
    exported = _literal_all(tree)
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.name.startswith("_") or (exported is not None and node.name not in exported):
            continue
        yield from _definition_documents(module, shown, top, node, stdlib)


def _definition_documents(module: str, shown: str, top: str,
                          node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
                          stdlib: frozenset[str]) -> Iterator[CorpusDoc]:
    qualified = f"{shown}.{node.name}"
    doc = ast.get_docstring(node)
    if doc:
        body = _tidy_body(doc)
        yield CorpusDoc(qualified, qualified, top, body, docs_url(module, node.name),
                        _hints(shown, body, stdlib))
    if not isinstance(node, ast.ClassDef):
        return
    methods = 0
    for child in node.body:
        if (isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                and not child.name.startswith("_") and methods < MAX_METHODS_PER_CLASS):
            method_doc = ast.get_docstring(child)
            if method_doc:
                methods += 1
                body = _tidy_body(method_doc)
                name = f"{node.name}.{child.name}"
                yield CorpusDoc(f"{shown}.{name}", f"{shown}.{name}", top, body,
                                docs_url(module, name), _hints(shown, body, stdlib))


def _compiled_documents(module: str, stdlib: frozenset[str]) -> Iterator[CorpusDoc]:
    """Docs of an allow-listed compiled module, read from ``__doc__`` after importing it."""
    try:
        mod = sys.modules.get(module) or importlib.import_module(module)
    except Exception:  # an exotic build without it: just fewer documents
        return
    doc = getattr(mod, "__doc__", None)
    if isinstance(doc, str) and doc.strip():
        body = _tidy_body(doc)
        yield CorpusDoc(module, f"{module} — {_summary(doc)}", module, body, docs_url(module),
                        _hints(module, body, stdlib), kind="module")
    for attr in sorted(vars(mod)):
        if attr.startswith("_"):
            continue
        obj = getattr(mod, attr, None)
        if not callable(obj) or inspect.ismodule(obj):
            continue
        if getattr(obj, "__module__", module) not in (module, None):
            continue  # re-exported from elsewhere; documented there
        obj_doc = getattr(obj, "__doc__", None)
        if isinstance(obj_doc, str) and obj_doc.strip():
            body = _tidy_body(obj_doc)
            yield CorpusDoc(f"{module}.{attr}", f"{module}.{attr}" if module != "builtins"
                            else attr, module, body, docs_url(module, attr),
                            _hints(module, body, stdlib))
        if isinstance(obj, type):
            yield from _compiled_methods(module, attr, obj, stdlib)


def _compiled_methods(module: str, cls_name: str, cls: type,
                      stdlib: frozenset[str]) -> Iterator[CorpusDoc]:
    methods = 0
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_") or methods >= MAX_METHODS_PER_CLASS or not callable(member):
            continue
        doc = getattr(member, "__doc__", None)
        if isinstance(doc, str) and doc.strip():
            methods += 1
            body = _tidy_body(doc)
            qualified = f"{cls_name}.{name}"
            title = qualified if module == "builtins" else f"{module}.{qualified}"
            url = (f"{DOCS_URL}stdtypes.html#{qualified}" if module == "builtins"
                   else docs_url(module, qualified))
            yield CorpusDoc(f"{module}.{qualified}", title, module, body, url,
                            _hints(module, body, stdlib))


def module_documents() -> Iterator[CorpusDoc]:
    """Docstring documents for every public standard-library module this Python has."""
    names: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    stdlib = frozenset(n for n in names if _public(n))
    for name in sorted(stdlib):
        if name in SAFE_COMPILED:
            yield from _compiled_documents(name, stdlib)
            continue
        path = _source_path(name)
        if path is None:
            continue
        yield from _source_documents(name, path, stdlib)
        if path.name == "__init__.py":
            for sub, sub_path in _package_modules(name, path):
                yield from _source_documents(sub, sub_path, stdlib)


def collect_documents() -> Iterator[CorpusDoc]:
    """Every document of the corpus, reference topics first; names and URLs are unique."""
    names: set[str] = set()
    urls: set[str] = set()
    for doc in itertools.chain(topic_documents(), module_documents()):
        if doc.name in names:
            continue
        names.add(doc.name)
        if doc.url in urls:  # results are deduplicated by URL, so each needs its own
            doc = dataclasses.replace(doc, url=f"pydoc:{doc.name}")
        urls.add(doc.url)
        yield doc
