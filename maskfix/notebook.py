"""Jupyter notebooks (``.ipynb``, nbformat 4) as one Python program.

A notebook is analysed as a single module: the code cells, in order, joined
with a marker comment line in front of each one::

    # maskfix: cell 3
    <source of the third cell>

Cell numbering: ``N`` in ``path.ipynb:cell N:line:col`` counts *all* cells,
1-based, top to bottom, markdown and raw cells included, so it matches the
position a user sees in Jupyter (it is not the ``In [n]`` execution count).
Lines within a cell are 1-based; columns are unchanged.

IPython syntax is not Python, so each such line is swapped for a placeholder
comment that keeps the program parseable and the line count identical, and
is restored byte for byte by :meth:`Notebook.with_source`:

* line magics, shell escapes and help: ``%pip ...``, ``!ls``, ``x = !ls``,
  ``x = %who_ls``, ``?obj``, ``obj?`` (plus backslash continuation lines);
  an indented one becomes ``pass  # maskfix: magic K`` so that a block whose
  body is only a magic still parses;
* a cell starting with a ``%%`` cell magic: every line of the cell, except
  for ``%%capture``, ``%%time``, ``%%timeit`` and ``%%prun``, whose body is
  ordinary Python and stays visible (only their header line is replaced).

Only the JSON text of the ``"source"`` of a changed cell is replaced in the
original bytes; outputs, metadata, key order and indentation are untouched.

Notebooks whose kernel language is not Python raise :class:`NotPythonNotebook`
(a :class:`NotebookError`), so callers can skip them quietly.  A notebook
without code cells has an empty ``source``.
"""

from __future__ import annotations

import bisect
import json
import re

__all__ = ["NotPythonNotebook", "Notebook", "NotebookError"]

_PYTHON_LANGUAGES = {"python", "python2", "python3", "ipython", "ipython2", "ipython3"}
# Cell magics whose body IPython runs as Python in the kernel itself.
_PYTHON_BODY_CELL_MAGICS = {"capture", "time", "timeit", "prun"}
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_EOL = re.compile(r"(\r\n|\r|\n)\Z")
# `x = !cmd` / `x = %magic`: an assignment whose right side starts with ! or %,
# never valid Python.  Applied to code with strings blanked and comments cut.
_MAGIC_ASSIGN = re.compile(r"\s*[^=\s][^=]*?(?<![=<>!+\-*/%&|^@:~])=\s*[!%]")
_CELL_MAGIC = re.compile(r"%%(\w+)")
_NON_ASCII_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u(?:00[89a-fA-F]|0[1-9a-fA-F]|[1-9a-fA-F])")
_JSON_WS = " \t\n\r"
_DECODER = json.JSONDecoder()
_BOM = b"\xef\xbb\xbf"


class NotebookError(ValueError):
    """One-line reason why a notebook cannot be handled."""


class NotPythonNotebook(NotebookError):
    """The notebook's kernel language is not Python."""


def _lines(text: str) -> list[str]:
    """Split like Python's tokenizer (and LibCST): on \\r\\n, \\r and \\n, keeping ends."""
    return _LINE.findall(text)


def _split_eol(line: str) -> tuple[str, str]:
    m = _EOL.search(line)
    return (line[: m.start()], m.group()) if m else (line, "")


