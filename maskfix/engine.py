"""One pass over a set of sources: analyse, plan, and (optionally) rewrite.

``check`` and ``rewrite`` share this path, so a finding is reported exactly
when the rewrite would act on it.  Sources are analysed together so that a
decoder defined in one file is followed to the files that call it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .analysis import (
    DecoderClass,
    ModuleFacts,
    analyze_module,
    find_call_sites,
    suppressed,
)
from .factories import factory_problems
from .rewrite import CallSitePlanner, Edits, _Style, apply, plan_eager_mask, plan_layer
from .syntax import forget_trees, index_tree


@dataclass
class Finding:
    code: str
    message: str
    line: int  # 1-based
    column: int  # 1-based
    fixable: bool = False


@dataclass
class Outcome:
    """What one source produced."""

    findings: List[Finding] = field(default_factory=list)
    new_source: Optional[str] = None  # set when a rewrite changed the source
    error: Optional[str] = None
    notes: List[str] = field(default_factory=list)  # how call sites were threaded
    decoders: List[str] = field(default_factory=list)  # names of buggy decoder classes defined here


@dataclass
class _Unit:
    key: str
    source: str
    module: cst.Module
    facts: ModuleFacts
    imported: set
    factory_problems: list = field(default_factory=list)  # (code, node, message, planner)


def _imported_names(module: cst.Module) -> set:
    names = set()
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                    for alias in small.names:
                        names.add(alias.asname.name.value if alias.asname else alias.name.value)
    return names


def run(sources: Dict[str, str], fix: bool = False) -> Dict[str, Outcome]:
    """Analyse ``{key: source}`` together; rewrite when ``fix``."""
    try:
        return _run(sources, fix)
    finally:
        forget_trees()


def _run(sources: Dict[str, str], fix: bool) -> Dict[str, Outcome]:
    outcomes: Dict[str, Outcome] = {}
    units: List[_Unit] = []
    for key, source in sources.items():
        try:
            module = cst.parse_module(source)
        except cst.ParserSyntaxError as exc:
            outcomes[key] = Outcome(error=f"cannot parse: {_syntax_reason(exc, source)}")
            continue
        except RecursionError:
            outcomes[key] = Outcome(error="cannot parse: nesting too deep")
            continue
        try:
            index_tree(module)
            unit = _Unit(key, source, module, analyze_module(module), _imported_names(module))
            unit.factory_problems = factory_problems(module)
        except Exception as exc:  # one file's surprise must not stop the others
            outcomes[key] = Outcome(error=_internal_error(exc))
            continue
        units.append(unit)

    exported: Dict[str, DecoderClass] = {}
    for u in units:
        for d in u.facts.decoders:
            exported.setdefault(d.name, d)

    # Every call of each decoder, across all sources.
    sites_by_unit = {}
    sites_of: Dict[int, list] = {}
    for u in units:
        visible = [d for d in u.facts.decoders if not d.functional]
        visible += [d for name, d in exported.items()
                    if name in u.imported and d not in visible and not d.functional]
        sites = find_call_sites(u.module, visible) if visible else []
        sites_by_unit[u.key] = sites
        for s in sites:
            sites_of.setdefault(id(s.decoder), []).append((u, s))

    views = {u.key: _View(u) for u in units if u.facts.decoders or sites_by_unit[u.key]}
    fixing = set()  # ids of decoders that will be rewritten
    for u in units:
        out = outcomes[u.key] = Outcome(decoders=[d.name for d in u.facts.decoders])
        # (code, key for `fixing`, node to report at, message)
        simple = [(code, id(node), node, message) for code, node, message, _ in u.factory_problems]
        simple += [("MF007", id(lazy), lazy.guard, lazy.reason()) for lazy in u.facts.lazy_masks]
        for code, key, node, message in simple:
            view = views.setdefault(u.key, _View(u))
            if not view.suppressed(code, node):
                line, col = view.where(node)
                out.findings.append(Finding(code, message, line, col, fixable=True))
                fixing.add((key, code))
        for dec in u.facts.decoders:
            for finding in _judge(dec, views, u.key, sites_of.get(id(dec), [])):
                out.findings.append(finding)
                if finding.fixable:
                    fixing.add((id(dec), finding.code))
    for u in units:
        if u.key in views or u.facts.lazy_masks or u.factory_problems:
            try:
                _plan_and_apply(u, views[u.key], sites_by_unit[u.key], fixing, outcomes[u.key], fix)
            except Exception as exc:
                outcomes[u.key] = Outcome(error=_internal_error(exc))
    return outcomes


def _internal_error(exc: Exception) -> str:
    """A maskfix bug, reported against the file that triggered it."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        where = f" ({tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno})"
        tb = tb.tb_next
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error, file skipped: {type(exc).__name__}{': ' + text if text else ''}{where}"


