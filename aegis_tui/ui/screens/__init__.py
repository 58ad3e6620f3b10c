"""Modal screens: answering questions, reviewing proposals, reports, help, confirmation."""
