"""The API's result as OpenAI's ``/v1/audio/transcriptions`` answers it.

``response_format``: ``json`` -> ``{"text"}``; ``text`` -> the text (text/plain); ``srt`` / ``vtt``
-> subtitles, one cue per segment; ``verbose_json`` -> ``{"task", "language", "duration", "text",
"segments": [{"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob"}],
"words": [{"word", "start", "end"}]}`` (seconds). Segments are the result's sentences
(``sentence_info``, with a VAD/punctuation server) or else one segment spanning the tokens. Words are
the model's tokens with their timestamps (a Chinese model's tokens are characters). ``tokens`` are
the segment's token texts (OpenAI's are ids of its own vocabulary, which no client can use here);
``temperature`` is 0 (the search is deterministic); ``avg_logprob`` is the utterance score per token
(the model scores the utterance, not each segment).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from funasr_lite.inference.writers import format_srt

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def segments_of(result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """``[{"text", "start", "end", "timestamp"}]`` in ms: the sentences, or one over all tokens."""
    if result.get("sentence_info"):
        return [{"text": s["text"], "start": int(s["start"]), "end": int(s["end"]),
                 "timestamp": [list(map(int, pair)) for pair in s.get("timestamp", [])]}
                for s in result["sentence_info"]]
    text = result.get("text", "")
    if not text:
        return []
    stamps = [list(map(int, pair)) for pair in result.get("timestamp") or []]
    if stamps:
        start, end = stamps[0][0], stamps[-1][1]
    else:
        start, end = 0, int(round(1000 * float(result.get("duration", 0.0))))
    return [{"text": text, "start": start, "end": end, "timestamp": stamps}]


def words_of(result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    tokens, stamps = result.get("token") or [], result.get("timestamp") or []
    if len(tokens) != len(stamps):
        return []
    return [{"word": token, "start": s / 1000.0, "end": e / 1000.0} for token, (s, e) in zip(tokens, stamps)]


def _tokens_between(result: Mapping[str, Any], start_ms: int, end_ms: int) -> List[str]:
    tokens, stamps = result.get("token") or [], result.get("timestamp") or []
    if len(tokens) != len(stamps):
        return []
    return [t for t, (s, e) in zip(tokens, stamps) if s >= start_ms and e <= end_ms]


def verbose_json(result: Mapping[str, Any], language: Optional[str]) -> Dict[str, Any]:
    tokens = result.get("token") or []
    avg_logprob = float(result.get("score", 0.0)) / len(tokens) if tokens else 0.0
    segments = [{"id": i, "seek": 0, "start": s["start"] / 1000.0, "end": s["end"] / 1000.0, "text": s["text"],
                 "tokens": _tokens_between(result, s["start"], s["end"]), "temperature": 0.0,
                 "avg_logprob": avg_logprob}
                for i, s in enumerate(segments_of(result))]
    return {"task": "transcribe", "language": language or "zh", "duration": round(float(result.get("duration", 0.0)), 3),
            "text": result.get("text", ""), "segments": segments, "words": words_of(result)}


def vtt_time(ms: float) -> str:
    ms = int(round(ms))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def format_vtt(sentences) -> str:
    return "WEBVTT\n\n" + "".join(f"{vtt_time(s['start'])} --> {vtt_time(s['end'])}\n{s['text']}\n\n" for s in sentences)


def render(result: Mapping[str, Any], response_format: str, language: Optional[str] = None):
    """``(body, media_type)``: body is a dict (JSON) or a str."""
    if response_format == "json":
        return {"text": result.get("text", "")}, "application/json"
    if response_format == "text":
        return result.get("text", ""), "text/plain; charset=utf-8"
    if response_format == "srt":
        return format_srt(segments_of(result)), "text/plain; charset=utf-8"
    if response_format == "vtt":
        return format_vtt(segments_of(result)), "text/vtt; charset=utf-8"
    if response_format == "verbose_json":
        return verbose_json(result, language), "application/json"
    raise ValueError(f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")


__all__ = ["RESPONSE_FORMATS", "format_vtt", "render", "segments_of", "verbose_json", "words_of"]
