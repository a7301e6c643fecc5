"""Abstract mask values: what a tensor that reaches an attention's mask argument holds.

An abstract value records what the mask is made of (padding of the source or the target,
causal over target steps, all ones), its polarity (``attend``: 1/True marks what may be
attended to, as Keras ``MultiHeadAttention`` reads it; ``masked``: 1 marks what is hidden, as
the TensorFlow tutorial of 2019-2021 builds it), its form (boolean, 0/1 numbers, additive
0 / large negative, token ids, a range of positions) and, when known, its rank and what each
axis indexes.  Transfer functions cover what the family uses: casts, ``[:, None, :]`` and
``expand_dims``, ``minimum``/``maximum``/``&``/``|``/``logical_*``, ``1 - m``/``logical_not``/
``== 0``, ``band_part``/``tril``/``triu``, range comparisons, ``not_equal(ids, pad)`` and
``equal(ids, 0)``, ``compute_mask`` and ``_keras_mask``.

Bindings are read in statement order (``flow.reaching``); helpers (module functions, nested
functions, lambdas, methods, staticmethods) are evaluated with their parameters bound to the
caller's arguments; a layer's ``call`` parameters are bound from the calls of that layer found
in the same module (``self.layer(...)``, a list of layers looped over, a local instance).
Nothing is imported or run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

import libcst as cst

from ..symbols import Definition, Symbols
from ..syntax import iter_nodes, last_name, positional_args, self_attr, span
from .attention import KERAS_MHA, Attentions, AttentionCall, attention_attributes, attention_calls, bind_loop
from .reaching import Element, param_names, scope_of

ATTEND = "attend"  # 1/True: may be attended to (Keras)
MASKED = "masked"  # 1: hidden (the TensorFlow tutorial's own attention)

SOURCE, TARGET, UNKNOWN = "source", "target", "unknown"
CAUSAL = "causal"
ONES = "all-ones"
OPAQUE = "unknown"  # a kind: something the analysis cannot see into


def padding(seq: str) -> str:
    """The kind of a padding mask over ``seq`` (SOURCE, TARGET or UNKNOWN)."""
    return f"padding:{seq}"


def rows(seq: str) -> str:
    """The kind of a padding mask over ``seq`` spread along the query axis only (``m[:, :, None]``):
    it hides the rows of padded queries, never a key."""
    return f"rows:{seq}"


# forms
BOOL, BINARY, ADDITIVE, IDS, RANGE, DATA = "bool", "binary", "additive", "ids", "range", "data"
LAYER = "layer"  # the layer object itself (``self``, or ``self`` handed to a helper as ``layer``)


@dataclass(frozen=True)
class MaskValue:
    kinds: FrozenSet[str] = frozenset()  # what the mask is made of; empty for data and ids
    polarity: Optional[str] = None  # ATTEND, MASKED, or None (unknown)
    form: str = DATA
    rank: Optional[int] = None
    axes: Optional[Tuple[str, ...]] = None  # per axis: "batch", SOURCE, TARGET, "one", UNKNOWN, "row", "col"
    seq: str = UNKNOWN  # for token ids: the sequence they hold
    items: Optional[Tuple["MaskValue", ...]] = None  # a list of values, one per item (``mask[1]``)
    layer: Optional[str] = None  # for LAYER: the class it is an instance of
    deps: FrozenSet[str] = frozenset()  # the sequences (SOURCE, TARGET) the value is computed from

    @property
    def is_mask(self) -> bool:
        return bool(self.kinds) and OPAQUE not in self.kinds

    @property
    def opaque(self) -> bool:
        return OPAQUE in self.kinds

    @property
    def causal(self) -> bool:
        return CAUSAL in self.kinds

    def inverted(self) -> "MaskValue":
        flip = {ATTEND: MASKED, MASKED: ATTEND}.get(self.polarity) if self.polarity else None
        return replace(self, polarity=flip)


TOP = MaskValue(kinds=frozenset([OPAQUE]), form=DATA)
NOTHING = MaskValue()  # a size, a dtype, a literal: carries no mask values


def join(values: Iterable[MaskValue]) -> MaskValue:
    """What a value may be when it is one of ``values`` (branches, several bindings)."""
    vals = list(values)
    if not vals:
        return TOP
    out = vals[0]
    for v in vals[1:]:
        if v == out:
            continue
        out = MaskValue(
            kinds=out.kinds | v.kinds,
            polarity=out.polarity if out.polarity == v.polarity else None,
            form=out.form if out.form == v.form else DATA,
            rank=out.rank if out.rank == v.rank else None,
            axes=out.axes if out.axes == v.axes else None,
            seq=out.seq if out.seq == v.seq else UNKNOWN,
            items=out.items if out.items == v.items else None,
            layer=out.layer if out.layer == v.layer else None,
            deps=out.deps | v.deps,
        )
    return out


def taint(values: Iterable[MaskValue]) -> MaskValue:
    """What an operation the analysis cannot see into makes of ``values``: unknown, but still made
    of what they were made of (provenance survives; polarity, form and shape do not)."""
    kinds, deps = set(), set()
    for v in values:
        kinds |= v.kinds
        deps |= v.deps
    if not kinds - {OPAQUE} and not deps:
        return TOP
    return MaskValue(frozenset(kinds | {OPAQUE}), deps=frozenset(deps))


def depends_on(v: MaskValue, seq: str) -> bool:
    """Whether ``v`` is computed from ``seq`` (SOURCE or TARGET): its data, or its padding."""
    return seq in v.deps or padding(seq) in v.kinds or rows(seq) in v.kinds


def query_side(v: MaskValue) -> MaskValue:
    """``v`` spread along the query axis: its padding kinds hide rows, not keys."""
    kinds = frozenset(rows(k.split(":", 1)[1]) if k.startswith("padding:") else k for k in v.kinds)
    return replace(v, kinds=kinds)


def combine(a: MaskValue, b: MaskValue, conjunction: bool) -> MaskValue:
    """``minimum``/``&``/``*`` (``conjunction``) or ``maximum``/``|``/``+`` of two masks.

    Masks of one polarity combine into a mask of that polarity; ``minimum`` of attend masks and
    ``maximum`` of masked masks both hide what either hides.
    """
    if not a.is_mask and not b.is_mask:
        return taint([a, b]) if (a.opaque or b.opaque) else NOTHING
    if not a.is_mask or not b.is_mask:
        return taint([a, b])
    kinds = (a.kinds | b.kinds) - ({ONES} if (a.kinds | b.kinds) != {ONES} else set())
    form = a.form if a.form == b.form else (BINARY if {a.form, b.form} <= {BOOL, BINARY} else DATA)
    rank = max(a.rank, b.rank) if a.rank is not None and b.rank is not None else None
    pol = a.polarity if a.polarity == b.polarity else None
    # an all-ones mask takes the other's polarity
    if ONES in a.kinds and a.kinds == {ONES}:
        pol = b.polarity
    elif ONES in b.kinds and b.kinds == {ONES}:
        pol = a.polarity
    return MaskValue(frozenset(kinds), pol, form, rank, None, deps=a.deps | b.deps)


# --------------------------------------------------------------------------
# the interpreter

_CASTS = {"cast", "convert_to_tensor", "astype", "to_float", "to_int32", "stop_gradient", "identity",
          "constant", "array", "asarray"}
_KEEP_VALUES = {"reshape", "tile", "broadcast_to", "repeat", "squeeze", "transpose"}
_AND = {"minimum", "logical_and", "multiply"}
_OR = {"maximum", "logical_or", "add"}
_ONES = {"ones", "ones_like"}
_FILLS = {"zeros": 0.0, "ones": 1.0, "zeros_like": 0.0, "ones_like": 1.0, "full": None, "full_like": None}
_RANGES = {"range", "arange"}
_ORDER = {"greater_equal": ">=", "greater": ">", "less_equal": "<=", "less": "<"}
_FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
MAX_DEPTH = 6  # helper and call-site hops followed


def _number(node: cst.CSTNode) -> Optional[float]:
    """The value of a numeric literal (``-1e9``, ``0``, ``1.0``, ``float("-inf")``)."""
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.value.replace("_", ""))
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _number(node.expression)
        return None if inner is None else -inner
    if isinstance(node, cst.Call) and last_name(node.func) == "float" and node.args:
        arg = node.args[0].value
        if isinstance(arg, cst.SimpleString) and "inf" in arg.value:
            return float("-inf") if "-" in arg.value else float("inf")
    if isinstance(node, cst.Attribute) and node.attr.value == "inf":
        return float("inf")
    return None


def _large_negative(node: cst.CSTNode) -> bool:
    v = _number(node)
    return v is not None and v <= -1e3


def _int_arg(call: cst.Call, pos: int, name: str) -> Optional[float]:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return _number(a.value)
    args = positional_args(call)
    return _number(args[pos].value) if len(args) > pos else None


def _arg(call: cst.Call, pos: int, name: str) -> Optional[cst.BaseExpression]:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return a.value
    args = positional_args(call)
    return args[pos].value if len(args) > pos else None


def _is_new_axis(node: cst.BaseExpression) -> bool:
    return (isinstance(node, cst.Name) and node.value == "None") or last_name(node) == "newaxis"


def _dtype_is_bool(node: Optional[cst.CSTNode]) -> bool:
    if node is None:
        return False
    if isinstance(node, cst.SimpleString):
        return "bool" in node.value
    return last_name(node) in ("bool", "bool_")


def _slice_shape(node: cst.Subscript) -> List[str]:
    """Per item of the subscript: ``:`` (a slice), ``new`` (a new axis), ``...``, or ``i``."""
    shape: List[str] = []
    for el in node.slice:
        sl = el.slice
        if isinstance(sl, cst.Slice):
            shape.append(":")
        elif isinstance(sl, cst.Index) and _is_new_axis(sl.value):
            shape.append("new")
        elif isinstance(sl, cst.Index) and isinstance(sl.value, cst.Ellipsis):
            shape.append("...")
        else:
            shape.append("i")
    return shape


def _offset(expr: Optional[cst.BaseExpression], row: str) -> Optional[int]:
    """``k`` for ``row + k`` (``row`` alone: 0, ``row - 1``: -1); None for anything else."""
    if isinstance(expr, cst.Name) and expr.value == row:
        return 0
    if (isinstance(expr, cst.BinaryOperation) and isinstance(expr.left, cst.Name) and expr.left.value == row
            and isinstance(expr.operator, (cst.Add, cst.Subtract)) and isinstance(expr.right, cst.Integer)):
        k = int(expr.right.value)
        return k if isinstance(expr.operator, cst.Add) else -k
    return None


def _row_region(target: cst.Subscript, write: cst.Assign, fn) -> Optional[str]:
    """Which part of row ``i`` ``m[i, ...] = v`` writes: "future" (the columns after ``i``) or
    "past" (the columns up to ``i``); None when it is neither or cannot be told."""
    items = [el.slice for el in target.slice]
    if len(items) != 2 or not isinstance(items[0], cst.Index) or not isinstance(items[0].value, cst.Name):
        return None
    row = items[0].value.value
    col = items[1]
    if isinstance(col, cst.Slice) and col.step is None:
        if col.lower is None and col.upper is not None:  # ``m[i, :i + 1]``
            k = _offset(col.upper, row)
            return "past" if k is not None and k <= 1 else None
        if col.upper is None and col.lower is not None:  # ``m[i, i + 1:]``
            k = _offset(col.lower, row)
            return "future" if k is not None and k >= 1 else None
        return None
    if isinstance(col, cst.Index) and isinstance(col.value, cst.Name):  # ``m[i, j]`` under ``if j > i``
        column = col.value.value
        for test in (n.test for n in iter_nodes(fn.body, cst.If) if write in list(iter_nodes(n.body, cst.Assign))):
            if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
                continue
            left, op, right = test.left, test.comparisons[0].operator, test.comparisons[0].comparator
            names = (last_name(left), last_name(right))
            if names == (row, column):
                op = {cst.GreaterThan: cst.LessThan, cst.LessThan: cst.GreaterThan, cst.GreaterThanEqual:
                      cst.LessThanEqual, cst.LessThanEqual: cst.GreaterThanEqual}.get(type(op), type(None))()
            elif names != (column, row):
                continue
            if isinstance(op, cst.GreaterThan):
                return "future"
            if isinstance(op, cst.LessThanEqual):
                return "past"
        return None
    return None


def _item_index(node: cst.Subscript) -> Optional[int]:
    """``i`` for ``x[i]`` with a literal integer ``i`` (negative too)."""
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    n = _number(node.slice[0].slice.value)
    return int(n) if n is not None and n == int(n) else None


Function = Union[cst.FunctionDef, cst.Lambda]


class Interpreter:
    """Abstract values of expressions inside one function, its parameters bound to ``params``."""

    def __init__(self, program: "ModuleValues", fn: Function, cls: Optional[cst.ClassDef],
                 params: Dict[str, MaskValue], depth: int = 0,
                 outer: Optional[Tuple["Interpreter", cst.CSTNode]] = None,
                 inputs: Optional[Dict[str, MaskValue]] = None):
        self.program = program
        self.inputs = inputs or {}  # a functional builder's ``keras.Input`` names and what they hold
        self.outer = outer  # a closure's enclosing function, read where the closure is called
        self.fn = fn
        self.cls = cls
        self.params = params
        self.depth = depth
        self.scope = scope_of(fn)
        self._memo: Dict[object, MaskValue] = {}
        self._active: set = set()

    # -- names

    def name(self, name: str, at: Optional[cst.CSTNode]) -> MaskValue:
        key = self.scope.binding_key(name, at)
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return TOP
        self._active.add(key)
        values, is_param = self.scope.reaching(name, at)
        found: List[MaskValue] = []
        if not values and not is_param and self.outer is not None and name not in self.scope.assigns:
            outer, where = self.outer
            found.append(outer.name(name, where))
        if is_param:
            found.append(self.params.get(name, TOP))
        elif not values and not found and name == "self":
            found.append(self._self_value(name))
        for value in values:
            if isinstance(value, Element):
                found.append(self.element(value))
            elif isinstance(value, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                found.append(TOP)
            elif _is_loop_iter(value, name, self.fn):
                found.append(TOP)
            elif name in self.inputs and isinstance(value, cst.Call) and last_name(value.func) == "Input":
                found.append(self.inputs[name])
            elif isinstance(value, cst.Call) and last_name(value.func) in _FILLS and self._writes(name):
                found.append(self._filled(name, value))
            else:
                found.append(self.value(value))
        self._active.discard(key)
        out = join(found) if found else TOP
        self._memo[key] = out
        return out

    def _writes(self, name: str) -> List[cst.Assign]:
        """``name[...] = v`` statements of this function: an array filled by index assignment."""
        if isinstance(self.fn, cst.Lambda):
            return []
        return [a for a in iter_nodes(self.fn.body, cst.Assign)
                if len(a.targets) == 1 and isinstance(a.targets[0].target, cst.Subscript)
                and isinstance(a.targets[0].target.value, cst.Name) and a.targets[0].target.value.value == name]

    def _filled(self, name: str, created: cst.Call) -> MaskValue:
        """An array made by ``zeros``/``ones``/``full`` whose rows are then written one by one
        (``m[i, :i + 1] = 1``, ``m[i, i + 1:] = -1e9``, or ``m[i, j] = 0`` under ``if j > i``):
        causal when the future and the past of each row end up holding different values."""
        base = _FILLS[last_name(created.func)]
        if base is None:
            fill = _arg(created, 1, "fill_value")
            base = _number(fill) if fill is not None else None
        writes = self._writes(name)
        if base is None or len(writes) != 1:
            return TOP
        write = writes[0]
        region = _row_region(write.targets[0].target, write, self.fn)
        value = _number(write.value)
        if region is None or value is None:
            return TOP
        future = value if region == "future" else base
        past = value if region == "past" else base
        if future == past:
            return TOP
        if past == 1.0 and future == 0.0:
            return MaskValue(frozenset([CAUSAL]), ATTEND, BINARY, 2, (TARGET, TARGET))
        if past == 0.0 and future == 1.0:
            return MaskValue(frozenset([CAUSAL]), MASKED, BINARY, 2, (TARGET, TARGET))
        if past == 0.0 and future <= -1e3:
            return MaskValue(frozenset([CAUSAL]), MASKED, ADDITIVE, 2, (TARGET, TARGET))
        return MaskValue(frozenset([CAUSAL]), None, BINARY, 2, (TARGET, TARGET))

    def _self_value(self, name: str) -> MaskValue:
        """``self`` in a method: the layer, whose methods a helper handed it may call."""
        fn = self.fn
        if (self.cls is not None and isinstance(fn, cst.FunctionDef) and fn.params.params
                and fn.params.params[0].name.value == name):
            return MaskValue(form=LAYER, layer=self.cls.name.value)
        return TOP

    def element(self, el: Element) -> MaskValue:
        """Item ``el.index`` of an unpacked value: a helper's returned tuple is read item by item."""
        value = el.value
        if isinstance(value, cst.Call):
            items = self.program.returned_items(self, value, el.index)
            if items is not None:
                return items
        if isinstance(value, (cst.Tuple, cst.List)) and el.index < len(value.elements):
            return self.value(value.elements[el.index].value)
        whole = self.value(value)
        if whole.items is not None and el.index < len(whole.items):
            return whole.items[el.index]
        return taint([whole])

    # -- expressions

    def value(self, node: cst.CSTNode) -> MaskValue:
        if isinstance(node, cst.Name):
            if node.value in ("None", "True", "False"):
                return NOTHING
            return self.name(node.value, node)
        if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
            return NOTHING
        if isinstance(node, cst.Subscript):
            return self._subscript(node)
        if isinstance(node, cst.Attribute):
            attr = node.attr.value
            if attr in ("shape", "dtype"):
                return NOTHING
            if attr == "_keras_mask":
                held = self.value(node.value)
                return MaskValue(frozenset([padding(held.seq)]), ATTEND, BOOL, 2, ("batch", held.seq),
                                 deps=held.deps)
            if isinstance(node.value, cst.Name) and node.value.value == "self":
                return self.program.attribute(self.cls, attr, self.depth)
            return taint([self.value(node.value)])
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.UnaryOperation):
            inner = self.value(node.expression)
            if isinstance(node.operator, (cst.BitInvert, cst.Not)) and inner.is_mask:
                return replace(inner.inverted(), form=BOOL)
            if isinstance(node.operator, cst.Minus) and _number(node) is not None:
                return NOTHING
            return taint([inner]) if inner.is_mask or inner.opaque else inner
        if isinstance(node, cst.BinaryOperation):
            return self._binary(node)
        if isinstance(node, cst.Comparison):
            return self._comparison(node)
        if isinstance(node, cst.IfExp):
            return join([self.value(node.body), self.value(node.orelse)])
        if isinstance(node, (cst.Tuple, cst.List)):
            return taint(self.value(el.value) for el in node.elements)
        return TOP

    def _subscript(self, node: cst.Subscript) -> MaskValue:
        base = self.value(node.value)
        if base.items is not None:
            index = _item_index(node)
            if index is not None and -len(base.items) <= index < len(base.items):
                return base.items[index]
        shape = _slice_shape(node)
        if shape in ([":", ":", "new"], ["...", "new"]):
            base = query_side(base)
        if not (base.is_mask or base.form in (IDS, RANGE)):
            return base
        return self._reshaped(base, shape)

    def _reshaped(self, base: MaskValue, shape: List[str]) -> MaskValue:
        """``base`` indexed by a slice of ``shape`` (``:``, ``new``, ``...``, ``i`` per item)."""
        if "new" not in shape and "i" not in shape:
            return base  # a slice keeps the rank
        if "..." in shape:
            return replace(base, rank=None, axes=None)
        old = list(base.axes) if base.axes is not None else None
        axes: List[str] = []
        k = 0
        for s in shape:
            if s == "new":
                axes.append("one")
            elif s == ":":
                axes.append(old[k] if old is not None and k < len(old) else UNKNOWN)
                k += 1
            else:
                k += 1
        if old is not None:
            axes += old[k:]
        rank = len(axes) if base.rank is not None else None
        if base.form == RANGE and base.rank == 1 and shape in ([":", "new"],):
            axes = ["row", "one"]
        elif base.form == RANGE and base.rank == 1 and shape == ["new", ":"]:
            axes = ["one", "col"]
        return replace(base, rank=rank, axes=tuple(axes) if rank is not None else None)

    def _binary(self, node: cst.BinaryOperation) -> MaskValue:
        op = node.operator
        left, right = node.left, node.right
        if isinstance(op, cst.Subtract):
            one = _number(left)
            inner = self.value(right)
            if one == 1.0 and inner.is_mask:
                return replace(inner.inverted(), form=BINARY)
            left_value = self.value(left)
            if inner.is_mask or left_value.is_mask:
                return taint([left_value, inner])
            return join([left_value, inner])
        if isinstance(op, cst.Multiply):
            for a, b in ((left, right), (right, left)):
                if _large_negative(b):
                    v = self.value(a)
                    return replace(v, form=ADDITIVE) if v.is_mask else (TOP if v.opaque else v)
            return combine(self.value(left), self.value(right), True)
        if isinstance(op, (cst.BitAnd,)):
            return replace(combine(self.value(left), self.value(right), True), form=BOOL)
        if isinstance(op, (cst.BitOr,)):
            return replace(combine(self.value(left), self.value(right), False), form=BOOL)
        if isinstance(op, cst.Add):
            return combine(self.value(left), self.value(right), False)
        return taint([self.value(left), self.value(right)])

    def _comparison(self, node: cst.Comparison) -> MaskValue:
        if len(node.comparisons) != 1:
            return taint([self.value(node.left)] + [self.value(c.comparator) for c in node.comparisons])
        c = node.comparisons[0]
        sym = {cst.Equal: "==", cst.NotEqual: "!=", cst.GreaterThan: ">", cst.GreaterThanEqual: ">=",
               cst.LessThan: "<", cst.LessThanEqual: "<="}.get(type(c.operator))
        if sym is None:
            return TOP
        return self._compare(node.left, sym, c.comparator)

    def _compare(self, left: cst.CSTNode, sym: str, right: cst.CSTNode) -> MaskValue:
        lnum, rnum = _number(left), _number(right)
        if lnum is not None and rnum is None:
            left, right, lnum, rnum = right, left, rnum, lnum
            sym = _FLIP.get(sym, sym)
        a = self.value(left)
        if rnum is not None:
            if a.is_mask:  # a mask compared with 0 or 1
                if sym == "==" and rnum == 0 or sym == "!=" and rnum == 1:
                    return replace(a.inverted(), form=BOOL)
                if sym in ("!=", ">") and rnum == 0 or sym == "==" and rnum == 1:
                    return replace(a, form=BOOL)
                return taint([a])
            if a.opaque or a.form in (IDS, DATA):  # token ids against the pad id
                seq = a.seq
                axes = a.axes if a.form == IDS else None
                rank = a.rank if a.form == IDS else None
                kinds = frozenset([padding(seq)])
                if sym == "==":
                    return MaskValue(kinds, MASKED, BOOL, rank, axes, seq, deps=a.deps)
                if sym == "!=" or (sym == ">" and rnum == 0):
                    return MaskValue(kinds, ATTEND, BOOL, rank, axes, seq, deps=a.deps)
            return TOP
        b = self.value(right)
        if a.form == RANGE and b.form == RANGE and sym in _FLIP:
            if a.axes == ("row", "one") or b.axes == ("one", "col") or (a.rank == 2 and b.rank == 1):
                row_op = sym
            elif b.axes == ("row", "one") or a.axes == ("one", "col") or (b.rank == 2 and a.rank == 1):
                row_op = _FLIP[sym]
            else:
                return MaskValue(frozenset([CAUSAL]), None, BOOL, 2)
            pol = ATTEND if row_op in (">=", ">") else MASKED
            return MaskValue(frozenset([CAUSAL]), pol, BOOL, 2, (TARGET, TARGET))
        return taint([a, b])

    def _call(self, call: cst.Call) -> MaskValue:
        fname = last_name(call.func)
        args = [a.value for a in positional_args(call)]
        if fname in ("shape", "len", "int", "float"):
            return NOTHING
        if fname in _RANGES:
            return MaskValue(frozenset(), None, RANGE, 1, ("row",))
        if fname in _CASTS and args:
            v = self.value(args[0])
            dtype = _arg(call, 1, "dtype")
            if v.is_mask:
                return replace(v, form=BOOL if _dtype_is_bool(dtype) else (BINARY if v.form == BOOL else v.form))
            return v
        if fname in _KEEP_VALUES and args:
            v = self.value(args[0])
            return replace(v, rank=None, axes=None) if v.is_mask else v
        if fname == "expand_dims" and args:
            v = self.value(args[0])
            axis = _int_arg(call, 1, "axis")
            if axis is not None and axis != 1:
                v = query_side(v)  # a new last axis: ``[B, T]`` becomes ``[B, T, 1]``
            if not (v.is_mask or v.form in (IDS, RANGE)):
                return v
            if v.rank is not None and axis is not None and v.axes is not None:
                axes = list(v.axes)
                where = int(axis) if axis >= 0 else len(axes) + 1 + int(axis)
                axes.insert(max(0, min(where, len(axes))), "one")
                return replace(v, rank=v.rank + 1, axes=tuple(axes))
            return replace(v, rank=v.rank + 1 if v.rank is not None else None, axes=None)
        if fname in _ONES:
            return MaskValue(frozenset([ONES]), ATTEND, BINARY)
        if fname == "logical_not" and args:
            v = self.value(args[0])
            return replace(v.inverted(), form=BOOL) if v.is_mask else TOP
        if fname in ("equal", "not_equal") and len(args) == 2:
            return self._compare(args[0], "==" if fname == "equal" else "!=", args[1])
        if fname in _ORDER and len(args) == 2:
            return self._compare(args[0], _ORDER[fname], args[1])
        if fname in _AND and len(args) >= 2:
            v = combine(self.value(args[0]), self.value(args[1]), True)
            return replace(v, form=BOOL) if fname == "logical_and" and v.is_mask else v
        if fname in _OR and len(args) >= 2:
            v = combine(self.value(args[0]), self.value(args[1]), False)
            return replace(v, form=BOOL) if fname == "logical_or" and v.is_mask else v
        if fname == "subtract" and len(args) == 2 and _number(args[0]) == 1.0:
            v = self.value(args[1])
            return replace(v.inverted(), form=BINARY) if v.is_mask else TOP
        if fname == "band_part" and args:
            lower, upper = _int_arg(call, 1, "num_lower"), _int_arg(call, 2, "num_upper")
            pol = ATTEND if (lower is not None and lower < 0 and upper == 0) else None
            return self._triangle(args[0], pol)
        if fname == "tril" and args:
            return self._triangle(args[0], ATTEND)
        if fname == "tri" and args:  # ``np.tri(n)``: ones on and below the diagonal
            k = _int_arg(call, 2, "k")
            return MaskValue(frozenset([CAUSAL]), ATTEND if not k or k <= 0 else None, BINARY, 2, (TARGET, TARGET))
        if fname == "triu" and args:
            k = _int_arg(call, 1, "k")
            if k is None:
                k = _int_arg(call, 1, "diagonal")
            return self._triangle(args[0], MASKED if k is not None and k >= 1 else None)
        if fname == "where" and len(args) == 3:
            cond = self.value(args[0])
            if cond.is_mask and _number(args[1]) == 0 and _large_negative(args[2]):
                return replace(cond.inverted(), form=ADDITIVE)
            if cond.is_mask and _large_negative(args[1]) and _number(args[2]) == 0:
                return replace(cond, form=ADDITIVE)
            return TOP
        if fname == "compute_mask":
            deps = frozenset().union(*(self.value(a.value).deps for a in call.args))
            return MaskValue(frozenset([padding(UNKNOWN)]), ATTEND, BOOL, 2, ("batch", UNKNOWN), deps=deps)
        if fname == "Input":
            return MaskValue(frozenset(), None, IDS, None, None, UNKNOWN)
        helped = self.program.call_helper(self, call)
        if helped is not None:
            return helped
        # an operation not modelled here: what it returns is still made of its inputs
        inputs = [self.value(a.value) for a in call.args]
        if isinstance(call.func, cst.Attribute) and last_name(call.func.value) is None:
            inputs.append(self.value(call.func.value))  # a method of a computed value: ``(m > 0).float()``
        return taint(inputs)

    def _triangle(self, arg: cst.BaseExpression, pol: Optional[str]) -> MaskValue:
        base = self.value(arg)
        kinds = {CAUSAL} | (set(base.kinds) - {ONES, OPAQUE} if base.is_mask else set())
        if base.is_mask and base.polarity not in (None, ATTEND) and base.kinds != {ONES}:
            pol = None
        return MaskValue(frozenset(kinds), pol, BINARY if base.form != BOOL else BOOL, 2, (TARGET, TARGET),
                         deps=base.deps)


