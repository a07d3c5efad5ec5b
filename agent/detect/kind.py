"""What a model does (`ai.model.kind`: llm, embedding, speech, vision, other), from what its
files state: a model card's task, the class and family its config or header names.

Pure, and never from a file name: a name says what someone called the file, not what it is.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent.detect.formats import ModelInfo
from agent.detect.hfconfig import CardInfo, ConfigInfo

LLM = "llm"
EMBEDDING = "embedding"
SPEECH = "speech"
VISION = "vision"
OTHER = "other"
KINDS = (LLM, EMBEDDING, SPEECH, VISION, OTHER)


@dataclass(frozen=True)
class Evidence:
    """What the files say, each optional; the first of these that decides wins, in this order."""

    pipeline_tag: str | None = None  # the model card's task: the author's own statement
    library_name: str | None = None  # the model card's library: sentence-transformers
    classes: tuple[str, ...] = ()  # LlamaForCausalLM, BertModel (config.json architectures)
    families: tuple[str, ...] = ()  # llama, bert, whisper (GGUF general.architecture, model_type)


# Hugging Face task names (the Hub's pipeline_tag vocabulary) -> kind.
PIPELINE_TAGS: dict[str, str] = {
    **dict.fromkeys(
        ("text-generation", "text2text-generation", "conversational", "image-text-to-text"), LLM
    ),
    **dict.fromkeys(("visual-question-answering", "document-question-answering"), LLM),
    **dict.fromkeys(("feature-extraction", "sentence-similarity"), EMBEDDING),
    **dict.fromkeys(
        (
            "automatic-speech-recognition",
            "text-to-speech",
            "text-to-audio",
            "audio-to-audio",
            "audio-classification",
            "voice-activity-detection",
        ),
        SPEECH,
    ),
    **dict.fromkeys(
        (
            "image-classification",
            "object-detection",
            "image-segmentation",
            "depth-estimation",
            "text-to-image",
            "image-to-image",
            "image-to-text",
            "zero-shot-image-classification",
            "zero-shot-object-detection",
            "image-feature-extraction",
            "mask-generation",
            "unconditional-image-generation",
            "video-classification",
            "text-to-video",
        ),
        VISION,
    ),
    **dict.fromkeys(
        (
            "text-classification",
            "token-classification",
            "question-answering",
            "fill-mask",
            "zero-shot-classification",
            "translation",
            "summarization",
            "table-question-answering",
            "tabular-classification",
            "tabular-regression",
            "reinforcement-learning",
            "time-series-forecasting",
        ),
        OTHER,
    ),
}

# Libraries whose models are one kind whatever their classes say.
LIBRARIES: dict[str, str] = {
    "sentence-transformers": EMBEDDING,
    "diffusers": VISION,
    "timm": VISION,
    "open_clip": VISION,
    "ultralytics": VISION,
    "mlx-lm": LLM,
    "nemo": SPEECH,
    "espnet": SPEECH,
    "speechbrain": SPEECH,
    "pyannote-audio": SPEECH,
}

# Class-name endings (transformers' head naming) -> kind. Speech and vision families override
# the generic generation heads below: WhisperForConditionalGeneration transcribes.
CLASS_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ForSpeechSeq2Seq", SPEECH),
    ("ForCTC", SPEECH),
    ("ForAudioClassification", SPEECH),
    ("ForAudioFrameClassification", SPEECH),
    ("ForAudioXVector", SPEECH),
    ("ForTextToSpeech", SPEECH),
    ("ForTextToWaveform", SPEECH),
    ("ForImageClassification", VISION),
    ("ForObjectDetection", VISION),
    ("ForSemanticSegmentation", VISION),
    ("ForInstanceSegmentation", VISION),
    ("ForUniversalSegmentation", VISION),
    ("ForDepthEstimation", VISION),
    ("ForMaskedImageModeling", VISION),
    ("ForZeroShotObjectDetection", VISION),
    ("ForImageTextRetrieval", VISION),
    ("VisionModel", VISION),
    ("ForCausalLM", LLM),
    ("LMHeadModel", LLM),
    ("ForConditionalGeneration", LLM),
    ("ForSequenceClassification", OTHER),
    ("ForTokenClassification", OTHER),
    ("ForQuestionAnswering", OTHER),
    ("ForMultipleChoice", OTHER),
    ("ForMaskedLM", OTHER),
    ("ForPreTraining", OTHER),
    ("ForNextSentencePrediction", OTHER),
)

# Families (GGUF general.architecture, config.json model_type, a class's stem) -> kind.
# Encoders listed as embedding are embedding models when nothing names a task head.
FAMILIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "llama", "llama4", "mistral", "mistral3", "mixtral", "qwen", "qwen2", "qwen2moe",
            "qwen3", "qwen3moe", "qwen2vl", "qwen25vl", "gemma", "gemma2", "gemma3", "gemma3n",
            "phi", "phi2", "phi3", "phimoe", "gpt2", "gptj", "gpt_neox", "gptneox", "gpt_oss",
            "gpt-oss", "falcon", "falcon_h1", "mpt", "bloom", "starcoder", "starcoder2",
            "gpt_bigcode", "stablelm", "baichuan", "internlm2", "deepseek", "deepseek2",
            "deepseek_v2", "deepseek_v3", "chatglm", "glm4", "glm4moe", "command-r", "cohere",
            "cohere2", "olmo", "olmo2", "olmoe", "granite", "granitemoe", "exaone", "minicpm",
            "minicpm3", "mamba", "mamba2", "rwkv", "rwkv6", "rwkv7", "jamba", "dbrx", "arctic",
            "opt", "codegen", "orion", "xverse", "nemotron", "llava", "mllama", "smollm3",
            "ernie4_5", "hunyuan", "t5", "mt5", "bart", "mbart", "plamo", "bitnet", "openelm",
        ),
        LLM,
    ),
    **dict.fromkeys(
        (
            "bert", "nomic-bert", "nomic_bert", "nomic-bert-moe", "jina-bert-v2", "roberta",
            "xlm-roberta", "xlm_roberta", "distilbert", "mpnet", "modernbert", "electra",
            "deberta", "deberta-v2", "albert", "camembert", "t5encoder", "new", "gte",
            "bge", "e5", "neo-bert", "neobert",
        ),
        EMBEDDING,
    ),
    **dict.fromkeys(
        (
            "whisper", "wav2vec2", "wav2vec2-bert", "hubert", "wavlm", "speecht5", "sew",
            "sew-d", "unispeech", "unispeech-sat", "data2vec-audio", "seamless_m4t",
            "seamless_m4t_v2", "encodec", "bark", "vits", "silero", "parakeet", "moonshine",
            "wavtokenizer-dec", "outetts", "kokoro", "mimi", "dac",
        ),
        SPEECH,
    ),
    **dict.fromkeys(
        (
            "vit", "clip", "siglip", "siglip2", "convnext", "convnextv2", "resnet", "detr",
            "yolo", "yolos", "swin", "swinv2", "deit", "beit", "dinov2", "sam", "segformer",
            "mobilenet_v1", "mobilenet_v2", "mobilevit", "efficientnet", "regnet", "levit",
            "dpt", "mask2former", "maskformer", "owlvit", "owlv2", "blip", "stable-diffusion",
            "unet", "sdxl", "flux", "sd3", "depth_anything", "upernet", "dino",
        ),
        VISION,
    ),
}  # fmt: skip

_BY_FAMILY = {re.sub(r"[-_]", "", k): v for k, v in FAMILIES.items()}
_STEM = re.compile(r"^([A-Z][A-Za-z0-9]*?)(Model|For[A-Z][A-Za-z]*|LMHeadModel)$")


def model_kind(evidence: Evidence) -> str | None:
    """The kind the evidence states, or None when nothing in it decides."""
    tag = (evidence.pipeline_tag or "").strip().lower()
    if tag in PIPELINE_TAGS:
        return PIPELINE_TAGS[tag]
    library = (evidence.library_name or "").strip().lower()
    if library in LIBRARIES:
        return LIBRARIES[library]
    families = [_family(f) for f in evidence.families if f]
    families += [_family(stem) for stem in _stems(evidence.classes)]
    family_kind = next((_BY_FAMILY[f] for f in families if f in _BY_FAMILY), None)
    head = next((k for k in map(class_kind, evidence.classes) if k is not None), None)
    if family_kind in (SPEECH, VISION):
        return family_kind  # WhisperForConditionalGeneration, CLIPModel
    if head is not None:
        return head
    return family_kind


def class_kind(name: str) -> str | None:
    """The kind a class name's head states: ...ForCausalLM is llm, ...ForCTC speech."""
    for suffix, kind in CLASS_SUFFIXES:
        if name.endswith(suffix):
            return kind
    return None


