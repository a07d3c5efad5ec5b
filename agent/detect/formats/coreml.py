"""Read a CoreML model specification (a .mlmodel file, also the model.mlmodel of a .mlpackage).

The Model protobuf carries a specification version, a description with its metadata, and one
model-type field (neural network, ML program, pipeline, ...); the weights are not opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.detect.formats import ModelInfo, ReadAt
from agent.detect.formats.protowire import (
    LEN,
    VARINT,
    Field,
    SchemaMismatch,
    Wire,
    expect,
    head_fields,
)

FORMAT = "coreml"
MAX_SPEC_VERSION = 64
MAX_TEXT = 256
MAX_USER_DEFINED = 256
CHECKED_FEATURES = 16

# Model's oneof Type: field number -> the name Model.proto gives it.
MODEL_TYPES: dict[int, str] = {
    200: "pipelineClassifier", 201: "pipelineRegressor", 202: "pipeline",
    300: "glmRegressor", 301: "supportVectorRegressor", 302: "treeEnsembleRegressor",
    303: "neuralNetworkRegressor", 304: "bayesianProbitRegressor", 400: "glmClassifier",
    401: "supportVectorClassifier", 402: "treeEnsembleClassifier",
    403: "neuralNetworkClassifier", 404: "kNearestNeighborsClassifier", 500: "neuralNetwork",
    501: "itemSimilarityRecommender", 502: "mlProgram", 555: "customModel", 556: "linkedModel",
    560: "classConfidenceThresholding", 600: "oneHotEncoder", 601: "imputer",
    602: "featureVectorizer", 603: "dictVectorizer", 604: "scaler", 606: "categoricalMapping",
    607: "normalizer", 609: "arrayFeatureExtractor", 610: "nonMaximumSuppression",
    900: "identity", 2000: "textClassifier", 2001: "wordTagger", 2002: "visionFeaturePrint",
    2003: "soundAnalysisPreprocessing", 2004: "gazetteer", 2005: "wordEmbedding",
    2006: "audioFeaturePrint", 3000: "serializedModel",
}  # fmt: skip
_FIRST_TYPE = 200
# ModelDescription fields; every one of them is a message or a string.
_DESCRIPTION_FIELDS = frozenset({1, 10, 11, 12, 13, 20, 21, 50, 100})
_INPUT, _METADATA = 1, 100
_COREMLTOOLS_VERSION = "com.github.apple.coremltools.version"


def claims(head: bytes, size: int) -> bool:
    """True when the head reads as a Model: specificationVersion first, then a description
    whose leading fields are ModelDescription's, isUpdatable, or model-type fields."""
    fields = head_fields(head, size)
    if not fields or (fields[0].number, fields[0].wire_type) != (1, VARINT):
        return False
    if not 1 <= fields[0].value <= MAX_SPEC_VERSION:
        return False
    for f in fields[1:]:
        if f.number == 2 and f.wire_type == LEN:
            inner = head_fields(head, size, f.at, f.end)
            if inner is None or any(not _is_description_field(g) for g in inner):
                return False
        elif not (f.number == 10 and f.wire_type == VARINT) and not _is_model_type(f):
            return False
    return True


def _is_description_field(f: Field) -> bool:
    return f.number in _DESCRIPTION_FIELDS and f.wire_type == LEN


def _is_model_type(f: Field) -> bool:
    return f.number >= _FIRST_TYPE and f.wire_type == LEN


@dataclass
class _Description:
    texts: dict[int, str] = field(default_factory=dict)  # Metadata field number -> text
    user_defined: dict[str, str] = field(default_factory=dict)


def parse(read_at: ReadAt, size: int) -> ModelInfo | None:
    """None for a protobuf that is no CoreML Model (no model type, foreign fields);
    FormatError when the protobuf framing breaks."""
    wire = Wire(read_at, size, FORMAT)
    try:
        model_type, description = _read_model(wire)
    except SchemaMismatch:
        return None
    user = description.user_defined
    tools_version = user.get(_COREMLTOOLS_VERSION)
    return ModelInfo(
        format=FORMAT,
        name=user.get("name") or None,
        architecture=model_type,
        license=description.texts.get(4) or None,
        base_model=user.get("base_model") or None,
        producer=f"coremltools {tools_version}" if tools_version else None,
        header_bytes=min(wire.bytes_read, size),
    )


def _read_model(wire: Wire) -> tuple[str, _Description]:
    model_type: str | None = None
    description = _Description()
    spec_version = 0
    for f in wire.fields(0, wire.size):
        if f.number == 1:
            expect(f, VARINT)
            spec_version = f.value
        elif f.number == 2:
            expect(f, LEN)
            description = _read_description(wire, f)
        elif f.number == 10:
            expect(f, VARINT)
        elif _is_model_type(f):
            if model_type is not None:
                raise SchemaMismatch(f"a second model type at byte {f.at}")
            model_type = MODEL_TYPES.get(f.number, f"type{f.number}")
        else:
            raise SchemaMismatch(f"field {f.number} is no Model field")
    if model_type is None or not 1 <= spec_version <= MAX_SPEC_VERSION:
        raise SchemaMismatch("no model type or specification version")
    return model_type, description


def _read_description(wire: Wire, description: Field) -> _Description:
    found = _Description()
    inputs = 0
    for f in wire.fields(description.at, description.end):
        if f.number not in _DESCRIPTION_FIELDS:
            continue
        expect(f, LEN)
        if f.number == _INPUT and inputs < CHECKED_FEATURES:
            inputs += 1
            _check_feature(wire, f)
        elif f.number == _METADATA:
            _read_metadata(wire, f, found)
    return found


def _check_feature(wire: Wire, feature: Field) -> None:
    """A FeatureDescription: name 1, shortDescription 2, type 3, all length-delimited."""
    for f in wire.fields(feature.at, feature.end):
        if f.number in (1, 2, 3):
            expect(f, LEN)


def _read_metadata(wire: Wire, metadata: Field, found: _Description) -> None:
    """Metadata: shortDescription 1, versionString 2, author 3, license 4, userDefined 100."""
    for f in wire.fields(metadata.at, metadata.end):
        if f.number in (1, 2, 3, 4):
            expect(f, LEN)
            found.texts[f.number] = wire.text(f, MAX_TEXT)
        elif f.number == 100 and len(found.user_defined) < MAX_USER_DEFINED:
            expect(f, LEN)
            key, value = wire.string_pair(f, MAX_TEXT)
            found.user_defined.setdefault(key, value)
