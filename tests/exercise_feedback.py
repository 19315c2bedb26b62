"""Helpers for the checker tests: run a checker and assert on its verdict and printed feedback."""


def run(checker, answer, capsys):
    """(verdict, printed feedback) of `checker(answer)`."""
    verdict = checker(answer)
    return verdict, capsys.readouterr().out


def assert_accepted(checker, answer, checks, capsys):
    """`checker(answer)` passes all `checks` checks with no ✗ line; returns the feedback."""
    verdict, out = run(checker, answer, capsys)
    assert verdict is True, out
    assert "✗" not in out and f"All {checks} checks passed" in out
    return out


def assert_rejected(checker, answer, hint, capsys):
    """`checker(answer)` fails, and its feedback contains `hint`; returns the feedback."""
    verdict, out = run(checker, answer, capsys)
    assert verdict is False, out
    assert "✗" in out
    assert hint in out, out
    return out
