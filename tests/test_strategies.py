"""The strategy grid (every strategy x every tiny model) and each strategy's errors, export and pretraining."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from texttune import DataConfig, ModelConfig, Predictor, RunConfig, TrainConfig, evaluate_run, train
from texttune.cli import main
from texttune.config import StrategyConfig
from texttune.errors import ConfigError, ModelError
from texttune.strategies import Strategy, get_strategy, register, strategy_names

TEXTS = ["the film was good fun", "awful boring plot", "really clever and moving story", "dull"]
MODELS = ("tiny_bert", "tiny_distilbert", "tiny_gpt2")


def _adapter(*markers: str):
    return lambda name: any(m in name for m in (*markers, "modules_to_save"))


def _partial(name: str) -> bool:
    frozen = re.search(r"embeddings\.|embed_tokens\.|\.wte\.|\.wpe\.|\.(layer|layers|h)\.0\.", name)
    return frozen is None


#: strategy -> (options, is this parameter of the Trainer's model expected to train?)
STRATEGIES = {
    "full": ({}, lambda name: True),
    "freeze": ({}, lambda name: name.startswith("net.")),
    "freeze_mlp": (
        {
            "strategy": "freeze",
            "head": "mlp",
            "head_hidden_size": 8,
            "head_layers": 2,
            "head_batchnorm": True,
        },
        lambda name: name.startswith("net."),
    ),
    "partial": ({"freeze_layers": 1}, _partial),
    "lora": ({}, _adapter("lora_")),
    "ia3": ({}, _adapter("ia3_")),
    "prefix": ({}, _adapter("prompt_encoder")),
    "prompt": ({"num_virtual_tokens": 4}, _adapter("prompt_encoder")),
    "ptuning": ({"num_virtual_tokens": 4}, _adapter("prompt_encoder")),
    # 32 pairs: 2 steps of batch 16; the head is fitted after training, by logistic regression
    "setfit": ({"setfit_pairs": 32}, lambda name: not name.startswith("classifier.head.")),
}
#: Combinations that must fail with a clear error instead (see test_unsupported_combinations).
UNSUPPORTED = {
    ("prefix", "tiny_distilbert"): "does not support distilbert models",
    ("prompt", "tiny_gpt2"): "on a decoder model",
    ("ptuning", "tiny_gpt2"): "on a decoder model",
}
#: The MLP head variant runs on one model only: the head does not depend on the base architecture.
GRID = [
    (s, m)
    for s in STRATEGIES
    for m in MODELS
    if (s, m) not in UNSUPPORTED and (s != "freeze_mlp" or m == "tiny_bert")
]
#: Llama-style decoders: the strategies decoder models must support.
GRID += [(s, "tiny_llama") for s in ("full", "partial", "lora")]
#: A checkpoint trained with mean pooling: the strategies that classify from a pooled head use it.
GRID += [(s, "tiny_bert_mean") for s in ("full", "freeze", "partial", "lora", "ia3", "prompt", "setfit")]
#: The learning rate of every run here (conftest's quick runs use 1e-3).
LEARNING_RATE = 1e-2


class Recorder(TrainerCallback):
    """Snapshots the Trainer's model parameters before and after training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.trainable = {n: p.requires_grad for n, p in model.named_parameters()}
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.steps = state.global_step
        self.after = {n: p.detach().cpu().clone() for n, p in model.named_parameters()}


def strategy_config(name: str, **overrides) -> StrategyConfig:
    options = dict(STRATEGIES[name][0]) if name in STRATEGIES else {}
    options.setdefault("strategy", name)
    options.update(overrides)
    return StrategyConfig(**options)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory, review_frame) -> str:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    review_frame(40).to_csv(path, index=False)  # 30 training rows: 2 steps of batch 16
    return str(path)