def _defined_in(helper: Function, fn: Function) -> bool:
    """Whether ``helper`` is a closure of ``fn`` (a nested def or lambda)."""
    a, b = span(helper), span(fn)
    return a is not None and b is not None and b[0] < a[0] and a[1] <= b[1]


def _is_loop_iter(value: cst.CSTNode, name: str, fn: Function) -> bool:
    """Whether ``value`` is bound to ``name`` as the iterable of a ``for`` (the item is unknown)."""
    if isinstance(fn, cst.Lambda):
        return False
    for loop in iter_nodes(fn.body, cst.For):
        if loop.iter is value:
            return True
    return False


# --------------------------------------------------------------------------
# the module


@dataclass
class Site:
    """One application of a layer class: the call, and the function (and class) it is in."""

    call: cst.Call
    fn: cst.FunctionDef
    cls: Optional[cst.ClassDef]


class ModuleValues:
    """The abstract values of one module: helpers, attributes, and layer call parameters.

    Given the run's ``symbols`` (with this module's ``key``) and ``peer`` (another source's
    values, by key), helpers and classes imported from the run are followed into their source,
    and a layer's ``call`` parameters are also bound from the calls in the sources importing it.
    """

    def __init__(self, module: cst.Module, attentions: Attentions, key: Optional[str] = None,
                 symbols: Optional[Symbols] = None,
                 peer: Optional[Callable[[str], Optional["ModuleValues"]]] = None):
        self.module = module
        self.attentions = attentions
        self.key = key
        self.symbols = symbols if symbols is not None and key in symbols.modules else None
        self.peer = peer
        self.classes: Dict[str, cst.ClassDef] = {}
        self.owner: Dict[int, Optional[cst.ClassDef]] = {}  # id(fn) -> its class
        self.functions: Dict[str, cst.FunctionDef] = {}
        for stmt in module.body:
            if isinstance(stmt, cst.FunctionDef):
                self.functions[stmt.name.value] = stmt
        for cls in iter_nodes(module, cst.ClassDef):
            self.classes.setdefault(cls.name.value, cls)
            for fn in iter_nodes(cls.body, cst.FunctionDef):
                self.owner.setdefault(id(fn), cls)
        self.own_mha = own_attention(module)
        self.imported: Dict[str, Definition] = {}  # local name -> a class or function of another source
        if self.symbols is not None and peer is not None:
            for table in (self.symbols.functions(key), self.symbols.classes(key)):
                self.imported.update({n: d for n, d in table.items() if d.key != key})
        self._sites: Optional[Dict[str, List[Site]]] = None
        self._params: Dict[int, Dict[str, MaskValue]] = {}
        self._active: set = set()
        self._summaries: Dict[tuple, MaskValue] = {}

    # -- functions and classes

    def methods(self, cls: Optional[cst.ClassDef]) -> Dict[str, cst.FunctionDef]:
        if cls is None:
            return {}
        return {s.name.value: s for s in cls.body.body if isinstance(s, cst.FunctionDef)}

    def functions_with_classes(self) -> Iterable[Tuple[cst.FunctionDef, Optional[cst.ClassDef]]]:
        for fn in iter_nodes(self.module, cst.FunctionDef):
            yield fn, self.owner.get(id(fn))

    def interpreter(self, fn: cst.FunctionDef, cls: Optional[cst.ClassDef], depth: int = 0,
                    params: Optional[Dict[str, MaskValue]] = None) -> Interpreter:
        return Interpreter(self, fn, cls, self.parameters(fn, cls, depth) if params is None else params, depth)

    def decoder_interpreter(self, fn: cst.FunctionDef, cls: Optional[cst.ClassDef], dec: str, enc: str,
                            mask: Optional[str]) -> Interpreter:
        """An interpreter of a decoder's ``call`` (or functional builder), from what it is given:
        ``dec`` over the target, ``enc`` over the source, ``mask`` filled by Keras from the
        decoder's input (see ``decoder_inputs``); any other input is unknown."""
        given = decoder_inputs(dec, enc, mask)
        params = set(param_names(fn))
        return Interpreter(self, fn, cls, {n: v for n, v in given.items() if n in params},
                           inputs={n: v for n, v in given.items() if n not in params})

    def attention_calls(self, fn: cst.FunctionDef, cls: Optional[cst.ClassDef]) -> List[Tuple[str, AttentionCall]]:
        """``(layer class name, call)`` for each attention applied in ``fn``."""
        attrs = attention_attributes(cls, self.attentions) if cls is not None else {}
        calls = attention_calls(fn, attrs, self.attentions)
        if not calls:
            return []
        names = self.attentions.names()
        local: Dict[str, str] = {}
        for loop in iter_nodes(fn.body, cst.For):
            bind_loop(loop.target, loop.iter, attrs, local)
        for node in iter_nodes(fn.body, cst.Assign):
            if isinstance(node.value, cst.Call) and last_name(node.value.func) in names:
                for t in node.targets:
                    if isinstance(t.target, cst.Name):
                        local[t.target.value] = last_name(node.value.func)
        keras_attrs = _keras_built(cls) if self.own_mha and cls is not None else set()
        out = []
        for ac in calls:
            func = ac.call.func
            attr = self_attr(func)
            keras = not self.own_mha
            if attr in attrs:
                name = attrs[attr]
                keras = keras or attr in keras_attrs
            elif isinstance(func, cst.Call):
                name = last_name(func.func)
                keras = keras or isinstance(func.func, cst.Attribute)
            elif isinstance(func, cst.Name):
                name = local.get(func.value)
            else:
                name = None
            name = name or KERAS_MHA
            if name == KERAS_MHA and not keras:
                continue  # the module's own attention, with its own idea of a mask
            out.append((name, ac))
        return out

    # -- helpers

    def _foreign(self, name: str, kind: type) -> Optional[Tuple[Union[cst.ClassDef, cst.FunctionDef], "ModuleValues"]]:
        """A class or function imported from another source of the run, with that source's values."""
        d = self.imported.get(name)
        if d is None or not isinstance(d.node, kind) or self.peer is None:
            return None
        program = self.peer(d.key)
        return (d.node, program) if program is not None else None

    def _helpers(self, it: Interpreter, func: cst.BaseExpression
                 ) -> List[Tuple[Function, Optional[cst.ClassDef], "ModuleValues"]]:
        """``(helper, its class, the values of its source)`` for each helper ``func`` may run."""
        attr = self_attr(func)
        if attr and not isinstance(func, cst.Subscript):
            method = self.methods(it.cls).get(attr)
            return [(method, it.cls, it.program)] if method is not None else []
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            cls, program = self.classes.get(func.value.value), self
            if cls is None:
                cls, program = self._foreign(func.value.value, cst.ClassDef) or (None, self)
            if cls is None:  # ``layer.f(...)`` with the layer handed over
                held = it.value(func.value)
                if held.form == LAYER and held.layer in self.classes:
                    cls = self.classes[held.layer]
            method = self.methods(cls).get(func.attr.value) if cls is not None else None
            return [(method, cls, program)] if method is not None else []
        if not isinstance(func, cst.Name):
            return []
        values, _ = it.scope.reaching(func.value, func)
        local = [(v, it.cls, it.program) for v in values if isinstance(v, (cst.FunctionDef, cst.Lambda))]
        if local:
            return local
        if it.outer is not None and func.value not in it.scope.assigns:
            return self._helpers(it.outer[0], func)
        helper = self.functions.get(func.value)
        if helper is not None:
            return [(helper, None, self)]
        found = self._foreign(func.value, cst.FunctionDef)
        return [(found[0], None, found[1])] if found is not None else []

    def _bound(self, it: Interpreter, helper: Function, call: cst.Call) -> Dict[str, MaskValue]:
        params = param_names(helper)
        bound: Dict[str, MaskValue] = {}
        for arg, name in zip(positional_args(call), params):
            bound[name] = it.value(arg.value)
        for a in call.args:
            if a.keyword is not None and a.keyword.value in params:
                bound[a.keyword.value] = it.value(a.value)
        return bound

    def _returns(self, helper: Function) -> List[cst.BaseExpression]:
        if isinstance(helper, cst.Lambda):
            return [helper.body]
        return [r.value for r in iter_nodes(helper.body, cst.Return) if r.value is not None]

    def call_helper(self, it: Interpreter, call: cst.Call) -> Optional[MaskValue]:
        """The value a helper returns for ``call``, or None when ``call`` runs no known helper."""
        helpers = self._helpers(it, call.func)
        if not helpers:
            return None
        if it.depth >= MAX_DEPTH:
            return TOP
        out = []
        for helper, cls, program in helpers:
            sub = program._evaluate_returns(it, helper, cls, call)
            out.append(join(v for v in sub if v is not None) if sub else TOP)
        return join(out)

    def _evaluate_returns(self, it: Interpreter, helper: Function, cls, call: cst.Call,
                          index: Optional[int] = None) -> List[MaskValue]:
        bound = self._bound(it, helper, call)
        key = (id(helper), index, tuple(sorted(bound.items(), key=lambda kv: kv[0])),
               id(call) if _defined_in(helper, it.fn) else None)
        if key in self._summaries:
            return [self._summaries[key]]
        if key in self._active:
            return [TOP]
        self._active.add(key)
        nested = _defined_in(helper, it.fn)
        sub = Interpreter(self, helper, cls, bound, it.depth + 1, outer=(it, call) if nested else None)
        values = []
        for r in self._returns(helper):
            if index is None:
                values.append(sub.value(r))
            elif isinstance(r, (cst.Tuple, cst.List)) and index < len(r.elements):
                values.append(sub.value(r.elements[index].value))
            else:
                values.append(TOP)
        self._active.discard(key)
        self._summaries[key] = join(values)
        return [self._summaries[key]]

    def returned_items(self, it: Interpreter, call: cst.Call, index: int) -> Optional[MaskValue]:
        """Item ``index`` of the tuple a helper returns (``a, b, c = create_masks(x, y)``)."""
        helpers = self._helpers(it, call.func)
        if not helpers or it.depth >= MAX_DEPTH:
            return None
        return join(v for helper, cls, program in helpers
                    for v in program._evaluate_returns(it, helper, cls, call, index))

    def attribute(self, cls: Optional[cst.ClassDef], attr: str, depth: int) -> MaskValue:
        """A mask kept on ``self`` (built once, in ``__init__`` or ``build``)."""
        if cls is None or depth >= MAX_DEPTH:
            return TOP
        found = []
        for fn in self.methods(cls).values():
            for node in iter_nodes(fn.body, cst.Assign):
                for t in node.targets:
                    if self_attr(t.target) == attr and not isinstance(t.target, cst.Subscript):
                        if isinstance(node.value, cst.Call) and last_name(node.value.func) and \
                                last_name(node.value.func)[:1].isupper():
                            found.append(TOP)  # a layer, not a mask
                        else:
                            found.append(Interpreter(self, fn, cls, {}, depth + 1).value(node.value))
        return join(found) if found else TOP

    # -- layer call parameters, bound from the module's calls of the layer

    def parameters(self, fn: cst.FunctionDef, cls: Optional[cst.ClassDef], depth: int = 0) -> Dict[str, MaskValue]:
        """Abstract values of ``fn``'s parameters: for a layer's ``call``, the join over the calls of
        that layer in this module; ``mask`` filled by Keras is a padding mask of attend polarity."""
        if id(fn) in self._params:
            return self._params[id(fn)]
        names = param_names(fn)
        out: Dict[str, MaskValue] = {}
        is_call = cls is not None and fn.name.value in ("call", "__call__")
        if is_call and depth < MAX_DEPTH and id(fn) not in self._active:
            self._active.add(id(fn))
            sites = [(self, site) for site in self.sites().get(cls.name.value, [])] + self._foreign_sites(cls)
            per: Dict[str, List[MaskValue]] = {}
            for program, site in sites:
                caller = program.interpreter(site.fn, site.cls, depth + 1)
                for arg, name in zip(positional_args(site.call), names):
                    per.setdefault(name, []).append(caller.value(arg.value))
                for a in site.call.args:
                    if a.keyword is not None and a.keyword.value in names:
                        per.setdefault(a.keyword.value, []).append(caller.value(a.value))
            self._active.discard(id(fn))
            for name in names:
                vals = per.get(name, [])
                if sites and len(vals) == len(sites):
                    out[name] = join(vals)
        if "mask" in names and "mask" not in out:
            out["mask"] = MaskValue(frozenset([padding(UNKNOWN)]), ATTEND, BOOL, 2, ("batch", UNKNOWN))
        if depth == 0:
            self._params[id(fn)] = out
        return out

    def _foreign_sites(self, cls: cst.ClassDef) -> List[Tuple["ModuleValues", Site]]:
        """Calls of ``cls`` in the other sources of the run that import it."""
        if self.symbols is None or self.peer is None:
            return []
        d = self.symbols.classes(self.key).get(cls.name.value)
        if d is None or d.node is not cls:
            return []
        out = []
        for key, local in self.symbols.users(d):
            program = self.peer(key)
            if program is not None:
                out += [(program, site) for site in program.sites().get(local, [])]
        return out

    def sites(self) -> Dict[str, List[Site]]:
        """Calls of the layer classes the module defines or imports from the run, by local name."""
        if self._sites is not None:
            return self._sites
        out: Dict[str, List[Site]] = {}
        names = set(self.classes) | {n for n, d in self.imported.items() if isinstance(d.node, cst.ClassDef)}
        for fn, cls in self.functions_with_classes():
            attrs: Dict[str, str] = {}
            if cls is not None:
                for method in self.methods(cls).values():
                    for node in iter_nodes(method.body, cst.Assign):
                        built = [last_name(c.func) for c in iter_nodes(node.value, cst.Call)
                                 if last_name(c.func) in names]
                        if built:
                            for t in node.targets:
                                a = self_attr(t.target)
                                if a:
                                    attrs.setdefault(a, built[0])
            local: Dict[str, str] = {}
            for node in iter_nodes(fn.body, cst.Assign):
                if isinstance(node.value, cst.Call) and last_name(node.value.func) in names:
                    for t in node.targets:
                        if isinstance(t.target, cst.Name):
                            local[t.target.value] = last_name(node.value.func)
            for loop in iter_nodes(fn.body, cst.For):
                bind_loop(loop.target, loop.iter, attrs, local)
            for call in iter_nodes(fn.body, cst.Call):
                func = call.func
                name = None
                attr = self_attr(func)
                if attr in attrs:
                    name = attrs[attr]
                elif isinstance(func, cst.Call) and last_name(func.func) in names:
                    name = last_name(func.func)
                elif isinstance(func, cst.Name) and func.value in local:
                    name = local[func.value]
                if name is not None:
                    out.setdefault(name, []).append(Site(call, fn, cls))
        self._sites = out
        return out


