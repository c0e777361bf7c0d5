"""The committed corpus is exactly what the generator writes, and is plain text."""

from models.corpus import CORPUS_PATH, generate, load_corpus


def test_committed_corpus_matches_the_generator():
    text = load_corpus()
    assert text == generate()
    assert 50_000 <= len(CORPUS_PATH.read_bytes()) <= 100_000
    assert generate(2000, seed=1) != generate(2000, seed=2)
    assert all(line and line[0].isupper() for line in text.splitlines())