def _stems(classes: Iterable[str]) -> list[str]:
    """ "Qwen2" from Qwen2ForCausalLM, "Bert" from BertModel."""
    return [m.group(1) for m in (_STEM.match(c) for c in classes) if m]


def _family(name: str) -> str:
    """One spelling per family: "xlm-roberta", "xlm_roberta" and "XLMRoberta" alike."""
    return re.sub(r"[-_\s]", "", name).lower()


def with_kind(info: ModelInfo, config: ConfigInfo | None, card: CardInfo | None) -> ModelInfo:
    """The info with `kind` filled from its header and the config.json and model card beside
    it, unless the parser already knew it (whisper.cpp files)."""
    if info.kind is not None:
        return info
    classes = [info.architecture_class, info.architecture]
    families = [info.architecture]
    if config is not None and config.is_model:
        classes.append(config.architecture)
        families.append(config.model_type)
    evidence = Evidence(
        pipeline_tag=card.pipeline_tag if card is not None else None,
        library_name=card.library_name if card is not None else None,
        classes=tuple(c for c in classes if c and c[:1].isupper()),
        families=tuple(f for f in families if f),
    )
    return dataclasses.replace(info, kind=model_kind(evidence))


def is_numeric_data(info: ModelInfo, config: ConfigInfo | None, card: CardInfo | None) -> bool:
    """A plain numeric array (.npy, or .npz of plain arrays: test data, a cached result) with
    no model's config.json or card beside it: data, not a model. Anything with a risk
    verdict other than none, or a reason to look at it (object arrays), is never data."""
    if info.format != "numpy" or info.risk not in (None, "none"):
        return False
    if info.unsafe or info.unsafe_reasons:
        return False
    return not ((config is not None and config.is_model) or card is not None)
