"""Pure domain rules: call and chat objects, validation, statuses, phone numbers."""
