"""The language server: ``maskfix server`` speaks LSP on stdin and stdout.

Diagnostics are published when a document opens and, after a short quiet
spell, when it changes.  A quick fix and a ``source.fixAll.maskfix`` action
apply the rewrite to the open document: its decoders and their call sites in
the same file.  Notebooks the client syncs as notebook documents are analysed
as one program, like ``maskfix check`` does, with diagnostics on their cells.

Each document is analysed on its own by the engine ``maskfix check`` uses, in
one worker thread (the engine keeps per-run state), so the event loop keeps
serving requests.  A result is dropped when a newer version arrived meanwhile.
Needs the ``lsp`` extra (pygls).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import PositionCodec

from . import __version__
from .codes import help_uri
from .plugins import analyse_one, first_line

DEBOUNCE = 0.3  # seconds without a change before a changed document is analysed
FIX_ALL = "source.fixAll.maskfix"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # LSP's line ends
_TOKEN = re.compile(r"[\w.]+")


def split_lines(text: str) -> List[str]:
    """``text`` as lines with their ends, split where LSP splits them."""
    return _LINE.findall(text)


@dataclass
class Snapshot:
    """What one analysis sees: a file, or the Python cells of a notebook."""

    key: str  # the document's or the notebook's URI
    versions: Dict[str, int]  # URI -> version of every document analysed
    texts: Dict[str, str]  # URI -> text
    cells: Optional[List[dict]] = None  # a notebook's cells in nbformat shape
    cell_uris: List[Optional[str]] = field(default_factory=list)  # None: not a Python cell

    @property
    def stamp(self) -> tuple:
        return (tuple(self.cell_uris), tuple(sorted(self.versions.items())))


@dataclass
class Result:
    stamp: tuple
    diagnostics: Dict[str, List[t.Diagnostic]]
    edits: Dict[str, List[t.TextEdit]] = field(default_factory=dict)  # the rewrite, per document


def analyse(snap: Snapshot, codec: PositionCodec) -> Result:
    """Diagnostics and fix edits for ``snap``; runs in the worker thread."""
    result = Result(snap.stamp, {uri: [] for uri in snap.texts})
    notebook = None
    source = snap.texts.get(snap.key, "")
    if snap.cells is not None:
        from .notebook import Notebook

        notebook = Notebook.parse(json.dumps({"cells": snap.cells, "metadata": {}, "nbformat": 4,
                                              "nbformat_minor": 5}))
        source = notebook.source
    outcome = analyse_one(snap.key, source, fix=True, notebook=notebook is not None)
    if outcome is None or outcome.error:  # a syntax error while typing: nothing to say yet
        return result
    select = [c.upper() for c in selected(snap.key)]
    for f in outcome.findings:
        if select and not any(f.code.startswith(c) for c in select):
            continue
        uri, line = snap.key, f.line
        if notebook is not None:
            number, line = notebook.locate(f.line)
            uri = snap.cell_uris[number - 1]
        text = (split_lines(snap.texts[uri])[line - 1:line] or [""])[0]
        start = f.column - 1
        token = _TOKEN.match(text, start)
        end = token.end() if token else min(start + 1, len(text.rstrip("\r\n")))
        result.diagnostics[uri].append(t.Diagnostic(
            range=t.Range(t.Position(line - 1, codec.client_num_units(text[:start])),
                          t.Position(line - 1, codec.client_num_units(text[:end]))),
            message=first_line(f.message), severity=t.DiagnosticSeverity.Warning, code=f.code,
            code_description=t.CodeDescription(href=help_uri(f.code)), source="maskfix",
            data={"fixable": f.fixable},
        ))
    if outcome.new_source is not None:
        new = {snap.key: outcome.new_source}
        if notebook is not None:
            cells = json.loads(notebook.with_source(outcome.new_source))["cells"]
            new = {uri: _joined(cell["source"]) for uri, cell in zip(snap.cell_uris, cells) if uri}
        for uri, text in new.items():
            if text != snap.texts[uri]:
                result.edits[uri] = text_edits(snap.texts[uri], text, codec)
    return result


def selected(uri: str) -> List[str]:
    """``select`` from the ``[tool.maskfix]`` governing a file, as ``maskfix check`` reads it."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return []
    from .codes import known_codes
    from .config import ConfigError, load_config

    try:
        config = load_config([url2pathname(unquote(parsed.path))])
    except ConfigError:
        return []  # `maskfix check` reports the mistake; here every code stays on
    chosen = config.select if config.select is not None else known_codes()
    return [c for c in chosen if c not in config.ignore]


