from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from texttune import Predictor, train
from texttune.cli import main
from texttune.errors import ConfigError, ModelError
from texttune.export import export_onnx

pytest.importorskip("onnxruntime")

TEXTS = ["the film was good fun", "awful boring plot", "really clever and moving story", "dull"]


@pytest.fixture(scope="module")
def run(tiny_bert, tmp_path_factory, review_frame, run_config):
    folder = tmp_path_factory.mktemp("export")
    data = folder / "reviews.csv"
    review_frame(80).to_csv(data, index=False)
    config = run_config(tiny_bert, str(data), folder / "run", epochs=2)
    return train(config).output


def test_export_into_run_matches_torch_and_becomes_the_default_backend(run, capsys):
    result = export_onnx(run, overwrite=True)
    assert result.model_file == run / "onnx" / "model.onnx" and result.fused
    assert result.parity.rows == 20 and result.parity.label_agreement == 1.0
    assert result.parity.max_abs_diff < 1e-4
    info = json.loads((run / "onnx" / "export.json").read_text())
    assert info["quantize"] is None and info["parity"]["label_agreement"] == 1.0

    onnx = Predictor.load(run)
    torch_ = Predictor.load(run, backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnx", "torch")
    np.testing.assert_allclose(onnx.logits(TEXTS), torch_.logits(TEXTS), atol=1e-4)
    assert [p.label for p in onnx.predict(TEXTS)] == [p.label for p in torch_.predict(TEXTS)]
    assert onnx.logits([]).shape == (0, 2)

    stored = json.loads((run / "metrics.json").read_text())
    assert main(["evaluate", str(run), "--backend", "onnx", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == stored["accuracy"]


def test_cli_int8_export_to_stand_alone_folder_and_predict(run, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert main(["export", str(run), "--onnx", "--quantize", "int8", "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX model (int8, fused attention" in printed
    assert "QInt8 weights) written to" in printed or "QUInt8 weights) written to" in printed
    assert (
        "parity on 20 validation rows: max abs probability diff" in printed and "label agreement" in printed
    )
    assert not (out / "model.safetensors").exists() and (out / "texttune.json").is_file()
    assert not list(tmp_path.glob(".*partial"))

    int8 = Predictor.load(out)
    assert int8.backend == "onnx"
    reference = Predictor.load(run, backend="torch").probabilities(
        Predictor.load(run, backend="torch").logits(TEXTS)
    )
    assert np.abs(int8.probabilities(int8.logits(TEXTS)) - reference).max() < 0.05

    data = tmp_path / "new.csv"
    pd.DataFrame({"text": TEXTS * 3}).to_csv(data, index=False)
    target = tmp_path / "pred.csv"
    assert (
        main(
            [
                "predict",
                str(out),
                "--data",
                str(data),
                "--output",
                str(target),
                "--backend",
                "onnx",
                "--quiet",
            ]
        )
        == 0
    )
    written = pd.read_csv(target)
    assert len(written) == 12 and set(written["predicted_label"]) <= {"negative", "positive"}

    with pytest.raises(ModelError, match="missing model.safetensors"):
        Predictor.load(out, backend="torch")


@pytest.mark.parametrize(("weight_type", "dtype"), [("QInt8", "INT8"), ("QUInt8", "UINT8")])
def test_int8_export_uses_the_weight_type_of_this_cpu(weight_type, dtype, run, tmp_path, monkeypatch):
    import onnx

    import texttune.export

    monkeypatch.setattr(texttune.export, "int8_weight_type", lambda: weight_type)
    result = export_onnx(run, tmp_path / "deploy", quantize="int8")
    assert result.weight_type == weight_type
    info = json.loads((tmp_path / "deploy" / "onnx" / "export.json").read_text())
    assert info["weight_type"] == weight_type and info["parity"]["label_agreement"] >= 0.9
    graph = onnx.load(str(result.model_file)).graph
    quantized = {
        onnx.TensorProto.DataType.Name(t.data_type) for t in graph.initializer if "quantized" in t.name
    }
    assert quantized == {dtype}


def test_export_refuses_to_replace_without_overwrite(run, tmp_path):
    export_onnx(run, overwrite=True, check_parity=False)
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        export_onnx(run, check_parity=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="is not empty; pass --overwrite"):
        export_onnx(run, tmp_path / "full", check_parity=False)


def test_export_and_backend_errors(run, tmp_path, capsys, monkeypatch):
    assert main(["export", str(run)]) == 2
    assert "give the folder for the exported model with --output (or export to ONNX with --onnx)" in (
        capsys.readouterr().err
    )
    assert main(["export", str(run), "--onnx", "--merge"]) == 2
    assert "--onnx and --merge are different exports; give one of them" in capsys.readouterr().err
    assert main(["export", str(run), "--quantize", "int8"]) == 2
    assert "--quantize applies to --onnx" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--quantize 'int4' is not one of int8"):
        export_onnx(run, quantize="int4")
    with pytest.raises(ConfigError, match="--backend 'tf' is not one of auto, torch, onnx"):
        Predictor.load(run, backend="tf")

    plain = tmp_path / "plain"
    import shutil

    shutil.copytree(run, plain, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(ConfigError, match="has no ONNX model; export one with `texttune export"):
        Predictor.load(plain, backend="onnx")
    assert Predictor.load(plain).backend == "torch"

    manifest = json.loads((plain / "texttune.json").read_text())
    (plain / "texttune.json").write_text(json.dumps({**manifest, "strategy": "lora"}))
    with pytest.raises(
        ConfigError,
        match="ONNX export supports runs of strategy freeze or full or partial or setfit; .* 'lora' run",
    ):
        export_onnx(plain, tmp_path / "y")

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        ConfigError, match=r"needs onnxruntime; install it with: pip install \"texttune\[onnx\]\""
    ):
        export_onnx(run, tmp_path / "x")


@pytest.mark.parametrize("strategy", ["setfit", "freeze"])
def test_pooled_runs_export_to_onnx_with_parity(strategy, tiny_bert_mean, tmp_path, review_frame, run_config):
    from texttune.config import StrategyConfig

    data = tmp_path / "reviews.csv"
    review_frame(80).to_csv(data, index=False)
    options = StrategyConfig(strategy=strategy, setfit_pairs=64)
    run = train(run_config(tiny_bert_mean, str(data), tmp_path / "run", strategy=options)).output
    assert json.loads((run / "head.json").read_text())["pooling"] == "mean"
    result = export_onnx(run, tmp_path / "deploy")
    assert result.parity.label_agreement == 1.0 and result.parity.max_abs_diff < 1e-4
    onnx = Predictor.load(tmp_path / "deploy")
    assert onnx.backend == "onnx"
    np.testing.assert_allclose(onnx.logits(TEXTS), Predictor.load(run).logits(TEXTS), atol=1e-4)