class _Scanner:
    """Tracks whether the next physical line starts a new logical line.

    Magics are only recognised there, never inside a bracket, a multi-line
    string or after a backslash continuation.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None
        self.continued = False

    def at_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def reset(self) -> None:
        self.__init__()

    def feed(self, body: str) -> str:
        """Consume one line (without its end); return its code with string
        contents removed and the comment cut off."""
        out: list[str] = []
        i, n = 0, len(body)
        escaped_eol = False
        self.continued = False
        while i < n:
            c = body[i]
            if self.quote is not None:
                if c == "\\":
                    escaped_eol = i == n - 1
                    i += 2
                elif body.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = None
                    out.append('"')
                else:
                    i += 1
                continue
            if c == "#":
                break
            if c in "\"'":
                self.quote = c * 3 if body.startswith(c * 3, i) else c
                i += len(self.quote)
                out.append('"')
                continue
            if c in "([{":
                self.depth += 1
            elif c in ")]}":
                self.depth = max(0, self.depth - 1)
            elif c == "\\" and i == n - 1:
                self.continued = True
            out.append(c)
            i += 1
        if self.quote is not None and len(self.quote) == 1 and not escaped_eol:
            self.quote = None  # unterminated one-line string: a syntax error anyway
        return "".join(out)


def _is_magic(body: str, code: str) -> bool:
    stripped = body.lstrip(" \t\f")
    if not stripped:
        return False
    # None of these can start a Python statement; IPython treats them as
    # escapes (magic, shell, help, and the autocall prefixes / , ;).
    if stripped[0] in "%!?/,;":
        return True
    if code.rstrip().endswith("?"):
        return True
    return _MAGIC_ASSIGN.match(code) is not None


class _Cell:
    __slots__ = ("added_newline", "header", "number", "program", "span", "text")

    def __init__(self, number: int, text: str, span: tuple[int, int]) -> None:
        self.number = number  # 1-based among all cells
        self.text = text  # original cell source
        self.program = ""  # cell source with placeholders
        self.added_newline = False  # .source got a "\n" the cell does not have
        self.span = span  # raw JSON text of "source" in the decoded file
        self.header: int | None = None  # placeholder id of a %% header


class _Style:
    """How the original file was written, for re-encoding a changed source."""

    def __init__(self, text: str, unit: str | None, comma_ws: str) -> None:
        self.unit = unit  # indent unit, None when the file has no line breaks
        self.newline = "\r\n" if "\r\n" in text[:200] else "\n"
        self.comma_ws = comma_ws
        # Raw non-ASCII text means the writer did not escape; an ASCII file
        # with \u escapes of non-ASCII characters means it did.
        self.ensure_ascii = text.isascii() and _NON_ASCII_ESCAPE.search(text) is not None


class Notebook:
    """A parsed notebook; :attr:`source` is the code cells as one program."""

    source: str

    def __init__(self) -> None:  # use Notebook.parse
        self.source = ""
        self._data = b""
        self._text = ""
        self._bom = False
        self._cells: list[_Cell] = []
        self._starts: list[int] = []  # 1-based marker line of each code cell
        self._line_count = 0
        self._magics: list[str] = []  # original line bodies, by placeholder id
        self._tag = "maskfix"
        self._style: _Style | None = None

    # -- reading ---------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | str) -> Notebook:
        """Parse notebook bytes; raise :class:`NotebookError` if unusable."""
        nb = cls()
        if isinstance(data, str):
            data = data.encode("utf-8")
        nb._data = bytes(data)
        raw = nb._data
        if raw.startswith(_BOM):
            nb._bom, raw = True, raw[len(_BOM) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NotebookError(f"not UTF-8 encoded (byte {e.start})") from None
        if not text.strip():
            raise NotebookError("empty file, not a notebook")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise NotebookError(
                f"invalid or truncated JSON: {e.msg} at line {e.lineno} column {e.colno}"
            ) from None
        except RecursionError:
            raise NotebookError("invalid JSON: nested too deeply") from None
        nb._text = text
        cells = _validate(doc)
        spans, unit, comma_ws = _source_spans(text)
        nb._style = _Style(text, unit, comma_ws)
        for number, cell in enumerate(cells, 1):
            if cell.get("cell_type") != "code":
                continue
            src = cell["source"]
            nb._cells.append(_Cell(number, src if isinstance(src, str) else "".join(src), spans[number - 1]))
        nb._tag = _free_tag(c.text for c in nb._cells)
        nb._build()
        return nb

    def _build(self) -> None:
        parts: list[str] = []
        line = 1
        for cell in self._cells:
            cell.program = self._mask(cell)
            cell.added_newline = bool(cell.program) and _EOL.search(cell.program) is None
            self._starts.append(line)
            parts.append(f"# {self._tag}: cell {cell.number}\n")
            parts.append(cell.program + ("\n" if cell.added_newline else ""))
            line += 1 + len(_lines(cell.program))
        self.source = "".join(parts)
        self._line_count = line - 1

    def _placeholder(self, body: str, indent: str | None = None) -> str:
        self._magics.append(body)
        token = f"# {self._tag}: magic {len(self._magics) - 1}"
        return token if indent is None else f"{indent}pass  {token}"

    def _mask(self, cell: _Cell) -> str:
        lines = _lines(cell.text)
        out: list[str] = []
        first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
        magic = None
        if first is not None:
            magic = _CELL_MAGIC.match(_split_eol(lines[first])[0])
        scanner = _Scanner()
        in_magic = False  # previous magic line ended with a backslash
        for i, line in enumerate(lines):
            body, eol = _split_eol(line)
            if magic is not None and i >= first:
                if i == first:
                    cell.header = len(self._magics)
                    out.append(self._placeholder(body) + eol)
                    continue
                if magic.group(1) not in _PYTHON_BODY_CELL_MAGICS:
                    out.append(self._placeholder(body) + eol)
                    continue
            if in_magic:
                in_magic = body.endswith("\\")
                # A comment, not `pass`: continuation lines are indented freely.
                out.append(self._placeholder(body) + eol)
                continue
            if scanner.at_start():
                code = scanner.feed(body)
                if _is_magic(body, code):
                    scanner.reset()
                    indent = body[: len(body) - len(body.lstrip(" \t\f"))]
                    in_magic = body.endswith("\\")
                    out.append(self._placeholder(body, indent or None) + eol)
                    continue
            else:
                scanner.feed(body)
            out.append(line)
        return "".join(out)

    # -- mapping ---------------------------------------------------------

    def locate(self, line: int) -> tuple[int, int]:
        """Map a 1-based line of :attr:`source` to (cell number, 1-based line
        in that cell).  A cell's marker line maps to its line 1."""
        if not self._cells or not 1 <= line <= self._line_count:
            raise ValueError(f"line {line} is outside the notebook program")
        k = bisect.bisect_right(self._starts, line) - 1
        return self._cells[k].number, max(1, line - self._starts[k])

    # -- writing ---------------------------------------------------------

    def with_source(self, new_source: str) -> bytes:
        """Return the notebook bytes with :attr:`source` replaced by
        ``new_source`` (a rewrite of it that kept the cell markers)."""
        if new_source == self.source:
            return self._data
        edits = [(cell.span[0], cell.span[1], self._encode_source(cell, text))
                 for cell, text in self._new_texts(new_source) if text != cell.text]
        if not edits:
            return self._data
        out = self._text
        for start, end, raw in sorted(edits, reverse=True):
            out = out[:start] + raw + out[end:]
        return (_BOM if self._bom else b"") + out.encode("utf-8")

    def cell_changes(self, new_source: str) -> list[tuple[int, str, str]]:
        """``(cell number, old text, new text)`` of each code cell that ``new_source``
        changes, as :meth:`with_source` would write it: IPython lines restored, no markers."""
        if new_source == self.source:
            return []
        return [(cell.number, cell.text, text) for cell, text in self._new_texts(new_source) if text != cell.text]

    def _new_texts(self, new_source: str) -> list[tuple[_Cell, str]]:
        texts = self._restore(self._split(new_source))
        out = []
        for cell, text in zip(self._cells, texts):
            # The cell had no final line end; the program's last one was ours.
            no_final_eol = cell.added_newline or not cell.text
            if no_final_eol and text.endswith("\n") and not text.endswith("\r\n"):
                text = text[:-1]
            out.append((cell, text))
        return out

    def file_line(self, cell_number: int, line: int) -> int:
        """The 1-based line of the notebook file (its JSON text) that holds line ``line``
        of cell ``cell_number``, for tools that show the file itself (code scanning)."""
        cell = next((c for c in self._cells if c.number == cell_number), None)
        if cell is None:
            raise ValueError(f"no code cell {cell_number}")
        start, end = cell.span
        offset = start
        raw = self._text[start:end]
        if raw.startswith("["):
            # Find the list item holding the line's first character.
            wanted = sum(len(ln) for ln in _lines(cell.text)[: max(0, line - 1)])
            seen, i = 0, _ws(raw, 1)
            while i < len(raw) and raw[i] != "]":
                value, j = _DECODER.raw_decode(raw, i)
                offset = start + i
                if seen + len(value) > wanted:
                    break
                seen += len(value)
                i = _ws(raw, j)
                if i < len(raw) and raw[i] == ",":
                    i = _ws(raw, i + 1)
        return self._text.count("\n", 0, offset) + 1

    def _split(self, new_source: str) -> list[str]:
        marker = re.compile(rf"# {re.escape(self._tag)}: cell (\d+)[ \t]*")
        chunks: list[list[str]] = [[]]
        expected = [c.number for c in self._cells]
        for line in _lines(new_source):
            m = marker.fullmatch(_split_eol(line)[0])
            if m is None:
                chunks[-1].append(line)
                continue
            k = len(chunks) - 1
            if k >= len(expected) or int(m.group(1)) != expected[k]:
                raise NotebookError(f"rewritten program has an unexpected marker for cell {m.group(1)}")
            chunks.append([])
        if len(chunks) - 1 != len(expected):
            missing = expected[len(chunks) - 1] if len(chunks) - 1 < len(expected) else None
            raise NotebookError(f"rewritten program lost the marker of cell {missing}")
        head = "".join(chunks[0])
        texts = ["".join(c) for c in chunks[1:]]
        if head.strip():
            if not texts:
                raise NotebookError("notebook has no code cell to hold the rewritten program")
            texts[0] = head + texts[0]
        return texts

    def _restore(self, texts: list[str]) -> list[str]:
        token = re.compile(rf"[ \t\f]*(?:pass  )?# {re.escape(self._tag)}: magic (\d+)[ \t]*")
        seen: dict[int, int] = {}
        result = []
        for cell, text in zip(self._cells, texts):
            lines = []
            for line in _lines(text):
                body, eol = _split_eol(line)
                m = token.fullmatch(body)
                if m is not None and int(m.group(1)) < len(self._magics):
                    k = int(m.group(1))
                    seen[k] = seen.get(k, 0) + 1
                    line = self._magics[k] + eol
                lines.append(line)
            if cell.header is not None:
                _header_first(lines, self._magics[cell.header])
            result.append("".join(lines))
        lost = [k for k in range(len(self._magics)) if seen.get(k) != 1]
        if lost:
            raise NotebookError(f"rewrite dropped or duplicated IPython line {self._magics[lost[0]]!r}")
        return result

    def _encode_source(self, cell: _Cell, text: str) -> str:
        style = self._style
        assert style is not None
        start, end = cell.span
        raw = self._text[start:end]
        ea = style.ensure_ascii
        if raw.startswith('"'):
            return json.dumps(text, ensure_ascii=ea)
        # A list of lines, as nbformat splits them; reuse the original JSON
        # of lines that did not change so their escaping stays as it was.
        items, open_ws, sep, close_ws = _list_layout(raw)
        known = {value: item for value, item in items}
        new = text.splitlines(True)
        if not new:
            return "[]"
        if not items:
            open_ws, close_ws = self._empty_list_layout(start)
        if sep is None:
            sep = "," + (open_ws if "\n" in open_ws else style.comma_ws)
        parts = [known[v] if v in known else json.dumps(v, ensure_ascii=ea) for v in new]
        return "[" + open_ws + sep.join(parts) + close_ws + "]"

    def _empty_list_layout(self, value_start: int) -> tuple[str, str]:
        style = self._style
        assert style is not None
        line_start = self._text.rfind("\n", 0, value_start) + 1
        lead = self._text[line_start:value_start]
        indent = lead[: len(lead) - len(lead.lstrip(" \t"))]
        if style.unit is None or not lead.lstrip(" \t").startswith('"'):
            return "", ""
        return style.newline + indent + style.unit, style.newline + indent


