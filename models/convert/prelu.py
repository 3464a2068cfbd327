"""Rewrite tf2onnx's decomposed PReLU into a form with fewer elementwise passes (onnx + numpy only,
so it runs in either virtualenv). Called by mobilefacenet.py, i.e. before quantization, so that
both the f32 and the int8 embedder get it.

Stand-alone (experiments): python prelu.py SRC.onnx DST.onnx [--prelu MODE]

tf2onnx emits every TFLite PReLU (slope s, one per channel, a [1,C,1,1] constant: NCHW, after the
input Transpose) as

    y = Add(Relu(x), Mul(Sub(x, Abs(x)), m))        m = s/2, folded by tf2onnx

which tract runs as three passes over the activation (Abs, Sub+Mul, Max+Add). MobileFaceNet's
slopes are NOT in [0, 1] (about -9.4 .. 8.9, mixed signs in every PReLU), so the 2-op form
Max(x, s*x), exact only where s <= 1, cannot be used as is. Modes (MODES):

- "flip" (default): channels with s > 1 are negated around the PReLU. The conv that produces x
  gets the weights and bias of those output channels negated (it now emits x' = -x there), the
  PReLU becomes y' = Max(Mul(x', s), x'), and the conv that consumes y gets the weights of those
  input channels negated. For s <= 1, Max(x, s*x) = PReLU(x); for s > 1,
  Max(-x, -s*x) = -Min(x, s*x) = -PReLU(x), undone by the consumer. Exact in f32 (bit-identical
  output: sign flips are exact and products/sums are the same numbers). 2 elementwise ops, one
  tract pass (OptBinChain(Mul+Max)). A PReLU whose slopes are all <= 1 (or all >= 1) is rewritten
  to Max(s*x, x) (or Min(s*x, x)) without touching the convs.
- "fused": y = Add(Mul(Min(x, 0), s - 1), x). One tract pass of three steps; not exact (two
  roundings instead of one, ~1e-5 on the embedding). Convs untouched.
- "minmax": y = Add(Mul(Min(x, 0), s), Relu(x)), exact, convs untouched, but 4 ops / two passes
  in tract (barely faster than the original).
- "decomposed": keep tf2onnx's form.

The ONNX PRelu op is not used on purpose (tract's own PRelu was measured slower). The slope keeps
the original [1,C,1,1] shape and broadcast; the PReLU output keeps its tensor name (`.../add`), so
consumers, conv node names and the quantization recipe stay as they were.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

MODES = ("flip", "fused", "minmax", "decomposed")
DEFAULT = "flip"


def _graph_maps(g: onnx.GraphProto):
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def find(model: onnx.ModelProto) -> list[dict]:
    """Every decomposed PReLU: x, the five nodes (Relu, Abs, Sub, Mul, Add), slope s = 2m, output."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    _, consumers = _graph_maps(g)
    graph_outputs = {o.name for o in g.output}

    def only_use(name: str):
        c = consumers.get(name, [])
        return c[0] if len(c) == 1 and name not in graph_outputs else None

    found = []
    for ab in g.node:
        if ab.op_type != "Abs":
            continue
        x = ab.input[0]
        sub = only_use(ab.output[0])
        if sub is None or sub.op_type != "Sub" or list(sub.input) != [x, ab.output[0]]:
            continue
        mul = only_use(sub.output[0])
        if mul is None or mul.op_type != "Mul":
            continue
        m_name = next((i for i in mul.input if i != sub.output[0]), None)
        if m_name not in inits or len(consumers[m_name]) != 1:
            continue
        relu = [n for n in consumers[x] if n.op_type == "Relu"]
        add = only_use(mul.output[0])
        if (
            len(relu) != 1
            or add is None
            or add.op_type != "Add"
            or sorted(add.input) != sorted([relu[0].output[0], mul.output[0]])
            or only_use(relu[0].output[0]) is not add
        ):
            continue
        half = numpy_helper.to_array(inits[m_name])
        assert half.dtype == np.float32 and half.ndim == 4 and half.shape[0] == 1 and half.shape[2:] == (1, 1), half.shape
        slope = half * np.float32(2)  # exact (power of two)
        assert np.array_equal(slope / np.float32(2), half)
        found.append({"x": x, "nodes": [relu[0], ab, sub, mul, add], "m": m_name, "slope": slope, "out": add.output[0]})
    return found


