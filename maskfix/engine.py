"""One pass over a set of sources: analyse, plan, and (optionally) rewrite.

``check`` and ``rewrite`` share this path, so a finding is reported exactly
when the rewrite would act on it.  Sources are analysed together so that a
decoder defined in one file is followed to the files that call it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from . import limits, slicing
from .outcome import Finding, Outcome
from .dialect import module_dialect
from .flow.decoders import DecoderClass, ModuleFacts, analyze_module, find_call_sites
from .noqa import suppressed
from .flow.factories import Factory, find_factories, inline_factories
from .flow.attention import Attentions, Signature, find_wrappers
from .flow.values import ModuleValues
from .positions import LazyPositions
from .rewrite import Edits, Style, apply
from .rules import Context, Problem, active_rules, is_selected
from .symbols import STAR, Symbols, imported_names
from .syntax import TreeIndex, adopt_index, forget_trees, index_tree, iter_nodes


@dataclass
class _Unit:
    key: str
    source: str
    module: cst.Module
    facts: ModuleFacts
    imported: set
    factories: List[Factory] = field(default_factory=list)
    in_place: List[Factory] = field(default_factory=list)  # masks built by the factory contract in place
    hidden: Optional[limits.Hidden] = None  # statements set aside for their nesting depth
    wrappers: Dict[str, Signature] = field(default_factory=dict)  # attention wrappers defined here
    star: bool = False  # ``from x import *``: every name the run defines may be visible
    visible: Dict[str, Signature] = field(default_factory=dict)  # attention wrappers this source can use
    original: str = ""  # the file as given, when ``source`` is a slice of it (fewer lines)
    index: Optional[TreeIndex] = None


def _runtime(module: cst.Module) -> str:
    return module_dialect(module).runtime


def run(sources: Dict[str, str], fix: bool = False,
        select: Optional[Sequence[str]] = None,
        progress: Optional[Callable[[int, int, str], None]] = None,
        loaded: Optional[Mapping[str, "Loaded"]] = None) -> Dict[str, Outcome]:
    """Analyse ``{key: source}`` together; rewrite when ``fix``.

    ``select`` (codes or prefixes, default all) chooses the rules that report and fix.
    ``progress(done, total, key)`` is called as each source's parsing and analysis starts.
    ``loaded``: sources already parsed by ``load``, by key; one whose text differs is parsed again.
    """
    return limits.call_with_deep_stack(_run_and_forget, sources, fix, select, progress, loaded or {})


@dataclass(frozen=True)
class Loaded:
    """A source parsed and indexed ahead of the runs that will be given it (``load``)."""

    key: str
    source: str
    unit: Optional["_Unit"]  # None when the source cannot be analysed ...
    error: Optional[str]  # ... for this reason

    def fresh(self) -> Union["_Unit", Outcome]:
        """What ``run`` would have made of the source itself: a new unit over the same tree."""
        if self.unit is None:
            return Outcome(error=self.error)
        u = self.unit
        if u.index is not None:
            adopt_index(u.index)  # a run forgets the trees it indexed; this one is used again
        return _Unit(u.key, u.source, u.module, None, set(u.imported), hidden=u.hidden, original=u.original,
                     star=u.star, index=u.index)


def load(key: str, source: str) -> Optional[Loaded]:
    """Parse and index ``source`` as ``run`` would, under the same time limit per file, for later
    runs; None for a source whose parse depends on the run's other sources (a large file is sliced
    by what they name).  Needs a deep stack, as ``run`` has (``limits.call_with_deep_stack``)."""
    if slicing.needs_slicing(source):
        return None
    timer = limits.FileTimer()
    try:
        with timer.limit():
            result = _load(key, source)
    except limits.OutOfTime:
        result = Outcome(error=timer.reason())
    finally:
        timer.close()
    if isinstance(result, Outcome):
        return Loaded(key, source, None, result.error)
    return Loaded(key, source, result, None)


def _run_and_forget(sources: Dict[str, str], fix: bool, select: Optional[Sequence[str]],
                    progress=None, loaded: Mapping[str, Loaded] = {}) -> Dict[str, Outcome]:
    timer = limits.FileTimer()
    try:
        return _run(sources, fix, select, timer, progress, loaded)
    finally:
        timer.close()
        forget_trees()


def _load(key: str, source: str, elsewhere: Callable[[], Set[str]] = set):
    """A parsed and analysed ``_Unit``, or the ``Outcome`` that says why not.

    ``elsewhere()`` gives the words of the run's other sources; it is asked only for a large file.
    """
    try:
        hidden = _set_aside_deep_statements(source)
    except limits.TooDeep as exc:
        return Outcome(error=str(exc))
    original, whole = "", hidden.source
    if slicing.needs_slicing(source) and slicing.drop_unrelated(hidden, elsewhere()):
        original = source
    source = hidden.source
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        error, text = exc, source
        if source != whole:  # say where in the file as given, not in the sliced text
            try:
                cst.parse_module(whole)
            except cst.ParserSyntaxError as exc_whole:
                error, text = exc_whole, whole
        return Outcome(error=f"cannot parse: {_syntax_reason(error, text)}")
    except RecursionError:
        return Outcome(error="cannot parse: nesting too deep")
    try:
        index = index_tree(module)
        names = imported_names(module)
        unit = _Unit(key, source, module, None, set(names) - {STAR}, hidden=hidden, original=original, index=index)
        unit.star = STAR in names
    except Exception as exc:  # one file's surprise must not stop the others
        return Outcome(error=_internal_error(exc))
    return unit


def _set_aside_deep_statements(source: str) -> limits.Hidden:
    """``source`` made safe for LibCST (see maskfix.limits); TooDeep when it cannot be."""
    tree = limits.parse_python(source)  # where LibCST's native parser would crash, ast fails cleanly
    if tree is None:  # a syntax error: LibCST reports it
        return limits.Hidden(source)
    return limits.hide_deep_statements(source, tree)


def _run(sources: Dict[str, str], fix: bool, select: Optional[Sequence[str]],
         timer: limits.FileTimer, progress=None, ready: Mapping[str, Loaded] = {}) -> Dict[str, Outcome]:
    outcomes: Dict[str, Outcome] = {}
    units: List[_Unit] = []
    words: Dict[str, Set[str]] = {}

    def elsewhere(key: str) -> Set[str]:
        for other, text in sources.items():
            if other not in words:
                words[other] = slicing.words([text])
        return set().union(*(w for other, w in words.items() if other != key))

    for done, (key, source) in enumerate(sources.items()):
        if progress is not None:
            progress(done, len(sources), key)
        early = ready.get(key)
        try:
            if early is not None and early.source == source:
                loaded = early.fresh()
            else:
                with timer.limit():
                    loaded = _load(key, source, lambda key=key: elsewhere(key))
        except limits.OutOfTime:
            loaded = Outcome(error=timer.reason())
        if isinstance(loaded, Outcome):
            outcomes[key] = loaded
        else:
            units.append(loaded)

    symbols = Symbols([(u.key, u.module) for u in units])
    # The run's own attention layers, found once across every source.
    wrappers: Dict[str, Signature] = {}
    defined: Dict[str, Dict[str, Signature]] = {}
    for _ in range(2):  # a wrapper of a wrapper in an earlier file is found in the second round
        for u in units:
            try:
                own = {c.name.value for c in iter_nodes(u.module, cst.ClassDef)}
                # a class of this file shadows one of the same name elsewhere
                mine = find_wrappers([u.module], _runtime, {n: s for n, s in wrappers.items() if n not in own})
            except Exception:  # reported below, when the same source is analysed
                continue
            defined[u.key] = {n: s for n, s in mine.items() if n in own}
            wrappers.update(defined[u.key])
    for u in units:  # the attention layers each source can see: those it imports, and its own
        u.visible = {n: s for key, mine in defined.items() if key != u.key
                     for n, s in mine.items() if symbols.sees(u.key, n, key)}
        u.visible.update(defined.get(u.key, {}))
    # One abstract interpretation of the run: each source's values, followed into the others.
    loaded = {u.key: u for u in units}
    programs: Dict[str, ModuleValues] = {}

    def values_of(key: str) -> Optional[ModuleValues]:
        if key not in programs and key in loaded:
            u = loaded[key]
            programs[key] = ModuleValues(u.module, Attentions(_runtime(u.module), u.visible), key, symbols, values_of)
        return programs.get(key)

    analysed: List[_Unit] = []
    for done, u in enumerate(units):
        if progress is not None:  # the analysis is the slow part: keep the line up while it runs
            progress(done, len(units), u.key)
        try:
            with timer.limit():
                values = values_of(u.key)
                u.facts = analyze_module(u.module, u.visible, values)
                u.factories = find_factories(u.module, values)
                u.in_place = inline_factories(u.module, values)
                u.wrappers = defined.get(u.key, {})
        except limits.OutOfTime:
            outcomes[u.key] = Outcome(error=timer.reason())
            continue
        except Exception as exc:  # one file's surprise must not stop the others
            outcomes[u.key] = Outcome(error=_internal_error(exc))
            continue
        analysed.append(u)
    units = analysed

    _share_embeddings(units, symbols)
    exported: List[Tuple[str, DecoderClass]] = [(u.key, d) for u in units for d in u.facts.decoders]

    # Every call of each decoder, across all sources.
    sites_by_unit = {}
    sites_of: Dict[int, list] = {}
    for u in units:
        visible = [d for d in u.facts.decoders if not d.functional]
        names = {d.name for d in visible}
        for key, d in exported:  # the first of a name the source can see
            if key != u.key and d.name not in names and not d.functional and symbols.sees(u.key, d.name, key):
                visible.append(d)
                names.add(d.name)
        sites = find_call_sites(u.module, visible) if visible else []
        sites_by_unit[u.key] = sites
        for s in sites:
            sites_of.setdefault(id(s.decoder), []).append((u.key, s))

    views: Dict[str, _View] = {}

    def view(key: str) -> "_View":
        if key not in views:
            views[key] = _View(by_key[key])
        return views[key]

    by_key = {u.key: u for u in units}
    modules = {u.key: u.module for u in units}
    rules = active_rules(select)
    contexts: Dict[str, Context] = {}
    problems: Dict[str, List[Problem]] = {}
    flagged: Dict[str, set] = {}
    for u in units:
        outcomes[u.key] = Outcome(decoders=[d.name for d in u.facts.decoders],
                                  attention_layers=sorted(u.wrappers),
                                  mask_factories=[f.name for f in u.factories])
        outcomes[u.key].not_analysed = list(u.hidden.notes) if u.hidden else []
        contexts[u.key] = Context(
            key=u.key, module=u.module, facts=u.facts, factories=u.factories,
            visible_factories=u.factories + u.in_place + [f for v in units if v is not u for f in v.factories
                                                          if symbols.sees(u.key, f.name, v.key)],
            sites=sites_by_unit[u.key],
            sites_of=lambda dec: sites_of.get(id(dec), []),
            where=lambda key, node: view(key).where(node),
            suppressed=lambda code, *nodes, _key=u.key: view(_key).suppressed(code, *nodes),
            notes=outcomes[u.key].notes,
            attentions=u.visible,
            modules=modules,
            # a sliced file's style is read off the whole text, and only when it will be written
            style=Style(u.module, u.original) if fix and u.original else Style(u.module),
            others=[(v.key, v.module, symbols.names_from(v.key, u.key)) for v in units if v is not u],
            symbols=symbols,
            peers=contexts,
            values_of=values_of,
        )
    found_in: Dict[str, List[Problem]] = {}
    for u in units:
        try:
            with timer.limit():
                found_in[u.key] = [p for rule in rules for p in rule.check(contexts[u.key])]
        except limits.OutOfTime:
            outcomes[u.key] = Outcome(error=timer.reason())
        except Exception as exc:
            outcomes[u.key] = Outcome(error=_internal_error(exc))
    # a rule checking one source may find a problem in another (a layer it imports): report it there
    placed: Dict[str, List[Problem]] = {key: [] for key in found_in}
    seen: Set[tuple] = set()
    for key, found in found_in.items():
        for p in found:
            if p.home is None or p.home == key:
                placed[key].append(p)
                seen.add((p.code, id(p.node)))
    for key, found in found_in.items():
        for p in found:
            if p.home not in (None, key) and p.home in placed and (p.code, id(p.node)) not in seen:
                seen.add((p.code, id(p.node)))  # found once per source that imports the layer
                placed[p.home].append(p)
    for key, found in placed.items():
        problems[key] = found = _kept(contexts[key], found)
        for p in found:
            if p.fix is not None:
                flagged.setdefault(p.code, set()).add(p.key)
    for u in units:
        if u.key not in problems:
            continue
        out = outcomes[u.key]
        try:
            with timer.limit():
                edits = Edits()
                ctx = contexts[u.key]
                found = problems[u.key]
                for rule in rules:
                    mine = is_selected(rule.code, select)
                    found += _kept(ctx, rule.follow(ctx, flagged, edits if mine else Edits()))
                style = ctx.style
                for p in sorted(found, key=lambda p: (ctx.where(u.key, p.node), p.code)):
                    if not is_selected(p.code, select):
                        continue
                    line, col = ctx.where(u.key, p.node)
                    out.findings.append(Finding(p.code, p.message, line, col, fixable=p.fix is not None))
                    if p.fix is not None:
                        p.fix(edits, style)
                if fix and edits:
                    new = apply(u.module, edits, u.original or None).code
                    if new != u.source:
                        out.new_source = u.hidden.restore(new) if u.hidden else new
        except limits.OutOfTime:
            outcomes[u.key] = Outcome(error=timer.reason())
        except Exception as exc:
            outcomes[u.key] = Outcome(error=_internal_error(exc))
    _link_decoders_to_callers(units, sites_by_unit, flagged, outcomes)
    return outcomes


def _share_embeddings(units: List[_Unit], symbols: Symbols) -> None:
    """Embedding layers (and the pad id their ``compute_mask`` compares with) imported from another
    source count as if defined in the importing one, so call sites are traced as within one file."""
    pads: Dict[str, List[Tuple[str, Optional[int]]]] = {}  # name -> (source defining it, its pad id)
    for u in units:
        for name in u.facts.embedding_classes:
            pads.setdefault(name, []).append((u.key, u.facts.pad_id))
    for u in units:
        for name in sorted(u.imported & pads.keys() - u.facts.embedding_classes):
            seen = [pad for key, pad in pads[name] if key != u.key and symbols.sees(u.key, name, key)]
            if seen:
                u.facts.embedding_classes.add(name)
                if u.facts.pad_id is None:
                    u.facts.pad_id = seen[0]


def _link_decoders_to_callers(units, sites_by_unit, flagged, outcomes: Dict[str, Outcome]) -> None:
    """``Outcome.needs``: a source changed by this run that calls a decoder this run fixes in another."""
    home = {id(d): u.key for u in units for d in u.facts.decoders}
    fixed = flagged.get("MF001", set())
    for u in units:
        out = outcomes[u.key]
        if out.new_source is None:
            continue
        out.needs = {home[id(s.decoder)] for s in sites_by_unit[u.key]
                     if id(s.decoder) in fixed and home.get(id(s.decoder), u.key) != u.key}


def _kept(ctx: Context, problems) -> List[Problem]:
    """The problems no ``# noqa`` comment suppresses."""
    return [p for p in problems if not ctx.suppressed(p.code, p.node, *p.anchors)]


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
        # only the statements holding reported nodes are laid out: linear in the file's size
        self.pos = LazyPositions(u.module, u.hidden.tree if u.hidden else None)
        text = u.original or u.source
        self.lines = limits.LINE_END.split(text)  # LibCST's line breaks, not str.splitlines's
        self.noqa = "noqa" in text.lower()  # without one, nothing is suppressed: no position is needed

    def where(self, node):
        start = self.pos[node].start
        return start.line, start.column + 1

    def suppressed(self, code, *nodes) -> bool:
        """``# noqa`` (or ``# noqa: CODE``) on a line one of ``nodes`` spans.

        A compound statement (``class``, ``def``, ``if``) counts by its first line only,
        so a ``# noqa`` inside a class body does not silence the whole class.
        """
        if not self.noqa:
            return False
        for n in nodes:
            span = self.pos[n]
            first = span.start.line
            last = first if isinstance(n, cst.BaseCompoundStatement) else span.end.line
            for line in range(max(first, 1), min(last, len(self.lines)) + 1):
                if suppressed(self.lines[line - 1], code):
                    return True
        return False


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
