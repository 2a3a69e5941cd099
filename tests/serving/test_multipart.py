"""``serving.endpoint.parse_form``: what a Flask ``request.files`` accepted, and a clear 400 for the rest."""

from __future__ import annotations

import pytest

from serving.endpoint import RequestError, parse_form, parse_instances

TYPE = b'multipart/form-data; boundary="B"'


def part(disposition: bytes, data: bytes = b"xx") -> bytes:
    return b"--B\r\nContent-Disposition: form-data; " + disposition + b"\r\nContent-Type: image/png\r\n\r\n" + data + b"\r\n"


def test_an_upload_an_instances_field_and_the_first_file_of_several():
    assert parse_form(TYPE, part(b'name="file"; filename="d.png"', b"\x89PNG\r\n--") + b"--B--\r\n") == (
        b"\x89PNG\r\n--", None)
    assert parse_form(TYPE, part(b'filename="d.png"; name="file"') + b"--B--\r\n") == (b"xx", None)
    assert parse_form(TYPE, part(b'name="instances"', b"[[1, 2]]") + b"--B--\r\n") == (None, [[1, 2]])
    first = part(b'name="file"; filename="a.png"', b"first") + part(b'name="file"; filename="b.png"', b"second")
    assert parse_form(TYPE, first + b"--B--\r\n") == (b"first", None)


@pytest.mark.parametrize(("content_type", "body", "message"), [
    (b"multipart/form-data", b"--B--\r\n", "no boundary"),
    (TYPE, b"", "ends before the closing boundary"),
    (TYPE, part(b'name="file"; filename="a"') + b"--B", "ends before the closing boundary"),
    (TYPE, b"garbage", "malformed multipart body"),
    (TYPE, b"--B\r\n\r\nxx\r\n--B--\r\n", "without a Content-Disposition name"),
    (TYPE, part(b'name="file"') + b"--B--\r\n", "must be a file upload"),
    (TYPE, part(b'name="other"; filename="a"') + b"--B--\r\n", "unexpected form field(s) ['other']"),
    (TYPE, b"--B--\r\n", "send exactly one of"),
    (TYPE, part(b'name="file"; filename="a"') * 5 + b"--B--\r\n", "more than 4 parts"),
])
def test_bad_bodies_get_a_400_naming_the_problem(content_type, body, message):
    with pytest.raises(RequestError) as err:
        parse_form(content_type, body)
    assert err.value.status == 400 and message in str(err.value)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_instances_are_a_400_not_a_recursion_error(depth):
    """JSON nested past the decoder's limit (a body or a multipart ``instances`` field) is bad input."""
    nested = b"[" * depth + b"]" * depth
    with pytest.raises(RequestError, match="nested too deeply") as raised:
        parse_instances(b'{"instances": ' + nested + b"}")
    assert raised.value.status == 400
    with pytest.raises(RequestError, match="nested too deeply"):
        parse_form(TYPE, part(b'name="instances"', nested) + b"--B--\r\n")
