"""The language server, end to end: ``maskfix server`` driven over stdio by a real LSP client."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as t
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from maskfix import engine
from maskfix.codes import help_uri

# One xdist worker builds this module's shared fixture once (pyproject: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("server")

FIXTURES = Path(__file__).parent / "fixtures"
CAUSAL = FIXTURES / "causal_only"
NOTEBOOK = FIXTURES / "notebooks" / "jupyter.ipynb"
PUBLISH = t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS


def recording_client() -> LanguageClient:
    """pytest-lsp's client, also keeping every diagnostics notification in order of arrival."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []

    def publish(client: LanguageClient, params: t.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append(params)

    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES, PUBLISH: publish})
    return client


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "maskfix", "server"], client_factory=recording_client),
    scope="module")  # one server for the module: every test uses its own documents
async def client(lsp_client: LanguageClient):
    capabilities = client_capabilities("visual-studio-code")
    if capabilities.notebook_document is None:  # the recorded capabilities may predate notebook sync
        capabilities.notebook_document = t.NotebookDocumentClientCapabilities(
            synchronization=t.NotebookDocumentSyncClientCapabilities())
    lsp_client.initialized_with = await lsp_client.initialize_session(t.InitializeParams(
        capabilities=capabilities))
    yield
    await lsp_client.shutdown_session()


def read(path):
    with open(path, newline="") as fh:
        return fh.read()


def offset(text, pos):
    """Index of an LSP position in ``text`` (ASCII text: characters are UTF-16 units)."""
    lines = text.splitlines(True)
    return sum(len(l) for l in lines[:pos.line]) + pos.character


def apply(text, edits):
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(text, e.range.start)] + e.new_text + text[offset(text, e.range.end):]
    return text


def as_changes(edits):
    """The edits as incremental content changes, last first, the way an editor syncs them."""
    ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)
    return [t.TextDocumentContentChangePartial(range=e.range, text=e.new_text) for e in ordered]


async def published(client, uri, since):
    """The first diagnostics for ``uri`` that arrived after the first ``since`` notifications."""
    for _ in range(3000):
        found = [p for p in client.published[since:] if p.uri == uri]
        if found:
            return found[0]
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no diagnostics for {uri}")


def open_file(client, uri, text, language="python"):
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        text_document=t.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))


async def code_actions(client, uri, rng, only=None):
    return await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), range=rng,
        context=t.CodeActionContext(diagnostics=[], only=only)))


def edits_of(action):
    return {c.text_document.uri: c.edits for c in action.edit.document_changes}


@pytest.mark.asyncio(loop_scope="module")
async def test_diagnostic_quick_fix_and_clean_result(client, tmp_path):
    uri = (tmp_path / "model.py").as_uri()
    text = read(CAUSAL / "before.py")
    since = len(client.published)
    open_file(client, uri, text)
    diagnostics = await published(client, uri, since)
    assert diagnostics.version == 1
    [d] = diagnostics.diagnostics
    [finding] = engine.check_source(text)
    assert (d.code, d.range.start.line + 1, d.range.start.character + 1) == ("MF001", finding.line, finding.column)
    assert d.message == finding.message and d.source == "maskfix"
    assert d.code_description.href == help_uri("MF001")
    line = text.splitlines()[d.range.start.line]
    assert line[d.range.start.character:d.range.end.character] == "attention_mask"  # the flagged argument

    actions = await code_actions(client, uri, d.range)
    quick = [a for a in actions if a.kind == t.CodeActionKind.QuickFix]
    assert len(quick) == 1 and quick[0].diagnostics[0].code == "MF001"
    changes = edits_of(quick[0])
    assert list(changes) == [uri]
    assert [c.text_document.version for c in quick[0].edit.document_changes] == [1]
    assert apply(text, changes[uri]) == read(CAUSAL / "after.py")

    since = len(client.published)
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=as_changes(changes[uri])))
    diagnostics = await published(client, uri, since)
    assert diagnostics.version == 2 and list(diagnostics.diagnostics) == []
    assert await code_actions(client, uri, d.range) is None  # nothing left to fix


