"""Call and chat history in PostgreSQL: what has ended leaves Redis for the tables here."""
