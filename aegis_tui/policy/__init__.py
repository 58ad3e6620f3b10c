"""Deciding policies: the teachers (rules, a Hugging Face LM) and the HRM."""
