from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from texttune import Predictor, train
from texttune.cli import main
from texttune.errors import AccuracyError, ConfigError, ModelError
from texttune.export import export_onnx
from texttune.quantization import int8_error, quantize_int8, weight_matrices

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
    assert "int8 accuracy check: kept Q" in printed and "<= --max-accuracy-drop 0.01" in printed
    report = json.loads((out / "onnx" / "export.json").read_text())["parity"]
    assert (
        report["variant"].endswith("weights")
        and report["max_drop"] == 0.01
        and report["data"] == "validation"
    )
    assert report["metric"] == "accuracy" and report["tried"][-1]["within"]
    assert report["metric_torch"] - report["metric_onnx"] <= 0.01
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


@pytest.mark.parametrize("weight_type", ["QInt8", "QUInt8"])
def test_int8_export_tries_the_weight_type_of_this_cpu_first(weight_type, run, tmp_path, monkeypatch):
    import onnx

    import texttune.export

    monkeypatch.setattr(texttune.export, "int8_weight_type", lambda: weight_type)
    result = export_onnx(run, tmp_path / "deploy", quantize="int8")
    tried = result.parity.tried
    assert tried[0]["weight_type"] == weight_type and tried[-1]["within"]
    assert result.weight_type == tried[-1]["weight_type"]
    info = json.loads((tmp_path / "deploy" / "onnx" / "export.json").read_text())
    assert info["weight_type"] == result.weight_type and info["parity"]["label_agreement"] >= 0.9
    dtype = {"QInt8": "INT8", "QUInt8": "UINT8"}[result.weight_type]
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
    assert main(["export", str(run), "--onnx", "--quantize", "int8", "--max-accuracy-drop", "-0.1"]) == 2
    assert "--max-accuracy-drop must be in [0, 1), got -0.1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"--max-accuracy-drop must be in \[0, 1\), got 1.5"):
        export_onnx(run, tmp_path / "z", quantize="int8", max_accuracy_drop=1.5)
    assert main(["export", str(run), "--output", str(tmp_path / "m"), "--data", "x.csv"]) == 2
    assert "--data applies to --onnx (the check of an ONNX export); add --onnx" in capsys.readouterr().err
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


def _wrecked(check) -> np.ndarray:
    """Logits that pick a wrong class for every checked row: an int8 model broken beyond use."""
    labels = np.asarray(check.dataset["labels"])
    classes = check.logits.shape[1]
    return np.eye(classes, dtype=np.float32)[(labels + 1) % classes] * 10


def test_int8_export_that_loses_accuracy_is_refused_and_writes_nothing(run, tmp_path, capsys, monkeypatch):
    import texttune.export

    export_onnx(run, overwrite=True, check_parity=False)
    existing = (run / "onnx" / "model.onnx").read_bytes()
    capsys.readouterr()  # what earlier tests' log handlers left
    monkeypatch.setattr(texttune.export, "_onnx_logits", lambda check, model: _wrecked(check))
    out = tmp_path / "deploy"
    assert main(["export", str(run), "--onnx", "--quantize", "int8", "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "texttune export: error: no int8 variant keeps accuracy within --max-accuracy-drop 0.01 on 20 rows "
        "of the validation split: PyTorch "
    )
    # 2 weight types, then 1, 2, 4 and 5 of the 10 matrices of the 2-layer model in fp32
    assert "best int8 0.0000" in err and "6 variants tried); nothing written. Export fp32" in err
    assert not list(tmp_path.iterdir())

    argv = ["export", str(run), "--onnx", "--quantize", "int8", "--overwrite", "--max-accuracy-drop", "0.4"]
    assert main([*argv, "--quiet"]) == 2
    assert "within --max-accuracy-drop 0.4" in capsys.readouterr().err
    assert (run / "onnx" / "model.onnx").read_bytes() == existing
    assert json.loads((run / "onnx" / "export.json").read_text())["quantize"] is None
    assert not list(run.glob(".*partial"))
    with pytest.raises(AccuracyError, match="no int8 variant keeps accuracy"):
        export_onnx(run, out, quantize="int8")


def test_int8_check_falls_back_to_keeping_sensitive_matrices_in_fp32(run, tmp_path, monkeypatch):
    import onnx

    import texttune.export

    excluded = []
    real_quantize, real_logits = texttune.export.quantize_int8, texttune.export._onnx_logits

    def quantize(source, target, weight_type, exclude=()):
        excluded.append(tuple(exclude))
        real_quantize(source, target, weight_type, exclude)

    def logits(check, model):  # every int8 model without fp32 matrices is wrecked
        return real_logits(check, model) if excluded[-1] else _wrecked(check)

    monkeypatch.setattr(texttune.export, "int8_weight_type", lambda: "QUInt8")
    monkeypatch.setattr(texttune.export, "quantize_int8", quantize)
    monkeypatch.setattr(texttune.export, "_onnx_logits", logits)
    result = export_onnx(run, tmp_path / "deploy", quantize="int8", max_accuracy_drop=0.2)
    report = result.parity
    assert report.metric_torch > 0.2  # so that the wrecked variants are beyond the limit
    assert [(t["variant"], t["within"]) for t in report.tried] == [
        ("QUInt8 weights", False),
        ("QInt8 weights", False),
        ("QUInt8 weights, 1 matrix fp32", True),
    ]
    assert report.variant == "QUInt8 weights, 1 matrix fp32" and result.weight_type == "QUInt8"
    assert len(report.excluded_nodes) == 1 and excluded[-1] == tuple(report.excluded_nodes)
    graph = onnx.load(str(result.model_file)).graph
    assert {n.name for n in graph.node if n.op_type in ("MatMul", "Attention")} == set(report.excluded_nodes)
    stored = json.loads((tmp_path / "deploy" / "onnx" / "export.json").read_text())["parity"]
    assert stored["variant"] == report.variant and stored["tried"][2]["excluded_nodes"] == 1


def test_every_weight_matrix_can_be_kept_in_fp32(run, tmp_path):
    import onnx

    export_onnx(run, tmp_path / "fp32", check_parity=False)
    fp32 = tmp_path / "fp32" / "onnx" / "model.onnx"
    names = set(weight_matrices(onnx.load(str(fp32))))
    assert len(names) == 10 and "/inner/classifier/Gemm_MatMul" in names  # 2 layers x 4, pooler, head
    quantize_int8(fp32, tmp_path / "int8.onnx", "QUInt8", exclude=sorted(names))
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    assert {n.name for n in graph.node if n.op_type in ("MatMul", "Attention")} == names
    assert not [n for n in graph.node if n.op_type in ("MatMulInteger", "QAttention")]


def test_int8_error_grows_with_activation_outliers():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(256, 16)).astype(np.float32)
    weight = rng.normal(size=(16, 8)).astype(np.float32)
    outliers = inputs.copy()
    outliers[0, 0] = 200.0  # one huge activation coarsens the per-tensor grid of all the others
    for weight_type in ("QInt8", "QUInt8"):
        assert int8_error(inputs, weight, weight_type) < 0.02
        assert int8_error(outliers, weight, weight_type) > 5 * int8_error(inputs, weight, weight_type)


