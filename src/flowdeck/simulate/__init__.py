"""The demo: a simulated retail data platform (``estate``) and the companion that feeds its
history and a live batch into a running flowdeck (``companion``)."""