def _syntax_reason(exc: cst.ParserSyntaxError, source: str) -> str:
    """Where and why, from Python's own parser: LibCST's positions can point past the error."""
    try:
        ast.parse(source)  # parses only; nothing is compiled to bytecode or run
    except SyntaxError as err:
        if err.lineno:
            msg = (err.msg or "invalid syntax").splitlines()[0]
            return f"syntax error at line {err.lineno}, column {err.offset or 1}: {msg}"
    except (ValueError, RecursionError, MemoryError):
        pass
    return f"syntax error at line {exc.raw_line}, column {exc.raw_column + 1}"


class _View:
    """Positions and line texts of one parsed source."""

    def __init__(self, u: _Unit):
        self.pos = MetadataWrapper(u.module, unsafe_skip_copy=True).resolve(PositionProvider)
        self.lines = u.source.splitlines()

    def where(self, node):
        start = self.pos[node].start
        return start.line, start.column + 1

    def suppressed(self, code, *nodes) -> bool:
        for n in nodes:
            line = self.pos[n].start.line
            if 0 < line <= len(self.lines) and suppressed(self.lines[line - 1], code):
                return True
        return False


def _judge(dec: DecoderClass, views: Dict[str, "_View"], key: str, all_sites) -> List[Finding]:
    """MF001/MF003 for a decoder; none when suppressed or only used decoder-only."""
    view = views[key]
    only = [s for _, s in all_sites if s.decoder_only]
    if all_sites and len(only) == len(all_sites):
        return []  # a text generator: with one tensor twice the causal mask is needed
    blocked = ""
    if dec.functional:
        blocked = (" (not rewritten: the decoder is built as a functional model; give it an encoder "
                   "padding mask Input and build the cross-attention mask from that)")
    elif only:
        unit, site = next((u, s) for u, s in all_sites if s.decoder_only)
        blocked = (f" (not rewritten: {dec.name} is also called with one tensor twice, "
                   f"decoder-only, in {unit.key} at line {views[unit.key].where(site.call)[0]})")
    ac = dec.cross_attention
    out = []
    for code, wanted, anchor, reason in (
        ("MF001", dec.mask_bug, ac.mask_arg, dec.reason),
        ("MF003", dec.causal_flag, ac.causal_flag, dec.flag_reason),
    ):
        if not wanted or view.suppressed(code, anchor, ac.call, dec.node):
            continue
        line, col = view.where(anchor)
        out.append(Finding(code, reason() + blocked, line, col, fixable=not blocked))
    return out


def _plan_and_apply(u: _Unit, view: _View, sites, fixing, out: Outcome, fix: bool) -> None:
    style = _Style(u.module)
    edits = Edits()
    for code, node, _, fix_edits in u.factory_problems:
        if (id(node), code) in fixing:
            fix_edits(edits, style, u.facts)
    for lazy in u.facts.lazy_masks:
        if (id(lazy), "MF007") in fixing:
            plan_eager_mask(lazy, edits)
    for dec in u.facts.decoders:
        if (id(dec), "MF001") in fixing:
            plan_layer(dec, u.facts, style, edits)
        if (id(dec), "MF003") in fixing:
            edits.remove_args.add(id(dec.cross_attention.causal_flag))
    planner = CallSitePlanner(u.facts, style, edits)
    for site in sites:
        if (id(site.decoder), "MF001") not in fixing or view.suppressed("MF002", site.call):
            continue
        plan = planner.plan(site)
        if plan.kind == "unresolved":
            line, col = view.where(site.call)
            out.findings.append(Finding(
                "MF002",
                f"call of {site.decoder.name}: pass encoder_padding_mask= here by hand ({plan.detail}); "
                "until then the layer falls back to the mask Keras attached to the encoder outputs",
                line, col,
            ))
        elif plan.kind in ("direct", "submodel"):
            out.notes.append(plan.detail)
    if fix and edits:
        new = apply(u.module, edits).code
        if new != u.source:
            out.new_source = new


def check_source(source: str) -> List[Finding]:
    """Findings for one self-contained source."""
    out = run({"<source>": source})["<source>"]
    if out.error:
        raise ValueError(out.error)
    return out.findings


def rewrite_source(source: str) -> str:
    """The fixed source (unchanged when there is nothing to fix)."""
    out = run({"<source>": source}, fix=True)["<source>"]
    if out.error:
        raise ValueError(out.error)
    return out.new_source if out.new_source is not None else source
