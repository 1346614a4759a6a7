"""The flan-jax console script: list, inspect, train-vocab and one-line errors."""

import pytest

from flan_jax import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list(capsys):
    code, out, _ = run(capsys, "list", "demo")
    assert code == 0
    assert "collection demo: 4 clusters, 8 datasets" in out
    assert "demo:heldout_nli:train" in out and "demo:heldout_nli:eval" in out


def test_inspect_task_and_mixture(capsys):
    code, out, _ = run(capsys, "inspect", "demo:product_reviews:t1", "--split", "test", "--n", "1")
    assert code == 0
    assert "inputs:\n  Review: " in out and "Is this review positive or negative?" in out
    assert "tokens: inputs" in out
    code, out, _ = run(capsys, "inspect", "demo:heldout_sentiment:train")
    assert code == 0
    assert "excluded clusters: sentiment" in out
    assert "demo:addition:mix" in out and "demo:movie_reviews:mix" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "demo:nope:t0"], "unknown task 'demo:nope:t0'"),
        (["inspect", "demo:heldout_xyz:train"], "unknown cluster 'xyz'"),
        (["inspect", "demo:addition:t0", "--split", "dev"], "has no split 'dev'"),
    ],
)
def test_errors_are_one_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_train_vocab_keeps_newlines(capsys, tmp_path):
    prefix = str(tmp_path / "spm")
    code, out, _ = run(
        capsys,
        "train-vocab",
        "demo:fact_nli:t0",
        prefix,
        "--vocab_size",
        "200",
        "--max_examples",
        "300",
    )
    assert code == 0, out
    import seqio

    vocab = seqio.SentencePieceVocabulary(prefix + ".model")
    text = "Premise: Ada has 2 red cups.\nHypothesis: yes"
    assert vocab.decode(vocab.encode(text)) == text
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    code, _, err = run(capsys, "train-vocab", "demo:fact_nli:t0", prefix)
    assert code == 2 and "exists; pass --overwrite" in err


def test_inspect_tfds_task_under_mock_data(capsys):
    code, out, err = run(
        capsys, "inspect", "flan2021:rte:t0", "--mock", "--n", "1", "--split", "test"
    )
    assert code == 0, err
    assert "=== flan2021:rte:t0 [test] example 0" in out and "OPTIONS:\n  - yes" in out
