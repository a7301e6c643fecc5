"""Which Keras a module is written for, and how it spells tensor ops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .syntax import dotted, iter_nodes


@dataclass
class Dialect:
    """How a module spells tensor ops, so that new code reads like the old."""

    runtime: str = "keras3"  # "keras3" or "tf.keras"
    tf: Optional[str] = None  # alias bound to tensorflow
    ops: Optional[str] = None  # alias bound to keras.ops
    keras: Optional[str] = None  # alias bound to keras (Keras 3)
    numpy: Optional[str] = None

    def not_equal(self, tokens: str, pad: int) -> str:
        if self.runtime == "keras3" and self.ops:
            return f"{self.ops}.not_equal({tokens}, {pad})"
        if self.runtime == "keras3" and self.keras:
            return f"{self.keras}.ops.not_equal({tokens}, {pad})"
        if self.tf:
            return f"{self.tf}.math.not_equal({tokens}, {pad})"
        if self.ops:
            return f"{self.ops}.not_equal({tokens}, {pad})"
        return f"{tokens} != {pad}"


def module_dialect(module: cst.Module) -> Dialect:
    d = Dialect()
    tf_keras = False
    keras3 = False
    for node in iter_nodes(module, (cst.Import, cst.ImportFrom)):
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = dotted(alias.name) or ""
                bound = alias.asname.name.value if alias.asname else full.split(".")[0]
                if full == "tensorflow":
                    d.tf = bound
                elif full in ("tensorflow.keras", "tf_keras") or full.startswith("tf_keras."):
                    tf_keras = True
                elif full == "keras.ops" and alias.asname:
                    d.ops, keras3 = bound, True
                elif full == "keras" or full.startswith("keras."):
                    keras3 = True
                    if full == "keras":
                        d.keras = bound
                elif full == "numpy":
                    d.numpy = bound
        else:
            mod = dotted(node.module) if node.module else ""
            mod = mod or ""
            # keras._tf_keras is Keras 3's tf.keras surface, not the legacy package
            if mod.startswith("tensorflow") or mod.startswith("tf_keras"):
                tf_keras = True
            elif mod == "keras" or mod.startswith("keras."):
                keras3 = True
            if isinstance(node.names, cst.ImportStar):
                continue
            for alias in node.names:
                name = dotted(alias.name) or ""
                bound = alias.asname.name.value if alias.asname else name
                if mod == "keras" and name == "ops":
                    d.ops = bound
                elif mod == "tensorflow" and name == "keras":
                    tf_keras = True
    if tf_keras and not (keras3 and (d.ops or d.keras)):
        d.runtime = "tf.keras"
    elif keras3:
        d.runtime = "keras3"
    elif d.tf:
        d.runtime = "tf.keras"
    return d
