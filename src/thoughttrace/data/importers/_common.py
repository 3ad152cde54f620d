"""Shared machinery of the importers: streaming source readers, record errors, conversation building.

Every importer is one function `convert(record, index) -> Conversation` that knows one source format;
reading (JSONL, .jsonl.gz, a .json list, Parquet as the sources ship on the Hub), error collection and
writing live here, so an importer never decides how a file is read.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..io import DatasetError, LineError, ReadReport, open_binary
from ..schema import Conversation

Converter = Callable[[Any, int], Conversation]

_CHUNK = 1 << 20


class RecordError(ValueError):
    """One source record cannot be converted; `field` is the dotted path inside the record."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


#: an epoch number above this is in milliseconds (1e11 s is the year 5138; 1e11 ms is March 1973)
_EPOCH_MS_ABOVE = 1e11


def as_timestamp(value: Any, where: str = "timestamp") -> str | None:
    """A source timestamp as ISO-8601 UTC: datetimes, epoch seconds or milliseconds (numbers or digit
    strings; ms when above 1e11), or an ISO string kept as it is."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(where, f"expected a timestamp, got {value!r}")
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        number = float(value.strip())
    if number is not None:
        seconds = number / 1000 if abs(number) > _EPOCH_MS_ABOVE else number
        try:
            dt = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError(where, f"the epoch timestamp {value!r} is out of range") from None
        return dt.isoformat(timespec="milliseconds" if seconds % 1 else "seconds").replace("+00:00", "Z")
    return as_text(value)


def as_text(value: Any) -> str | None:
    """Timestamps and ids as strings: datetimes (Parquet sources) to ISO-8601, numbers to str."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def require_dict(record: Any, what: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise RecordError("", f"expected a JSON object ({what}), got {type(record).__name__}")
    return record


class EmptyConversation(RecordError):
    """A record whose conversation holds no turns (common in ShareGPT dumps): nothing to import."""


def require_list(record: dict[str, Any], key: str, what: str) -> list[Any]:
    value = record.get(key)
    if value is None:
        raise RecordError(key, f"missing; {what}")
    if not isinstance(value, list):
        raise RecordError(key, f"expected a list of messages, got {type(value).__name__}")
    if not value:
        raise EmptyConversation(key, "empty conversation: no user or assistant messages; nothing to import. Pass --skip-invalid to "
                                     "skip empty records (they are counted)")
    return value


_PROVIDERS: Sequence[tuple[tuple[str, ...], str]] = (
    (("gpt", "chatgpt", "o1", "o3", "o4", "text-davinci", "davinci"), "OpenAI"),
    (("claude",), "Anthropic"),
    (("gemini", "palm", "bard", "gemma"), "Google"),
    (("llama", "meta-llama"), "Meta"),
    (("vicuna", "fastchat"), "LMSYS"),
    (("mistral", "mixtral", "codestral"), "Mistral AI"),
    (("qwen",), "Alibaba"),
    (("deepseek",), "DeepSeek"),
    (("grok",), "xAI"),
    (("glm", "chatglm"), "Zhipu AI"),
    (("koala",), "UC Berkeley"),
    (("alpaca",), "Stanford"),
    (("dolly",), "Databricks"),
    (("stablelm",), "Stability AI"),
    (("mpt",), "MosaicML"),
    (("rwkv",), "RWKV"),
    (("oasst",), "LAION"),
    (("wizardlm",), "WizardLM"),
    (("guanaco",), "UW"),
)


def role_and_text(turn: Any, where: str, roles: dict[str, str], role_key: str = "role",
                  text_key: str = "content") -> tuple[str, str]:
    """(normalised role, text) of one source turn; errors name the field (e.g. conversation.3.role)."""
    if not isinstance(turn, dict):
        raise RecordError(where, f"expected a turn object with {role_key} and {text_key}, got {type(turn).__name__}")
    raw = turn.get(role_key)
    role = roles.get(raw.lower()) if isinstance(raw, str) else None
    if role is None:
        names = " or ".join(repr(r) for r in dict.fromkeys(roles) if roles[r] != "system")
        raise RecordError(f"{where}.{role_key}", f"expected {names}, got {raw!r}")
    text = turn.get(text_key)
    if not isinstance(text, str):
        raise RecordError(f"{where}.{text_key}", f"expected text, got {type(text).__name__}")
    return role, text


def guess_provider(model: str | None) -> str | None:
    """The provider behind a model name, from its family prefix; None when unknown (never a guess)."""
    if not model:
        return None
    name = model.lower().split("/")[-1]
    for prefixes, provider in _PROVIDERS:
        if name.startswith(prefixes):
            return provider
    return None


def build_conversation(
    conv_id: str,
    turns: Sequence[tuple[str, str, str | None, str]],
    **meta: Any,
) -> Conversation:
    """A Conversation from (type, content, timestamp, field path) turns; `system` turns become `system_prompt`.

    `meta` holds the conversation-level fields (model_name, user_id, created_at ...) and any extra
    source fields worth keeping (language, source ...); None values are dropped.
    """
    messages: list[dict[str, Any]] = []
    system: list[str] = []
    for kind, content, timestamp, where in turns:
        if kind == "system":
            system.append(content)
            continue
        if kind not in ("user", "assistant"):
            raise RecordError(where, f"unknown role {kind!r}")
        messages.append({"id": f"{conv_id}-m{len(messages)}", "timestamp": timestamp, "type": kind,
                         "content": content})
    if not messages:
        raise EmptyConversation("", "no user or assistant messages; nothing to import (an empty conversation: "
                              "pass --skip-invalid to skip such records)")
    data: dict[str, Any] = {k: v for k, v in meta.items() if v is not None}
    if system:
        data["system_prompt"] = "\n\n".join(system)
    data["id"] = conv_id
    data["messages"] = messages
    return Conversation.model_validate(data)


