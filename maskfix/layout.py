"""Lay out the lines the rewrite adds or lengthens exactly as black would.

Only statements the rewrite edited or created are ever re-laid out; everything
else keeps its bytes.  The width is 88 columns (black's), or the file's
longest code line when the file often runs wider.

black is not a dependency.  This module carries its own implementation of the
part of black's line splitting these statements need: the right-hand split
with optional parentheses and trailers, the delimiter split, the left-hand
split of ``def`` headers and magic trailing commas.  It handles assignments,
expression statements, ``return`` and ``def`` headers without comments;
``black_lines`` returns None for any other shape, and such statements keep
the simpler wrapping at the end of this module.
"""

from __future__ import annotations

import functools
import io
import keyword
import re
import tokenize
import unicodedata
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst


@dataclass(frozen=True)
class _Tokens:
    code_rows: FrozenSet[int]  # lines holding a name, operator or number
    doubles: int  # plain string literals quoted with "
    singles: int  # ... and with '
    fstring: bool  # an f-string
    broken: bool  # the tokenizer gave up


@functools.lru_cache(maxsize=4)
def _tokens(source: str) -> _Tokens:
    """One tokenizer pass serves the width, the quotes and the syntax age of a file."""
    rows, doubles, singles, fstring, broken = set(), 0, 0, False, False
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = tok.type
            if kind in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                rows.add(tok.start[0])
            elif kind == fstring_start:
                fstring = True
            elif kind == tokenize.STRING:
                text = tok.string
                if "f" in text.split(text[-1])[0].lower():
                    fstring = True
                body = text.lstrip("rRbBuU")  # an f-string keeps its f: neither quote below
                if body.startswith(('"""', "\'\'\'")):
                    continue
                if body.startswith('"'):
                    doubles += 1
                elif body.startswith("'"):
                    singles += 1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        broken = True
    return _Tokens(frozenset(rows), doubles, singles, fstring, broken)


def quote_counts(source: str) -> Tuple[int, int]:
    """(double, single): plain string literals quoted ``"`` and ``'`` (not triple-quoted, not f-strings)."""
    t = _tokens(source)
    return t.doubles, t.singles


def width_limit(source: str) -> int:
    """88 columns, unless the file's own code often runs longer (then its longest code line).

    Long prose in docstrings and comments, and a few long lines, do not make a file wide.
    """
    t = _tokens(source)
    if t.broken:
        return 88
    lines = source.splitlines()
    long = [len(lines[r - 1]) for r in t.code_rows if r <= len(lines) and len(lines[r - 1]) > 88]
    if len(long) <= max(2, len(t.code_rows) // 50):
        return 88
    return max(long)


# --------------------------------------------------------------------------
# black's line splitting

COMPREHENSION, COMMA, TERNARY, LOGIC, STRING_PRIORITY, COMPARATOR, DOT = 20, 18, 16, 14, 12, 10, 1
MATH = {"|": 9, "^": 8, "&": 7, "<<": 6, ">>": 6, "+": 5, "-": 5,
        "*": 4, "/": 4, "//": 4, "%": 4, "@": 4, "~": 3, "**": 2}
COMPARATORS = {"<", ">", "==", "!=", "<=", ">=", "<>"}
ASSIGNMENTS = {"=", "+=", "-=", "*=", "@=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=", "**=", "//="}
OPENING = {"(": ")", "[": "]", "{": "}"}
CLOSING = {")": "(", "]": "[", "}": "{"}
NAME, NUMBER, STRING = "NAME", "NUMBER", "STRING"
FORCE_PARENS = "force-optional-parentheses"


class Unsupported(Exception):
    """The statement has a shape this implementation does not lay out."""


class _CannotSplit(Exception):
    pass


class Leaf:
    """One token of a logical line, with what black reads from the syntax tree around it."""

    __slots__ = ("type", "value", "space", "role", "star", "vararg", "arglist", "annotation",
                 "returns", "unary", "cmp", "comp", "ternary", "depth", "opening")

    def __init__(self, type_: str, value: str, space: str = "", role: str = ""):
        self.type = type_  # NAME, NUMBER, STRING, or the operator / bracket itself
        self.value = value  # "" for an invisible parenthesis
        self.space = space  # whitespace before the token when it does not start a line
        self.role = role  # brackets: "call", "subscript", "params" or "atom"
        self.star = False  # ``*``/``**``/``/`` of an argument, parameter or unpacking
        self.vararg = ""  # "call" or "def" for such a star directly in a call or signature
        self.arglist = False  # a comma directly in a call's or signature's brackets
        self.annotation = False  # a comma inside a parameter or return annotation
        self.returns = False  # part of the return annotation
        self.unary = False
        self.cmp = False  # ``in`` / ``not`` of a comparison
        self.comp = False  # ``for`` / ``if`` of a comprehension
        self.ternary = False  # ``if`` / ``else`` of a conditional expression
        self.depth = 0  # set by _Tracker.mark, as black's bracket_depth
        self.opening: Optional[Leaf] = None  # set by _Tracker.mark for closing brackets

    def copy(self) -> "Leaf":
        new = Leaf(self.type, self.value, self.space, self.role)
        for attr in ("star", "vararg", "arglist", "annotation", "returns", "unary", "cmp", "comp", "ternary"):
            setattr(new, attr, getattr(self, attr))
        return new


def _comma() -> Leaf:
    return Leaf(",", ",")


def str_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide East Asian characters count two."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _lex(text: str) -> List[Tuple[str, str, str]]:
    """``(type, value, gap)`` for each token; gap is "", " " or "\\n" (a line break inside brackets)."""
    rows = text.splitlines(keepends=True)
    fstart = getattr(tokenize, "FSTRING_START", None)
    fend = getattr(tokenize, "FSTRING_END", None)
    out: List[Tuple[str, str, str]] = []
    depth = nested = 0
    prev_end: Optional[Tuple[int, int]] = None
    begin: Optional[Tuple[int, int]] = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            kind = tok.type
            if nested:
                if kind == fstart:
                    nested += 1
                elif kind == fend:
                    nested -= 1
                    if nested == 0:
                        if tok.end[0] != begin[0]:
                            raise Unsupported("multi-line string")
                        value = rows[begin[0] - 1][begin[1]:tok.end[1]]
                        out.append((STRING, value, _gap(prev_end, begin, depth)))
                        prev_end = tok.end
                continue
            if kind in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER, tokenize.ENCODING):
                continue
            if kind == tokenize.COMMENT:
                raise Unsupported("comment")
            if kind == fstart:
                nested, begin = 1, tok.start
                continue
            value = tok.string
            if kind == tokenize.STRING:
                if "\n" in value:
                    raise Unsupported("multi-line string")
                type_ = STRING
            elif kind == tokenize.NUMBER:
                type_ = NUMBER
            elif kind == tokenize.NAME:
                type_ = NAME
            elif kind == tokenize.OP:
                type_ = value
            else:
                raise Unsupported(f"token {tokenize.tok_name[kind]}")
            out.append((type_, value, _gap(prev_end, tok.start, depth)))
            if type_ in OPENING:
                depth += 1
            elif type_ in CLOSING:
                depth -= 1
            prev_end = tok.end
    except (tokenize.TokenError, SyntaxError, IndentationError) as e:
        raise Unsupported(str(e)) from e
    return out


