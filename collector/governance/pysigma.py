"""Point pySigma's errors at the key they are about, and find every broken detection item
(pySigma stops at the first) by asking pySigma about each item on its own.
"""

from __future__ import annotations

from collections.abc import Callable

from sigma.exceptions import (
    SigmaAuthorError,
    SigmaCollectionError,
    SigmaConditionError,
    SigmaDateError,
    SigmaDescriptionError,
    SigmaError,
    SigmaFalsePositivesError,
    SigmaFieldsError,
    SigmaIdentifierError,
    SigmaLevelError,
    SigmaLicenseError,
    SigmaLogsourceError,
    SigmaModifiedError,
    SigmaNameError,
    SigmaReferencesError,
    SigmaRelatedError,
    SigmaScopeError,
    SigmaStatusError,
    SigmaTagError,
    SigmaTaxonomyError,
    SigmaTitleError,
)
from sigma.rule import SigmaDetection, SigmaRule

from collector.governance.source import Where

_PATHS: tuple[tuple[type[SigmaError], str], ...] = (
    (SigmaIdentifierError, "id"),
    (SigmaTitleError, "title"),
    (SigmaLevelError, "level"),
    (SigmaStatusError, "status"),
    (SigmaDateError, "date"),
    (SigmaModifiedError, "modified"),
    (SigmaTagError, "tags"),
    (SigmaDescriptionError, "description"),
    (SigmaAuthorError, "author"),
    (SigmaReferencesError, "references"),
    (SigmaFalsePositivesError, "falsepositives"),
    (SigmaFieldsError, "fields"),
    (SigmaRelatedError, "related"),
    (SigmaLicenseError, "license"),
    (SigmaNameError, "name"),
    (SigmaTaxonomyError, "taxonomy"),
    (SigmaScopeError, "scope"),
)


def metadata_errors(rule: dict[str, object]) -> list[SigmaError]:
    """pySigma's complaints about the fields around logsource and detection."""
    return SigmaRule.from_dict_common_params(rule, collect_errors=True)[1]


def error_path(error: SigmaError, metadata: list[SigmaError]) -> str:
    """The dotted key an error is about; 'detection' for anything raised by detection items."""
    if error in metadata:
        for kind, path in _PATHS:
            if isinstance(error, kind):
                return path
        return "tags"  # the one metadata check that raises a plain SigmaValueError
    if isinstance(error, SigmaLogsourceError):
        return "logsource"
    if isinstance(error, SigmaConditionError):
        return "detection.condition"
    if isinstance(error, SigmaCollectionError):
        return "document"  # the alias-expansion check
    return "detection"


def detection_problems(detection: object, where: Where, errors: list[SigmaError]) -> list[str]:
    """One problem per broken detection item; pySigma's own messages if none can be pinned."""
    fallback = [where.at("detection") + str(error) for error in errors]
    if not isinstance(detection, dict):
        return fallback
    problems = []
    for name, definition in detection.items():
        if name != "condition":
            problems.extend(_locate(f"detection.{name}", definition, where))
    return problems or fallback


def _locate(path: str, definition: object, where: Where) -> list[str]:
    error = _error_of(lambda: SigmaDetection.from_definition(definition))  # type: ignore[arg-type]
    if error is None:
        return []
    found: list[str] = []
    if isinstance(definition, dict):
        for key, value in definition.items():
            if not isinstance(key, str):
                found.append(where.at(f"{path}.{key}") + "field names must be strings")
            else:
                found.extend(_locate_item(f"{path}.{key}", {key: value}, where))
    elif isinstance(definition, list):
        for item in definition:
            if isinstance(item, (dict, list)):
                found.extend(_locate(path, item, where))
    return found or [where.at(path) + error]


def _locate_item(path: str, item: dict[str, object], where: Where) -> list[str]:
    error = _error_of(lambda: SigmaDetection.from_definition(item))
    return [] if error is None else [where.at(path) + error]


def _error_of(parse: Callable[[], object]) -> str | None:
    try:
        parse()
    except SigmaError as exc:
        return str(exc)
    except Exception as exc:  # pySigma raises built-in errors on some malformed input
        return f"cannot be parsed ({type(exc).__name__}: {exc})"
    return None
