"""The dashboard's panes, one widget per module; each renders only cleaned, literal text."""
