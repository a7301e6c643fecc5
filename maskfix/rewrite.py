"""The LibCST rewrite: fix a decoder layer and thread the encoder padding mask.

Planning and applying are separate.  The planners read the analysed tree
and record *edits keyed by node identity*; one small transformer applies
them.  Nothing outside the edited nodes is regenerated, so every other byte
of the file (comments, quotes, blank lines, line endings) stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from .flow.decoders import (
    CAUSAL,
    DEC_MASK,
    CallSite,
    DecoderClass,
    ModuleFacts,
    decoder_side,
    expansion_side,
)
from .flow.reaching import assigned_values, int_index
from .flow.values import Interpreter
from .syntax import is_none, iter_nodes, keyword_arg, last_name, names_in, positional_args
from .submodels import (
    OTHER_INPUT_METHODS,
    ModelUse,
    encoder_token_ids,
    foreign_uses,
    keys_bound_from,
    model_uses,
    returned_values,
    token_input_of_model,
)
from .trace import Body, Function, LocalFunctions, index_bodies, layer_instances, local_functions, trace_root

NEW_PARAM = "encoder_padding_mask"


@dataclass
class Edits:
    """Changes to apply, keyed by ``id()`` of nodes in the analysed tree."""

    replace: Dict[int, cst.CSTNode] = field(default_factory=dict)
    add_args: Dict[int, List[cst.Arg]] = field(default_factory=dict)
    add_elements: Dict[int, List[Tuple[int, cst.BaseExpression]]] = field(default_factory=dict)
    insert_after: Dict[int, List[cst.BaseStatement]] = field(default_factory=dict)
    insert_before: Dict[int, List[cst.BaseStatement]] = field(default_factory=dict)
    prepend: Dict[int, List[cst.BaseStatement]] = field(default_factory=dict)
    add_param: Dict[int, str] = field(default_factory=dict)
    add_else: Dict[int, cst.BaseStatement] = field(default_factory=dict)
    remove_args: Set[int] = field(default_factory=set)
    replace_statement: Dict[int, List[cst.BaseStatement]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(vars(self).values())


def replace_names(edits: Edits, names: Sequence[cst.CSTNode], new: cst.BaseExpression) -> None:
    """Replace each of ``names`` (nodes of the analysed tree) by ``new``."""
    for name in names:
        edits.replace[id(name)] = new.deep_clone()


def swap_values(edits: Edits, a: cst.Arg, b: cst.Arg) -> None:
    """Exchange the values of two call arguments, keeping their keywords and commas."""
    edits.replace[id(a.value)] = b.value.deep_clone()
    edits.replace[id(b.value)] = a.value.deep_clone()


# --------------------------------------------------------------------------
# code generation helpers


class Style:
    """How new code is written in ``module``: its quotes, indentation and newlines.

    ``text``: the whole file, when ``module`` holds only part of it (``maskfix.slicing``):
    the quotes are then the whole file's, read with the tokenizer.
    """

    def __init__(self, module: cst.Module, text: Optional[str] = None):
        self.module = module
        self.text = text
        if text is not None:
            from .layout import quote_counts  # a rewrite's module only: ``check`` never lays code out

            doubles, singles = quote_counts(text)
        else:
            doubles, singles = _quote_counts(module)
        self.quote = "'" if singles > doubles else '"'
        self.config = module.config_for_parsing

    def string(self, text: str) -> str:
        return f"{self.quote}{text}{self.quote}"

    def statement(self, code: str) -> cst.BaseStatement:
        indent = self.module.default_indent
        code = code.replace("    ", indent)
        return cst.parse_statement(code + self.module.default_newline, config=self.config)

    def expression(self, code: str) -> cst.BaseExpression:
        return cst.parse_expression(code, config=self.config)


def _quote_counts(module: cst.Module) -> Tuple[int, int]:
    doubles = singles = 0
    for s in iter_nodes(module, cst.SimpleString):
        q = s.quote
        if q == '"':
            doubles += 1
        elif q == "'":
            singles += 1
    return doubles, singles


def free_name(wanted: str, taken: Set[str]) -> str:
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}_{n}"
    return name


# --------------------------------------------------------------------------
# the layer


def _mask_expansion(dec: DecoderClass, values: Interpreter, style: Style, facts: ModuleFacts, new_name: str) -> str:
    """How this file spreads a padding mask over keys, applied to ``new_name`` (code of a [B, S] mask).

    Reuses the expression that spread the decoder mask (``tf.cast(mask[:,
    tf.newaxis, :], dtype="int32")``, ``mask[0][:, None, :]`` for a list input,
    or whatever the file wrote), so the new line reads like its neighbours.
    """
    if dec.mask_param:
        for value in assigned_values(values.scope, dec.cross_attention.mask_arg.value):
            for node in iter_nodes(value, (cst.Call, cst.Subscript)):
                sub = node
                if isinstance(node, cst.Call):
                    # only a dtype cast around the spread mask is worth copying
                    if last_name(node.func) != "cast":
                        continue
                    subs = [a.value for a in node.args if isinstance(a.value, cst.Subscript)]
                    if len(subs) != 1:
                        continue
                    sub = subs[0]
                if isinstance(sub, cst.Subscript) and _is_decoder_mask(sub.value, dec) and expansion_side(sub) == "key":
                    new = node.deep_replace(sub.value, style.expression(new_name))
                    code = style.module.code_for_node(new)
                    if "#" not in code:
                        # one line, whatever the original's wrapping
                        code = re.sub(r"([(\[])\s*\n\s*", r"\1", code)
                        code = re.sub(r",?\s*\n\s*([)\]])", r"\1", code)
                        return re.sub(r"\s*\n\s*", " ", code)
    return key_mask_expression(facts, style, new_name)


def _item(param: str) -> Optional[int]:
    """``i`` for ``inputs[i]``, how the analysis names an item of a list input; None otherwise."""
    found = re.fullmatch(r"\w+\[(\d+)\]", param)
    return int(found.group(1)) if found else None


def _is_decoder_mask(node: cst.BaseExpression, dec: DecoderClass) -> bool:
    """Whether ``node`` reads the decoder's padding mask as Keras passes it: the mask parameter,
    or its decoder item (``mask[0]``) when the decoder takes ``[x, enc]`` as one list input."""
    item = _item(dec.dec_param)
    if item is None:
        return isinstance(node, cst.Name) and node.value == dec.mask_param
    return (isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name)
            and node.value.value == dec.mask_param and int_index(node) == item)


def keras_encoder_mask(dec: DecoderClass) -> Optional[str]:
    """``mask[1]``: where Keras puts the encoder's padding mask for a decoder that takes ``[x, enc]``
    as one list input (its mask parameter gets one mask per item); None for any other decoder."""
    item = _item(dec.enc_param)
    if item is None or _item(dec.dec_param) is None or not dec.mask_param:
        return None
    return f"{dec.mask_param}[{item}]"


def key_mask_expression(facts: ModuleFacts, style: Style, new_name: str) -> str:
    """``new_name`` (a [B, S] padding mask) spread over the keys, in the file's dialect."""
    d = facts.dialect
    if d.runtime == "tf.keras" and d.tf:
        return f'{d.tf}.cast({new_name}[:, {d.tf}.newaxis, :], dtype={style.string("int32")})'
    if d.ops:
        return f'{d.ops}.cast({new_name}[:, None, :], dtype={style.string("int32")})'
    if d.keras:
        return f'{d.keras}.ops.cast({new_name}[:, None, :], dtype={style.string("int32")})'
    return f"{new_name}[:, None, :]"


