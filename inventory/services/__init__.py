"""Writes and orchestration for the inventory; called alike by views, API, commands and tasks."""