@pytest.mark.asyncio(loop_scope="module")
async def test_fix_all_source_action(client, tmp_path):
    uri = (tmp_path / "model.py").as_uri()
    text = read(CAUSAL / "before.py")
    open_file(client, uri, text)
    await published(client, uri, 0)
    top = t.Range(start=t.Position(0, 0), end=t.Position(0, 0))
    [action] = await code_actions(client, uri, top, only=[t.CodeActionKind.SourceFixAll])
    assert action.kind == "source.fixAll.maskfix"
    assert apply(text, edits_of(action)[uri]) == read(CAUSAL / "after.py")
    # the quick fix is offered only on the flagged lines
    assert await code_actions(client, uri, top, only=[t.CodeActionKind.QuickFix]) is None


@pytest.mark.asyncio(loop_scope="module")
async def test_a_cancelled_code_action_request_is_answered_as_cancelled(client, tmp_path):
    uri = (tmp_path / "model.py").as_uri()
    open_file(client, uri, read(CAUSAL / "before.py") * 10)  # keeps the analysis busy for a while
    params = t.CodeActionParams(text_document=t.TextDocumentIdentifier(uri=uri),
                                range=t.Range(start=t.Position(0, 0), end=t.Position(0, 0)),
                                context=t.CodeActionContext(diagnostics=[]))
    answer = asyncio.ensure_future(client.protocol.send_request_async(
        t.TEXT_DOCUMENT_CODE_ACTION, params, msg_id="to-cancel"))
    await asyncio.sleep(0.05)
    client.protocol.notify(t.CANCEL_REQUEST, t.CancelParams(id="to-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(answer, 30)
    await published(client, uri, 0)  # the server goes on


@pytest.mark.asyncio(loop_scope="module")
async def test_select_from_the_projects_configuration(client, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.maskfix]\nselect = ["MF003"]\n')
    uri = (tmp_path / "model.py").as_uri()
    since = len(client.published)
    open_file(client, uri, read(CAUSAL / "before.py"))  # only MF001 here
    assert list((await published(client, uri, since)).diagnostics) == []


def change(client, uri, version, text):
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=text)]))


@pytest.mark.asyncio(loop_scope="module")
async def test_changes_are_debounced(client, tmp_path):
    uri = (tmp_path / "model.py").as_uri()
    open_file(client, uri, "import os\n")
    assert list((await published(client, uri, 0)).diagnostics) == []
    since = len(client.published)
    for version in (2, 3):  # typing: quick to analyse, but superseded within the quiet spell
        change(client, uri, version, f"import os  # {version}\n")
        await asyncio.sleep(0.05)
    change(client, uri, 4, read(CAUSAL / "before.py"))
    diagnostics = await published(client, uri, since)
    assert diagnostics.version == 4 and len(diagnostics.diagnostics) == 1
    await asyncio.sleep(0.5)
    assert [p.version for p in client.published[since:] if p.uri == uri] == [4]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_result_for_an_old_version_is_dropped(client, tmp_path):
    uri = (tmp_path / "model.py").as_uri()
    since = len(client.published)
    open_file(client, uri, read(CAUSAL / "before.py") * 20)  # analysed at once, for a while
    await asyncio.sleep(0.1)
    change(client, uri, 2, "import os\n")
    diagnostics = await published(client, uri, since)
    assert diagnostics.version == 2 and list(diagnostics.diagnostics) == []
    assert [p.version for p in client.published[since:] if p.uri == uri] == [2]


@pytest.mark.asyncio(loop_scope="module")
async def test_notebook_text_documents_are_skipped(client, tmp_path):
    skipped, model = (tmp_path / "nb.ipynb").as_uri(), (tmp_path / "model.py").as_uri()
    since = len(client.published)
    open_file(client, skipped, read(NOTEBOOK), language="json")
    open_file(client, model, read(CAUSAL / "before.py"))
    await published(client, model, since)
    assert [p.uri for p in client.published[since:] if p.uri in (skipped, model)] == [model]