def add_encoder_mask_param(dec: DecoderClass, expansion: str, cross_name: str, style: Style, edits: Edits) -> None:
    """Give ``dec.call`` the ``encoder_padding_mask`` parameter (the encoder output's Keras mask when
    it is not passed) and bind ``cross_name`` to ``expansion`` of it, or None without one."""
    keras_mask = style.string("_keras_mask")
    block = [
        f"if {NEW_PARAM} is None:\n"
        f"    {NEW_PARAM} = getattr({dec.enc_param}, {keras_mask}, None)",
        f"{cross_name} = None",
        f"if {NEW_PARAM} is not None:\n    {cross_name} = {expansion}",
    ]
    edits.add_param[id(dec.call)] = NEW_PARAM
    edits.prepend[id(dec.call)] = [style.statement(code) for code in block]


def bind_cross_mask(dec: DecoderClass, source: str, expansion: str, cross_name: str, style: Style,
                    edits: Edits) -> None:
    """Bind ``cross_name`` to ``expansion`` of ``source``, a mask Keras already hands ``dec.call``
    (``mask[1]``), or to None when Keras gives none."""
    block = [
        f"{cross_name} = None",
        f"if {dec.mask_param} is not None and {source} is not None:\n    {cross_name} = {expansion}",
    ]
    edits.prepend[id(dec.call)] = [style.statement(code) for code in block]


def plan_layer(dec: DecoderClass, facts: ModuleFacts, style: Style, edits: Edits, called: bool = True) -> None:
    """Give cross-attention the encoder's padding mask; self-attention the decoder's.

    The encoder's mask comes in as a new ``encoder_padding_mask`` parameter, which the call sites
    get computed from the token ids.  A decoder that takes ``[x, enc]`` as one list input and that
    the run never calls (``called``: there is no call site to pass the parameter) reads the mask
    Keras gives it for the encoder's item instead: ``mask[1]`` holds it already.
    """
    fn = dec.call
    values = dec.values
    taken = names_in(fn) | set(dec.params)
    cross_name = free_name("cross_attention_mask", taken)
    given = None if called else keras_encoder_mask(dec)
    if given is not None:
        bind_cross_mask(dec, given, _mask_expansion(dec, values, style, facts, given), cross_name, style, edits)
    else:
        add_encoder_mask_param(dec, _mask_expansion(dec, values, style, facts, NEW_PARAM), cross_name, style, edits)
    old_mask = dec.cross_attention.mask_arg.value
    edits.replace[id(old_mask)] = cst.Name(cross_name)
    _retarget_self_attention(dec, values, style, edits)