def _gap(prev_end, start, depth: int) -> str:
    if prev_end is None:
        return ""
    if start[0] != prev_end[0]:
        if depth == 0:
            raise Unsupported("backslash continuation")
        return "\n"
    return " " if start[1] > prev_end[1] else ""


def _operand(leaf: Optional[Leaf]) -> bool:
    """Whether ``leaf`` ends an operand, so that a following bracket is a trailer."""
    if leaf is None:
        return False
    if leaf.type in (NUMBER, STRING) or leaf.type in CLOSING:
        return True
    return leaf.type == NAME and (not keyword.iskeyword(leaf.value) or leaf.value in ("None", "True", "False"))


class _Frame:
    def __init__(self, role: str):
        self.role = role
        self.comp = False  # a comprehension ``for`` was seen at this level
        self.pending_in = 0  # comprehension ``for``s still waiting for their ``in``
        self.annotation = False  # inside a parameter's annotation (signatures)


def _leaves(tokens: Sequence[Tuple[str, str, str]]) -> List[Leaf]:
    """Leaves with black's spacing and the roles black reads from the syntax tree."""
    out: List[Leaf] = []
    frames: List[_Frame] = []
    returns = False
    for i, (type_, value, gap) in enumerate(tokens):
        prev = out[-1] if out else None
        if prev is None or prev.type in OPENING or type_ in CLOSING or type_ == ",":
            space = ""
        elif prev.type == ",":
            space = " "
        elif gap == "\n":
            space = "" if "." in (type_, prev.type) else " "
        else:
            space = gap
        leaf = Leaf(type_, value, space)
        top = frames[-1] if frames else None
        params = next((f for f in reversed(frames) if f.role == "params"), None)
        leaf.returns = returns
        if type_ == "->" and not frames:
            returns = True
        if type_ in OPENING:
            if type_ == "(" and len(out) >= 2 and out[-2].type == NAME and out[-2].value == "def":
                role = "params"
            elif type_ in "([" and _operand(prev):
                role = "call" if type_ == "(" else "subscript"
            else:
                role = "atom"
            leaf.role = role
            frames.append(_Frame(role))
        elif type_ in CLOSING:
            if not frames:
                raise Unsupported("unbalanced brackets")
            leaf.role = frames.pop().role
        elif type_ in ("*", "**", "/") and not _operand(prev):
            leaf.star = True
            if top is not None and prev is not None and prev.type in ("(", ","):
                leaf.vararg = {"call": "call", "params": "def"}.get(top.role, "")
        elif type_ in ("-", "+", "~") and not _operand(prev):
            leaf.unary = True
        elif type_ == ",":
            leaf.arglist = top is not None and top.role in ("call", "params")
            leaf.annotation = returns or (params is not None and params.annotation)
        elif type_ == NAME:
            if value in ("yield", "await", "async"):
                raise Unsupported(value)
            if value == "for":
                if top is None:
                    raise Unsupported("for statement")
                leaf.comp = top.comp = True
                top.pending_in += 1
            elif value == "if":
                leaf.comp = top is not None and top.comp
                leaf.ternary = not leaf.comp
            elif value == "else":
                leaf.ternary = True
            elif value == "in":
                if top is not None and top.pending_in:
                    top.pending_in -= 1
                else:
                    leaf.cmp = True
            elif value == "not":
                leaf.cmp = i + 1 < len(tokens) and tokens[i + 1][1] == "in"
        if top is not None and top is params:
            if type_ == ":":
                top.annotation = True
            elif type_ in ("=", ","):
                top.annotation = False
        out.append(leaf)
    if frames:
        raise Unsupported("unbalanced brackets")
    return out


def _match(leaves: Sequence[Leaf], start: int) -> int:
    """Index of the bracket closing the one at ``start``."""
    depth = 0
    for k in range(start, len(leaves)):
        if leaves[k].type in OPENING:
            depth += 1
        elif leaves[k].type in CLOSING:
            depth -= 1
            if depth == 0:
                return k
    raise Unsupported("unbalanced brackets")


def _top_level(leaves: Sequence[Leaf]) -> List[int]:
    out, depth = [], 0
    for k, leaf in enumerate(leaves):
        if leaf.type in CLOSING:
            depth -= 1
        if depth == 0:
            out.append(k)
        if leaf.type in OPENING:
            depth += 1
    return out


def _wrap(leaves: List[Leaf], start: int, end: int) -> None:
    """Put ``leaves[start:end]`` inside invisible parentheses, as black does for optional ones."""
    if start >= end:
        raise Unsupported("nothing to wrap")
    if leaves[start].type == "(" and _match(leaves, start) == end - 1:
        raise Unsupported("redundant parentheses")  # black would make them invisible
    top = [k for k in _top_level(leaves[start:end])]
    commas = [k for k in top if leaves[start + k].type == ","]
    if commas == [end - start - 1]:
        raise Unsupported("one-tuple")  # black adds visible parentheses
    lpar = Leaf("(", "", leaves[start].space, "atom")
    leaves[start].space = ""
    leaves.insert(end, Leaf(")", "", "", "atom"))
    leaves.insert(start, lpar)