def grid_config(run_config, model_path: str, data: str, tmp_path, strategy: str):
    """The grid's run: ``strategy`` with its grid options on a tiny model, into ``tmp_path / "run"``."""
    return run_config(
        model_path, data, tmp_path / "run", strategy=strategy_config(strategy), learning_rate=LEARNING_RATE
    )


@pytest.mark.parametrize(("strategy", "model_fixture"), GRID)
def test_grid(strategy, model_fixture, small_csv, tmp_path, request, run_config):
    model_path = request.getfixturevalue(model_fixture)
    recorder = Recorder()
    try:
        result = train(
            grid_config(run_config, model_path, small_csv, tmp_path, strategy), callbacks=[recorder]
        )
    except ModelError as exc:
        # A release pair that cannot run this cell says so, naming the versions (see PrefixStrategy.check).
        if "does not support" in str(exc) and "with transformers" in str(exc):
            pytest.skip(str(exc))
        raise
    run = result.output
    assert recorder.steps == 2

    # exactly the expected parameters train
    expected = STRATEGIES[strategy][1]
    wrong = [n for n, trains in recorder.trainable.items() if trains != expected(n)]
    assert not wrong, wrong
    assert any(recorder.trainable.values())

    # after 2 steps every trainable tensor changed and every frozen one did not
    for name, trains in recorder.trainable.items():
        changed = not torch.equal(recorder.before[name].cpu(), recorder.after[name])
        assert changed == trains, (name, trains)
    if strategy.startswith("freeze"):  # the base never reaches the Trainer: it must be untouched
        from transformers import AutoModel

        pretrained = AutoModel.from_pretrained(model_path).state_dict()
        for key, value in result.model.base.state_dict().items():
            assert torch.equal(value, pretrained[key]), key
        assert not any(p.requires_grad for p in result.model.base.parameters())

    # trainable vs total parameters are logged and stored
    manifest = json.loads((run / "texttune.json").read_text())
    n_trainable = sum(recorder.before[n].numel() for n, t in recorder.trainable.items() if t)
    assert manifest["trainable_parameters"] == result.trainable_parameters == n_trainable
    assert 0 < manifest["trainable_parameters"] <= manifest["total_parameters"]
    assert manifest["strategy"] == (STRATEGIES[strategy][0].get("strategy") or strategy)
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["trainable_parameters"] == n_trainable

    # a checkpoint's own pooling is used where the strategy can classify from a pooled head
    if model_fixture == "tiny_bert_mean":
        pooled = get_strategy(manifest["strategy"]).pooled_head
        assert manifest["config"]["model"]["pooling"] == ("mean" if pooled else "pooler")
        assert (run / "head.json").is_file() == pooled

    # logits shape and a finite loss from the in-memory model
    memory = Predictor(result.model, Predictor.load(run).tokenizer, Predictor.load(run).manifest)
    batch = memory.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = result.model.eval()(**batch, labels=torch.tensor([1, 0, 1, 0]))
    assert tuple(out.logits.shape) == (4, 2) and math.isfinite(float(out.loss))

    # save -> load gives identical logits; predict works from the saved run
    loaded = Predictor.load(run)
    np.testing.assert_allclose(loaded.logits(TEXTS), memory.logits(TEXTS), rtol=1e-5, atol=1e-6)
    assert [p.label for p in loaded.predict(TEXTS)] == [p.label for p in memory.predict(TEXTS)]
    assert loaded.predict(["good fun"])[0].label in {"negative", "positive"}

    # `texttune evaluate RUN` reproduces the stored validation metrics
    again = evaluate_run(run).metrics
    for key, value in again.items():
        assert stored[key] == value, key


@pytest.mark.parametrize(("strategy", "model_fixture"), sorted(UNSUPPORTED))
def test_unsupported_combinations(strategy, model_fixture, small_csv, tmp_path, request, run_config):
    model_path = request.getfixturevalue(model_fixture)
    with pytest.raises(ModelError, match=UNSUPPORTED[(strategy, model_fixture)]):
        train(grid_config(run_config, model_path, small_csv, tmp_path, strategy))
    assert not (tmp_path / "run").exists()