def _retarget_self_attention(dec: DecoderClass, values: Interpreter, style: Style, edits: Edits) -> None:
    """Point self-attention at the combined padding+causal mask the bug misplaced.

    Only done when the shape is the familiar one (the combined variable is
    set under a check of the decoder mask); otherwise self-attention keeps
    its causal mask, which is already correct.
    """
    sa = dec.self_attention
    cross = dec.cross_attention.mask_arg.value
    if sa is None or sa.mask_arg is None or not isinstance(cross, cst.Name):
        return
    causal = sa.mask_arg.value
    if not isinstance(causal, cst.Name) or causal.value == cross.value:
        return
    causal_labels = decoder_side(values.value(causal))
    if CAUSAL not in causal_labels or DEC_MASK in causal_labels:
        return
    combined = cross.value
    bound = values.scope.assigns.get(combined, [])
    if not any(causal.value in names_in(v) for v in bound):
        return
    if not any(DEC_MASK in decoder_side(values.value(v)) for v in bound):
        return
    mask = dec.mask_param
    fallback = cst.Name(causal.value)
    planned = False
    for node in iter_nodes(dec.call.body, (cst.If, cst.IfExp)):
        if mask is None or mask not in names_in(node.test):
            continue
        absent_first = holds_without_mask(node.test, mask)
        if absent_first is None:
            continue
        if isinstance(node, cst.IfExp):
            if any(node is v for v in bound):
                without = node.body if absent_first else node.orelse
                if _is_none_or(without, mask):
                    edits.replace[id(without)] = fallback
                    planned = True
                elif _is_name(without, causal.value):
                    planned = True  # ``causal if mask is None else ...``: already the fallback
            continue
        with_mask = node.orelse if absent_first else node.body
        without = node.body if absent_first else node.orelse
        if not isinstance(with_mask, (cst.BaseSuite, cst.Else)) or not _assigns(with_mask, combined):
            continue
        if without is None and _set_before(dec.call.body, node, combined, causal.value):
            planned = True
        elif without is None:
            stmt = style.statement(f"if _:\n    pass\nelse:\n    {combined} = {causal.value}")
            edits.add_else[id(node)] = stmt.orelse
            planned = True
        elif isinstance(without, (cst.BaseSuite, cst.Else)):
            for assign in iter_nodes(without, cst.Assign):
                targets = [t.target for t in assign.targets]
                if not any(_is_name(t, combined) for t in targets):
                    continue
                if _is_none_or(assign.value, mask):
                    edits.replace[id(assign.value)] = fallback
                    planned = True
                elif _is_name(assign.value, causal.value):
                    planned = True  # the branch without a mask already falls back to causal
        break
    if planned:
        edits.replace[id(causal)] = cst.Name(combined)


def _set_before(body: cst.IndentedBlock, stop: cst.If, name: str, value: str) -> bool:
    """Whether the last top-level assignment to ``name`` before ``stop`` is ``name = value``."""
    last = None
    for stmt in body.body:
        if stmt is stop:
            break
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if (isinstance(small, cst.Assign) and len(small.targets) == 1
                        and isinstance(small.targets[0].target, cst.Name)
                        and small.targets[0].target.value == name):
                    last = small.value
    return isinstance(last, cst.Name) and last.value == value


def _is_none_or(node: cst.CSTNode, mask: str) -> bool:
    return isinstance(node, cst.Name) and node.value in ("None", mask)


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def holds_without_mask(test: cst.BaseExpression, mask: str) -> Optional[bool]:
    """Whether ``test`` holds when ``mask`` is None (``mask is None``, ``not mask``: True) or only
    when it is given (``mask is not None``, ``mask``, ``mask is not None and mask[0] is not None``:
    False); None when the test does not say."""
    if isinstance(test, cst.Name):
        return False if test.value == mask else None
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = holds_without_mask(test.expression, mask)
        return None if inner is None else not inner
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        cmp = test.comparisons[0]
        sides = (test.left, cmp.comparator)
        if any(_is_name(a, mask) for a in sides) and any(is_none(a) for a in sides):
            if isinstance(cmp.operator, (cst.Is, cst.Equal)):
                return True
            if isinstance(cmp.operator, (cst.IsNot, cst.NotEqual)):
                return False
        return None
    if isinstance(test, cst.BooleanOperation):
        sides = [holds_without_mask(test.left, mask), holds_without_mask(test.right, mask)]
        if isinstance(test.operator, cst.And) and False in sides:
            return False  # one side needs the mask: so does the whole test
        if isinstance(test.operator, cst.Or) and True in sides:
            return True
    return None


