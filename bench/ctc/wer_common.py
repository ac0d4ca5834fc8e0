"""Corpus WER over (reference, hypothesis) pairs with the team's reference normalisation."""


def corpus_wer(W, pairs):
    """Total edits / total reference words, in percent, and the word count. `W` is the
    ../shared/wer_reference module."""
    e = n = 0
    for ref, hyp in pairs:
        r = W.normalise(ref)
        e += W.edits(r, W.normalise(hyp))
        n += len(r)
    return 100.0 * e / max(n, 1), n