def _joined(source) -> str:
    return source if isinstance(source, str) else "".join(source)


def text_edits(old: str, new: str, codec: PositionCodec) -> List[t.TextEdit]:
    """Whole-line edits that turn ``old`` into ``new``; unchanged lines are left alone."""
    a, b = split_lines(old), split_lines(new)

    def at(i: int) -> t.Position:
        if i < len(a) or not a or a[-1].endswith(("\n", "\r")):
            return t.Position(i, 0)
        return t.Position(len(a) - 1, codec.client_num_units(a[-1]))  # end of a last line with no end

    return [t.TextEdit(range=t.Range(at(i1), at(i2)), new_text="".join(b[j1:j2]))
            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
            if tag != "equal"]


class MaskfixServer(LanguageServer):
    """Keeps one pending analysis per document and the latest result."""

    def __init__(self) -> None:
        # Jupyter's notebook type named: some clients cannot read a filter without one
        cells = t.NotebookDocumentFilterWithCells(cells=[t.NotebookCellLanguage(language="python")],
                                                  notebook="jupyter-notebook")
        super().__init__("maskfix", __version__,
                         text_document_sync_kind=t.TextDocumentSyncKind.Incremental,
                         notebook_document_sync=t.NotebookDocumentSyncOptions(notebook_selector=[cells]))
        self.analyser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskfix")
        self.pending: Dict[str, asyncio.Task] = {}
        self.results: Dict[str, Result] = {}

    def snapshot(self, uri: str) -> Optional[Snapshot]:
        """The current state of a Python document, or of the notebook holding ``uri``."""
        ws = self.workspace
        nb = ws.get_notebook_document(notebook_uri=uri) or ws.get_notebook_document(cell_uri=uri)
        if nb is not None:
            snap = Snapshot(nb.uri, {nb.uri: nb.version}, {}, cells=[])
            for cell in nb.cells:
                doc = ws.text_documents.get(unquote(cell.document))
                python = doc is not None and cell.kind == t.NotebookCellKind.Code and doc.language_id in (None, "python")
                snap.cells.append({"cell_type": "code" if python else "markdown", "metadata": {},
                                   "source": doc.source if doc else ""})
                snap.cell_uris.append(cell.document if python else None)
                if python:
                    snap.texts[cell.document], snap.versions[cell.document] = doc.source, doc.version
            return snap
        doc = ws.text_documents.get(unquote(uri))
        if doc is None or not (doc.language_id == "python" or uri.endswith((".py", ".pyi"))):
            return None  # not Python; a notebook the client sends as plain text is skipped too
        return Snapshot(uri, {uri: doc.version}, {uri: doc.source})

    def schedule(self, uri: str, delay: float) -> None:
        """Analyse ``uri`` after ``delay`` seconds, replacing any analysis still waiting."""
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self.pending[uri] = asyncio.ensure_future(self.refresh(uri, delay))

    async def refresh(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        snap = self.snapshot(uri)
        result = await self.analysed(snap) if snap is not None else None
        if result is None:
            return
        for doc, diagnostics in result.diagnostics.items():
            self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
                uri=doc, diagnostics=diagnostics, version=snap.versions.get(doc)))

    async def analysed(self, snap: Snapshot) -> Optional[Result]:
        """The result for ``snap``, or None when the document changed while it was computed."""
        cached = self.results.get(snap.key)
        if cached is not None and cached.stamp == snap.stamp:
            return cached
        loop = asyncio.get_running_loop()
        try:
            # Cancelling this coroutine also takes a job that has not started off the queue.
            result = await loop.run_in_executor(self.analyser, analyse, snap, self.workspace.position_codec)
        except Exception as exc:  # a maskfix bug: say so, keep serving
            self.window_log_message(t.LogMessageParams(
                type=t.MessageType.Error, message=f"maskfix: error: {snap.key}: {type(exc).__name__}: {exc}"))
            return None
        now = self.snapshot(snap.key)
        if now is None or now.stamp != snap.stamp:
            return None
        self.results[snap.key] = result
        return result

    def forget(self, uri: str, documents: List[str]) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self.results.pop(uri, None)
        for doc in documents:
            self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=doc, diagnostics=[]))

    def workspace_edit(self, snap: Snapshot, edits: Dict[str, List[t.TextEdit]]) -> t.WorkspaceEdit:
        caps = self.client_capabilities.workspace
        if caps and caps.workspace_edit and caps.workspace_edit.document_changes:
            return t.WorkspaceEdit(document_changes=[
                t.TextDocumentEdit(text_document=t.OptionalVersionedTextDocumentIdentifier(
                    uri=uri, version=snap.versions[uri]), edits=e) for uri, e in edits.items()])
        return t.WorkspaceEdit(changes=edits)