def _assigns(block: cst.CSTNode, name: str) -> bool:
    for assign in iter_nodes(block, cst.Assign):
        for t in assign.targets:
            if isinstance(t.target, cst.Name) and t.target.value == name:
                return True
    return False


def plan_eager_mask(lazy, edits: Edits) -> None:
    """Drop the ``if mask is None: return None`` guard so the mask is always computed."""
    guard = lazy.guard
    if isinstance(guard.orelse, cst.Else) and isinstance(guard.orelse.body, cst.IndentedBlock):
        edits.replace_statement[id(guard)] = list(guard.orelse.body.body)
    elif guard.orelse is None:
        edits.replace_statement[id(guard)] = []


# --------------------------------------------------------------------------
# call sites


@dataclass
class SitePlan:
    site: CallSite
    kind: str  # "direct", "submodel", "unresolved", "passed", "decoder-only"
    detail: str = ""
    blocker: Optional[Tuple[Optional[str], cst.CSTNode]] = None  # (source key or None: here, call in the way)
    sources: List[str] = field(default_factory=list)  # the encoder's token ids at the sub-model's calls
    uses: List[ModelUse] = field(default_factory=list)  # the sub-model's calls


@dataclass
class Supply:
    """The encoder padding mask for one place that reads encoder outputs: the expression to pass
    there, the token ids it is built from, and the edits that bring it there (a helper's new
    parameter and the arguments its callers pass for it)."""

    value: cst.BaseExpression
    tokens: Set[str]
    edits: List[Callable[[], None]] = field(default_factory=list)

    def code(self) -> str:
        return cst.Module([]).code_for_node(self.value)

    def apply(self) -> None:
        for edit in self.edits:
            edit()


def _all_params(fn: Function) -> List[str]:
    ps = fn.params
    return [p.name.value for p in (*ps.posonly_params, *ps.params, *ps.kwonly_params)]


