"""format_sse: byte for byte, as the WHATWG event-stream grammar reads it."""

import pytest

from sse_dashboard.web.streams import HEARTBEAT_FRAME, format_sse


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"event": "metrics", "data": '{"seq":1}'}, b'event: metrics\ndata: {"seq":1}\n\n'),
        ({"id": 7, "event": "log", "data": "x"}, b"id: 7\nevent: log\ndata: x\n\n"),
        ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\r\nb\rc"}, b"data: a\ndata: b\ndata: c\n\n"),
        ({"retry": 5000}, b"retry: 5000\n\n"),
        ({"comment": "ping"}, b": ping\n\n"),
        ({"comment": "two\nlines"}, b": two\n: lines\n\n"),
        ({"id": "1\r\n2", "data": "x"}, b"id: 12\ndata: x\n\n"),
        ({"event": "lo\ng", "data": "x"}, b"event: log\ndata: x\n\n"),
        ({"data": "caf\u00e9 \U0001F680"}, "data: caf\u00e9 \U0001F680\n\n".encode("utf-8")),
        ({"retry": 10, "data": "x"}, b"retry: 10\ndata: x\n\n"),
    ],
)
def test_format_sse_is_byte_exact(kwargs, expected):
    assert format_sse(**kwargs) == expected


def test_heartbeat_is_a_comment_frame():
    assert HEARTBEAT_FRAME == b": ping\n\n"


@pytest.mark.parametrize("retry", [5.0, "5000", True, None.__class__])
def test_retry_must_be_an_int(retry):
    with pytest.raises(TypeError):
        format_sse(retry=retry)


def test_an_event_named_error_is_refused_because_eventsource_owns_that_name():
    with pytest.raises(ValueError):
        format_sse(event="error", data="x")