def statement_leaves(text: str) -> List[Leaf]:
    """The leaves black builds for one statement (or ``def`` header), optional parentheses included."""
    leaves = _leaves(_lex(text))
    if not leaves:
        raise Unsupported("empty")
    first = leaves[0]
    top = _top_level(leaves)
    # black parenthesizes a conditional expression unless it is the whole
    # right-hand side, which gets optional parentheses anyway
    conditional = [k for k, leaf in enumerate(leaves) if leaf.ternary]
    rhs_start = next((k + 1 for k in top if leaves[k].type in ASSIGNMENTS), 1 if first.value == "return" else None)
    if conditional and (rhs_start is None or not set(conditional) <= set(top) or min(conditional) < rhs_start):
        raise Unsupported("conditional expression")
    if first.type == NAME and first.value == "def":
        colon = next((k for k in top if leaves[k].type == ":"), None)
        if colon is None or [leaf.value for leaf in leaves[colon + 1:]] not in ([], ["pass"]):
            raise Unsupported("def header")
        leaves = leaves[:colon + 1]
        arrow = next((k for k in top if k < colon and leaves[k].type == "->"), None)
        if arrow is not None:
            _wrap(leaves, arrow + 1, colon)
        return leaves
    if first.type == NAME and keyword.iskeyword(first.value) and first.value not in ("None", "True", "False"):
        if first.value == "return" and len(leaves) > 1:
            _wrap(leaves, 1, len(leaves))
            return leaves
        if first.value in ("raise", "return", "pass"):
            return leaves
        raise Unsupported(first.value)
    if any(leaves[k].type in (";", ":") for k in top):
        raise Unsupported("annotation or several statements")
    assign = [k for k in top if leaves[k].type in ASSIGNMENTS or leaves[k].type == ":="]
    if len(assign) > 1 or (assign and leaves[assign[0]].type == ":="):
        raise Unsupported("chained assignment")
    if assign:
        at = assign[0]
        _wrap(leaves, at + 1, len(leaves))
        if any(leaves[k].type == "," for k in top if k < at):
            _wrap(leaves, 0, at)
        elif leaves[0].type == "(" and _match(leaves, 0) == at - 1:
            raise Unsupported("parenthesized target")
    return leaves


class _Tracker:
    """Bracket depths and split points of one line (black's BracketTracker)."""

    def __init__(self):
        self.depth = 0
        self.match: Dict[Tuple[int, str], Leaf] = {}
        self.delimiters: Dict[Leaf, int] = {}
        self.previous: Optional[Leaf] = None
        self.for_depths: List[int] = []
        self.lambda_depths: List[int] = []
        self.invisible: List[Leaf] = []

    def mark(self, leaf: Leaf) -> None:
        if self.depth == 0 and leaf.type in CLOSING and (0, leaf.type) not in self.match:
            return
        if self.for_depths and self.for_depths[-1] == self.depth and leaf.type == NAME and leaf.value == "in":
            self.depth -= 1
            self.for_depths.pop()
        if self.lambda_depths and self.lambda_depths[-1] == self.depth and leaf.type == ":":
            self.depth -= 1
            self.lambda_depths.pop()
        if leaf.type in CLOSING:
            self.depth -= 1
            opening = self.match.pop((self.depth, leaf.type), None)
            if opening is None:
                raise Unsupported("bracket mismatch")
            leaf.opening = opening
            if not leaf.value:
                self.invisible.append(leaf)
        leaf.depth = self.depth
        if self.depth == 0:
            priority = _split_before(leaf, self.previous)
            if priority and self.previous is not None:
                self.delimiters[self.previous] = priority
            elif leaf.type == ",":
                self.delimiters[leaf] = COMMA
        if leaf.type in OPENING:
            self.match[(self.depth, OPENING[leaf.type])] = leaf
            self.depth += 1
            if not leaf.value:
                self.invisible.append(leaf)
        self.previous = leaf
        if leaf.type == NAME and leaf.value == "lambda":
            self.depth += 1
            self.lambda_depths.append(self.depth)
        if leaf.type == NAME and leaf.value == "for":
            self.depth += 1
            self.for_depths.append(self.depth)

    def max_priority(self, exclude: Optional[Leaf] = None) -> int:
        return max((p for k, p in self.delimiters.items() if k is not exclude), default=0)

    def count(self, priority: int) -> int:
        return sum(1 for p in self.delimiters.values() if p == priority)


def _split_before(leaf: Leaf, previous: Optional[Leaf]) -> int:
    """The priority of a line break before ``leaf`` (0: none)."""
    if leaf.star:
        return 0
    if leaf.type == "." and (previous is None or previous.type in CLOSING):
        return DOT
    if leaf.type in MATH and not leaf.unary:
        return MATH[leaf.type]
    if leaf.type in COMPARATORS:
        return COMPARATOR
    if leaf.type == STRING and previous is not None and previous.type == STRING:
        return STRING_PRIORITY
    if leaf.type != NAME:
        return 0
    after = previous.value if previous is not None and previous.type == NAME else ""
    if leaf.value in ("for", "if") and leaf.comp:
        return COMPREHENSION
    if leaf.ternary:
        return TERNARY
    if leaf.value == "is":
        return COMPARATOR
    if leaf.value == "in" and leaf.cmp and after != "not":
        return COMPARATOR
    if leaf.value == "not" and leaf.cmp and after != "is":
        return COMPARATOR
    if leaf.value in ("and", "or"):
        return LOGIC
    return 0


def _one_sequence(opening: Leaf, closing: Leaf, leaves: Sequence[Leaf], pair: str = "()") -> bool:
    """Whether the brackets hold one item and a trailing comma (a one-tuple, ``x[a,]``)."""
    if opening.type + closing.type != pair:
        return False
    depth = closing.depth + 1
    start = next((k for k, leaf in enumerate(leaves) if leaf is opening), None)
    if start is None:
        return False
    commas = 0
    for leaf in leaves[start + 1:]:
        if leaf is closing:
            break
        if leaf.depth == depth and leaf.type == ",":
            commas += 1
            if leaf.arglist:
                commas += 1
                break
    return commas < 2