TARGET_DATA = MaskValue(seq=TARGET, deps=frozenset([TARGET]))  # the decoder's input (embeddings or ids)
SOURCE_DATA = MaskValue(seq=SOURCE, deps=frozenset([SOURCE]))  # the encoder's output (or the source ids)


def keras_padding(seq: str) -> MaskValue:
    """The ``[B, T]`` boolean mask Keras attaches to a padded sequence (``mask_zero=True``)."""
    return MaskValue(frozenset([padding(seq)]), ATTEND, BOOL, 2, ("batch", seq), deps=frozenset([seq]))


def sequence_inputs(target: Iterable[str], source: Iterable[str]) -> Dict[str, MaskValue]:
    """Names holding the target (decoder) or the source (encoder) sequence: parameters, or items
    of a list parameter (``inputs[1]``), which become one list value per parameter."""
    out: Dict[str, MaskValue] = {}
    items: Dict[str, Dict[int, MaskValue]] = {}
    for names, value in ((target, TARGET_DATA), (source, SOURCE_DATA)):
        for name in names:
            if "[" in name:
                base, index = name.split("[")[0], int(name[name.index("[") + 1:-1])
                items.setdefault(base, {})[index] = value
            else:
                out[name] = value
    for base, held in items.items():
        out[base] = MaskValue(items=tuple(held.get(i, NOTHING) for i in range(max(held) + 1)))
    return out


