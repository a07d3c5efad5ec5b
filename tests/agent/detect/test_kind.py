"""Kind from what the files state: card task, library, head class, family; never the name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.kind import (
    EMBEDDING,
    KINDS,
    LLM,
    OTHER,
    SPEECH,
    VISION,
    Evidence,
    class_kind,
    model_kind,
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