def _wants(only: Optional[list], kind: str) -> bool:
    """Whether a request limited to the kinds ``only`` asks for ``kind`` (kinds nest by dots)."""
    asked = [str(getattr(k, "value", k)) for k in only or ()]
    return only is None or any(kind == k or kind.startswith(k + ".") for k in asked)


def create_server() -> MaskfixServer:
    server = MaskfixServer()

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: MaskfixServer, params: t.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, 0)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: MaskfixServer, params: t.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, DEBOUNCE)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: MaskfixServer, params: t.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri, [params.text_document.uri])

    @server.feature(t.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_open(ls: MaskfixServer, params: t.DidOpenNotebookDocumentParams) -> None:
        ls.schedule(params.notebook_document.uri, 0)

    @server.feature(t.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_change(ls: MaskfixServer, params: t.DidChangeNotebookDocumentParams) -> None:
        ls.schedule(params.notebook_document.uri, DEBOUNCE)

    @server.feature(t.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_close(ls: MaskfixServer, params: t.DidCloseNotebookDocumentParams) -> None:
        ls.forget(params.notebook_document.uri, [c.uri for c in params.cell_text_documents])

    @server.feature(t.TEXT_DOCUMENT_CODE_ACTION, t.CodeActionOptions(
        code_action_kinds=[t.CodeActionKind.QuickFix, FIX_ALL]))
    async def code_action(ls: MaskfixServer, params: t.CodeActionParams) -> Optional[List[t.CodeAction]]:
        uri = params.text_document.uri
        snap = ls.snapshot(uri)
        result = await ls.analysed(snap) if snap is not None else None
        if result is None or not result.edits:
            return None
        edit = ls.workspace_edit(snap, result.edits)
        only = params.context.only
        actions = []
        if _wants(only, t.CodeActionKind.QuickFix.value):
            first, last = params.range.start.line, params.range.end.line
            for d in result.diagnostics.get(uri, []):
                if d.data["fixable"] and d.range.start.line <= last and d.range.end.line >= first:
                    actions.append(t.CodeAction(
                        title=f"Fix {d.code} with maskfix (rewrites the decoder and its call sites)",
                        kind=t.CodeActionKind.QuickFix, diagnostics=[d], edit=edit, is_preferred=True))
        if _wants(only, FIX_ALL):
            actions.append(t.CodeAction(title="Fix all maskfix problems", kind=FIX_ALL, edit=edit))
        return actions or None

    @server.feature(t.SHUTDOWN)
    def shutdown(ls: MaskfixServer, params: None) -> None:
        ls.analyser.shutdown(wait=False, cancel_futures=True)

    return server


def main() -> int:
    """Serve on stdin and stdout until the client asks to exit."""
    create_server().start_io()
    return 0