def _header_first(lines: list[str], header: str) -> None:
    """Keep a restored %% header as the cell's first non-blank line, even if
    a rewrite put a statement above it."""
    pos = next((i for i, ln in enumerate(lines) if _split_eol(ln)[0] == header), None)
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if pos is None or first is None or pos == first:
        return
    line = lines.pop(pos)
    if not _EOL.search(line):
        line += "\n"
        if pos > 0:  # the new last line keeps the cell ending without a line end
            lines[pos - 1] = _split_eol(lines[pos - 1])[0]
    lines.insert(first, line)


def _free_tag(texts) -> str:
    """A marker tag that no code cell already contains."""
    texts = list(texts)
    tag, k = "maskfix", 1
    while any(f"# {tag}: " in t for t in texts):
        tag, k = f"maskfix{k}", k + 1
    return tag


def _validate(doc) -> list:
    if not isinstance(doc, dict):
        raise NotebookError("not a notebook: top-level JSON value is not an object")
    version = doc.get("nbformat")
    if version is None:
        raise NotebookError("not a notebook: no 'nbformat' version")
    if version != 4:
        raise NotebookError(f"unsupported nbformat {version!r} (only version 4 is supported)")
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise NotebookError("not a notebook: 'cells' is missing or not a list")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise NotebookError("not a notebook: 'metadata' is not an object")
    language = None
    kernelspec = metadata.get("kernelspec")
    info = metadata.get("language_info")
    if isinstance(kernelspec, dict) and isinstance(kernelspec.get("language"), str):
        language = kernelspec["language"]
    elif isinstance(info, dict) and isinstance(info.get("name"), str):
        language = info["name"]
    if language is not None and language.strip().lower() not in _PYTHON_LANGUAGES:
        raise NotPythonNotebook(f"not a Python notebook (kernel language {language!r})")
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"cell {number}: not a cell object with a 'cell_type'")
        if cell["cell_type"] != "code":
            continue
        src = cell.get("source")
        if not (isinstance(src, str) or isinstance(src, list) and all(isinstance(s, str) for s in src)):
            raise NotebookError(f"cell {number}: 'source' must be a string or a list of strings")
    return cells