class CallSitePlanner:
    """Threads ``encoder_padding_mask`` to where the decoder layer is applied."""

    def __init__(self, facts: ModuleFacts, style: Style, edits: Edits,
                 others: Sequence[Tuple[str, cst.Module, Set[str]]] = ()):
        self.facts = facts
        self.others = others  # the run's other sources: (key, module, names it imports; "*" for all)
        self.style = style
        self.edits = edits
        self.index = index_bodies(facts.module)
        self.instances = layer_instances(facts.module)
        self.embeddings = frozenset(facts.embedding_classes)
        self.pad = facts.pad_id if facts.pad_id is not None else 0
        self._submodel_inputs: Dict[int, str] = {}  # id(feature Input stmt) -> mask input name
        self._functions: Optional[LocalFunctions] = None
        self._helper_params: Dict[int, str] = {}  # id(helper) -> the mask parameter it is given

    def pad_note(self) -> str:
        if self.facts.pad_id is not None:
            return f"pad id {self.pad} read from the embedding's compute_mask"
        return "pad id 0 assumed (no embedding compute_mask found)"

    def plan(self, site: CallSite) -> SitePlan:
        if site.has_mask_kwarg:
            return SitePlan(site, "passed")
        if site.decoder_only:
            return SitePlan(site, "decoder-only")
        body = self.index.body_of.get(id(site.statement)) if site.statement is not None else None
        if body is None or site.enc_arg is None:
            return SitePlan(site, "unresolved", "the encoder outputs cannot be followed here")
        at = body.position[id(site.statement)]
        root = trace_root(site.enc_arg, body, at, self.instances)
        if root is None:
            return SitePlan(site, "unresolved", "the encoder outputs cannot be followed to a token input")
        if root.is_token_input(self.embeddings):
            name = free_name(NEW_PARAM, body.names())
            code = self.facts.dialect.not_equal(root.name, self.pad)
            self.edits.insert_before.setdefault(id(site.statement), []).append(
                self.style.statement(f"{name} = {code}"))
            self._pass_mask(site.call, cst.Name(name))
            return SitePlan(site, "direct", self.pad_note())
        if root.is_feature_input:
            return self._plan_submodel(site, body, root)
        return SitePlan(site, "unresolved", f"`{root.name}` is not a token input maskfix can read")

    def _mask_expr(self, tokens: str) -> cst.BaseExpression:
        return self.style.expression(self.facts.dialect.not_equal(tokens, self.pad))

    def _pass_mask(self, call: cst.Call, value: cst.BaseExpression, keyword: str = NEW_PARAM) -> None:
        self.edits.add_args.setdefault(id(call), []).append(
            cst.Arg(keyword=cst.Name(keyword), value=value,
                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        )

    @property
    def functions(self) -> LocalFunctions:
        if self._functions is None:
            self._functions = local_functions(self.facts.module)
        return self._functions

    def _encoder_mask(self, expr: cst.BaseExpression, node: cst.CSTNode, depth: int = 0) -> Optional[Supply]:
        """The encoder padding mask that goes with ``expr`` (encoder outputs) where the call
        ``node`` reads them: built from the token ids they come from, given to the helper (or
        lambda) holding ``node`` as a new parameter when ``expr`` is one of its parameters, or
        read from the enclosing function when ``expr`` is a closure's free name."""
        stmt = self.index.stmt_of.get(id(node))
        body = self.index.body_of.get(id(stmt)) if stmt is not None else None
        if body is None or depth > 3:
            return None
        at = body.position[id(stmt)]
        fn = self.functions.enclosing(node)
        # a parameter of the function (or lambda) holding the call, not bound again before it
        if isinstance(expr, cst.Name) and fn is not None and expr.value in _all_params(fn) and (
                isinstance(fn, cst.Lambda) or (body.owner is fn and body.assignment_before(expr.value, at) is None)):
            return self._through_parameter(fn, expr.value, depth)
        root = trace_root(expr, body, at, self.instances)
        if root is not None and root.is_token_input(self.embeddings):
            return Supply(self._mask_expr(root.name), {root.name})
        tokens = encoder_token_ids(expr, body, at, self._encoder_model, self.functions)
        if tokens is not None:
            return Supply(self._mask_expr(tokens), {tokens})
        if isinstance(expr, cst.Name) and isinstance(fn, cst.FunctionDef) and body.owner is fn \
                and body.assignment_before(expr.value, at) is None and self.functions.enclosing(fn) is not None:
            # a closure reads the name where it runs: in the function that calls it
            callers = self.functions.callers(fn)
            found = [self._encoder_mask(expr, call, depth + 1) for call in callers]
            if found and all(f is not None and f.code() == found[0].code() for f in found):
                return found[0]
        return None

    def _through_parameter(self, fn: Function, param: str, depth: int) -> Optional[Supply]:
        """The mask as a new parameter of ``fn``, whose callers each pass the mask that goes with
        what they give ``param``."""
        callers = self.functions.callers(fn)
        supplied = []
        for call in callers:
            arg = self.functions.argument(call, fn, param)
            found = self._encoder_mask(arg.value, call, depth + 1) if arg is not None else None
            if found is None:
                return None
            supplied.append((call, found))
        if not supplied:
            return None
        name = self._helper_params.get(id(fn)) or free_name(NEW_PARAM, names_in(fn))

        def thread() -> None:
            if id(fn) in self._helper_params:
                return
            self._helper_params[id(fn)] = name
            self.edits.add_param[id(fn)] = name
            for call, found in supplied:
                self._pass_mask(call, found.value, name)
                found.apply()

        tokens = set().union(*(f.tokens for _, f in supplied))
        return Supply(cst.Name(name), tokens, [thread])

    def _plan_submodel(self, site: CallSite, body: Body, root) -> SitePlan:
        """The keras-io layout: the decoder is a sub-model with its own Inputs."""
        found = self._model_using(body, root.name, root.statement_index)
        if found is None:
            return SitePlan(site, "unresolved", f"`{root.name}` is an Input of no model maskfix can find")
        model_var, inputs_list, k = found
        outer = []
        uses = model_uses(self.facts.module, body.owner, model_var, self.functions)
        for use in uses:
            what = f"`{use.label}`"
            blocker = (None, use.call)
            if use.method in OTHER_INPUT_METHODS:
                return SitePlan(site, "unresolved", f"{what} also takes the decoder's inputs; add the mask there too",
                                blocker)
            if not isinstance(use.inputs, (cst.List, cst.Tuple)):
                return SitePlan(site, "unresolved", f"{what} is called without a list of inputs", blocker)
            elements = use.inputs.elements
            stmt = self.index.stmt_of.get(id(use.call))
            cbody = self.index.body_of.get(id(stmt)) if stmt is not None else None
            if k >= len(elements) or cbody is None:
                return SitePlan(site, "unresolved", f"a call of {what} cannot be followed", blocker)
            supply = self._encoder_mask(elements[k].value, use.call)
            if supply is None:
                return SitePlan(site, "unresolved",
                                f"the encoder outputs given to {what} cannot be followed to a token input", blocker)
            outer.append((use.inputs, k, supply))
        if not outer:
            return SitePlan(site, "unresolved", f"`{model_var}` is never called in this file")
        for key, module, imported in self.others:
            foreign = foreign_uses(module, imported, body.owner, model_var)
            if foreign:
                return SitePlan(site, "unresolved", f"`{foreign[0].label}` in another file would need the new "
                                "mask input too, and this fix does not change other files' calls of a sub-model",
                                (key, foreign[0].call))
        input_stmt = body.statements[root.statement_index]
        mask_input = self._submodel_inputs.get(id(input_stmt))
        if mask_input is None:
            mask_input = free_name(NEW_PARAM, body.names())
            self._submodel_inputs[id(input_stmt)] = mask_input
            input_func = self.facts.module.code_for_node(root.input_call.func)
            q = self.style.string
            self.edits.insert_after.setdefault(id(input_stmt), []).append(self.style.statement(
                f"{mask_input} = {input_func}(shape=(None,), dtype={q('bool')}, name={q(NEW_PARAM)})"
            ))
            self.edits.add_elements.setdefault(id(inputs_list), []).append((k, cst.Name(mask_input)))
            for lst, idx, supply in outer:
                self.edits.add_elements.setdefault(id(lst), []).append((idx, supply.value.deep_clone()))
                supply.apply()
        self._pass_mask(site.call, cst.Name(mask_input))
        calls = f", passed at all {len(outer)} calls of `{model_var}`" if len(outer) > 1 else ""
        return SitePlan(site, "submodel", f"new decoder input `{mask_input}`{calls}; {self.pad_note()}",
                        sources=sorted({t for _, _, supply in outer for t in supply.tokens}), uses=uses)

    def _encoder_model(self, key: str):
        """``(Model call, its body, its position)`` bound to ``key`` (through the tuple a builder
        function returns, or directly) whose input is token ids; None when there is none."""
        candidates = []
        for fn in iter_nodes(self.facts.module, cst.FunctionDef):
            for ret in returned_values(fn):
                values = ret.elements if isinstance(ret, (cst.Tuple, cst.List)) else []
                for k, el in enumerate(values):
                    if isinstance(el.value, cst.Name) and key in keys_bound_from(self.facts.module, fn.name.value, k):
                        fbody = self._body_of_function(fn)
                        found = fbody.assignment_before(el.value.value, len(fbody.statements)) if fbody else None
                        if found is not None and isinstance(found[1], cst.Call):
                            candidates.append(found[1])
        call = self.instances.get(key)
        if not candidates and isinstance(call, cst.Call):
            candidates.append(call)
        for call in candidates:
            stmt = self.index.stmt_of.get(id(call))
            mbody = self.index.body_of.get(id(stmt)) if stmt is not None else None
            if mbody is not None and token_input_of_model(call, mbody, mbody.position[id(stmt)]):
                return call, mbody, mbody.position[id(stmt)]
        return None

    def _body_of_function(self, fn: cst.FunctionDef):
        return next((b for b in self.index.bodies if b.owner is fn), None)

    def _model_using(self, body: Body, input_name: str, after: int):
        """``(model variable, its inputs list, position)`` for a Model built on ``input_name``."""
        for stmt in body.statements[after + 1:]:
            for small in stmt.body:
                if not isinstance(small, cst.Assign) or not isinstance(small.value, cst.Call):
                    continue
                call = small.value
                if last_name(call.func) != "Model":
                    continue
                arg = keyword_arg(call, "inputs")
                if arg is None:
                    pos = positional_args(call)
                    arg = pos[0] if pos else None
                if arg is None or not isinstance(arg.value, (cst.List, cst.Tuple)):
                    continue
                for k, el in enumerate(arg.value.elements):
                    if isinstance(el.value, cst.Name) and el.value.value == input_name:
                        target = small.targets[0].target
                        if isinstance(target, cst.Name):
                            return target.value, arg.value, k
        return None


# --------------------------------------------------------------------------
# applying edits


def _multiline(comma) -> bool:
    return isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace)


