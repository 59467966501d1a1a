from common.errors import ModelError
from common.text import exception_line, first_line, one_line


def test_one_line_folds_white_space_and_cuts():
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 1000) == "x" * 400
    assert one_line("abcdef", limit=3) == "abc"


def test_exception_line_names_foreign_exceptions_only():
    assert exception_line(ValueError("bad\nvalue")) == "ValueError: bad value"
    assert exception_line(ModelError("cannot  load\nit")) == "cannot load it"
    assert exception_line(KeyError()) == "KeyError: KeyError"


def test_first_line_keeps_the_first_line_or_names_the_type():
    assert first_line(OSError("cannot open\nhint: check the path")) == "cannot open"
    assert first_line(ValueError("  \n padded \n")) == "padded"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("   ")) == "RuntimeError"