def decoder_inputs(dec: str, enc: str, mask: Optional[str]) -> Dict[str, MaskValue]:
    """What a decoder starts from, by name: ``dec`` and ``enc`` are parameters or items of a
    list parameter (``inputs[0]``); ``mask`` is the parameter Keras fills with the mask of the
    decoder's input (one mask per item when the decoder takes one list input)."""
    out = sequence_inputs([dec], [enc])
    if mask is not None:
        if "[" not in dec:
            out[mask] = keras_padding(TARGET)
        elif "[" in enc and dec.split("[")[0] == enc.split("[")[0]:
            i, j = (int(n[n.index("[") + 1:-1]) for n in (dec, enc))
            pads = {i: keras_padding(TARGET), j: keras_padding(SOURCE)}
            out[mask] = MaskValue(items=tuple(pads.get(k, NOTHING) for k in range(max(pads) + 1)))
    return out


def own_attention(module: cst.Module) -> bool:
    """Whether the module's ``MultiHeadAttention`` is its own implementation (the 2019 TensorFlow
    tutorial's, reading 1 as masked), defined here or imported from outside Keras, rather than
    Keras' layer or a subclass or wrapper of it."""
    for cls in iter_nodes(module, cst.ClassDef):
        if cls.name.value != KERAS_MHA:
            continue
        if any(last_name(b.value) == KERAS_MHA for b in cls.bases):
            return False
        return not any(isinstance(c.func, cst.Attribute) and c.func.attr.value == KERAS_MHA
                       for c in iter_nodes(cls.body, cst.Call))
    for node in iter_nodes(module, cst.ImportFrom):
        if isinstance(node.names, cst.ImportStar):
            continue
        source = (cst.Module([]).code_for_node(node.module) if node.module is not None else "")
        if source.split(".")[0] in ("keras", "tensorflow", "tf_keras"):
            continue
        if any(isinstance(a.name, cst.Name) and a.name.value == KERAS_MHA for a in node.names):
            return True
    return False


