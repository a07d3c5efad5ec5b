"""Kind from what the files state: card task, library, head class, family; never the name."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo
from agent.detect.hfconfig import CardInfo, ConfigInfo
from agent.detect.kind import (
    EMBEDDING,
    KINDS,
    LLM,
    OTHER,
    SPEECH,
    VISION,
    Evidence,
    class_kind,
    is_numeric_data,
    model_kind,
    with_kind,
)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (("LlamaForCausalLM",), LLM),
        (("Qwen2ForCausalLM",), LLM),
        (("GPT2LMHeadModel",), LLM),
        (("T5ForConditionalGeneration",), LLM),
        (("LlavaForConditionalGeneration",), LLM),
        (("WhisperForConditionalGeneration",), SPEECH),
        (("Wav2Vec2ForCTC",), SPEECH),
        (("SpeechT5ForTextToSpeech",), SPEECH),
        (("ViTForImageClassification",), VISION),
        (("CLIPModel",), VISION),
        (("DetrForObjectDetection",), VISION),
        (("BertModel",), EMBEDDING),
        (("XLMRobertaModel",), EMBEDDING),
        (("NomicBertModel",), EMBEDDING),
        (("BertForSequenceClassification",), OTHER),
        (("DistilBertForTokenClassification",), OTHER),
        (("Sequential",), None),
        ((), None),
    ],
)
def test_kind_from_config_classes(classes: tuple[str, ...], expected: str | None) -> None:
    assert model_kind(Evidence(classes=classes)) == expected


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("llama", LLM),
        ("qwen3moe", LLM),
        ("gemma3", LLM),
        ("bert", EMBEDDING),
        ("nomic-bert", EMBEDDING),
        ("jina-bert-v2", EMBEDDING),
        ("clip", VISION),
        ("whisper", SPEECH),
        ("silero", SPEECH),
        ("xlm_roberta", EMBEDDING),
        ("Sequential", None),
    ],
)
def test_kind_from_gguf_architecture_or_model_type(family: str, expected: str | None) -> None:
    assert model_kind(Evidence(families=(family,))) == expected


def test_the_model_card_task_outranks_the_classes() -> None:
    # e5-mistral: a Mistral body published as an embedding model.
    mistral = ("MistralModel",)
    assert model_kind(Evidence(classes=mistral)) == LLM
    assert model_kind(Evidence(pipeline_tag="feature-extraction", classes=mistral)) == EMBEDDING
    assert model_kind(Evidence(pipeline_tag="automatic-speech-recognition")) == SPEECH
    assert model_kind(Evidence(pipeline_tag="text-to-image")) == VISION


def test_sentence_transformers_is_embedding_whatever_the_head() -> None:
    evidence = Evidence(library_name="sentence-transformers", classes=("MPNetForMaskedLM",))
    assert model_kind(evidence) == EMBEDDING


def test_an_unknown_task_falls_through_to_the_classes() -> None:
    evidence = Evidence(pipeline_tag="something-new", classes=("GemmaForCausalLM",))
    assert model_kind(evidence) == LLM


def test_class_kind_reads_only_the_head() -> None:
    assert class_kind("WhisperForConditionalGeneration") == LLM  # the family decides speech
    assert class_kind("BertModel") is None


names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", max_size=40
)


@given(st.builds(Evidence, names, names, st.tuples(names, names), st.tuples(names)))
def test_any_evidence_gives_a_known_kind_or_none(evidence: Evidence) -> None:
    assert model_kind(evidence) in (*KINDS, None)


NUMERIC = ModelInfo(format="numpy", parameters=4096, quantization="F64", tensor_count=1)
BERT_CONFIG = ConfigInfo(architecture="BertModel", model_type="bert", is_model=True)


def test_a_plain_numeric_array_alone_is_data() -> None:
    assert is_numeric_data(NUMERIC, None, None)
    assert is_numeric_data(dataclasses.replace(NUMERIC, risk="none"), None, None)


@pytest.mark.parametrize("risk", ["dangerous", "suspicious"])
def test_a_risky_array_is_never_dropped(risk: str) -> None:
    info = dataclasses.replace(NUMERIC, risk=risk, unsafe=risk == "dangerous")
    assert not is_numeric_data(info, None, None)


def test_object_arrays_and_arrays_in_model_folders_are_kept() -> None:
    objects = dataclasses.replace(NUMERIC, unsafe_reasons=("numpy object array (pickle)",))
    assert not is_numeric_data(objects, None, None)
    assert not is_numeric_data(NUMERIC, BERT_CONFIG, None)
    assert not is_numeric_data(NUMERIC, None, CardInfo(license="mit"))
    # A config.json of some other program does not make a model folder.
    assert is_numeric_data(NUMERIC, ConfigInfo(is_model=False), None)
    assert not is_numeric_data(ModelInfo(format="safetensors"), None, None)


def test_with_kind_uses_config_and_card_and_keeps_a_parsers_kind() -> None:
    weights = ModelInfo(format="safetensors", parameters=10)
    assert with_kind(weights, BERT_CONFIG, None).kind == EMBEDDING
    card = CardInfo(pipeline_tag="text-classification")
    assert with_kind(weights, BERT_CONFIG, card).kind == OTHER
    assert with_kind(weights, None, None).kind is None
    whisper = ModelInfo(format="ggml", architecture="llama", kind=SPEECH)
    assert with_kind(whisper, None, None).kind == SPEECH
    gguf = ModelInfo(format="gguf", architecture="qwen2")
    assert with_kind(gguf, None, None).kind == LLM