class _Line:
    def __init__(self, depth: int, inside: bool = False):
        self.depth = depth
        self.inside = inside
        self.leaves: List[Leaf] = []
        self.tracker = _Tracker()
        self.magic: Optional[Leaf] = None  # closing bracket after a magic trailing comma
        self.split_rhs = False

    def __bool__(self) -> bool:
        return bool(self.leaves)

    def append(self, leaf: Leaf, preformatted: bool = True, track: bool = False) -> None:
        if self.inside or not preformatted or track:
            self.tracker.mark(leaf)
            if self._magic_comma(leaf):
                self.magic = leaf
        self.leaves.append(leaf)

    def _magic_comma(self, closing: Leaf) -> bool:
        if not (closing.type in CLOSING and self.leaves and self.leaves[-1].type == ","):
            return False
        if closing.type == "}":
            return True
        if closing.type == "]":
            return not (closing.role == "subscript" and closing.opening is not None
                        and _one_sequence(closing.opening, closing, self.leaves, "[]"))
        return closing.opening is not None and not _one_sequence(closing.opening, closing, self.leaves)

    @property
    def is_def(self) -> bool:
        return bool(self.leaves) and self.leaves[0].type == NAME and self.leaves[0].value == "def"

    def text(self) -> str:
        if not self.leaves:
            return ""
        return self.leaves[0].value + "".join(leaf.space + leaf.value for leaf in self.leaves[1:])

    def lengths(self, reverse: bool = False) -> Iterator[Tuple[int, Leaf, int]]:
        order = range(len(self.leaves) - 1, -1, -1) if reverse else range(len(self.leaves))
        for k in order:
            leaf = self.leaves[k]
            yield k, leaf, (len(leaf.space) if k else 0) + len(leaf.value)


def _inside_matching(leaves: Sequence[Leaf]) -> Set[Leaf]:
    """Leaves between (and including) brackets that match within ``leaves``."""
    start = next((k for k, leaf in enumerate(leaves) if leaf.type in OPENING), None)
    if start is None:
        return set()
    found: Set[Leaf] = set()
    stack: List[Tuple[str, List[Leaf]]] = []
    for leaf in leaves[start:]:
        if leaf.type in OPENING:
            stack.append((OPENING[leaf.type], [leaf]))
        elif leaf.type in CLOSING:
            if stack and leaf.type == stack[-1][0]:
                level = stack.pop()[1]
                level.append(leaf)
                found.update(level)
            else:
                break
        elif stack:
            stack[-1][1].append(leaf)
    return found


def _make_visible(leaf: Leaf) -> None:
    if leaf.type == "(":
        leaf.value = "("
    elif leaf.type == ")":
        leaf.value = ")"


HEAD, BODY, TAIL = "head", "body", "tail"


class _Split:
    """head / body / tail of a bracket split, with the brackets it split on."""

    def __init__(self, head: _Line, body: _Line, tail: _Line, opening: Leaf, closing: Leaf):
        self.head, self.body, self.tail = head, body, tail
        self.opening, self.closing = opening, closing


