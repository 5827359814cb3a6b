"""ARQ workers: routing, scheduled firing, SMS sessions, carriers and write-back."""
