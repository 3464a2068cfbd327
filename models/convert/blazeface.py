"""Make the BlazeFace ONNX files from keijiro's Barracuda package loadable by tract.

Usage: python blazeface.py SRC.onnx DST.onnx SIDE

Changes (nothing else is touched: weights, names and node order stay as published):
- every ConstantOfShape without a `value` attribute gets an explicit float32 zero `value`
  (ONNX defaults it to a float32 zero, but tract 0.23 then types the output as f64 and fails with
  "Impossible to unify F32 with F64" where it is concatenated with f32 activations);
- the graph input is pinned to batch 1 (it already is in the published files; checked anyway);
- initializers no node uses (left over by the Barracuda conversion) and stale value_info are dropped.
The input/output names and shapes are verified.
"""

import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

EXPECTED_OUTPUTS = {
    "Identity:0": [1, 512, 1],
    "Identity_1:0": [1, 384, 1],
    "Identity_2:0": [1, 512, 16],
    "Identity_3:0": [1, 384, 16],
}


def dims(vi):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]


def main(src: str, dst: str, side: int) -> None:
    model = onnx.load(src)
    g = model.graph
    fixed = 0
    for node in g.node:
        if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
            zero = numpy_helper.from_array(np.zeros((1,), dtype=np.float32), name="value")
            node.attribute.append(helper.make_attribute("value", zero))
            fixed += 1

    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    assert len(inputs) == 1 and inputs[0].name == "input:0", [i.name for i in inputs]
    shape = inputs[0].type.tensor_type.shape
    if not shape.dim[0].HasField("dim_value") or shape.dim[0].dim_value != 1:
        shape.dim[0].Clear()
        shape.dim[0].dim_value = 1
    assert dims(inputs[0]) == [1, side, side, 3], dims(inputs[0])
    got = {o.name: dims(o) for o in g.output}
    assert got == EXPECTED_OUTPUTS, got

    used = {i for n in g.node for i in n.input}
    unused = [t for t in g.initializer if t.name not in used]
    for t in unused:
        g.initializer.remove(t)
    del g.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, dst)
    print(f"blazeface: {src} -> {dst}: {fixed} ConstantOfShape given a f32 zero value, {len(unused)} unused initializers dropped")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