def test_int8_export_of_a_run_without_validation_needs_labelled_data(run, tmp_path, capsys, review_frame):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(run, plain, ignore=shutil.ignore_patterns("onnx", "validation.parquet"))
    argv = ["export", str(plain), "--onnx", "--quantize", "int8", "--quiet"]
    assert main(argv) == 2
    assert (
        "has no validation split to check the int8 model's accuracy on; pass --data FILE (labelled, with the "
        "run's columns) or --no-accuracy-check to export it unchecked"
    ) in capsys.readouterr().err
    assert not (plain / "onnx").exists()

    data = tmp_path / "check.csv"
    review_frame(30, seed=1).to_csv(data, index=False)
    assert main([*argv, "--data", str(data)]) == 0
    assert f"parity on 30 rows of {data}: max abs probability diff" in capsys.readouterr().out
    report = json.loads((plain / "onnx" / "export.json").read_text())["parity"]
    assert report["data"] == str(data) and report["rows"] == 30 and report["tried"][-1]["within"]

    assert main([*argv, "--no-accuracy-check", "--overwrite"]) == 0
    assert "parity check skipped: the run has no validation.parquet" in capsys.readouterr().out
    assert "parity" not in json.loads((plain / "onnx" / "export.json").read_text())


@pytest.mark.parametrize(
    ("task", "metric", "loss"), [("multi_label", "f1_micro", "drop"), ("regression", "mse", "relative rise")]
)
def test_int8_check_judges_the_primary_metric_of_the_task(
    task, metric, loss, tiny_bert, tmp_path, review_frame, run_config, monkeypatch
):
    import texttune.export

    frame = review_frame(60)
    if task == "regression":
        frame["label"] = [0.9 if label == "positive" else 0.1 for label in frame["label"]]
    else:
        frame["label"] = [f"{label}|long" if len(text.split()) > 8 else label for text, label in frame.values]
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    config = run_config(tiny_bert, str(data), tmp_path / "run")
    config.data.task, config.data.label_delimiter = task, ("|" if task == "multi_label" else None)
    run = train(config).output
    report = export_onnx(run, tmp_path / "deploy", quantize="int8", max_accuracy_drop=0.5).parity
    assert report.metric == metric and report.tried[-1]["within"] and report.accuracy_torch is None
    if task == "regression":  # the MSE may rise by half of itself
        rise = (report.metric_onnx - report.metric_torch) / report.metric_torch
        assert report.tried[-1]["drop"] == pytest.approx(rise)

    def wrecked(check, model):
        if task == "regression":
            return check.logits + 10.0
        return np.where(np.asarray(check.dataset["labels"]) > 0, -10.0, 10.0)

    monkeypatch.setattr(texttune.export, "_onnx_logits", wrecked)
    with pytest.raises(AccuracyError, match=f"keeps {metric} within --max-accuracy-drop 0.5 .*, {loss} "):
        export_onnx(run, tmp_path / "wrecked", quantize="int8", max_accuracy_drop=0.5)
    assert not (tmp_path / "wrecked").exists()