def _keras_built(cls: cst.ClassDef) -> set:
    """``self`` attributes built by a dotted ``x.MultiHeadAttention(...)``: Keras' own layer."""
    out = set()
    for node in iter_nodes(cls.body, cst.Assign):
        if any(isinstance(c.func, cst.Attribute) and c.func.attr.value == KERAS_MHA
               for c in iter_nodes(node.value, cst.Call)):
            out.update(a for a in (self_attr(t.target) for t in node.targets) if a)
    return out


def module_values(module: cst.Module, runtime: str, wrappers: Optional[Dict] = None, key: Optional[str] = None,
                  symbols: Optional[Symbols] = None,
                  peer: Optional[Callable[[str], Optional[ModuleValues]]] = None) -> ModuleValues:
    """The values of ``module`` under ``runtime``; with the run's ``symbols`` and ``peer``, across
    its sources (see ``ModuleValues``).  The engine builds one per source for a whole run."""
    return ModuleValues(module, Attentions(runtime, wrappers), key, symbols, peer)


def same_expression(a: Optional[cst.CSTNode], b: Optional[cst.CSTNode]) -> bool:
    return a is not None and b is not None and a.deep_equals(b)


def is_self_attention(ac: AttentionCall) -> bool:
    """Query, value and key are the same expression."""
    return same_expression(ac.query, ac.value) and (ac.key is None or same_expression(ac.query, ac.key))


__all__ = [
    "ATTEND", "MASKED", "SOURCE", "TARGET", "UNKNOWN", "CAUSAL", "ONES", "OPAQUE",
    "BOOL", "BINARY", "ADDITIVE", "IDS", "RANGE", "DATA",
    "MaskValue", "TOP", "NOTHING", "join", "combine", "padding", "Interpreter", "ModuleValues",
    "Site", "module_values", "same_expression", "is_self_attention", "rows", "taint", "query_side",
    "decoder_inputs", "sequence_inputs", "keras_padding", "depends_on", "TARGET_DATA", "SOURCE_DATA",
]
