"""Machine-readable reports and notebooks: SARIF structure, URIs, notebook locations, per-cell diffs."""

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from maskfix.cli import main
from maskfix.codes import CODES, help_uri
from test_cli_notebooks import make_notebook

jsonschema = pytest.importorskip("jsonschema")

FIXTURES = Path(__file__).parent / "fixtures"

# The parts of the SARIF 2.1.0 schema maskfix output uses, with the schema's own constraints.
_MESSAGE = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
_ARTIFACT = {
    "type": "object", "required": ["uri"], "additionalProperties": False,
    "properties": {"uri": {"type": "string", "format": "uri-reference"}, "uriBaseId": {"type": "string"}},
}
_PHYSICAL = {
    "type": "object", "required": ["artifactLocation"], "additionalProperties": False,
    "properties": {
        "artifactLocation": _ARTIFACT,
        "region": {"type": "object", "required": ["startLine"], "additionalProperties": False, "properties": {
            "startLine": {"type": "integer", "minimum": 1},
            "startColumn": {"type": "integer", "minimum": 1},
        }},
    },
}
_LOCATIONS = {"type": "array", "items": {
    "type": "object", "required": ["physicalLocation"], "properties": {"physicalLocation": _PHYSICAL}}}
SARIF_SUBSET = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "format": "uri"},
        "runs": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["tool", "results", "invocations"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name", "rules"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "rules": {
                        "type": "array", "items": {
                            "type": "object", "required": ["id", "shortDescription", "helpUri"],
                            "properties": {
                                "id": {"type": "string"}, "name": {"type": "string"},
                                "shortDescription": _MESSAGE, "fullDescription": _MESSAGE, "help": _MESSAGE,
                                "helpUri": {"type": "string", "format": "uri"},
                                "defaultConfiguration": {"type": "object", "properties": {
                                    "level": {"enum": ["none", "note", "warning", "error"]}}},
                            }}}}}}},
                "originalUriBaseIds": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["uri"], "properties": {"uri": {"type": "string", "format": "uri"}}}},
                "invocations": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["executionSuccessful"],
                    "properties": {
                        "executionSuccessful": {"type": "boolean"},
                        "toolExecutionNotifications": {"type": "array", "items": {
                            "type": "object", "required": ["message"],
                            "properties": {"message": _MESSAGE, "locations": _LOCATIONS,
                                           "level": {"enum": ["none", "note", "warning", "error"]}}}},
                    }}},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["message", "ruleId", "locations"],
                    "properties": {
                        "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": 0},
                        "level": {"enum": ["none", "note", "warning", "error"]},
                        "message": _MESSAGE, "locations": _LOCATIONS,
                        "properties": {"type": "object"},
                    }}},
            }}},
    },
}


def valid_sarif(text: str) -> dict:
    doc = json.loads(text)
    checker = jsonschema.Draft7Validator(SARIF_SUBSET, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in checker.iter_errors(doc)]
    assert not errors, errors
    run = doc["runs"][0]
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    return doc