class _Splitter:
    """black's transforms, for lines indented ``indent + unit * depth`` columns."""

    def __init__(self, indent: int, unit: int, limit: int, modern: bool):
        self.indent = indent
        self.unit = unit
        self.limit = limit
        # black adds a trailing comma after ``*args`` / ``**kwargs`` only when the
        # file's syntax already rules out Python 3.4 and older
        self.features = frozenset({"call", "def"}) if modern else frozenset()

    def columns(self, depth: int) -> int:
        return self.indent + self.unit * depth

    def fits(self, line: _Line, limit: Optional[int] = None) -> bool:
        width = self.columns(line.depth) + str_width(line.text())
        return width <= (self.limit if limit is None else limit)

    def lay_out(self, leaves: List[Leaf]) -> List[_Line]:
        line = _Line(0)
        for leaf in leaves:
            line.append(leaf, preformatted=False)
        return self.transform(line, self.features)

    # -- driver

    def transform(self, line: _Line, features) -> List[_Line]:
        text = line.text()
        if not line.split_rhs and not line.magic and self.fits(line):
            return [line]
        if line.is_def and not self._split_def_with_rhs(line):
            transforms = [self.left_hand_split]
        elif line.inside:
            transforms = [self.delimiter_split, self.rhs]
        else:
            transforms = [self.rhs]
        for transform in transforms:
            try:
                return self._run(line, transform, features, text)
            except _CannotSplit:
                continue
        return [line]

    def _run(self, line: _Line, transform, features, text: str) -> List[_Line]:
        optional = [b for b in line.tracker.invisible if b.depth == 0]
        result: List[_Line] = []
        for new in transform(line, features):
            if new.depth == line.depth and new.text() == text:
                raise _CannotSplit("unchanged")
            result.extend(self.transform(new, features))
        if (
            FORCE_PARENS in features
            or transform != self.rhs
            or not line.tracker.invisible
            or any(b.value for b in optional)
            or self.fits(result[0])
        ):
            return result
        # a second opinion that keeps the optional parentheses
        copy = _Line(line.depth, line.inside)
        copy.split_rhs, copy.magic = line.split_rhs, line.magic
        for leaf in line.leaves:
            copy.append(leaf.copy(), preformatted=False)
        second = self._run(copy, transform, features | {FORCE_PARENS}, text)
        if all(self.fits(new) for new in second):
            return second
        return result

    def _split_def_with_rhs(self, line: _Line) -> bool:
        """A magic trailing comma in the return annotation splits there first."""
        ret: List[Leaf] = []
        inside = False
        for leaf in line.leaves:
            if leaf.type == ":":
                inside = False
            if inside:
                ret.append(leaf)
            if leaf.type == "->":
                inside = True
        probe = _Line(line.depth)
        track = _inside_matching(ret)
        for leaf in ret:
            probe.append(leaf, True, leaf in track)
        first = next((leaf for leaf in ret if leaf.value), None)
        return probe.magic is not None or (
            first is not None and first.type == STRING and not self.fits(probe))

    # -- building the pieces of a bracket split

    def _build(self, leaves: List[Leaf], original: _Line, opening: Leaf, component: str) -> _Line:
        result = _Line(original.depth)
        if component == BODY:
            result.inside = True
            result.depth += 1
            if self._ensure_trailing_comma(leaves, original, opening) and leaves[-1].type != ",":
                leaves.append(_comma())
        track = _inside_matching(leaves) if component == HEAD else set()
        for leaf in leaves:
            result.append(leaf, True, leaf in track)
        if component == BODY and self._should_split(result, opening):
            result.split_rhs = True
        return result

    @staticmethod
    def _ensure_trailing_comma(leaves: Sequence[Leaf], original: _Line, opening: Leaf) -> bool:
        """A lone parameter that gets a line of its own gets a trailing comma."""
        if not leaves or not original.is_def or opening.value != "(":
            return False
        if any(leaf.type == "," and not leaf.annotation for leaf in leaves):
            return False
        return not leaves[0].returns

    @staticmethod
    def _should_split(line: _Line, opening: Leaf) -> bool:
        """Explode a body right away: magic trailing comma, or a collection literal."""
        if opening.value not in "[{(" or not line.leaves:
            return False
        last = line.leaves[-1]
        trailing = last.type == ","
        priority = line.tracker.max_priority(exclude=last if trailing else None)
        return priority == COMMA and (trailing or opening.role == "atom")

    @staticmethod
    def _check(head: _Line, body: _Line, tail: _Line) -> None:
        tail_len = len(tail.text().strip())
        if not body:
            if tail_len == 0:
                raise _CannotSplit("same line")
            if tail_len < 3:
                raise _CannotSplit("not worth it")

    # -- right-hand split

    def rhs(self, line: _Line, features) -> List[_Line]:
        """Split at the last bracket pair, gluing trailers on when the head then fits."""
        first_lines: Optional[List[_Line]] = None
        prefix: Dict[Leaf, int] = {}
        at = self.columns(line.depth)
        for _, leaf, length in line.lengths():
            prefix[leaf] = at
            at += length
        for omit in self._trailers_to_omit(line):
            if omit:
                target = None
                for leaf in reversed(line.leaves):
                    if leaf.type in CLOSING and leaf not in omit:
                        target = leaf.opening
                        break
                if target is not None and target.value and prefix.get(target, 0) > self.limit:
                    continue
            lines = self._right_hand_split(line, features, omit)
            if first_lines is None and not omit:
                first_lines = lines
            if self.fits(lines[0]):
                return lines
        if first_lines is not None:
            return first_lines
        return self._right_hand_split(line, features, set())

    def _trailers_to_omit(self, line: _Line) -> Iterator[Set[Leaf]]:
        omit: Set[Leaf] = set()
        if not line.magic:
            yield omit
        length = self.columns(line.depth)
        opening: Optional[Leaf] = None
        closing: Optional[Leaf] = None
        inner: Set[Leaf] = set()
        for k, leaf, leaf_length in line.lengths(reverse=True):
            length += leaf_length
            if length > self.limit:
                break
            prev = line.leaves[k - 1] if k > 0 else None
            if opening is not None:
                if leaf is opening:
                    opening = None
                elif leaf.type in CLOSING:
                    if (prev is not None and prev.type == "," and leaf.opening is not None
                            and not _one_sequence(leaf.opening, leaf, line.leaves)):
                        break  # a magic trailing comma must explode
                    inner.add(leaf)
            elif leaf.type in CLOSING:
                if prev is not None and prev.type in OPENING:
                    inner.add(leaf)  # empty brackets
                    continue
                if closing is not None:
                    omit.add(closing)
                    omit.update(inner)
                    inner.clear()
                    yield omit
                if (prev is not None and prev.type == "," and leaf.opening is not None
                        and not _one_sequence(leaf.opening, leaf, line.leaves)):
                    break
                if leaf.value:
                    opening = leaf.opening
                    closing = leaf

    def _right_hand_split(self, line: _Line, features, omit: Set[Leaf]) -> List[_Line]:
        return self._omitting_optional_parens(self._first_rhs(line, omit), line, features, omit)

    def _first_rhs(self, line: _Line, omit: Set[Leaf]) -> _Split:
        tail: List[Leaf] = []
        body: List[Leaf] = []
        head: List[Leaf] = []
        current = tail
        opening: Optional[Leaf] = None
        closing: Optional[Leaf] = None
        for leaf in reversed(line.leaves):
            if current is body and leaf is opening:
                current = head if body else tail
            current.append(leaf)
            if current is tail and leaf.type in CLOSING and leaf not in omit:
                opening, closing = leaf.opening, leaf
                current = body
        if opening is None or closing is None or not head:
            raise _CannotSplit("no brackets")
        tail.reverse()
        body.reverse()
        head.reverse()
        split = _Split(self._build(head, line, opening, HEAD), self._build(body, line, opening, BODY),
                       self._build(tail, line, opening, TAIL), opening, closing)
        self._check(split.head, split.body, split.tail)
        return split

    def _omitting_optional_parens(self, split: _Split, line: _Line, features, omit: Set[Leaf]) -> List[_Line]:
        if (
            FORCE_PARENS not in features
            and split.opening.type == "(" and not split.opening.value
            and split.closing.type == ")" and not split.closing.value
            and self._can_omit_invisible_parens(split)
        ):
            omit = {split.closing, *omit}
            try:
                other = self._first_rhs(line, omit)
                if self._prefer_omitting(other, split):
                    return self._omitting_optional_parens(other, line, features, omit)
            except _CannotSplit:
                chained = sum(1 for leaf in line.leaves if leaf.type == "=") > 1
                if not chained and not self._can_be_split(split.body) and not self.fits(split.body):
                    raise
        _make_visible(split.opening)
        _make_visible(split.closing)
        return [part for part in (split.head, split.body, split.tail) if part]

    def _prefer_omitting(self, other: _Split, split: _Split) -> bool:
        head = split.head
        if not (len(head.leaves) >= 2 and head.leaves[-2].type == "="):
            return True
        if not any(leaf.type in OPENING or leaf.type in CLOSING for leaf in head.leaves[:-1]):
            return True
        if not self.fits(head, self.limit - 1):
            return True
        if head.magic is not None:
            return True
        equals = sum(1 for leaf in head.leaves if leaf.type == "=")
        other_equals = sum(1 for leaf in other.head.leaves if leaf.type == "=")
        if equals > 1 and equals > other_equals:
            return False
        closing_after_assign = False
        for leaf in reversed(other.head.leaves):
            if leaf.type == "=":
                break
            if leaf.type in CLOSING:
                closing_after_assign = True
                break
        return closing_after_assign or (
            any(leaf.type == "=" for leaf in other.head.leaves) and self.fits(other.head))

    def _can_omit_invisible_parens(self, split: _Split) -> bool:
        line = split.body
        delimiters = line.tracker.delimiters
        if not delimiters:
            return True
        priority = max(delimiters.values())
        if line.tracker.count(priority) > 1:
            return False
        if priority == DOT:
            return True
        if len(line.leaves) < 2:
            raise Unsupported("stranded delimiter")
        first, second = line.leaves[0], line.leaves[1]
        if first.type in OPENING and second.type not in CLOSING and self._can_omit_opening(line, first):
            return True
        penultimate, last = line.leaves[-2], line.leaves[-1]
        if last.type in (")", "}") or (last.type == "]" and last.role != "subscript"):
            if penultimate.type in OPENING:
                return False
            if self._can_omit_closing(line, last):
                return True
        return False

    def _can_omit_opening(self, line: _Line, first: Leaf) -> bool:
        remainder = False
        length = self.columns(line.depth)
        k = -1
        for k, leaf, leaf_length in line.lengths():
            if leaf.type in CLOSING and leaf.opening is first:
                remainder = True
            if remainder:
                length += leaf_length
                if length > self.limit:
                    return False
                if leaf.type in OPENING:
                    remainder = False
        return len(line.leaves) == k + 1

    def _can_omit_closing(self, line: _Line, last: Leaf) -> bool:
        length = self.columns(line.depth)
        seen_other = False
        for _, leaf, leaf_length in line.lengths():
            length += leaf_length
            if leaf is last.opening:
                if seen_other or length <= self.limit:
                    return True
            elif leaf.type in OPENING:
                seen_other = True
        return False

    @staticmethod
    def _can_be_split(line: _Line) -> bool:
        leaves = line.leaves
        if len(leaves) < 2:
            return False
        if leaves[0].type == STRING and leaves[1].type == ".":
            calls = dots = 0
            last = leaves[-1]  # black compares every leaf with the last one
            for leaf in leaves[-2::-1]:
                if leaf.type in OPENING:
                    if last.type not in CLOSING:
                        return False
                    calls += 1
                elif leaf.type == ".":
                    dots += 1
                elif leaf.type == NAME:
                    if not (last.type == "." or last.type in OPENING):
                        return False
                elif leaf.type not in CLOSING:
                    return False
                if dots > 1 and calls > 1:
                    return False
        return True

    # -- delimiter split and left-hand split

    def delimiter_split(self, line: _Line, features) -> List[_Line]:
        """One line per delimiter of the highest priority, with a trailing comma after commas."""
        if not line.leaves:
            raise _CannotSplit("empty")
        last = line.leaves[-1]
        delimiters = line.tracker.delimiters
        priority = line.tracker.max_priority(exclude=last)
        if not priority:
            raise _CannotSplit("no delimiters")
        if priority == DOT and line.tracker.count(priority) == 1:
            raise _CannotSplit("a single attribute access")
        out: List[_Line] = []
        current = _Line(line.depth, line.inside)
        lowest = None
        safe = True
        for leaf in line.leaves:
            current.append(leaf, True)
            lowest = leaf.depth if lowest is None else min(lowest, leaf.depth)
            if safe and leaf.depth == lowest:
                safe = leaf.vararg not in ("call", "def") or leaf.vararg in features
            if delimiters.get(leaf) == priority:
                out.append(current)
                current = _Line(line.depth, line.inside)
        if current:
            if safe and priority == COMMA and current.leaves[-1].type != ",":
                current.append(_comma(), preformatted=False)
            out.append(current)
        return out

    def left_hand_split(self, line: _Line, features) -> List[_Line]:
        """``def f(`` / parameters / ``):``, splitting at the first bracket."""
        matching: Optional[Leaf] = None
        tail: List[Leaf] = []
        body: List[Leaf] = []
        head: List[Leaf] = []
        for kind in ("(", "["):
            tail, body, head = [], [], []
            current = head
            matching = None
            depth = 0
            for k, leaf in enumerate(line.leaves):
                if k == 2 and leaf.type == "[":
                    depth += 1  # type parameters
                elif depth > 0:
                    if leaf.type == "[":
                        depth += 1
                    elif leaf.type == "]":
                        depth -= 1
                if (current is body and leaf.type in CLOSING and matching is not None
                        and leaf.opening is matching and not (kind == "(" and depth > 0)):
                    _make_visible(leaf)
                    _make_visible(matching)
                    current = tail if body else head
                current.append(leaf)
                if current is head and leaf.type == kind and not (kind == "(" and depth > 0):
                    matching = leaf
                    current = body
            if matching is not None and tail:
                break
        if matching is None or not tail:
            raise _CannotSplit("no brackets")
        parts = (self._build(head, line, matching, HEAD), self._build(body, line, matching, BODY),
                 self._build(tail, line, matching, TAIL))
        self._check(*parts)
        return [part for part in parts if part]