def _bare(comma: cst.Comma, last_line=None) -> cst.Comma:
    """A copy of a line-ending comma without its comment or blank lines."""
    ws = comma.whitespace_after
    if not isinstance(ws, cst.ParenthesizedWhitespace):
        return comma
    return comma.with_changes(whitespace_after=ws.with_changes(
        first_line=cst.TrailingWhitespace(newline=ws.first_line.newline),
        empty_lines=(),
        last_line=ws.last_line if last_line is None else last_line,
    ))


def _with_comma_like(items: Sequence, new_items: Sequence):
    """Append ``new_items`` after ``items``, laid out like the items already there.

    Comments ride on commas in LibCST, so commas are rebuilt rather than
    copied: a comment stays on the item it was written after.
    """
    items = list(items)
    if not items:
        return list(new_items)
    last = items[-1]
    trailing = last.comma
    prev = items[-2].comma if len(items) >= 2 else None
    if _multiline(trailing) and _multiline(prev):
        # one item per line with a trailing comma: new items go on lines of their own
        item_indent = prev.whitespace_after.last_line
        close_indent = trailing.whitespace_after.last_line
        between = _bare(trailing, last_line=item_indent)
        out = items[:-1] + [last.with_changes(comma=trailing.with_changes(
            whitespace_after=trailing.whitespace_after.with_changes(last_line=item_indent)))]
        for k, item in enumerate(new_items):
            is_last = k == len(new_items) - 1
            out.append(item.with_changes(comma=_bare(trailing, close_indent) if is_last else between))
        return out
    attr = next((a for a in ("whitespace_after_param", "whitespace_after_arg") if hasattr(last, a)), None)
    tail = getattr(last, attr) if attr else None
    if not isinstance(trailing, cst.Comma) and _multiline(prev) and isinstance(tail, cst.ParenthesizedWhitespace):
        # ``f(\n    a,\n    b  # note\n)``: b keeps its line and comment, new items go below it
        line = prev.whitespace_after
        out = items[:-1] + [last.with_changes(**{attr: cst.SimpleWhitespace("")}, comma=cst.Comma(
            whitespace_after=tail.with_changes(indent=line.indent, last_line=line.last_line)))]
        closing = tail.with_changes(first_line=cst.TrailingWhitespace(newline=tail.first_line.newline),
                                    empty_lines=())
        for k, item in enumerate(new_items):
            is_last = k == len(new_items) - 1
            out.append(item.with_changes(**{attr: closing}) if is_last else item.with_changes(comma=_bare(prev)))
        return out
    if _multiline(prev):
        sep = _bare(prev)
    else:
        sep = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if _multiline(trailing):
        # ``f(\n    a,\n)``: keep the new item on the last item's line
        out = items[:-1] + [last.with_changes(comma=cst.Comma(
            whitespace_before=trailing.whitespace_before, whitespace_after=cst.SimpleWhitespace(" ")))]
    else:
        out = items[:-1] + [last.with_changes(comma=sep)]
    for k, item in enumerate(new_items):
        is_last = k == len(new_items) - 1
        out.append(item.with_changes(comma=trailing if is_last else sep))
    return out


