"""Learned mapping: an ONNX model in the robot config drives its joints; mismatched models are refused."""
from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

from humimic_core.paths import config_file
from humimic_core.robot_config import parse_robot_config
from humimic_retarget.expression_mapping import ExpressionMapping
from humimic_retarget.offline.fitting import Network
from humimic_retarget.learned_mapping import CHANNELS_KEY, LearnedMapping, LearnedModelError
from humimic_retarget.offline.onnx_export import export_onnx, network_to_onnx
from humimic_retarget.retargeter import Retargeter, RetargetParams

RAW = yaml.safe_load(config_file("robot_face.yaml").read_text())
CHANNELS = ["AU12_L", "AU26", "head_yaw"]
JOINTS = ["jaw", "lip_corner_left", "neck_yaw"]


def network(inputs=len(CHANNELS), outputs=len(JOINTS), hidden=8, seed=0):
    rng = np.random.default_rng(seed)
    return Network("mlp", [(rng.normal(0, 0.3, (inputs, hidden)), rng.normal(0, 0.1, hidden)),
                           (rng.normal(0, 0.05, (hidden, outputs)), np.full(outputs, 0.05))])


def config_with_model(path):
    data = copy.deepcopy(RAW)
    data["mapping"]["mirror"] = False
    data["mapping"]["model"] = {"path": str(path)}
    data["mapping"]["curves"]["AU12_L"] = {"deadband": 0.3}
    return parse_robot_config(data)


def test_model_drives_its_joints_and_the_weights_the_rest(tmp_path):
    net = network()
    path = export_onnx(net, CHANNELS, JOINTS, tmp_path / "m.onnx")
    config = config_with_model(path)
    mapping = ExpressionMapping(config)
    assert mapping.model.providers[0] in ort.get_available_providers()
    frame = {"AU12_L": 2.0, "AU26": 4.0, "head_yaw": 0.2, "AU01": 3.0}
    targets, valid = mapping(frame)
    t = dict(zip(config.joint_names, targets))
    # the model reads channels as perceived: the 0.3 deadband of AU12_L (config_with_model) shapes
    # the linear mapping's input only, as models are fitted on perceived channels
    expected = net.predict(np.array([[2.0, 4.0, 0.2]]))[0]
    assert [t[j] for j in JOINTS] == pytest.approx(expected.tolist(), abs=1e-5)
    assert t["brow_inner_left"] == pytest.approx(0.07 * 3.0), "joints outside the model keep their weights"
    _, valid = mapping({"AU12_L": 2.0, "AU26": float("nan"), "head_yaw": 0.2})
    assert not any(valid[config.joint_names.index(j)] for j in JOINTS), "a bad model input invalidates its joints"
    _, valid = mapping({"AU12_L": 2.0, "AU26": 1.0})
    assert not any(valid[config.joint_names.index(j)] for j in JOINTS), "so does a missing one"
    r = Retargeter(config, RetargetParams(smoothing=0.0))
    for k in range(200):
        out = r.update(0.01 * k, frame)
    assert [out[j] for j in JOINTS] == pytest.approx(
        [config.servo(j).clamp(v) for j, v in zip(JOINTS, expected)], abs=1e-5)


def test_onnx_graph_is_plain_layers_with_the_order_in_its_metadata(tmp_path):
    model = onnx.load(str(export_onnx(network(), CHANNELS, JOINTS, tmp_path / "m.onnx")))
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "Relu", "MatMul", "Add"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["humimic.channels"]) == CHANNELS and json.loads(meta["humimic.joints"]) == JOINTS
    assert [i.name for i in model.graph.input] == ["channels"] and [o.name for o in model.graph.output] == ["joints"]


def bare_model(tmp_path, net, props, channels=CHANNELS):
    """A model whose metadata_props are replaced by ``props``."""
    model = network_to_onnx(net, channels, JOINTS)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    path = tmp_path / "bare.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: export_onnx(network(), CHANNELS, ["jaw", "nose", "neck_yaw"], d / "m.onnx"),
     r"output joints \['nose'\] are not servos of the robot config"),
    (lambda d: export_onnx(network(), ["AU12", "smile", "head_yaw"], JOINTS, d / "m.onnx"),
     r"input channels \['smile'\] are not channels"),
    (lambda d: bare_model(d, network(), {}), "metadata_props lacks humimic.channels"),
    (lambda d: bare_model(d, network(), {CHANNELS_KEY: "AU12", "humimic.joints": json.dumps(JOINTS)}),
     "must be a JSON list"),
    (lambda d: bare_model(d, network(inputs=4), {CHANNELS_KEY: json.dumps(CHANNELS),
                                                  "humimic.joints": json.dumps(JOINTS)}, CHANNELS + ["AU01"]),
     "does not take its 3 metadata channels"),
    (lambda d: bare_model(d, network(), {CHANNELS_KEY: json.dumps(CHANNELS),
                                         "humimic.joints": json.dumps(["jaw", "neck_yaw"])}),
     "does not match its 2 joints"),
    (lambda d: (d / "junk.onnx").write_bytes(b"not a model") and d / "junk.onnx", "not a loadable ONNX model"),
    (lambda d: d / "missing.onnx", "does not exist"),
])
def test_mismatched_models_are_refused(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(LearnedModelError, match=message):
        LearnedMapping(path, [s["joint"] for s in RAW["servos"]])
    with pytest.raises(LearnedModelError, match=message):
        ExpressionMapping(config_with_model(path))