def rewrite(model: onnx.ModelProto, mode: str = DEFAULT) -> dict:
    """Rewrite every decomposed PReLU of `model` in place; return a JSON-able summary."""
    assert mode in MODES, mode
    g = model.graph
    found = find(model)
    s_all = np.concatenate([f["slope"].ravel() for f in found]) if found else np.zeros(0, np.float32)
    summary = {
        "mode": mode,
        "prelus": len(found),
        "channels": int(s_all.size),
        "slope_min": round(float(s_all.min()), 4) if s_all.size else None,
        "slope_max": round(float(s_all.max()), 4) if s_all.size else None,
        "slopes_negative": int((s_all < 0).sum()),
        "slopes_in_0_1": int(((s_all >= 0) & (s_all <= 1)).sum()),
        "slopes_above_1": int((s_all > 1).sum()),
        "prelus_all_slopes_le_1": sum(bool((f["slope"] <= 1).all()) for f in found),
        "forms": {},
        "negated_channels": 0,
        "convs_touched": 0,
    }
    if mode == "decomposed":
        return summary
    assert found, "no decomposed PReLU found"
    producer, consumers = _graph_maps(g)
    inits = {t.name: t for t in g.initializer}
    key = lambda n: n.output[0]  # noqa: E731 (node outputs are unique)
    position = {key(n): k for k, n in enumerate(g.node)}
    replace: dict[int, list] = {}
    drop: set[int] = set()
    new_slopes: dict[str, onnx.TensorProto] = {}  # old `m` initializer name -> new slope tensor
    flipped: dict[str, np.ndarray] = {}  # conv weight/bias initializer -> sign-flipped copy
    needs_zero = False
    touched: set[str] = set()  # names of the convs whose weights were sign-flipped

    def editable(name: str) -> np.ndarray:
        assert len(consumers[name]) == 1, f"{name} is shared"
        if name not in flipped:
            flipped[name] = numpy_helper.to_array(inits[name]).copy()
        return flipped[name]

    def mul_then(op: str, x: str, prefix: str, out: str) -> list:
        return [
            helper.make_node("Mul", [x, prefix + "prelu_slope"], [prefix + "prelu_sx"], name=prefix + "prelu_sx"),
            helper.make_node(op, [prefix + "prelu_sx", x], [out], name=prefix + "prelu"),
        ]

    for f in found:
        x, s, out = f["x"], f["slope"], f["out"]
        relu = f["nodes"][0]
        prefix = relu.name.rsplit("/", 1)[0] + "/" if "/" in relu.name else relu.name + "_"
        const = s
        if mode in ("flip", "minmax") and (s <= 1).all():
            form, nodes = "Max(s*x, x)", mul_then("Max", x, prefix, out)
        elif mode in ("flip", "minmax") and (s >= 1).all():
            form, nodes = "Min(s*x, x)", mul_then("Min", x, prefix, out)
        elif mode == "flip":
            neg = (s > 1).reshape(-1)
            p, q = producer[x], consumers[out]
            assert p.op_type == "Conv" and len(p.input) == 3, p.name
            assert sorted(n.op_type for n in consumers[x]) == ["Abs", "Relu", "Sub"], x
            assert len(q) == 1 and q[0].op_type == "Conv", out
            q = q[0]
            w = editable(p.input[1])
            assert w.shape[0] == neg.size, (p.name, w.shape)
            w[neg] *= -1
            editable(p.input[2])[neg] *= -1
            wq = editable(q.input[1])
            group = next((a.i for a in q.attribute if a.name == "group"), 1)
            if group == 1:
                assert wq.shape[1] == neg.size, (q.name, wq.shape)
                wq[:, neg] *= -1
            else:  # depthwise: output channel c reads input channel c only
                assert group == neg.size == wq.shape[0] and wq.shape[1] == 1, (q.name, group, wq.shape)
                wq[neg] *= -1
            summary["negated_channels"] += int(neg.sum())
            touched.update((p.name, q.name))
            form, nodes = "Max(s*x', x'), channels with s > 1 negated", mul_then("Max", x, prefix, out)
        elif mode == "minmax":
            needs_zero = True
            form = "Min(x, 0)*s + Relu(x)"
            nodes = [
                helper.make_node("Min", [x, "prelu_zero"], [prefix + "prelu_neg"], name=prefix + "prelu_neg"),
                helper.make_node("Mul", [prefix + "prelu_neg", prefix + "prelu_slope"], [prefix + "prelu_sneg"], name=prefix + "prelu_sneg"),
                helper.make_node("Relu", [x], [prefix + "prelu_pos"], name=prefix + "prelu_pos"),
                helper.make_node("Add", [prefix + "prelu_sneg", prefix + "prelu_pos"], [out], name=prefix + "prelu"),
            ]
        else:  # fused
            needs_zero = True
            form = "Min(x, 0)*(s - 1) + x"
            const = (s.astype(np.float64) - 1.0).astype(np.float32)
            nodes = [
                helper.make_node("Min", [x, "prelu_zero"], [prefix + "prelu_neg"], name=prefix + "prelu_neg"),
                helper.make_node("Mul", [prefix + "prelu_neg", prefix + "prelu_slope"], [prefix + "prelu_sneg"], name=prefix + "prelu_sneg"),
                helper.make_node("Add", [prefix + "prelu_sneg", x], [out], name=prefix + "prelu"),
            ]
        summary["forms"][form] = summary["forms"].get(form, 0) + 1
        new_slopes[f["m"]] = numpy_helper.from_array(np.ascontiguousarray(const, dtype=np.float32), prefix + "prelu_slope")
        replace[min(position[key(n)] for n in f["nodes"])] = nodes
        drop.update(position[key(n)] for n in f["nodes"])

    nodes_out = []
    for k, n in enumerate(g.node):
        nodes_out.extend(replace.get(k, []))
        if k not in drop:
            nodes_out.append(n)
    del g.node[:]
    g.node.extend(nodes_out)
    # Same initializer order as before: each new slope takes the place of the constant it replaces.
    inits_out = [numpy_helper.from_array(np.zeros((), np.float32), "prelu_zero")] if needs_zero else []
    for t in g.initializer:
        if t.name in flipped:
            t = numpy_helper.from_array(flipped[t.name], t.name)
        inits_out.append(new_slopes.get(t.name, t))
    del g.initializer[:]
    g.initializer.extend(inits_out)
    summary["convs_touched"] = len(touched)
    assert not find(model)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--prelu", choices=MODES, default=DEFAULT)
    a = ap.parse_args()
    m = onnx.load(a.src)
    summary = rewrite(m, a.prelu)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, a.dst)
    print("prelu: " + json.dumps(summary) + f" -> {a.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