def _insert_elements(elements: Sequence[cst.Element], inserts: List[Tuple[int, cst.BaseExpression]]):
    elements = list(elements)
    for after, value in sorted(inserts, key=lambda p: -p[0]):
        head, tail = elements[: after + 1], elements[after + 1:]
        if tail:
            comma = head[-1].comma
            comma = _bare(comma) if isinstance(comma, cst.Comma) else cst.Comma(
                whitespace_after=cst.SimpleWhitespace(" "))
            elements = head + [cst.Element(value, comma=comma)] + tail
        else:
            elements = _with_comma_like(head, [cst.Element(value)])
    return elements


class _Apply(cst.CSTTransformer):
    """Applies ``Edits``; lines the edits lengthen are wrapped to the file's width."""

    def __init__(self, edits: Edits, module: cst.Module, text: Optional[str] = None):
        super().__init__()
        self.e = edits
        self.module = module
        self.unit = module.default_indent
        from .layout import Fitter  # imported only when a rewrite applies edits

        self.fitter = Fitter(module, text)
        self.indents: List[int] = [0]
        self.changed: Set[int] = set()  # ids of updated nodes the edits touched
        # ... kept alive, so that no node made later (LibCST rebuilds every parent) reuses an id of
        # one the layout has since dropped and is taken for edited
        self.alive: List[cst.CSTNode] = []
        self.calls: List[List[cst.Call]] = []  # per statement: edited calls, innermost first
        self.touched: List[bool] = []  # per statement: whether any edit reached inside it

    def visit_IndentedBlock(self, node):
        self.indents.append(self.indents[-1] + len(node.indent if node.indent is not None else self.unit))

    def leave_IndentedBlock(self, original, updated):
        self.indents.pop()
        return updated

    def on_leave(self, original, updated):
        updated = super().on_leave(original, updated)
        rep = self.e.replace.get(id(original))
        if rep is not None and not isinstance(updated, cst.FlattenSentinel):
            if isinstance(updated, cst.BaseExpression) and isinstance(rep, cst.BaseExpression):
                rep = rep.with_changes(lpar=updated.lpar, rpar=updated.rpar) if hasattr(rep, "lpar") else rep
            self.changed.add(id(rep))
            self.alive.append(rep)
            if self.touched:
                self.touched[-1] = True
            return rep
        return updated

    def _mark(self, node):
        self.changed.add(id(node))
        self.alive.append(node)
        if self.touched:
            self.touched[-1] = True
        return node

    def leave_Call(self, original, updated):
        edited = any(id(a.value) in self.changed for a in updated.args)
        if self.e.remove_args and any(id(a) in self.e.remove_args for a in original.args):
            updated = updated.with_changes(args=_without(original.args, updated.args, self.e.remove_args))
            edited = True
        new = self.e.add_args.get(id(original))
        if new:
            updated = updated.with_changes(args=_with_comma_like(updated.args, new))
            edited = True
        if edited and self.calls:
            self.calls[-1].append(self._mark(updated))
        return updated

    def leave_List(self, original, updated):
        ins = self.e.add_elements.get(id(original))
        return self._mark(updated.with_changes(elements=_insert_elements(updated.elements, ins))) if ins else updated

    def leave_Tuple(self, original, updated):
        ins = self.e.add_elements.get(id(original))
        return self._mark(updated.with_changes(elements=_insert_elements(updated.elements, ins))) if ins else updated

    def visit_SimpleStatementLine(self, node):
        self.calls.append([])
        self.touched.append(False)

    def leave_If(self, original, updated):
        if id(original) in self.e.replace_statement:
            new = self.e.replace_statement[id(original)]
            if not new:
                return cst.RemoveFromParent()
            new = [new[0].with_changes(leading_lines=updated.leading_lines), *new[1:]]
            return cst.FlattenSentinel(new)
        orelse = self.e.add_else.get(id(original))
        return updated.with_changes(orelse=orelse) if orelse is not None else updated

    def leave_SimpleStatementLine(self, original, updated):
        edited = self.calls.pop()
        touched = self.touched.pop()
        indent = self.indents[-1]
        if edited or touched:
            updated = self.fitter.statement(original, updated, indent, edited[-1] if edited else None)
        before = [self._fit(s, indent) for s in self.e.insert_before.get(id(original), [])]
        after = [self._fit(s, indent) for s in self.e.insert_after.get(id(original), [])]
        if not before and not after:
            return updated
        if before:
            # comments and blank lines above the statement stay above the new lines
            before = [before[0].with_changes(leading_lines=updated.leading_lines), *before[1:]]
            updated = updated.with_changes(leading_lines=())
        return cst.FlattenSentinel([*before, updated, *after])

    def _fit(self, stmt, indent):
        return self.fitter.new(stmt, indent)

    def leave_Lambda(self, original, updated):
        name = self.e.add_param.get(id(original))
        if name:
            updated = updated.with_changes(params=_add_param(updated.params, name))
            if self.touched:
                self.touched[-1] = True
        return updated

    def leave_FunctionDef(self, original, updated):
        name = self.e.add_param.get(id(original))
        if name:
            updated = updated.with_changes(params=_add_param(updated.params, name))
            updated = self.fitter.signature(original, updated, self.indents[-1])
        pre = self.e.prepend.get(id(original))
        if pre and isinstance(updated.body, cst.IndentedBlock):
            body_indent = self.indents[-1] + len(updated.body.indent if updated.body.indent is not None else self.unit)
            pre = [self._fit(s, body_indent) for s in pre]
            body = list(updated.body.body)
            at = 1 if body and _is_docstring(body[0]) else 0
            updated = updated.with_changes(body=updated.body.with_changes(body=body[:at] + pre + body[at:]))
        return updated


