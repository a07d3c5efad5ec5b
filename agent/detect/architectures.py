"""One architecture name across formats: the family as config.json's `model_type` and GGUF's
`general.architecture` spell it, and the class name (`LlamaForCausalLM`) kept apart.

A documented table (docs/detection.md): GGUF spellings that differ from transformers', and
class names whose stem is not their family.
"""

from __future__ import annotations

import re

MAX_NAME = 128

# transformers' model_type values (its auto-mappings for causal and image-text-to-text models,
# plus common encoders), the spelling a family takes when a class name or a GGUF header names
# it without separators.
_FAMILY_WORDS = """
    afmoe albert apertus apertus1p5 arcee aria axk1 axk2 aya_vision baichuan bailing_hybrid
    bamba bart beam bert bert-generation big_bird bigbird_pegasus biogpt bitnet blenderbot
    blenderbot-small blip blip-2 bloom blt camembert chameleon chatglm clip codegen cohere
    cohere2 cohere2_moe cohere2_vision cohere_compass cosmos3_edge cosmos3_omni cpmant ctrl
    cwm data2vec-text dbrx deberta deberta-v2 deepseek deepseek_ocr2 deepseek_v2 deepseek_v3
    deepseek_v32 deepseek_v4 deepseek_vl deepseek_vl_hybrid detr diffllama diffusion_gemma
    dinov2 distilbert doge dory dots1 dots3_note electra emu3 ergo ernie ernie4_5
    ernie4_5_moe ernie4_5_vl_moe evolla exaone exaone4 exaone4_5 exaone_moe falcon falcon_h1
    falcon_mamba fast_vlm flex_olmo flint florence2 fuyu gemma gemma2 gemma3 gemma3n gemma4
    gemma4_assistant gemma4_unified gemma4_unified_assistant git glm glm4 glm46v glm4_moe
    glm4_moe_lite glm4v glm4v_moe glm5_next glm_moe_dsa glm_ocr glmga got_ocr2 gpt-sw3 gpt2
    gpt_bigcode gpt_neo gpt_neox gpt_neox_japanese gpt_oss gptj granite granite4_vision
    granite_docling granite_swa granitemoe granitemoe_swa granitemoehybrid granitemoeshared
    helium hubert hunyuan_v1_dense hunyuan_v1_moe hunyuan_vl hy_v3 hy_v4 hy_v4_vl
    hyperclovax hyperclovax_vision_v2 idefics idefics2 idefics3 inkling2 inkling2_loop
    inkling_mm_model instructblip instructblipvideo internlm2 internlm3 internvl iquestcoder
    jais2 jamba janus jetmoe kimi_k25 kimi_linear kolibri1 kolibri1_1 kosmos-2 kosmos-2.5
    laguna lara_mini lfm2 lfm2_moe lfm2_vl lfm3 lfm3_vl lighton_ocr llama llama4 llava
    llava_next llava_next_video llava_onevision llava_onevision1_5 longcat_flash mamba
    mamba2 marian mbart megatron-bert mellum mimo_v2_flash minicpm minicpm3 minicpm5_moe
    minicpm_ocr minicpmv4_6 minicpmv4_7 minimax minimax_m2 minimax_m3_vl ministral
    ministral3 mistral mistral3 mistral4 mistral_large4 mixtral mllama modernbert
    modernbert-decoder molmo2 moshi moss_transcribe_diarize mpt mt5 muse_glimmer muse_spark
    musicgen musicgen_melody mvp nanochat nemotron nemotron_h nemotron_h_omni nomic_bert
    olmo olmo2 olmo3 olmo_hybrid olmoe openai-gpt opt ovis2 ovis2_5 paddleocr_vl paligemma
    param2moe pegasus perception_lm persimmon phi phi3 phi4_multimodal phimoe pi0 pi05
    pix2struct pixtral plbart pp_chart2table pp_formulanet prophetnet qianfan_ocr qwen qwen2
    qwen2_5_omni_thinker qwen2_5_vl qwen2_moe qwen2_vl qwen3 qwen3_5 qwen3_5_moe qwen3_moe
    qwen3_next qwen3_omni_moe_thinker qwen3_vl qwen3_vl_moe qwen4_exp recurrent_gemma
    reformer rembert roberta roberta-prelayernorm roc_bert roformer rwkv sam sarvam_mla
    sarvam_moe seed_oss segformer shieldgemma2 siglip siglip2 smollm3 smolvlm solar_open
    stablelm starcoder2 step3p7 t5 t5gemma2 trocr udop umt5 unlimited_ocr vaultgemma
    video_llama_3 video_llava vipllava vision-encoder-decoder vit wav2vec2 whisper xglm xlm
    xlm-roberta xlm-roberta-xl xlnet xlstm xmod yolos youtu zamba zamba2 zaya
"""
FAMILIES = frozenset(_FAMILY_WORDS.split())

