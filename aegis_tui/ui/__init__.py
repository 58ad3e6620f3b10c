"""The Textual dashboard (``aegis-tui``): the only package that imports Textual.

``launch.run_dashboard`` is what the CLI calls; ``app.AegisApp`` is the app; panes live one
per file under ``components/`` and modal screens under ``screens/``. The agent runs in a
thread worker and talks to the dashboard only through the event bus and its thread-safe
controls, so nothing here is needed to run the agent headless.
"""