def _without(original, updated, removed: Set[int]):
    """``updated`` args minus the removed ones; the new last arg inherits the old trailing comma."""
    kept = [u for o, u in zip(original, updated) if id(o) not in removed]
    if kept and id(original[-1]) in removed:
        kept[-1] = kept[-1].with_changes(comma=updated[-1].comma)
    return kept


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _add_param(params: cst.Parameters, name: str) -> cst.Parameters:
    new = cst.Param(
        name=cst.Name(name),
        default=cst.Name("None"),
        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
    if isinstance(params.star_arg, (cst.Param, cst.ParamStar)):
        if params.kwonly_params:
            return params.with_changes(kwonly_params=_with_comma_like(params.kwonly_params, [new]))
        return params.with_changes(kwonly_params=[new.with_changes(comma=_comma_after(params.star_arg))])
    return params.with_changes(params=_with_comma_like(params.params, [new]))


def _comma_after(node) -> Union[cst.Comma, cst.MaybeSentinel]:
    comma = getattr(node, "comma", cst.MaybeSentinel.DEFAULT)
    return comma if isinstance(comma, cst.Comma) else cst.MaybeSentinel.DEFAULT


def apply(module: cst.Module, edits: Edits, text: Optional[str] = None) -> cst.Module:
    """``module`` with ``edits``; ``text`` is the whole file when ``module`` holds only part of it."""
    return module.visit(_Apply(edits, module, text)) if edits else module


def plan_implicit_layer(dec: DecoderClass, keyword: str, facts: ModuleFacts, style: Style, edits: Edits) -> None:
    """Give the layer ``encoder_padding_mask`` and its cross-attention the mask built from it."""
    fn = dec.call
    cross_name = free_name("cross_attention_mask", names_in(fn) | set(dec.params))
    add_encoder_mask_param(dec, key_mask_expression(facts, style, NEW_PARAM), cross_name, style, edits)
    edits.add_args.setdefault(id(dec.cross_attention.call), []).append(
        cst.Arg(keyword=cst.Name(keyword), value=cst.Name(cross_name),
                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
