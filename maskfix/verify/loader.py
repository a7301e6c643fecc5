"""Import a Python file's definitions only: imports, functions, classes and literal constants.

Top-level training code never runs; ``if __name__ == "__main__":`` blocks are skipped along with
every other statement that is not a definition.
"""
from __future__ import annotations

import ast
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional


@dataclass
class LoadedDefinitions:
    module: types.ModuleType
    executed: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _is_name_target(node: ast.AST) -> bool:
    """``A`` or ``A, B`` / ``(A, B)`` / ``[A, B]``: plain names, possibly unpacked (``*rest`` too)."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Starred):
        return _is_name_target(node.value)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_name_target(e) for e in node.elts)
    return False


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign):
        return all(_is_name_target(t) for t in node.targets) and _is_literal(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _is_literal(node.value)
    if isinstance(node, ast.Try):
        # `try: import x / except ImportError: import y` guards are part of the imports.
        body = node.body + [s for h in node.handlers for s in h.body] + node.orelse
        return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)) for s in body)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return True  # docstring
    return False


def _describe(node: ast.stmt, source: str) -> str:
    if isinstance(node, ast.ClassDef):
        text = f"class {node.name}"
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        text = f"def {node.name}"
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        text = "module docstring"
    else:
        text = (ast.get_source_segment(source, node) or "").splitlines()[0] if source else ""
        if len(text) > 70:
            text = text[:67] + "..."
    return f"line {node.lineno}: {text}"


def load_definitions(path, module_name: str | None = None) -> LoadedDefinitions:
    """Execute only the definitions of the file at ``path`` in a fresh module object."""
    path = Path(path)
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    kept, executed, skipped = [], [], []
    for node in tree.body:
        if _keep(node):
            kept.append(node)
            executed.append(_describe(node, source))
        else:
            skipped.append(_describe(node, source))
    name = module_name or f"maskfix_verify_target_{path.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    # Registered so that classes defined inside can be looked up by module name (serialization).
    sys.modules[name] = module
    code = compile(ast.Module(body=kept, type_ignores=[]), str(path), "exec")
    exec(code, module.__dict__)
    return LoadedDefinitions(module, executed, skipped)


def find_decoder_classes(source: str) -> List[str]:
    """Names of classes whose ``call`` takes two tensors and that use MultiHeadAttention."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        if "MultiHeadAttention" not in (ast.get_source_segment(source, node) or ""):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "call":
                args = item.args.posonlyargs + item.args.args
                n_required = len(args) - len(item.args.defaults)
                tensors = [a.arg for a in args[1:n_required]]  # drop self
                if len(tensors) >= 2:
                    found.append(node.name)
    return found


def _call_tensor_args(cls: ast.ClassDef, classes: dict, seen=()) -> Optional[int]:
    """Required positional arguments of ``call`` after ``self``, looking into base classes
    defined in the same file; None when no ``call`` is found there."""
    for item in cls.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "call":
            args = item.args.posonlyargs + item.args.args
            return len(args) - len(item.args.defaults) - 1
    for base in cls.bases:
        name = base.id if isinstance(base, ast.Name) else None
        if name in classes and name not in seen:
            found = _call_tensor_args(classes[name], classes, seen + (cls.name,))
            if found is not None:
                return found
    return None


def why_not_a_decoder(source: str, name: str) -> Optional[str]:
    """None if class ``name`` in ``source`` looks like a decoder layer, else the reason it does not.

    A decoder's ``call`` takes the decoder states and the encoder outputs (two tensors); any
    other layer would be probed with arguments it does not expect.
    """
    tree = ast.parse(source)
    classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    if name not in classes:
        return f"no class {name} in the file (classes: {', '.join(sorted(classes)) or 'none'})"
    n_tensors = _call_tensor_args(classes[name], classes)
    if n_tensors is None:
        return f"{name} defines no call() in this file, so it cannot be a decoder layer to probe"
    if n_tensors < 2:
        return (f"{name} is not a decoder layer: its call() takes {n_tensors} required tensor "
                "argument(s), a decoder takes two (decoder states and encoder outputs)")
    return None
