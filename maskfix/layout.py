"""Keep lines the rewrite lengthens within the file's width, the way black would wrap them.

Only nodes the rewrite edited or created are ever re-laid out; everything
else keeps its bytes.  The width is 88 columns (black's), or the file's
longest line when the file often runs wider.
"""

from __future__ import annotations

import io
import tokenize
from typing import Optional

import libcst as cst


def width_limit(source: str) -> int:
    """88 columns, unless the file's own code often runs longer (then its longest code line).

    Long prose in docstrings and comments, and a few long lines, do not make a file wide.
    """
    lines = source.splitlines()
    code_rows = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                code_rows.add(tok.start[0])
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return 88
    long = [len(lines[r - 1]) for r in code_rows if r <= len(lines) and len(lines[r - 1]) > 88]
    if len(long) <= max(2, len(code_rows) // 50):
        return 88
    return max(long)


def _longest(node: cst.CSTNode, indent: int, module: cst.Module) -> int:
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


def _one_line(args):
    out = []
    for i, a in enumerate(args):
        last = i == len(args) - 1
        out.append(a.with_changes(
            comma=cst.MaybeSentinel.DEFAULT if last else cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
            **({"whitespace_after_arg": cst.SimpleWhitespace("")} if isinstance(a, cst.Arg) else {}),
        ))
    return out


def wrap_call(call: cst.Call, unit: str) -> cst.Call:
    """``f(\\n    a, b\\n)`` ("hugged"), the first of black's two layouts."""
    args = _one_line(call.args)
    args[-1] = args[-1].with_changes(whitespace_after_arg=_break(""))
    return call.with_changes(whitespace_before_args=_break(unit), args=args)


def explode_call(call: cst.Call, unit: str) -> cst.Call:
    """One argument per line with a trailing comma, black's second layout."""
    args = []
    for i, a in enumerate(call.args):
        last = i == len(call.args) - 1
        args.append(a.with_changes(
            comma=cst.Comma(whitespace_after=_break("" if last else unit)),
            whitespace_after_arg=cst.SimpleWhitespace(""),
        ))
    return call.with_changes(whitespace_before_args=_break(unit), args=args)


def fit_statement(stmt: cst.BaseStatement, call: Optional[cst.Call], indent: int, unit: str,
                  limit: int, module: cst.Module) -> cst.BaseStatement:
    """Wrap ``call`` (a node inside ``stmt``) when ``stmt`` overflows ``limit``."""
    if call is None or not call.args or _longest(stmt, indent, module) <= limit:
        return stmt
    if any(_has_comment(a) for a in call.args):
        return stmt  # a comment pins the layout; leave it as written
    for layout in (wrap_call, explode_call):
        candidate = stmt.deep_replace(call, layout(call, unit))
        if _longest(candidate, indent, module) <= limit or layout is explode_call:
            return candidate
    return stmt


def fit_def(fn: cst.FunctionDef, indent: int, unit: str, limit: int, module: cst.Module) -> cst.FunctionDef:
    """One parameter per line when a signature the rewrite lengthened overflows."""
    header = fn.with_changes(body=cst.SimpleStatementSuite(body=[cst.Pass()]), leading_lines=())
    if _longest(header, indent, module) <= limit:
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


def fit_new(stmt: cst.BaseStatement, indent: int, unit: str, limit: int, module: cst.Module):
    """Fit a statement the rewrite created (``if`` blocks included) to ``limit``."""
    if isinstance(stmt, cst.SimpleStatementLine):
        return fit_statement(stmt, value_call(stmt), indent, unit, limit, module)
    if isinstance(stmt, cst.If) and isinstance(stmt.body, cst.IndentedBlock):
        body = [fit_new(s, indent + len(unit), unit, limit, module) for s in stmt.body.body]
        stmt = stmt.with_changes(body=stmt.body.with_changes(body=body))
        if isinstance(stmt.orelse, cst.Else) and isinstance(stmt.orelse.body, cst.IndentedBlock):
            orelse = [fit_new(s, indent + len(unit), unit, limit, module) for s in stmt.orelse.body.body]
            stmt = stmt.with_changes(orelse=stmt.orelse.with_changes(body=stmt.orelse.body.with_changes(body=orelse)))
    return stmt