def check(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a space in its name holding a notebook and a Python file, as the working folder."""
    folder = tmp_path / "my models"
    folder.mkdir()
    make_notebook(folder / "translate nb.ipynb")
    shutil.copy(FIXTURES / "book_tf" / "before.py", folder / "model.py")
    monkeypatch.chdir(tmp_path)
    return folder


def broken_notebook(path: Path) -> None:
    nb = make_notebook(path)
    nb["cells"][3]["source"][2:2] = ["x = (1,\n", "y = ]\n"]  # cell 4, lines 3 and 4
    path.write_text(json.dumps(nb, indent=1) + "\n")


def resolve(location: dict, base: str) -> Path:
    """The file an artifactLocation names, as a SARIF consumer resolves it."""
    uri = location["uri"]
    if "uriBaseId" in location:
        uri = base + uri
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    return Path(unquote(parsed.path))


def test_sarif_is_valid_and_uris_are_encoded(project, capsys):
    code, out, err = check(["check", "--format", "sarif", "my models"], capsys)
    doc = valid_sarif(out)
    run = doc["runs"][0]
    assert run["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base.endswith("/") and resolve({"uri": "", "uriBaseId": "%SRCROOT%"}, base) == Path.cwd()
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]]
    assert {u["uri"] for u in uris} == {"my%20models/model.py", "my%20models/translate%20nb.ipynb"}
    assert all(u["uriBaseId"] == "%SRCROOT%" for u in uris)
    assert {resolve(u, base) for u in uris} == {project / "model.py", project / "translate nb.ipynb"}
    # An absolute path becomes a file:// URI.
    code, out, err = check(["check", "--format", "sarif", str(project / "model.py")], capsys)
    (result,) = valid_sarif(out)["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"].startswith("file:///") and "uriBaseId" not in location
    assert resolve(location, "") == project / "model.py"


def test_sarif_rules_link_to_the_codes_page(project, capsys):
    code, out, err = check(["check", "--format", "sarif", "my models"], capsys)
    rules = valid_sarif(out)["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    for rule in rules:
        assert rule["helpUri"] == help_uri(rule["id"])
        assert rule["help"]["text"] == CODES[rule["id"]]["explanation"]
        page = Path(unquote(urlparse(rule["helpUri"]).path))
        assert f"\n## {rule['id']}\n" in page.read_text()


def flagged_file_line(nb_path: Path, cell: int, line: int) -> int:
    """The 1-based line of the .ipynb text holding source line ``line`` of ``cell``."""
    source_line = json.loads(nb_path.read_text())["cells"][cell - 1]["source"][line - 1]
    text_lines = nb_path.read_text().splitlines()
    (hit,) = [i + 1 for i, t in enumerate(text_lines) if t.strip().rstrip(",") == json.dumps(source_line)]
    return hit


def test_notebook_findings_point_at_the_line_of_the_notebook_file(project, capsys):
    nb_path = project / "translate nb.ipynb"
    code, out, err = check(["check", str(nb_path)], capsys)
    cell, line, col = (int(x) for x in out.split(":cell ")[1].split(":")[:3])
    expected = flagged_file_line(nb_path, cell, line)
    assert "attention_mask=padding_mask" in nb_path.read_text().splitlines()[expected - 1]

    code, out, err = check(["check", "--format", "sarif", str(nb_path)], capsys)
    (result,) = valid_sarif(out)["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": expected}
    assert result["message"]["text"].endswith(f"(cell {cell}, line {line}, column {col})")
    assert result["properties"] == {"notebookCell": cell, "cellLine": line, "cellColumn": col}

    code, out, err = check(["check", "--format", "github", str(nb_path)], capsys)
    assert f",line={expected}::MF001 (cell {cell}, line {line}, column {col}) " in out


def test_notebook_syntax_error_is_reported_at_the_cell(tmp_path, capsys):
    nb_path = tmp_path / "bad.ipynb"
    broken_notebook(nb_path)
    shutil.copy(FIXTURES / "book_tf" / "before.py", tmp_path / "model.py")
    code, out, err = check(["check", str(tmp_path)], capsys)
    assert code == 2 and "model.py:93:13: MF001" in out
    (line,) = [x for x in err.splitlines() if x.startswith("maskfix: error:")]
    assert line.startswith(f"maskfix: error: {nb_path}:cell 4:4:5: cannot parse: syntax error: ")
    assert line.endswith("on line 3")  # the cell's line, not the joined program's
    assert "maskfix: cell" not in err

    code, out, err = check(["check", "--format", "json", str(tmp_path)], capsys)
    items = json.loads(out)
    assert [i["code"] for i in items] == ["MF001", None]
    assert items[1]["filename"] == str(nb_path) and items[1]["cell"] == 4
    assert items[1]["location"] == {"row": 4, "column": 5}
    assert items[1]["message"].startswith("cannot parse: syntax error")

    code, out, err = check(["check", "--format", "sarif", str(tmp_path)], capsys)
    invocation = valid_sarif(out)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and note["message"]["text"].startswith(f"{nb_path}:cell 4:4:5: cannot parse")
    physical = note["locations"][0]["physicalLocation"]
    assert physical["region"]["startLine"] == flagged_file_line(nb_path, 4, 4)

    code, out, err = check(["check", "--format", "github", str(tmp_path)], capsys)
    assert f"::error title=maskfix (file not checked),file={nb_path},line={flagged_file_line(nb_path, 4, 4)}::" in out


def test_file_errors_appear_in_json_and_sarif(tmp_path, capsys):
    (tmp_path / "binary.py").write_bytes(b"\x00MultiHeadAttention")
    code, out, err = check(["check", "--format", "json", str(tmp_path)], capsys)
    assert code == 2
    assert json.loads(out) == [{"code": None, "message": "binary content (NUL byte), not Python source",
                                "filename": str(tmp_path / "binary.py"), "cell": None, "location": None,
                                "fix": None}]
    code, out, err = check(["check", "--format", "sarif", str(tmp_path)], capsys)
    invocation = valid_sarif(out)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert "binary content" in note["message"]["text"]


def apply_unified(old: str, diff: str) -> str:
    """Apply one file's unified diff (as difflib writes it) to ``old``."""
    lines, out, i = old.splitlines(True), [], 0
    body = diff.splitlines(True)
    k = 0
    while k < len(body):
        if not body[k].startswith("@@"):
            k += 1
            continue
        start = int(body[k].split()[1].split(",")[0].lstrip("-"))
        start = start - 1 if start else 0
        out += lines[i:start]
        i = start
        k += 1
        while k < len(body) and not body[k].startswith("@@"):
            tag, text = body[k][0], body[k][1:]
            if k + 1 < len(body) and body[k + 1].startswith("\\"):
                text = text.rstrip("\n")
                k += 1
            if tag in " -":
                assert lines[i] == text, (lines[i], text)
                i += 1
            if tag in " +":
                out.append(text)
            k += 1
    return "".join(out + lines[i:])


def cell_diffs(diff: str, name: str) -> dict:
    """{cell number: that cell's diff} from a notebook diff."""
    chunks, current = {}, None
    for line in diff.splitlines(True):
        if line.startswith(f"--- a/{name}:cell "):
            current = int(line.rsplit(" ", 1)[1])
            chunks[current] = ""
        if current is not None:
            chunks[current] += line
    return chunks


def test_notebook_diff_is_per_cell_and_matches_the_rewrite(project, capsys):
    nb_path = project / "translate nb.ipynb"
    name = "my models/translate nb.ipynb"
    before = json.loads(nb_path.read_text())
    code, diff, err = check(["rewrite", "--diff", name], capsys)
    assert code == 1
    first, rest = diff.split("\n", 1)
    assert first == f"# {name}: notebook code cells; apply with `maskfix rewrite '{name}'`"
    assert "maskfix:" not in rest and "maskfix1:" not in rest  # no internal marker lines
    assert [l for l in rest.splitlines() if l.startswith("---")] == [f"--- a/{name}:cell 2", f"--- a/{name}:cell 4"]
    code, out, err = check(["check", "--format", "json", name], capsys)
    assert {i["fix"]["diff"] for i in json.loads(out)} == {diff}

    assert main(["rewrite", name]) == 1
    after = json.loads(nb_path.read_text())
    for number, chunk in cell_diffs(diff, name).items():
        old = "".join(before["cells"][number - 1]["source"])
        assert apply_unified(old, chunk) == "".join(after["cells"][number - 1]["source"])
    for number in (1, 3):
        assert after["cells"][number - 1] == before["cells"][number - 1]