def test_registry_lists_names_and_refuses_duplicates():
    assert {"full", "freeze", "partial", "lora", "ia3", "prefix", "prompt", "ptuning"} <= set(
        strategy_names()
    )
    with pytest.raises(
        ConfigError, match=r"--strategy 'adapterx' is not known; choose one of auto, freeze, full"
    ):
        StrategyConfig(strategy="adapterx")
    with pytest.raises(ConfigError, match=r"--strategy 'adapterx' is not known; choose one of freeze, full"):
        get_strategy("adapterx")
    with pytest.raises(ValueError, match=r"strategy 'lora' is already registered"):

        @register("lora")
        class Again(Strategy):
            pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"head": "svm"}, r"--head 'svm' is not one of linear, mlp"),
        ({"strategy": "partial"}, r"--strategy partial needs --freeze-layers N"),
        ({"lora_rank": 0}, r"--lora-rank must be positive, got 0"),
        ({"head_dropout": 1.0}, r"--head-dropout must be in \[0, 1\), got 1.0"),
        ({"mlm_probability": 0.0}, r"--mlm-probability must be between 0 and 1, got 0.0"),
        ({"target_modules": " , "}, r"--target-modules must name at least one module"),
    ],
)
def test_strategy_config_validation(options, message):
    with pytest.raises(ConfigError, match=message):
        StrategyConfig(**options)