def _ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _JSON_WS:
        i += 1
    return i


def _source_spans(text: str) -> tuple[list[tuple[int, int]], str | None, str]:
    """Spans of each cell's "source" value in valid notebook JSON, plus the
    file's indent unit (None if compact) and the whitespace after a comma."""
    spans: list[tuple[int, int]] = []
    comma_ws: str | None = None
    i = _ws(text, 0) + 1  # past "{"
    j = _ws(text, i)
    opening = text[i:j]
    unit = opening.rsplit("\n", 1)[1] if "\n" in opening else None
    i = j
    while text[i] != "}":
        key, i = _DECODER.raw_decode(text, i)
        i = _ws(text, _ws(text, i) + 1)  # past ":"
        if key == "cells" and text[i] == "[":
            spans = []
            i = _ws(text, i + 1)
            while text[i] != "]":
                span = (i, i)
                i = _ws(text, i + 1)  # past "{"
                while text[i] != "}":
                    ckey, i = _DECODER.raw_decode(text, i)
                    i = _ws(text, _ws(text, i) + 1)
                    start = i
                    i = _DECODER.raw_decode(text, i)[1]
                    if ckey == "source":
                        span = (start, i)
                    i = _ws(text, i)
                    if text[i] == ",":
                        i = _ws(text, i + 1)
                spans.append(span)
                i = _ws(text, i + 1)  # past "}"
                if text[i] == ",":
                    i = _ws(text, i + 1)
            i += 1
        else:
            i = _DECODER.raw_decode(text, i)[1]
        i = _ws(text, i)
        if text[i] == ",":
            j = _ws(text, i + 1)
            if comma_ws is None:
                comma_ws = text[i + 1 : j]
            i = j
    return spans, unit, comma_ws if comma_ws is not None and "\n" not in comma_ws else ""


def _list_layout(raw: str) -> tuple[list[tuple[str, str]], str, str | None, str]:
    """Items (value, raw JSON) of a JSON list of strings and the whitespace
    after "[", between items (with the comma) and before "]"."""
    items: list[tuple[str, str]] = []
    i = _ws(raw, 1)
    open_ws, sep, close_ws = raw[1:i], None, ""
    while raw[i] != "]":
        value, j = _DECODER.raw_decode(raw, i)
        items.append((value, raw[i:j]))
        k = _ws(raw, j)
        if raw[k] == ",":
            n = _ws(raw, k + 1)
            if sep is None:
                sep = raw[j:n]
            i = n
        else:
            close_ws = raw[j:k]
            i = k
    return items, open_ws, sep, close_ws