def message_text(content: Any, where: str) -> str:
    """Message content as text: a string, or OpenAI-style parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
                texts.append("[image]")
            elif isinstance(part, dict) and part.get("type") in ("input_audio", "audio"):
                texts.append("[audio]")
            else:
                raise RecordError(f"{where}.{k}", "content part has no text")
        return "\n".join(texts)
    raise RecordError(where, f"expected text, got {type(content).__name__}")


# ---------------------------------------------------------------- reading source files, streaming


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with open_binary(path) as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except RecursionError:
                yield line_no, None, "JSON nested too deeply to be a record"
                continue
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                msg = f"{exc.msg} (column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                yield line_no, None, f"not valid JSON: {msg}; the line may be truncated"
                continue
            yield line_no, obj, None


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Items of a top-level JSON list, decoded one at a time (memory: one item plus a 1 MiB buffer).

    The index reported is the LINE where the item starts, so errors point into the file as for JSONL.
    A syntax error inside the list cannot be skipped (the next item's start is unknown): it is fatal.
    """
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8-sig") as fh:
        buf, pos, line, eof = "", 0, 1, False

        def fill() -> bool:
            nonlocal buf, pos
            try:
                chunk = fh.read(_CHUNK)
            except UnicodeDecodeError:
                raise DatasetError(f"{path}: not valid UTF-8 after line {line}; re-save the file as UTF-8") from None
            if not chunk:
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        def skip_ws() -> None:
            nonlocal pos, line, eof
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < len(buf) or eof:
                    return
                eof = not fill()

        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise DatasetError(f"{path}: expected a JSON list of records (starting with '['); "
                               "for one record a line, name the file .jsonl")
        pos += 1
        first = True
        while True:
            skip_ws()
            if pos >= len(buf):
                raise DatasetError(f"{path}: line {line}: the JSON list is not closed with ']'; the file may be truncated")
            if buf[pos] == "]":
                return
            if not first:
                if buf[pos] != ",":
                    raise DatasetError(f"{path}: line {line}: expected ',' or ']' between list items")
                pos += 1
                skip_ws()
            first = False
            start_line = line
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    break
                except RecursionError:
                    raise DatasetError(f"{path}: line {start_line}: JSON nested too deeply to be a record") from None
                except json.JSONDecodeError as exc:
                    if eof or not fill():
                        eof = True
                        err_line = line + buf.count("\n", pos, max(exc.pos, pos))
                        raise DatasetError(f"{path}: line {err_line} (in the item starting at line {start_line}): "
                                           f"not valid JSON: {exc.msg}; the file may be truncated. "
                                           "A broken item inside a JSON list cannot be skipped: fix it "
                                           "(or convert the file to JSONL, one record a line)") from None
            line += buf.count("\n", pos, end)
            pos = end
            yield start_line, obj, None
            if pos > _CHUNK:
                buf, pos = buf[pos:], 0


def _iter_parquet(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=512)
        for batch in batches:
            for rec in batch.to_pylist():
                row += 1
                yield row, rec, None
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file after row {row} ({exc})") from None


def iter_source(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line or row number, record, parse error) for each record of a source file, streaming.

    `.jsonl` / `.jsonl.gz`: one record a line; `.json`: a JSON list (or one record a line when the file
    does not start with '['); `.parquet`: one record a row (as the sources ship on the Hugging Face Hub).
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise DatasetError(f"{p}: is a directory; give one source file (.jsonl, .json or .parquet)")
    if p.suffix == ".parquet":
        return _iter_parquet(p)
    if p.suffix == ".json":
        with open(p, "rb") as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):
            return _iter_json_array(p)
    return _iter_jsonl(p)


def iter_imported(convert: Converter, path: str | Path, *, skip_invalid: bool = False,
                  report: ReadReport | None = None, source: str = "source") -> Iterator[Conversation]:
    """Converted conversations of a source file; strict unless `skip_invalid` (then errors go to `report`)."""
    report = report if report is not None else ReadReport()
    for index, record, parse_error in iter_source(path):
        report.lines += 1
        errors: list[LineError] = []
        conv: Conversation | None = None
        if parse_error is not None:
            errors = [LineError(index, "", parse_error)]
        else:
            try:
                conv = convert(record, index)
            except EmptyConversation as exc:
                report.empty += 1
                errors = [LineError(index, exc.field, exc.message)]
            except RecordError as exc:
                errors = [LineError(index, exc.field, exc.message)]
            except ValidationError as exc:
                errors = [LineError(index, ".".join(str(x) for x in e["loc"]), e["msg"]) for e in exc.errors()]
        if conv is None:
            report.errors.extend(errors)
            if not skip_invalid:
                raise DatasetError(f"{path}: not a valid {source} record: " + "; ".join(str(e) for e in errors)
                                   + " (fix the record, or pass --skip-invalid to import only the good ones)")
            continue
        report.valid += 1
        yield conv