def test_model_dependent_errors(tiny_bert, small_csv, tmp_path, run_config):
    cases = [
        ({"strategy": "partial", "freeze_layers": 3}, r"--freeze-layers 3 exceeds the model's 2 layers"),
        ({"strategy": "lora", "target_modules": "q_proj"}, r"--target-modules q_proj not found in the model"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            train(
                run_config(
                    tiny_bert,
                    small_csv,
                    tmp_path / "run",
                    strategy=StrategyConfig(**options),
                    learning_rate=LEARNING_RATE,
                )
            )


def test_partial_refuses_a_model_without_a_layer_list():
    from types import SimpleNamespace

    from texttune.strategies.partial import find_layers

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.config = SimpleNamespace(num_hidden_layers=2, model_type="mystery")
    with pytest.raises(ModelError, match=r"cannot find the transformer layers of a 'mystery' model"):
        find_layers(model)


def test_negative_freeze_layers_keeps_top_layers_trainable(tiny_bert):
    from texttune.modeling import build_model

    model = build_model(tiny_bert, task="single_label", label_names=["a", "b"])
    get_strategy("partial").prepare(model, StrategyConfig(strategy="partial", freeze_layers=-1))
    trains = {n: p.requires_grad for n, p in model.named_parameters()}
    assert not trains["bert.encoder.layer.0.attention.self.query.weight"]
    assert trains["bert.encoder.layer.1.attention.self.query.weight"]
    assert not trains["bert.embeddings.word_embeddings.weight"] and trains["classifier.weight"]


def test_freeze_runs_the_base_only_to_cache_features(tiny_bert, small_csv, tmp_path, monkeypatch, run_config):
    from texttune import heads

    calls = []
    original = heads.FrozenBaseClassifier.pooled
    monkeypatch.setattr(
        heads.FrozenBaseClassifier,
        "pooled",
        lambda self, *a, **k: calls.append(1) or original(self, *a, **k),
    )

    class Count(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            self.begin = len(calls)

        def on_train_end(self, *args, **kwargs):
            self.end = len(calls)

    counter = Count()
    options = StrategyConfig(strategy="freeze", head="mlp", head_hidden_size=8)
    config = run_config(
        tiny_bert,
        small_csv,
        tmp_path / "run",
        strategy=options,
        model_options={"pooling": "mean"},
        learning_rate=LEARNING_RATE,
        epochs=5.0,
    )
    result = train(
        config,
        callbacks=[counter],
    )
    assert counter.begin == 2  # one batch of 30 training rows + one of 10 validation rows, before training
    assert counter.end == counter.begin  # 5 epochs and 5 evaluations without a single base forward pass
    assert result.metrics["feature_seconds"] >= 0
    spec = json.loads((result.output / "head.json").read_text())
    assert spec["pooling"] == "mean" and spec["head"] == "mlp"
    (result.output / "head.json").write_text(json.dumps(dict(spec, hidden_size=4)))
    with pytest.raises(ModelError, match=r"head.safetensors does not match head.json; retrain the run"):
        Predictor.load(result.output)


def test_export_merged_lora_and_ia3_load_with_transformers_alone(
    tiny_bert, small_csv, tmp_path, capsys, run_config
):
    import shutil

    from transformers import AutoModelForSequenceClassification

    base = tmp_path / "base"
    shutil.copytree(tiny_bert, base)
    for strategy in ("lora", "ia3"):
        run = train(
            run_config(
                str(base),
                small_csv,
                tmp_path / strategy,
                strategy=strategy_config(strategy),
                learning_rate=LEARNING_RATE,
            )
        ).output
        assert main(["export", str(run), "--output", str(tmp_path / "plain"), "--quiet"]) == 2
        assert "pass --merge" in capsys.readouterr().err
        out = tmp_path / f"{strategy}-merged"
        assert main(["export", str(run), "--merge", "--output", str(out), "--quiet"]) == 0
        assert not (out / "adapter_config.json").exists() and (out / "tokenizer.json").is_file()
        plain = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
        assert plain.config.id2label == {0: "negative", 1: "positive"}
        predictor = Predictor.load(run)
        batch = predictor.tokenizer(TEXTS[:1], return_tensors="pt")
        with torch.inference_mode():
            np.testing.assert_allclose(
                plain(**batch).logits.numpy(), predictor.logits(TEXTS[:1]), rtol=1e-4, atol=1e-5
            )

    shutil.rmtree(base)  # an adapter run needs its base model; the merged export does not
    with pytest.raises(ModelError, match=r"the ia3 run .* needs its base model .*base'.*restore it"):
        Predictor.load(tmp_path / "ia3")
    assert AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "ia3-merged")) is not None


def test_export_refuses_prompt_runs(tiny_bert, small_csv, tmp_path, capsys, run_config):
    run = train(
        run_config(
            tiny_bert,
            small_csv,
            tmp_path / "run",
            strategy=strategy_config("prompt"),
            learning_rate=LEARNING_RATE,
        )
    ).output
    assert main(["export", str(run), "--merge", "--output", str(tmp_path / "out"), "--quiet"]) == 2
    assert "a 'prompt' run cannot be exported as a plain transformers model" in capsys.readouterr().err


def test_pretrain_then_train_and_mlm_first(tiny_bert, small_csv, tmp_path, capsys, review_frame, run_config):
    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(review_frame(40, seed=3)["text"]) + "\n\n", encoding="utf-8")
    adapted = tmp_path / "adapted"
    args = ["pretrain", "--data", str(corpus), "--model", tiny_bert, "--output", str(adapted)]
    args += ["--whole-word-mask", "--batch-size", "16", "--use-cpu", "--quiet"]
    assert main(args) == 0
    assert "model saved to" in capsys.readouterr().out
    assert (adapted / "model.safetensors").is_file() and (adapted / "tokenizer.json").is_file()
    from safetensors.torch import load_file

    before, after = load_file(f"{tiny_bert}/model.safetensors"), load_file(str(adapted / "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[key], after["bert." + key])  # the masked-LM training changed the encoder

    out = tmp_path / "run"
    train_args = ["train", "--data", small_csv, "--model", str(adapted), "--output", str(out)]
    train_args += [
        "--epochs",
        "1",
        "--max-length",
        "32",
        "--no-progress",
        "--use-cpu",
        "--quiet",
        "--strategy",
        "full",
    ]
    assert main(train_args) == 0
    assert main(["export", str(out), "--output", str(tmp_path / "exported"), "--quiet"]) == 0  # full: as is
    assert (tmp_path / "exported" / "model.safetensors").is_file()

    options = StrategyConfig(strategy="lora", mlm_first=str(corpus), mlm_epochs=1.0)
    result = train(
        run_config(tiny_bert, small_csv, tmp_path / "both", strategy=options, learning_rate=LEARNING_RATE)
    )
    assert (result.output / "mlm_model" / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".both*"))
    assert json.loads((result.output / "texttune.json").read_text())["config"]["strategy"]["mlm_first"]
    memory = Predictor(
        result.model, Predictor.load(result.output).tokenizer, Predictor.load(result.output).manifest
    )
    np.testing.assert_allclose(Predictor.load(result.output).logits(TEXTS), memory.logits(TEXTS), atol=1e-6)


def test_pretraining_takes_the_fine_tuning_precision(tiny_bert, small_csv, tmp_path, capsys, monkeypatch):
    from texttune import pretraining
    from texttune.config import PretrainConfig, RunConfig
    from texttune.training import _continue_pretraining

    def arguments(**options):
        config = PretrainConfig(data="texts.txt", output=str(tmp_path / "o"), use_cpu=True, **options)
        return pretraining._arguments(config, tmp_path / "checkpoints", progress=False)

    assert arguments(precision="bf16").bf16 and arguments(precision="bf16").use_cpu
    assert not arguments(precision="fp32").bf16
    corpus = tmp_path / "domain.txt"
    corpus.write_text("good fun\nawful plot\n", encoding="utf-8")
    args = ["pretrain", "--data", str(corpus), "--model", tiny_bert, "--output", str(tmp_path / "o")]
    assert main([*args, "--precision", "fp16", "--use-cpu", "--quiet"]) == 2
    assert "--precision fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

    seen = {}
    monkeypatch.setattr(pretraining, "pretrain", lambda *args, **options: seen.update(options))
    config = RunConfig.from_dict(
        {"data": small_csv, "model": tiny_bert, "mlm_first": str(corpus), "precision": "fp32"}
    )
    _continue_pretraining(config, tiny_bert, tmp_path / "run")
    assert seen["precision"] == "fp32" and seen["micro_batch_tokens"] == config.train.micro_batch_tokens


def test_pretraining_keeps_the_checkpoints_pooling(
    tiny_bert_mean, tiny_bert, small_csv, tmp_path, run_config
):
    from texttune import pretrain
    from texttune.modeling import checkpoint_pooling

    corpus = tmp_path / "domain.txt"
    corpus.write_text("good fun\nawful plot\nfine acting\n", encoding="utf-8")
    adapted = pretrain(str(corpus), tiny_bert_mean, tmp_path / "adapted", progress=False, use_cpu=True).output
    assert checkpoint_pooling(str(adapted)) == "mean"
    assert not (adapted / "2_Normalize").exists()  # the pooling record only
    plain = pretrain(str(corpus), tiny_bert, tmp_path / "plain", progress=False, use_cpu=True).output
    assert checkpoint_pooling(str(plain)) is None and not (plain / "modules.json").exists()

    options = StrategyConfig(strategy="full", mlm_first=str(corpus), mlm_epochs=1.0)
    run = train(run_config(tiny_bert_mean, small_csv, tmp_path / "run", strategy=options)).output
    assert json.loads((run / "head.json").read_text())["pooling"] == "mean"  # not the pooler


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_distilbert"])
def test_masked_lm_scores_only_the_masked_positions(model, request):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

    from texttune.pretraining import logits_at_masked_positions_only

    path = request.getfixturevalue(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3, seed=0)
    batch = collate([tokenizer(t) for t in TEXTS * 3])
    masked = int((batch["labels"] != -100).sum())
    assert 0 < masked < batch["labels"].numel()

    def loss_and_gradients(hooked: bool):
        torch.manual_seed(0)
        mlm = AutoModelForMaskedLM.from_pretrained(path)
        scored = []
        decoder = mlm.get_output_embeddings()
        decoder.register_forward_hook(lambda module, args, output: scored.append(output.shape[:-1].numel()))
        hooks = logits_at_masked_positions_only(mlm) if hooked else []
        loss = mlm(**batch).loss
        loss.backward()
        for hook in hooks:
            hook.remove()
        return loss, {n: p.grad for n, p in mlm.named_parameters() if p.grad is not None}, scored[0]

    loss, gradients, scored = loss_and_gradients(hooked=True)
    plain_loss, plain_gradients, plain_scored = loss_and_gradients(hooked=False)
    assert scored == masked and plain_scored == batch["labels"].numel()
    torch.testing.assert_close(loss, plain_loss)
    assert gradients.keys() == plain_gradients.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, plain_gradients[name], atol=1e-6, rtol=1e-4, msg=name)