# black's splitting retries many layouts; statements longer than this keep the simpler wrapping
MAX_STATEMENT = 5000


def black_lines(text: str, indent: int, unit: int, limit: int, modern: bool = True) -> Optional[List[Tuple[int, str]]]:
    """black's layout of one statement (or ``def`` header) as ``(extra indent levels, text)`` lines.

    ``text`` is the statement's source without its indentation; ``indent`` the
    columns of that indentation and ``unit`` those of one indentation level.
    None when the statement has a shape this module does not lay out.
    """
    if len(text) > MAX_STATEMENT:
        return None
    try:
        leaves = statement_leaves(text)
        lines = _Splitter(indent, unit, limit, modern).lay_out(leaves)
    except Unsupported:
        return None
    except (RecursionError, MemoryError):
        return None  # a pathological statement keeps the simpler wrapping rather than cost the fix
    return [(line.depth, line.text()) for line in lines]


_MODERN = re.compile(
    r"""(?x)
    ^[ \t]*from[ \t]+__future__[ \t]+import[^\n]*\bannotations\b   # 3.7+
    | :=                                                          # 3.8+
    | \*\*?\w+[ \t]*,[ \t]*\)                                      # a trailing comma after *args
    | \b\d+_\d                                                     # 3.6+
    """,
    re.M,
)