# GGUF `general.architecture` -> model_type, where llama.cpp spells a family its own way.
# deepseek2 stays: llama.cpp writes it for both deepseek_v2 and deepseek_v3.
GGUF_ALIASES: dict[str, str] = {
    "command-r": "cohere",
    "gptneox": "gpt_neox",
    "granitehybrid": "granitemoehybrid",
    "hunyuan-dense": "hunyuan_v1_dense",
    "hunyuan-moe": "hunyuan_v1_moe",
    "modern-bert": "modernbert",
    "nemotron_h_moe": "nemotron_h",
    "phi2": "phi",
    "qwen35": "qwen3_5",
    "qwen35moe": "qwen3_5_moe",
    "starcoder": "gpt_bigcode",
    "t5encoder": "t5",
}

# Class names whose stem is not their family's name.
CLASS_FAMILIES: dict[str, str] = {
    "RWForCausalLM": "falcon",
    "GPT2LMHeadModel": "gpt2",
    "HunYuanDenseV1ForCausalLM": "hunyuan_v1_dense",
    "HunYuanMoEV1ForCausalLM": "hunyuan_v1_moe",
    "MiniMaxM3VLForCausalLM": "minimax_m3_vl",
    "MiniMaxM3SparseForConditionalGeneration": "minimax_m3_vl",
    "Glm46VForConditionalGeneration": "glm46v",
    "NemotronH_Omni_Reasoning_V3": "nemotron_h_omni",
    "XLMWithLMHeadModel": "xlm",
    "ReformerModelWithLMHead": "reformer",
    "BertGenerationDecoder": "bert-generation",
    "Speech2TextForConditionalGeneration": "speech_to_text",
}

# Head suffixes of transformers' classes; the longest that matches is removed.
_HEADS = re.compile(
    r"(For[A-Z][A-Za-z]*|LMHeadModel|WithLMHead|TextModel|VisionModel|Model|Decoder|Encoder)$"
)
_CLASS = re.compile(r"[A-Z][A-Za-z0-9_]*")
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_BY_SQUEEZED = {re.sub(r"[^a-z0-9]", "", f): f for f in sorted(FAMILIES)}


def _squeeze(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def family(name: str | None) -> str | None:
    """The canonical family for a `model_type` or GGUF architecture: GGUF aliases resolved,
    the `_text` half of a multimodal family named after the whole (gemma3_text -> gemma3)."""
    if not name:
        return None
    value = name.strip()[:MAX_NAME]
    key = GGUF_ALIASES.get(value.lower(), value.lower())
    if key.endswith("_text") and len(key) > len("_text"):
        value = key = key.removesuffix("_text")
    # A name we do not know is kept as its source wrote it (CoreML's mlProgram).
    return _BY_SQUEEZED.get(_squeeze(key)) or GGUF_ALIASES.get(value.lower()) or value or None


def is_class_name(name: str) -> bool:
    """A transformers-style class name (LlamaForCausalLM), as opposed to a family (llama)."""
    return bool(_CLASS.fullmatch(name)) and name != name.lower()


def family_of_class(name: str) -> str | None:
    """The family of a class name: the table, else its stem in transformers' spelling; None
    for a class with no transformers head suffix whose stem is no family we know (TinyNet)."""
    if name in CLASS_FAMILIES:
        return CLASS_FAMILIES[name]
    # The text half of a multimodal family (AriaTextForCausalLM) is named after the whole.
    full = _HEADS.sub("", name)
    stem = full.removesuffix("Text")
    known = _BY_SQUEEZED.get(_squeeze(full)) or _BY_SQUEEZED.get(_squeeze(stem or name))
    if known or not stem or stem == name:
        return known
    return _WORD_BREAK.sub("_", stem).lower()


def split(value: str | None) -> tuple[str | None, str | None]:
    """(family, class) for one value that may be either, as metadata keys hold them."""
    if not value:
        return None, None
    value = value.strip()[:MAX_NAME]
    if is_class_name(value):
        return family_of_class(value), value
    return family(value), None


def resolve(
    family_names: tuple[str | None, ...], class_names: tuple[str | None, ...]
) -> tuple[str | None, str | None]:
    """(family, class) from the sources in order of trust: the first family named, else the
    family of the first class; a class-shaped value among the families counts as a class."""
    families: list[str] = []
    classes = [c.strip()[:MAX_NAME] for c in class_names if c and c.strip()]
    for value in family_names:
        fam, cls = split(value)
        if cls:
            classes.append(cls)
        elif fam:
            families.append(fam)
    cls = classes[0] if classes else None
    fam = families[0] if families else (family_of_class(cls) if cls else None)
    return fam, cls