@pytest.mark.asyncio(loop_scope="module")
async def test_notebook_document_per_cell_diagnostics_and_fix(client, tmp_path):
    [selector] = client.initialized_with.capabilities.notebook_document_sync.notebook_selector
    assert [c.language for c in selector.cells] == ["python"] and selector.notebook == "jupyter-notebook"
    nb_uri = (tmp_path / "nb.ipynb").as_uri()
    cells = json.loads(read(NOTEBOOK))["cells"]
    docs, nb_cells = [], []
    for i, cell in enumerate(cells, 1):
        uri = f"vscode-notebook-cell:{tmp_path}/nb.ipynb#C{i}"
        code = cell["cell_type"] == "code"
        docs.append(t.TextDocumentItem(uri=uri, language_id="python" if code else "markdown", version=1,
                                       text="".join(cell["source"])))
        nb_cells.append(t.NotebookCell(kind=t.NotebookCellKind.Code if code else t.NotebookCellKind.Markup,
                                       document=uri))
    since = len(client.published)
    client.notebook_document_did_open(t.DidOpenNotebookDocumentParams(
        notebook_document=t.NotebookDocument(uri=nb_uri, notebook_type="jupyter-notebook", version=1,
                                             cells=nb_cells),
        cell_text_documents=docs))
    code_cells = [doc.uri for doc in docs if doc.language_id == "python"]
    await published(client, code_cells[-1], since)  # cells are published in order
    assert {p.uri for p in client.published[since:] if p.uri.startswith("vscode-notebook-cell")} == set(code_cells)
    decoder_cell, caller_cell = docs[2].uri, docs[4].uri  # cells 3 and 5, as `maskfix check` says
    [d] = client.diagnostics[decoder_cell]
    assert (d.code, d.range.start.line + 1, d.range.start.character + 1) == ("MF001", 14, 53)
    assert [(x.code, x.range.start.line + 1) for x in client.diagnostics[caller_cell]] == [("MF002", 2)]
    assert all(not client.diagnostics[uri] for uri in code_cells if uri not in (decoder_cell, caller_cell))

    [quick] = [a for a in await code_actions(client, decoder_cell, d.range) if a.kind == "quickfix"]
    changes = edits_of(quick)
    assert decoder_cell in changes and set(changes) <= set(code_cells)
    since = len(client.published)
    client.notebook_document_did_change(t.DidChangeNotebookDocumentParams(
        notebook_document=t.VersionedNotebookDocumentIdentifier(uri=nb_uri, version=2),
        change=t.NotebookDocumentChangeEvent(cells=t.NotebookDocumentCellChanges(text_content=[
            t.NotebookDocumentCellContentChanges(
                document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
                changes=as_changes(edits))
            for uri, edits in changes.items()]))))
    await published(client, code_cells[-1], since)
    # MF002 goes too: as in `maskfix check`, a call site is reported only while its decoder is buggy
    assert all(list(client.diagnostics[uri]) == [] for uri in code_cells)
    # the cells now read what `maskfix rewrite` writes into the notebook file
    from maskfix.notebook import Notebook

    nb = Notebook.parse(read(NOTEBOOK).encode())
    rewritten = json.loads(nb.with_source(engine.rewrite_source(nb.source)))["cells"]
    texts = [apply(doc.text, changes.get(doc.uri, [])) for doc in docs]
    assert texts == ["".join(c["source"]) for c in rewritten]
    assert texts[2] != docs[2].text


def test_without_the_lsp_extra_one_clear_line():
    code = "import sys\nsys.modules['pygls'] = None\nfrom maskfix.cli import main\nsys.exit(main(['server']))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("maskfix: error: the language server needs pip install 'maskfix[lsp]'")
    assert len(proc.stderr.splitlines()) == 1