def modern_syntax(source: str) -> bool:
    """Whether ``source`` uses syntax newer than Python 3.4, as black's target-version detection sees it.

    Covers the common markers (f-strings, ``:=``, underscores in numbers,
    ``from __future__ import annotations``, an existing trailing comma after
    ``*args``); it only decides whether a trailing comma follows ``**kwargs``
    in an exploded call or signature.
    """
    return bool(_MODERN.search(source)) or _tokens(source).fstring


# --------------------------------------------------------------------------
# fallback for statements black_lines does not lay out (comments inside, other shapes)


def _longest(node: cst.CSTNode, indent: int, module: cst.Module) -> int:
    if isinstance(node, cst.SimpleStatementLine):
        node = node.with_changes(leading_lines=())  # comments above are not part of the statement
    text = module.code_for_node(node)
    return max((indent + len(line) for line in text.splitlines() if line.strip()), default=0)


def _break(unit: str) -> cst.ParenthesizedWhitespace:
    """A line break that continues at the statement's indentation plus ``unit``."""
    return cst.ParenthesizedWhitespace(
        first_line=cst.TrailingWhitespace(),
        empty_lines=(),
        indent=True,
        last_line=cst.SimpleWhitespace(unit),
    )


def _line_indent(stmt: cst.BaseStatement, node: cst.CSTNode, module: cst.Module) -> str:
    """The whitespace, beyond the statement's own indentation, of the line where ``node`` starts.

    A call on a continuation line (inside a multi-line tuple, say) is wrapped relative to that
    line, as black does, not to the statement's first line.
    """
    from .positions import resolve_positions

    alone = module.with_changes(body=[stmt])
    line = resolve_positions(alone)[node].start.line
    text = alone.code.splitlines()[line - 1]
    return text[:len(text) - len(text.lstrip())]


def _one_line(args):
    out = []
    for i, a in enumerate(args):
        last = i == len(args) - 1
        out.append(a.with_changes(
            comma=cst.MaybeSentinel.DEFAULT if last else cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
            **({"whitespace_after_arg": cst.SimpleWhitespace("")} if isinstance(a, cst.Arg) else {}),
        ))
    return out


def wrap_call(call: cst.Call, unit: str, extra: str = "") -> cst.Call:
    """``f(\\n    a, b\\n)`` ("hugged"), the first of black's two layouts; ``extra``: see ``_line_indent``."""
    args = _one_line(call.args)
    args[-1] = args[-1].with_changes(whitespace_after_arg=_break(extra))
    return call.with_changes(whitespace_before_args=_break(extra + unit), args=args)


def explode_call(call: cst.Call, unit: str, extra: str = "") -> cst.Call:
    """One argument per line with a trailing comma, black's second layout."""
    args = []
    for i, a in enumerate(call.args):
        last = i == len(call.args) - 1
        args.append(a.with_changes(
            comma=cst.Comma(whitespace_after=_break(extra if last else extra + unit)),
            whitespace_after_arg=cst.SimpleWhitespace(""),
        ))
    return call.with_changes(whitespace_before_args=_break(extra + unit), args=args)


def fit_statement(stmt: cst.BaseStatement, call: Optional[cst.Call], indent: int, unit: str,
                  limit: int, module: cst.Module) -> cst.BaseStatement:
    """Wrap ``call`` (a node inside ``stmt``) when ``stmt`` overflows ``limit``."""
    if call is None or not call.args or _longest(stmt, indent, module) <= limit:
        return stmt
    if any(_has_comment(a) for a in call.args):
        return stmt  # a comment pins the layout; leave it as written
    extra = _line_indent(stmt, call, module)
    for layout in (wrap_call, explode_call):
        candidate = stmt.deep_replace(call, layout(call, unit, extra))
        if _longest(candidate, indent, module) <= limit or layout is explode_call:
            return candidate
    return stmt


def _header_width(fn: cst.FunctionDef, indent: int, module: cst.Module) -> int:
    """Widest line of the ``def`` header, without the placeholder body used to render it."""
    text = _header_text(fn, module)
    return max((indent + str_width(line) for line in text.splitlines() if line.strip()), default=0)


def fit_def(fn: cst.FunctionDef, indent: int, unit: str, limit: int, module: cst.Module) -> cst.FunctionDef:
    """One parameter per line when a signature the rewrite lengthened overflows."""
    if _header_width(fn, indent, module) <= limit:
        return fn
    ps = fn.params
    order = [*ps.posonly_params, *ps.params]
    if ps.star_arg is not cst.MaybeSentinel.DEFAULT or ps.kwonly_params or ps.posonly_params:
        return fn  # unusual signatures keep their layout
    if any(_has_comment(p) for p in order):
        return fn
    items = order + ([ps.star_kwarg] if ps.star_kwarg is not None else [])
    new = []
    for i, p in enumerate(items):
        last = i == len(items) - 1
        comma = cst.Comma(whitespace_after=_break("" if last else unit))
        new.append(p.with_changes(comma=comma, whitespace_after_param=cst.SimpleWhitespace("")))
    kwarg = new[-1] if ps.star_kwarg is not None else None
    params = ps.with_changes(params=new[:-1] if kwarg is not None else new, star_kwarg=kwarg)
    return fn.with_changes(params=params, whitespace_before_params=_break(unit))


