"""The one name grammar: built and parsed by the same helper."""

import pytest

from flan_jax import naming


def test_task_names_round_trip():
    cases = [
        (("demo", "fact_nli"), {}, "demo:fact_nli:mix"),
        (("demo", "fact_nli", 3), {}, "demo:fact_nli:t3"),
        (("demo", "fact_nli", 3), {"rank": True}, "demo:fact_nli:t3:rank"),
        (("flan2021", "rte", 0), {"shots": 5}, "flan2021:rte:t0:5shot"),
    ]
    for args, kwargs, expected in cases:
        name = naming.task_name(*args, **kwargs)
        assert name == expected
        parsed = naming.parse_name(name)
        assert not parsed.is_mixture
        assert parsed.dataset == args[1]
        assert parsed.template == (args[2] if len(args) > 2 else None)
        assert parsed.rank == kwargs.get("rank", False)


def test_mixture_names_round_trip():
    assert naming.mixture_name("demo", ("nli",)) == "demo:heldout_nli:train"
    assert (
        naming.mixture_name("demo", ("nli", "strings"), "eval") == "demo:heldout_nli+strings:eval"
    )
    assert naming.mixture_name("demo") == "demo:all:train"
    parsed = naming.parse_name("demo:heldout_nli+strings:eval")
    assert parsed.is_mixture and parsed.heldout == ("nli", "strings") and parsed.kind == "eval"


@pytest.mark.parametrize("bad", ["Demo:x:t0", "demo:x", "demo:x:t", "demo", "demo:x:t0:rank:oops"])
def test_malformed_names(bad):
    with pytest.raises(naming.InvalidNameError, match="is not a task or mixture name"):
        naming.parse_name(bad)


def test_bad_identifiers():
    with pytest.raises(naming.InvalidNameError, match="not lower-case snake case"):
        naming.task_name("demo", "Fact-NLI", 0)
    with pytest.raises(naming.InvalidNameError, match="needs at least one held-out"):
        naming.mixture_name("demo", (), "eval")
