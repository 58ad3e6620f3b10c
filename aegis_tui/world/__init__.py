"""The outside world AEGIS acts on: search, humans who answer, a reviewer who approves.

``base`` defines the one interface; ``sim``, ``offline`` and ``live`` implement it and
``select`` picks one (``auto``: live when a bounded probe reaches the web, else offline).
"""