def _has_comment(node: cst.CSTNode) -> bool:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, cst.Comment):
            return True
        stack.extend(cur.children)
    return False


def value_call(stmt: cst.CSTNode) -> Optional[cst.Call]:
    """The call a generated one-line statement (``x = f(...)``) is built around."""
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        value = getattr(stmt.body[0], "value", None)
        if isinstance(value, cst.Call):
            return value
    return None


# --------------------------------------------------------------------------
# applying the layout to LibCST nodes


def _header_text(fn: cst.FunctionDef, module: cst.Module) -> str:
    """``def f(...) -> X:`` as written, rendered with a placeholder body that is cut off again."""
    stub = fn.with_changes(body=cst.SimpleStatementSuite(body=[cst.Pass()]), leading_lines=(),
                           decorators=(), lines_after_decorators=())
    text = module.code_for_node(stub).rstrip("\r\n")
    return text[: -len(" pass")] if text.endswith(" pass") else text


_SIGNATURE_FIELDS = ("params", "returns", "whitespace_after_def", "whitespace_after_name",
                     "whitespace_before_params", "whitespace_before_colon")


class Fitter:
    """Lays out the statements the rewrite edits or creates in one module the way black would.

    A statement the rewrite edited gets black's layout when it was laid out as
    black lays it out before the edit, or when it no longer fits the width;
    otherwise the file's own layout is kept.  New statements always get
    black's layout.
    """

    def __init__(self, module: cst.Module, text: Optional[str] = None):
        self.module = module
        self.unit = module.default_indent
        self.unit_width = len(self.unit.expandtabs(4))
        text = module.code if text is None else text  # the whole file, even when the module is a slice
        self.limit = width_limit(text)
        self.modern = modern_syntax(text)
        self.newline = module.default_newline

    def _black(self, text: str, indent: int) -> Optional[str]:
        lines = black_lines(text, indent, self.unit_width, self.limit, self.modern)
        if lines is None:
            return None
        new = self.newline.join(self.unit * depth + line for depth, line in lines)
        if _words(new) != _words(text):
            return None  # never change more than brackets, commas and whitespace
        return new

    def _overflows(self, text: str, indent: int) -> bool:
        return any(indent + str_width(line) > self.limit for line in text.splitlines())

    def _statement_text(self, stmt: cst.BaseStatement) -> Optional[str]:
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return None
        if stmt.trailing_whitespace.comment is not None:
            return None
        return self.module.code_for_node(stmt.with_changes(leading_lines=())).rstrip("\r\n")

    def _laid_out(self, stmt: cst.BaseStatement, indent: int) -> Tuple[Optional[str], Optional[str]]:
        """``(statement text, black's text)``; black's is None when it cannot be computed."""
        text = self._statement_text(stmt)
        return text, (None if text is None else self._black(text, indent))

    def _parse(self, text: str) -> Optional[cst.BaseStatement]:
        try:
            return cst.parse_statement(text + self.newline, config=self.module.config_for_parsing)
        except cst.ParserSyntaxError:
            return None

    def _is_black(self, stmt: cst.BaseStatement, indent: int) -> bool:
        text, new = self._laid_out(stmt, indent)
        return new is not None and new == text

    def statement(self, original: cst.BaseStatement, updated: cst.BaseStatement, indent: int,
                  call: Optional[cst.Call]) -> cst.BaseStatement:
        """A statement the rewrite edited (``call`` is its innermost edited call, if any)."""
        text, new = self._laid_out(updated, indent)
        if new is None:
            return fit_statement(updated, call, indent, self.unit, self.limit, self.module)
        if new == text or not (self._overflows(text, indent) or self._is_black(original, indent)):
            return updated
        parsed = self._parse(new)
        if parsed is None:
            return fit_statement(updated, call, indent, self.unit, self.limit, self.module)
        return parsed.with_changes(leading_lines=updated.leading_lines)

    def new(self, stmt: cst.BaseStatement, indent: int) -> cst.BaseStatement:
        """A statement the rewrite created (``if`` blocks included)."""
        if isinstance(stmt, cst.SimpleStatementLine):
            text, new = self._laid_out(stmt, indent)
            parsed = None if new is None or new == text else self._parse(new)
            if parsed is not None:
                return parsed.with_changes(leading_lines=stmt.leading_lines)
            if new is not None and new == text:
                return stmt
            return fit_statement(stmt, value_call(stmt), indent, self.unit, self.limit, self.module)
        if isinstance(stmt, cst.If) and isinstance(stmt.body, cst.IndentedBlock):
            inner = indent + self.unit_width
            body = [self.new(s, inner) for s in stmt.body.body]
            stmt = stmt.with_changes(body=stmt.body.with_changes(body=body))
            if isinstance(stmt.orelse, cst.Else) and isinstance(stmt.orelse.body, cst.IndentedBlock):
                orelse = [self.new(s, inner) for s in stmt.orelse.body.body]
                orelse_body = stmt.orelse.body.with_changes(body=orelse)
                stmt = stmt.with_changes(orelse=stmt.orelse.with_changes(body=orelse_body))
        return stmt

    def signature(self, original: cst.FunctionDef, updated: cst.FunctionDef, indent: int) -> cst.FunctionDef:
        """A ``def`` whose parameters the rewrite extended."""
        text = _header_text(updated, self.module)
        new = self._black(text, indent)
        if new is None:
            return fit_def(updated, indent, self.unit, self.limit, self.module)
        if new == text:
            return updated
        before = _header_text(original, self.module)
        if not (self._overflows(text, indent) or self._black(before, indent) == before):
            return updated
        parsed = self._parse(new + self.newline + self.unit + "pass")
        if not isinstance(parsed, cst.FunctionDef):
            return fit_def(updated, indent, self.unit, self.limit, self.module)
        return updated.with_changes(**{name: getattr(parsed, name) for name in _SIGNATURE_FIELDS})


def _words(text: str) -> List[str]:
    """The tokens of ``text`` apart from brackets and commas."""
    try:
        return [value for _, value, _ in _lex(text) if value not in ",()"]
    except Unsupported:
        return []
