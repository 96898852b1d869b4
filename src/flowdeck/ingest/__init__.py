"""Getting runs in: validation of reports and the single writer."""