def test_pretrain_refuses_decoder_models(tiny_gpt2, tmp_path, capsys):
    corpus = tmp_path / "domain.txt"
    corpus.write_text("good fun\nawful plot\n", encoding="utf-8")
    assert (
        main(["pretrain", "--data", str(corpus), "--model", tiny_gpt2, "--output", str(tmp_path / "o")]) == 2
    )
    assert "has no mask token, so it cannot do masked-LM pretraining" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert (
        main(["pretrain", "--data", str(empty), "--model", tiny_gpt2, "--output", str(tmp_path / "o")]) == 2
    )
    assert "holds no text to pretrain on" in capsys.readouterr().err


def test_cli_strategy_flags_and_unknown_strategy(tiny_gpt2, small_csv, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", small_csv, "--model", tiny_gpt2, "--output", str(out), "--epochs", "1"]
    args += ["--max-length", "32", "--no-progress", "--use-cpu", "--quiet"]
    assert main([*args, "--strategy", "lora", "--lora-rank", "2", "--target-modules", "c_attn"]) == 0
    manifest = json.loads((out / "texttune.json").read_text())
    assert manifest["strategy"] == "lora" and manifest["config"]["strategy"]["lora_rank"] == 2
    assert main(["predict", str(out), "good fun", "--quiet"]) == 0
    assert main([*args, "--overwrite", "--strategy", "adapterx"]) == 2
    assert "--strategy 'adapterx' is not known; choose one of" in capsys.readouterr().err


def test_pretrain_data_errors(tmp_path, capsys):
    from texttune.errors import DataError
    from texttune.pretraining import read_texts

    with pytest.raises(DataError, match=r"text file not found: .*missing.txt \(check --data\)"):
        read_texts(str(tmp_path / "missing.txt"))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt is not utf-8 text .*; pass --encoding"):
        read_texts(str(latin))
    assert read_texts(str(latin), encoding="latin-1") == ["caf\xe9 cr\xe8me"]
    assert main(["pretrain", "--data", str(latin), "--output", str(tmp_path / "o"), "--epochs", "0"]) == 2
    assert "--epochs must be positive, got 0.0" in capsys.readouterr().err


def test_whole_word_masking_masks_every_piece_of_a_word(tiny_bert):
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    from texttune.pretraining import _whole_word_collator

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = ["brilliantly superbness tediousness", "awfully boring cleverness and lovelyish plots"] * 8
    rows = [tokenizer(t, return_offsets_mapping=True, return_special_tokens_mask=True) for t in texts]
    base = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5, whole_word_mask=True, seed=0)
    batch = _whole_word_collator(base, tokenizer)([dict(r) for r in rows])
    assert (batch["labels"] != -100).any()
    for i, text in enumerate(texts):
        words = tokenizer(text).word_ids()
        masked = (batch["labels"][i, : len(words)] != -100).tolist()
        by_word: dict[int, set[bool]] = {}
        for word, flag in zip(words, masked):
            if word is not None:
                by_word.setdefault(word, set()).add(flag)
        assert all(len(flags) == 1 for flags in by_word.values()), (text, words, masked)
        assert any(len([w for w in words if w == k]) > 1 for k in by_word)  # some words have several pieces


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "learning_rate", "epochs"),
    [({"strategy": "freeze", "head": "mlp"}, 1e-3, 10.0), ({"strategy": "lora"}, 1e-3, 3.0)],
)
def test_minilm_strategies_learn_sms_spam(options, learning_rate, epochs, tmp_path):
    config = RunConfig(
        data=DataConfig(data="sms_spam", max_train_samples=800, max_eval_samples=300),
        model=ModelConfig(model="minilm", max_length=64),
        train=TrainConfig(
            output=str(tmp_path / "run"), epochs=epochs, learning_rate=learning_rate, progress=False
        ),
        strategy=StrategyConfig(**options),
    )
    result = train(config)
    assert result.metrics["accuracy"] > 0.9
    assert result.trainable_parameters < 0.01 * result.total_parameters
    memory = Predictor(
        result.model, Predictor.load(result.output).tokenizer, Predictor.load(result.output).manifest
    )
    texts = ["WINNER!! Claim your free prize now, text WIN to 80086", "see you at lunch tomorrow?"]
    np.testing.assert_allclose(Predictor.load(result.output).logits(texts), memory.logits(texts), atol=1e-5)


