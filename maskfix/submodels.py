"""Where a decoder sub-model (``decoder = keras.Model([tokens, states], ...)``) is used.

When the rewrite gives such a sub-model an ``encoder_padding_mask`` input, every call of it
must pass one more input: the training graph's call, and also an inference loop's
``decoder.predict([...])`` or ``decoder([...])`` in another function.  This module finds those
calls (through the builder function's returned tuple too) and follows the encoder states they
pass back to the token ids that the encoder sub-model was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Set, Tuple

import libcst as cst

from .syntax import instance_key, iter_nodes, keyword_arg, last_name, positional_args
from .trace import Body, LocalFunctions, input_rank, is_input_call

# Model methods that take the same inputs as calling the model.
PREDICT_METHODS = {"predict", "predict_on_batch", "predict_step", "__call__", "call"}
# Methods that take the inputs too but also targets: not updated, reported.
OTHER_INPUT_METHODS = {"fit", "evaluate", "train_on_batch", "test_on_batch", "train_step", "test_step"}


@dataclass
class ModelUse:
    """One call of a sub-model: ``m([...])``, ``m.predict([...])``, or another method."""

    call: cst.Call
    method: Optional[str]  # None: the model itself is called
    inputs: Optional[cst.BaseExpression]  # the inputs argument

    @property
    def label(self) -> str:
        return f"{last_name(self.call.func.value)}.{self.method}" if self.method else \
            (last_name(self.call.func) or "the sub-model")


def _binds(fn: cst.FunctionDef, name: str, builder: Optional[str] = None) -> bool:
    """Whether ``name`` is local to ``fn`` (a parameter or assigned in it), other than as the
    result of a call of ``builder``."""
    ps = fn.params
    params = [*ps.posonly_params, *ps.params, *ps.kwonly_params]
    if any(p.name.value == name for p in params):
        return True
    for node in iter_nodes(fn.body, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.For)):
        value = getattr(node, "value", None)
        if builder is not None and isinstance(value, cst.Call) and last_name(value.func) == builder:
            continue
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        for t in targets:
            if any(isinstance(n, cst.Name) and n.value == name for n in iter_nodes(t, cst.Name)):
                return True
    return False


def returned_values(fn: cst.FunctionDef) -> List[cst.BaseExpression]:
    """What ``fn`` returns; a returned name bound once to a tuple counts as that tuple."""
    out = []
    for ret in iter_nodes(fn.body, cst.Return):
        value = ret.value
        if isinstance(value, cst.Name):
            bound = [a.value for a in iter_nodes(fn.body, cst.Assign)
                     if any(isinstance(t.target, cst.Name) and t.target.value == value.value for t in a.targets)]
            if len(bound) == 1 and isinstance(bound[0], (cst.Tuple, cst.List)):
                value = bound[0]
        if value is not None:
            out.append(value)
    return out


def _returned_position(fn: cst.FunctionDef, name: str) -> Optional[int]:
    """Where ``fn`` returns ``name``: -1 alone, k in a returned tuple, None when it does not."""
    for value in returned_values(fn):
        if isinstance(value, cst.Name) and value.value == name:
            return -1
        if isinstance(value, (cst.Tuple, cst.List)):
            for k, el in enumerate(value.elements):
                if isinstance(el.value, cst.Name) and el.value.value == name:
                    return k
    return None


def keys_bound_from(module: cst.Module, builder: str, position: int) -> Set[str]:
    """Names and self-attributes bound to result ``position`` of calls of ``builder``."""
    out: Set[str] = set()
    for node in iter_nodes(module, cst.Assign):
        if not (isinstance(node.value, cst.Call) and last_name(node.value.func) == builder):
            continue
        for t in node.targets:
            target = t.target
            if position == -1:
                key = instance_key(target, subscripts=False)
            elif isinstance(target, (cst.Tuple, cst.List)) and position < len(target.elements):
                key = instance_key(target.elements[position].value, subscripts=False)
            else:
                key = None
            if key:
                out.add(key)
    return out


def _uses(module: cst.CSTNode, keys: Set[str], skip: Optional[cst.CSTNode] = None,
          builder: Optional[str] = None, functions: Optional[LocalFunctions] = None,
          depth: int = 0) -> List[ModelUse]:
    """Calls on ``keys`` in ``module``, leaving out ``skip`` and the functions where a name of
    ``keys`` is local (other than as the result of ``builder``).  With ``functions``, a helper
    that is given the model as an argument is followed: calls of that parameter count too."""
    hidden: Set[int] = set()
    names = [k for k in keys if "." not in k]
    for fn in iter_nodes(module, cst.FunctionDef):
        if fn is skip or any(_binds(fn, n, builder) for n in names):
            hidden |= {id(c) for c in iter_nodes(fn.body, cst.Call)}
    out = []
    for call in iter_nodes(module, cst.Call):
        if id(call) in hidden:
            continue
        func = call.func
        method = None
        if instance_key(func, subscripts=False) in keys:
            pass
        elif isinstance(func, cst.Attribute) and instance_key(func.value, subscripts=False) in keys:
            method = func.attr.value
            if method not in PREDICT_METHODS | OTHER_INPUT_METHODS:
                continue  # summary(), save(), get_layer() ...
        else:
            continue
        arg = keyword_arg(call, "inputs") or keyword_arg(call, "x")
        if arg is None:
            pos = positional_args(call)
            arg = pos[0] if pos else None
        out.append(ModelUse(call, method, arg.value if arg is not None else None))
    if functions is not None and depth < 3:
        seen = {id(u.call) for u in out}
        for call in iter_nodes(module, cst.Call):
            if id(call) in hidden:
                continue
            for param, inner in _given_model(call, keys, functions):
                for use in _uses(inner, {param}, functions=functions, depth=depth + 1):
                    if id(use.call) not in seen:
                        seen.add(id(use.call))
                        out.append(use)
    return out


def _given_model(call: cst.Call, keys: Set[str], functions: LocalFunctions) -> List[Tuple[str, cst.CSTNode]]:
    """``(parameter, body)`` of the helper ``call`` runs, for each parameter given a model of ``keys``."""
    fn = functions.resolve(call)
    if fn is None:
        return []
    ps = fn.params
    out = []
    for p in (*ps.posonly_params, *ps.params, *ps.kwonly_params):
        arg = functions.argument(call, fn, p.name.value)
        if arg is not None and instance_key(arg.value, subscripts=False) in keys:
            out.append((p.name.value, fn.body))
    return out


def model_uses(module: cst.Module, owner: cst.CSTNode, model_var: str,
               functions: Optional[LocalFunctions] = None) -> List[ModelUse]:
    """Every call of the sub-model bound to ``model_var`` in the body of ``owner``, in ``module``.

    A sub-model built at module level is reached from any function that does not bind the name
    itself; one built in a builder function is reached in that function and, through the
    builder's returned tuple, wherever its result is unpacked.  With ``functions``, also inside
    the helpers it is passed to.
    """
    if isinstance(owner, cst.Module):
        return _uses(module, {model_var}, functions=functions)
    uses = _uses(owner.body, {model_var}, builder=owner.name.value, functions=functions)
    position = _returned_position(owner, model_var)
    if position is not None:
        keys = keys_bound_from(module, owner.name.value, position)
        if keys:
            seen = {id(u.call) for u in uses}
            uses += [u for u in _uses(module, keys, owner, owner.name.value, functions) if id(u.call) not in seen]
    return uses


def foreign_uses(module: cst.Module, imported: Set[str], owner: cst.CSTNode, model_var: str) -> List[ModelUse]:
    """Calls of the sub-model in another source that imports it (or its builder)."""
    if isinstance(owner, cst.Module):
        if model_var in imported or "*" in imported:
            return _uses(module, {model_var})
        return []
    name = owner.name.value
    position = _returned_position(owner, model_var)
    if position is None or not (name in imported or "*" in imported):
        return []
    keys = keys_bound_from(module, name, position)
    return _uses(module, keys, builder=name) if keys else []


def token_input_of_model(model_call: cst.Call, body: Optional[Body], at: int) -> bool:
    """Whether a ``Model(inputs, ...)`` takes one 1-D ``Input`` (token ids) as its input."""
    if last_name(model_call.func) != "Model" or body is None:
        return False
    arg = keyword_arg(model_call, "inputs")
    if arg is None:
        pos = positional_args(model_call)
        arg = pos[0] if pos else None
    if arg is None or not isinstance(arg.value, cst.Name):
        return False
    found = body.assignment_before(arg.value.value, at)
    return found is not None and is_input_call(found[1]) and input_rank(found[1]) == 1


Resolver = Callable[[str], Optional[Tuple[cst.Call, Optional[Body], int]]]


def encoder_token_ids(expr: cst.BaseExpression, body: Body, at: int, resolve: Resolver,
                      functions: Optional[LocalFunctions] = None) -> Optional[str]:
    """The name of the token ids that an encoder sub-model turned into ``expr``.

    ``expr`` is followed through plain assignments in ``body`` to ``enc(ids)`` or
    ``enc.predict(ids, ...)``, where ``resolve(key)`` finds the ``Model(...)`` bound to
    ``enc`` as ``(call, its body, its position)``, and with ``functions`` through one-line
    helpers that make that call.  Only a plain name is returned for the ids, and only when it is
    not bound again between the encoder call and ``at``.
    """
    use = at
    for _ in range(20):
        if isinstance(expr, cst.Name):
            found = body.assignment_before(expr.value, at)
            if found is None or found[1] is None:
                return None
            at, expr = found
            continue
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        if isinstance(func, cst.Attribute) and func.attr.value in PREDICT_METHODS:
            func = func.value
        key = instance_key(func, subscripts=False)
        model = resolve(key) if key else None
        if model is None:
            inlined = functions.inline(expr) if functions is not None else None
            if inlined is None:
                return None
            expr = inlined
            continue
        pos = positional_args(expr)
        ids = pos[0].value if pos else None
        if not isinstance(ids, cst.Name):
            return None
        later = body.assignment_before(ids.value, use)
        if later is not None and later[0] >= at:
            return None  # bound again on the way: the ids at the call are other ids
        return ids.value
    return None


__all__ = [
    "ModelUse", "PREDICT_METHODS", "returned_values", "OTHER_INPUT_METHODS", "model_uses", "foreign_uses",
    "keys_bound_from", "token_input_of_model", "encoder_token_ids", "Resolver",
]
