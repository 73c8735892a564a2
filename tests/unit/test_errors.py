"""DlcourseError shows as one sentence in IPython, and the cell still fails."""

from __future__ import annotations

import pytest


def test_ipython_shows_only_the_sentence(capsys) -> None:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    from dlcourse.errors import show_errors_as_sentences

    shell = InteractiveShell.instance()
    try:
        assert show_errors_as_sentences()
        result = shell.run_cell("from dlcourse.data import load_mnist\nload_mnist(root='/no/such/folder')")
        out = capsys.readouterr()
        text = out.out + out.err
        assert result.error_in_exec is not None, "the cell must still count as failed"
        assert "DataError: The data folder given by root= (/no/such/folder) does not exist" in text
        assert "Traceback" not in text and "_search_dirs" not in text
        result = shell.run_cell("1/0")
        assert "ZeroDivisionError" in capsys.readouterr().out, "other errors keep their normal traceback"
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()
