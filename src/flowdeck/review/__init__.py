"""Human-in-the-loop review: a small share of a pipeline's events is sampled into a queue,
a reviewer approves or rejects each with a note, and the outcomes become the
``review.outcomes`` metric (see docs/review.md)."""