def test_merged_export_of_a_pooled_run_says_how_to_load_it(tiny_bert_mean, small_csv, tmp_path, run_config):
    from texttune.modeling import load_classifier

    run = train(
        run_config(tiny_bert_mean, small_csv, tmp_path / "run", strategy=strategy_config("lora"))
    ).output
    out = tmp_path / "merged"
    assert main(["export", str(run), "--merge", "--output", str(out), "--quiet"]) == 0
    assert not (out / "adapter_config.json").exists()
    assert "load_classifier" in (out / "README.md").read_text() and (out / "head.json").is_file()
    merged = load_classifier(out)
    predictor = Predictor.load(run)
    batch = predictor.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        np.testing.assert_allclose(
            merged(**batch).logits.numpy(), predictor.logits(TEXTS), rtol=1e-4, atol=1e-5
        )
    assert merged.config.id2label == {0: "negative", 1: "positive"}


def test_setfit_pairs_follow_the_labels():
    from texttune.strategies.setfit import ROUNDS, sample_pairs

    labels = [0, 0, 1, 1, 2, 2]
    first, second, similarity = sample_pairs(labels, 10_000, np.random.default_rng(0))
    assert len(first) == len(labels) * 2 * ROUNDS
    for a, b, same in zip(first, second, similarity):
        assert same == float(labels[a] == labels[b])
    assert similarity.count(1.0) == similarity.count(0.0)
    capped = sample_pairs(labels, 50, np.random.default_rng(0))
    assert all(len(values) == 50 for values in capped)


def test_setfit_refuses_other_tasks(tiny_bert, tmp_path, run_config):
    import pandas as pd

    data = tmp_path / "scores.csv"
    pd.DataFrame({"text": ["good", "bad", "fine", "meh"] * 5, "label": [0.9, 0.1, 0.6, 0.4] * 5}).to_csv(
        data, index=False
    )
    config = run_config(tiny_bert, str(data), tmp_path / "run", strategy=strategy_config("setfit"))
    with pytest.raises(
        ModelError, match=r"--strategy setfit trains single-label classifiers; use --strategy full"
    ):
        train(config)
    assert not (tmp_path / "run").exists()
